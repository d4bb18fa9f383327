"""Simulated phone calls at 1, 10 and 20 at once: response latency, CPU per call, late frames.

    .venv/bin/python bench/bench_voice.py [--levels 1,10,20] [--calls-per-level N] [--quick]
    .venv/bin/python bench/bench_voice.py --levels 10 --env PAYBOT_SPEECH_THREADS=1 --stack-log s
    .venv/bin/python bench/bench_voice.py --url http://127.0.0.1:8080 --rasa-url http://127.0.0.1:5005

Starts the real stack (``paybot up`` on free ports, a private data dir, a local fake of
Twilio's REST API, no scheduler) unless ``--url``/``--rasa-url`` name a running one, and adds
one account per call (own number, own name and balance, a stored Visa), so that concurrent
calls never pay the same bill. Each call is placed the way Twilio places it
(:class:`twilio_sim.CallerSession`: signed webhook, Media Stream, real-time 20 ms
μ-law frames of espeak-ng speech, playback with mark echoes): the welcome asks the billing
ZIP (caller ID is only a hint), the caller gives it (``--zip``: by default a third of the
callers key "94107#", a third say "nine four one zero seven", a third say "nine four one",
pause 600 ms, then "zero seven", which must not be cut in two; a ZIP the engine misheard is
said again, twice at most, then keyed), the greeting ("Hello Ava, are
you ready to make your payment of ... now?"), "yes" (ready to pay), "yes" (the stored Visa),
"yes" (go ahead), "no" (receipt), "no" (anything else), and the bot hangs up. A level runs
``level`` calls at a time (``max(level, 3)`` calls in all, after one warm-up call), each
starting at a random moment within its first 2 s (``--stagger``).

Printed per level:

* caller-heard latency (what ``paybot call`` reports): from the caller's last speech frame
  (or key) to the bot's first audio frame, end-of-turn wait included, overall and per kind of
  answer (yes/no, digits, free speech, keys); the first answer's (to the welcome: with
  callers arriving together, the moment everything is busy); how many times a caller heard the
  no-input prompt, and how many caller turns the bridge cut in two (Rasa got more turns than
  the caller spoke); the welcome's time to first audio;
* where the time goes (own stack only), from the bridge's log lines lined up with the caller's
  clock: last speech to transcript (the end-of-turn wait and ASR; ``final()`` alone), then
  Rasa and the action server, then TTS to the first frame; the p50 per question; and the
  bridge's own "first audio" figure, which it takes once the whole reply has been sent;
* CPU seconds (user+sys from /proc) of the bridge (and of its event-loop thread alone), Rasa
  and the action server over the level, per call and per call-minute; this script's own CPU
  (Twilio's side, here on the same cores); what other processes used, how busy the machine
  was and its load average (a level is only as good as the machine was quiet);
* late frames (the caller's playback ran dry mid-reply), unplayed frames (bot audio that
  arrived but was never played because the call ended or was cleared) and failed calls
  (timeouts, a wrong path, no payment), with the reason of each and its last log line;
  "caller clock slips" counts the times this script's own 20 ms clock fell behind.

Then a table, the targets (caller-heard p95 at most 500 ms at 10 calls for yes/no and digit
answers, with no turn cut in two; 20 calls without late frames) and whether they were met.
ASR accuracy is ``bench/bench_asr.py``'s job.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from paybot.db.engine import make_engine  # noqa: E402
from paybot.db.models import Account, Payment, PaymentStatus  # noqa: E402
from paybot.gateway.sandbox import SandboxGateway  # noqa: E402
from paybot.seed import DEMO_ACCOUNTS, _seed_one  # noqa: E402
from paybot.settings import Settings, load_settings  # noqa: E402
from twilio_sim import CallerSession, CallResult, EspeakVoice  # noqa: E402
from voice_bridge.twilio.codec import ULAW_SILENCE  # noqa: E402

ZIP_KEYS = "94107#"  # the billing ZIP of every bench account (James Smith's), keyed
ZIP_WORDS = ("nine four one", "zero seven")  # ... or spoken, in one breath or with a pause
ZIP_PAUSE_MS = 600  # a caller who stops mid ZIP for this long must not be cut off
ZIP_WAYS = ("keys", "spoken", "paused")
READ_BACK = "Is that right?"  # the bot reading a spoken ZIP back (bot/responses.yml read_back)
ZIP_ATTEMPTS = 3  # spoken ZIPs the engine misheard are said again, then keyed
NO_INPUT = "didn't hear anything"
SCRIPT = ("yes", "yes", "yes", "no", "no")
# What the bot must say, in order, for the call to have taken the scripted path.
MILESTONES = ("ZIP code", "ready to make your payment", "Visa ending 4242", "Shall I go ahead",
              "was successful", "anything else", "Goodbye")
# The bot's reply to each caller turn (the keyed ZIP, then SCRIPT), for the per-question latency.
QUESTIONS = ("greeting", "stored card?", "confirm", "paid+receipt?", "anything else?",
             "goodbye")
# Listen modes of the questions the caller answers, if the tracker cannot be read.
SCRIPT_MODES = ("digits", "yes_no", "free", "yes_no", "yes_no", "yes_no")
FIRST_NAMES = ("Ava", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Henry", "Isla",
               "Jack", "Karen", "Leo", "Mia", "Noah", "Olivia", "Paul", "Rosa", "Sean",
               "Tara", "Victor", "Wendy", "Zach")
TARGET_P95_MS, TARGET_P95_LEVEL, TARGET_LATE_LEVEL = 500.0, 10, 20
CALL_TIMEOUT_S = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOG_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
HEARD = re.compile(r"call (CA\w+): turn (\d+) heard \((\w+), (\d+) ms audio, finalize (\d+) ms\)")
REPLY = re.compile(r"call (CA\w+): reply (\d+) first audio (\d+) ms after end of turn "
                   r"\(tts (\d+) ms\)")
GREETING = re.compile(r"call (CA\w+): reply \d+ first audio (\d+) ms after session_begin "
                      r"\(tts (\d+) ms\)")


# -- the accounts -------------------------------------------------------------------------------
def add_accounts(db_url: str, count: int) -> list[str]:
    """``count`` accounts like James Smith's (Visa ending 4242 on file) with their own number,
    name and balance (so the bot's per-caller sentences are not all served from Piper's cache);
    returns their phone numbers."""
    engine = make_engine(db_url)
    with Session(engine) as session:
        taken_phones = set(session.exec(select(Account.phone)).all())
        taken_numbers = set(session.exec(select(Account.account_number)).all())
    gateway, template, today = SandboxGateway(engine), DEMO_ACCOUNTS[0], date.today()
    phones: list[str] = []
    n = 0
    while len(phones) < count:
        n += 1
        phone, number = f"+1555556{n:04d}", f"9{n:08d}"
        if phone in taken_phones or number in taken_numbers:
            continue
        first = FIRST_NAMES[n % len(FIRST_NAMES)]
        demo = dataclasses.replace(template, name=f"{first} Bench{n}", phone=phone,
                                   account_number=number, balance=f"{100 + 7.31 * n:.2f}")
        _seed_one(engine, gateway, demo, today)
        phones.append(phone)
    engine.dispose()
    return phones


# -- one call -----------------------------------------------------------------------------------
@dataclass
class CallOutcome:
    phone: str
    call_sid: str = ""
    result: CallResult | None = None
    error: str | None = None
    modes: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)  # what the bot said (Rasa's tracker)
    user_turns: int = 0  # what the bot was given (Rasa's user events; more than the caller's
    # turns: a turn cut in two)
    last_log: str = ""  # the stack's last log line about a failed call
    clock_slips: int = 0
    clock_base: float = 0.0  # wall-clock time of the call's t=0 (to line up with log lines)

    @property
    def failed(self) -> bool:
        return self.error is not None


def last_bot_text(rasa_url: str, token: str, call_sid: str) -> str:
    response = requests.get(f"{rasa_url}/conversations/call:{call_sid}/tracker",
                            params={"token": token}, timeout=60)
    response.raise_for_status()
    texts = [e["text"] for e in response.json()["events"] if e["event"] == "bot" and e.get("text")]
    return texts[-1] if texts else ""


async def answer_zip(call: CallerSession, voice: EspeakVoice, how: str, rasa: tuple[str, str]
                     ) -> None:
    """Give the billing ZIP: keyed (``how="keys"``), spoken in one breath (``"spoken"``) or
    with a pause mid-way (``"paused"``); a misheard spoken ZIP is said again, then keyed. When
    the bot reads a spoken ZIP back ("I heard 9 4 1 0 7. Is that right?") the caller says
    yes if it is theirs, no (and says it again) if not."""
    if how == "keys":
        await call.press(ZIP_KEYS)
        await call.wait_bot()
        return
    first, rest = [await voice.synthesize(part) for part in ZIP_WORDS]
    pause = bytes([ULAW_SILENCE]) * (ZIP_PAUSE_MS * 8)
    for _attempt in range(ZIP_ATTEMPTS):
        audio = first + pause + rest if how == "paused" else await voice.synthesize(
            " ".join(ZIP_WORDS))
        await call.speak(audio, " ".join(ZIP_WORDS))
        await call.wait_bot()
        said = await asyncio.to_thread(last_bot_text, *rasa, call.call_sid)
        if READ_BACK in said:
            right = " ".join(ZIP_KEYS.rstrip("#")) in said
            await call.say("yes" if right else "no")
            await call.wait_bot()
            if right:
                return
            continue
        if "ZIP" not in said or NO_INPUT in said:
            return
    await call.press(ZIP_KEYS)
    await call.wait_bot()


async def place_call(settings: Settings, url: str, phone: str, voice: EspeakVoice,
                     delay_s: float, slots: asyncio.Semaphore, zip_how: str = "keys",
                     rasa: tuple[str, str] = ("", "")) -> CallOutcome:
    outcome = CallOutcome(phone)
    await asyncio.sleep(delay_s)
    async with slots:
        session = CallerSession(settings=settings, url=url, from_=phone, voice=voice,
                                wait_timeout_s=60.0)
        outcome.call_sid = session.call_sid

        async def follow_script(call: CallerSession) -> None:
            await call.wait_bot()
            await answer_zip(call, voice, zip_how, rasa)
            for line in SCRIPT:
                await call.say(line)
                await call.wait_bot()
            await call.wait_ended(30)

        try:
            async with session as call:
                await asyncio.wait_for(follow_script(call), CALL_TIMEOUT_S)
        except Exception as exc:  # every failure is counted and shown
            outcome.error = f"{type(exc).__name__}: {exc}"[:160]
        if session._line is not None:  # how often the caller's own 20 ms clock fell behind
            outcome.clock_slips = session._line._late_ticks
        outcome.clock_base = session._t0 + time.time() - time.monotonic()
        outcome.result = session.result()
    return outcome


def check_call(outcome: CallOutcome, rasa_url: str, token: str, engine) -> None:
    """Did the call take the scripted path and pay? Also reads the listen mode of each question
    answered from Rasa's tracker (the ``listen`` payload in force when the caller spoke)."""
    said, modes = [], []
    try:
        response = requests.get(f"{rasa_url}/conversations/call:{outcome.call_sid}/tracker",
                                params={"token": token}, timeout=60)
        response.raise_for_status()
        mode = None
        for event in response.json()["events"]:
            if event["event"] == "bot":
                custom = (event.get("data") or {}).get("custom") or {}
                if custom.get("type") == "listen":
                    mode = custom.get("mode")
                if event.get("text"):
                    said.append(event["text"])
            elif event["event"] == "user" and not (event.get("text") or "").startswith("EXTERNAL"):
                modes.append(mode or "free")
    except requests.RequestException as exc:
        outcome.error = outcome.error or f"tracker: {exc}"
    outcome.modes, outcome.said, outcome.user_turns = modes, said, len(modes)
    if outcome.failed:
        return
    spoken, at = " ".join(said), 0
    for milestone in MILESTONES:
        found = spoken.find(milestone, at)
        if found < 0:
            outcome.error = f"wrong path: never said {milestone!r}; last: {said[-1:]!r}"[:160]
            return
        at = found
    with Session(engine) as session:
        paid = session.exec(select(Payment).where(
            Payment.conversation_id == f"call:{outcome.call_sid}",
            Payment.status == PaymentStatus.SUCCEEDED)).all()
    result = outcome.result
    if len(paid) != 1:
        outcome.error = f"{len(paid)} successful payments"
    elif result is not None and not result.bridge_closed:
        outcome.error = f"the bridge did not hang up ({result.end_reason})"


