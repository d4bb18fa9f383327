"""Settling the payments of a group commit batch in one statement (PostgreSQL).

One ``UPDATE ... FROM unnest(...)`` moves every payment of the batch that is still
``pending``/``unknown`` to its outcome (the same conditional update as one payment's: a
payment no longer open is left alone and comes back missing), debits each account once with
the principal of its payments that succeeded, and returns the settled rows with the account
number their principal line is booked to. The statement is built once; the payments travel as
arrays bound to its parameters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import String, bindparam, column, text
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import TextClause
from sqlmodel import Session

from paybot.db.models import Payment, PaymentStatus
from paybot.db.types import UTCDateTime, utcnow
from paybot.gateway.base import ChargeResult
from paybot.payments.confirmation import new_confirmation_number

SUCCEEDED, DECLINED = PaymentStatus.SUCCEEDED.value, PaymentStatus.DECLINED.value
_SQL = """
WITH outcome AS (
    SELECT * FROM unnest(CAST(:ids AS INTEGER[]), CAST(:statuses AS VARCHAR[]),
                         CAST(:transactions AS VARCHAR[]), CAST(:declines AS VARCHAR[]),
                         CAST(:brands AS VARCHAR[]), CAST(:last4s AS VARCHAR[]),
                         CAST(:numbers AS VARCHAR[]))
        AS o(id, status, transaction_id, decline_code, brand, last4, number)
), settled AS (
    UPDATE payments SET
        status = outcome.status, updated_at = :now, completed_at = :now,
        gateway_transaction_id = outcome.transaction_id, decline_code = outcome.decline_code,
        method_brand = outcome.brand, method_last4 = outcome.last4,
        -- A scheduled payment keeps the number it was given when it was scheduled.
        confirmation_number = CASE WHEN outcome.status = :succeeded
            THEN coalesce(payments.confirmation_number, outcome.number)
            ELSE payments.confirmation_number END
    FROM outcome
    WHERE payments.id = outcome.id AND payments.status IN (:pending, :unknown)
    RETURNING payments.*
), debited AS (
    UPDATE accounts SET balance = accounts.balance - paid.amount, updated_at = :now
    FROM (SELECT account_id, sum(amount) AS amount FROM settled
          WHERE status = :succeeded GROUP BY account_id) AS paid
    WHERE accounts.id = paid.account_id
    RETURNING accounts.id, accounts.account_number
)
SELECT {columns}, debited.account_number AS ledger_account
FROM settled LEFT JOIN debited ON debited.id = settled.account_id
"""


def settle_rows(session: Session, outcomes: list[tuple[int, ChargeResult]]) -> dict[int, Row]:
    """Settle the open payments among ``outcomes`` (payment id, gateway result; each id once):
    {payment id: its settled row with ``ledger_account``} for those that were still open."""
    params: dict[str, Any] = {
        "ids": [], "statuses": [], "transactions": [], "declines": [], "brands": [],
        "last4s": [], "numbers": [], "now": utcnow(),
    }  # fmt: skip
    for payment_id, result in outcomes:
        params["ids"].append(payment_id)
        params["statuses"].append(SUCCEEDED if result.approved else DECLINED)
        params["transactions"].append(result.transaction_id)
        params["declines"].append(result.decline_code)
        params["brands"].append(result.brand)
        params["last4s"].append(result.last4)
        params["numbers"].append(new_confirmation_number())
    return {row.id: row for row in session.execute(_statement(), params)}


@lru_cache(maxsize=1)
def _statement() -> TextClause:
    payments = Payment.__table__
    # Named, in the model's order: the result's columns are matched to the model's by position.
    columns = ", ".join(f"settled.{c.name}" for c in payments.c)
    return (
        text(_SQL.format(columns=columns))
        .bindparams(
            bindparam("now", type_=UTCDateTime()),
            succeeded=SUCCEEDED,
            pending=PaymentStatus.PENDING.value,
            unknown=PaymentStatus.UNKNOWN.value,
        )
        .columns(*payments.c, column("ledger_account", String()))
    )
