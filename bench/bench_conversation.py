"""Message round-trip through Rasa and the action server, and time to train from scratch.

    .venv/bin/python bench/bench_conversation.py [--rounds 5] [--concurrency 1 20] [--no-train]

Starts the real stack (``paybot up`` on free ports, private data dir), then runs text
conversations over the REST channel, each a known caller (SMS, the number vouched for as the
bridge does) saying hello, confirming the billing ZIP, declining, asking the balance, starting
over and cancelling (no payment, so runs are repeatable).
Prints p50/p95 per message at each concurrency, then trains the model from scratch into a
temporary directory (no cache) and prints how long it took.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.stack import Conversation, Stack  # noqa: E402

SCRIPT = ("hi", "94107", "no", "what's my balance", "start over", "cancel", "no")


def one_conversation(stack: Stack) -> list[float]:
    chat = Conversation(stack, "sms", "+15555550100")
    timings = []
    for line in SCRIPT:
        start = time.perf_counter()
        reply = chat.say(line)
        timings.append(time.perf_counter() - start)
        assert reply.texts, f"no reply to {line!r}"
    return timings


def run(stack: Stack, concurrency: int, rounds: int) -> None:
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(lambda _: one_conversation(stack), range(concurrency * rounds)))
    elapsed = time.perf_counter() - began
    latencies = sorted(t for r in results for t in r)
    q = statistics.quantiles(latencies, n=100)
    print(
        f"concurrent={concurrency:<3} messages={len(latencies):<5} "
        f"p50 {q[49] * 1000:7.1f} ms   p95 {q[94] * 1000:7.1f} ms   "
        f"{len(latencies) / elapsed:6.1f} messages/s"
    )


def train_from_scratch() -> float:
    with tempfile.TemporaryDirectory() as out:
        # An empty cache directory: nothing is reused from an earlier training.
        env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "RASA_CACHE_DIRECTORY": out}
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rasa", "train", "--domain", "bot/domain.yml",
             "--config", "bot/config.yml", "--data", "bot/data", "nlu_data",
             "--out", out, "--fixed-model-name", "bench"],
            cwd=REPO, env=env, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="conversations per worker")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--no-train", action="store_true", help="skip the training timing")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack.configure(Path(tmp))
        print("starting the stack (paybot up)...", file=sys.stderr)
        stack.start()
        try:
            stack.reset_data()
            one_conversation(stack)  # warm-up
            for concurrency in args.concurrency:
                run(stack, concurrency, args.rounds)
        finally:
            stack.stop()
    if not args.no_train:
        print(f"training from scratch: {train_from_scratch():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
