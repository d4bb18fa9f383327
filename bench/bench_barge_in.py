"""Barge-in per threshold: false interruptions on noise, coughs and backchannels, true ones on
real interruptions, and how soon the bot stops.

    .venv/bin/python bench/bench_barge_in.py [--thresholds 150,200,250,300,350,400,500]
                                             [--seed 7] [--per-kind 24] [--voices ...]

Each sample is what a caller's line carries while the bot is talking: 300 ms of line noise,
the sound, 1.2 s of line noise, 8 kHz μ-law. The sounds come from a seeded generator:

* ``noise``: bursts of white or low-passed noise, 60-700 ms, at -35 to -12 dBFS;
* ``cough``: one or two coughs (a sharp onset and a decaying band-passed burst, 150-450 ms);
* ``backchannel``: "mm", "mhm", "uh huh", "hmm", "uh" (should NOT interrupt);
* ``interrupt``: "agent", "no", "stop", "yes please", "wait", "what's my balance",
  "representative", "repeat that" (SHOULD interrupt);

spoken by several espeak-ng voices (the caller's is one of them) at random rates, with the
voice, rate and level printed per sample kind.

For every threshold (``TurnConfig.barge_in_ms``, the speech needed to open a turn while the bot
talks) the sample goes through the bridge's own pieces, in audio time: the end-of-turn detector
with the bot speaking, the real ASR engine (the default one; ``--vosk`` for a Vosk model) with
the grammar of the question (yes/no, free speech: each sample is tried under both), fed in
100 ms batches with the partial result read after each, as the listener does, and the
interruption rule of :mod:`voice_bridge.call.barge_in` on each partial and on the final result.

Printed per threshold: false barge-ins on noise, coughs and backchannels (%), true barge-ins
caught (%), and for those the time from the onset of speech to the bot stopping (p50/p95, audio
ms, ASR taken as instant: the bridge adds its speech pool's delay), and a score: caught minus
the mean of the three false rates (a bot stopped for nothing costs as much as a caller not
heard). The bridge's default is the threshold with the best score (on a tie the higher one:
fewer stops for nothing);
the samples are synthetic and the default is tuned on them (say so next to the numbers).
``--voiced-share 0`` turns the voicing check off: the energy-only detector of before.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from paybot.dialog.payloads import Listen  # noqa: E402
from twilio_sim.voice import EspeakVoice  # noqa: E402
from voice_bridge import vad  # noqa: E402
from voice_bridge.asr import ExpectedInput, make_asr_engine  # noqa: E402
from voice_bridge.call.answer_complete import answer_complete  # noqa: E402
from voice_bridge.call.barge_in import interrupts  # noqa: E402
from voice_bridge.call.vad import EndOfTurnDetector, TurnEventType, turn_config  # noqa: E402
from voice_bridge.twilio.codec import (  # noqa: E402
    PCM_FRAME_BYTES,
    TWILIO_RATE,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)

BACKCHANNELS = ("mm", "mhm", "uh huh", "hmm", "uh")
INTERRUPTS = ("agent", "no", "stop", "yes please", "wait", "what's my balance",
              "representative", "repeat that")
VOICES = ("en-us+klatt2", "en-us", "en-gb", "en-us+f3", "en-gb-x-rp+m3", "en-029")
KINDS = ("noise", "cough", "backchannel", "interrupt")
MODES = (ExpectedInput.YES_NO, ExpectedInput.FREE)
LEAD_MS, TAIL_MS = 300, 1200
BATCH_FRAMES = 5  # the listener feeds its recognizer about every 100 ms


@dataclass
class Sample:
    kind: str
    label: str
    pcm16: bytes  # 8 kHz, after a μ-law round trip


@dataclass
class Outcome:
    opened: bool
    interrupted: bool
    stop_ms: float | None  # from the sound's onset to the bot stopping
    words: str = ""


# -- the sounds ---------------------------------------------------------------------------------
def _to_pcm(samples: np.ndarray) -> bytes:
    clipped = np.clip(samples, -32767, 32767).astype("<i2").tobytes()
    return ulaw_to_pcm16(pcm16_to_ulaw(clipped))  # what a phone line carries


def _line_noise(rng: np.random.Generator, ms: float, dbfs: float = -62.0) -> np.ndarray:
    n = int(TWILIO_RATE * ms / 1000)
    return rng.normal(0.0, 32768 * 10 ** (dbfs / 20), n)


def _level(x: np.ndarray, dbfs: float) -> np.ndarray:
    rms = math.sqrt(float(np.mean(x**2))) or 1.0
    return x * (32768 * 10 ** (dbfs / 20) / rms)


def _lowpass(x: np.ndarray, taps: int) -> np.ndarray:
    return np.convolve(x, np.ones(taps) / taps, mode="same")


def noise_burst(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    ms = rng.uniform(60, 700)
    x = rng.normal(0, 1, int(TWILIO_RATE * ms / 1000))
    colour = "white"
    if rng.random() < 0.5:
        x, colour = _lowpass(x, int(rng.integers(3, 12))), "low"
    ramp = min(len(x) // 4, 40)
    x[:ramp] *= np.linspace(0, 1, ramp)
    x[-ramp:] *= np.linspace(1, 0, ramp)
    dbfs = rng.uniform(-35, -12)
    return _level(x, dbfs), f"{colour} {ms:.0f} ms {dbfs:.0f} dBFS"


def cough(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    parts = []
    count = 1 if rng.random() < 0.6 else 2
    for _ in range(count):
        ms = rng.uniform(150, 450)
        n = int(TWILIO_RATE * ms / 1000)
        t = np.arange(n) / TWILIO_RATE
        burst = rng.normal(0, 1, n)
        # A cough's energy sits roughly in 300-2500 Hz: a crude band-pass.
        burst = _lowpass(burst, 3) - _lowpass(burst, 25)
        envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / rng.uniform(0.05, 0.15))
        parts.append(burst * envelope)
        parts.append(np.zeros(int(TWILIO_RATE * rng.uniform(0.08, 0.25))))
    dbfs = rng.uniform(-24, -10)
    return _level(np.concatenate(parts), dbfs), f"{count} cough(s) {dbfs:.0f} dBFS"


async def spoken(rng: random.Random, text: str, voices: list[str]) -> tuple[np.ndarray, str]:
    voice_name = rng.choice(voices)
    wpm = rng.randint(150, 200)
    ulaw = await EspeakVoice(voice_name, words_per_minute=wpm).synthesize(text)
    x = np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2").astype(float)
    dbfs = rng.uniform(-26, -14)
    return _level(x, dbfs), f"{text!r} {voice_name} {wpm} wpm {dbfs:.0f} dBFS"


async def make_samples(seed: int, per_kind: int, voices: list[str]) -> list[Sample]:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    samples: list[Sample] = []
    for kind in KINDS:
        for i in range(per_kind):
            if kind == "noise":
                sound, label = noise_burst(nrng)
            elif kind == "cough":
                sound, label = cough(nrng)
            elif kind == "backchannel":
                sound, label = await spoken(rng, BACKCHANNELS[i % len(BACKCHANNELS)], voices)
            else:
                sound, label = await spoken(rng, INTERRUPTS[i % len(INTERRUPTS)], voices)
            line = np.concatenate([_line_noise(nrng, LEAD_MS), sound, _line_noise(nrng, TAIL_MS)])
            line[int(TWILIO_RATE * LEAD_MS / 1000):][: len(sound)] += _line_noise(
                nrng, len(sound) * 1000 / TWILIO_RATE)
            samples.append(Sample(kind, label, _to_pcm(line)))
    return samples


# -- the bridge's pieces, in audio time ---------------------------------------------------------
def run_sample(engine, sample: Sample, expected: ExpectedInput, barge_in_ms: int,
               rule: str = "partial") -> Outcome:
    """``rule``: ``stable`` (the bridge's: for free speech a partial unchanged over one more
    100 ms batch, under a grammar a partial that is a complete answer; or the final result),
    ``partial`` (any partial), ``final`` (the final result only, the turn ending early on a
    complete answer)."""
    detector = EndOfTurnDetector(config=replace(turn_config(expected), barge_in_ms=barge_in_ms))
    detector.bot_speaking = True
    listen = Listen(expected.value)
    recognizer = None
    batch: list[bytes] = []
    opened_at = None
    previous = ""
    pcm = sample.pcm16
    try:
        for index in range(0, len(pcm) - PCM_FRAME_BYTES + 1, PCM_FRAME_BYTES):
            frame = pcm[index:index + PCM_FRAME_BYTES]
            now_ms = (index + PCM_FRAME_BYTES) / 2 / TWILIO_RATE * 1000
            event = detector.process(frame)
            if event is not None and event.type is TurnEventType.SPEECH_START:
                opened_at = now_ms
                recognizer = engine.recognizer(expected)
                batch = [event.audio]
                continue
            if recognizer is None:
                continue
            batch.append(frame)
            ended = event is not None and event.type is TurnEventType.TURN_END
            if len(batch) >= BATCH_FRAMES or ended:
                recognizer.accept(b"".join(batch))
                batch = []
                words = recognizer.partial()
                detector.answer_complete = answer_complete(listen, words)
                if ended:
                    words = recognizer.final().text
                    recognizer = None
                assert opened_at is not None
                heard = words
                if not ended and rule == "final":
                    heard = ""
                elif not ended and rule == "stable" and expected is not ExpectedInput.FREE:
                    heard = words if detector.answer_complete else ""
                elif not ended and rule == "stable":
                    heard, previous = (words if words == previous else ""), words
                if interrupts(heard, now_ms - opened_at):
                    return Outcome(True, True, now_ms - LEAD_MS, words)
                if ended:
                    return Outcome(True, False, None, words)
        return Outcome(opened_at is not None, False, None)
    finally:
        if recognizer is not None:
            recognizer.close()


def pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="150,200,250,300,350,400,500")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-kind", type=int, default=24)
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--vosk", help="a Vosk model directory (default: PocketSphinx)")
    parser.add_argument("--voiced-share", type=float, default=vad.VOICED_SHARE,
                        help="share of barge_in_ms that must be voiced (the bridge's default: "
                        f"{vad.VOICED_SHARE})")
    parser.add_argument("--rule", choices=("partial", "stable", "final"), default="stable",
                        help="when words stop the bot (see run_sample)")
    parser.add_argument("--show", action="store_true", help="print every wrong outcome")
    args = parser.parse_args()
    thresholds = [int(x) for x in args.thresholds.split(",")]
    vad.VOICED_SHARE = args.voiced_share
    voices = [v for v in args.voices.split(",") if v]
    print(f"seed {args.seed}, {args.per_kind} samples per kind, voices {', '.join(voices)}, "
          f"grammars {', '.join(m.value for m in MODES)}, voiced share {vad.VOICED_SHARE}, "
          f"rule {args.rule}")
    samples = asyncio.run(make_samples(args.seed, args.per_kind, voices))
    engine = make_asr_engine(args.vosk)
    rows = []
    print("\n| barge_in_ms | noise false % | cough false % | backchannel false % | "
          "true caught % | stop after onset p50/p95 ms | turns opened by noise+cough % | score |")
    print("|---|---|---|---|---|---|---|---|")
    for threshold in thresholds:
        hits: dict[str, list[bool]] = {k: [] for k in KINDS}
        opened: list[bool] = []
        stops: list[float] = []
        for sample in samples:
            for expected in MODES:
                out = run_sample(engine, sample, expected, threshold, args.rule)
                hits[sample.kind].append(out.interrupted)
                if sample.kind in ("noise", "cough"):
                    opened.append(out.opened)
                if sample.kind == "interrupt" and out.stop_ms is not None:
                    stops.append(out.stop_ms)
                if args.show and out.interrupted != (sample.kind == "interrupt"):
                    verdict = "interrupted" if out.interrupted else "not interrupted"
                    print(f"  {threshold} ms {expected.value}: {sample.kind} {sample.label} "
                          f"-> {verdict} ({out.words!r})")

        def rate(kind: str, hits: dict[str, list[bool]] = hits) -> float:
            return 100.0 * sum(hits[kind]) / max(1, len(hits[kind]))

        p50, p95 = pct(stops, 50), pct(stops, 95)
        score = rate("interrupt") - (rate("noise") + rate("cough") + rate("backchannel")) / 3
        rows.append((round(score, 1), threshold))  # as printed: ties are ties
        print(f"| {threshold} | {rate('noise'):.1f} | {rate('cough'):.1f} | "
              f"{rate('backchannel'):.1f} | {rate('interrupt'):.1f} | "
              f"{p50 or 0:.0f}/{p95 or 0:.0f} | {100.0 * sum(opened) / max(1, len(opened)):.0f} "
              f"| {score:.1f} |", flush=True)
    best = max(rows)[1]
    print(f"\nbest score: {best} ms (the bridge's default: "
          f"{turn_config(ExpectedInput.FREE).barge_in_ms} ms)")
    print("(synthetic samples, and the default is tuned on them)")
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
