"""Accuracy and speed of the speech engines on phone-quality audio; TTS time to first audio.

    .venv/bin/python bench/bench_asr.py [--strings 40] [--seed 1] [--tts-runs 5]
    .venv/bin/python bench/bench_asr.py --calibrate-cmn

ASR data: digit strings built from FSDD recordings of real speakers (../shared/data/fsdd),
and caller phrases synthesised by espeak-ng (several of its voices, not the bot's Piper voice).
Everything goes through 8 kHz μ-law first, as on a Twilio call. Engines: PocketSphinx upsampled
to 16 kHz (default), with a second whole-turn pass (rescore), and at 8 kHz with a narrowband
filterbank; digits grammar vs the free LM; Vosk too when PAYBOT_VOSK_MODEL names a model.
RTF is decode wall time over audio time (1 thread). "held-out" counts only the FSDD speakers
lucas and nicolas, which were not used to derive PocketSphinx's phone-channel CMN prior.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voice_bridge import audio as A  # noqa: E402
from voice_bridge.asr import make_asr_engine, words_to_digits  # noqa: E402
from voice_bridge.asr.base import AsrEngine  # noqa: E402
from voice_bridge.asr.grammars import NO_PHRASES, YES_PHRASES  # noqa: E402
from voice_bridge.asr.pocketsphinx_engine import (  # noqa: E402
    PocketSphinxEngine,
    PocketSphinxOptions,
)

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
SPEAKERS = ("george", "jackson", "lucas", "nicolas")
HELD_OUT = {"lucas", "nicolas"}
ESPEAK_VOICES = ("en-us", "en-us+m3", "en-us+f2", "en-gb+m1")
YES_NO_CASES = (("yes", "yes"), ("no", "no"), ("yeah", "yes"), ("nope", "no"),
                ("yes please", "yes"), ("no thank you", "no"), ("that's correct", "yes"),
                ("not now", "no"))
AMOUNT_CASES = (
    "three hundred twenty one dollars and seventy two cents", "fifty dollars",
    "one thousand two hundred dollars", "the full amount", "nineteen dollars and five cents",
)
DIGIT_CASES = ("four two four two", "nine one zero three five", "six zero six two one eight",
               "three seven", "eight eight five one")
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
    exact: int = 0
    items: int = 0
    decode_ms: float = 0.0
    audio_ms: float = 0.0
    finalize: list[float] = field(default_factory=list)

    def add(self, ref: list[str], hyp: list[str], transcript) -> None:  # noqa: ANN001
        self.errors += edit_distance(ref, hyp)
        self.total += len(ref)
        self.exact += ref == hyp
        self.items += 1
        self.decode_ms += transcript.decode_ms
        self.audio_ms += transcript.audio_ms
        self.finalize.append(transcript.finalize_ms)

    def line(self, label: str) -> str:
        acc = 1 - self.errors / max(self.total, 1)
        rtf = self.decode_ms / max(self.audio_ms, 1)
        fin = statistics.median(self.finalize) if self.finalize else 0.0
        return (f"  {label:56s} acc {acc:6.1%}  exact {self.exact:3d}/{self.items:<3d} "
                f"RTF {rtf:.3f}  final p50 {fin:5.0f} ms")


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, h in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
    return row[-1]


def phone_line(pcm16: bytes, rate: int) -> bytes:
    return A.ulaw_to_pcm16(A.pcm16_to_ulaw(A.resample(pcm16, rate, 8000)))


def fsdd_strings(count: int, seed: int) -> list[tuple[str, str, bytes]]:
    """(speaker, digits, phone audio) for ``count`` strings of 4-7 digits."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        speaker = SPEAKERS[i % len(SPEAKERS)]
        files = sorted(FSDD.glob(f"*_{speaker}_*.wav"))
        chosen = [rng.choice(files) for _ in range(rng.randint(4, 7))]
        pcm = A.silence_pcm16(300, 8000)
        for path in chosen:
            pcm += A.read_wav(path)[0] + A.silence_pcm16(rng.randint(100, 300), 8000)
        out.append((speaker, "".join(p.name[0] for p in chosen), phone_line(pcm, 8000)))
    return out


def espeak(text: str, voice: str) -> bytes:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        return phone_line(w.readframes(w.getnframes()), w.getframerate())


