"""Speech text normalisation and Piper synthesis with the bundled joe voice."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from voice_bridge.tts import PiperTts, TtsError, default_voice_path, split_sentences
from voice_bridge.tts.normalize import (
    amount_to_words,
    date_to_words,
    digits_in_groups,
    normalize_for_speech,
    number_to_words,
    phone_to_words,
)
from voice_bridge.twilio import codec as A

PROMPT = "Hello James, are you ready to make your payment of $321.72 now?"


@pytest.fixture(scope="module")
def tts() -> PiperTts:
    return PiperTts(cache_size=8)


# --- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("$321.72", "three hundred twenty one dollars and seventy two cents"),
        ("$1.00", "one dollar"),
        ("$0.05", "five cents"),
        ("$1,200", "one thousand two hundred dollars"),
        ("-$5.25", "minus five dollars and twenty five cents"),
        ("2026-12-03", "December third"),
        ("2026-02-30", "2026-02-30"),  # not a date: left alone
        ("482913705", "4 8 2, 9 1 3, 7 0 5"),
        ("1234567", "1 2 3, 4 5 6 7"),
        ("+14155550123", "4 1 5, 5 5 5, 0 1 2 3"),
        ("+442079460958", "plus 4 4, 2 0, 7 9 4 6, 0 9 5 8"),
        ("card ending 4242", "card ending 4 2 4 2"),
        ("Press 1 or 2.", "Press 1 or 2."),
    ],
)
def test_normalize_for_speech(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


def test_normalizers_directly() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(1_000_017) == "one million seventeen"
    assert amount_to_words(Decimal("20.1")) == "twenty dollars and ten cents"
    assert date_to_words("2026-11-22", with_year=True) == "November twenty second twenty twenty six"
    assert digits_in_groups("12") == "1 2"
    assert phone_to_words("+18005551234") == "8 0 0, 5 5 5, 1 2 3 4"


def test_full_prompt_normalized() -> None:
    assert normalize_for_speech(PROMPT) == (
        "Hello James, are you ready to make your payment of three hundred twenty one dollars "
        "and seventy two cents now?"
    )


def test_split_sentences() -> None:
    assert split_sentences("Thank you. Your number is 4 8 2. Dr. Lee agrees! Ok?") == [
        "Thank you.", "Your number is 4 8 2.", "Dr. Lee agrees!", "Ok?",
    ]
    assert split_sentences("Pay three dollars.Then stop") == ["Pay three dollars.Then stop"]
    assert split_sentences("  ") == []


# --- Piper ------------------------------------------------------------------------------------


def test_bundled_voice_is_found() -> None:
    path = default_voice_path()
    assert path.suffix == ".onnx" and path.is_file()
    assert Path(f"{path}.json").is_file()


def test_missing_voice_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TtsError, match="not found"):
        PiperTts(tmp_path / "none.onnx")


def test_prompt_is_non_silent_speech_of_plausible_length(tts: PiperTts) -> None:
    pcm = tts.synthesize(PROMPT)
    seconds = A.duration_ms(pcm, tts.sample_rate) / 1000
    words = len(normalize_for_speech(PROMPT).split())
    assert tts.sample_rate == 22050
    assert 0.2 * words < seconds < 0.6 * words  # about 100-300 words a minute
    levels = [A.rms_dbfs(f) for f in A.iter_frames(pcm, 2 * tts.sample_rate // 50)]
    assert max(levels) > -20  # loud speech
    assert np.mean(np.array(levels) > -40) > 0.5  # mostly voiced, not silence


def test_stream_yields_sentences_in_order_and_caches(tts: PiperTts) -> None:
    text = "Thank you. Your confirmation number is 482913705."
    first = list(tts.stream(text))
    assert [s.index for s in first] == list(range(len(tts.plan(text)))) and len(first) > 2
    assert first[0].audio_ms < first[1].audio_ms  # "Thank you." / "Your confirmation ..."
    again = list(tts.stream(text))
    assert all(s.cached and s.synth_ms == 0 for s in again)
    assert [s.pcm16 for s in again] == [s.pcm16 for s in first]
    hits, _ = tts.cache_stats()
    assert hits >= 2


def test_ulaw_frames_for_twilio(tts: PiperTts) -> None:
    sentence = next(tts.stream("Your payment is complete."))
    frames = sentence.ulaw_frames()
    assert all(len(f) == A.ULAW_FRAME_BYTES for f in frames)
    assert abs(len(frames) * 20 - sentence.audio_ms) <= 20
    decoded = A.ulaw_to_pcm16(b"".join(frames))
    assert A.rms_dbfs(decoded) > -35
    assert len(tts.ulaw_frames("Goodbye.")) > 10


def test_long_sentences_are_cut_at_their_clauses(tts: PiperTts) -> None:
    from voice_bridge.tts.piper_engine import split_clauses

    plan = tts.plan("Hello James, are you ready to make your payment of $321.72 now? Thanks.")
    assert plan[0] == "Hello James," and plan[1].startswith("are you ready to make your payment")
    assert plan[2:] == ["Thanks."]
    plan = tts.plan("To confirm: Your payment is $5.00, plus a $2.00 fee, for a total of $7.00.")
    assert plan == ["To confirm:", "Your payment is five dollars,", "plus a two dollars fee,",
                    "for a total of seven dollars."]
    assert split_clauses("Yes, sure.") == ["Yes, sure."]  # short: whole
    assert split_clauses("Okay, so what we will do now is take the payment, Sam.") == [
        "Okay, so what we will do now is take the payment, Sam."
    ]  # one-word clauses stay with their neighbour


def test_synthesis_time_estimate_learns_and_knows_the_cache(tts: PiperTts) -> None:
    tts.sentence("A sentence to measure the pace with.")
    assert tts.estimate_ms("A sentence to measure the pace with.") == 0.0  # cached
    assert tts.estimate_ms("Something never said before, quite long indeed.") > 0.0


def test_static_prompts_are_warmed_into_the_cache(tts: PiperTts) -> None:
    from voice_bridge.runtime import PROJECT_ROOT
    from voice_bridge.tts.warmup import static_prompts, warm_up

    prompts = static_prompts(PROJECT_ROOT)
    assert "Please key in your card number, then press pound." in prompts
    assert len(prompts) == len(set(prompts)) and len(prompts) > 10
    template = next(p for p in prompts if p.startswith("To confirm:"))
    assert warm_up(tts, [*prompts[:3], template]) > 3
    assert all(tts.estimate_ms(s) == 0.0 for p in prompts[:3] for s in tts.plan(p))
    assert tts.estimate_ms("To confirm:") == 0.0  # the template's first clause
    assert all(tts.estimate_ms(s) > 0 for s in tts.plan(template) if "{" in s)


def test_a_second_start_reads_the_warmed_prompts_from_disk(tmp_path: Path) -> None:
    """The first warm-up synthesises and stores; a new voice object (the next start) gets
    the same audio from the store without synthesising; another voice setting does not."""
    from voice_bridge.tts.prompt_store import PromptStore
    from voice_bridge.tts.warmup import warm_up

    texts = ["Thank you for calling. Goodbye!", "Sorry, I didn't hear anything."]
    first = PiperTts(cache_size=16)
    store = PromptStore(tmp_path, first.voice_key())
    assert warm_up(first, texts, store) == 3
    pieces = [p for t in texts for p in first.plan(t)]
    assert len(list(store.directory.glob("*.ulaw"))) == len(pieces)

    second = PiperTts(cache_size=16)
    assert warm_up(second, texts, PromptStore(tmp_path, second.voice_key())) == 3
    assert second.cache_stats() == (0, 0)  # nothing synthesised, nothing looked up yet
    for piece in pieces:
        assert second.cached_audio(piece) == first.cached_audio(piece)

    slower = PiperTts(cache_size=16, length_scale=1.3)
    assert slower.voice_key() != first.voice_key()
    assert PromptStore(tmp_path, slower.voice_key()).get(pieces[0]) is None


def test_a_store_that_cannot_be_written_switches_itself_off(tmp_path: Path) -> None:
    from voice_bridge.tts.prompt_store import PromptStore

    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    store = PromptStore(blocked, "voice")
    store.put("Hello.", b"\xff" * 160)
    assert not store.enabled and store.get("Hello.") is None
