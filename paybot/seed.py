"""Demo data for dev mode: the accounts the docs, demos and tests rely on (five callers; Sam
Rivera has two accounts on one number, told apart by their service addresses).

Seeded only into an empty ``accounts`` table. Stored cards are tokenised through the
configured gateway (the sandbox in dev), so the database holds tokens, never numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot import audit
from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import Account, AccountStatus, PaymentMethod
from paybot.gateway.base import CardData, Gateway

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoAccount:
    name: str
    phone: str
    account_number: str
    billing_zip: str
    balance: str
    minimum: str
    due_in_days: int
    status: str = AccountStatus.ACTIVE.value
    test_card: str | None = None  # a well-known sandbox test number, tokenised at seed time
    service_address: str | None = None


DEMO_ACCOUNTS = (
    DemoAccount("James Smith", "+15555550100", "100200300", "94107", "321.72", "25.00", 5,
                test_card="4242424242424242", service_address="480 Market Street"),
    DemoAccount("Maria Garcia", "+15555550111", "200300400", "10001", "89.10", "15.00", 12,
                service_address="221 West 29th Street"),
    DemoAccount("Robert Chen", "+15555550122", "300400500", "60601", "1250.00", "125.00", -10,
                test_card="5555555555554444", service_address="1550 North Lake Shore Drive"),
    DemoAccount("Linda Park", "+15555550133", "400500600", "73301", "0.00", "0.00", 0,
                status=AccountStatus.CLOSED.value, service_address="900 Congress Avenue"),
    DemoAccount("Sam Rivera", "+15555550144", "500600700", "97205", "64.30", "10.00", 8,
                test_card="4242424242424242", service_address="12 Oak Street"),
    DemoAccount("Sam Rivera", "+15555550144", "500600711", "97205", "148.95", "20.00", 15,
                service_address="48 Pine Avenue"),
)


def seed_demo_data(engine: Engine, gateway: Gateway, *, today: date | None = None) -> int:
    """Insert the demo accounts if there are no accounts at all; returns how many were added."""
    today = today or date.today()
    with Session(engine) as session:
        if queries.count_accounts(session=session):
            return 0
    for demo in DEMO_ACCOUNTS:
        _seed_one(engine, gateway, demo, today)
    log.info("seeded %d demo accounts", len(DEMO_ACCOUNTS))
    return len(DEMO_ACCOUNTS)


def _seed_one(engine: Engine, gateway: Gateway, demo: DemoAccount, today: date) -> None:
    token = None
    if demo.test_card:
        cvc = "1234" if demo.test_card.startswith("3") else "123"
        token = gateway.tokenize_card(CardData(demo.test_card, 12, today.year + 3, cvc))
    with session_scope(engine) as session:
        account = Account(
            account_number=demo.account_number,
            name=demo.name,
            phone=demo.phone,
            billing_zip=demo.billing_zip,
            service_address=demo.service_address,
            balance=Decimal(demo.balance),
            minimum_payment=Decimal(demo.minimum),
            due_date=None if demo.status != AccountStatus.ACTIVE.value
            else today + timedelta(days=demo.due_in_days),
            status=demo.status,
        )
        session.add(account)
        session.flush()
        if token is not None:
            session.add(
                PaymentMethod(
                    account_id=account.id,
                    gateway=gateway.name,
                    token=token.token,
                    kind=token.kind,
                    brand=token.brand,
                    last4=token.last4,
                    exp_month=token.exp_month,
                    exp_year=token.exp_year,
                )
            )
        audit.record(session, "account.seeded", account_id=account.id)
