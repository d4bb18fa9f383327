"""Console and contact-centre API latency while simulated phone calls run on the stack.

    .venv/bin/python bench/bench_console.py [--calls 20] [--requests 40] [--days 30]
    .venv/bin/python bench/bench_console.py --calls 2 --requests 3 --rows 200   # a quick check

Starts the real stack (``paybot up`` on free ports, a private data dir, a local fake of
Twilio's REST API, no scheduler), fills its database with ``--rows`` seeded random calls (their
endings and payments), as many payments of other channels and a tenth as many contact-centre
sessions over the last ``--days`` days (tests/report_data.py), and signs a supervisor in. Then
``--calls`` simulated phone calls run at once for the whole measurement, each line calling
again when its call ends (bench/bench_voice.py's caller: signed webhook, Media Stream,
real-time speech; one account per call), while one supervisor and one contact-centre client
take turns at, ``--requests`` times each:

* the live calls page (``/console/calls``),
* a payment search (``/console/payments``, the last ``--days`` days, first page),
* the reports page (``/console/reports``, the last 7 days: every report's queries),
* a report chart drawn afresh (``/console/reports/daily.svg`` for a range not drawn before),
* ``POST /api/payment-sessions`` (a new Idempotency-Key each time),
* ``GET /api/payment-sessions/{id}`` (the session just made).

Printed: p50, p95 and the slowest per request, with how many calls the live calls page
listed while they were measured (min, median, max) and how the calls went.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import bench_voice  # noqa: E402
import requests  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from paybot.console.users import add_user  # noqa: E402
from paybot.db.models import AuditEvent  # noqa: E402
from paybot.db.types import utcnow  # noqa: E402
from paybot.settings import Settings, load_settings  # noqa: E402
from twilio_sim import EspeakVoice  # noqa: E402

PASSWORD = "bench console password"  # noqa: S105 - the bench supervisor's
API_TOKEN = "bench-api-token-" + "c" * 32  # noqa: S105 - the bench API client's
ACCOUNT = "200300400"  # Maria Garcia's (a demo account): the API's sessions are for her
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LIVE_ROW = re.compile(r'data-call-sid="CA')
ACCOUNTS_PER_LINE = 4  # accounts a line pays from before it reuses them


class Lines:
    """``count`` callers calling again and again until :meth:`stop`, on their own thread."""

    def __init__(self, settings: Settings, url: str, phones: list[str], count: int) -> None:
        self.settings, self.url, self.phones, self.count = settings, url, phones, count
        self.ok = self.failed = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="calls", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(bench_voice.CALL_TIMEOUT_S + 30)

    def _run(self) -> None:
        asyncio.run(self._lines())

    async def _lines(self) -> None:
        voice = EspeakVoice()
        slots = asyncio.Semaphore(self.count)
        await asyncio.gather(*(self._line(n, voice, slots) for n in range(self.count)))

    async def _line(self, n: int, voice: EspeakVoice, slots: asyncio.Semaphore) -> None:
        mine = self.phones[n :: self.count]
        rounds = 0
        while not self._stop.is_set():
            phone = mine[rounds % len(mine)]
            outcome = await bench_voice.place_call(
                self.settings, self.url, phone, voice, random.uniform(0, 2.0), slots, "keys"
            )
            rounds += 1
            if outcome.failed:
                self.failed += 1
                self.errors.append(outcome.error or "")
            else:
                self.ok += 1


class Probe:
    """The supervisor's browser session and the API client, timing each request."""

    def __init__(self, url: str, days: int) -> None:
        self.url, self.days = url, days
        self.console = requests.Session()
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        self.times: dict[str, list[float]] = {}
        self.live: list[int] = []
        self.session_id: str | None = None
        self.drawn = 0

    def sign_in(self, name: str) -> None:
        form = self.console.get(self.url + "/console/login", timeout=30)
        token = CSRF.search(form.text).group(1)
        answer = self.console.post(
            self.url + "/console/login",
            allow_redirects=False,
            data={"csrf": token, "name": name, "password": PASSWORD},
            timeout=30,
        )
        if answer.status_code != 303:
            raise RuntimeError(f"sign-in refused ({answer.status_code})")

    def _timed(self, label: str, send) -> requests.Response:
        started = time.perf_counter()
        answer = send()
        self.times.setdefault(label, []).append((time.perf_counter() - started) * 1000)
        if answer.status_code >= 400:
            raise RuntimeError(f"{label}: {answer.status_code} {answer.text[:200]}")
        return answer

    def round(self) -> None:
        today = utcnow().date()
        since = (today - timedelta(days=self.days - 1)).isoformat()
        week = (today - timedelta(days=6)).isoformat()
        get = self.console.get
        calls = self._timed(
            "console: live calls page", lambda: get(self.url + "/console/calls", timeout=60)
        )
        self.live.append(len(LIVE_ROW.findall(calls.text)))
        self._timed(
            "console: payment search (date range)",
            lambda: get(
                self.url + "/console/payments",
                timeout=60,
                params={"from": since, "to": today.isoformat()},
            ),
        )
        self._timed(
            "console: reports page (7 days)",
            lambda: get(
                self.url + "/console/reports",
                timeout=60,
                params={"from": week, "to": today.isoformat()},
            ),
        )
        self.drawn += 1  # a range not drawn before: the chart is drawn, not cached
        first = (today - timedelta(days=7 + self.drawn)).isoformat()
        self._timed(
            "console: report chart (drawn)",
            lambda: get(
                self.url + "/console/reports/daily.svg",
                timeout=60,
                params={"from": first, "to": today.isoformat()},
            ),
        )
        body = {"account_number": ACCOUNT, "amount": "12.34", "reference": "BENCH"}
        made = self._timed(
            "api: POST /api/payment-sessions",
            lambda: self.api.post(
                self.url + "/api/payment-sessions",
                json=body,
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=60,
            ),
        )
        self.session_id = made.json()["id"]
        self._timed(
            "api: GET /api/payment-sessions/{id}",
            lambda: self.api.get(f"{self.url}/api/payment-sessions/{self.session_id}", timeout=60),
        )


def pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def report(probe: Probe, lines: Lines, calls: int, elapsed_s: float) -> None:
    print(f"\n{'request':42} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for label, times in probe.times.items():
        print(
            f"{label:42} {len(times):4d} {pct(times, 50):8.0f} {pct(times, 95):8.0f} "
            f"{max(times):8.0f}"
        )
    live = probe.live or [0]
    print(
        f"\nlive calls listed while measuring: min {min(live)}, median "
        f"{statistics.median(live):.0f}, max {max(live)} (of {calls} lines)"
    )
    print(
        f"calls finished: {lines.ok} ok, {lines.failed} failed; {elapsed_s:.0f} s measured; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for error in sorted(set(lines.errors))[:5]:
        print(f"  failed call: {error}")


def wait_for_calls(probe: Probe, calls: int, timeout_s: float) -> None:
    """Until the live calls page lists ``calls`` calls (or ``timeout_s`` passes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = probe.console.get(probe.url + "/console/calls", timeout=60)
        if len(LIVE_ROW.findall(page.text)) >= calls:
            return
        time.sleep(0.5)
    print(f"(fewer than {calls} calls were live after {timeout_s:.0f} s: measuring anyway)")


def ended(engine) -> list[AuditEvent]:
    """The ``call.ended`` audit events (the reports' drop-off and handle time)."""
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.kind == "call.ended")))


def start(stack, up_timeout_s: float) -> None:
    """``stack.start()``, with ``paybot up --timeout`` (on a loaded machine Rasa can take more
    than the default 300 s to load its model)."""
    import subprocess
    from unittest import mock

    popen = subprocess.Popen

    def up_with_timeout(args, *rest, **kwargs):
        if list(args)[-1:] == ["up"]:
            args = [*args, "--timeout", str(up_timeout_s)]
        return popen(args, *rest, **kwargs)

    with mock.patch.object(subprocess, "Popen", up_with_timeout):
        stack.start(timeout_s=up_timeout_s + 120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="simulated calls at once")
    parser.add_argument("--requests", type=int, default=40, help="times each request is made")
    parser.add_argument("--rows", type=int, default=5000, help="seeded calls (and payments)")
    parser.add_argument("--days", type=int, default=30, help="days the seeded data covers")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stack-log", help="write the started stack's output to this file")
    parser.add_argument(
        "--up-timeout",
        type=float,
        default=300.0,
        help="seconds the stack may take to come up (paybot up --timeout)",
    )
    args = parser.parse_args()
    random.seed(args.seed)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} CPUs  load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    from tests.fake_twilio import FakeTwilio
    from tests.report_data import seed_reports
    from tests.stack import Stack

    digest = hashlib.sha256(API_TOKEN.encode()).hexdigest()
    with tempfile.TemporaryDirectory() as tmp, FakeTwilio() as fake:
        stack = Stack.configure(
            Path(tmp),
            **fake.env(),
            PAYBOT_SCHEDULER_INTERVAL_S="0",
            PAYBOT_API_CLIENTS=f"bench:{digest}",
        )
        print("starting the stack (paybot up)...", file=sys.stderr)
        start(stack, args.up_timeout)
        try:
            stack.reset_data()
            assert stack.engine is not None
            first = utcnow().date() - timedelta(days=args.days - 1)
            print(f"seeding {args.rows} calls and payments...", file=sys.stderr)
            seed_reports(
                stack.engine,
                random.Random(args.seed),
                first,
                args.days,
                calls=args.rows,
                payments=args.rows,
                sessions=max(1, args.rows // 10),
            )
            add_user(stack.engine, "supervisor", "supervisor", PASSWORD)
            db_url = f"sqlite:///{Path(tmp) / 'paybot.db'}"
            phones = bench_voice.add_accounts(db_url, args.calls * ACCOUNTS_PER_LINE)
            settings = load_settings(
                **fake.settings_overrides(), bridge_port=int(stack.env["PAYBOT_BRIDGE_PORT"])
            )
            probe = Probe(stack.bridge_url, args.days)
            probe.sign_in("supervisor")
            lines = Lines(settings, stack.bridge_url, phones, args.calls)
            seeded_endings = {e.id for e in ended(stack.engine)}
            print(f"{args.calls} calls at once, then {args.requests} rounds...", file=sys.stderr)
            lines.start()
            wait_for_calls(probe, args.calls, 120)
            started = time.monotonic()
            try:
                for _ in range(args.requests):
                    probe.round()
            finally:
                elapsed = time.monotonic() - started
                lines.stop()
            report(probe, lines, args.calls, elapsed)
            endings = [e for e in ended(stack.engine) if e.id not in seeded_endings]
            print(
                f"call.ended events of the bench's calls: {len(endings)}; "
                + ", ".join(
                    f"{e.detail['reason']} at {e.detail['step']!r} after {e.detail['handle_s']} s"
                    for e in endings[:4]
                )
            )
        finally:
            stack.stop()
            if args.stack_log:
                Path(args.stack_log).write_text(stack.all_output())
    return 0


if __name__ == "__main__":
    sys.exit(main())
