"""Helpers for end-to-end secure-capture calls placed many at once (tests/test_capture_matrix.py,
bench/bench_voice.py --capture): generated card numbers, one account per caller, the keypad
steps of a capture, and what the capture and the gateway did for one call.

Card numbers are generated from a seed (``PAYBOT_TEST_SEED``, else a random one that is
printed): valid numbers of a brand's ranges and lengths, and the same with a wrong Luhn check
digit. Every generated number is registered with the card-data scan (``tests/cardscan.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from datetime import date

import requests
from sqlmodel import Session, select

from paybot.db.models import PaymentMethod, SandboxCharge, SandboxToken, StripeRef
from paybot.gateway.cards import luhn_check_digit, luhn_valid
from paybot.gateway.sandbox import SandboxGateway
from paybot.seed import DEMO_ACCOUNTS, _seed_one
from tests import cardscan
from tests.stack import OUTPUT_LOG, RASA_TOKEN, Stack

# brand -> (first digits to pick from, length)
_RANGES = {
    "visa": (["4"], 16),
    "mastercard": (["51", "52", "53", "54", "55", "2221", "2720"], 16),
    "amex": (["34", "37"], 15),
    "discover": (["6011", "65"], 16),
}
ZIP = "60601"  # every caller's billing ZIP (they are all Robert Chen's kind of account)


def seed() -> int:
    """The seed of this run's generated numbers (``PAYBOT_TEST_SEED`` to repeat one)."""
    value = int(os.environ.get("PAYBOT_TEST_SEED") or random.SystemRandom().randrange(10**6))
    print(f"generated card numbers: PAYBOT_TEST_SEED={value}")
    return value


def card_number(brand: str, rng: random.Random) -> str:
    """A Luhn-valid number of ``brand`` (no test card with a set outcome), registered."""
    prefixes, length = _RANGES[brand]
    body = rng.choice(prefixes)
    body += "".join(rng.choice("0123456789") for _ in range(length - 1 - len(body)))
    return cardscan.keyed_card(body + luhn_check_digit(body))


def bad_luhn(brand: str, rng: random.Random) -> str:
    """A number of ``brand``'s length and range whose check digit is wrong, registered."""
    good = card_number(brand, rng)
    wrong = str((int(good[-1]) + rng.randint(1, 9)) % 10)
    assert not luhn_valid(good[:-1] + wrong)
    return cardscan.keyed_card(good[:-1] + wrong)


def add_callers(stack: Stack, count: int, first: int = 1) -> list[str]:
    """``count`` accounts like Robert Chen's (Mastercard ending 4444 on file, ZIP 60601, owing
    1250.00) with their own phone and account numbers; returns their phone numbers."""
    template, today = DEMO_ACCOUNTS[2], date.today()
    gateway = SandboxGateway(stack.engine)
    phones = []
    for n in range(first, first + count):
        phone = f"+1555557{n:04d}"
        demo = dataclasses.replace(template, name=f"Robert Caller{n}", phone=phone,
                                   account_number=f"8{n:08d}")
        _seed_one(stack.engine, gateway, demo, today)
        phones.append(phone)
    return phones


async def to_capture(phone, stack: Stack, method: str = "card",
                     account_type: str = "checking") -> None:
    """From the call's start to the capture's first question, paying the whole balance with
    a new card or bank account (``method``: ``card`` or ``bank``).

    Each spoken answer is checked against the bot's next question (Rasa's tracker of this
    call); a "Sorry, please say ..." is answered again, as a caller would (speech from many
    callers at once is now and then misheard), and any other reply fails with what was said.
    """
    await phone.wait_bot()  # the billing ZIP code, please
    await phone.press(ZIP + "#")
    await phone.wait_bot()  # Hello Robert ... pay now?
    await answer(phone, stack, "yes", "Would you like to use your")
    await answer(phone, stack, "no", "card or from a bank account")
    if method == "bank":
        await answer(phone, stack, "bank account", "checking or a savings")
        await answer(phone, stack, account_type, "To confirm")
    else:
        await answer(phone, stack, "card", "To confirm")
    await answer(phone, stack, "yes", "securely")  # then: key in your card (routing) number


