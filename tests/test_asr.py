"""ASR: grammars, the engine factory, and real speech through the real engines.

PocketSphinx (bundled en-us model) is measured on digit strings built from FSDD recordings of
four real speakers and on phrases synthesised by Piper and (when installed) espeak-ng. Vosk
runs only when PAYBOT_VOSK_MODEL points at an unpacked model; otherwise those tests skip.
The free-speech domain language model is tested as an ARPA file and by ear.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers import edit_distance
from voice_bridge.asr import (
    AsrError,
    AsrModelError,
    ExpectedInput,
    make_asr_engine,
    words_to_digits,
)
from voice_bridge.asr.domain_corpus import (
    domain_sentences,
    nlu_examples,
    spoken_words,
    strip_entities,
)
from voice_bridge.asr.domain_lm import build_arpa, cached_file
from voice_bridge.asr.grammars import NO_PHRASES, YES_PHRASES, jsgf, vocabulary, vosk_phrases
from voice_bridge.asr.pocketsphinx_engine import PocketSphinxEngine, PocketSphinxOptions
from voice_bridge.asr.pocketsphinx_lm import (
    DEFAULT_NLU_DIR,
    DomainLmOptions,
    dictionary_words,
    domain_lm_file,
)
from voice_bridge.asr.vosk_engine import VOSK_MODEL_ENV, check_vosk_model_dir
from voice_bridge.call.vad import turn_config
from voice_bridge.twilio import codec as A

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
if not FSDD.is_dir():
    FSDD = Path("/work/shared/data/fsdd")
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD}")
ESPEAK = shutil.which("espeak-ng")
IN_CI = os.environ.get("CI", "").lower() == "true"
VOSK_MODEL = os.environ.get(VOSK_MODEL_ENV)
needs_vosk = pytest.mark.skipif(
    not VOSK_MODEL, reason=f"no Vosk model: set {VOSK_MODEL_ENV} to an unpacked model directory"
)
SPEAKERS = ("george", "jackson", "lucas", "nicolas")


# --- helpers ----------------------------------------------------------------------------------


def phone_line(pcm16: bytes, rate: int) -> bytes:
    """What the bridge would hear: resampled to 8 kHz and through μ-law."""
    return A.ulaw_to_pcm16(A.pcm16_to_ulaw(A.resample(pcm16, rate, 8000)))


def digit_strings(count: int, seed: int) -> list[tuple[str, bytes]]:
    """FSDD digit strings (4-7 digits, one speaker each, 100-300 ms pauses), phone-coded."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        files = sorted(FSDD.glob(f"*_{SPEAKERS[i % len(SPEAKERS)]}_*.wav"))
        chosen = [rng.choice(files) for _ in range(rng.randint(4, 7))]
        pcm = A.silence_pcm16(300, 8000)
        for path in chosen:
            pcm += A.read_wav(path)[0] + A.silence_pcm16(rng.randint(100, 300), 8000)
        out.append(("".join(p.name[0] for p in chosen), phone_line(pcm, 8000)))
    return out


def recognize(engine, pcm16_8k: bytes, expected: str) -> str:
    rec = engine.recognizer(expected)
    for frame in A.iter_frames(pcm16_8k, A.PCM_FRAME_BYTES, pad=0):
        rec.accept(frame)
    return rec.final().text


