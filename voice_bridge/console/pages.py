"""The console's pages: sign-in and sign-out, live calls (with their event stream), payment
search and detail, refunds (admins), the reports placeholder (supervisors) and the merchant
settings (admins, read only). Each route names the least role it needs."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import date, timedelta

from aiohttp import web

from paybot.console.merchant import merchant_view
from paybot.console.search import PaymentQuery, payment_detail, search_payments
from paybot.console.sessions import end_session, sign, start_session
from paybot.console.signin import Lockout, Verdict, sign_in
from paybot.db.models import ConsoleRole
from paybot.gateway.factory import make_gateway
from paybot.payments.refunds import RefundRefused, parse_amount, refund_payment
from voice_bridge.console.guard import (
    ACTIVE,
    LOGIN_COOKIE,
    LOGIN_URL,
    SESSION_COOKIE,
    Handler,
    client_address,
    current_session,
    is_https,
    login_token_matches,
    new_login_token,
    requires,
    session_token,
    set_cookie,
    with_security_headers,
)
from voice_bridge.console.render import add_security_headers, page, static_file
from voice_bridge.keys import DB_ENGINE, LIVE_CALLS, SETTINGS

PREFIX = "/console"
HOME = "/console/calls"
KEEPALIVE_S = 15.0
LOGIN_TOKEN_MAX_AGE_S = 600
SIGN_IN_REFUSED = "Wrong name or password."
SIGN_IN_LOCKED = "Too many failed sign-ins. Try again later."


def add_console(app: web.Application) -> None:
    """Add the console's routes under ``/console`` to ``app``, each wrapped in the security
    headers (not a sub-application: the pinned aiohttp cannot match a prefixed sub-app's
    requests with today's yarl)."""
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "", home),
        ("GET", "/", home),
        ("GET", "/login", login_form),
        ("POST", "/login", login),
        ("POST", "/logout", logout),
        ("GET", "/calls", calls),
        ("GET", "/calls/events", call_events),
        ("GET", "/payments", payments),
        ("GET", "/payments/{payment_id:\\d+}", payment),
        ("POST", "/payments/{payment_id:\\d+}/refund", refund),
        ("GET", "/reports", reports),
        ("GET", "/settings", merchant_settings),
        ("GET", "/static/{name}", static_file),
        ("*", "/{anything:.*}", not_found),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, PREFIX + path, with_security_headers(handler))


async def not_found(request: web.Request) -> web.StreamResponse:
    return page("error.html", status=404, title="Not found", message="There is no such page.",
                me=None)


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(HOME)


# Signing in and out -------------------------------------------------------------------------
async def login_form(request: web.Request) -> web.StreamResponse:
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(HOME)
    return _login_page(request, None, 200)


def _login_page(request: web.Request, message: str | None, status: int) -> web.Response:
    token = new_login_token()
    response = page("login.html", status=status, title="Sign in", message=message,
                    login_token=token, me=None)
    set_cookie(request, response, LOGIN_COOKIE, token, max_age=LOGIN_TOKEN_MAX_AGE_S)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    sent = form.get("csrf")
    if not login_token_matches(request, sent if isinstance(sent, str) else None):
        return _login_page(request, "The sign-in form was stale: try again.", 403)
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    settings = request.config_dict[SETTINGS]
    engine = request.config_dict[DB_ENGINE]
    lockout = Lockout(settings.console_lockout_failures,
                      timedelta(minutes=settings.console_lockout_minutes))
    client = client_address(request)
    result = await asyncio.to_thread(sign_in, engine, name, password, client, lockout)
    if result.verdict is Verdict.LOCKED:
        return _login_page(request, SIGN_IN_LOCKED, 429)
    if result.verdict is Verdict.REFUSED or result.user is None or result.user.id is None:
        return _login_page(request, SIGN_IN_REFUSED, 401)
    old = session_token(request)
    if old is not None:
        await asyncio.to_thread(end_session, engine, old)
    token, _csrf = await asyncio.to_thread(start_session, engine, result.user.id, client)
    response = web.HTTPSeeOther(HOME)
    signed = sign(token, settings.console_secret.get_secret_value())
    set_cookie(request, response, SESSION_COOKIE, signed)
    response.del_cookie(LOGIN_COOKIE, path="/console")
    raise response


@requires(ConsoleRole.AGENT)
async def logout(request: web.Request) -> web.StreamResponse:
    token = session_token(request)
    if token is not None:
        await asyncio.to_thread(end_session, request.config_dict[DB_ENGINE], token)
    response = web.HTTPSeeOther(LOGIN_URL)
    response.del_cookie(SESSION_COOKIE, path="/console")
    raise response


