"""Message round-trip through Rasa and the action server, and time to train from scratch.

    .venv/bin/python bench/bench_conversation.py [--rounds 5] [--concurrency 1 20] [--no-train]
                                                 [--cpu] [--workers 1 2]
                                                 [--turns-at-once 0 4] [--parse-cache 0 4096]

Starts the real stack (``paybot up`` on free ports, private data dir), then runs text
conversations over the REST channel, each a known caller (SMS, the number vouched for as the
bridge does) saying hello, confirming the billing ZIP, declining, asking the balance, starting
over and cancelling (no payment, so runs are repeatable).
Prints p50/p95 per message at each concurrency, then trains the model from scratch into a
temporary directory (no cache) and prints how long it took.

``--workers 1 2 3`` runs the whole measurement once per worker count. One worker is the stack
``make run`` starts (SQLite, Rasa's conversations in memory); N > 1 is ``paybot up`` with N of
each service on PostgreSQL (``--pg``, a fresh schema), Rasa's tracker store in PostgreSQL and
its lock store in Redis (``--redis``), and the conversations sent through HAProxy (the
configuration ``paybot haproxy-config`` writes), every turn to the next Rasa in turn. The
figures before issue 17's work are printed beside them.

``--turns-at-once 0 4 0 4`` runs it once per value of ``PAYBOT_RASA_TURNS_AT_ONCE`` (the turns
each Rasa works on at once, the oldest first; 0 all at once), each on a stack of
its own: taken alternately, the figures compare on a machine whose speed drifts.

With ``--cpu`` it also prints the CPU time (user + system, from ``/proc/<pid>/stat``) each
service spent per message at each concurrency, and the training's CPU seconds: figures that
hold on a busy machine, where wall-clock ones do not.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.balancer import HAPROXY, Through, start_haproxy, worker_ports  # noqa: E402
from tests.conftest import fresh_schema, schema_url  # noqa: E402
from tests.rasa_stores import shared_stores  # noqa: E402
from tests.stack import Conversation, Stack  # noqa: E402

# Twenty chat customers at once through ``make run``'s stack before issue 17's work (the
# issue's figures, same script, one worker per service): concurrency -> (p50 s, p95 s, msg/s).
BEFORE = {1: (0.082, None, None), 20: (1.3, 2.5, 13.5)}

SCRIPT = ("hi", "94107", "no", "what's my balance", "start over", "cancel", "no")


def one_conversation(stack: Stack | Through) -> list[float]:
    """One customer's round trips (seconds), over one kept-alive connection as the bridge's
    pooled client sends them."""
    with requests.Session() as http:
        chat = Conversation(stack, "sms", "+15555550100", http=http)  # type: ignore[arg-type]
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


def _shown(value: float | None, scale: float) -> str:
    return "-" if value is None else f"{value * scale:.{0 if scale > 1 else 1}f}"


def run(
    front: Stack | Through,
    label: str,
    concurrency: int,
    rounds: int,
    cpu: dict[str, int] | None = None,
) -> None:
    before = {name: cpu_seconds(pid) for name, pid in (cpu or {}).items()}
    cached = parse_cache_counts(front)
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(lambda _: one_conversation(front), range(concurrency * rounds)))
    elapsed = time.perf_counter() - began
    latencies = sorted(t for r in results for t in r)
    q = statistics.quantiles(latencies, n=100)
    then = ""
    if concurrency in BEFORE:
        p50, p95, rate = (
            _shown(v, scale) for v, scale in zip(BEFORE[concurrency], (1000, 1000, 1), strict=True)
        )
        then = f"   (before: p50 {p50} ms, p95 {p95} ms, {rate} messages/s)"
    print(
        f"{label:<17} concurrent={concurrency:<3} messages={len(latencies):<5} "
        f"p50 {q[49] * 1000:7.1f} ms   p95 {q[94] * 1000:7.1f} ms   "
        f"{len(latencies) / elapsed:6.1f} messages/s{then}"
    )
    outcomes = {k: v - cached.get(k, 0.0) for k, v in parse_cache_counts(front).items()}
    parses = sum(outcomes.values())
    if parses:
        shown = "   ".join(f"{k} {v / parses:.0%}" for k, v in sorted(outcomes.items()))
        print(f"{label:<17} concurrent={concurrency:<3} Rasa's parse cache: {shown}")
    if cpu:
        spent = {name: cpu_seconds(pid) - before[name] for name, pid in cpu.items()}
        per = "   ".join(f"{n} {s * 1000 / len(latencies):6.1f}" for n, s in spent.items())
        total = sum(spent.values()) * 1000 / len(latencies)
        print(f"{label:<17} concurrent={concurrency:<3} CPU ms/message: {per}   all {total:6.1f}")


def parse_cache_counts(front: Stack | Through) -> dict[str, float]:
    """Rasa's ``paybot_rasa_parse_cache_total`` by outcome, summed over its workers (one
    scrape of each Rasa's ``/metrics``; empty if none answers)."""
    stack = front.stack if isinstance(front, Through) else front
    first = int(stack.env["PAYBOT_RASA_PORT"])
    counts: dict[str, float] = {}
    for port in range(first, first + int(stack.env.get("PAYBOT_RASA_WORKERS", "1"))):
        with contextlib.suppress(requests.RequestException):
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            for line in text.splitlines():
                if line.startswith("paybot_rasa_parse_cache_total{"):
                    outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                    counts[outcome] = counts.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def train_from_scratch() -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of ``paybot train``'s ``rasa train`` from
    scratch."""
    with tempfile.TemporaryDirectory() as out:
        # An empty cache directory: nothing is reused from an earlier training.
        env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "RASA_CACHE_DIRECTORY": out}
        start, cpu = time.perf_counter(), os.times()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rasa_plugins.train",  # as paybot train runs it
                "train",
                "--domain",
                "bot/domain.yml",
                "--config",
                "bot/config.yml",
                "--data",
                "bot/data",
                "nlu_data",
                "--out",
                out,
                "--fixed-model-name",
                "bench",
            ],
            cwd=REPO,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        after = os.times()
        used = after.children_user - cpu.children_user + after.children_system - cpu.children_system
        return time.perf_counter() - start, used


def start(
    scope: contextlib.ExitStack,
    tmp: Path,
    workers: int,
    args: argparse.Namespace,
    turns_at_once: int | None = None,
    parse_cache: int | None = None,
) -> Stack | Through:
    """``paybot up`` with ``workers`` of each service (stopped when ``scope`` closes): the
    stack itself for one, HAProxy's chat frontend before it for more."""
    print(f"starting the stack (paybot up, {workers} of each service)...", file=sys.stderr)
    gate = {} if turns_at_once is None else {"PAYBOT_RASA_TURNS_AT_ONCE": str(turns_at_once)}
    if parse_cache is not None:
        gate["PAYBOT_RASA_PARSE_CACHE"] = str(parse_cache)
    if workers == 1:
        stack = Stack.configure(tmp, **gate)
        stack.start()
        scope.callback(stack.stop)
        return stack
    stores = scope.enter_context(shared_stores(args.pg, args.redis))
    schema = scope.enter_context(fresh_schema(args.pg, "paybot_bench"))
    worker_env, ports = worker_ports(workers, random.Random())
    stack = Stack.configure(
        tmp, **stores.env(), **worker_env, **gate, DATABASE_URL=schema_url(args.pg, schema)
    )
    stack.start(timeout_s=900)
    scope.callback(stack.stop)
    haproxy = start_haproxy(stack, tmp, ports, workers)
    scope.callback(haproxy.wait, 10)
    scope.callback(haproxy.terminate)
    return Through(stack, f"http://127.0.0.1:{ports['chat']}")


