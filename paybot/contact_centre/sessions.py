"""Contact-centre payment sessions in the database (``payment_sessions``).

An IVR creates a session for a caller (:func:`create`; replayed for the same idempotency key
and request, :func:`replay`); the transferred call is tied to it when it arrives
(:func:`match_call`: by the session code it carries, else by the caller's number); the
action server reads it for the call (:func:`for_call`) and takes the caller straight to the
payment; the bridge's job settles it (:func:`settle`): succeeded with the call's payment,
failed when the call ended without one, expired when no call came. Every change of status is
one conditional UPDATE from the status it expects, so two workers never both move a session.
A session that finishes with a callback URL gets its completion webhook queued in the same
transaction (``session_deliveries``, posted by :mod:`paybot.contact_centre.webhook`).

Blocking: call from a thread.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from paybot.db.engine import session_scope
from paybot.db.models import (
    Account,
    Call,
    CallStatus,
    Payment,
    PaymentSession,
    PaymentStatus,
    SessionDelivery,
)
from paybot.db.models import PaymentSessionStatus as S
from paybot.db.types import utcnow

CODE_DIGITS = 6
OPEN_PAYMENTS = (PaymentStatus.PENDING.value, PaymentStatus.UNKNOWN.value)
ENDED_CALL = tuple(s.value for s in CallStatus if s.rank == CallStatus.COMPLETED.rank)


class IdempotencyConflict(Exception):
    """The idempotency key was used before with another request."""


@dataclass(frozen=True)
class NewSession:
    """What a client asks for (validated at the edge)."""

    account_number: str
    amount: Decimal
    reference: str
    caller: str | None = None
    callback_url: str | None = None

    def fingerprint(self) -> str:
        """sha256 of the request, to tell a replay from another request under the same key."""
        fields = {
            "account_number": self.account_number, "amount": str(self.amount),
            "reference": self.reference, "caller": self.caller, "callback_url": self.callback_url,
        }  # fmt: skip
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SessionView:
    """A session as its client sees it: never card data, only the method's brand and last 4."""

    id: str
    status: str
    account_number: str
    amount: Decimal
    currency: str
    reference: str
    caller: str | None
    code: str | None
    callback_url: str | None
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None
    confirmation_number: str | None
    method_brand: str | None
    method_last4: str | None
    failure_reason: str | None


@dataclass(frozen=True)
class CallSession:
    """What the action server needs for a call tied to a session."""

    public_id: str
    account_number: str
    amount: Decimal


def _view(row: PaymentSession, account_number: str, payment: Payment | None) -> SessionView:
    paid = payment is not None and row.status == S.SUCCEEDED.value
    return SessionView(
        id=row.public_id, status=row.status, account_number=account_number,
        amount=row.amount, currency=row.currency, reference=row.reference, caller=row.caller,
        code=row.code, callback_url=row.callback_url, created_at=row.created_at,
        expires_at=row.expires_at, completed_at=row.completed_at,
        confirmation_number=payment.confirmation_number if paid and payment else None,
        method_brand=payment.method_brand if paid and payment else None,
        method_last4=payment.method_last4 if paid and payment else None,
        failure_reason=row.failure_reason,
    )  # fmt: skip


def _load(session: Session, *conditions) -> SessionView | None:  # noqa: ANN002 - SQL terms
    found = session.execute(
        select(PaymentSession, Account.account_number, Payment)
        .join(Account, Account.id == PaymentSession.account_id)
        .outerjoin(Payment, Payment.id == PaymentSession.payment_id)
        .where(*conditions)
    ).first()
    return None if found is None else _view(*found)


def get(engine: Engine, client: str, public_id: str) -> SessionView | None:
    """``client``'s session ``public_id``; None when it has none by that id."""
    with Session(engine) as session:
        return _load(session, PaymentSession.public_id == public_id,
                     PaymentSession.client == client)


def account_id_of(engine: Engine, account_number: str) -> int | None:
    """The id of the account numbered ``account_number``, if any."""
    with Session(engine) as session:
        return session.execute(
            select(Account.id).where(Account.account_number == account_number)
        ).scalar_one_or_none()


