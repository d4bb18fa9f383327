"""The launcher ``paybot up`` runs Rasa with: the same action-response check, compiled once."""

from __future__ import annotations

import logging

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from paybot_cli.up import plan
from rasa_plugins import rasa_server

VALID = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "amount", "value": "5.00"}],
     "responses": [{"text": "Hello.", "custom": {"type": "listen", "mode": "yes_no"}}]},
    {"events": [{"event": "followup", "name": "payment_form"}]},
]
INVALID = [
    {"events": "not a list"},
    {"events": [{"event": "slot", "name": 3}]},
    {"responses": ["not an object"]},
    [],
]


@pytest.fixture
def compiled(monkeypatch):
    monkeypatch.setattr(RemoteAction, "_validate_action_result",
                        RemoteAction._validate_action_result)  # restored afterwards
    original = RemoteAction._validate_action_result
    rasa_server.install()
    rasa_server.install()  # twice is once
    assert RemoteAction._validate_action_result is not original
    return RemoteAction("action_x", None)


@pytest.mark.parametrize("response", VALID)
def test_valid_responses_pass_as_before(compiled, response):
    jsonschema.validate(response, RemoteAction.action_response_format_spec())
    assert compiled._validate_action_result(response) is True


@pytest.mark.parametrize("response", INVALID)
def test_invalid_responses_fail_with_rasas_message(compiled, response):
    with pytest.raises(jsonschema.ValidationError) as before:
        jsonschema.validate(response, RemoteAction.action_response_format_spec())
    with pytest.raises(jsonschema.ValidationError) as now:
        compiled._validate_action_result(response)
    assert now.value.message.startswith(before.value.message)
    assert "Failed to validate Action server response" in now.value.message


def test_paybot_up_runs_rasa_through_the_launcher():
    from pathlib import Path

    from paybot.settings import load_settings
    from paybot_cli.project import Project

    rasa = plan(load_settings(env="test"), Project(Path(__file__).resolve().parents[1]))[0]
    assert rasa.argv[1:4] == ["-m", "rasa_plugins.rasa_server", "run"]


def test_what_customers_said_stays_out_of_rasas_structured_logs(caplog):
    import structlog
    from rasa.utils import log_utils

    from rasa_plugins.rasa_server import HIDDEN, hide_payloads

    original = log_utils._anonymizer
    try:
        hide_payloads()
        log_utils.configure_structlog(logging.INFO)
        structlog.get_logger().error(
            "rest.message.received.timeout", text="my card is 4111 1111 1111 1111",
            sender_id="sms:+15555550100",
        )  # fmt: skip
        logged = caplog.text
        assert "rest.message.received.timeout" in logged and HIDDEN in logged
        assert "4111" not in logged and "my card" not in logged
        assert "sms:+15555550100" in logged  # ids stay
    finally:
        log_utils._anonymizer = original
        structlog.reset_defaults()
