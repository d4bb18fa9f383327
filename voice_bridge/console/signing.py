"""Signing in and out of the console: the sign-in form (with its own CSRF token, bound to a
short-lived cookie), the check with its lockout (paybot.console.signin), a fresh session on
every sign-in (no fixation), and sign-out."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web

from paybot.console.sessions import end_session, sign, start_session
from paybot.console.signin import Lockout, Verdict, sign_in
from paybot.db.models import ConsoleRole
from voice_bridge.console.guard import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    LOGIN_URL,
    SESSION_COOKIE,
    client_address,
    current_session,
    login_token_matches,
    new_login_token,
    requires,
    session_token,
    set_cookie,
)
from voice_bridge.console.render import page
from voice_bridge.keys import DB_ENGINE, SETTINGS

HOME = "/console/calls"
LOGIN_TOKEN_MAX_AGE_S = 600
SIGN_IN_REFUSED = "Wrong name or password."
SIGN_IN_LOCKED = "Too many failed sign-ins. Try again later."


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
    response.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    raise response


@requires(ConsoleRole.AGENT)
async def logout(request: web.Request) -> web.StreamResponse:
    token = session_token(request)
    if token is not None:
        await asyncio.to_thread(end_session, request.config_dict[DB_ENGINE], token)
    response = web.HTTPSeeOther(LOGIN_URL)
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise response
