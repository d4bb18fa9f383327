"""Answering a call the way Twilio starts one: the signed voice webhook and its TwiML.

Twilio POSTs ``/twilio/voice`` as a form, signed with ``X-Twilio-Signature`` over the URL it
used (what the bridge knows as ``settings.public_base_url``) and the form fields. The bridge
answers ``<Response><Connect><Stream url="wss://…/twilio/stream"><Parameter …/></Stream>
</Connect></Response>``; Twilio then opens that websocket and hands the parameters back in
``start.customParameters``. For local dialling the websocket goes to the stream URL's path on
the host the caller was pointed at (``--url``), whatever public host the TwiML names.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - parses TwiML from the bridge under test
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from twilio.request_validator import RequestValidator

from paybot.settings import Settings

VOICE_PATH = "/twilio/voice"
API_VERSION = "2010-04-01"
USER_AGENT = "TwilioProxy/1.1 (paybot call)"
_BODY_SNIPPET = 300


class WebhookError(RuntimeError):
    """The bridge did not answer the voice webhook with a usable ``<Connect><Stream>``."""


@dataclass(frozen=True)
class StreamTarget:
    """Where to open the Media Stream, and the ``<Parameter>`` values to hand back."""

    url: str
    twiml_url: str
    parameters: dict[str, str] = field(default_factory=dict, repr=False)


def new_sid(prefix: str) -> str:
    """A Twilio-shaped id: two letters and 32 hex digits (``CA…``, ``MZ…``, ``AC…``)."""
    return prefix + uuid.uuid4().hex


def voice_params(*, call_sid: str, account_sid: str, caller: str, called: str) -> dict[str, str]:
    """The form fields of an inbound call's first webhook, as Twilio sends them."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": called,
        "Caller": caller,
        "Direction": "inbound",
        "From": caller,
        "To": called,
    }


def signature(
    settings: Settings, path: str, params: dict[str, str], base_url: str | None = None
) -> str:
    """``X-Twilio-Signature`` for a POST of ``params`` to ``path``.

    Twilio signs the URL it requests: the public URL when one is configured (the bridge then
    checks against it), else the URL actually dialled (``base_url``).
    """
    validator = RequestValidator(settings.twilio_signing_key)
    signed_base = settings.public_url or base_url or settings.public_base_url
    return validator.compute_signature(signed_base.rstrip("/") + path, params)


async def post_voice_webhook(
    session: aiohttp.ClientSession, base_url: str, settings: Settings, params: dict[str, str]
) -> StreamTarget:
    """POST the signed voice webhook to ``base_url`` and return the stream to open.

    Raises:
        WebhookError: The bridge is not reachable, refused the call, or answered without a
            ``<Connect><Stream>``.
    """
    headers = {
        "X-Twilio-Signature": signature(settings, VOICE_PATH, params, base_url),
        "User-Agent": USER_AGENT,
    }
    url = base_url.rstrip("/") + VOICE_PATH
    try:
        async with session.post(url, data=params, headers=headers) as response:
            body = await response.text()
            status = response.status
    except aiohttp.ClientConnectionError as exc:
        raise WebhookError(f"the bridge is not answering at {base_url} ({exc})") from None
    if status != 200:
        raise WebhookError(f"voice webhook answered HTTP {status}: {body[:_BODY_SNIPPET]}")
    stream_url, parameters = parse_connect_stream(body)
    local = local_stream_url(stream_url, base_url, urlsplit(settings.public_base_url).path)
    return StreamTarget(local, stream_url, parameters)


def parse_connect_stream(twiml: str) -> tuple[str, dict[str, str]]:
    """The ``<Connect><Stream url>`` and its ``<Parameter>`` name/value pairs.

    Raises:
        WebhookError: Not TwiML, or no ``<Connect><Stream url=…>`` in it.
    """
    try:
        root = ET.fromstring(twiml)  # noqa: S314 - our own bridge's answer, in a test tool
    except ET.ParseError as exc:
        snippet = twiml[:_BODY_SNIPPET]
        raise WebhookError(f"voice webhook answer is not XML ({exc}): {snippet}") from None
    if root.tag != "Response":
        raise WebhookError(f"TwiML root is <{root.tag}>, not <Response>")
    stream = root.find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        verbs = ", ".join(f"<{child.tag}>" for child in root) or "nothing"
        raise WebhookError(f"TwiML has no <Connect><Stream url=…> (it has {verbs})")
    parameters = {
        p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter") if p.get("name")
    }
    return stream.get("url", ""), parameters


def local_stream_url(stream_url: str, base_url: str, public_prefix: str = "") -> str:
    """``stream_url`` moved to the scheme, host and port of ``base_url`` (``http`` → ``ws``).

    A path prefix of the public URL (a proxy's ``/paybot``) is swapped for ``base_url``'s.
    """
    stream, base = urlsplit(stream_url), urlsplit(base_url)
    scheme = {"https": "wss", "wss": "wss"}.get(base.scheme, "ws")
    path, prefix = stream.path or "/", public_prefix.rstrip("/")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    return urlunsplit((scheme, base.netloc, base.path.rstrip("/") + path, stream.query, ""))
