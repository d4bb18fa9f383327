"""Secure pay links end to end: ``paybot up`` with the local Twilio fake (tests/fake_twilio.py).

* Maria (no stored method) texts that she wants to pay by card: the SMS reply carries a pay
  link for her balance. Headless Chromium (Debian's, driven by playwright) opens it at phone
  width, fills the card and pays; the page shows the confirmation number, the payment is in the
  ledger once, and the fake Twilio gets one text with that number. Opened again, it is refused.
* Two submits of one link at once charge once; a posted amount other than the link's, an
  expired link, an unknown, forged or tampered-with one are refused with nothing charged.
* A seeded fuzzer posts garbage forms (random, long, unicode fields, wrong content types):
  every answer is a 4xx with a message, and nothing is charged.

The browser test is skipped only when /usr/bin/chromium is absent (``make test`` installs it).
"""

from __future__ import annotations

import random
import re
import string
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from sqlalchemy import update
from sqlmodel import Session

from paybot.db.models import PayLink, Payment, SandboxCharge
from paybot.db.types import utcnow
from paybot.paylinks import PayLinks
from tests import cardscan
from tests.fake_twilio import FakeTwilio
from tests.helpers import account, rows, text_bridge
from tests.stack import Stack, serve, wait_until

pytestmark = pytest.mark.services

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # gitignored: the screenshots
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
SECRET = "e2e-pay-link-secret-0123456789abcdefghij"
BUSINESS_LINE = "+15555550000"
MARIA, MARIA_ACCOUNT, MARIA_ZIP = "+15555550111", "200300400", "10001"
CARD = cardscan.keyed_card("4242424242424242")
CODE = cardscan.keyed_code("731")
EXPIRY = f"11/{(date.today().year + 3) % 100:02d}"
LINK = re.compile(r"http://127\.0\.0\.1:\d+/pay/[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{32}")


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, twilio) -> Iterator[Stack]:
    yield from serve(Stack.configure(
        tmp_path_factory.mktemp("paylink"), **twilio.env(), PAYBOT_SMS_FROM=BUSINESS_LINE,
        PAYBOT_SCHEDULER_INTERVAL_S="0", PAYBOT_SMS_SEND_INTERVAL_S="0.3",
        PAYBOT_SMS_QUIET_HOURS="", PAYBOT_PAY_LINK_SECRET=SECRET, PAYBOT_BUSINESS_NAME="Acme Water",
    ))  # fmt: skip


@pytest.fixture(autouse=True)
def fresh(stack, twilio) -> None:
    stack.reset_data()
    twilio.reset()


def text(stack: Stack, twilio: FakeTwilio, body: str) -> str:
    """The bridge's TwiML answer to Maria texting ``body`` (a signed webhook)."""
    stack.track(f"sms:{MARIA}")
    answer = text_bridge(stack.bridge_url, twilio, MARIA, BUSINESS_LINE, body)
    assert answer.status_code == 200, answer.text
    return answer.text


def issue(stack: Stack, amount: str = "40.00", **kw) -> tuple[str, int]:
    """A link for Maria's account, issued as the action server does: (url, link id)."""
    links = PayLinks(stack.engine, SECRET, 900)
    issued = links.issue(account_id=account(stack.engine, MARIA_ACCOUNT).id,
                         amount=Decimal(amount), channel="sms", base_url=stack.bridge_url,
                         conversation_id=f"sms:{MARIA}", notify_to=MARIA, **kw)  # fmt: skip
    return issued.url, issued.link_id


def nonce_of(url: str) -> str:
    page = requests.get(url, timeout=30)
    assert page.status_code == 200, page.text
    return re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)


def card_form(nonce: str, amount: str = "40.00", **changes: str) -> dict[str, str]:
    return {"nonce": nonce, "method": "card", "amount": amount, "card_number": CARD,
            "expiry": EXPIRY, "cvc": CODE, "zip": MARIA_ZIP, **changes}  # fmt: skip


def post(url: str, data: dict[str, str] | str, **headers: str) -> requests.Response:
    return requests.post(url, data=data, headers=headers, timeout=60, allow_redirects=False)


def link_row(stack: Stack, link_id: int) -> PayLink:
    with Session(stack.engine) as session:
        return session.get(PayLink, link_id)


def assert_locked_down(response: requests.Response) -> None:
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "form-action 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "no-store" in headers["Cache-Control"]
    assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Frame-Options"] == "DENY"