def espeak(text: str, voice: str, *options: str) -> bytes:
    """Synthesise with espeak-ng (a voice unlike the bot's) and return 8 kHz phone audio.

    ``options`` are extra espeak-ng arguments (default ``-s 150``, the speed in words/minute).
    """
    wav = subprocess.run(
        [ESPEAK, "-v", voice, *(options or ("-s", "150")), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    import io
    import wave

    with wave.open(io.BytesIO(wav)) as w:
        return phone_line(w.readframes(w.getnframes()), w.getframerate())


def require_espeak() -> None:
    """Skip without espeak-ng, except under CI=true, where its absence is a failure."""
    if ESPEAK:
        return
    if IN_CI:
        pytest.fail("espeak-ng is required under CI=true (apt-get install espeak-ng)")
    pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")


def as_turn(pcm16_8k: bytes, expected: str) -> bytes:
    """Speech framed as the bridge hands a turn to ASR: VAD pre-roll, then the ending silence."""
    config = turn_config(expected)
    return (
        A.silence_pcm16(config.pre_roll_ms, 8000)
        + pcm16_8k
        + A.silence_pcm16(config.end_silence_ms, 8000)
    )


def parse_arpa(text: str) -> tuple[dict[int, int], dict[int, dict[tuple[str, ...], tuple]]]:
    """Return an ARPA file's header counts and, per order, n-gram → (log10 prob, back-off)."""
    counts: dict[int, int] = {}
    grams: dict[int, dict[tuple[str, ...], tuple]] = {}
    order = 0
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        if line in ("\\data\\", "\\end\\"):
            order = 0
        elif line.startswith("ngram "):
            n, count = line[len("ngram ") :].split("=")
            counts[int(n)] = int(count)
        elif line.endswith("-grams:"):
            order = int(line[1:].split("-")[0])
            grams[order] = {}
        else:
            fields = line.split("\t")
            gram = tuple(fields[1].split())
            assert len(gram) == order, line
            backoff = float(fields[2]) if len(fields) > 2 else None
            grams[order][gram] = (float(fields[0]), backoff)
    return counts, grams


def backoff_log10(grams: dict, gram: tuple[str, ...]) -> float:
    """log10 P(last word | the others) under an ARPA back-off model."""
    if gram in grams[len(gram)]:
        return grams[len(gram)][gram][0]
    alpha = grams[len(gram) - 1].get(gram[:-1], (0.0, None))[1] or 0.0
    return alpha + backoff_log10(grams, gram[1:])


def answer_kind(text: str) -> str:
    if text in YES_PHRASES:
        return "yes"
    return "no" if text in NO_PHRASES else "?"


@pytest.fixture(scope="module")
def ps_engine(tmp_path_factory: pytest.TempPathFactory) -> PocketSphinxEngine:
    cache = tmp_path_factory.mktemp("asr-cache")  # build the domain LM afresh, as on a new host
    return PocketSphinxEngine(PocketSphinxOptions(free_lm=DomainLmOptions(cache_dir=cache)))


@pytest.fixture(scope="module")
def dictionary() -> set[str]:
    import pocketsphinx

    return dictionary_words(pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"))


@pytest.fixture(scope="module")
def piper():
    from voice_bridge.tts import PiperTts

    return PiperTts(cache_size=0)


# --- grammars and factory ---------------------------------------------------------------------


def test_every_grammar_compiles_and_uses_dictionary_words(ps_engine: PocketSphinxEngine) -> None:
    decoder = ps_engine._new_slot().decoder
    for expected in ExpectedInput:
        missing = sorted(w for w in vocabulary(expected) if decoder.lookup_word(w) is None)
        assert missing == [], expected
    assert jsgf("free") is None and vosk_phrases("free") is None


def test_vosk_grammar_lists() -> None:
    digits = vosk_phrases("digits")
    assert digits[-1] == "[unk]" and "four two" in digits and "two four" in digits
    assert json.loads(json.dumps(digits)) == digits
    assert {"yes", "no", "[unk]"} <= set(vosk_phrases("yes_no"))
    amount = " ".join(vosk_phrases("amount"))
    for word in ("hundred", "dollars", "cents", "seventy", "thousand"):
        assert word in amount


def test_words_to_digits() -> None:
    assert words_to_digits("four two oh seven zero") == "42070"
    assert words_to_digits("uh four 2 yes") == "42"


def test_factory_builds_pocketsphinx_on_request() -> None:
    engine = make_asr_engine(None, engine="pocketsphinx")
    assert isinstance(engine, PocketSphinxEngine)
    assert engine.name == "pocketsphinx-16k"


def test_decoders_are_built_up_front_and_a_busy_pool_grows_with_a_warning(caplog) -> None:
    engine = make_asr_engine(None, decoders=3, engine="pocketsphinx")
    assert engine.decoders_created == 3
    turns = [engine.recognizer(mode) for mode in ("yes_no", "free", "digits")]
    assert engine.decoders_created == 3  # three turns at once: no decoder built mid-call
    with caplog.at_level("WARNING", logger="voice_bridge.asr.pocketsphinx_engine"):
        turns.append(engine.recognizer("yes_no"))
    assert engine.decoders_created == 4 and "raise PAYBOT_ASR_DECODERS" in caplog.text
    for turn in turns:
        turn.close()
    engine.recognizer("free").close()  # the pool keeps them: no more are built
    assert engine.decoders_created == 4


def test_a_bridge_with_a_call_limit_builds_a_decoder_per_call_up_front() -> None:
    from paybot.settings import Settings
    from voice_bridge.runtime import _load_models, decoders_up_front

    assert decoders_up_front(Settings(asr_decoders=8, max_calls=0)) == 8  # no limit: the setting
    assert decoders_up_front(Settings(asr_decoders=8, max_calls=20)) == 20  # never one mid-call
    assert decoders_up_front(Settings(asr_decoders=12, max_calls=10)) == 12
    # What the bridge loads at start-up: three calls allowed, three decoders built.
    asr, _tts = _load_models(Settings(asr_decoders=1, max_calls=3, asr_engine="pocketsphinx"))
    assert isinstance(asr, PocketSphinxEngine) and asr.decoders_created == 3


def test_factory_rejects_missing_vosk_dir(tmp_path: Path) -> None:
    with pytest.raises(AsrModelError, match="not found.*PAYBOT_VOSK_MODEL"):
        make_asr_engine(str(tmp_path / "nope"))


def test_factory_rejects_dir_that_is_not_a_vosk_model(tmp_path: Path) -> None:
    (tmp_path / "vosk-model-small-en-us-0.15" / "am").mkdir(parents=True)
    with pytest.raises(AsrModelError, match=r"missing am/final\.mdl.*did you mean"):
        make_asr_engine(tmp_path)
    with pytest.raises(AsrModelError, match="conf/mfcc.conf"):
        check_vosk_model_dir(tmp_path / "vosk-model-small-en-us-0.15")


def test_model_dir_check_reads_sample_rate(tmp_path: Path) -> None:
    (tmp_path / "am").mkdir()
    (tmp_path / "conf").mkdir()
    (tmp_path / "am" / "final.mdl").write_bytes(b"")
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n--sample-frequency=8000\n")
    assert check_vosk_model_dir(tmp_path) == 8000


# --- the free-speech domain language model ---------------------------------------------------


def test_entity_markup_is_stripped() -> None:
    text = 'pay [50](amount) with my [credit card]{"entity": "method", "value": "card"} now'
    assert strip_entities(text) == "pay 50 with my credit card now"


def test_written_examples_become_spoken_words() -> None:
    cases = {
        "Acct # 200300400": "account number two zero zero three zero zero four zero zero",
        "I'll pay $150.50 pls": "i'll pay one hundred fifty dollars and fifty cents please",
        "60$": "sixty dollars",
        "can I pay on the 1st?": "can i pay on the first",
        "schedule it for 12/3": "schedule it for december third",
        "The one at 48 Pine Ave": "the one at forty eight pine avenue",
        "zip is 02139": "zip is zero two one three nine",
        "Pay w/ my e-check": "pay with my e check",
        "last four 4242": "last four four two four two",
    }
    for written, spoken in cases.items():
        assert " ".join(spoken_words(written)) == spoken, written


def test_nlu_examples_reads_intents_and_synonyms_only(tmp_path: Path) -> None:
    (tmp_path / "nlu.yml").write_text(
        'version: "3.1"\n'
        "nlu:\n"
        "  - intent: choose_method\n"
        "    examples: |\n"
        "      - a new [card](method)\n"
        '      - my [bank account]{"entity": "method", "value": "bank"}\n'
        "  - synonym: card\n"
        "    examples: |\n"
        "      - debit card\n"
        "  - regex: zip\n"
        "    examples: |\n"
        "      - \\d{5}\n"
        "  - intent: silence\n"
        "    examples: |\n"
        "      - EXTERNAL: silence\n"
    )
    examples = list(nlu_examples([tmp_path / "nlu.yml"]))
    assert examples == ["a new card", "my bank account", "debit card"]


def test_domain_sentences_use_only_dictionary_words(dictionary: set[str]) -> None:
    sentences = domain_sentences(sorted(DEFAULT_NLU_DIR.glob("*.yml")), dictionary.__contains__)
    words = {w for ws, _ in sentences for w in ws}
    assert words <= dictionary
    assert not any(ch.isdigit() or ch in "[](){}$#/" for w in words for ch in w)
    assert {"agent", "representative", "card", "bank", "balance", "dollars"} <= words
    texts = {" ".join(ws) for ws, _ in sentences}
    assert "one zero zero two zero zero three zero zero" in texts  # "100200300" in the NLU data


def test_arpa_model_is_valid_and_normalised(tmp_path: Path) -> None:
    sentences = [(("pay", "my", "bill"), 1.0), (("pay", "four", "two"), 1.0), (("my", "bill"), 0.5)]
    floor = {"the": 0.5, "dog": 0.25, "bill": 0.25}
    text = build_arpa(sentences, order=3, floor=floor, floor_weight=0.2)
    counts, grams = parse_arpa(text)
    assert counts == {n: len(grams[n]) for n in (1, 2, 3)}
    assert all(prob <= 0 for level in grams.values() for prob, _ in level.values())
    assert grams[1][("<s>",)][0] == -99.0
    assert {("dog",), ("the",), ("</s>",)} <= grams[1].keys()  # the floor words stay possible
    assert grams[1][("pay",)][1] is not None and grams[1][("<s>",)][1] is not None
    assert grams[2][("<s>", "pay")][1] is not None  # back-off of a trigram history
    assert all(bo is None for _, bo in grams[3].values())
    vocab = [g for g in grams[1] if g != ("<s>",)]
    for history in [("<s>",), ("pay",), ("dog",), ("<s>", "pay"), ("pay", "my"), ("my", "dog")]:
        total = sum(10 ** backoff_log10(grams, (*history, *w)) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-4), history
    import pocketsphinx

    (tmp_path / "t.arpa").write_text(text)
    assert pocketsphinx.NGramModel.readfile(str(tmp_path / "t.arpa")).size() == 3


def test_arpa_builder_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no sentences"):
        build_arpa([])
    with pytest.raises(ValueError, match="order"):
        build_arpa([(("a",), 1.0)], order=1)


def test_domain_lm_is_cached_by_its_inputs(tmp_path: Path) -> None:
    import pocketsphinx

    nlu = tmp_path / "nlu"
    nlu.mkdir()
    examples = nlu / "nlu.yml"
    examples.write_text("nlu:\n  - intent: x\n    examples: |\n      - talk to an agent\n")
    options = DomainLmOptions(nlu_dir=nlu, floor_words=0, cache_dir=tmp_path / "cache")
    model = pocketsphinx.get_model_path("en-us")
    args = (pocketsphinx, options, f"{model}/cmudict-en-us.dict", f"{model}/en-us.lm.bin")
    first = domain_lm_file(*args)
    built_at = first.stat().st_mtime_ns
    assert domain_lm_file(*args) == first and first.stat().st_mtime_ns == built_at
    assert ("agent",) in parse_arpa(first.read_text())[1][1]
    examples.write_text("nlu:\n  - intent: x\n    examples: |\n      - speak to a person\n")
    second = domain_lm_file(*args)
    assert second != first and ("person",) in parse_arpa(second.read_text())[1][1]

    calls = []
    assert cached_file(tmp_path, "x", "k", lambda: calls.append(1) or "x") == tmp_path / "x-k.arpa"
    cached_file(tmp_path, "x", "k", lambda: calls.append(1) or "x")
    assert calls == [1]


def test_broken_nlu_file_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "nlu.yml").write_text("nlu: [unclosed\n")
    options = DomainLmOptions(nlu_dir=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(AsrModelError, match="free-speech LM"):
        PocketSphinxEngine(PocketSphinxOptions(free_lm=options), preload=0)


def test_generic_lm_option_is_labelled() -> None:
    assert PocketSphinxOptions(free_lm=None).label == "pocketsphinx-16k-genericlm"
    assert PocketSphinxOptions().label == "pocketsphinx-16k"


# The caller voice the issue was measured with. Before the domain LM, PocketSphinx's generic LM
# heard these as "a good", "i i want to get a dog looked at the gun", "new collar", "then
# accounted" and "well it might lead and".
CALLER_VOICE = ("en-us+f2", "-s", "130", "-g", "8")
PERSON_MISHEARD = pytest.mark.xfail(
    strict=True,
    reason="PocketSphinx's en-us acoustic model hears espeak-ng's 'person' (p'3:s@n) as 'let "
    "third can' or 'pardon' in every voice, even from wideband audio: no LM weight outvotes it",
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("agent", "agent"),
        pytest.param("I want to talk to a person", "person", marks=PERSON_MISHEARD),
        ("a new card", "card"),
        ("bank account", "bank"),
        ("what is my balance", "balance"),
    ],
)
def test_domain_lm_hears_caller_requests(ps_engine: PocketSphinxEngine, text: str, key: str):
    require_espeak()
    heard = recognize(ps_engine, as_turn(espeak(text, *CALLER_VOICE), "free"), "free")
    assert key in heard.split(), heard


def test_domain_lm_keeps_the_request_when_a_word_is_misheard(ps_engine: PocketSphinxEngine):
    require_espeak()
    heard = recognize(
        ps_engine, as_turn(espeak("I want to talk to a person", *CALLER_VOICE), "free"), "free"
    )
    assert "want to talk to a" in heard, heard  # NLU's request_agent cue survives


# --- PocketSphinx on real speech --------------------------------------------------------------

# Measured with seeds 1-5 (40 strings of 4-7 digits, 220-234 digits each): digit accuracy
# 70.3-72.2%; seed 1, used here, gives 72.2% (11/40 strings exactly right). Decoding is
# deterministic (every turn starts from the same cepstral mean), so the figure is stable.
DIGIT_ACCURACY_BAR = 0.65


@needs_fsdd
def test_pocketsphinx_hears_fsdd_digit_strings(ps_engine: PocketSphinxEngine) -> None:
    errors = total = exact = 0
    for ref, pcm in digit_strings(40, seed=1):
        hyp = words_to_digits(recognize(ps_engine, pcm, "digits"))
        errors += edit_distance(ref, hyp)
        total += len(ref)
        exact += hyp == ref
    accuracy = 1 - errors / total
    assert accuracy >= DIGIT_ACCURACY_BAR, f"digit accuracy {accuracy:.1%}, exact {exact}/40"


@needs_fsdd
def test_digit_grammar_beats_free_language_model(ps_engine: PocketSphinxEngine) -> None:
    sample = digit_strings(3, seed=2)  # the free LM is slow (RTF ~0.4): keep it short

    def errs(expected: str) -> int:
        return sum(
            edit_distance(ref, words_to_digits(recognize(ps_engine, pcm, expected)))
            for ref, pcm in sample
        )
    assert errs("digits") < errs("free")


def test_silence_gives_empty_transcript(ps_engine: PocketSphinxEngine) -> None:
    assert recognize(ps_engine, A.silence_pcm16(1500, 8000), "digits") == ""


def test_yes_no_from_piper(ps_engine: PocketSphinxEngine, piper) -> None:
    phrases = ["Yes.", "No.", "Yes please.", "No thanks.", "That's right.", "Nope.", "Correct."]
    wanted = ["yes", "no", "yes", "no", "yes", "no", "yes"]
    heard = []
    for phrase in phrases:
        pcm = phone_line(piper.synthesize(phrase), piper.sample_rate)
        heard.append(answer_kind(recognize(ps_engine, pcm, "yes_no")))
    assert heard == wanted


@pytest.mark.skipif(not ESPEAK, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_yes_no_from_espeak(ps_engine: PocketSphinxEngine) -> None:
    cases = [("yes", "yes"), ("no", "no"), ("yeah", "yes"), ("no thank you", "no"),
             ("that's correct", "yes"), ("not now", "no")]
    heard = [answer_kind(recognize(ps_engine, espeak(t, "en-us"), "yes_no")) for t, _ in cases]
    assert sum(h == w for h, (_, w) in zip(heard, cases, strict=True)) >= 5, heard


def test_constrained_grammars_hear_the_anytime_requests() -> None:
    """Every constrained answer can be an anytime request: "goodbye" is never an amount."""
    for expected in ("digits", "yes_no", "amount"):
        grammar = jsgf(expected) or ""
        assert "<anytime>" in grammar and "goodbye" in grammar and "agent" in grammar
        assert {"goodbye", "agent", "repeat", "what's my balance"} <= set(vosk_phrases(expected))
    assert "no what's my balance" in vosk_phrases("yes_no")


def test_goodbye_and_a_balance_question_from_piper(ps_engine: PocketSphinxEngine, piper) -> None:
    def hear(text: str, expected: str) -> str:
        return recognize(ps_engine, phone_line(piper.synthesize(text), piper.sample_rate), expected)

    assert hear("Goodbye.", "amount") in ("goodbye", "bye")
    assert "balance" in hear("No, what's my balance?", "yes_no")
    assert hear("Agent.", "digits") in ("agent", "an agent")


def test_amount_and_digits_from_piper(ps_engine: PocketSphinxEngine, piper) -> None:
    def hear(text: str, expected: str) -> str:
        pcm = phone_line(piper.synthesize(text), piper.sample_rate)
        return recognize(ps_engine, pcm, expected)

    amount = hear("one hundred twenty three dollars and forty five cents", "amount")
    # "cents"/"cent" differ by a final s the model often misses; both are fine for the NLU
    assert amount.startswith("one hundred twenty three dollars and forty five cent")
    # Piper samples noise, so its audio differs run to run: one stray digit is tolerated (it
    # passed exactly in two CI runs, then heard "42428" once)
    assert edit_distance("4242", words_to_digits(hear("four two four two", "digits"))) <= 1


def test_recognizer_lifecycle_and_pool(ps_engine: PocketSphinxEngine) -> None:
    before = ps_engine.decoders_created
    for _ in range(3):
        rec = ps_engine.recognizer("yes_no")
        rec.accept(A.silence_pcm16(200, 8000))
        transcript = rec.final()
        assert transcript.audio_ms == pytest.approx(200)
        assert transcript.expected is ExpectedInput.YES_NO and transcript.decode_ms > 0
        with pytest.raises(AsrError):
            rec.accept(b"\x00\x00")
    assert ps_engine.decoders_created == before  # decoders are reused, not rebuilt


@needs_fsdd
def test_concurrent_recognizers_match_sequential(ps_engine: PocketSphinxEngine) -> None:
    sample = digit_strings(4, seed=3)
    sequential = [recognize(ps_engine, pcm, "digits") for _, pcm in sample]
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = recognize(ps_engine, sample[i][1], "digits")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(sample))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(sample))] == sequential


