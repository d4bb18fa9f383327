"""How many times in a row the bot asked each question of a call, from what it said.

A call's questions are read off Rasa's tracker: before each caller turn (and at the end of the
call), the bot's last message is the question the caller was left with. A question is known by
its response in ``bot/responses.yml`` or ``bot/domain.yml`` (so "Hello James, ... $321.72" and
the balance variant of that question are one question), else by its text. A read-back of what
was heard ("I heard 9 4 1 0 7. Is that right?") is a question of its own but does not break
the run of the question it reads back, as in the dialog's own count (actions/recovery.py):
"ZIP? / I heard ... / ZIP? / I heard ... / ZIP?" is the ZIP asked three times in a row.

Every voice end-to-end test checks its calls with :func:`assert_no_question_over` (the
``questions_checked`` fixture of tests/test_voice_calls.py).
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable
from pathlib import Path

import requests

from actions.responses import parse_responses
from tests.stack import RASA_TOKEN

BOT = Path(__file__).resolve().parents[1] / "bot"
MAX_IN_A_ROW = 3
READ_BACK = "read_back"


@functools.lru_cache(maxsize=1)
def _templates() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(response name, a pattern matching its filled text) for every wording of every
    response; the longest literal text first, so that the most specific wording wins."""
    found = []
    for name in ("responses.yml", "domain.yml"):
        text = (BOT / name).read_text(encoding="utf-8")
        if name == "domain.yml":  # only its responses: section
            text = "responses:" + text.split("\nresponses:", 1)[1]
        for response, variants in parse_responses(text).items():
            for variant in variants:
                parts = string.Formatter().parse(variant.text)
                regex = "".join(re.escape(lit) + (".+?" if field else "")
                                for lit, field, _, _ in parts)
                found.append((len(regex), response.removeprefix("utter_"), re.compile(regex)))
    found.sort(key=lambda item: -item[0])
    return tuple((response, pattern) for _, response, pattern in found)


def question_of(text: str) -> str:
    """The response a bot message was said from, else the message itself."""
    for response, pattern in _templates():
        if pattern.fullmatch(text):
            return response
    return text


def questions(events: Iterable[dict]) -> list[tuple[str, str]]:
    """(question, its text and what the bot heard in answer) the caller was left with before
    each of their turns, and at the end of the call, in order, from the tracker's events."""
    asked: list[tuple[str, str]] = []
    last: str | None = None
    for event in events:
        if event.get("event") == "bot" and event.get("text"):
            last = event["text"]
        elif event.get("event") == "user" and last is not None:
            asked.append((question_of(last), f"{last} -> heard {event.get('text')!r}"))
            last = None
    if last is not None:
        asked.append((question_of(last), last))
    return asked


def longest_runs(asked: list[tuple[str, str]]) -> dict[str, int]:
    """For each question, the most times it was asked in a row (read-backs in between do not
    break a run; a read-back's own run is broken by anything else)."""
    best: dict[str, int] = {}
    for sequence in ([q for q, _ in asked if q != READ_BACK], [q for q, _ in asked]):
        previous, count = None, 0
        for question in sequence:
            count = count + 1 if question == previous else 1
            previous = question
            best[question] = max(best.get(question, 0), count)
    return best


def tracker_events(rasa_url: str, conversation: str) -> list[dict]:
    response = requests.get(f"{rasa_url}/conversations/{conversation}/tracker",
                            params={"token": RASA_TOKEN}, timeout=60)
    response.raise_for_status()
    return response.json()["events"]


def assert_no_question_over(rasa_url: str, call_sid: str, limit: int = MAX_IN_A_ROW) -> None:
    """Fail, with the call's questions in order, if any was asked more than ``limit`` times
    in a row."""
    asked = questions(tracker_events(rasa_url, f"call:{call_sid}"))
    over = {q: n for q, n in longest_runs(asked).items() if n > limit}
    listing = "\n".join(f"  {q}: {text}" for q, text in asked)
    assert not over, f"call {call_sid} asked {over} in a row (at most {limit}):\n{listing}"
