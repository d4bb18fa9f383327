"""The pieces of the voice tests that need no stack: the caller voice picked per run, the count
of questions asked in a row, and the speaking caller's answers to the bot's real wording."""

from __future__ import annotations

import random

import pytest

from actions.responses import load_responses
from tests.caller_voice import SEED_ENV, VOICE_ENV, choose
from tests.questions import longest_runs, question_of
from tests.spoken_caller import CallerConfused, SpeakingCaller, digits
from twilio_sim.voice import CALLER_VOICES, pick_voice


def test_the_pool_has_at_least_three_voices_and_every_seed_picks_one_of_them():
    assert len(set(CALLER_VOICES)) >= 3
    picked = {pick_voice(seed) for seed in range(200)}
    assert picked == set(CALLER_VOICES)  # each voice comes up
    rng = random.Random(5)
    for seed in (rng.randrange(10**6) for _ in range(50)):
        assert pick_voice(seed) == pick_voice(seed)  # a seed replays its voice


def test_the_environment_replays_a_seed_or_names_a_voice():
    assert choose({SEED_ENV: "1234"}).voice == pick_voice(1234)
    assert choose({SEED_ENV: "1234"}).seed == 1234
    assert choose({VOICE_ENV: "en-gb+m3", SEED_ENV: "1"}).voice == "en-gb+m3"
    fresh = choose({})
    assert fresh.voice in CALLER_VOICES and f"{SEED_ENV}={fresh.seed}" in fresh.describe()
    with pytest.raises(ValueError, match=SEED_ENV):
        choose({SEED_ENV: "seven"})
    with pytest.raises(ValueError, match=VOICE_ENV):
        choose({VOICE_ENV: " "})


def text(name: str, **values: str) -> str:
    """The bot's wording of response ``name`` on a call (no other condition), filled."""
    variants = load_responses()[name]
    voice = next(v for v in variants if set(v.conditions) <= {("channel", "voice")})
    return voice.text.format(**values)


def test_questions_are_known_by_their_response_whatever_the_values():
    assert question_of(text("ask_ready_to_pay", first_name="Ann", balance="$5.00", due="May 1",
                            minimum="$1.00")) == "ask_ready_to_pay"
    assert question_of("Hello James, are you ready to make your payment of $1.00 now?") == (
        "ask_ready_to_pay")
    assert question_of(text("read_back", digits="9 4 1")) == "read_back"
    assert question_of("something the bot never says") == "something the bot never says"


def test_read_backs_do_not_break_a_run_and_others_do():
    rng = random.Random(11)
    for _ in range(200):  # a question asked n times, each maybe read back, then another
        n = rng.randint(1, 6)
        asked = []
        for _ in range(n):
            asked.append(("ask_caller_zip", ""))
            if rng.random() < 0.6:
                asked.append(("read_back", ""))
        asked.append(("ask_ready_to_pay", ""))
        runs = longest_runs(asked)
        assert runs["ask_caller_zip"] == n and runs["ask_ready_to_pay"] == 1
        assert runs.get("read_back", 1) == 1
    broken = [("a", ""), ("a", ""), ("b", ""), ("a", ""), ("a", "")]
    assert longest_runs(broken)["a"] == 2
    assert longest_runs([("read_back", "")] * 4)["read_back"] == 4


def james() -> SpeakingCaller:
    return SpeakingCaller(zip_words="nine four one zero seven",
                          account_words="one zero zero two zero zero three zero zero")


def test_the_speaking_caller_answers_the_bots_questions_and_never_keys():
    person = james()
    assert person.heard(text("ask_caller_zip")) == "nine four one zero seven"
    assert person.heard(text("read_back", digits="9 4 1 0 1")) == "no"
    assert person.heard(text("silence")) == "no"  # said again, as a person would
    assert person.heard(text("ask_caller_zip")) == "nine four one zero seven"
    assert person.heard(text("read_back", digits="9 4 1 0 7")) == "yes"
    assert person.heard(text("ask_account_number")).startswith("one zero")
    assert person.heard(text("read_back", digits="1 0 0 2 0 0 3 0 0")) == "yes"
    ready = text("ask_ready_to_pay", first_name="James", balance="$321.72", due="", minimum="")
    assert person.heard(ready) == "yes"
    stored = text("ask_payment_method_stored", method_label="Visa ending 4242")
    assert person.heard(stored) == "yes please"
    assert person.heard(text("ask_confirm_payment", disclosure="$321.72.",
                             method_label="Visa ending 4242")) == "yes"
    assert person.heard(text("ask_receipt")) == "no"
    assert person.heard(text("anything_else")) == "no"
    assert person.heard(text("goodbye")) is None
    with pytest.raises(CallerConfused):
        person.heard("Please key in your card number.")


def test_digits_are_read_from_figures_and_words():
    rng = random.Random(3)
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    for _ in range(100):
        number = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))
        assert digits(" ".join(number)) == number
        assert digits(" ".join(words[int(d)] for d in number)) == number