def replay(engine: Engine, client: str, key: str, new: NewSession) -> SessionView | None:
    """The session ``client`` made under idempotency ``key``; None when there is none.

    Raises:
        IdempotencyConflict: The key was used with another request.
    """
    with Session(engine) as session:
        row = session.execute(
            select(PaymentSession.request_hash)
            .where(PaymentSession.client == client, PaymentSession.idempotency_key == key)
        ).first()
        if row is None:
            return None
        if row[0] != new.fingerprint():
            raise IdempotencyConflict(key)
        return _load(session, PaymentSession.client == client,
                     PaymentSession.idempotency_key == key)


def create(
    engine: Engine, client: str, new: NewSession, *, account_id: int, currency: str,
    ttl_s: int, idempotency_key: str | None = None,
) -> SessionView:  # fmt: skip
    """A new session (with a session code when no caller number is given); under an
    idempotency key that another request just used, that request's session.

    Raises:
        IdempotencyConflict: The key was used with another request meanwhile.
    """
    now = utcnow()
    # A code in use by an open session (seen first, or as the open-code index's refusal when
    # another session took it at the same moment): draw another.
    for _ in range(10):
        code = None if new.caller else _new_code()
        row = PaymentSession(
            public_id="ps_" + uuid.uuid4().hex, client=client, account_id=account_id,
            idempotency_key=idempotency_key, request_hash=new.fingerprint(),
            amount=new.amount, currency=currency, reference=new.reference, caller=new.caller,
            code=code, callback_url=new.callback_url, created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )  # fmt: skip
        try:
            with session_scope(engine) as session:
                if code is not None and _code_open(session, code, now):
                    continue
                session.add(row)
        except IntegrityError:
            replayed = replay(engine, client, idempotency_key, new) if idempotency_key else None
            if replayed is not None:
                return replayed
            if code is not None:
                continue  # a session created at the same moment took the code: draw another
            raise
        view = get(engine, client, row.public_id)
        assert view is not None
        return view
    raise RuntimeError("no free session code")


def _new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def _code_open(session: Session, code: str, now: datetime) -> bool:
    return session.execute(
        select(PaymentSession.id).where(
            PaymentSession.code == code, PaymentSession.status == S.CREATED.value,
            PaymentSession.expires_at > now,
        )  # fmt: skip
    ).first() is not None