@needs_fsdd
def test_partial_results_during_turn(ps_engine: PocketSphinxEngine) -> None:
    _, pcm = digit_strings(1, seed=4)[0]
    rec = ps_engine.recognizer("digits")
    half = len(pcm) // 2 // 320 * 320
    rec.accept(pcm[:half])
    partial = rec.partial()
    rec.accept(pcm[half:])
    final = rec.final().text
    assert partial and len(partial.split()) <= len(final.split())


# --- Vosk (only with a model) -----------------------------------------------------------------


@needs_vosk
@needs_fsdd
def test_vosk_hears_fsdd_digit_strings() -> None:
    engine = make_asr_engine(VOSK_MODEL)
    errors = total = 0
    for ref, pcm in digit_strings(20, seed=1):
        errors += edit_distance(ref, words_to_digits(recognize(engine, pcm, "digits")))
        total += len(ref)
    assert 1 - errors / total >= DIGIT_ACCURACY_BAR


@needs_vosk
def test_vosk_yes_no_from_piper(piper) -> None:
    engine = make_asr_engine(VOSK_MODEL)
    for text, want in (("Yes please.", "yes"), ("No thanks.", "no")):
        pcm = phone_line(piper.synthesize(text), piper.sample_rate)
        assert answer_kind(recognize(engine, pcm, "yes_no")) == want


