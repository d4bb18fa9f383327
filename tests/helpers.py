"""Small helpers shared by the database-backed tests."""

from __future__ import annotations

from sqlmodel import Session, select

from paybot.db.models import Account, PaymentMethod


def account(engine, number: str) -> Account:
    with Session(engine) as session:
        return session.exec(select(Account).where(Account.account_number == number)).one()


def stored_method(engine, account_id: int) -> PaymentMethod:
    with Session(engine) as session:
        return session.exec(
            select(PaymentMethod).where(PaymentMethod.account_id == account_id)
        ).one()


def rows(engine, model) -> list:
    with Session(engine) as session:
        return list(session.exec(select(model)).all())
