"""A soak: simulated phone calls, ``--level`` at a time, back to back for 2 + ``--minutes``.

    .venv/bin/python bench/bench_soak.py [--level 20] [--minutes 10] [--seed 1]

Starts the real stack (``paybot up`` on free ports, a private data dir, a local fake of
Twilio's REST API, no scheduler) and keeps ``--level`` calls going: each of ``--level`` callers
places a call the way ``bench/bench_voice.py`` does (signed webhook, Media Stream, real-time
20 ms μ-law frames of espeak-ng speech, each caller in a voice of the voice tests' pool
picked with ``--seed``, the ZIP keyed or spoken, "yes" to pay with the stored
Visa, "no" to the receipt and to anything else), checks that it paid exactly once, and dials
again with the next account, until the time is up (calls under way then finish). The bridge
builds a speech decoder per caller up front (``PAYBOT_ASR_DECODERS``, as the README sizes it).

Printed: calls placed, paid and failed (with the reason of each failure), caller turns and
late frames (the caller's playback ran dry mid-reply; each late bot turn with its call, to look
up in ``--stack-log``), the bridge's warnings (decoders built mid-call, replies it sent late),
the caller-heard reply latency p50/p95 per minute, the no-input prompts heard, and the
services' resident memory (the bridge, Rasa and the action server, each with its children)
sampled every 10 s: the first sample after the two-minute warm-up, the last, the peak and the
growth between them, over the ``--minutes`` after the warm-up. Then the targets (zero
errors, zero late frames, memory growth under 10 %) and whether they were met. The figures
are only as good as the machine was quiet: the load average is printed at the start and end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_voice import (  # noqa: E402
    NO_INPUT,
    SCRIPT,
    ZIP_WAYS,
    ZIP_WORDS,
    CallOutcome,
    add_accounts,
    check_call,
    find_services,
    pct,
    place_call,
)

from paybot.db.engine import make_engine  # noqa: E402
from paybot.settings import Settings, load_settings  # noqa: E402
from twilio_sim import EspeakVoice  # noqa: E402
from twilio_sim.voice import CALLER_VOICES  # noqa: E402

MEMORY_EVERY_S = 10.0
# Memory grows while caches and the allocator's pools fill: in the arrival burst's calls and
# the round after them (still nearly in step) the bridge climbed until minute 3-4, then went up
# and down by about 5% (docs/benchmarks.md). Growth is measured from here, over ``--minutes``
# more; calls, errors and late frames count from the start.
WARM_UP_S = 120.0
TARGET_GROWTH = 0.10
CALL_S_GUESS = 25.0  # accounts are added for calls this long (more are added when they run out)
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` (from /proc/<pid>/statm; a process gone since counts 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


@dataclass
class Soak:
    """What the callers and the memory sampler found."""

    started: float = field(default_factory=time.monotonic)
    outcomes: list[CallOutcome] = field(default_factory=list)
    ended_at: list[float] = field(default_factory=list)  # seconds from start, per outcome
    voices: list[str] = field(default_factory=list)  # the caller's voice, per outcome
    memory: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class AccountPool:
    """Fresh accounts to call from (a paid account owes nothing, so each call takes a new one)."""

    def __init__(self, db_url: str, first: int) -> None:
        self.db_url = db_url
        self.phones = add_accounts(db_url, first)
        self.lock = asyncio.Lock()

    async def take(self) -> str:
        async with self.lock:
            if not self.phones:
                self.phones = await asyncio.to_thread(add_accounts, self.db_url, 50)
            return self.phones.pop()


async def caller(index: int, soak: Soak, deadline: float, settings: Settings, url: str,
                 pool: AccountPool, voice: EspeakVoice, rng: random.Random,
                 rasa: tuple[str, str], engine) -> None:
    slot = asyncio.Semaphore(1)
    first = True
    while soak.elapsed() < deadline:
        phone = await pool.take()
        delay = rng.uniform(0, 2.0) if first else 0.0
        first = False
        outcome = await place_call(settings, url, phone, voice, delay, slot,
                                   rng.choice(ZIP_WAYS), rasa)
        await asyncio.to_thread(check_call, outcome, rasa[0], rasa[1], engine)
        soak.outcomes.append(outcome)
        soak.ended_at.append(soak.elapsed())
        soak.voices.append(voice.voice)


async def sample_memory(soak: Soak, services: dict[str, list[int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        soak.memory.append((soak.elapsed(), {name: rss_bytes(pids)
                                             for name, pids in services.items()}))
        # asyncio's TimeoutError is not the builtin before Python 3.11
        with contextlib.suppress(asyncio.TimeoutError):  # noqa: UP041
            await asyncio.wait_for(stop.wait(), MEMORY_EVERY_S)


async def run(args: argparse.Namespace, settings: Settings, url: str, rasa: tuple[str, str],
              db_url: str, services: dict[str, list[int]]) -> Soak:
    rng = random.Random(args.seed)
    # Each caller speaks with a voice of the test pool, picked with the seed: traffic of
    # several voices, as the voice tests pick theirs.
    voices = {name: EspeakVoice(name) for name in CALLER_VOICES}
    picked = [rng.choice(CALLER_VOICES) for _ in range(args.level)]
    print("callers' voices: " + ", ".join(f"{name} {picked.count(name)}" for name in voices),
          file=sys.stderr)
    await asyncio.gather(*(voice.synthesize(line) for voice in voices.values()
                           for line in {*SCRIPT, *ZIP_WORDS, " ".join(ZIP_WORDS)}))
    count = int(args.level * (WARM_UP_S + args.minutes * 60) / CALL_S_GUESS) + args.level
    print(f"adding {count} accounts...", file=sys.stderr)
    pool = AccountPool(db_url, count)
    engine = make_engine(db_url)
    soak, stop = Soak(), asyncio.Event()
    sampler = asyncio.create_task(sample_memory(soak, services, stop))
    deadline = WARM_UP_S + args.minutes * 60.0
    print(f"{args.level} callers for {WARM_UP_S / 60:g} + {args.minutes} minutes...",
          file=sys.stderr)
    await asyncio.gather(*(caller(i, soak, deadline, settings, url, pool, voices[picked[i]],
                                  random.Random(rng.random()), rasa, engine)
                           for i in range(args.level)))
    stop.set()
    await sampler
    engine.dispose()
    return soak


SHOW_TRANSCRIPTS = 3  # failed calls whose every bot sentence is printed


def mib(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


# Bridge warnings counted over the whole run (from the stack's full log): a decoder built
# mid-call holds the GIL for 0.1-0.4 s and stalls every call on the bridge.
BRIDGE_WARNINGS = {"decoders built mid-call": "decoders busy, building",
                   "replies sent late": "frames late (first at piece"}


def report(soak: Soak, level: int, minutes: float, stack_log: str = "") -> bool:
    outcomes = soak.outcomes
    failed = [o for o in outcomes if o.failed]
    late = sum(o.result.late_frames for o in outcomes if o.result)
    turns = sum(len(o.result.caller_turns) for o in outcomes if o.result)
    no_input = sum(NO_INPUT in text for o in outcomes for text in o.said)
    print(f"{len(outcomes)} calls at {level} at a time over {soak.elapsed() / 60:.1f} min: "
          f"{len(outcomes) - len(failed)} paid, {len(failed)} failed; {turns} caller turns, "
          f"{late} late frames, {no_input} no-input prompts heard")
    print("the bridge's warnings: " + ", ".join(
        f"{what} {sum(text in line for line in stack_log.splitlines())}"
        for what, text in BRIDGE_WARNINGS.items()))
    for o, voice in zip(outcomes, soak.voices, strict=True):
        if o.failed:
            print(f"  FAILED {o.call_sid} {o.phone} ({voice}): {o.error}")
    for o in failed[:SHOW_TRANSCRIPTS]:
        print(f"  what the bot said on {o.call_sid}: {o.said!r}")
    for o, end in zip(outcomes, soak.ended_at, strict=True):
        for turn in (o.result.bot_turns if o.result else []):
            if turn.late_frames:  # where the gaps were: look the call up in --stack-log
                print(f"  late: {o.call_sid} (ended at {end / 60:.1f} min) bot turn "
                      f"{turn.index}, reply {turn.reply}: {turn.late_frames} late frames; "
                      f"{turn.received_bytes / 8:.0f} ms received, marks {turn.marks}")
    print("caller-heard reply latency (last speech or key to the bot's first audio) and late "
          "frames, by the minute each call ended:")
    for minute in range(int(WARM_UP_S / 60 + minutes + 1)):
        ended = [o for o, end in zip(outcomes, soak.ended_at, strict=True)
                 if minute * 60 <= end < (minute + 1) * 60 and o.result]
        lat = [ms for o in ended for ms in o.result.latencies_ms]
        if lat:
            print(f"  minute {minute + 1:>2}: {len(lat):4d} turns  p50 {pct(lat, 50):6.0f} ms  "
                  f"p95 {pct(lat, 95):6.0f} ms  late frames "
                  f"{sum(o.result.late_frames for o in ended)}")
    warm = [(t, m) for t, m in soak.memory if t >= WARM_UP_S] or soak.memory
    growth_ok = True
    if warm:
        (_, first), (_, last) = warm[0], warm[-1]
        print(f"resident memory (after the {WARM_UP_S / 60:g}-minute warm-up -> at the end, "
              "peak, growth):")
        for name in sorted(first):
            peak = max(m[name] for _, m in warm)
            growth = (last[name] - first[name]) / first[name] if first[name] else 0.0
            growth_ok &= growth < TARGET_GROWTH
            print(f"  {name:8s} {mib(first[name]):>10} -> {mib(last[name]):>10}  "
                  f"peak {mib(peak):>10}  growth {growth:+.1%}")
        total_first, total_last = sum(first.values()), sum(last.values())
        total = (total_last - total_first) / total_first if total_first else 0.0
        growth_ok &= total < TARGET_GROWTH
        print(f"  {'all':8s} {mib(total_first):>10} -> {mib(total_last):>10}  growth {total:+.1%}")
        first_of_minute: dict[int, dict[str, int]] = {}
        for t, m in soak.memory:
            first_of_minute.setdefault(int(t // 60), m)
        print("  per minute (its first sample):")
        for n, m in sorted(first_of_minute.items()):
            print(f"    minute {n + 1:>2}: "
                  + "  ".join(f"{name} {mib(m[name]):>10}" for name in sorted(m)))
    met = not failed and late == 0 and growth_ok and bool(outcomes)
    print(f"target: {level} calls for {WARM_UP_S / 60:g} + {minutes:g} min with zero errors, "
          f"zero late frames, memory growth under {TARGET_GROWTH:.0%}: "
          f"{'met' if met else 'MISSED'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, default=20, help="calls at once")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stack-log", help="write the started stack's output to this file")
    args = parser.parse_args()
    import uvloop  # Twilio's side of 20 calls shares the machine: keep it cheap

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} CPUs  load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    from urllib.parse import urlsplit

    from tests.fake_twilio import FakeTwilio
    from tests.stack import OUTPUT_LOG, RASA_TOKEN, Stack

    with tempfile.TemporaryDirectory() as tmp, FakeTwilio() as fake:
        # A decoder per caller, as the README sizes PAYBOT_ASR_DECODERS: none built mid-call.
        stack = Stack.configure(Path(tmp), **fake.env(), PAYBOT_SCHEDULER_INTERVAL_S="0",
                                PAYBOT_ASR_DECODERS=str(args.level))
        print("starting the stack (paybot up)...", file=sys.stderr)
        stack.start()
        try:
            stack.reset_data()
            settings = load_settings(**fake.settings_overrides(),
                                     bridge_port=int(stack.env["PAYBOT_BRIDGE_PORT"]))
            assert stack.process is not None
            services = find_services(stack.process.pid, urlsplit(settings.bridge_url).port or 80,
                                     urlsplit(stack.rasa_url).port or 80, None)
            soak = asyncio.run(run(args, settings, settings.bridge_url,
                                   (stack.rasa_url, RASA_TOKEN),
                                   f"sqlite:///{Path(tmp) / 'paybot.db'}", services))
        finally:
            stack.stop()
            stack_log = (Path(tmp) / OUTPUT_LOG).read_text(errors="replace")
            if args.stack_log:
                Path(args.stack_log).write_text(stack_log)
    met = report(soak, args.level, args.minutes, stack_log)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
