"""Log lines as text or as JSON: ``PAYBOT_LOG_FORMAT=text|json``, applied in every service.

In JSON mode every handler of the process writes one JSON object a line, whoever configured
it (Rasa, Sanic, coloredlogs, ``paybot``'s own stderr handler): ``time`` (UTC, ISO 8601 with
milliseconds and ``Z``), ``level``, ``logger``, ``message``, ``exception`` when there is one,
and the ids of what the line is about: ``call_sid``, ``conversation_id`` and ``payment_id``,
from the record's ``extra=`` fields or, more often, from the context variables the code sets
around a call, an action request or a payment (:func:`log_ids`). The redaction of
:mod:`paybot.redaction` applies to every field: the record is redacted when it is made, and
the message and exception text again when they are written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

from paybot.redaction import redact

FORMAT_ENV = "PAYBOT_LOG_FORMAT"
FORMATS = ("text", "json")
ID_FIELDS = ("call_sid", "conversation_id", "payment_id")
_IDS: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"paybot_{name}", default=None) for name in ID_FIELDS
}


@contextlib.contextmanager
def log_ids(**ids: object) -> Iterator[None]:
    """Put ``ids`` (any of :data:`ID_FIELDS`; None skipped) on every JSON log line made in
    this context, tasks and threads started from it included, until the block ends."""
    tokens = [
        (_IDS[name], _IDS[name].set(str(value)))
        for name, value in ids.items()
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_ids() -> dict[str, str]:
    """The ids set by :func:`log_ids` here."""
    return {name: value for name, var in _IDS.items() if (value := var.get()) is not None}


class JsonFormatter(logging.Formatter):
    """One record as one line of JSON (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        ids = current_ids()
        for name in ID_FIELDS:
            value = getattr(record, name, None) or ids.get(name)
            if value is not None:
                entry[name] = redact(str(value)) if name != "payment_id" else str(value)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


_JSON = JsonFormatter()


def _json_format(self: logging.Handler, record: logging.LogRecord) -> str:
    return _JSON.format(record)


def install(fmt: str | None) -> None:
    """Write every log line of this process in ``fmt`` (``json``; anything else leaves the
    handlers' own text formats). Idempotent."""
    if (fmt or "text").strip().lower() != "json":
        return
    if getattr(logging.Handler.format, "json", False):
        return
    original: Callable[..., str] = logging.Handler.format
    _json_format.json = True  # type: ignore[attr-defined]
    _json_format.original = original  # type: ignore[attr-defined]
    logging.Handler.format = _json_format  # type: ignore[method-assign]


def install_from_env() -> None:
    """:func:`install` with ``PAYBOT_LOG_FORMAT`` (Rasa and the action server: ``paybot up``
    passes it on)."""
    install(os.environ.get(FORMAT_ENV))


def uninstall() -> None:
    """Undo :func:`install` (tests that configure logging in-process)."""
    original = getattr(logging.Handler.format, "original", None)
    if original is not None:
        logging.Handler.format = original  # type: ignore[method-assign]


def attach_to_sanic(app: Any) -> None:
    """Put the conversation of each ``/conversations/<id>/...`` request (Rasa's HTTP API) on
    a Sanic app's log lines while it is handled (request middleware runs before the body is
    read: a body's sender is set by :func:`with_conversation` where it is parsed)."""

    async def begin(request: Any) -> None:
        parts = request.path.split("/")
        if len(parts) > 2 and parts[1] == "conversations" and parts[2]:
            request.ctx.log_ids_token = _IDS["conversation_id"].set(parts[2])

    async def end(request: Any, _answer: Any) -> None:
        token = getattr(request.ctx, "log_ids_token", None)
        if token is not None:
            request.ctx.log_ids_token = None
            with contextlib.suppress(ValueError):  # set in another context
                _IDS["conversation_id"].reset(token)

    app.register_middleware(begin, "request")
    app.register_middleware(end, "response")


def with_conversation(
    handler: Callable[..., Any], conversation_of: Callable[..., object]
) -> Callable[..., Any]:
    """The coroutine method ``handler`` with ``conversation_id`` (``conversation_of`` its
    arguments) on every log line made while it runs: Rasa's ``Agent.handle_message``,
    rasa_sdk's ``ActionExecutor.run``."""
    if getattr(handler, "with_conversation", False):
        return handler

    async def handling(*args: Any, **kwargs: Any) -> Any:
        try:
            conversation = conversation_of(*args, **kwargs)
        except Exception:  # an odd call: the handler says what is wrong with it
            conversation = None
        with log_ids(conversation_id=conversation or None):
            return await handler(*args, **kwargs)

    handling.with_conversation = True  # type: ignore[attr-defined]
    return handling
