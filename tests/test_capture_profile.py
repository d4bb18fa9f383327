"""The secure capture under a payment profile: confirm per field, fields by brand, attempts
and timeouts from the profile; written cases and seeded random key sequences."""

from __future__ import annotations

import random
import re
from datetime import date

import pytest

from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.cards import BRANDS, detect_brand, luhn_check_digit
from paybot.payments.profile import PaymentProfile, build_profile
from tests.test_capture import AMEX, EXPIRY, ROUTING, TODAY, VISA, Caller, names, submitted
from voice_bridge.secure_capture.fields import Prompt
from voice_bridge.secure_capture.session import Done, Submit
from voice_bridge.secure_capture.wording import CaptureWording, load_wording

PER_FIELD = build_profile({"confirm": "per_field"})
NO_AMEX_ZIP = build_profile({"fields_by_brand": {"amex": {"postal_code": False}}})


def test_per_field_reads_each_field_back_and_2_keys_only_that_field_again() -> None:
    caller = Caller(profile=PER_FIELD)
    assert caller.press(VISA + "#") == [
        Prompt("confirm_field", {"field": "card_number", "brand": "visa", "last4": "4242"})
    ]
    assert names(caller.press("1")) == ["expiry"]
    assert caller.press("1230") == [
        Prompt("confirm_field", {"field": "expiry", "brand": "visa", "expiry": "1230"})
    ]
    assert caller.press("2") == [Prompt("expiry", {"attempt": 2})]
    assert caller.session._buffers["expiry"].wiped
    assert not caller.session._buffers["card_number"].wiped  # the number is kept
    assert names(caller.press("1231")) == ["confirm_field"]
    assert names(caller.press("1")) == ["cvc"]
    assert caller.press("123") == [Prompt("confirm_field", {"field": "cvc", "brand": "visa"})]
    assert names(caller.press("#")) == ["zip"]  # '#' goes on as '1' does
    confirm = caller.press("94107")
    assert confirm[0].params["postal_code"] == "94107"
    done = caller.press("1")
    assert names(done) == ["processing", "submit"]
    card = submitted(done)
    assert isinstance(card, CardData) and (card.exp_month, card.exp_year) == (12, 2031)
    assert (card.cvc, card.postal_code) == ("123", "94107")
    assert caller.buffers_wiped()


def test_per_field_read_backs_never_say_the_number_or_the_code() -> None:
    caller = Caller(profile=PER_FIELD)
    wording = CaptureWording()
    caller.press(AMEX + "1" + EXPIRY + "1" + "7391" + "1" + "94107" + "1")
    texts = [wording.text(a) for a in caller.actions if isinstance(a, Prompt)]
    assert "That's your American Express ending 0 0 0 5." in texts[1]
    assert any("expiring 12 30" in t for t in texts)
    assert any("four digit security code. Press 1" in t for t in texts)
    assert not any("7391" in t.replace(" ", "") or AMEX[:6] in t.replace(" ", "") for t in texts)


def test_per_field_re_entries_are_bounded_and_star_cancels() -> None:
    caller = Caller(profile=PER_FIELD)
    caller.press(VISA + "#")
    assert names(caller.press("2")) == ["card_number"]
    caller.press(VISA + "#")
    assert names(caller.press("2")) == ["card_number"]
    caller.press(VISA + "#")
    assert names(caller.press("2")) == ["failed", "done:failed"]
    assert caller.buffers_wiped()
    other = Caller(profile=PER_FIELD)
    other.press(VISA + "#" + "1" + EXPIRY)
    assert names(other.press("*")) == ["cancelled", "done:cancelled"]
    assert other.buffers_wiped()


def test_per_field_other_keys_and_silence_at_a_read_back_ask_again() -> None:
    caller = Caller(profile=PER_FIELD)
    caller.press(VISA + "#")
    assert names(caller.press("7")) == ["invalid_confirm", "confirm_field"]
    assert names(caller.wait(15.0)) == ["timeout", "confirm_field"]
    assert names(caller.press("1")) == ["expiry"]


def test_per_field_slips_are_counted_per_read_back() -> None:
    """Two attempts per field: one slip at the card's read-back and one at the expiry's do not
    fail the capture; a second slip at the same read-back does."""
    two = build_profile({"confirm": "per_field", "max_attempts_per_field": 2})
    caller = Caller(profile=two)
    caller.press(VISA + "#")
    assert names(caller.wait(15.0)) == ["timeout", "confirm_field"]
    assert caller.session.progress.attempts == 1
    assert names(caller.press("1" + EXPIRY)) == ["expiry", "confirm_field"]
    assert caller.session.progress.attempts == 0  # the expiry's read-back: a count of its own
    assert names(caller.press("7")) == ["invalid_confirm", "confirm_field"]
    assert names(caller.press("1")) == ["cvc"]
    caller.press("123")
    assert names(caller.press("7")) == ["invalid_confirm", "confirm_field"]
    assert names(caller.wait(15.0)) == ["failed", "done:failed"]
    assert caller.buffers_wiped()