# --- Whisper tiny.en (PAYBOT_ASR_ENGINE=whisper) ---------------------------------------------

# George and jackson tuned PocketSphinx's CMN prior and Whisper's prompts; lucas and nicolas
# were never tuned on. bench/bench_asr.py measured Whisper at 6.1% digit errors on held-out
# speakers (lucas 0%, nicolas 17%; PocketSphinx 1.6% and 39.6%); the bar leaves room for
# nicolas on these 16 strings. A broken engine (wrong resampling, features or prompt, one that
# hears nothing or only its prompt) gets most digits wrong.
HELD_OUT = ("lucas", "nicolas")
WHISPER_DIGIT_ERROR_BAR = 0.15


@pytest.fixture(scope="module")
def whisper_engine():
    engine = make_asr_engine(None, decoders=1, engine="whisper")
    yield engine
    engine.close()


def held_out_strings(per_speaker: int, seed: int) -> list[tuple[str, str, bytes]]:
    """(speaker, digits, digits turn audio) from the held-out FSDD speakers only."""
    rng = random.Random(seed)
    out = []
    for speaker in HELD_OUT:
        files = sorted(FSDD.glob(f"*_{speaker}_*.wav"))
        for _ in range(per_speaker):
            chosen = [rng.choice(files) for _ in range(rng.randint(4, 7))]
            pcm = b""
            for path in chosen:
                pcm += A.read_wav(path)[0] + A.silence_pcm16(rng.randint(100, 300), 8000)
            config = turn_config("digits")
            turn = (A.silence_pcm16(config.pre_roll_ms, 8000) + phone_line(pcm, 8000)
                    + A.silence_pcm16(config.end_silence_ms, 8000))
            out.append((speaker, "".join(p.name[0] for p in chosen), turn))
    return out