# --- the whole way, in a browser -------------------------------------------------------------
def test_a_texter_pays_by_link_in_chromium_once(stack, twilio):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make chromium installs it)")
    from playwright.sync_api import sync_playwright

    assert "ZIP code on your account" in text(stack, twilio, "I'd like to make a payment")
    text(stack, twilio, MARIA_ZIP)
    text(stack, twilio, "yes")  # the full balance, $89.10
    reply = text(stack, twilio, "by card")
    assert "don't text card or bank details" in reply and "$89.10" in reply, reply
    url = LINK.search(reply).group(0)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 375, "height": 740})  # a phone
            opened = page.goto(url)
            assert opened.status == 200 and "no-store" in opened.headers["cache-control"]
            assert page.get_by_label("Amount (USD)").first.input_value() == "89.10"
            assert page.get_by_label("Amount (USD)").first.get_attribute("readonly") is not None
            assert "$2.00 convenience fee" in page.inner_text("#summary")
            page.screenshot(path=str(ARTIFACTS / "pay-link-form.png"), full_page=True)
            nonce = page.locator("form").first.locator("input[name=nonce]").input_value()
            page.get_by_label("Card number").fill(CARD)
            page.get_by_label("Expiry date (MM/YY)").fill(EXPIRY)
            page.get_by_label("Security code").fill(CODE)
            page.get_by_label("Billing ZIP code").fill(MARIA_ZIP)
            page.get_by_role("button", name="Pay $89.10 by card").click()
            page.wait_for_selector("#confirmation", timeout=30_000)
            shown = page.inner_text("#confirmation")
            page.screenshot(path=str(ARTIFACTS / "pay-link-paid.png"), full_page=True)
            again = page.goto(url)  # the same link a second time
            assert again.status == 410 and "already been used" in page.inner_text("#message")
        finally:
            browser.close()
    (payment,) = rows(stack.engine, Payment)
    assert (payment.status, payment.channel) == ("succeeded", "sms")
    assert payment.total == Decimal("91.10")  # the balance and the fee the page disclosed
    number = payment.confirmation_number
    assert "-".join(number[i : i + 3] for i in range(0, 9, 3)) in shown and "$91.10" in shown
    # Resubmitting the form that paid (its nonce, the card again) is refused: charged once.
    assert post(url, card_form(nonce, "89.10")).status_code == 410
    assert len(rows(stack.engine, SandboxCharge)) == 1
    # The conversation confirms by text, once, to the number that texted.
    assert wait_until(lambda: twilio.messages(), 20)
    time.sleep(1.0)
    (message,) = twilio.messages()
    assert message.form["To"] == MARIA and number[-4:] in message.form["Body"].replace("-", "")
    # The link is a bearer credential until used: no log line carries its token.
    assert url.rsplit("/", 1)[1] not in stack.all_output()
    print(f"screenshots: {ARTIFACTS}")


# --- refusals --------------------------------------------------------------------------------
def test_two_submits_at_once_charge_once(stack):
    url, link_id = issue(stack)
    forms = [card_form(nonce_of(url)) for _ in range(2)]
    start = threading.Barrier(2)
    answers: list[int] = []

    def submit(form: dict[str, str]) -> None:
        start.wait()
        answers.append(post(url, form).status_code)

    threads = [threading.Thread(target=submit, args=(form,)) for form in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 410]
    (payment,) = rows(stack.engine, Payment)
    assert payment.status == "succeeded" and len(rows(stack.engine, SandboxCharge)) == 1
    link = link_row(stack, link_id)
    assert (link.status, link.payment_id) == ("used", payment.id)
    assert payment.idempotency_key == link.idempotency_key


def test_a_changed_amount_is_refused_and_the_link_still_works(stack):
    url, link_id = issue(stack)
    nonce = nonce_of(url)
    for amount in ("1.00", "40.01", "", "40.00; 1", "4e1x"):
        changed = post(url, card_form(nonce, amount))
        assert changed.status_code == 400, amount
        assert "amount of this payment link can't be changed" in changed.text
        assert CARD not in changed.text
    missing = card_form(nonce)
    del missing["amount"]
    assert post(url, missing).status_code == 400
    assert rows(stack.engine, Payment) == [] and link_row(stack, link_id).status == "issued"
    assert post(url, card_form(nonce, "$40.00")).status_code == 200  # the same amount, written so


def test_a_payment_the_rules_refuse_is_not_taken_and_gives_the_link_back(stack):
    url, link_id = issue(stack, "500.00")  # more than Maria's balance ($89.10)
    refused = post(url, card_form(nonce_of(url), "500.00"))
    assert refused.status_code == 409 and "No payment was taken" in refused.text
    assert rows(stack.engine, Payment) == [] and rows(stack.engine, SandboxCharge) == []
    assert link_row(stack, link_id).status == "issued"


