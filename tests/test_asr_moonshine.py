"""Moonshine base, a speech candidate (``voice_bridge/asr/moonshine_engine.py``): its model
comes from the installed wheel and is rebuilt for ONNX Runtime, it hears held-out FSDD speakers,
and in a digits turn its text can only be digits (seeded random texts against the rule)."""

from __future__ import annotations

import random
import re

import pytest

from tests.helpers import edit_distance
from tests.test_asr import held_out_strings, needs_fsdd, recognize
from voice_bridge.asr import words_to_digits
from voice_bridge.asr.moonshine_engine import (
    END,
    MAX_DIGITS,
    WORDS,
    DigitsOnly,
    MoonshineEngine,
    valid,
)
from voice_bridge.asr.moonshine_model import model_dir, read_vocabulary

SEED = 20261206
# bench/bench_asr.py (seed 1, 20 strings a speaker): lucas 5%, nicolas 34% digit errors; these 12
# strings 23.4% here, and 5 a speaker drawn with the same seed 35.8% (nicolas's loops and dropped
# digits). The bar is a sanity check, not the figure: an engine that hears nothing, or only
# noise, or loops on every string, gets most digits wrong.
DIGIT_ERROR_BAR = 0.45


@pytest.fixture(scope="module")
def engine():
    made = MoonshineEngine()
    yield made
    made.close()


def _digits_text(rng: random.Random) -> str:
    """A random digits text as Moonshine writes them: words (any capitals) and numerals."""
    out = ""
    for i in range(rng.randint(1, 9)):
        if i:
            out += rng.choice([" ", ", ", "-", "/", ","])
        if rng.random() < 0.6:
            word = rng.choice(WORDS)
            out += rng.choice([word, word.capitalize(), word.upper()])
        else:
            out += "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 4)))
    return out + rng.choice(["", ".", ""])


def test_every_start_of_a_digits_text_is_allowed_and_nothing_else():
    rng = random.Random(SEED)
    for _ in range(600):
        text = _digits_text(rng).lower()
        said = words_to_digits(re.sub(r"[,./-]", " ", text))
        if len(said) > MAX_DIGITS or re.search(r"(\d)\1{3}", said):  # too long, or a loop
            assert not valid(text, final=True), text
            continue
        assert valid(text, final=True), text
        for end in range(len(text)):
            assert valid(text[:end]), (text, end)
    for bad in ("little", "two little", "nine  two", "one..", "one. two", "won", "7,, 3",
                " ", "tree", "two, fiv e"):  # fmt: skip
        assert not (valid(bad) and valid(bad, final=True)), bad
    for unfinished in ("", "fiv", "one, t", "thr", "seven-ei"):
        assert valid(unfinished) and not valid(unfinished, final=True), unfinished


def test_the_tokens_offered_next_keep_the_text_a_digits_text():
    digits = DigitsOnly(read_vocabulary(model_dir() / "tokenizer.bin"))
    fresh = DigitsOnly(read_vocabulary(model_dir() / "tokenizer.bin"))
    assert any(piece.strip().lower() == "one" for piece in digits.pieces.values())
    rng = random.Random(SEED)
    text = ""
    for _ in range(50):
        allowed = digits.allowed(text)
        assert allowed == fresh._allowed_uncached(text)  # the memo changes nothing
        for token in allowed:
            if token != END:
                assert valid((text + digits.pieces[token]).lower()), (text, token)
        assert allowed, text
        if END in allowed and len(allowed) > 1:
            assert valid(text.lower(), final=True), text
        token = rng.choice(allowed)
        text = "" if token == END else text + digits.pieces[token]


def test_the_model_is_the_installed_wheels_and_loads_rebuilt(engine):
    path = model_dir()
    assert "site-packages" in str(path) and (path / "decoder_model_merged.ort").stat().st_size > 4e7
    assert len(read_vocabulary(path / "tokenizer.bin")) == 32000
    assert engine.name == "moonshine-base"


@needs_fsdd
def test_moonshine_hears_held_out_fsdd_speakers(engine):
    errors = total = 0
    heard = []
    for speaker, ref, pcm in held_out_strings(6, seed=SEED % 1000):
        text = recognize(engine, pcm, "digits")
        hyp = words_to_digits(text)
        assert set(text.split()) <= set(WORDS), text  # digits only
        errors += edit_distance(ref, hyp)
        total += len(ref)
        heard.append(f"{speaker} {ref}->{hyp}")
    assert errors / total <= DIGIT_ERROR_BAR, f"{errors / total:.1%}: {heard}"
    # The same audio is heard the same way (the added noise is seeded by the audio).
    _, _, pcm = held_out_strings(1, seed=3)[0]
    assert recognize(engine, pcm, "digits") == recognize(engine, pcm, "digits")


def test_too_little_audio_is_nothing(engine):
    rec = engine.recognizer("digits")
    rec.accept(b"\x00\x00" * 400)
    transcript = rec.final()
    assert transcript.text == "" and transcript.confidence == 0.0
