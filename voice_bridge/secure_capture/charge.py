"""The charge at the end of a secure capture: the keyed card or bank account, paid once.

Runs in a worker thread (the ledger is synchronous). The method goes straight to the ledger;
nothing here keeps it. In the one-step style (``mode="charge"``) the ledger charges it; in the
two-step style (``mode="tokenize"``) it opens the payment, checks the rules and only then
tokenizes it; the action server charges the token (:mod:`paybot.payments.tokenized`).
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
    save: bool = False,
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
    save = save or instruction.save
    if instruction.mode == "tokenize":
        request = ledger.new_request(
            account.id,
            Decimal(instruction.amount),
            "voice",
            conversation_id,
            instruction.idempotency_key,
        )
        return ledger.tokens.tokenize(request, method, save=save)
    return ledger.pay_with_new_method(
        account_id=account.id,
        method=method,
        amount=Decimal(instruction.amount),
        channel="voice",
        save=save,
        conversation_id=conversation_id,
        idempotency_key=instruction.idempotency_key,
    )


def charge_tokenized(ledger: Ledger, outcome: PaymentOutcome) -> PaymentOutcome:
    """The caller confirmed and hung up before the action server charged the token made
    for them: charge it now, once (a payment already settled is left as it is)."""
    return ledger.tokens.charge(outcome.payment_id)