def test_the_whisper_engine_loads_from_the_installed_package(whisper_engine) -> None:
    from voice_bridge.asr.whisper_engine import WhisperEngine
    from voice_bridge.asr.whisper_models import model_files

    assert isinstance(whisper_engine, WhisperEngine)
    assert whisper_engine.name.startswith("whisper-tiny.en")
    # The model is a file of an installed package: nothing is downloaded at run time.
    model = Path(model_files("tiny.en").path)
    assert "site-packages" in str(model) and (model / "model.bin").stat().st_size > 30e6


@needs_fsdd
def test_whisper_hears_held_out_fsdd_speakers(whisper_engine) -> None:
    errors = total = exact = 0
    per_speaker: dict[str, list[int]] = {}
    strings = held_out_strings(8, seed=12)
    for speaker, ref, pcm in strings:
        hyp = words_to_digits(recognize(whisper_engine, pcm, "digits"))
        err = edit_distance(ref, hyp)
        errors += err
        total += len(ref)
        exact += hyp == ref
        counts = per_speaker.setdefault(speaker, [0, 0])
        counts[0] += err
        counts[1] += len(ref)
    rate = errors / total
    detail = {s: f"{e / t:.0%}" for s, (e, t) in per_speaker.items()}
    assert rate <= WHISPER_DIGIT_ERROR_BAR, f"{rate:.1%} digit errors {detail}, exact {exact}"
    assert exact >= len(strings) // 2, f"only {exact}/{len(strings)} strings exactly right"