def decode(engine: AsrEngine, pcm: bytes, expected: str):  # noqa: ANN201
    rec = engine.recognizer(expected)
    for frame in A.iter_frames(pcm, A.PCM_FRAME_BYTES, pad=0):
        rec.accept(frame)
    return rec.final()


def bench_fsdd(engine: AsrEngine, expected: str, data: list[tuple[str, str, bytes]]) -> None:
    every, held = Score(), Score()
    for speaker, ref, pcm in data:
        tr = decode(engine, pcm, expected)
        hyp = list(words_to_digits(tr.text))
        every.add(list(ref), hyp, tr)
        if speaker in HELD_OUT:
            held.add(list(ref), hyp, tr)
    print(every.line(f"{engine.name} / {expected} (all speakers)"))
    print(held.line(f"{engine.name} / {expected} (held-out speakers)"))


def bench_espeak(engine: AsrEngine) -> None:
    yes_no, amounts, digits = Score(), Score(), Score()
    for voice in ESPEAK_VOICES:
        for text, want in YES_NO_CASES:
            tr = decode(engine, espeak(text, voice), "yes_no")
            got = "yes" if tr.text in YES_PHRASES else "no" if tr.text in NO_PHRASES else "?"
            yes_no.add([want], [got], tr)
        for text in AMOUNT_CASES:
            tr = decode(engine, espeak(text, voice), "amount")
            amounts.add(text.split(), tr.text.split(), tr)
        for text in DIGIT_CASES:
            tr = decode(engine, espeak(text, voice), "digits")
            digits.add(list(words_to_digits(text)), list(words_to_digits(tr.text)), tr)
    print(yes_no.line(f"{engine.name} / yes_no answer class"))
    print(amounts.line(f"{engine.name} / amount words"))
    print(digits.line(f"{engine.name} / spoken digits"))


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
    """Print the live CMN PocketSphinx reaches on george+jackson strings (see PHONE_CMN_16K)."""
    engine = PocketSphinxEngine(PocketSphinxOptions(initial_cmn=None), preload=0)
    slot = engine._new_slot()
    decoder, cmn = slot.decoder, slot.initial_cmn
    decoder.activate_search("digits")
    for i, (_, _, pcm) in enumerate(fsdd_strings(40, seed=9)):
        if i % 4 < 2:  # george, jackson
            decoder.set_cmn(cmn)
            decoder.start_utt()
            decoder.process_raw(A.StreamingUpsampler().process(pcm))
            decoder.end_utt()
            cmn = decoder.get_cmn()
    print(cmn)


def engines(vosk: str | None) -> list[tuple[AsrEngine, list[str]]]:
    out: list[tuple[AsrEngine, list[str]]] = [
        (PocketSphinxEngine(PocketSphinxOptions()), ["digits", "free"]),
        (PocketSphinxEngine(PocketSphinxOptions(rescore_final=True)), ["digits"]),
        (PocketSphinxEngine(PocketSphinxOptions(initial_cmn=None)), ["digits"]),
        (PocketSphinxEngine(PocketSphinxOptions(sample_rate=8000)), ["digits"]),
    ]
    out[2][0].name += "-defaultcmn"
    if vosk:
        out.insert(0, (make_asr_engine(vosk), ["digits", "free"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strings", type=int, default=40, help="FSDD digit strings")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tts-runs", type=int, default=5, help="passes over the prompts")
    parser.add_argument("--calibrate-cmn", action="store_true")
    args = parser.parse_args()
    if args.calibrate_cmn:
        calibrate_cmn()
        return
    vosk = os.environ.get("PAYBOT_VOSK_MODEL")
    print(f"Vosk: {'model ' + vosk if vosk else 'no model configured (PAYBOT_VOSK_MODEL unset)'}")
    data = fsdd_strings(args.strings, args.seed)
    n_digits = sum(len(d) for _, d, _ in data)
    print(f"\nFSDD digit strings: {len(data)} strings, {n_digits} digits, seed {args.seed}")
    configured = engines(vosk)
    for engine, modes in configured:
        for expected in modes:
            bench_fsdd(engine, expected, data)
    if shutil.which("espeak-ng"):
        print(f"\nespeak-ng caller phrases, voices {', '.join(ESPEAK_VOICES)}")
        for engine, _ in configured[:2]:
            bench_espeak(engine)
    else:
        print("\nespeak-ng not installed: caller-phrase benchmark skipped")
    print("\nTTS")
    bench_tts(args.tts_runs)


if __name__ == "__main__":
    main()
