"""Secure pay links in the domain (paybot.paylinks), on SQLite and PostgreSQL: what a link
binds, that only its hash is stored, that forged, tampered, used and expired links are refused,
that consuming one is a race only one submit wins, and the pay form's per-render nonces.
The hosted page, the dialog and the browser are in tests/test_pay_link_page.py."""

from __future__ import annotations

import random
import re
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlmodel import Session

from paybot.db.models import Account, PayLink
from paybot.db.types import utcnow
from paybot.paylinks import LinkRefused, PayLinks
from paybot.paylinks.tokens import form_nonce_valid, new_form_nonce, token_hash
from paybot.redaction import redact

SECRET = "test-pay-link-secret-0123456789abcdef"
BASE = "https://pay.example.com"


@pytest.fixture
def links(db_engine) -> PayLinks:
    return PayLinks(db_engine, SECRET, 900)


@pytest.fixture
def account_id(db_engine) -> int:
    with Session(db_engine) as session:
        account = Account(account_number="700800900", name="Casey Jones", phone="+14045550100",
                          billing_zip="30301", balance=Decimal("120.00"),
                          minimum_payment=Decimal("20.00"))  # fmt: skip
        session.add(account)
        session.commit()
        return account.id


def issue(links: PayLinks, account_id: int, amount: str = "45.10", **kw) -> tuple[str, int]:
    issued = links.issue(account_id=account_id, amount=Decimal(amount), channel="sms",
                         base_url=BASE, conversation_id="sms:+14045550100",
                         notify_to="+14045550100", **kw)  # fmt: skip
    assert issued.url.startswith(BASE + "/pay/")
    return issued.url.rsplit("/", 1)[1], issued.link_id


def stored(engine, link_id: int) -> PayLink:
    with Session(engine) as session:
        return session.get(PayLink, link_id)


def test_a_link_binds_account_and_amount_and_stores_only_a_hash(links, account_id, db_engine):
    token, link_id = issue(links, account_id)
    row = stored(db_engine, link_id)
    assert row.token_hash == token_hash(token) and token not in repr(row.__dict__)
    assert (row.status, row.amount, row.account_id) == ("issued", Decimal("45.10"), account_id)
    assert timedelta(seconds=898) < row.expires_at - utcnow() <= timedelta(seconds=900)
    view = links.find(token)
    assert (view.amount, view.account_last4, view.notify_to) == (
        Decimal("45.10"), "0900", "+14045550100")
    # Every charge through the link goes under its one key.
    assert view.idempotency_key == row.idempotency_key and len(row.idempotency_key) == 32


@pytest.mark.parametrize("amount", ["0", "-5.00", "12.345", "NaN"])
def test_a_link_needs_a_positive_amount_in_cents(links, account_id, amount):
    with pytest.raises(ValueError):
        issue(links, account_id, amount)


def test_unknown_forged_and_tampered_links_are_unknown(links, account_id, db_engine):
    token, link_id = issue(links, account_id)
    other_key = PayLinks(db_engine, "another-secret-entirely-0123456789", 900)
    forged_sig = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in ("", "abc", token + "x", forged_sig, token.upper(), "../" + token):
        with pytest.raises(LinkRefused) as refused:
            links.find(bad)
        assert refused.value.code == "unknown", bad
    with pytest.raises(LinkRefused, match="unknown"):
        other_key.find(token)  # signed with another secret
    # The amount changed in the database no longer matches the signature in the link.
    with db_engine.begin() as conn:
        conn.execute(update(PayLink).where(PayLink.id == link_id).values(amount=Decimal("1.00")))
    with pytest.raises(LinkRefused, match="unknown"):
        links.find(token)


def test_an_expired_link_is_refused_and_marked_expired(links, account_id, db_engine):
    token, link_id = issue(links, account_id, now=utcnow() - timedelta(seconds=901))
    with pytest.raises(LinkRefused, match="expired"):
        links.find(token)
    assert stored(db_engine, link_id).status == "expired"
    with pytest.raises(LinkRefused, match="expired"):
        links.find(token)


def test_a_link_is_consumed_once_even_by_racing_submits(links, account_id, db_engine):
    token, link_id = issue(links, account_id)
    view = links.find(token)
    results: list[str] = []
    start = threading.Barrier(6)

    def submit() -> None:
        start.wait()
        try:
            links.claim(view)
            results.append("won")
        except LinkRefused as refused:
            results.append(refused.code)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["used"] * 5 + ["won"]
    assert stored(db_engine, link_id).status == "used"
    with pytest.raises(LinkRefused, match="used"):
        links.find(token)
    # A claim the ledger refused (no payment made) is given back; one that paid is not.
    links.release(view)
    assert links.find(token).link_id == link_id
    # Past its time a link cannot be claimed, however it is asked.
    with pytest.raises(LinkRefused, match="expired"):
        links.claim(view, now=utcnow() + timedelta(hours=1))
    assert stored(db_engine, link_id).status == "expired"


def test_tokens_are_random_unguessable_and_never_a_digit_run(links, account_id):
    rng = random.Random(20261205)
    tokens = {issue(links, account_id, f"{rng.randint(100, 99999) / 100:.2f}")[0]
              for _ in range(40)}  # fmt: skip
    assert len(tokens) == 40
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{32}", token)
        assert not re.search(r"\d{9}", token)
        # The log redaction masks a link's token in a path (the bridge's access log).
        assert token not in redact(f'"GET /pay/{token} HTTP/1.1" 200')


def test_form_nonces_are_per_link_per_render_and_expire():
    link, other = "a" * 64, "b" * 64
    first, second = new_form_nonce(SECRET, link), new_form_nonce(SECRET, link)
    assert first != second
    assert form_nonce_valid(SECRET, link, first, 900)
    assert not form_nonce_valid(SECRET, other, first, 900)
    assert not form_nonce_valid("another-secret-entirely", link, first, 900)
    old = new_form_nonce(SECRET, link, now=1_000_000.0)
    assert not form_nonce_valid(SECRET, link, old, 900, now=1_000_901.0)
    assert form_nonce_valid(SECRET, link, old, 900, now=1_000_899.0)
    rng = random.Random(7)
    for _ in range(200):
        chars = (rng.choice("0123456789abcdef.-_xZ\u00e9") for _ in range(rng.randint(0, 80)))
        garbage = "".join(chars)
        assert not form_nonce_valid(SECRET, link, garbage, 900)
    assert not form_nonce_valid(SECRET, link, None, 900)
