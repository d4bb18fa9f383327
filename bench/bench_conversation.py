"""Message round-trip through Rasa and the action server, and time to train from scratch.

    .venv/bin/python bench/bench_conversation.py [--rounds 5] [--concurrency 1 20] [--no-train]
                                                 [--cpu]

Starts the real stack (``paybot up`` on free ports, private data dir), then runs text
conversations over the REST channel, each a known caller (SMS, the number vouched for as the
bridge does) saying hello, confirming the billing ZIP, declining, asking the balance, starting
over and cancelling (no payment, so runs are repeatable).
Prints p50/p95 per message at each concurrency, then trains the model from scratch into a
temporary directory (no cache) and prints how long it took.

With ``--cpu`` it also prints the CPU time (user + system, from ``/proc/<pid>/stat``) each
service spent per message at each concurrency, and the training's CPU seconds: figures that
hold on a busy machine, where wall-clock ones do not.
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


def service_pids(root: int) -> dict[str, int]:
    """The stack's services under ``paybot up`` (pid ``root``), by name, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    pids: dict[str, int] = {"up": root}  # the supervisor forwards every service's output
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for name, marker in SERVICES.items():
            if marker in argv:
                pids[f"{name}.{pid}" if name in pids else name] = pid
    return pids


# Each service by the module its command line runs (paybot_cli/up.py).
SERVICES = {"rasa": b"rasa_plugins.rasa_server", "actions": b"actions.server",
            "bridge": b"bridge"}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(stack: Stack, concurrency: int, rounds: int, cpu: dict[str, int] | None = None) -> None:
    before = {name: cpu_seconds(pid) for name, pid in (cpu or {}).items()}
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
    if cpu:
        spent = {name: cpu_seconds(pid) - before[name] for name, pid in cpu.items()}
        per = "   ".join(f"{n} {s * 1000 / len(latencies):6.1f}" for n, s in spent.items())
        total = sum(spent.values()) * 1000 / len(latencies)
        print(f"concurrent={concurrency:<3} CPU ms/message: {per}   all {total:6.1f}")


def train_from_scratch() -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of ``rasa train`` from scratch."""
    with tempfile.TemporaryDirectory() as out:
        # An empty cache directory: nothing is reused from an earlier training.
        env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "RASA_CACHE_DIRECTORY": out}
        start, cpu = time.perf_counter(), os.times()
        subprocess.run(
            [sys.executable, "-m", "rasa", "train", "--domain", "bot/domain.yml",
             "--config", "bot/config.yml", "--data", "bot/data", "nlu_data",
             "--out", out, "--fixed-model-name", "bench"],
            cwd=REPO, env=env, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        after = os.times()
        used = after.children_user - cpu.children_user + after.children_system - cpu.children_system
        return time.perf_counter() - start, used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="conversations per worker")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--no-train", action="store_true", help="skip the training timing")
    parser.add_argument("--cpu", action="store_true", help="print CPU ms per message too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack.configure(Path(tmp))
        print("starting the stack (paybot up)...", file=sys.stderr)
        stack.start()
        try:
            stack.reset_data()
            one_conversation(stack)  # warm-up
            assert stack.process is not None
            cpu = service_pids(stack.process.pid) if args.cpu else None
            for concurrency in args.concurrency:
                run(stack, concurrency, args.rounds, cpu)
        finally:
            stack.stop()
    if not args.no_train:
        wall, cpu_s = train_from_scratch()
        print(f"training from scratch: {wall:.0f} s" + (f", {cpu_s:.0f} CPU s" if args.cpu else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
