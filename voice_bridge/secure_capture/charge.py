"""The charge at the end of a secure capture: the keyed card or bank account, paid once.

Runs in a worker thread (the ledger is synchronous). The method goes straight to the ledger,
which tokenises or charges it through the gateway and records the payment; nothing here keeps
it.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot.db.models import Account
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
        account_id = session.exec(
            select(Account.id).where(Account.account_number == instruction.account_number)
        ).first()
    if account_id is None:
        raise LookupError("account not found")
    return ledger.pay_with_new_method(
        account_id=account_id,
        method=method,
        amount=Decimal(instruction.amount),
        channel="voice",
        save=instruction.save,
        conversation_id=conversation_id,
        idempotency_key=instruction.idempotency_key,
    )
