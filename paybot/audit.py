"""The append-only audit log: what happened, to which ids, never what anyone typed or said."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlmodel import Session

from paybot.db.models import AuditEvent
from paybot.db.types import utcnow
from paybot.redaction import redact


def record(
    session: Session,
    kind: str,
    *,
    account_id: int | None = None,
    payment_id: int | None = None,
    conversation_id: str | None = None,
    actor: str = "system",
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to ``session`` (committed with the caller's transaction).

    ``detail`` values must be scalars; strings are passed through the redaction filter and
    Decimals are stored as strings so nothing is lost to floats.
    """
    event = AuditEvent(**row(kind, account_id=account_id, payment_id=payment_id,
                             conversation_id=conversation_id, actor=actor, **detail))
    session.add(event)
    return event


def row(
    kind: str,
    *,
    account_id: int | None = None,
    payment_id: int | None = None,
    conversation_id: str | None = None,
    actor: str = "system",
    **detail: Any,
) -> dict[str, Any]:
    """The ``audit_events`` row :func:`record` adds, every column set (for a bulk insert:
    :func:`paybot.db.group_commit.defer_insert`)."""
    return {
        "at": utcnow(),
        "kind": kind,
        "account_id": account_id,
        "payment_id": payment_id,
        "conversation_id": conversation_id,
        "actor": actor,
        "detail": {key: _clean(value) for key, value in detail.items()},
    }


def _clean(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    raise TypeError(f"audit detail values must be scalars, not {type(value).__name__}")
