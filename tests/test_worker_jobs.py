"""Two bridges' background jobs over one database never do the same work twice: the token
sweep (beside the live call that disposes of the same token) keeps or deletes each token once.
The other jobs have their own races tested beside them: the outbox
(tests/test_receipt_sender.py), scheduled payments (tests/test_scheduling.py), the CRM webhook
(tests/test_crm_webhook.py); the end-to-end run with two bridges is tests/test_workers.py."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

from sqlmodel import Session, select

from paybot.db.models import AuditEvent, PaymentMethod, SandboxToken
from paybot.gateway.card_data import CardData
from paybot.gateway.sandbox import SandboxGateway
from paybot.payments.fees import FeePolicy
from paybot.payments.ledger import Ledger
from paybot.payments.rules import AmountRules
from tests.helpers import account, rows

MARIA = "200300400"  # owes 89.10, nothing on file
NUMBERS = ["5555555555554444", "4242424242424242", "4000000000000002"]


def bridge_ledger(engine) -> Ledger:
    """What one bridge's jobs use: its own gateway client (a little latency widens every
    race) over the shared database."""
    return Ledger(
        engine,
        SandboxGateway(engine, latency_ms=15),
        rules=AmountRules(minimum=Decimal("1.00")),
        fees=FeePolicy(flat=Decimal("2.00"), account="CONVENIENCE-FEES"),
        retries=0,
        backoff_s=0,
    )


def audit_count(engine, kind: str) -> int:
    with Session(engine) as session:
        return len(session.exec(select(AuditEvent).where(AuditEvent.kind == kind)).all())


def test_calls_and_two_sweeps_keep_or_delete_each_token_once(ledger, db_engine):
    seed = 20261205
    rng = random.Random(seed)
    maria = account(db_engine, MARIA)
    opened = []
    for i in range(8):
        request = ledger.new_request(maria.id, Decimal("1.00"), "voice", f"call:{i}", None)
        card = CardData(rng.choice(NUMBERS), 12, 2031, "123", "10001")
        opened.append(ledger.tokens.tokenize(request, card, save=rng.random() < 0.5))
    charged = [o.payment_id for o in opened if rng.random() < 0.6]
    bridges = [bridge_ledger(db_engine), bridge_ledger(db_engine)]
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def call() -> None:  # the live calls charge, then dispose of their tokens
        start.wait()
        try:
            for payment_id in charged:
                bridges[0].tokens.charge(payment_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def sweep(worker: Ledger) -> None:  # each bridge's recheck job, meanwhile and after
        start.wait()
        try:
            for _ in range(6):
                worker.tokens.sweep(older_than_s=3600)
            worker.tokens.sweep(older_than_s=0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call)] + [
        threading.Thread(target=sweep, args=(worker,)) for worker in bridges
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    with Session(db_engine) as session:
        made = session.exec(
            select(PaymentMethod).where(PaymentMethod.account_id == maria.id)
        ).all()
    kept = [m for m in made if m.saved_at is not None]
    deleted = [m for m in made if m.deleted_at is not None]
    assert len(kept) + len(deleted) == len(made) == len(opened), f"seed {seed}"
    assert not {m.id for m in kept} & {m.id for m in deleted}, f"seed {seed}"
    assert audit_count(db_engine, "payment_method.deleted") == len(deleted), f"seed {seed}"
    assert audit_count(db_engine, "payment_method.saved") == len(kept), f"seed {seed}"
    live = {t.id for t in rows(db_engine, SandboxToken) if t.deleted_at is None}
    assert {m.token for m in deleted}.isdisjoint(live), f"seed {seed}"
    assert {m.token for m in kept} <= live, f"seed {seed}"


def test_a_token_the_gateway_could_not_delete_is_given_back_for_the_next_sweep(
    ledger, db_engine, monkeypatch
):
    from paybot.gateway.base import GatewayError

    maria = account(db_engine, MARIA)
    request = ledger.new_request(maria.id, Decimal("1.00"), "voice", "call:x", None)
    opened = ledger.tokens.tokenize(
        request, CardData(NUMBERS[0], 12, 2031, "123", "10001"), save=False
    )

    def down(token: str) -> None:
        raise GatewayError("the gateway is down")

    monkeypatch.setattr(ledger.gateway, "delete_token", down)
    ledger.tokens.sweep(older_than_s=0)
    [method] = [m for m in rows(db_engine, PaymentMethod) if m.account_id == maria.id]
    assert method.deleted_at is None and audit_count(db_engine, "payment_method.deleted") == 0
    monkeypatch.undo()
    assert ledger.tokens.sweep(older_than_s=0) == []  # the payment failed the first time
    [method] = [m for m in rows(db_engine, PaymentMethod) if m.account_id == maria.id]
    assert method.deleted_at is not None and audit_count(db_engine, "payment_method.deleted") == 1
    assert opened.payment_id
