"""Rasa's REST channel, hardened: user text can never be taken as an intent.

Rasa parses a message starting with ``/`` ("/affirm", '/inform{"amount": 5}') as an intent
with entities, skipping NLU. Users must not be able to do that: this channel strips every leading
slash, space and ``EXTERNAL:`` (the text Rasa records for system events) from user text, until
none is left (Rasa strips whitespace and then looks for an ASCII ``/`` only), and keeps only
the metadata keys paybot uses, validated (:mod:`paybot.dialog.metadata`): ``channel``, ``from``
and how a call's turn was heard only when the bridge vouched for them
(:mod:`paybot.dialog.vouch`), else the message is a chat with no caller number. A message
holding a card number (:mod:`paybot.parsing.card_numbers`) reaches Rasa as the
``card_number_shared`` intent, never as text: a rule tells the customer we do not take card
numbers that way. System events (capture results, silence, call start) reach Rasa through its
token-protected HTTP API instead.

Configured in ``bot/credentials.yml``; it keeps the REST channel's URL,
``POST /webhooks/rest/webhook``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from rasa.core.channels.rest import RestInput
from sanic.request import Request

from paybot.dialog.metadata import sanitize_metadata
from paybot.dialog.vouch import vouch_key, vouched
from paybot.parsing.card_numbers import CARD_NUMBER_REMOVED, contains_card_number
from paybot.settings import load_settings

_SYSTEM_PREFIX = re.compile(r"^external\s*:", re.IGNORECASE)  # Rasa's text for system events
MAX_TEXT = 2000
CARD_NUMBER_SHARED = "/card_number_shared"  # the intent a message with a card number becomes


def sanitize_text(text: Any) -> str | None:
    """User text as Rasa may see it: no leading slashes, no control characters, bounded."""
    if not isinstance(text, str):
        return None
    cleaned = "".join(ch for ch in text if ch.isprintable() or ch in "\n\t")[:MAX_TEXT]
    previous = None
    while cleaned != previous:  # "/ /affirm", "EXTERNAL: //affirm": until nothing changes
        previous = cleaned
        cleaned = _SYSTEM_PREFIX.sub("", cleaned.strip().lstrip("/").strip(), count=1)
    return cleaned


def screen_card_numbers(text: str | None) -> str | None:
    """A message holding a card number (or the bridge's mark for one) becomes the
    ``card_number_shared`` intent: Rasa never sees the digits, and a rule answers it."""
    if text and (CARD_NUMBER_REMOVED in text or contains_card_number(text)):
        return CARD_NUMBER_SHARED
    return text


@functools.cache
def _vouch_key() -> bytes:
    return vouch_key(load_settings().rasa_token.get_secret_value())


class SafeRestInput(RestInput):
    """The REST channel, with user text and metadata sanitised."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    def _extract_message(self, req: Request) -> str | None:
        return screen_card_numbers(sanitize_text(req.json.get("message")))

    def get_metadata(self, request: Request) -> dict[str, str]:
        body = request.json
        return sanitize_metadata(vouched(_vouch_key(), body.get("sender"), body.get("metadata")))
