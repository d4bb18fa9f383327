"""Keyed-card payments over Twilio Media Streams, many calls at once, on the sandbox and on
Stripe (localstripe): late audio frames and the time from the caller's last key to the
charged result; prints a table.

    PYTHONPATH=. .venv/bin/python bench/bench_capture_calls.py [--calls 20]

For each gateway it starts the whole stack (``paybot up``, as the end-to-end tests do: a fake
Twilio REST API, its own data dir), adds one account per caller and places ``--calls`` calls
at once with twilio_sim (espeak-ng speech, keypad presses as ``dtmf`` events, real-time
frames). Each caller pays the balance with a new Visa (generated, seed printed) in one step,
confirming at the end. Measured per call:

- last key to result: from the moment the confirming "1" was sent to the payment row's
  ``completed_at`` (the charge settled);
- late frames: 20 ms slots of the bot's audio (the capture's prompts included) that arrived
  too late to play, summed over all calls; the target is none at 20 calls.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import Session, select  # noqa: E402

from paybot.db.models import Account, Payment, PaymentStatus  # noqa: E402
from tests import capture_calls as cc  # noqa: E402
from tests.fake_twilio import FakeTwilio  # noqa: E402
from tests.localstripe import LocalStripe  # noqa: E402
from tests.stack import Stack  # noqa: E402
from tests.test_voice_calls import dial, voice_stack_env  # noqa: E402


def pct(values: list[float], p: int) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def one_call(stack: Stack, fake: FakeTwilio, phone_number: str, card: str, out: dict) -> None:
    async def run():
        async with dial(stack, fake, phone_number) as phone:
            try:
                await cc.to_capture(phone, stack)
                await cc.steps(phone, card + "#", "1230", "739", cc.ZIP)
                await phone.press("1")
                out["last_key"] = datetime.now(timezone.utc)
                await cc.until_said(stack, phone, "was successful", "didn't go through",
                                    "went wrong", timeout_s=180)
            finally:
                await phone.hangup()
                out["late"] = phone.result().late_frames

    try:
        asyncio.run(asyncio.wait_for(run(), 420))
    except Exception as exc:  # noqa: BLE001 - counted as a failed call
        out["error"] = f"{type(exc).__name__}: {exc}"


def measure(name: str, env: dict[str, str], calls: int, rng: random.Random) -> None:
    with FakeTwilio() as fake, tempfile.TemporaryDirectory() as tmp:
        stack = Stack.configure(Path(tmp) / "stack", **voice_stack_env(fake), **env)
        stack.start()
        try:
            phones = cc.add_callers(stack, calls)
            outs: list[dict] = [{} for _ in phones]
            threads = [
                threading.Thread(target=one_call,
                                 args=(stack, fake, p, cc.card_number("visa", rng), o))
                for p, o in zip(phones, outs, strict=True)
            ]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - started
            report(name, stack, phones, outs, wall)
        finally:
            stack.stop()
            if stack.engine is not None:
                stack.engine.dispose()


def report(name: str, stack: Stack, phones: list[str], outs: list[dict], wall: float) -> None:
    times, failed = [], [o["error"] for o in outs if "error" in o]
    with Session(stack.engine) as session:
        for phone, out in zip(phones, outs, strict=True):
            account = session.exec(select(Account).where(Account.phone == phone)).one()
            payments = session.exec(select(Payment).where(Payment.account_id == account.id)).all()
            paid = [p for p in payments if p.status == PaymentStatus.SUCCEEDED]
            if len(paid) != 1 or "last_key" not in out:
                failed.append(f"{phone}: {[p.status for p in payments]}")
                continue
            done = paid[0].completed_at
            done = done if done.tzinfo else done.replace(tzinfo=timezone.utc)
            times.append((done - out["last_key"]).total_seconds() * 1000)
    late = sum(o.get("late", 0) for o in outs)
    line = (f"| {name} | {len(phones)} | {len(times)}/{len(failed)} | {late} | "
            + (f"{pct(times, 50):.0f} ms | {pct(times, 95):.0f} ms |" if times else "- | - |")
            + f" {wall:.0f} s |")
    print(line, flush=True)
    for problem in failed[:5]:
        print(f"  failed: {problem}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="calls at once per gateway")
    parser.add_argument("--gateway", choices=["sandbox", "stripe", "both"], default="both")
    args = parser.parse_args()
    rng = random.Random(cc.seed())
    print("| gateway | calls at once | paid/failed | late frames | last key to result p50 "
          "| p95 | wall |\n|---|---|---|---|---|---|---|", flush=True)
    if args.gateway in ("sandbox", "both"):
        measure("sandbox", {}, args.calls, rng)
    if args.gateway in ("stripe", "both"):
        emulator = LocalStripe()
        try:
            measure("Stripe (localstripe)", emulator.env(), args.calls, rng)
        finally:
            emulator.stop()


if __name__ == "__main__":
    main()
