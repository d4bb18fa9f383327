"""The browser softphone at ``/phone``: call the bot from a web page, no Twilio number needed.

The page (``static/phone.js``) speaks Twilio's Media Streams protocol to ``/twilio/stream``
itself, so the call takes the same path as a phone call: the same admission checks, the same
handler. What Twilio gets from the voice webhook, the page gets here:

* ``GET /phone``: the page, carrying a signed page token good for :data:`PAGE_TTL_S`;
* ``POST /phone/call``: JSON ``{"caller": "+1...", "page": "<page token>"}``; the answer is
  ``{"call_sid", "token", "caller", "stream_path"}``: a ``calls`` row answered once and a
  per-call stream token (:mod:`voice_bridge.twilio.stream_tokens`) marked as a softphone
  call's, made exactly as ``/twilio/voice`` makes them, so a token opens one stream once;
* ``GET /phone/static/{name}``: the script, the microphone worklet, the stylesheet.

None of these routes exist unless ``Settings.softphone_enabled`` (``PAYBOT_SOFTPHONE``; unset:
on in dev and test, off in prod): then ``/phone`` is a 404 like any unknown path, and the
stream route admits only tokens the voice webhook issued. The POST is CSRF-safe without a
cookie: it must be ``application/json`` (a cross-site form cannot send that without a CORS
preflight, which the bridge never answers), its ``Origin`` and ``Sec-Fetch-Site``, when the
browser sends them, must be this bridge, and it must carry the page's token. The caller number
is the user's choice (E.164, or empty for a withheld number): the bot treats caller ID as a
hint and verifies the caller as on any call (docs/softphone.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import SQLAlchemyError

from paybot.db.models import CallStatus
from paybot.phone import InvalidPhoneNumber, to_e164
from paybot.seed import DEMO_ACCOUNTS
from paybot.settings import Settings
from voice_bridge.console.render import SECURITY_HEADERS as CONSOLE_HEADERS
from voice_bridge.drain import DRAIN
from voice_bridge.jobs.call_records import mark_answered, record_call_started
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.twilio.stream_tokens import (
    InvalidCallToken,
    call_token_secret,
    issue_call_token,
    open_claims,
    sign_claims,
)
from voice_bridge.twilio.webhooks import STREAM_PATH

log = logging.getLogger(__name__)
PREFIX = "/phone"
HERE = Path(__file__).resolve().parent
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}
PAGE_TTL_S = 3600  # a page left open this long must be reloaded to call
DIRECTION = "softphone"  # the calls row's direction
_PAGE_LABEL = b"paybot softphone page v1"
_PAGE_SID = "softphone-page"
# The console's headers, with the microphone allowed to this origin (and only to it).
SECURITY_HEADERS = {
    **CONSOLE_HEADERS,
    "Permissions-Policy": "camera=(), microphone=(self), geolocation=()",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_softphone(app: web.Application) -> None:
    """Add ``/phone`` and its routes, if the settings enable the softphone."""
    if not app[SETTINGS].softphone_enabled:
        return
    app.router.add_get(PREFIX, _headed(phone_page))
    app.router.add_post(PREFIX + "/call", _headed(place_call))
    app.router.add_get(PREFIX + "/static/{name}", _headed(static_file))
    log.info("the browser softphone is served at %s", PREFIX)


async def phone_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    demo = DEMO_ACCOUNTS if settings.seed_demo_data else ()
    template = _environment().get_template("phone.html")
    html = template.render(
        page_token=issue_page_token(settings),
        caller=demo[0].phone if demo else "",
        demo=sorted({(a.phone, a.name) for a in demo}),
    )
    return web.Response(text=html, content_type="text/html")


async def place_call(request: web.Request) -> web.Response:
    """Mint a call for the page: its row, answered once, and its stream token."""
    settings = request.app[SETTINGS]
    _same_origin(request, settings)
    body = await _json_body(request)
    try:
        open_claims(_page_secret(settings), str(body.get("page", "")), call_sid=_PAGE_SID)
    except InvalidCallToken as exc:
        reason = f"the page is stale ({exc.reason}): reload it"
        raise _refusal(web.HTTPForbidden, reason) from None
    caller = caller_number(body.get("caller", ""))
    drain = request.app.get(DRAIN)
    if drain is not None and drain.draining:
        raise _refusal(web.HTTPServiceUnavailable, "the bridge is draining: try again shortly")
    call_sid = "CA" + secrets.token_hex(16)
    engine = request.app[DB_ENGINE]
    try:
        await asyncio.to_thread(
            record_call_started, engine, call_sid=call_sid, caller=caller or None,
            called=None, direction=DIRECTION, status=CallStatus.IN_PROGRESS,
        )  # fmt: skip
        await asyncio.to_thread(mark_answered, engine, call_sid=call_sid)
    except SQLAlchemyError:
        log.exception("softphone call %s: could not record it", call_sid)
        raise _refusal(web.HTTPServiceUnavailable, "could not record the call") from None
    token = issue_call_token(
        call_token_secret(settings), call_sid=call_sid, caller=caller,
        ttl_s=settings.call_token_ttl_s, softphone=True,
    )  # fmt: skip
    log.info("softphone call %s placed", call_sid)
    answer = {"call_sid": call_sid, "token": token, "caller": caller, "stream_path": STREAM_PATH}
    return web.json_response(answer)


def caller_number(raw: object) -> str:
    """The caller's number in E.164, "" for none (a withheld number).

    Raises:
        web.HTTPBadRequest: Not a string, or not a phone number in E.164 form.
    """
    if not isinstance(raw, str):
        raise _refusal(web.HTTPBadRequest, "caller must be a string")
    text = raw.strip()
    if not text:
        return ""
    try:
        number = to_e164(text)
    except InvalidPhoneNumber:
        number = ""
    if not text.startswith("+") or number != text:
        raise _refusal(web.HTTPBadRequest, "caller must be a phone number in E.164 form")
    return number


def issue_page_token(settings: Settings, now: float | None = None) -> str:
    """The token a page must send back to place a call."""
    issued = time.time() if now is None else now
    claims = {"sid": _PAGE_SID, "exp": math.ceil(issued + PAGE_TTL_S), "n": secrets.token_hex(8)}
    return sign_claims(_page_secret(settings), claims)


async def static_file(request: web.Request) -> web.Response:
    """``/phone/static/<name>``: the files shipped in ``static/``, nothing else."""
    name = request.match_info["name"]
    path = HERE / "static" / name
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    response = web.Response(body=_read(path), content_type=kind)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _same_origin(request: web.Request, settings: Settings) -> None:
    """Refuse a POST another site's page made (the browser says so, when it says anything)."""
    ours = {request.host, urlsplit(settings.public_base_url).netloc}
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc not in ours:
        raise _refusal(web.HTTPForbidden, "not from this site")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise _refusal(web.HTTPForbidden, "not from this site")


async def _json_body(request: web.Request) -> dict[str, object]:
    if request.content_type != "application/json":
        raise _refusal(web.HTTPUnsupportedMediaType, "send application/json")
    try:
        body = json.loads(await request.text())
    except ValueError:
        raise _refusal(web.HTTPBadRequest, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise _refusal(web.HTTPBadRequest, "the body is not a JSON object")
    return body


def _refusal(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json")


def _page_secret(settings: Settings) -> str:
    return call_token_secret(settings, _PAGE_LABEL)


def _headed(handler: Handler) -> Handler:
    """``handler`` whose every answer, errors included, carries the security headers."""

    @functools.wraps(handler)
    async def headed(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k not in exc.headers})
            raise
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return headed


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True)
    )


@functools.lru_cache(maxsize=8)
def _read(path: Path) -> bytes:
    return path.read_bytes()  # a few kB shipped in the package, read once