def settle(stack: Stack, bridges: int, timeout_s: float = 600) -> None:
    """Wait until each of the ``bridges`` has put the static prompts in its TTS cache: a
    fresh data directory makes each synthesise them all after it reports ready, a second or
    more of CPU that would be taken from the conversations measured (a restarted bridge reads
    them back from its cache instead)."""
    began = time.monotonic()
    while stack.all_output().count(WARMED) < bridges:
        if time.monotonic() - began > timeout_s:
            raise SystemExit(f"the bridges did not warm their TTS caches in {timeout_s:.0f} s")
        time.sleep(0.2)
    print(f"bridges warmed up {time.monotonic() - began:.1f} s after the stack was up",
          file=sys.stderr)  # fmt: skip


WARMED = "tts cache warmed"  # what voice_bridge/runtime.py logs when its warm-up is done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="conversations per worker")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--no-train", action="store_true", help="skip the training timing")
    parser.add_argument("--cpu", action="store_true", help="print CPU ms per message too")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="processes of each service, one run per count (default 1)",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "PAYBOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="PostgreSQL for more than one worker",
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/12",
        help="Redis (Rasa's lock store) for more than one worker",
    )
    parser.add_argument(
        "--turns-at-once",
        type=int,
        nargs="+",
        default=[None],
        help="PAYBOT_RASA_TURNS_AT_ONCE, one run per value (default: the setting's default)",
    )
    parser.add_argument(
        "--parse-cache",
        type=int,
        nargs="+",
        default=[None],
        help="PAYBOT_RASA_PARSE_CACHE, one run per value (default: the setting's default)",
    )
    args = parser.parse_args()
    if max(args.workers) > 1 and HAPROXY is None:
        parser.error("more than one worker needs haproxy (apt-get install haproxy)")

    runs = itertools.product(args.workers, args.turns_at_once, args.parse_cache)
    for workers, turns_at_once, parse_cache in runs:
        with contextlib.ExitStack() as scope:
            tmp = Path(scope.enter_context(tempfile.TemporaryDirectory()))
            front = start(scope, tmp, workers, args, turns_at_once, parse_cache)
            stack = front.stack if isinstance(front, Through) else front
            stack.reset_data()
            settle(stack, workers)
            one_conversation(front)  # warm-up
            assert stack.process is not None
            cpu = service_pids(stack.process.pid) if args.cpu else None
            label = f"workers={workers}"
            if turns_at_once is not None:
                label += f" gate={turns_at_once}"
            if parse_cache is not None:
                label += f" cache={parse_cache}"
            for concurrency in args.concurrency:
                run(front, label, concurrency, args.rounds, cpu)
    if not args.no_train:
        wall, cpu_s = train_from_scratch()
        print(f"training from scratch: {wall:.0f} s" + (f", {cpu_s:.0f} CPU s" if args.cpu else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
