"""``bot/responses.yml``: what the actions say. Every response in it is used by an action, every
response an action names is in it, and each is filled and chosen the way Rasa's domain is."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.questions import AskAction
from actions.responses import (
    ResponsesError,
    load_responses,
    parse_responses,
    render,
    say,
)

ACTIONS = Path(__file__).resolve().parents[1] / "actions"


def _names(node: ast.AST) -> set[str]:
    """The response names a ``say`` argument or a ``"response":`` value can be."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _names(node.body) | _names(node.orelse)
    return set()  # a variable: AskAction's own (checked through the question classes below)


def named_by_actions() -> set[str]:
    """Every response name the actions can say, read from their source."""
    names: set[str] = set()
    for path in ACTIONS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "say":
                names |= _names(node.args[2])
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "render":
                names |= _names(node.args[1])
            elif isinstance(node, ast.Assign):  # values["response"] = "..."
                for target in node.targets:
                    key = getattr(target, "slice", None)
                    if isinstance(key, ast.Constant) and key.value == "response":
                        names |= _names(node.value)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "response":
                        names |= _names(value)
    import actions.questions  # noqa: F401 - registers the question classes

    def subclasses(cls: type) -> list[type]:
        return [s for c in cls.__subclasses__() for s in (c, *subclasses(c))]

    names |= {f"ask_{cls.slot}" for cls in subclasses(AskAction)}
    return names


def test_every_response_is_used_and_every_used_one_exists():
    defined = set(load_responses())
    used = named_by_actions()
    assert used - defined == set(), "actions name responses missing from bot/responses.yml"
    assert defined - used == set(), "responses in bot/responses.yml that no action says"


def test_the_domain_keeps_only_what_rules_say():
    import yaml

    domain = yaml.safe_load((ACTIONS.parent / "bot" / "domain.yml").read_text())
    assert set(domain["responses"]) == {
        "utter_help",
        "utter_iamabot",
        "utter_youre_welcome",
        "utter_card_number_not_here",
    }
    assert not set(domain["responses"]) & {f"utter_{name}" for name in load_responses()}


def tracker(**slots) -> Tracker:
    return Tracker("chat:t", slots, {}, [], False, None, {}, "action_listen")


def test_conditions_pick_the_channel_variant_and_placeholders_are_filled():
    voice = render(
        tracker(channel="voice"),
        "payment_succeeded",
        total="$10.00",
        confirmation="123-456-789",
        confirmation_spoken="1 2 3, 4 5 6, 7 8 9",
    )
    text = render(
        tracker(channel="sms"),
        "payment_succeeded",
        total="$10.00",
        confirmation="123-456-789",
        confirmation_spoken="1 2 3, 4 5 6, 7 8 9",
    )
    assert "1 2 3, 4 5 6, 7 8 9" in voice and "123-456-789" in text
    # A placeholder the action does not pass comes from the slot of that name.
    assert "$5.00" in render(tracker(amount="$5.00", date="May 1st"), "scheduled_cancelled")


def test_say_sends_the_text():
    d = CollectingDispatcher()
    say(d, tracker(channel="chat"), "welcome")
    assert d.messages == [
        {
            "text": "Welcome to the payment line.",
            "buttons": [],
            "elements": [],
            "custom": {},
            "template": None,
            "response": None,
            "image": None,
            "attachment": None,
        }
    ]


def test_an_unfillable_placeholder_is_said_as_written_and_logged(caplog):
    assert "{balance}" in render(tracker(), "balance")
    assert "response balance: cannot fill its placeholders" in caplog.text


@pytest.mark.parametrize(
    "document",
    [
        "nothing: here",
        "responses: {a: []}",
        "responses: {a: [{condition: [{type: slot, name: c, value: v}]}]}",
        "responses: {a: [{text: hi, condition: [{type: active_loop, name: f}]}]}",
    ],
)
def test_malformed_responses_are_refused(document):
    with pytest.raises(ResponsesError):
        parse_responses(document)


def test_unknown_response():
    with pytest.raises(ResponsesError):
        render(tracker(), "no_such_response")