async def answer(phone, stack: Stack, text: str, expect: str, tries: int = 3) -> None:
    """Say ``text`` and wait until the bot has answered; say it again while the answer is a
    "Sorry, ..." re-prompt (up to ``tries`` times). Fails unless the bot's last sentence then
    contains ``expect``."""
    heard: list[str] = []
    for _ in range(tries):
        await phone.say(text)
        await phone.wait_bot()
        heard = await asyncio.to_thread(said, stack, phone.call_sid)
        last = heard[-1] if heard else ""
        if expect in last:
            return
        if not last.startswith("Sorry"):
            break
    raise AssertionError(f"call {phone.call_sid}: after {text!r} the bot did not ask "
                         f"{expect!r}; it said {heard}")


async def steps(phone, *keys: str) -> None:
    """Key each entry and let the bot answer it."""
    for entry in keys:
        await phone.press(entry)
        await phone.wait_bot()


def tracker_events(stack: Stack, call_sid: str) -> list[dict]:
    response = requests.get(
        f"{stack.rasa_url}/conversations/call:{call_sid}/tracker",
        params={"token": RASA_TOKEN},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["events"]


def said(stack: Stack, call_sid: str) -> list[str]:
    """What the bot (Rasa) said in this call, in order."""
    return [e["text"] for e in tracker_events(stack, call_sid)
            if e["event"] == "bot" and e.get("text")]


async def until_said(stack: Stack, phone, *texts: str, timeout_s: float = 120) -> str:
    """Wait until the bot said one of ``texts`` in this call; returns the sentence."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        heard = await asyncio.to_thread(said, stack, phone.call_sid)
        found = next((t for t in heard if any(x in t for x in texts)), None)
        if found is not None:
            return found
        await asyncio.sleep(1.0)
    raise AssertionError(f"the bot never said any of {texts}: {heard}")


def capture_keys(stack: Stack, call_sid: str) -> list[str]:
    """The idempotency keys (the capture ids) of the captures the bot started in this call."""
    return [c["idempotency_key"] for e in tracker_events(stack, call_sid)
            if e["event"] == "bot"
            for c in [(e.get("data") or {}).get("custom") or {}]
            if c.get("type") == "secure_capture"]


def capture_log(stack: Stack, call_sid: str) -> list[str]:
    """What the capture did in this call, from the bridge's log (field names, attempts and
    reason codes, never digits): ``card_number attempt 1 failed (invalid-card-number)``."""
    keys = capture_keys(stack, call_sid)
    lines = []
    log = (stack.data_dir / OUTPUT_LOG).read_text(encoding="utf-8")  # all of it, unlike output
    for line in log.splitlines():
        for key in keys:
            marker = f"capture {key}: "
            if marker in line:
                lines.append(line.split(marker, 1)[1].strip())
    return lines


def one_time_tokens(stack: Stack, account_id: int) -> list[PaymentMethod]:
    """Payment methods made for this account's payments (not kept on file)."""
    with Session(stack.engine) as session:
        return list(session.exec(select(PaymentMethod).where(
            PaymentMethod.account_id == account_id, PaymentMethod.saved_at.is_(None))).all())


def gateway_charges(stack: Stack, localstripe, key: str) -> list[str]:
    """The statuses of the charges the stack's gateway made under ledger key ``key``: the
    sandbox's charge log, or the PaymentIntents recorded for it and read from localstripe."""
    with Session(stack.engine) as session:
        if localstripe is None:
            rows = session.exec(select(SandboxCharge).where(
                SandboxCharge.idempotency_key == key)).all()
            return [r.status for r in rows]
        refs = session.exec(select(StripeRef).where(
            StripeRef.kind == "intent", StripeRef.ref == key)).all()
    # An intent recorded with no Stripe id was never made (its creation was refused).
    intents = [localstripe.get(f"/v1/payment_intents/{r.stripe_id}") for r in refs
               if r.stripe_id is not None]
    return [i["status"] for i in intents]


def token_gone(stack: Stack, localstripe, token: str) -> bool:
    """Whether the gateway's token no longer stands for a usable payment method."""
    with Session(stack.engine) as session:
        if localstripe is None:
            row = session.get(SandboxToken, token)
            return row is not None and row.deleted_at is not None
        deleted = session.exec(select(StripeRef).where(StripeRef.kind == "deleted")).all()
    return token in {r.ref for r in deleted}
