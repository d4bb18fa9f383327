"""Opening payments: the ledger's job that writes new ``payments`` rows, for all the payments
of one group commit batch at once (:meth:`paybot.db.group_commit.GroupCommit.run_set`).

For a batch's payments: one statement locks their accounts (``FOR UPDATE``, in id order; on
SQLite the batch's ``BEGIN IMMEDIATE`` holds the write lock already), one reads the accounts,
the principal of their open payments, the payments already opened with the requests' keys and
the stored payment methods they charge, and one multi-row insert writes the new rows. Then
each request is decided in queue order, as if opened one after the other: the amount rules
see the open payments of the account, the ones opened before it in the batch included; a key
seen before (in the database or earlier in the batch) is the same payment again, or a
conflict. A refused request writes nothing and gets its refusal; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.engine import Row
from sqlalchemy.sql import Select
from sqlmodel import Session

from paybot.db.group_commit import defer_insert
from paybot.db.models import Account, AuditEvent, Payment, PaymentMethod
from paybot.db.types import Money
from paybot.payments.fees import FeePolicy
from paybot.payments.new_payment import PaymentRequest, created_event, opened, payment_row
from paybot.payments.rules import AmountRules, PaymentRefused
from paybot.payments.settlement import OPEN, PaymentOutcome

_LOCKED = "opening.locked_accounts"  # session.info: (transaction, ids of the accounts it locked)
_PAYMENTS = Payment.__table__
_METHODS = PaymentMethod.__table__
Opened = tuple[PaymentOutcome, bool, bool, str | None]  # (payment, done, new, reference)


@dataclass(frozen=True)
class OpenRequest:
    """One payment to open: the request, its method and whether its first attempt is counted
    with it (``claim``: the caller charges it next). ``stored``: the method is the stored one
    ``method_id``, refused unless on file, and ``kind`` and ``reference`` are its own."""

    request: PaymentRequest
    kind: str | None
    reference: str | None
    method_id: int | None
    claim: bool
    stored: bool = False


class Opening:
    """Opens the payments of a batch (the set function handed to group commit)."""

    def __init__(self, rules: AmountRules, fees: FeePolicy, gateway: Callable[[], str]) -> None:
        self.rules, self.fees, self._gateway = rules, fees, gateway

    def open_all(self, session: Session, items: list[OpenRequest]) -> list[Opened | Exception]:
        """Open ``items`` in one go: per item (payment, already_done, new, reference), or its
        refusal."""
        items = list(items)  # each with its stored method's kind and token, once read
        accounts, existing, methods = _read(
            session,
            {i.request.account_id for i in items},
            [i.request.idempotency_key for i in items],
            [i.method_id for i in items if i.stored],
        )
        held = {account_id: row.held for account_id, row in accounts.items()}
        results: list[Opened | Exception | None] = [None] * len(items)
        rows: list[dict[str, Any]] = []
        new: dict[str, tuple[int, Decimal, str]] = {}  # key -> (item index, fee, currency)
        for index, item in enumerate(items):
            request = item.request
            try:
                item = _with_method(item, methods)
                items[index] = item
                results[index] = self._decide(session, item, accounts, held, existing, new)
            except PaymentRefused as refusal:
                results[index] = refusal
                continue
            if results[index] is None:  # a new payment
                account = accounts[request.account_id]
                fee = self.fees.fee_for(request.amount)
                held[request.account_id] += request.amount
                gateway = request.gateway or self._gateway()
                rows.append(
                    payment_row(
                        request,
                        account,
                        fee,
                        item.kind,
                        item.reference,
                        item.method_id,
                        gateway,
                        item.claim,
                    )
                )
                new[request.idempotency_key] = (index, fee, account.currency)
        ids = _insert(session, rows)
        for index, item in enumerate(items):
            request = item.request
            if results[index] is None:
                _, fee, currency = new[request.idempotency_key]
                payment_id = ids[request.idempotency_key]
                defer_insert(session, AuditEvent.__table__, created_event(request, payment_id, fee))
                outcome = opened(request, payment_id, fee, currency)
                results[index] = (outcome, False, True, item.reference)
            elif isinstance(results[index], _Twin):  # the same key as a payment opened above
                first = items[new[request.idempotency_key][0]].request
                try:
                    outcome = results[index].outcome(first, ids[first.idempotency_key])
                except PaymentRefused as conflict:  # the key, for another payment
                    results[index] = conflict
                else:
                    results[index] = (*outcome, False, item.reference)
        return results  # type: ignore[return-value]

    def _decide(
        self,
        session: Session,
        item: OpenRequest,
        accounts: dict[int, Row],
        held: dict[int, Decimal],
        existing: dict[str, int],
        new: dict,
    ) -> Opened | _Twin | None:
        """An item's result when it is not a new payment (a key seen before); None if it is."""
        request = item.request
        if (payment_id := existing.get(request.idempotency_key)) is not None:
            payment = session.get(Payment, payment_id, populate_existing=True)
            assert payment is not None
            return (
                *existing_outcome(
                    payment.account_id, payment.amount, request, PaymentOutcome.of(payment)
                ),
                False,
                item.reference,
            )
        if request.idempotency_key in new:
            _, fee, currency = new[request.idempotency_key]
            return _Twin(request, fee, currency)
        account = accounts.get(request.account_id)
        if account is None:
            raise PaymentRefused("unknown_account", "That account was not found.")
        self.rules.check(account, request.amount, held=held[request.account_id])
        return None


