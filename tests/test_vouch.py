"""Only the bridge can vouch for a caller number: Rasa's REST channel keeps ``from`` (and the
sms/voice channel) only with a valid, recent proof for that conversation."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

import pytest

from paybot.dialog.vouch import MAX_AGE_S, vouch, vouch_key, vouched
from rasa_plugins import channel
from rasa_plugins.channel import SafeRestInput

KEY = vouch_key("a-rasa-token")
JAMES = "+15555550100"


def request(sender, metadata):
    return SimpleNamespace(json={"sender": sender, "message": "hi", "metadata": metadata})


@pytest.fixture
def rasa_token(monkeypatch):
    monkeypatch.setenv("PAYBOT_RASA_TOKEN", "a-rasa-token")
    monkeypatch.setenv("PAYBOT_ENV", "test")
    channel._vouch_key.cache_clear()
    yield
    channel._vouch_key.cache_clear()


def test_a_chat_client_cannot_claim_a_number(rasa_token):
    """Finding "anyone can be James": the number a chat client sends is dropped."""
    rest = SafeRestInput()
    for metadata in (
        {"channel": "chat", "from": JAMES},
        {"channel": "sms", "from": JAMES},
        {"channel": "voice", "from": JAMES, "ts": str(int(time.time())), "proof": "0" * 64},
    ):
        assert rest.get_metadata(request(f"sms:{JAMES}", metadata)) == {"channel": "chat"}


def test_the_bridge_vouches_and_the_channel_keeps_it(rasa_token):
    rest = SafeRestInput()
    sms = vouch(KEY, sender=f"sms:{JAMES}", channel="sms", caller=JAMES)
    assert rest.get_metadata(request(f"sms:{JAMES}", sms)) == {"channel": "sms", "from": JAMES}
    withheld = vouch(KEY, sender="call:CA1", channel="voice", caller="")
    assert rest.get_metadata(request("call:CA1", withheld)) == {"channel": "voice"}
    # The proof is for one conversation: another conversation cannot reuse it.
    assert rest.get_metadata(request("chat:evil", sms)) == {"channel": "chat"}


def test_proofs_expire_and_other_keys_fail():
    now = 1_800_000_000.0
    signed = vouch(KEY, sender="sms:+15555550111", channel="sms", caller="+15555550111", now=now)
    assert vouched(KEY, "sms:+15555550111", signed, now=now + MAX_AGE_S)["channel"] == "sms"
    assert vouched(KEY, "sms:+15555550111", signed, now=now + MAX_AGE_S + 1) == {"channel": "chat"}
    assert vouched(KEY, "sms:+15555550111", signed, now=now - MAX_AGE_S - 1) == {"channel": "chat"}
    other = vouch_key("another-token")
    assert vouched(other, "sms:+15555550111", signed, now=now) == {"channel": "chat"}


def test_any_tampering_is_a_chat_without_a_number():
    """Seeded random metadata, each field changed in turn: only the untouched one verifies."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    now = time.time()
    for _ in range(200):
        number = f"+1555555{rng.randrange(10_000):04d}"
        kind = rng.choice(["sms", "voice"])
        sender = f"{'sms' if kind == 'sms' else 'call'}:{rng.randrange(1 << 40):x}"
        signed = vouch(KEY, sender=sender, channel=kind, caller=number, now=now)
        assert vouched(KEY, sender, signed, now=now) == {"channel": kind, "from": number}, seed
        for field, value in (
            ("from", f"+1555555{rng.randrange(10_000):04d}"),
            ("channel", rng.choice(["sms", "voice", "chat"])),
            ("ts", str(int(now) + rng.randrange(1, 100))),
            ("proof", f"{rng.randrange(1 << 256):064x}"),
        ):
            if value == signed[field]:
                continue
            forged = {**signed, field: value}
            assert vouched(KEY, sender, forged, now=now) == {"channel": "chat"}, (seed, field)
        junk = {k: rng.choice([None, 5, [], {}, "", "x" * 20]) for k in signed}
        assert vouched(KEY, sender, junk, now=now) == {"channel": "chat"}, seed
        assert vouched(KEY, None, signed, now=now) == {"channel": "chat"}
        assert vouched(KEY, sender, "not a dict", now=now) == {"channel": "chat"}


def test_how_a_turn_was_heard_is_vouched_for_too(rasa_token):
    """The bridge says whether a call's turn was spoken (with the ASR confidence) or keyed,
    under the same proof: the actions read back doubtful digits and trust keyed ones."""
    from paybot.dialog.vouch import Heard

    rest = SafeRestInput()
    spoken = vouch(KEY, sender="call:CA1", channel="voice", caller=JAMES,
                   heard=Heard("speech", 0.4234))
    assert rest.get_metadata(request("call:CA1", spoken)) == {
        "channel": "voice", "from": JAMES, "input": "speech", "confidence": "0.42"
    }
    keyed = vouch(KEY, sender="call:CA1", channel="voice", caller="", heard=Heard("keypad"))
    assert rest.get_metadata(request("call:CA1", keyed)) == {"channel": "voice", "input": "keypad"}
    unsure = vouch(KEY, sender="call:CA1", channel="voice", caller="", heard=Heard("speech"))
    assert rest.get_metadata(request("call:CA1", unsure)) == {"channel": "voice", "input": "speech"}
    # Changed after signing (a surer confidence, keyed for spoken, a bad value): not believed.
    for change in ({"confidence": "0.99"}, {"input": "keypad"}, {"confidence": "high"},
                   {"input": "typed"}):
        forged = {**spoken, **change}
        assert rest.get_metadata(request("call:CA1", forged)) == {"channel": "chat"}, change