# Live calls ---------------------------------------------------------------------------------
@requires(ConsoleRole.AGENT)
async def calls(request: web.Request) -> web.StreamResponse:
    live = request.config_dict[LIVE_CALLS]
    return page("calls.html", title="Live calls", me=request[ACTIVE], calls=live.snapshot())


@requires(ConsoleRole.AGENT)
async def call_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the list of live calls, sent again whenever it changes; the
    stream ends when the session does (checked every ``KEEPALIVE_S`` without restarting its
    idle clock; the page then goes to sign in again)."""
    live = request.config_dict[LIVE_CALLS]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
    })
    add_security_headers(response, is_https(request))
    await response.prepare(request)
    version, checked = -1, time.monotonic()
    while True:
        if time.monotonic() - checked >= KEEPALIVE_S:
            checked = time.monotonic()
            if await current_session(request, touch=False) is None:
                await response.write(b"event: signed-out\ndata: {}\n\n")
                break
        if version != live.version:
            version = live.version
            data = json.dumps([c.as_json() for c in live.snapshot()])
            await response.write(f"event: calls\ndata: {data}\n\n".encode())
        else:
            await response.write(b": keep-alive\n\n")
        changed = await live.wait_change(version, KEEPALIVE_S)
        if changed != version:
            await asyncio.sleep(0.05)  # a burst of keys is sent as one update
    return response


# Payments -----------------------------------------------------------------------------------
@requires(ConsoleRole.AGENT)
async def payments(request: web.Request) -> web.StreamResponse:
    query = PaymentQuery(
        confirmation=request.query.get("confirmation", "").strip() or None,
        account_number=request.query.get("account", "").strip() or None,
        date_from=_day(request.query.get("from")),
        date_to=_day(request.query.get("to")),
    )
    page_number = _int(request.query.get("page"), 1)
    found = None
    if not query.empty:
        found = await asyncio.to_thread(
            search_payments, request.config_dict[DB_ENGINE], query, page_number
        )
    return page("payments.html", title="Payments", me=request[ACTIVE], query=query,
                found=found, args=dict(request.query))


@requires(ConsoleRole.AGENT)
async def payment(request: web.Request, message: str | None = None,
                  status: int = 200) -> web.StreamResponse:
    payment_id = int(request.match_info["payment_id"])
    detail = await asyncio.to_thread(payment_detail, request.config_dict[DB_ENGINE], payment_id)
    if detail is None:
        raise web.HTTPNotFound()
    me = request[ACTIVE]
    return page("payment.html", status=status, title=f"Payment {payment_id}", me=me,
                detail=detail, message=message, refund_key=secrets.token_urlsafe(24),
                may_refund=me.may(ConsoleRole.ADMIN))


@requires(ConsoleRole.ADMIN)
async def refund(request: web.Request) -> web.StreamResponse:
    """Refund with a reason (an admin): through the payment's gateway, once per form."""
    payment_id = int(request.match_info["payment_id"])
    form = await request.post()
    me = request[ACTIVE]
    settings = request.config_dict[SETTINGS]
    engine = request.config_dict[DB_ENGINE]
    try:
        amount = parse_amount(str(form.get("amount", "")))
        result = await asyncio.to_thread(
            refund_payment, engine, lambda name: make_gateway(settings, engine, name),
            payment_id=payment_id, amount=amount, reason=str(form.get("reason", "")),
            actor=f"console:{me.name}", idempotency_key=str(form.get("refund_key", "")),
        )
    except RefundRefused as exc:
        return await _payment_again(request, str(exc), 422)
    if result.status == "succeeded":
        raise web.HTTPSeeOther(f"/console/payments/{payment_id}?refunded={result.refund_id}")
    words = {"pending": "The gateway has not answered yet: submit the same form again.",
             "failed": f"The gateway refused the refund ({result.error_code})."}
    return await _payment_again(request, words.get(result.status, result.status), 502)


async def _payment_again(request: web.Request, message: str, status: int) -> web.StreamResponse:
    handler = payment.__wrapped__  # type: ignore[attr-defined] - already guarded
    return await handler(request, message=message, status=status)


# Supervisors and admins ---------------------------------------------------------------------
@requires(ConsoleRole.SUPERVISOR)
async def reports(request: web.Request) -> web.StreamResponse:
    return page("reports.html", title="Reports", me=request[ACTIVE])


@requires(ConsoleRole.ADMIN)
async def merchant_settings(request: web.Request) -> web.StreamResponse:
    profile, settings = await asyncio.to_thread(merchant_view, request.config_dict[SETTINGS])
    return page("settings.html", title="Merchant settings", me=request[ACTIVE],
                profile=profile, settings=settings)


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text and text.strip() else None
    except ValueError:
        return None


def _int(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() and len(text) < 7 else default
