"""Twilio webhook signatures (``X-Twilio-Signature``): checked on every webhook we serve.

Twilio signs the full URL it requested plus every POST parameter with the account's auth
token (HMAC-SHA1, see ``twilio.request_validator``). The URL must be rebuilt exactly as Twilio
saw it: behind ngrok or a reverse proxy the bridge itself is reached as ``http://127.0.0.1``,
so the public base comes from ``PAYBOT_PUBLIC_URL`` or, with ``PAYBOT_TRUST_PROXY``, from the
proxy's ``X-Forwarded-Proto``/``X-Forwarded-Host`` headers: the entry our outermost proxy
added, counted from the right (``PAYBOT_TRUSTED_PROXIES`` proxies in a row, default one), never
what the client sent further left. Only enable that behind proxies that add (or overwrite)
those headers: otherwise a client chooses the URL that gets checked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.request_validator import RequestValidator

from paybot.settings import Settings

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"
_WS_SCHEMES = {"https": "wss", "http": "ws"}


def public_url(
    request: web.Request, settings: Settings, *, path: str | None = None, websocket: bool = False
) -> str:
    """The URL Twilio used (or will use) for ``path`` (default: this request's path and query).

    ``websocket=True`` gives the ``ws(s)://`` form, for ``<Stream url=...>``.
    """
    base = urlsplit(settings.public_base_url)
    scheme, host = base.scheme, base.netloc
    if settings.trust_proxy:
        # Proxies that pass Host through only add X-Forwarded-Proto; without a configured
        # public URL, the Host they passed is the public one.
        hops = settings.trusted_proxies
        scheme = forwarded(request.headers.getall("X-Forwarded-Proto", []), hops) or scheme
        fallback = host if settings.public_url else request.host
        host = forwarded(request.headers.getall("X-Forwarded-Host", []), hops) or fallback
    if websocket:
        scheme = _WS_SCHEMES.get(scheme, scheme)
    prefix = base.path.rstrip("/")
    return f"{scheme}://{host}{prefix}{request.raw_path if path is None else path}"


async def verified_form(request: web.Request, settings: Settings) -> dict[str, str]:
    """The POSTed form of a genuine Twilio webhook (first value of each field).

    Raises:
        web.HTTPForbidden: The signature is missing or does not match. The log line names the
            path and the reason, never the parameters (they hold phone numbers and texts).
    """
    form = await _form(request)
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        _reject(request, "missing signature")
    url = public_url(request, settings)
    try:
        valid = RequestValidator(settings.twilio_signing_key).validate(url, form, signature)
    except UnicodeEncodeError:  # lone surrogates from undecodable bytes: not Twilio's
        valid = False
    if not valid:
        _reject(request, "signature mismatch")
    fields: dict[str, str] = {}
    for key, value in form.items():
        if isinstance(value, str):
            fields.setdefault(key, value)
    return fields


def sign(url: str, params: Mapping[str, str], key: str) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for ``params`` POSTed to ``url``.

    For the caller simulator and tests, which play Twilio's part.
    """
    return RequestValidator(key).compute_signature(url, dict(params))


async def _form(request: web.Request) -> MultiDictProxy[str]:
    """The URL-encoded form Twilio POSTs (UTF-8). Anything else is refused before the body
    is read: multipart bodies (files) with 415, undecodable ones with 400; a body over
    aiohttp's ``client_max_size`` gets its 413."""
    if request.content_type != FORM_TYPE:
        raise await _unread(request, f"webhooks must be {FORM_TYPE} (as Twilio sends them)")
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise await _unread(request, "webhooks must be UTF-8")
    body = await request.read()
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise web.HTTPBadRequest(text="the form is not valid UTF-8\n") from None
    return MultiDictProxy(MultiDict(pairs))


async def _unread(request: web.Request, reason: str) -> web.HTTPUnsupportedMediaType:
    """A 415. The body is never parsed: up to ``client_max_size`` of it is drained and
    dropped, so a client still sending gets the answer rather than a reset connection; a
    longer one closes the connection."""
    log.warning("refused webhook %s %s: %s", request.method, request.path, reason)
    refusal = web.HTTPUnsupportedMediaType(text=f"{reason}\n")
    drained = 0
    while chunk := await request.content.readany():
        drained += len(chunk)
        if drained > request.client_max_size:
            refusal.force_close()
            break
    return refusal


def _reject(request: web.Request, reason: str) -> None:
    log.warning("rejected webhook %s %s: %s", request.method, request.path, reason)
    raise web.HTTPForbidden(text=f"forbidden: {reason}\n")


def forwarded(headers: list[str], hops: int) -> str:
    """The entry our outermost proxy added to a forwarding header: the ``hops``-th from the
    right (each proxy appends what it saw; anything further left came from the client and
    may be forged). "" when there are fewer entries than proxies."""
    entries = [entry.strip() for header in headers for entry in header.split(",")]
    return entries[-hops] if len(entries) >= hops else ""