def test_a_profile_without_zip_for_amex_skips_it_for_amex_only() -> None:
    amex = Caller(profile=NO_AMEX_ZIP)
    out = amex.press(AMEX + EXPIRY + "7391")
    assert names(out) == ["expiry", "cvc", "confirm_card"]
    card = submitted(amex.press("1"))
    assert isinstance(card, CardData) and card.postal_code is None and card.cvc == "7391"
    visa = Caller(profile=NO_AMEX_ZIP)
    assert names(visa.press(VISA + "#" + EXPIRY + "123")) == ["expiry", "cvc", "zip"]


def test_a_brand_without_a_security_code() -> None:
    profile = build_profile({"fields_by_brand": {"visa": {"security_code": False}}})
    caller = Caller(profile=profile)
    assert names(caller.press(VISA + "#" + EXPIRY)) == ["expiry", "zip"]
    card = submitted(caller.press("94107" + "1"))
    assert isinstance(card, CardData) and card.cvc is None and card.postal_code == "94107"


def test_a_new_number_of_another_brand_changes_the_fields_after_confirm_2() -> None:
    caller = Caller(profile=NO_AMEX_ZIP)
    caller.press(AMEX + EXPIRY + "7391")
    assert names(caller.press("2")) == ["card_number"]  # at the end: everything again
    assert names(caller.press(VISA + "#" + EXPIRY + "123")) == ["expiry", "cvc", "zip"]


def test_attempts_and_timeouts_come_from_the_profile() -> None:
    strict = build_profile(
        {"max_attempts_per_field": 1, "timeouts": {"inter_digit_s": 2, "field_start_s": 4}}
    )
    caller = Caller(profile=strict)
    assert caller.wait(3.9) == []
    assert names(caller.wait(0.2)) == ["failed", "done:failed"]
    other = Caller(profile=build_profile({"timeouts": {"inter_digit_s": 2, "field_start_s": 4}}))
    other.press("4242")
    assert other.wait(1.9) == []
    assert names(other.wait(0.2)) == ["timeout", "card_number"]


def test_bank_account_savings_with_confirm_per_field() -> None:
    caller = Caller("bank", profile=PER_FIELD, bank_account_type="savings")
    assert caller.press(ROUTING) == [
        Prompt("confirm_field", {"field": "routing", "brand": None, "last4": "0000"})
    ]
    assert names(caller.press("1")) == ["bank_account"]
    caller.press("000123456789#")
    account = submitted(caller.press("1"))
    assert isinstance(account, BankAccount) and account.account_type == "savings"
    assert account.account_number == "000123456789"


def test_every_capture_response_is_used_and_filled_for_every_field_and_brand() -> None:
    responses = load_wording()
    wording = CaptureWording(["visa", "amex"], choose=lambda variants: variants[0])
    used = set()
    fields = ("card_number", "expiry", "cvc", "zip", "routing", "bank_account")
    prompts = [Prompt(f, {"attempt": a}) for f in fields for a in (1, 2)]
    prompts += [Prompt(f"invalid_{f}", {"field": f, "reason": "x"}) for f in fields]
    prompts += [Prompt("invalid_expiry", {"field": "expiry", "reason": "expired-card"})]
    prompts += [Prompt("timeout", {"field": f}) for f in (*fields, "confirm")]
    prompts += [
        Prompt("confirm_field", {"field": "expiry", "expiry": "1230"}),
        Prompt("confirm_field", {"field": "zip", "postal_code": "94107"}),
        Prompt("confirm_field", {"field": "cvc", "brand": "amex"}),
        *(Prompt("confirm_field", {"field": f, "last4": "4242", "brand": "visa"})
          for f in ("card_number", "routing", "bank_account")),
        Prompt("confirm_card", {"brand": "visa", "last4": "4242"}),
        Prompt("confirm_bank", {"last4": "4242"}),
        Prompt("invalid_confirm"), Prompt("processing"), Prompt("cancelled"), Prompt("failed"),
        Prompt("save_offer", {"field": "card"}), Prompt("save_offer", {"field": "bank"}),
        *(Prompt("brand_not_accepted", {"brand": b}) for b in BRANDS),
    ]
    for prompt in prompts:
        for variant in responses.values():
            used |= {v.text for v in variant}
        text = wording.text(prompt)
        assert text and "{" not in text and "}" not in text, prompt
    said = {wording.text(p) for p in prompts}
    for name, variants in responses.items():
        for variant in variants:
            head = variant.text.split("{")[0]
            assert any(head in s for s in said), (name, variant.text)


