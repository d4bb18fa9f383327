"""Rasa's server as ``paybot up`` runs it: ``python -m rasa_plugins.rasa_server run ...`` is
``python -m rasa run ...`` with the action server's answers checked faster, the API token read
from ``PAYBOT_RASA_TOKEN`` (so it is never on a command line), log records redacted (one JSON
object a line with ``PAYBOT_LOG_FORMAT=json``), what customers said kept out of Rasa's own
structured log lines (:func:`hide_payloads`) and ``GET /metrics`` on Rasa's own port.

Rasa 3.6 checks every action server response against its response schema with
``jsonschema.validate``, which first checks the *schema* against JSON Schema's metaschema, on
every call. Profiled under ten simultaneous calls (py-spy), that metaschema check was about 60%
of the Rasa process's CPU time, on the path of every caller turn. :func:`install` swaps in a
check with a validator built once: each response is still validated against the same schema,
and an invalid one raises the same ``ValidationError`` with the same message. Each event is
first checked against only the branch of the schema's ``oneOf`` its ``event`` name selects
(the branches differ by that name, so a valid event matches exactly that one): a third of the
cost of checking it against all twenty-three. Anything that fails the quick check is checked
again in full, so an invalid response fails as before.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from paybot import log_format, metrics, redaction
from rasa_plugins import (
    event_types,
    http_pool,
    model_load,
    parse_cache,
    past_states,
    policy_shortcut,
    rule_lookup,
    slot_copy,
    turn_gate,
)

TOKEN_ENV = "PAYBOT_RASA_TOKEN"  # noqa: S105 - a variable name


def install() -> None:
    """Make Rasa's ``RemoteAction`` validate action server responses with a compiled
    validator (idempotent)."""
    from jsonschema import exceptions, validators
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    if getattr(RemoteAction._validate_action_result, "compiled", False):
        return
    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)  # once, not per response
    validator = cls(schema)
    quick = _quick_check(cls, schema)

    def _validate_action_result(self: Any, result: dict[str, Any]) -> bool:
        if quick(result):
            return True
        error = exceptions.best_match(validator.iter_errors(result))
        if error is None:
            return True
        error.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error

    _validate_action_result.compiled = True  # type: ignore[attr-defined]
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]


def _quick_check(cls: Any, schema: dict[str, Any]) -> Any:
    """A test that ``result`` is valid under ``schema`` (Rasa's action response schema), each
    event checked only against the ``oneOf`` branch of its name; False means "check fully"."""
    event_schema = schema["properties"]["events"]["items"]
    base = {k: v for k, v in event_schema.items() if k != "oneOf"}
    by_name = {
        branch["properties"]["event"]["const"]: cls({**base, "allOf": [branch]})
        for branch in event_schema["oneOf"]
    }
    if len(by_name) != len(event_schema["oneOf"]):
        return lambda _result: False  # the branches are not one per name: always check fully
    outer = cls({**schema, "properties": {**schema["properties"], "events": {"type": "array"}}})

    def check(result: Any) -> bool:
        if not outer.is_valid(result):
            return False
        for event in result.get("events") or ():
            name = event.get("event") if isinstance(event, dict) else None
            one = by_name.get(name) if isinstance(name, str) else None
            if one is None or not one.is_valid(event):
                return False
        return True

    return check


def serve_metrics() -> None:
    """Give the Sanic app Rasa builds ``GET /metrics`` (:func:`paybot.metrics.attach_to_sanic`;
    guarded by ``PAYBOT_METRICS_TOKEN`` when set) and conversation ids on its log lines
    (:mod:`paybot.log_format`: the API's path, a message's sender). Idempotent."""
    import rasa.core.run as rasa_run
    from rasa.core.agent import Agent

    Agent.handle_message = log_format.with_conversation(  # type: ignore[method-assign]
        Agent.handle_message, lambda _self, message, *_a, **_k: message.sender_id
    )

    configure_app = rasa_run.configure_app
    if getattr(configure_app, "with_metrics", False):
        return

    def with_metrics(*args: Any, **kwargs: Any) -> Any:
        app = configure_app(*args, **kwargs)
        metrics.attach_to_sanic(app, os.environ.get(metrics.TOKEN_ENV) or None)
        log_format.attach_to_sanic(app)
        app.register_listener(http_pool.close_all, "after_server_stop")
        return app

    with_metrics.with_metrics = True  # type: ignore[attr-defined]
    rasa_run.configure_app = with_metrics  # type: ignore[assignment]


# The fields of Rasa's structured log events that carry what a customer said or the bot's
# state (Rasa's own list, the keys its optional anonymisation pipeline would rewrite).
PAYLOAD_FIELDS = frozenset({
    "text", "response_text", "user_text", "slot_values", "parse_data_text",
    "parse_data_entities", "prediction_events", "tracker_latest_message", "prefilled_slots",
    "message", "response", "slot_candidates", "rasa_event", "rasa_events", "tracker_states",
    "current_states", "old_states", "successes", "current_entity", "next_entity", "states",
    "entity", "token_text", "user_message", "json_message",
})  # fmt: skip
HIDDEN = "[not logged]"


def _hide_payload_fields(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: every payload field's value replaced by :data:`HIDDEN`."""
    for key in PAYLOAD_FIELDS & event.keys():
        event[key] = HIDDEN
    return event


def hide_payloads() -> None:
    """Keep what customers said out of Rasa's structured logs. Rasa logs the message text
    itself in some events (``rest.message.received.timeout`` at ERROR, when a turn outlasts
    the REST channel's wait); its first log processor is an anonymiser hook, which
    :func:`rasa.utils.log_utils.configure_structlog` looks up when Rasa starts. Ours hides
    the fields instead, without the anonymisation pipeline (whose presence would also make
    Rasa read every tracker again after each message)."""
    from rasa.utils import log_utils

    log_utils._anonymizer = _hide_payload_fields  # noqa: SLF001 - Rasa has no public hook


def token_from_env(argv: list[str]) -> list[str]:
    """``argv`` with ``--auth-token`` from ``PAYBOT_RASA_TOKEN`` for ``run`` (the process's
    own argument list changes; the command line the system shows does not)."""
    token = os.environ.get(TOKEN_ENV)
    if token and "run" in argv[1:2] and "--auth-token" not in argv:
        return [*argv, "--auth-token", token]
    return argv


def main() -> None:
    """Rasa's command line, with :func:`install` applied first."""
    # TensorFlow's oneDNN kernels cost more than they save on one short message: DIET's
    # inference took about a fifth less CPU without them (docs/benchmarks.md). Read when
    # TensorFlow loads, so before Rasa is imported; an explicit setting wins.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        places = turn_gate.places_from_env()
        remembered = parse_cache.size_from_env()
    except ValueError as exc:
        sys.exit(f"rasa_server: {exc}")
    redaction.install()
    log_format.install_from_env()
    install()
    event_types.install()
    http_pool.install()
    model_load.install()
    policy_shortcut.install()
    past_states.install()
    rule_lookup.install()
    slot_copy.install()
    turn_gate.install(places)
    parse_cache.install(remembered)
    hide_payloads()
    serve_metrics()
    sys.argv = token_from_env(sys.argv)
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