# -- CPU ----------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                tree.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return tree


def _tree(pid: int, tree: dict[int, list[int]]) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(tree.get(p, []))
    return found


def _listening_pid(port: int) -> int | None:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for row in list(f)[1:]:
                    cols = row.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{cols[9]}]")
        except OSError:
            continue
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    return int(entry)
        except OSError:
            continue
    return None


def _is_action_server(cmdline: str) -> bool:
    names = ("action_server", "actions.server", "rasa_sdk", "run actions")
    return any(name in cmdline for name in names)


def find_services(up_pid: int | None, bridge_port: int, rasa_port: int,
                  action_port: int | None) -> dict[str, list[int]]:
    """Process trees of the bridge, Rasa and the action server."""
    tree = _children()
    roots: dict[str, int | None] = {}
    if up_pid is not None:  # children of our `paybot up`
        for pid in tree.get(up_pid, []):
            line = _cmdline(pid)
            name = ("bridge" if "paybot_cli bridge" in line else
                    "actions" if _is_action_server(line) else
                    "rasa" if "rasa run" in line or "rasa_server run" in line else None)
            if name:
                roots[name] = pid
    else:
        roots["bridge"] = _listening_pid(bridge_port)
        roots["rasa"] = _listening_pid(rasa_port)
        roots["actions"] = _listening_pid(action_port) if action_port else None
        if roots["actions"] is None and roots["rasa"] is not None:
            parent = int(_stat(roots["rasa"])[1])
            roots["actions"] = next((p for p in tree.get(parent, [])
                                     if _is_action_server(_cmdline(p))), None)
    return {name: _tree(pid, tree) for name, pid in roots.items() if pid is not None}


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = _stat(pid)
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            continue
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of a process's main thread (the bridge's event loop) alone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class CpuSample:
    services: dict[str, float]
    loop: float  # the bridge's main thread: its event loop
    own: float
    machine: tuple[int, int]
    at: float

    @classmethod
    def take(cls, services: dict[str, list[int]]) -> CpuSample:
        own = os.times()
        bridge = services.get("bridge", [])
        return cls({name: cpu_seconds(pids) for name, pids in services.items()},
                   thread_cpu_seconds(bridge[0]) if bridge else 0.0,
                   own.user + own.system, machine_ticks(), time.monotonic())