def cancel(engine: Engine, client: str, public_id: str) -> SessionView | None:
    """Cancel ``client``'s session unless a call already took it; the session as it is now
    (None: no such session)."""
    with session_scope(engine) as session:
        session.execute(
            update(PaymentSession)
            .where(PaymentSession.public_id == public_id, PaymentSession.client == client,
                   PaymentSession.status == S.CREATED.value)
            .values(status=S.CANCELLED.value, completed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return get(engine, client, public_id)


def match_call(
    engine: Engine, *, call_sid: str, caller: str | None, code: str | None
) -> str | None:
    """Tie the call to the open session it carries the code of or, with no code, to the
    newest open session for ``caller``; the session's id, or None when there is none."""
    if not code and not caller:
        return None
    now = utcnow()
    wanted = PaymentSession.code == code if code else PaymentSession.caller == caller
    with session_scope(engine) as session:
        candidate = session.execute(
            select(PaymentSession.id, PaymentSession.public_id)
            .where(wanted, PaymentSession.status == S.CREATED.value,
                   PaymentSession.expires_at > now)
            .order_by(PaymentSession.created_at.desc(), PaymentSession.id.desc())  # type: ignore[union-attr]
        ).first()
        if candidate is None:
            return None
        taken = session.execute(
            update(PaymentSession)
            .where(PaymentSession.id == candidate[0], PaymentSession.status == S.CREATED.value)
            .values(status=S.MATCHED.value, call_sid=call_sid, matched_at=now)
            .execution_options(synchronize_session=False)
        )
        return candidate[1] if taken.rowcount == 1 else None


def for_call(engine: Engine, call_sid: str) -> CallSession | None:
    """The session tied to call ``call_sid``, now ``in_progress``; None when the call has no
    session or it is over."""
    with session_scope(engine) as session:
        found = session.execute(
            select(PaymentSession, Account.account_number)
            .join(Account, Account.id == PaymentSession.account_id)
            .where(PaymentSession.call_sid == call_sid,
                   PaymentSession.status.in_((S.MATCHED.value, S.IN_PROGRESS.value)))  # type: ignore[attr-defined]
        ).first()
        if found is None:
            return None
        row, number = found
        session.execute(
            update(PaymentSession)
            .where(PaymentSession.id == row.id, PaymentSession.status == S.MATCHED.value)
            .values(status=S.IN_PROGRESS.value)
            .execution_options(synchronize_session=False)
        )
        return CallSession(row.public_id, number, row.amount)


def settle(engine: Engine, *, call_ttl_s: float, on_call_reasons: Iterable[str] = ()) -> int:
    """Finish the sessions whose outcome is known now; how many finished.

    * ``created`` past its expiry: ``expired``;
    * tied to a call with a succeeded payment of the session's amount for its account made
      since the match: ``succeeded`` with it (a payment of another amount, should the caller
      start over and choose one, is not the session's);
    * tied to a call that ended (Twilio's status, or the bridge's ending reason other than
      ``on_call_reasons``, e.g. a hand-over to ``<Pay>``) with no payment still open, or
      matched longer than ``call_ttl_s`` ago: ``failed`` with the reason.
    """
    now = utcnow()
    finished = 0
    with Session(engine) as session:
        expired = session.execute(select(PaymentSession.id).where(
            PaymentSession.status == S.CREATED.value, PaymentSession.expires_at <= now
        )).scalars().all()
        live = session.execute(select(PaymentSession).where(
            PaymentSession.status.in_((S.MATCHED.value, S.IN_PROGRESS.value))  # type: ignore[attr-defined]
        )).scalars().all()
    for session_id in expired:
        finished += _finish(engine, session_id, (S.CREATED,), S.EXPIRED, reason="no_call")
    for row in live:
        outcome = _call_outcome(engine, row, now, call_ttl_s, set(on_call_reasons))
        if outcome is not None:
            status, reason, payment_id = outcome
            finished += _finish(engine, row.id or 0, (S.MATCHED, S.IN_PROGRESS), status,
                                reason=reason, payment_id=payment_id)
    return finished


def _call_outcome(
    engine: Engine, row: PaymentSession, now: datetime, call_ttl_s: float, on_call: set[str]
) -> tuple[S, str | None, int | None] | None:
    conversation = f"call:{row.call_sid}"
    with Session(engine) as session:
        payments = session.execute(
            select(Payment).where(Payment.conversation_id == conversation,
                                  Payment.account_id == row.account_id,
                                  Payment.amount == row.amount,
                                  Payment.created_at >= row.matched_at)  # type: ignore[operator]
            .order_by(Payment.id)
        ).scalars().all()
        call = session.execute(select(Call).where(Call.call_sid == row.call_sid)).scalar()
    paid = next((p for p in payments if p.status == PaymentStatus.SUCCEEDED.value), None)
    if paid is not None:
        return S.SUCCEEDED, None, paid.id
    if any(p.status in OPEN_PAYMENTS for p in payments):
        return None
    ended = call is not None and (
        call.status in ENDED_CALL or (call.ended_reason is not None
                                      and call.ended_reason not in on_call)
    )
    overdue = row.matched_at is not None and now - row.matched_at > timedelta(seconds=call_ttl_s)
    if not (ended or overdue):
        return None
    last = payments[-1] if payments else None
    if last is not None:
        reason = f"payment_{last.status}"
    else:
        reason = "call_ended" if ended else "call_timed_out"
    return S.FAILED, reason, last.id if last is not None else None


def _finish(
    engine: Engine, session_id: int, expected: tuple[S, ...], status: S, *,
    reason: str | None = None, payment_id: int | None = None,
) -> int:  # fmt: skip
    """Move one session to its final ``status`` (if it is still in ``expected``) and queue its
    webhook; 1 when this call moved it."""
    with session_scope(engine) as session:
        moved = session.execute(
            update(PaymentSession)
            .where(PaymentSession.id == session_id,
                   PaymentSession.status.in_([s.value for s in expected]))  # type: ignore[attr-defined]
            .values(status=status.value, failure_reason=reason if status != S.SUCCEEDED else None,
                    payment_id=payment_id, completed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:
            return 0
        has_callback = session.execute(select(PaymentSession.id).where(
            PaymentSession.id == session_id, PaymentSession.callback_url.is_not(None)  # type: ignore[union-attr]
        )).first()
        if has_callback:
            session.add(SessionDelivery(session_id=session_id, idempotency_key=uuid.uuid4().hex))
    return 1