def test_expired_unknown_forged_and_tampered_links_are_refused(stack):
    expired, expired_id = issue(stack, now=utcnow() - timedelta(seconds=901))
    page = requests.get(expired, timeout=30)
    assert page.status_code == 410 and "expired" in page.text
    assert_locked_down(page)
    assert post(expired, card_form("x")).status_code == 410
    assert link_row(stack, expired_id).status == "expired"

    url, link_id = issue(stack)
    nonce = nonce_of(url)
    token = url.rsplit("/", 1)[1]
    forged = url[: -len(token)] + token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    unknown = url[: -len(token)] + "Q" * 32 + "." + "Q" * 32
    for bad in (forged, unknown, stack.bridge_url + "/pay/short", stack.bridge_url + "/pay/"):
        for answer in (requests.get(bad, timeout=30), post(bad, card_form(nonce))):
            assert answer.status_code == 404, bad
        assert "isn't valid" in requests.get(bad, timeout=30).text or bad.endswith("/pay/")
    # The link's amount changed in the database: the signature in the link no longer matches.
    with stack.engine.begin() as conn:
        conn.execute(update(PayLink).where(PayLink.id == link_id).values(amount=Decimal("1.00")))
    refused = post(url, card_form(nonce, "1.00"))
    assert refused.status_code == 404 and MARIA_ACCOUNT not in refused.text
    assert rows(stack.engine, Payment) == [] and rows(stack.engine, SandboxCharge) == []


def test_the_page_is_accessible_and_field_errors_are_tied_to_their_fields(stack):
    url, _ = issue(stack)
    page = requests.get(url, timeout=30)
    assert_locked_down(page)
    html = page.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    for name, autocomplete in (("card_number", "cc-number"), ("expiry", "cc-exp"),
                               ("cvc", "cc-csc"), ("zip", "postal-code")):  # fmt: skip
        assert f'<label for="{name}">' in html
        field = re.search(rf'<input id="{name}"[^>]*>', html).group(0)
        assert f'autocomplete="{autocomplete}"' in field and 'inputmode="numeric"' in field
    wrong = post(url, card_form(nonce_of(url), card_number="4242 4242 4242 4241", cvc="12"))
    assert wrong.status_code == 400 and CARD not in wrong.text and "4241" not in wrong.text
    for name in ("card_number",):
        field = re.search(rf'<input id="{name}"[^>]*>', wrong.text).group(0)
        assert 'aria-invalid="true"' in field and f"{name}-error" in field
        assert f'<p class="error" id="{name}-error">' in wrong.text
    assert 'role="alert"' in wrong.text and "Enter the card number" in wrong.text
    bank = post(url, {"nonce": nonce_of(url), "method": "bank", "amount": "40.00",
                      "routing": "123456789", "bank_account": "12", "account_type": "money"})
    assert bank.status_code == 400 and "<details open>" in bank.text
    for message in ("9-digit routing number", "4 to 17 digits", "checking or savings"):
        assert message in bank.text
    assert rows(stack.engine, Payment) == []


# --- fuzzed forms ----------------------------------------------------------------------------
JUNK = string.printable + "٤٢٤٢߂४éß中\u200b\u202e\U0001f4b3"


def junk(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.1:
        return ""
    if roll < 0.2:
        return rng.choice(JUNK) * rng.randint(41, 3000)  # too long
    if roll < 0.35:
        return "".join(rng.choice("٠١٢٣٤٥٦٧٨٩४२") for _ in range(16))  # digits, not ASCII
    return "".join(rng.choice(JUNK) for _ in range(rng.randint(1, 40)))


def fuzzed_form(rng: random.Random, nonce: str) -> dict[str, str]:
    form = {"nonce": rng.choice([nonce, nonce, junk(rng)]),
            "amount": rng.choice(["40.00", "40.00", "40.00", junk(rng)]),
            "method": rng.choice(["card", "card", "bank", junk(rng)])}  # fmt: skip
    for name in ("card_number", "expiry", "cvc", "zip", "routing", "bank_account", "account_type"):
        if rng.random() < 0.85:
            form[name] = junk(rng)
    if rng.random() < 0.3:  # a real card, with some other field wrong
        form.update(card_number=CARD, expiry=EXPIRY, zip=MARIA_ZIP)
        form[rng.choice(["expiry", "zip"])] = rng.choice(["13/99", "1", "٤٢٤٢٤", "00000x"])
        form["cvc"] = rng.choice([CODE, "7310", "abc"])
    if rng.random() < 0.1:
        form.pop(rng.choice(sorted(form)))
    return form


def test_fuzzed_form_posts_get_a_clear_4xx_and_charge_nothing(stack):
    rng = random.Random(20261205)
    url, link_id = issue(stack)
    nonce = nonce_of(url)
    clear = re.compile(r'role="alert"[^>]*>.{12,}', re.S)
    for turn in range(120):
        form = fuzzed_form(rng, nonce)
        kind = rng.random()
        if kind < 0.08:
            answer = post(url, str(form), **{"Content-Type": "application/json"})
        elif kind < 0.14:
            answer = requests.post(url, files={k: (None, v) for k, v in form.items()}, timeout=60)
        else:
            answer = post(url, form)
        assert 400 <= answer.status_code < 500, (turn, form, answer.status_code)
        assert clear.search(answer.text), (turn, answer.text[:300])
        assert CARD not in answer.text and "no-store" in answer.headers["Cache-Control"]
    assert rows(stack.engine, Payment) == [] and rows(stack.engine, SandboxCharge) == []
    assert link_row(stack, link_id).status == "issued"