@needs_fsdd
def test_whisper_decodes_while_the_caller_pauses(whisper_engine) -> None:
    """The end-of-turn silence hides the decode: final() only picks up the speculative text."""
    _, ref, pcm = held_out_strings(1, seed=3)[0]
    rec = whisper_engine.recognizer("digits")
    frames = list(A.iter_frames(pcm, A.PCM_FRAME_BYTES * 5, pad=0))
    for frame in frames:
        rec.accept(frame)
    # The end-of-turn silence goes on arriving every 100 ms, as on a call, while the
    # speculative decodes (one at a time, each started at a pause) run in the engine's pool:
    # until one covering all the speech has finished (how soon is the benchmarks' business; a
    # machine busy with other tests may take far longer than a call's end-of-turn silence).
    for _ in range(600):
        rec.accept(A.silence_pcm16(100, 8000))
        threading.Event().wait(0.1)
        if rec._turn.ready:
            break
    assert words_to_digits(rec.partial())
    transcript = rec.final()
    assert transcript.finalize_ms < 50, transcript
    assert transcript.text == rec_text_once(whisper_engine, pcm)
    assert edit_distance(ref, words_to_digits(transcript.text)) <= 1


def rec_text_once(engine, pcm: bytes) -> str:
    """The same turn decoded only at final() (no speculation)."""
    from voice_bridge.asr.grammars import ExpectedInput as E

    return engine.decode(pcm[: _speech_end(pcm) + 200 * 16], E.DIGITS)[0]


