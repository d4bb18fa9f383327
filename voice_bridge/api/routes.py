"""The contact-centre API's routes (docs/contact-centre.md; ``openapi.json`` beside this module).

* ``POST /api/payment-sessions``: a session for a caller (201). An ``Idempotency-Key``
  header makes a retry safe: the same key and body answer the first session again, the same
  key with another body 422 ``idempotency_key_reused``.
* ``GET /api/payment-sessions/{id}``: its status and result.
* ``POST /api/payment-sessions/{id}/cancel``: cancel it before a call takes it (409 after).
* ``GET /api/openapi.json``: the OpenAPI document (no token needed).

Every other request needs ``Authorization: Bearer <token>`` of a client in
``PAYBOT_API_CLIENTS`` (401 with ``WWW-Authenticate`` otherwise); a client sees only its own
sessions (another's id is 404). Refusals are JSON ``{"error", "field", "message"}`` and
create nothing. Logs carry session ids and client names, never tokens or bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from paybot.contact_centre import sessions
from paybot.contact_centre.clients import ApiClient, authenticate, parse_clients
from paybot.payments.rules import PaymentRefused
from voice_bridge.api.messages import CreateSessionRequest, ErrorOut, SessionOut
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.runtime import RUNTIME

log = logging.getLogger(__name__)
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
API_CLIENTS = web.AppKey("api_clients", dict)
MAX_BODY_BYTES = 16 * 1024
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
_SESSION_ID = re.compile(r"^ps_[0-9a-f]{32}$")
# The ledger's refusals that are about the account rather than the amount.
ACCOUNT_REFUSALS = {"account_not_active", "currency_mismatch", "nothing_owed",
                    "payment_in_progress"}


def add_api_routes(app: web.Application) -> None:
    """Register ``/api`` (needs ``SETTINGS``; the handlers ``DB_ENGINE`` and ``RUNTIME``)."""
    app[API_CLIENTS] = parse_clients(app[SETTINGS].api_clients.get_secret_value())
    app.router.add_post("/api/payment-sessions", create_session)
    app.router.add_get("/api/payment-sessions/{id}", get_session)
    app.router.add_post("/api/payment-sessions/{id}/cancel", cancel_session)
    app.router.add_get("/api/openapi.json", openapi)


class ApiError(web.HTTPException):
    """A refusal with the JSON error body."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        body = ErrorOut(error=error, field=field, message=message).json()
        super().__init__(text=body, content_type="application/json", headers=headers)


def client_of(request: web.Request) -> ApiClient:
    """The client whose bearer token the request carries.

    Raises:
        ApiError: 401 for a missing or unknown token.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    client = None
    if scheme.lower() == "bearer" and token.strip():
        client = authenticate(request.app[API_CLIENTS], token.strip())
    if client is None:
        log.warning("api: refused a request without a valid token")
        raise ApiError(401, "unauthorized", "a valid bearer token is required",
                       headers={"WWW-Authenticate": 'Bearer realm="paybot", error="invalid_token"'})
    return client


async def _json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_json", "the body is not JSON") from None


def _parse(body: Any) -> CreateSessionRequest:
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_field", "the body must be a JSON object", field="body")
    try:
        return CreateSessionRequest.parse_obj(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = "required" if first["type"] == "value_error.missing" else first["msg"]
        raise ApiError(422, "invalid_field", f"{field}: {message}", field=field) from None


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "invalid_header", "1 to 128 printable ASCII characters",
                       field="Idempotency-Key")
    return key


def _answer(view: sessions.SessionView, status: int = 200) -> web.Response:
    return web.json_response(json.loads(SessionOut.of(view).json()), status=status)


async def create_session(request: web.Request) -> web.Response:
    """``POST /api/payment-sessions``."""
    client = client_of(request)
    key = _idempotency_key(request)
    wanted = _parse(await _json_body(request))
    new = wanted.new_session()
    engine = request.app[DB_ENGINE]
    if new.callback_url and client.webhook_secret is None:
        raise ApiError(422, "invalid_field", "this client has no webhook secret configured",
                       field="callback_url")
    try:
        if key is not None:
            replayed = await asyncio.to_thread(sessions.replay, engine, client.name, key, new)
            if replayed is not None:
                return _answer(replayed, 201)
        account_id = await asyncio.to_thread(sessions.account_id_of, engine, new.account_number)
        if account_id is None:
            raise ApiError(422, "unknown_account", "no such account", field="account_number")
        ledger = request.app[RUNTIME].ledger
        await asyncio.to_thread(ledger.quote, account_id, Decimal(new.amount))
        view = await asyncio.to_thread(
            sessions.create, engine, client.name, new, account_id=account_id,
            currency=ledger.rules.currency, ttl_s=request.app[SETTINGS].api_session_ttl_s,
            idempotency_key=key,
        )  # fmt: skip
    except sessions.IdempotencyConflict:
        raise ApiError(422, "idempotency_key_reused", "this key was used with another request",
                       field="Idempotency-Key") from None
    except PaymentRefused as refused:
        field = "account_number" if refused.code in ACCOUNT_REFUSALS else "amount"
        raise ApiError(422, refused.code, str(refused), field=field) from None
    except SQLAlchemyError:
        log.exception("api: could not store a session for %s", client.name)
        raise ApiError(503, "unavailable", "could not store the session") from None
    log.info("api: %s created session %s", client.name, view.id)
    return _answer(view, 201)


def _session_id(request: web.Request) -> str:
    session_id = request.match_info["id"]
    if not _SESSION_ID.match(session_id):
        raise ApiError(404, "not_found", "no such session", field="id")
    return session_id


async def get_session(request: web.Request) -> web.Response:
    """``GET /api/payment-sessions/{id}``."""
    client = client_of(request)
    view = await asyncio.to_thread(
        sessions.get, request.app[DB_ENGINE], client.name, _session_id(request)
    )
    if view is None:
        raise ApiError(404, "not_found", "no such session", field="id")
    return _answer(view)


async def cancel_session(request: web.Request) -> web.Response:
    """``POST /api/payment-sessions/{id}/cancel``."""
    client = client_of(request)
    view = await asyncio.to_thread(
        sessions.cancel, request.app[DB_ENGINE], client.name, _session_id(request)
    )
    if view is None:
        raise ApiError(404, "not_found", "no such session", field="id")
    if view.status != "cancelled":
        raise ApiError(409, "not_cancellable", f"the session is {view.status}", field="id")
    log.info("api: %s cancelled session %s", client.name, view.id)
    return _answer(view)


async def openapi(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``: the document kept beside this module."""
    text = await asyncio.to_thread(OPENAPI_PATH.read_text, encoding="utf-8")
    return web.Response(text=text, content_type="application/json")