@dataclass(frozen=True)
class _Twin:
    """A request with the key of a payment opened earlier in the same batch."""

    request: PaymentRequest
    fee: Decimal
    currency: str

    def outcome(self, first: PaymentRequest, payment_id: int) -> tuple[PaymentOutcome, bool]:
        """(the first request's payment, False), or a conflict if this one is another."""
        pending = opened(first, payment_id, self.fee, self.currency)
        return existing_outcome(first.account_id, first.amount, self.request, pending)


def existing_outcome(
    account_id: int, amount: Decimal, request: PaymentRequest, outcome: PaymentOutcome
) -> tuple[PaymentOutcome, bool]:
    """A request whose key names a payment already opened: that payment's outcome and whether
    it is settled (a repeated confirmation), or a conflict if it is another payment."""
    if account_id != request.account_id or amount != request.amount:
        raise PaymentRefused(
            "idempotency_conflict", "That key was already used for another payment."
        )
    return outcome, outcome.status not in OPEN


def _read(
    session: Session, account_ids: set[int], keys: list[str], method_ids: list[int | None]
) -> tuple[dict, dict, dict]:
    """Lock the accounts (first time in this transaction, PostgreSQL) and read them with the
    principal of their open payments; ({account id: row}, {key: id of its payment}, {method
    id: row of a stored method on file})."""
    lock, read = _statements()
    params = {"ids": sorted(account_ids), "keys": keys, "methods": method_ids}
    bind = session.get_bind()
    if bind.dialect.name != "sqlite" and not _holds_locks(session, account_ids):
        # A separate statement: one statement reads as of its start, so a sum read by the
        # statement that waited for the lock would miss what the lock's holder committed.
        session.execute(lock, params)
    accounts, existing, methods = {}, {}, {}
    for row in session.execute(read, params):
        if row.what == "account":
            accounts[row.id] = row
        elif row.what == "payment":
            existing[row.key] = row.payment_id
        else:  # a method: id is its account, status its kind, key its token
            methods[row.payment_id] = row
    return accounts, existing, methods


def _with_method(item: OpenRequest, methods: dict[int, Row]) -> OpenRequest:
    """A stored-method item with its method's kind and token; refused unless on file."""
    if not item.stored:
        return item
    method = methods.get(item.method_id)
    if method is None or method.id != item.request.account_id:
        raise PaymentRefused("unknown_method", "That payment method is not on file.")
    return replace(item, kind=method.status, reference=method.key, stored=False)


def _insert(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert the new payments; {key: id}. One statement on PostgreSQL (``RETURNING``)."""
    if not rows:
        return {}
    if session.get_bind().dialect.insert_executemany_returning:
        returning = _INSERT.returning(_PAYMENTS.c.idempotency_key, _PAYMENTS.c.id)
        return dict(session.execute(returning, rows).all())
    ids = {}
    for row in rows:
        ids[row["idempotency_key"]] = session.execute(_INSERT, row).inserted_primary_key[0]
    return ids


_INSERT = insert(_PAYMENTS)


@lru_cache(maxsize=1)
def _statements() -> tuple[Select, Any]:
    """(lock the accounts ``ids``, read them, the payments of ``keys`` and the methods
    ``methods``), built once. The read is one result, each row's kind in ``what``: account
    rows with ``held``; a row per payment already opened with one of the keys (``payment_id``,
    ``key``); a row per method on file (``id`` its account, ``status`` its kind,
    ``payment_id`` its id, ``key`` its token)."""
    accounts = Account.__table__
    ids, keys = bindparam("ids", expanding=True), bindparam("keys", expanding=True)
    methods = bindparam("methods", expanding=True)
    lock = select(accounts.c.id).where(accounts.c.id.in_(ids)).order_by(accounts.c.id)
    held = type_coerce(
        select(func.coalesce(func.sum(_PAYMENTS.c.amount), 0))
        .where(_PAYMENTS.c.account_id == accounts.c.id, _PAYMENTS.c.status.in_(OPEN))
        .scalar_subquery(),
        Money(),
    )
    money_null = type_coerce(null(), Money())
    read = union_all(
        select(literal_column("'account'").label("what"), accounts.c.id, accounts.c.status,
               accounts.c.currency, accounts.c.balance, held.label("held"),
               literal(None, _PAYMENTS.c.id.type).label("payment_id"),
               literal(None, _PAYMENTS.c.idempotency_key.type).label("key"))
        .where(accounts.c.id.in_(ids)),
        select(literal_column("'payment'"), _PAYMENTS.c.account_id, null(), null(), money_null,
               money_null, _PAYMENTS.c.id, _PAYMENTS.c.idempotency_key)
        .where(_PAYMENTS.c.idempotency_key.in_(keys)),
        # A method on file (as paybot.accounts.methods.is_on_file): kept, not deleted.
        select(literal_column("'method'"), _METHODS.c.account_id, _METHODS.c.kind, null(),
               money_null, money_null, _METHODS.c.id, _METHODS.c.token)
        .where(_METHODS.c.id.in_(methods), _METHODS.c.deleted_at.is_(None),
               _METHODS.c.saved_at.is_not(None)),
    )  # fmt: skip
    return lock.with_for_update(), read


def _holds_locks(session: Session, account_ids: set[int]) -> bool:
    """Whether this transaction already locked all the accounts here (and note that it will)."""
    transaction = session.get_transaction()
    held = session.info.get(_LOCKED)
    if held is None or held[0] is not transaction:
        held = session.info[_LOCKED] = (transaction, set())
    if account_ids <= held[1]:
        return True
    held[1].update(account_ids)
    return False
