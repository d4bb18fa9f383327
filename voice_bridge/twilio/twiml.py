"""The TwiML that hands a caller to a person, by the kind of ``PAYBOT_TRANSFER_TO``.

* ``+E.164``: ``<Dial answerOnBridge="true"><Number>``. The phone network carries no data, so
  the reason and the context are only logged (the context by key name).
* ``sip:user@host``: ``<Dial answerOnBridge="true"><Sip>`` with SIP URI headers
  ``X-Paybot-Reason``, ``X-Paybot-Call-Sid`` and one ``X-Paybot-<Key>`` per scalar context
  value (``account_number`` becomes ``X-Paybot-Account-Number``), as many as fit in Twilio's
  1024-character limit for the headers part; dropped ones are logged by name. A PBX or agent
  desktop can show them when the call rings.
* ``queue:<name>``: ``<Enqueue>``. (``<Dial><Queue>`` is the other side: what an *agent's* call
  uses to take the caller at the front of the queue.) A plain queue carries no data either.

``answerOnBridge`` keeps the caller hearing ringing, not silence, until someone answers.
Context values are what the bot knows about the conversation; by contract they never hold
card data.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from twilio.twiml.voice_response import Dial, VoiceResponse

from paybot.phone import is_e164

log = logging.getLogger(__name__)
SIP_HEADERS_MAX = 1023  # Twilio warning 21227: the headers part must be under 1024 characters
QUEUE_NAME_MAX = 64


class InvalidTransferTarget(ValueError):
    """A transfer target that is not ``+E.164``, ``sip:user@host`` or ``queue:<name>``."""


def target_kind(target: str) -> str:
    """The kind of ``target``: "number", "sip" or "queue".

    Raises:
        InvalidTransferTarget: None of those.
    """
    if target.startswith("queue:") and 0 < len(target) - 6 <= QUEUE_NAME_MAX:
        return "queue"
    if target.startswith("sip:") and "@" in target:
        return "sip"
    if is_e164(target):
        return "number"
    raise InvalidTransferTarget("transfer target must be +E.164, sip:user@host or queue:<name>")


def transfer_twiml(target: str, *, call_sid: str, reason: str, context: dict[str, Any]) -> str:
    """The TwiML that hands the caller over (see the module docstring for what each carries)."""
    kind = target_kind(target)
    response = VoiceResponse()
    if kind == "queue":
        response.enqueue(target.removeprefix("queue:"))
        return str(response)
    dial = Dial(answer_on_bridge=True)
    if kind == "sip":
        dial.sip(sip_uri_with_headers(target, _sip_headers(call_sid, reason, context)))
    else:
        dial.number(target)
    response.append(dial)
    return str(response)


def sip_uri_with_headers(uri: str, headers: list[tuple[str, str]]) -> str:
    """``uri`` with ``headers`` as URI headers (``?X-A=1&X-B=2``), kept under Twilio's limit."""
    encoded: list[str] = []
    used = 0
    for name, value in headers:
        item = f"{name}={quote(value, safe='')}"
        if used + len(item) + 1 > SIP_HEADERS_MAX:
            log.warning("sip header %s dropped: over Twilio's size limit", name)
            continue
        encoded.append(item)
        used += len(item) + 1
    if not encoded:
        return uri
    return uri + ("&" if "?" in uri else "?") + "&".join(encoded)


def _sip_headers(call_sid: str, reason: str, context: dict[str, Any]) -> list[tuple[str, str]]:
    headers = [("X-Paybot-Reason", reason or "unspecified"), ("X-Paybot-Call-Sid", call_sid)]
    for key in sorted(context):
        value = context[key]
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if isinstance(value, (str, int, Decimal)) and str(value):
            name = "-".join(part.capitalize() for part in str(key).replace("-", "_").split("_"))
            if name.replace("-", "").isalnum():
                headers.append((f"X-Paybot-{name}", str(value)[:128]))
    return headers
