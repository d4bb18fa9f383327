"""Who may do what in the console: the session cookie, the role each route needs, the CSRF
token every POST must carry, and the security headers on every answer.

The cookie (``paybot_console``) holds a random token signed with ``PAYBOT_CONSOLE_SECRET``;
the session itself is a row (paybot.console.sessions). It is HttpOnly, SameSite=Strict,
scoped to ``/console`` and Secure when the console is reached over https. Every form carries
the session's synchronizer token, compared in constant time; the sign-in form, before there
is a session, carries a token that must match a short-lived cookie of its own.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web

from paybot.console.sessions import ActiveSession, Lifetimes, csrf_matches, load_session, unsign
from paybot.db.models import ConsoleRole
from paybot.settings import Settings
from voice_bridge.console.render import add_security_headers, page
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.twilio.signature import forwarded

SESSION_COOKIE = "paybot_console"
LOGIN_COOKIE = "paybot_console_login"
COOKIE_PATH = "/console"
ACTIVE = "console_session"  # request[ACTIVE]: the ActiveSession of a guarded handler
LOGIN_URL = "/console/login"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def with_security_headers(handler: Handler) -> Handler:
    """``handler`` whose every answer, errors included, carries the security headers."""

    @functools.wraps(handler)
    async def headed(request: web.Request) -> web.StreamResponse:
        https = is_https(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            add_security_headers(exc, https)
            raise
        if not response.prepared:
            add_security_headers(response, https)
        return response

    return headed


def requires(role: ConsoleRole) -> Callable[[Handler], Handler]:
    """Guard a handler: a live session (else GETs go to the sign-in page and anything else
    is 403), a role at least ``role`` (else 403), and on POST the session's CSRF token."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            active = await current_session(request)
            if active is None:
                if request.method in ("GET", "HEAD"):
                    response = web.HTTPSeeOther(LOGIN_URL)
                    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
                    raise response
                return forbidden("Your session has ended: sign in again.")
            if not active.may(role):
                return forbidden("Your role does not open this page.", active)
            if request.method == "POST":
                form = await request.post()
                sent = form.get("csrf")
                if not csrf_matches(active, sent if isinstance(sent, str) else None):
                    return forbidden("The form was stale or not ours: open it again.", active)
            request[ACTIVE] = active
            return await handler(request)

        guarded.console_role = role  # type: ignore[attr-defined] - the route test reads it
        return guarded

    return wrap


def forbidden(message: str, active: ActiveSession | None = None) -> web.Response:
    return page("error.html", status=403, title="Not allowed", message=message, me=active)


async def current_session(request: web.Request, touch: bool = True) -> ActiveSession | None:
    """The live session of the request's cookie, if any (``touch``: restart its idle clock)."""
    settings = request.config_dict[SETTINGS]
    cookie = request.cookies.get(SESSION_COOKIE)
    token = unsign(cookie, settings.console_secret.get_secret_value()) if cookie else None
    if token is None:
        return None
    return await asyncio.to_thread(functools.partial(
        load_session, request.config_dict[DB_ENGINE], token, lifetimes(settings), touch=touch
    ))


def session_token(request: web.Request) -> str | None:
    settings = request.config_dict[SETTINGS]
    cookie = request.cookies.get(SESSION_COOKIE)
    return unsign(cookie, settings.console_secret.get_secret_value()) if cookie else None


def lifetimes(settings: Settings) -> Lifetimes:
    return Lifetimes(
        idle=timedelta(minutes=settings.console_idle_minutes),
        absolute=timedelta(hours=settings.console_session_hours),
    )


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, path=COOKIE_PATH, httponly=True, samesite="Strict",
        secure=is_https(request), max_age=max_age,
    )


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def login_token_matches(request: web.Request, sent: str | None) -> bool:
    """The sign-in form's token is the one its page set in the login cookie."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    return bool(expected) and bool(sent) and hmac.compare_digest(
        expected.encode(), (sent or "").encode()
    )


def is_https(request: web.Request) -> bool:
    """Reached over https: directly, through a trusted proxy, or by a public https URL."""
    settings = request.config_dict[SETTINGS]
    if request.secure or settings.public_base_url.startswith("https://"):
        return True
    if settings.trust_proxy:
        proto = forwarded(request.headers.getall("X-Forwarded-Proto", []), settings.trusted_proxies)
        return proto == "https"
    return False


def client_address(request: web.Request) -> str:
    """The client's IP: what our outermost trusted proxy saw, else the socket's peer."""
    settings = request.config_dict[SETTINGS]
    if settings.trust_proxy:
        seen = forwarded(request.headers.getall("X-Forwarded-For", []), settings.trusted_proxies)
        if seen:
            return seen
    return request.remote or "unknown"
