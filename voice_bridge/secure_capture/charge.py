"""The charge at the end of a secure capture: the keyed card or bank account, paid once.

Runs in a worker thread (the ledger is synchronous). The method goes straight to the ledger,
which tokenises or charges it through the gateway and records the payment; nothing here keeps
it.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot.db import queries
from paybot.dialog.payloads import SecureCapture
from paybot.gateway.card_data import BankAccount, CardData
from paybot.payments.ledger import Ledger
from paybot.payments.settlement import PaymentOutcome


def charge(
    engine: Engine,
    ledger: Ledger,
    instruction: SecureCapture,
    method: CardData | BankAccount,
    conversation_id: str,
) -> PaymentOutcome:
    """Look the account up and pay (blocking: call it in a thread).

    Raises:
        LookupError: The instruction's account does not exist.
    """
    with Session(engine) as session:
        account = queries.account_by_number(
            session=session, account_number=instruction.account_number
        )
    if account is None or account.id is None:
        raise LookupError("account not found")
    return ledger.pay_with_new_method(
        account_id=account.id,
        method=method,
        amount=Decimal(instruction.amount),
        channel="voice",
        save=instruction.save,
        conversation_id=conversation_id,
        idempotency_key=instruction.idempotency_key,
    )
