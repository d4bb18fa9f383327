"""The hybrid engine (PAYBOT_ASR_ENGINE=hybrid): PocketSphinx streaming, Whisper for digits.

Real models, real speech: FSDD recordings of speakers nothing was tuned on (lucas, nicolas;
george and jackson are the tuning speakers); the Whisper base model joined from its two
installed packages; the digits-only vocabulary built from the real tokenizer. The default
engine without a Vosk model is still PocketSphinx (the docs/benchmarks.md say why).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.helpers import edit_distance
from voice_bridge.asr import ExpectedInput, make_asr_engine, words_to_digits
from voice_bridge.asr.hybrid_engine import HybridEngine, HybridRecognizer
from voice_bridge.asr.pocketsphinx_engine import PocketSphinxRecognizer
from voice_bridge.call.vad import turn_config
from voice_bridge.twilio import codec as A

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
if not FSDD.is_dir():
    FSDD = Path("/work/shared/data/fsdd")
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD}")
HELD_OUT = ("lucas", "nicolas")
# bench/bench_asr.py measured the hybrid at 3.9-7.0% digit errors on the four held-out speakers
# (README, "Benchmarks"), nicolas 7.5-16.7%; these 16 strings (seed 21, measured once, nothing
# chosen on them) gave lucas 0% and nicolas 34%, 17% in all. PocketSphinx alone
# makes 30-40% on nicolas; an engine that hears nothing or only its prompt 100%.
DIGIT_ERROR_BAR = 0.20


@pytest.fixture(scope="module")
def hybrid():
    engine = make_asr_engine(None, decoders=2, engine="hybrid")
    yield engine
    engine.close()


def held_out_turns(per_speaker: int, seed: int) -> list[tuple[str, str, bytes]]:
    """(speaker, digits, a digits turn as the bridge hands it over), held-out speakers only."""
    rng = random.Random(seed)
    config = turn_config("digits")
    out = []
    for speaker in HELD_OUT:
        files = sorted(FSDD.glob(f"*_{speaker}_*.wav"))
        for _ in range(per_speaker):
            chosen = [rng.choice(files) for _ in range(rng.randint(4, 7))]
            pcm = b""
            for path in chosen:
                pcm += A.read_wav(path)[0] + A.silence_pcm16(rng.randint(100, 300), 8000)
            line = A.ulaw_to_pcm16(A.pcm16_to_ulaw(pcm))
            turn = (A.silence_pcm16(config.pre_roll_ms, 8000) + line
                    + A.silence_pcm16(config.end_silence_ms, 8000))
            out.append((speaker, "".join(p.name[0] for p in chosen), turn))
    return out


def feed(recognizer, pcm: bytes):  # noqa: ANN001, ANN201
    for chunk in A.iter_frames(pcm, A.PCM_FRAME_BYTES * 5, pad=0):  # 100 ms, as the bridge
        recognizer.accept(chunk)
    return recognizer.final()


def test_auto_without_vosk_is_still_pocketsphinx() -> None:
    from voice_bridge.asr.pocketsphinx_engine import PocketSphinxEngine

    engine = make_asr_engine(None, decoders=1)
    try:
        assert isinstance(engine, PocketSphinxEngine)
    finally:
        engine.close()


def test_the_hybrid_engine_streams_with_pocketsphinx(hybrid) -> None:
    assert isinstance(hybrid, HybridEngine)
    assert hybrid.whisper.name.startswith("whisper-base")
    # Yes/no, amounts and free speech stay PocketSphinx's; digits get Whisper's text.
    assert isinstance(hybrid.recognizer("yes_no"), PocketSphinxRecognizer)
    assert isinstance(hybrid.recognizer("free"), PocketSphinxRecognizer)
    rec = hybrid.recognizer("digits")
    assert isinstance(rec, HybridRecognizer)
    rec.close()


@needs_fsdd
def test_hybrid_hears_held_out_fsdd_speakers(hybrid) -> None:
    errors = total = exact = 0
    per_speaker: dict[str, list[int]] = {}
    turns = held_out_turns(8, seed=21)
    for speaker, ref, pcm in turns:
        hyp = words_to_digits(feed(hybrid.recognizer("digits"), pcm).text)
        err = edit_distance(ref, hyp)
        errors, total, exact = errors + err, total + len(ref), exact + (hyp == ref)
        counts = per_speaker.setdefault(speaker, [0, 0])
        counts[0] += err
        counts[1] += len(ref)
    rate = errors / total
    detail = {s: f"{e / t:.0%}" for s, (e, t) in per_speaker.items()}
    assert rate <= DIGIT_ERROR_BAR, f"{rate:.1%} digit errors {detail}, exact {exact}"
    assert exact >= len(turns) // 2, f"only {exact}/{len(turns)} strings exactly right"


@needs_fsdd
def test_partials_stream_from_pocketsphinx_while_the_caller_speaks(hybrid) -> None:
    _, ref, pcm = held_out_turns(1, seed=4)[0]
    rec = hybrid.recognizer("digits")
    half = len(pcm) // 2 // 320 * 320
    rec.accept(pcm[:half])
    partial = rec.partial()  # PocketSphinx's, ready at once: Whisper has not decoded yet
    rec.accept(pcm[half:])
    transcript = rec.final()
    assert words_to_digits(partial)
    assert edit_distance(ref, words_to_digits(transcript.text)) <= 1
    assert transcript.confidence is not None and 0 < transcript.confidence <= 1


@needs_fsdd
def test_no_speculative_decode_starts_while_whisper_is_busy(hybrid) -> None:
    """Under load every digits turn costs one decode: none is spent on audio that goes stale."""
    whisper = hybrid.digits
    (_, _, first), (_, ref, pcm) = held_out_turns(2, seed=8)[:2]
    rec = hybrid.recognizer("digits")
    decodes = hybrid.whisper.decodes
    # Other calls' decodes: enough queued that a worker stays busy while this turn is fed.
    busy = [whisper.submit(first, ExpectedInput.DIGITS) for _ in range(8)]
    assert not whisper.idle
    for chunk in A.iter_frames(pcm, A.PCM_FRAME_BYTES * 5, pad=0):
        rec.accept(chunk)  # pauses of 400 ms and more: would speculate if a worker were idle
    assert not whisper.idle
    assert rec.speculated == 0
    for future in busy:
        future.result()
    transcript = rec.final()
    # The busy ones, then this turn's one (tiny.en's rechecks are counted apart).
    assert hybrid.whisper.decodes == decodes + len(busy) + 1
    assert edit_distance(ref, words_to_digits(transcript.text)) <= 1


@needs_fsdd
def test_an_idle_engine_decodes_during_the_end_of_turn_silence(hybrid) -> None:
    import threading

    _, ref, pcm = held_out_turns(1, seed=3)[0]
    rec = hybrid.recognizer("digits")
    for chunk in A.iter_frames(pcm, A.PCM_FRAME_BYTES * 5, pad=0):
        rec.accept(chunk)
    # The caller stays quiet; audio keeps arriving every 100 ms (on a busy machine a decode of
    # an earlier pause may take seconds, and the next starts only after it).
    for _ in range(600):
        rec.accept(A.silence_pcm16(100, 8000))
        if rec.ready:
            break
        threading.Event().wait(0.1)
    assert rec.ready and rec.speculated >= 1
    transcript = rec.final()
    assert transcript.finalize_ms < 100, transcript
    assert edit_distance(ref, words_to_digits(transcript.text)) <= 1


def test_a_digits_only_vocabulary_allows_digits_and_the_anytime_requests() -> None:
    import tokenizers

    from voice_bridge.asr.whisper_models import model_files
    from voice_bridge.asr.whisper_vocab import anytime_token_ids, digits_suppress_ids

    tokenizer = tokenizers.Tokenizer.from_file(str(model_files("base").tokenizer_json))
    suppressed = set(digits_suppress_ids(tokenizer))
    vocab = tokenizer.get_vocab_size()
    allowed = set(range(vocab)) - suppressed
    by_text: dict[str, int] = {}
    for i in range(vocab):
        by_text.setdefault(tokenizer.decode([i], skip_special_tokens=False), i)

    def token_id(token: str) -> int:
        return by_text[token]

    for token in (" 4", "0", " 9", ",", " agent", " goodbye", "<|endoftext|>"):
        assert token_id(token) in allowed, token
    for token in (" 19", " 201", " the", " four", "<|notimestamps|>", "<|en|>"):
        assert token_id(token) in suppressed, token
    rng = random.Random(5)
    anytime = anytime_token_ids(tokenizer)
    for token_id in rng.sample(sorted(allowed), 40):  # every allowed token is one of these
        text = tokenizer.decode([token_id])
        assert token_id in anytime or text.strip() in {"", ",", ".", "-"} or (
            text.strip().isdigit() and len(text.strip()) == 1
        ) or token_id == tokenizer.token_to_id("<|endoftext|>"), repr(text)
    assert len(allowed) < 200


def test_the_base_model_is_joined_from_its_installed_packages() -> None:
    from voice_bridge.asr.whisper_models import model_files

    located = model_files("base")
    # float16 Whisper base, in memory only: nothing is written or downloaded.
    assert len(located.files["model.bin"]) > 140e6
    assert "site-packages" in str(located.tokenizer_json)
    assert not Path(located.path).exists()
