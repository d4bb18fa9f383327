"""The supervisor behind ``paybot up``: start services, wait until healthy, stop cleanly.

Children run in their own process groups, so a Ctrl-C in the terminal reaches only this
process; SIGINT, SIGTERM and SIGHUP all stop every child (its stop signal to its group,
SIGKILL after a grace period) and end with exit code 0. SIGTERM first drains the services
that drain (the bridge: live calls end, new ones are refused) within their limit, while the
others keep serving them; a second signal stops at once. A service that exits on its own, or does
not become healthy in time, stops the others and ends with exit code 1.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from paybot_cli.children import STOP_GRACE_S, Child, child_env, drain, spawn, stop_all
from paybot_cli.console import emit, fail, say
from paybot_cli.health import http_ok

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
POLL_S = 0.5
PROGRESS_EVERY_S = 10.0


@dataclass(frozen=True)
class Service:
    """One child process of the stack and how to tell it is healthy."""

    name: str
    prefix: str
    port: int
    port_env: str
    url: str
    health_path: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"  # the address it binds
    stop_signal: signal.Signals = signal.SIGTERM  # what stops it at once
    # On SIGTERM it drains first (the bridge: live calls finish), for at most this long.
    drain_timeout_s: float | None = None

    @property
    def health_url(self) -> str:
        """The URL that answers 200 once the service is ready."""
        return self.url + self.health_path


class Supervisor:
    """Runs ``services`` from ``cwd`` until a stop signal or a failure."""

    def __init__(self, services: list[Service], cwd: Path, startup_timeout_s: float) -> None:
        self.services = services
        self.cwd = cwd
        self.startup_timeout_s = startup_timeout_s
        self.children: list[Child] = []
        self._stop = threading.Event()
        self._now = threading.Event()
        self._signal: int | None = None

    def run(self) -> int:
        """Start everything, wait until healthy, supervise; always stop what was started.

        Returns:
            The process exit code: 0 when stopped by a signal, 1 on failure.
        """
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            for service in self.services:
                env = child_env(service.env)
                self.children.append(spawn(service.name, service.prefix, service.argv, env,
                                           self.cwd, service.stop_signal))
            code = self._wait_until_healthy()
            if code is None:
                self._announce()
                code = self._watch()
            return code
        finally:
            self._stop_children()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop.is_set():  # a second signal: no more waiting for a drain
            self._now.set()
        self._signal = signum
        self._stop.set()

    def _wait_until_healthy(self) -> int | None:
        """None once every service answers 200; else the exit code to end with."""
        started = last_progress = time.monotonic()
        healthy: set[str] = set()
        while not self._stop.is_set():
            if (code := self._check_children("during startup")) is not None:
                return code
            healthy.update(s.name for s in self.services if s.name not in healthy
                           and http_ok(s.health_url))
            pending = [s.name for s in self.services if s.name not in healthy]
            if not pending:
                return None
            now = time.monotonic()
            if now - started > self.startup_timeout_s:
                fail(f"{', '.join(pending)} did not become healthy within "
                     f"{self.startup_timeout_s:.0f} s; stopping")
                return 1
            if now - last_progress >= PROGRESS_EVERY_S:
                say(f"waiting for {', '.join(pending)} ({now - started:.0f} s; "
                    "Rasa takes a minute or so to load its model)")
                last_progress = now
            self._stop.wait(POLL_S)
        return 0

    def _watch(self) -> int:
        """Wait for a stop signal (0) or a service that exits on its own (1)."""
        while not self._stop.wait(POLL_S):
            if (code := self._check_children("unexpectedly")) is not None:
                return code
        return 0

    def _check_children(self, when: str) -> int | None:
        for child in self.children:
            code = child.exit_code
            if code is not None:
                how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"code {code}"
                fail(f"{child.name} exited {when} ({how}); stopping the others")
                return 1
        return None

    def _announce(self) -> None:
        for service in self.services:
            say(f"{service.name + ':':<15} {service.url}")
        emit("paybot is up; Ctrl-C to stop")

    def _drain(self) -> None:
        """SIGTERM: let each service that drains (the bridge) finish its live work, within
        its limit (plus the stop grace), before anything is stopped; a second signal cuts
        it short."""
        for service, child in zip(self.services, self.children, strict=False):
            if service.drain_timeout_s is None or child.exit_code is not None:
                continue
            say(f"draining {child.name} (up to {service.drain_timeout_s:.0f} s; "
                "signal again to stop now)")
            if drain(child, service.drain_timeout_s + STOP_GRACE_S, self._now):
                say(f"{child.name} drained")

    def _stop_children(self) -> None:
        if self._signal is not None:
            say(f"{signal.Signals(self._signal).name} received; stopping")
        if self._signal == signal.SIGTERM:
            self._drain()
        names = ", ".join(c.name for c in self.children if c.exit_code is None)
        if names:
            say(f"stopping {names}")
        stop_all(self.children)
        say("stopped")
