"""The conversation fuzzer against the running stack (tests/fuzz/).

Seeded simulated customers talk to the bot over chat (Rasa's REST channel) and SMS (the
bridge's signed Twilio webhook), several at a time: at least ``PAYBOT_FUZZ_CHAT_TURNS`` turns
over chat and ``PAYBOT_FUZZ_SMS_TURNS`` over SMS. The seed is ``PAYBOT_FUZZ_SEED`` or random,
and printed; a failure prints the seed and transcript of each failed conversation and saves
it as a corpus file. The corpus (tests/fuzz/corpus/*.yml: conversations that once failed) is
replayed on every run.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import pytest
import yaml

from tests.fake_twilio import FakeTwilio
from tests.fuzz import pools
from tests.fuzz.runner import (
    CIRCUIT_BREAKER,
    ChatLine,
    SmsLine,
    Twilio,
    corpus_entries,
    fresh_phone,
    fuzz,
    replay,
    save_failure,
)
from tests.stack import Stack

REPO = Path(__file__).resolve().parents[1]
CHAT_TURNS = int(os.environ.get("PAYBOT_FUZZ_CHAT_TURNS", "2000"))
SMS_TURNS = int(os.environ.get("PAYBOT_FUZZ_SMS_TURNS", "500"))
CORPUS = dict(corpus_entries())


def _normal(text: str) -> str:
    return re.sub(r"[^\w' ]", "", text.lower()).strip()


def nlu_examples() -> set[str]:
    examples = set()
    for path in [*REPO.glob("nlu_data/*.yml"), *REPO.glob("tests/rasa/*.yml")]:
        for item in (yaml.safe_load(path.read_text()) or {}).get("nlu", []):
            for line in (item.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    text = re.sub(r"\[([^\]]*)\](\([^)]*\)|\{[^}]*\})", r"\1", line[2:])
                    examples.add(_normal(text))
    return examples


def test_the_off_script_pools_are_not_nlu_examples():
    """The customer wanders with its own words, not the ones the model was trained or
    scored on."""
    known = nlu_examples()
    copied = [
        phrase
        for pool in pools.OFF_SCRIPT.values()
        for phrase in pool
        if _normal(phrase) and _normal(phrase) in known
    ]
    assert copied == []


@pytest.fixture(scope="module")
def twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, twilio):
    stack = Stack.configure(
        tmp_path_factory.mktemp("fuzz"),
        **twilio.env(),
        PAYBOT_SMS_FROM="+15555550000",
        PAYBOT_LOCKOUT_FAILURES="1000",
        PAYBOT_IDV_RATE_LIMIT="100000",
    )
    stack.start()
    yield stack
    assert stack.stop() == 0, stack.log_tail()


@pytest.mark.services
def test_the_fuzzer_finds_no_failure(stack, twilio, tmp_path):
    seed = os.environ.get("PAYBOT_FUZZ_SEED") or secrets.token_hex(4)
    print(f"\nfuzz seed {seed!r} (PAYBOT_FUZZ_SEED={seed} to run it again)")
    stack.reset_data()
    report = fuzz(
        stack,
        Twilio(twilio.auth_token, twilio.account_sid),
        seed,
        budgets={"chat": CHAT_TURNS, "sms": SMS_TURNS},
        workers={"chat": 3, "sms": 2},
    )
    print(report.summary())
    for outcome in report.failed:
        print("\n" + outcome.transcript())
        print(f"saved as {save_failure(outcome, tmp_path / 'corpus')}")
    assert report.errors == [], report.errors
    assert report.turns["chat"] >= CHAT_TURNS and report.turns["sms"] >= SMS_TURNS
    assert not stack.watched(CIRCUIT_BREAKER), stack.watched(CIRCUIT_BREAKER)[:3]
    assert report.failed == [], f"seed {seed!r}: {len(report.failed)} failed conversations"
    assert report.paid > 0


@pytest.mark.services
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_a_conversation_that_once_failed(stack, twilio, name):
    """Replays a corpus conversation: every message answered, no question four times in a
    row, no payment without a yes to the confirmation, no circuit breaker."""
    entry = CORPUS[name]
    phone = entry.get("phone")
    if entry["channel"] == "sms":
        # A number of its own, so no earlier conversation on the same number interferes.
        line = SmsLine(stack, fresh_phone(), twilio.auth_token, twilio.account_sid)
        if phone and entry.get("keep_phone"):
            line = SmsLine(stack, phone, twilio.auth_token, twilio.account_sid)
    else:
        line = ChatLine(stack, phone)
    outcome = replay(stack, line, entry["messages"], seed=name)
    assert outcome.failures == [], outcome.transcript()
