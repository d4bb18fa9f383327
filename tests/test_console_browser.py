"""The agent console in headless Chromium: sign-in and the lockout, payment search, an admin's
refund, an expired session, CSRF refusals with a valid session cookie, an agent kept out of
admin pages. The console runs alone (tests/console_server.py) on a real database with the
demo accounts; tests/test_console_live.py watches a simulated phone call in it.
Screenshots of each page go to artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from paybot.db.models import AuditEvent, ConsoleSession, Payment, Refund, SandboxCharge
from paybot.db.types import utcnow
from paybot.settings import load_settings
from tests.console_browser import chromium, shot, sign_in
from tests.console_server import PASSWORD, ConsoleServer
from tests.helpers import account, rows, stored_method

LOCKOUT = 3


@pytest.fixture
def console(settings, tmp_path, ledger, db_engine):
    console_settings = load_settings(env="test", data_dir=tmp_path / "var",
                                     console_lockout_failures=LOCKOUT)
    with ConsoleServer(console_settings, db_engine) as server:
        server.add_users()
        yield server


@pytest.fixture
def browser():
    with chromium() as launched:
        yield launched


def pay(ledger, number: str, amount: str):
    owner = account(ledger.engine, number)
    method = stored_method(ledger.engine, owner.id)
    return ledger.pay_with_stored_method(
        account_id=owner.id, payment_method_id=method.id, amount=Decimal(amount),
        channel="voice", conversation_id="call:CA2",
    )


def test_an_agent_finds_a_payment_by_confirmation_number(console, ledger, browser):
    paid = [pay(ledger, "100200300", f"{n}.00") for n in range(5, 12)]
    target = paid[3]
    page = browser.new_page()
    sign_in(page, console.url, "agent", PASSWORD)
    assert page.url.endswith("/console/calls")
    assert "Settings" not in page.inner_text("header nav")  # not an admin's link
    page.get_by_role("link", name="Payments").click()
    page.get_by_label("Confirmation number").fill(target.confirmation_number)
    page.get_by_role("button", name="Search").click()
    assert page.inner_text("#found") == "1 payment"
    shot(page, "search")
    page.get_by_role("link", name=str(target.payment_id)).click()
    assert page.inner_text("#confirmation") == target.confirmation_number
    assert page.inner_text("#status") == "succeeded"
    assert page.locator("form.refund").count() == 0  # agents do not refund
    shot(page, "payment-agent")


def test_an_admin_refunds_with_a_reason(console, ledger, db_engine, browser):
    outcome = pay(ledger, "100200300", "50.00")  # $52.00 with the fee
    page = browser.new_page()
    sign_in(page, console.url, "admin", PASSWORD)
    page.goto(f"{console.url}/console/payments/{outcome.payment_id}")
    page.get_by_label("Amount").fill("12.50")
    page.get_by_label("Reason").fill("Charged the wrong account")
    shot(page, "refund-form")
    page.get_by_role("button", name="Refund").click()
    assert page.inner_text("#refunded") == "12.50 USD"
    assert "Charged the wrong account" in page.inner_text("#refunds")
    page.get_by_label("Reason").fill("The rest, on request")
    page.get_by_role("button", name="Refund").click()
    assert page.inner_text("#status") == "refunded"
    shot(page, "refunded")
    with Session(db_engine) as session:
        refunds = session.exec(select(Refund).order_by(Refund.id)).all()
        assert [(r.amount, r.status) for r in refunds] == [
            (Decimal("12.50"), "succeeded"), (Decimal("39.50"), "succeeded")
        ]
        gateway = session.exec(select(SandboxCharge).where(SandboxCharge.status == "refund")).all()
        assert sorted(r.amount for r in gateway) == [Decimal("12.50"), Decimal("39.50")]
        events = session.exec(
            select(AuditEvent).where(AuditEvent.kind == "refund_requested").order_by(AuditEvent.id)
        ).all()
        assert [e.detail["reason"] for e in events] == [
            "Charged the wrong account", "The rest, on request"
        ]
        assert session.get(Payment, outcome.payment_id).status == "refunded"
    page.goto(f"{console.url}/console/settings")
    assert "PAYBOT_CONSOLE_SECRET" in page.inner_text("#settings")
    shot(page, "settings")


def test_a_wrong_password_is_refused_and_the_lockout_engages(console, browser):
    page = browser.new_page()
    for _ in range(LOCKOUT):
        sign_in(page, console.url, "supervisor", "not the password at all")
        assert page.inner_text("#message") == "Wrong name or password."
        assert page.url.endswith("/console/login")
    shot(page, "refused")
    sign_in(page, console.url, "supervisor", PASSWORD)
    assert "Too many failed sign-ins" in page.inner_text("#message")
    shot(page, "locked")
    sign_in(page, console.url, "nobody", "not the password at all")  # same address: locked too
    assert "Too many failed sign-ins" in page.inner_text("#message")


def test_an_expired_session_is_sent_to_sign_in(console, db_engine, browser):
    page = browser.new_page()
    sign_in(page, console.url, "supervisor", PASSWORD)
    page.get_by_role("link", name="Reports").click()
    assert page.url.endswith("/console/reports")
    shot(page, "reports")
    with Session(db_engine) as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(hours=1)))
        session.commit()
    page.get_by_role("link", name="Payments").click()
    assert page.url.endswith("/console/login")
    assert page.get_by_role("button", name="Sign in").is_visible()


def test_posts_without_the_csrf_token_are_refused_with_a_valid_cookie(
    console, ledger, db_engine, browser
):
    outcome = pay(ledger, "100200300", "30.00")
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, console.url, "admin", PASSWORD)
    page.goto(f"{console.url}/console/payments/{outcome.payment_id}")
    good = page.locator("form.refund input[name=csrf]").input_value()
    url = f"{console.url}/console/payments/{outcome.payment_id}/refund"
    form = {"reason": "forged", "refund_key": "k" * 24}
    # The context's request client sends the browser's session cookie.
    missing = context.request.post(url, form=form)
    wrong = context.request.post(url, form={**form, "csrf": good[::-1]})
    assert missing.status == 403 and wrong.status == 403
    assert "stale or not ours" in wrong.text()
    assert rows(db_engine, Refund) == []
    # Cross-site forms do not even carry the cookie (SameSite=Strict); and the real one works.
    cookie = next(c for c in context.cookies() if c["name"] == "paybot_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert context.request.post(url, form={**form, "csrf": good}, max_redirects=0).status == 303


def test_an_agent_cannot_reach_admin_pages(console, browser):
    page = browser.new_page()
    sign_in(page, console.url, "agent", PASSWORD)
    for path in ("/console/settings", "/console/reports"):
        answer = page.goto(console.url + path)
        assert answer.status == 403
        assert "Your role does not open this page" in page.inner_text("#message")
    shot(page, "forbidden")
    assert re.search(r"default-src 'none'", answer.headers["content-security-policy"])
