"""The running paybot stack for end-to-end tests: ``paybot up`` on free ports, a private data
dir, and clients that talk to it the way the bridge and the chat channel do.

Every stack takes part in the card-data scan (``tests/cardscan.py``): its whole output goes to
``<data dir>/paybot-up.log``, its database is scanned before each reset and when it stops,
and the Rasa tracker of every conversation it held (each :class:`Conversation`, each call in
its log, each sender given to :meth:`Stack.track`) before it stops."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from paybot.db.engine import make_engine
from paybot.dialog.vouch import Heard, vouch, vouch_key
from paybot.gateway.sandbox import SandboxGateway
from paybot.seed import seed_demo_data
from tests import cardscan

RASA_TOKEN = os.environ.get("PAYBOT_E2E_RASA_TOKEN", "e2e-rasa-token")
REPO = Path(__file__).resolve().parents[1]
# Log lines kept whole for the run, however much the services log (``Stack.watched``).
WATCHED = ("Circuit breaker tripped",)
OUTPUT_LOG = "paybot-up.log"
_CALL_SID = re.compile(r"\bcall (CA[0-9a-fA-F]{32})\b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """``paybot up`` running in a subprocess, with its ports and database."""

    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    output: deque = field(default_factory=lambda: deque(maxlen=4000))
    engine: Engine | None = None
    kept: list[str] = field(default_factory=list)
    senders: set[str] = field(default_factory=set)

    @property
    def rasa_url(self) -> str:
        return self.env.get("PAYBOT_E2E_RASA_URL") or (
            f"http://127.0.0.1:{self.env['PAYBOT_RASA_PORT']}"
        )

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PAYBOT_BRIDGE_PORT']}"

    @classmethod
    def configure(cls, data_dir: Path, **extra: str) -> Stack:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PAYBOT_") and k != "DATABASE_URL"
        }
        env.update(
            PAYBOT_ENV="dev",
            PAYBOT_DATA_DIR=str(data_dir),
            PAYBOT_RASA_PORT=str(free_port()),
            PAYBOT_ACTION_PORT=str(free_port()),
            PAYBOT_BRIDGE_PORT=str(free_port()),
            PAYBOT_RASA_TOKEN=RASA_TOKEN,
            PAYBOT_FEE_AMOUNT="2.00",
            PAYBOT_LOG_LEVEL="INFO",
            # Every stack of a run (and the next run) shares the static prompts' audio.
            PAYBOT_TTS_CACHE_DIR=str(Path(tempfile.gettempdir()) / f"paybot-tts-{os.getuid()}"),
        )
        env.update(extra)
        return cls(data_dir=data_dir, env=env)

    def start(self, timeout_s: float = 420) -> None:
        """Run ``paybot up`` (every service healthy within ``timeout_s``); or, with
        PAYBOT_E2E_RASA_URL and PAYBOT_E2E_DB set, use a stack that is already running (handy
        while editing the conversation)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)  # the output log goes there
        external_db = os.environ.get("PAYBOT_E2E_DB")
        if os.environ.get("PAYBOT_E2E_RASA_URL") and external_db:
            self.env["PAYBOT_E2E_RASA_URL"] = os.environ["PAYBOT_E2E_RASA_URL"]
            self.engine = make_engine(f"sqlite:///{external_db}")
            return
        self.process = subprocess.Popen(
            [sys.executable, "-m", "paybot_cli", "up", "--timeout", str(timeout_s)],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(ready,), daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(1.0) and self.process.poll() is None:
            if time.monotonic() > deadline:
                break
        if not ready.is_set():  # it exited (e.g. no trained model) or took too long
            self.stop()
            raise RuntimeError("paybot up did not come up:\n" + self.log_tail())
        self.engine = make_engine(
            self.env.get("DATABASE_URL") or f"sqlite:///{self.data_dir / 'paybot.db'}"
        )

    def _pump(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        with (self.data_dir / OUTPUT_LOG).open("a") as log:
            for line in self.process.stdout:
                self.output.append(line)
                log.write(line)
                log.flush()
                if any(text in line for text in WATCHED):
                    self.kept.append(line)
                if "paybot is up" in line:
                    ready.set()

    def log_tail(self, lines: int = 80) -> str:
        return "".join(list(self.output)[-lines:])

    def all_output(self) -> str:
        return "".join(self.output)

    def watched(self, text: str) -> list[str]:
        """Every line since the start that holds ``text`` (one of ``WATCHED``)."""
        assert text in WATCHED, text
        return [line for line in self.kept if text in line]

    def wait_for_output(self, *texts: str, timeout_s: float = 10) -> str:
        """The output once every one of ``texts`` is in it (the stack logs through a pipe that
        a thread reads, so a line can land a moment after the event it reports)."""
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.all_output()
            if all(t in out for t in texts) or time.monotonic() > deadline:
                return out
            time.sleep(0.05)

    def track(self, sender: str) -> str:
        """Have the card-data scan read this conversation's tracker; returns ``sender``."""
        self.senders.add(sender)
        return sender

    def conversation_ids(self) -> set[str]:
        """Every conversation the tests held with this stack: tracked ones and calls."""
        calls = {f"call:{sid}" for sid in _CALL_SID.findall(self.all_output())}
        return self.senders | calls

    def check_trackers(self) -> list[cardscan.Finding]:
        """Scan the Rasa tracker of every conversation (while Rasa still runs)."""
        found: list[cardscan.Finding] = []
        for sender in sorted(self.conversation_ids()):
            try:
                response = requests.get(
                    f"{self.rasa_url}/conversations/{sender}/tracker",
                    params={"token": RASA_TOKEN},
                    timeout=30,
                )
                response.raise_for_status()
            except requests.RequestException as exc:
                found.append(cardscan.Finding(f"tracker {sender}", f"not scanned ({exc})"))
                continue
            found += cardscan.scan_tracker(response.json(), sender)
        return cardscan.record(found)

    def check_database(self) -> list[cardscan.Finding]:
        if self.engine is None:
            return []
        return cardscan.check_engine(self.engine, f"stack {self.data_dir.name}")

    def stop(self) -> int | None:
        if self.engine is not None and (self.process is None or self.process.poll() is None):
            self.check_trackers()
            self.check_database()
        if self.process is None:
            return 0  # an external stack is not ours to stop
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def reset_data(self) -> None:
        """Empty every table and seed the demo accounts again (between tests)."""
        assert self.engine is not None
        self.check_database()
        if self.engine.dialect.name == "postgresql":  # TRUNCATE passes the row triggers
            names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
            with self.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            seed_demo_data(self.engine, SandboxGateway(self.engine))
            return
        with self.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
            for table in reversed(SQLModel.metadata.sorted_tables):
                conn.execute(table.delete())
            conn.execute(
                text(
                    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;"
                )
            )
        seed_demo_data(self.engine, SandboxGateway(self.engine))


def serve(stack: Stack) -> Iterator[Stack]:
    """A module fixture's body: start ``stack``, yield it, then stop it (cleanly)."""
    stack.start()
    yield stack
    code = stack.stop()
    if stack.engine is not None:
        stack.engine.dispose()
    assert code == 0, stack.log_tail()


@dataclass
class Reply:
    """What the bot answered in one turn: its texts and its instructions to the bridge."""

    texts: list[str]
    custom: list[dict[str, Any]]

    @property
    def text(self) -> str:
        return " ".join(self.texts)

    def instruction(self, kind: str) -> dict[str, Any] | None:
        return next((c for c in self.custom if c.get("type") == kind), None)


class Conversation:
    """One conversation over the REST channel (chat/SMS) or as the voice bridge does it.

    SMS and voice messages carry the bridge's proof for the channel and number
    (:mod:`paybot.dialog.vouch`); chat messages carry ``from`` unsigned, as any chat client
    can, so Rasa's channel drops it."""

    def __init__(
        self,
        stack: Stack,
        channel: str = "chat",
        phone: str | None = None,
        http: requests.Session | None = None,
    ) -> None:
        """``http``: a session to keep the connection to Rasa open between messages, as the
        bridge does (a new connection each message without one)."""
        self.stack = stack
        self.http = http
        self.channel = channel
        self.phone = phone
        self.vouched = channel in ("sms", "voice")
        prefix = {"voice": "call", "sms": "sms", "chat": "chat"}[channel]
        self.sender = stack.track(f"{prefix}:{uuid.uuid4().hex[:12]}")

    def say(self, message: str, heard: Heard | None = None) -> Reply:
        """Send ``message``; on a call, ``heard`` says how the bridge heard it (spoken, with
        the ASR confidence, or keyed)."""
        metadata: dict[str, Any] = {"channel": self.channel}
        if self.phone:
            metadata["from"] = self.phone
        if self.vouched:
            metadata = vouch(vouch_key(RASA_TOKEN), sender=self.sender, channel=self.channel,
                             caller=self.phone or "", heard=heard)
        response = (self.http or requests).post(
            f"{self.stack.rasa_url}/webhooks/rest/webhook",
            json={"sender": self.sender, "message": message, "metadata": metadata},
            timeout=60,
        )
        response.raise_for_status()
        return _reply(response.json())

    def system(self, intent: str, **entities: str) -> Reply:
        """A system event, as the bridge sends it: Rasa's HTTP API with the token."""
        response = requests.post(
            f"{self.stack.rasa_url}/conversations/{self.sender}/trigger_intent",
            params={"token": RASA_TOKEN},
            json={"name": intent, "entities": entities},
            timeout=60,
        )
        response.raise_for_status()
        return _reply(response.json().get("messages", []))

    def start_call(self) -> Reply:
        return self.system("session_begin", channel=self.channel, caller=self.phone or "")

    def tracker(self, include_events: str = "AFTER_RESTART") -> dict[str, Any]:
        """The tracker; ``include_events="NONE"`` for just the slots and the active loop."""
        response = requests.get(
            f"{self.stack.rasa_url}/conversations/{self.sender}/tracker",
            params={"token": RASA_TOKEN, "include_events": include_events},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


def _reply(messages: list[dict[str, Any]]) -> Reply:
    texts = [m["text"] for m in messages if m.get("text")]
    custom = [m["custom"] for m in messages if isinstance(m.get("custom"), dict)]
    return Reply(texts, custom)


def wait_until(predicate, timeout_s: float = 10.0, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False
