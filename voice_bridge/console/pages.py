"""The console's routes and pages: live calls, payment search and detail, refunds (admins),
the reports (supervisors: :mod:`.report_pages`) and the merchant settings (admins, read
only). Each route names the least role it needs; signing in and out is in :mod:`.signing`,
the live calls' event stream in :mod:`.live_events`."""

from __future__ import annotations

import asyncio
import secrets
from datetime import date

from aiohttp import web

from paybot.console.merchant import merchant_view
from paybot.console.search import PaymentQuery, payment_detail, search_payments
from paybot.db.models import ConsoleRole
from paybot.gateway.factory import make_gateway
from paybot.payments.refunds import RefundRefused, parse_amount, refund_payment
from voice_bridge.console.agent_pay import agent_pay_routes
from voice_bridge.console.guard import (
    ACTIVE,
    Handler,
    requires,
    with_security_headers,
)
from voice_bridge.console.live_events import call_events
from voice_bridge.console.render import page, static_file
from voice_bridge.console.report_pages import report_chart, report_csv, reports
from voice_bridge.console.signing import HOME, login, login_form, logout
from voice_bridge.keys import DB_ENGINE, LIVE_CALLS, SETTINGS

PREFIX = "/console"


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
        ("GET", "/reports/{name:[a-z]+}.csv", report_csv),
        ("GET", "/reports/{name:[a-z]+}.svg", report_chart),
        ("GET", "/settings", merchant_settings),
        *agent_pay_routes(),  # agent-assisted payment on a live call
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


# Live calls ---------------------------------------------------------------------------------
@requires(ConsoleRole.AGENT)
async def calls(request: web.Request) -> web.StreamResponse:
    live = request.config_dict[LIVE_CALLS]
    return page("calls.html", title="Live calls", me=request[ACTIVE], calls=live.snapshot())


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


# Admins -------------------------------------------------------------------------------------
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