# -- seeded random key sequences --------------------------------------------------------------
def _random_card(rng: random.Random, brand: str) -> str:
    prefix = {"visa": "4", "mastercard": "51", "amex": "37", "discover": "6011"}[brand]
    length = 15 if brand == "amex" else 16
    partial = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return partial + luhn_check_digit(partial)


def _random_profile(rng: random.Random) -> PaymentProfile:
    by_brand = {
        b: {"security_code": rng.random() < 0.7, "postal_code": rng.random() < 0.6}
        for b in ("visa", "mastercard", "amex", "discover")
        if rng.random() < 0.5
    }
    return build_profile({
        "confirm": rng.choice(["per_field", "at_end"]),
        "accepted_brands": rng.sample(
            ["visa", "mastercard", "amex", "discover"], rng.randint(1, 4)
        ),
        "max_attempts_per_field": rng.randint(1, 4),
        "fields_by_brand": by_brand,
    })


@pytest.mark.parametrize("seed", range(60))
def test_random_key_storms_keep_the_invariants(seed: int) -> None:
    """Any keys and silences: one end at most, nothing after it, buffers wiped at the end, no
    long digit run spoken, and a submitted card holds exactly the fields the profile asks."""
    rng = random.Random(seed)
    profile = _random_profile(rng)
    brands = ["visa", "mastercard", "amex", "discover"]
    caller = Caller(profile=profile, allowed_brands=list(profile.accepted_brands))
    wording = CaptureWording(profile.accepted_brands)
    pieces = [_random_card(rng, rng.choice(brands)), EXPIRY, "123", "7391", "94107", "1", "2",
              "#", "*", "0", "9"]
    for _ in range(rng.randint(5, 40)):
        if rng.random() < 0.1:
            caller.wait(rng.choice([1.0, 6.0, 16.0]))
        else:
            caller.press(rng.choice(pieces) if rng.random() < 0.7 else rng.choice("0123456789#*"))
    ends = [a for a in caller.actions if isinstance(a, Done | Submit)]
    assert len(ends) <= 1
    if ends:
        assert caller.actions[-1] is ends[0] and caller.buffers_wiped()
    for action in caller.actions:
        if isinstance(action, Prompt):
            assert not re.search(r"\d{6,}", wording.text(action).replace(" ", ""))
    if ends and isinstance(ends[0], Submit) and isinstance(ends[0].method, CardData):
        card = ends[0].method
        brand = detect_brand(card.number)
        assert brand in profile.accepted_brands
        assert (card.cvc is not None) == profile.asks_security_code(brand)
        assert (card.postal_code is not None) == profile.asks_postal_code(brand)
    caller.assert_no_digits_leaked()


@pytest.mark.parametrize("seed", range(40))
def test_random_slips_corrected_with_2_submit_what_was_keyed_last(seed: int) -> None:
    """A caller who confirms each field and sometimes keys a wrong value, presses 2 and keys
    it again: the card submitted is the one keyed last, field by field."""
    rng = random.Random(1000 + seed)
    brand = rng.choice(["visa", "mastercard", "amex", "discover"])
    profile = build_profile({"confirm": "per_field", "max_attempts_per_field": 3})
    caller = Caller(profile=profile)
    end = "#" if brand in ("visa", "discover") else ""  # brands that allow longer numbers
    final = {
        "card_number": _random_card(rng, brand),
        "expiry": f"{rng.randint(1, 12):02d}{rng.randint(26, 40)}",
        "cvc": "".join(rng.choice("0123456789") for _ in range(BRANDS[brand].cvc_length)),
        "zip": f"{rng.randint(0, 99999):05d}",
    }
    for field, value in final.items():
        for _ in range(rng.randint(0, 2)):  # slips, each taken back with 2
            slip = _random_card(rng, brand) if field == "card_number" else value
            caller.press(slip + (end if field == "card_number" else ""))
            assert caller.session.state == "confirming"
            caller.press("2")
        caller.press(value + (end if field == "card_number" else ""))
        out = caller.press("1")
    card = submitted(out)
    assert isinstance(card, CardData)
    assert (card.number, card.cvc, card.postal_code) == (
        final["card_number"], final["cvc"], final["zip"])
    assert f"{card.exp_month:02d}{card.exp_year % 100}" == final["expiry"]
    assert date(card.exp_year, card.exp_month, 28) > TODAY
