"""What the actions say: the responses in ``bot/responses.yml``, picked and filled in.

The domain keeps only the responses that rules say by themselves (Rasa's validator expects
every domain response to appear in a story or rule). Everything an action says, filled with
values only it knows (balances, dates, confirmation numbers), is in ``bot/responses.yml``, in
the domain's format, where conversation designers edit it.

Variants are chosen as Rasa chooses them: those whose ``condition`` holds (each listed slot has
that value, on the tracker the action was given) win over unconditional ones; among equals one
is picked at random. ``{placeholders}`` are filled from the action's values, then from slots.

The file is read once per process; :func:`actions.services.services` loads it in its worker
thread, so actions do not read it on the event loop.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from pathlib import Path
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from paybot.dialog.payloads import Prepare, to_dict
from paybot.dialog.responses import (  # noqa: F401 - ResponsesError: re-exported
    Responses,
    ResponsesError,
    candidates,
    parse_responses,
)

log = logging.getLogger(__name__)
RESPONSES_FILE = Path(__file__).resolve().parents[1] / "bot" / "responses.yml"
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")


@functools.lru_cache(maxsize=1)
def load_responses(path: Path = RESPONSES_FILE) -> Responses:
    """The responses in ``path`` (read once; blocking: call it from a thread)."""
    return parse_responses(path.read_text(encoding="utf-8"))


def render(tracker: Tracker, name: str, **values: Any) -> str:
    """The text of response ``name`` for this conversation, with its placeholders filled."""
    variants = load_responses().get(name)
    if variants is None:
        raise ResponsesError(f"no response {name!r} in {RESPONSES_FILE.name}")
    slots = dict(tracker.slots)
    variant = random.choice(candidates(variants, slots))
    try:
        return variant.text.format_map({**slots, **values})
    except (KeyError, IndexError, ValueError) as exc:
        # As Rasa does: say the text unfilled rather than nothing; the tests catch this.
        log.warning("response %s: cannot fill its placeholders (%s)", name, type(exc).__name__)
        return variant.text


class _Unfilled(dict):
    """Format values that leave unknown placeholders as they are (``{confirmation}``)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render_known(tracker: Tracker, name: str, **values: Any) -> str:
    """Response ``name`` with only the sentences whose placeholders ``values`` (or slots)
    fill: "Thank you. Your payment of $5.00 was successful." without the confirmation number
    that does not exist yet. For speech the bridge synthesises ahead (:func:`prepare`)."""
    variants = load_responses().get(name)
    if variants is None:
        raise ResponsesError(f"no response {name!r} in {RESPONSES_FILE.name}")
    slots = dict(tracker.slots)
    chosen = candidates(variants, slots)
    if len(chosen) != 1:  # several wordings: which one will be said is not known
        return ""
    try:
        text = chosen[0].text.format_map(_Unfilled({**slots, **values}))
    except (IndexError, ValueError):
        return ""
    return " ".join(s for s in _SENTENCE_RE.split(text) if s and "{" not in s)


def prepare(dispatcher: CollectingDispatcher, tracker: Tracker, *texts: str) -> None:
    """Tell the voice bridge what the bot will probably say next, so it can synthesise it
    while this reply plays (:class:`paybot.dialog.payloads.Prepare`). Voice only."""
    wanted = [t for t in texts if t]
    if wanted and tracker.get_slot("channel") == "voice":
        dispatcher.utter_message(json_message=to_dict(Prepare(texts=wanted)))


def say(dispatcher: CollectingDispatcher, tracker: Tracker, name: str, **values: Any) -> None:
    """Send response ``name`` (filled with ``values``) as the bot's next message."""
    dispatcher.utter_message(text=render(tracker, name, **values))