def _speech_end(pcm: bytes) -> int:
    import numpy as np

    frames = np.frombuffer(pcm, np.int16)[: len(pcm) // 640 * 320].reshape(-1, 160)
    loud = np.nonzero(np.sqrt((frames.astype(np.float32) ** 2).mean(axis=1)) > 400)[0]
    return int(loud[-1] + 1) * 320


def test_whisper_silence_is_heard_as_nothing(whisper_engine) -> None:
    assert recognize(whisper_engine, A.silence_pcm16(1500, 8000), "digits") == ""
    assert recognize(whisper_engine, A.silence_pcm16(1500, 8000), "yes_no") == ""


@pytest.mark.parametrize(
    ("written", "expected", "spoken"),
    [
        (" 4 2 0 7 1 9.", "digits", "four two zero seven one nine"),
        (" 10001", "free", "one zero zero zero one"),
        (" $45.50.", "amount", "forty five dollars and fifty cents"),
        (" $1,200", "amount", "one thousand two hundred dollars"),
        (" 1200 dollars", "amount", "one thousand two hundred dollars"),
        (" Pay it on the 15th.", "free", "pay it on the fifteenth"),
        (" Yes, that's right.", "yes_no", "yes that's right"),
        (" No. What's my balance?", "yes_no", "no what's my balance"),
    ],
)
def test_whisper_text_is_rewritten_as_spoken_words(written, expected, spoken) -> None:
    from voice_bridge.asr.whisper_text import written_to_spoken

    assert written_to_spoken(written, ExpectedInput(expected)) == spoken


def test_engine_setting_picks_the_engine(monkeypatch) -> None:
    from paybot.settings import Settings

    monkeypatch.setenv("PAYBOT_ASR_ENGINE", "pocketsphinx")
    assert Settings().asr_engine == "pocketsphinx"
    engine = make_asr_engine(None, decoders=1, engine=Settings().asr_engine)
    assert isinstance(engine, PocketSphinxEngine)
    with pytest.raises(AsrError, match="unknown ASR engine"):
        make_asr_engine(None, engine="sphinx3")
    with pytest.raises(AsrModelError, match="needs a model directory"):
        make_asr_engine(None, engine="vosk")