# -- statistics ---------------------------------------------------------------------------------
def pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def ms(value: float | None) -> str:
    return "      -" if value is None else f"{value:7.0f}"


@dataclass
class LevelReport:
    level: int
    outcomes: list[CallOutcome]
    latencies: list[float]  # caller-heard: the caller's last speech (or key) to the bot's audio
    by_kind: dict[str, list[float]]  # the same per answer: yes_no, digits, free, keys
    first_answers: list[float]  # the same for each call's first answer (to the welcome)
    no_input: int  # times a caller heard the no-input prompt
    splits: int  # caller turns the bridge cut in two (more user turns than caller turns)
    spoken_turns: int
    greetings: list[float]
    late: int
    unplayed: int
    cpu: dict[str, float]
    own_cpu: float
    loop_cpu: float
    wall_s: float
    others_cpu: float
    call_minutes: float
    busy: float
    load: tuple[float, float, float]
    breakdown: dict[str, list[float]]
    by_question: list[tuple[list[float], list[float]]]
    active: list[int]  # calls in progress at each answered turn


    @property
    def failed(self) -> list[CallOutcome]:
        return [o for o in self.outcomes if o.failed]


def analyse(level: int, outcomes: list[CallOutcome], before: CpuSample, after: CpuSample,
            log_lines: list[str]) -> LevelReport:
    latencies, greetings, first_answers = [], [], []
    by_kind: dict[str, list[float]] = {"yes_no": [], "digits": [], "free": [], "keys": []}
    late = unplayed = no_input = splits = spoken_turns = 0
    # Per call, per answered turn: (latency, end of turn, first bot audio), wall clock.
    turn_rows: dict[str, list[tuple[float, float, float]]] = {}
    for o in outcomes:
        r = o.result
        if r is None:
            continue
        modes = o.modes if len(o.modes) >= len(r.caller_turns) else list(SCRIPT_MODES)
        rows = turn_rows.setdefault(o.call_sid, [])
        no_input += sum(NO_INPUT in text for text in o.said)
        splits += max(0, o.user_turns - len(r.caller_turns)) if o.user_turns else 0
        spoken_turns += sum(t.kind == "speech" for t in r.caller_turns)
        for turn, mode in zip(r.caller_turns, modes, strict=False):
            if turn.response_latency_ms is None:
                continue
            latencies.append(turn.response_latency_ms)
            kind = "keys" if turn.kind == "keys" else mode if mode in by_kind else "free"
            by_kind[kind].append(turn.response_latency_ms)
            if turn.index == 1:
                first_answers.append(turn.response_latency_ms)
            assert turn.last_signal_at is not None and turn.response_at is not None
            rows.append((latencies[-1], o.clock_base + turn.last_signal_at,
                         o.clock_base + turn.response_at, turn.kind))
        if r.bot_turns:
            greetings.append(r.bot_turns[0].first_media_at * 1000.0)
        late += r.late_frames
        unplayed += sum((t.received_bytes - t.played_bytes) // 160 for t in r.bot_turns)
    # The bridge's log lines, per caller turn: when the transcript was ready (and how long
    # final() alone took), and how long TTS took to the first frame once Rasa had answered.
    heard: dict[str, list[tuple[float, float]]] = {}
    tts: dict[str, list[float]] = {}
    logged: dict[str, list[float]] = {}
    greeted: list[tuple[float, float]] = []  # the greeting: stream start to audio, TTS
    failed = {o.call_sid: o for o in outcomes if o.failed and o.call_sid}
    for line in log_lines:
        sid = next((sid for sid in failed if sid in line), None)
        if sid is not None and "aiohttp.access" not in line:
            failed[sid].last_log = line.strip()[:220]
        if (m := HEARD.search(line)) and (t := LOG_TIME.search(line)):
            at = datetime.strptime(t[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            heard.setdefault(m[1], []).append((at, float(m[5])))
        elif m := REPLY.search(line):
            tts.setdefault(m[1], []).append(float(m[4]))
            logged.setdefault(m[1], []).append(float(m[3]))
        elif (m := GREETING.search(line)) and m[1] in turn_rows:
            greeted.append((float(m[2]), float(m[3])))
    breakdown: dict[str, list[float]] = {
        "asr": [], "finalize": [], "rasa": [], "tts": [],
        "logged": [v for sid in turn_rows for v in logged.get(sid, [])],
        "greeting": [g for g, _tts in greeted], "greeting_tts": [t for _g, t in greeted]}
    by_question: list[tuple[list[float], list[float]]] = [([], []) for _ in QUESTIONS]
    for sid, rows in turn_rows.items():
        # One "reply first audio" line per answered turn (keyed or spoken); "heard" lines
        # only for spoken ones (keys skip ASR).
        firsts = list(zip(rows, tts.get(sid, []), strict=False))
        for i, ((latency, _end, _audio, _kind), first) in enumerate(firsts[:len(QUESTIONS)]):
            by_question[i][0].append(latency)
            by_question[i][1].append(first)
        spoken = [(row, first) for row, first in firsts if row[3] == "speech"]
        for ((_latency, end, audio, _kind), first), (heard_at, fin) in zip(
                spoken, heard.get(sid, []), strict=False):
            breakdown["asr"].append((heard_at - end) * 1000)
            breakdown["finalize"].append(fin)
            breakdown["rasa"].append((audio - heard_at) * 1000 - first)
            breakdown["tts"].append(first)
    spans = [(o.clock_base, o.clock_base + o.result.duration_s) for o in outcomes if o.result]
    active = [sum(start <= end <= stop for start, stop in spans)
              for rows in turn_rows.values() for (_latency, end, _audio, _kind) in rows]
    busy_ticks = after.machine[0] - before.machine[0]
    all_ticks = max(1, after.machine[1] - before.machine[1])
    return LevelReport(
        level=level, outcomes=outcomes, latencies=latencies, by_kind=by_kind,
        first_answers=first_answers, no_input=no_input, splits=splits,
        spoken_turns=spoken_turns, greetings=greetings,
        late=late, unplayed=unplayed,
        cpu={k: after.services.get(k, 0.0) - v for k, v in before.services.items()},
        own_cpu=after.own - before.own, loop_cpu=after.loop - before.loop,
        wall_s=after.at - before.at,
        others_cpu=max(0.0, busy_ticks / CLK_TCK - (after.own - before.own)
                       - sum(after.services.values()) + sum(before.services.values())),
        call_minutes=sum(o.result.duration_s for o in outcomes if o.result) / 60.0,
        busy=busy_ticks / all_ticks, load=os.getloadavg(), breakdown=breakdown,
        by_question=by_question, active=active,
    )


def print_level(rep: LevelReport) -> None:
    n, ok = len(rep.outcomes), len(rep.outcomes) - len(rep.failed)
    print(f"\n== {rep.level} concurrent: {n} calls, {ok} completed, {len(rep.failed)} failed, "
          f"{len(rep.latencies)} caller turns answered")
    if rep.active:
        print(f"  calls in progress when a turn ended: mean {statistics.mean(rep.active):.1f}, "
              f"min {min(rep.active)}, max {max(rep.active)}")
    print(f"  caller-heard latency (last speech or key to the bot's first audio): p50 "
          f"{ms(pct(rep.latencies, 50))} ms  p95 {ms(pct(rep.latencies, 95))} ms  max "
          f"{ms(max(rep.latencies, default=None))} ms")
    for kind, values in rep.by_kind.items():
        if values:
            print(f"    {kind:7s} answers ({len(values):3d}): p50 {ms(pct(values, 50))} ms  "
                  f"p95 {ms(pct(values, 95))} ms  max {ms(max(values))} ms")
    print(f"  first answer (to the welcome): p50 {ms(pct(rep.first_answers, 50))} ms  "
          f"p95 {ms(pct(rep.first_answers, 95))} ms  max "
          f"{ms(max(rep.first_answers, default=None))} ms;  no-input prompts heard "
          f"{rep.no_input};  turns cut in two {rep.splits} of {rep.spoken_turns} spoken")
    print(f"  welcome, webhook to first audio:  p50 {ms(pct(rep.greetings, 50))} ms  "
          f"p95 {ms(pct(rep.greetings, 95))} ms  max {ms(max(rep.greetings, default=None))} ms")
    b = rep.breakdown
    if b["tts"]:
        def q(key: str) -> str:
            return f"{ms(pct(b[key], 50)).strip()}/{ms(pct(b[key], 95)).strip()}"

        print(f"  where it went, p50/p95 ms: last speech to transcript (end-of-turn wait and "
              f"ASR) {q('asr')} (ASR final() "
              f"alone {q('finalize')}), then Rasa + actions {q('rasa')}, then TTS to first "
              f"frame {q('tts')}")
        print(f"  welcome, stream start to first audio (the bridge's figure): "
              f"{q('greeting')} ms, of which TTS {q('greeting_tts')}")
        print(f"  the bridge's own 'first audio ... after end of turn' figure: p50 "
              f"{ms(pct(b['logged'], 50)).strip()} ms  p95 {ms(pct(b['logged'], 95)).strip()} ms"
              " (measured once the whole reply was sent)")
        print("  p50 latency (TTS first audio) by the reply it got: " + "  ".join(
            f"{label} {ms(pct(lat, 50)).strip()} ({ms(pct(first, 50)).strip()})"
            for label, (lat, first) in zip(QUESTIONS, rep.by_question, strict=True)))
    else:
        print("  (no bridge log lines to break the latency down: an external stack)")
    total = sum(rep.cpu.values())
    per_call = {k: v / max(1, n) for k, v in rep.cpu.items()}
    per_min = {k: v / max(rep.call_minutes, 1e-9) for k, v in rep.cpu.items()}
    print("  CPU s per call (per call-minute): " + "  ".join(
        f"{k} {per_call[k]:.2f} ({per_min[k]:.2f})" for k in sorted(rep.cpu))
        + f"  total {total / max(1, n):.2f} ({total / max(rep.call_minutes, 1e-9):.2f})")
    wall = max(rep.wall_s, 1e-9)
    print(f"  bridge event-loop thread {rep.loop_cpu / max(1, n):.2f} s per call; caller side "
          f"(this script) {rep.own_cpu / max(1, n):.2f} s per call")
    print(f"  over {rep.wall_s:.0f} s: stack {total / wall:.2f} cores (bridge "
          f"{rep.cpu.get('bridge', 0.0) / wall:.2f}, its event loop {rep.loop_cpu / wall:.2f}), "
          f"this script {rep.own_cpu / wall:.2f}, other processes {rep.others_cpu / wall:.2f}; "
          f"machine {rep.busy * 100:.0f}% busy over {os.cpu_count()} CPUs; load average "
          + " ".join(f"{x:.2f}" for x in rep.load))
    slips = sum(o.clock_slips for o in rep.outcomes)
    print(f"  late frames {rep.late}  unplayed frames {rep.unplayed}  "
          f"caller clock slips {slips}")
    for o in rep.failed:
        print(f"  FAILED {o.phone} {o.call_sid}: {o.error}")
        if o.last_log:
            print(f"    its last log line: {o.last_log}")
    sys.stdout.flush()


def print_summary(reports: list[LevelReport]) -> None:
    print("\n| concurrent calls | calls ok/failed | p50 | p95 | max | yes/no p95 | digits p95 "
          "| first answer p95 | no-input / split turns | welcome p50 "
          "| late frames | CPU s/call | CPU s/call-min | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in reports:
        n, total = len(r.outcomes), sum(r.cpu.values())
        print(f"| {r.level} | {n - len(r.failed)}/{len(r.failed)} | {ms(pct(r.latencies, 50))} "
              f"| {ms(pct(r.latencies, 95))} | {ms(max(r.latencies, default=None))} "
              f"| {ms(pct(r.by_kind['yes_no'], 95))} | {ms(pct(r.by_kind['digits'], 95))} "
              f"| {ms(pct(r.first_answers, 95))} | {r.no_input} / {r.splits} "
              f"| {ms(pct(r.greetings, 50))} | {r.late} "
              f"| {total / max(1, n):.1f} | {total / max(r.call_minutes, 1e-9):.1f} "
              f"| {r.load[0]:.1f} |")
    by_level = {r.level: r for r in reports}
    p95_rep, late_rep = by_level.get(TARGET_P95_LEVEL), by_level.get(TARGET_LATE_LEVEL)
    if p95_rep is not None:
        p95 = pct(p95_rep.by_kind["yes_no"] + p95_rep.by_kind["digits"], 95)
        met = (p95 is not None and p95 <= TARGET_P95_MS and not p95_rep.failed
               and not p95_rep.splits)
        print(f"target: caller-heard p95 at most {TARGET_P95_MS:.0f} ms for yes/no and digit "
              f"answers at {TARGET_P95_LEVEL} concurrent calls, no turn cut in two: "
              f"{'met' if met else 'MISSED'} (p95 {ms(p95).strip()} ms, {p95_rep.splits} cut, "
              f"{len(p95_rep.failed)} failed)")
    else:
        print(f"target: p95 at {TARGET_P95_LEVEL} concurrent calls: not measured")
    if late_rep is not None:
        met = late_rep.late == 0 and not late_rep.failed and len(late_rep.outcomes) >= 20
        print(f"target: {TARGET_LATE_LEVEL} concurrent calls with no late frames: "
              f"{'met' if met else 'MISSED'} ({late_rep.late} late frames, "
              f"{len(late_rep.failed)} failed calls)")
    else:
        print(f"target: {TARGET_LATE_LEVEL} concurrent calls without late frames: not measured")
    print("ASR word/digit accuracy (FSDD digit strings, synthesised caller phrases): "
          "bench/bench_asr.py")


# -- the run ------------------------------------------------------------------------------------
async def run_level(settings: Settings, url: str, phones: list[str], level: int,
                    voice: EspeakVoice, stagger_s: float, rng: random.Random,
                    zip_how: str = "mixed", rasa: tuple[str, str] = ("", "")
                    ) -> list[CallOutcome]:
    slots = asyncio.Semaphore(level)
    delays = sorted(rng.uniform(0, stagger_s) for _ in phones)
    hows = [ZIP_WAYS[i % len(ZIP_WAYS)] if zip_how == "mixed" else zip_how
            for i in range(len(phones))]
    rng.shuffle(hows)
    calls = [asyncio.wait_for(place_call(settings, url, p, voice, d, slots, how, rasa),
                              CALL_TIMEOUT_S * 2)
             for p, d, how in zip(phones, delays, hows, strict=True)]
    done = await asyncio.gather(*calls, return_exceptions=True)
    return [d if isinstance(d, CallOutcome) else CallOutcome(p, error=f"{type(d).__name__}: {d}")
            for p, d in zip(phones, done, strict=True)]


def bench(args: argparse.Namespace, settings: Settings, rasa_url: str, token: str,
          db_url: str, up_pid: int | None, log_lines) -> list[LevelReport]:
    bridge_url = args.url or settings.bridge_url
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    counts = [(-args.calls_per_level * level if args.calls_per_level < 0 else args.calls_per_level)
              or (level if args.quick else max(level, 3)) for level in levels]
    warm = 0 if args.quick else 1
    print(f"adding {sum(counts) + warm} accounts (one per call)...", file=sys.stderr)
    phones = add_accounts(db_url, sum(counts) + warm)
    engine = make_engine(db_url)
    voice = EspeakVoice()

    async def synthesise_script() -> None:  # cached once, before anything is timed
        lines = {*SCRIPT, *ZIP_WORDS, " ".join(ZIP_WORDS)}
        await asyncio.gather(*(voice.synthesize(line) for line in lines))

    asyncio.run(synthesise_script())
    rng = random.Random(args.seed)
    services = find_services(up_pid, urlsplit(bridge_url).port or 80,
                             urlsplit(rasa_url).port or 80, args.action_port)
    missing = {"bridge", "rasa", "actions"} - set(services)
    if missing:
        print(f"(no process found for {', '.join(sorted(missing))}: not in the CPU figures)")
    if warm:
        print("warm-up call...", file=sys.stderr)
        [outcome] = asyncio.run(run_level(settings, bridge_url, phones[:1], 1, voice, 0, rng,
                                          "keys", (rasa_url, token)))
        check_call(outcome, rasa_url, token, engine)
        if outcome.failed:
            print(f"warm-up call FAILED: {outcome.error}")
            if outcome.result is not None:
                print(outcome.result.transcript())
    reports, start = [], warm
    for level, count in zip(levels, counts, strict=True):
        batch, start = phones[start:start + count], start + count
        print(f"{level} concurrent: {count} calls...", file=sys.stderr)
        before = CpuSample.take(services)
        outcomes = asyncio.run(run_level(settings, bridge_url, batch, level, voice,
                                         args.stagger, rng, args.zip, (rasa_url, token)))
        after = CpuSample.take(services)
        for outcome in outcomes:
            check_call(outcome, rasa_url, token, engine)
        report = analyse(level, outcomes, before, after, log_lines())
        print_level(report)
        reports.append(report)
    engine.dispose()
    return reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,10,20", help="concurrent calls, e.g. 1,10,20")
    parser.add_argument("--calls-per-level", type=int, default=0,
                        help="calls at each level (default: the level, at least 3)")
    parser.add_argument("--quick", action="store_true",
                        help="levels 1,3, one wave each, no warm-up call (checks the script)")
    parser.add_argument("--stagger", type=float, default=2.0,
                        help="calls start at random within this many seconds")
    parser.add_argument("--spread", action="store_true",
                        help="calls arrive as in real life, not in step: 3 times the level "
                        "in all, starting at random over 60 s, at most the level at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--zip", choices=("mixed", *ZIP_WAYS), default="mixed",
                        help="how callers give the ZIP: keyed, spoken, spoken with a "
                        f"{ZIP_PAUSE_MS} ms pause mid-way, or a third each (default)")
    parser.add_argument("--url", help="a running bridge (default: start a stack)")
    parser.add_argument("--rasa-url", help="its Rasa server")
    parser.add_argument("--action-port", type=int, help="its action server's port (for CPU)")
    parser.add_argument("--rasa-token", help="its Rasa token (default: the settings')")
    parser.add_argument("--database-url", help="its database (default: the settings')")
    parser.add_argument("--stack-log", help="write the started stack's output to this file")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the started stack, e.g. "
                        "PAYBOT_SPEECH_THREADS=2 (repeatable)")
    args = parser.parse_args()
    import uvloop  # Twilio's side of 20 calls shares the machine: keep it cheap

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.quick and args.levels == "1,10,20":
        args.levels = "1,3"
    if args.spread:
        args.stagger = 60.0
        args.calls_per_level = args.calls_per_level or -3
    if bool(args.url) != bool(args.rasa_url):
        parser.error("--url and --rasa-url go together")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} CPUs  load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))

    if args.url:
        settings = load_settings()
        token = args.rasa_token or settings.rasa_token.get_secret_value()
        reports = bench(args, settings, args.rasa_url.rstrip("/"), token,
                        args.database_url or settings.db_url, None, lambda: [])
    else:
        from tests.fake_twilio import FakeTwilio
        from tests.stack import RASA_TOKEN, Stack

        with tempfile.TemporaryDirectory() as tmp, FakeTwilio() as fake:
            extra = dict(item.split("=", 1) for item in args.env)
            stack = Stack.configure(Path(tmp), **{**fake.env(), "PAYBOT_SCHEDULER_INTERVAL_S": "0",
                                                  **extra})
            print("starting the stack (paybot up)...", file=sys.stderr)
            stack.start()
            try:
                stack.reset_data()
                settings = load_settings(**fake.settings_overrides(),
                                         bridge_port=int(stack.env["PAYBOT_BRIDGE_PORT"]))
                assert stack.process is not None
                reports = bench(args, settings, stack.rasa_url, RASA_TOKEN,
                                f"sqlite:///{Path(tmp) / 'paybot.db'}", stack.process.pid,
                                lambda: list(stack.output))
            finally:
                stack.stop()
                if args.stack_log:
                    Path(args.stack_log).write_text(stack.all_output())
    print_summary(reports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
