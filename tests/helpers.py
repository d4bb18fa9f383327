"""Small helpers shared by the tests (and the ASR benchmark)."""

from __future__ import annotations

from collections.abc import Sequence

import requests
from sqlmodel import Session, select

from paybot.db.models import Account, PaymentMethod
from twilio_sim.webhook import new_sid
from voice_bridge.twilio.signature import sign


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


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance between two sequences (digits of a string, words of a list)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, h in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
    return row[-1]


def second_engine(engine):
    """Another engine on ``engine``'s database (another process's connections), in the same
    private schema on PostgreSQL."""
    from sqlalchemy import text

    from paybot.db.engine import make_engine

    search_path = None
    if engine.dialect.name == "postgresql":  # the test's private schema
        with engine.connect() as conn:
            search_path = conn.execute(text("SHOW search_path")).scalar()
    return make_engine(engine.url.render_as_string(hide_password=False), search_path=search_path)


def text_bridge(bridge_url: str, twilio, sender: str, to: str, body: str,
                key: str | None = None) -> requests.Response:
    """Twilio's messaging webhook for ``body`` texted from ``sender`` to ``to``, signed with
    ``key`` (default: the fake Twilio's auth token), as the bridge gets it."""
    url = bridge_url + "/twilio/sms"
    params = {"MessageSid": new_sid("SM"), "From": sender, "To": to, "Body": body,
              "AccountSid": twilio.account_sid}  # fmt: skip
    headers = {"X-Twilio-Signature": sign(url, params, key or twilio.auth_token)}
    return requests.post(url, data=params, headers=headers, timeout=60)
