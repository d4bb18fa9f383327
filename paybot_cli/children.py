"""Child processes: start each in its own process group, forward its output, stop it.

Each child runs in a new session (hence its own process group), so a Ctrl-C in the
terminal reaches only the supervisor, which then stops every child deliberately: each with
its stop signal, or first a drain (SIGTERM, then wait) for a child that drains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from paybot_cli.console import forward_output, say

log = logging.getLogger(__name__)
STOP_GRACE_S = 10.0
DRAIN_POLL_S = 0.5

# Defaults for every Python child; the user's environment wins where it sets them.
_CHILD_ENV_DEFAULTS = {
    "RASA_TELEMETRY_ENABLED": "false",  # self-hosted: no usage reports to Rasa
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


@dataclass
class Child:
    """A running child process and the thread forwarding its output."""

    name: str
    process: subprocess.Popen[bytes]
    pump: threading.Thread
    stop_signal: signal.Signals = signal.SIGTERM  # what stops it now (the bridge: SIGINT)

    @property
    def exit_code(self) -> int | None:
        """The exit code, or None while it runs (negative: killed by that signal)."""
        return self.process.poll()


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours, quieter defaults, unbuffered output, ``extra``."""
    env = {**_CHILD_ENV_DEFAULTS, **os.environ, "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


def spawn(
    name: str,
    prefix: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Child:
    """Start ``argv`` in a new process group with stdout and stderr forwarded.

    Args:
        name: Human name used in messages ("Rasa", "action server").
        prefix: Output prefix shown in brackets ("rasa").
        argv: The command.
        env: The complete environment of the child.
        cwd: Its working directory.
        stop_signal: The signal that stops it at once (:func:`stop_all` sends it).

    Returns:
        The running child.
    """
    log.debug("starting %s: %s", name, " ".join(argv))
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    return Child(name, process, forward_output(process.stdout, prefix), stop_signal)


def stop_all(children: Sequence[Child], grace_s: float = STOP_GRACE_S) -> None:
    """Send every child's process group its stop signal, wait up to ``grace_s``, then
    SIGKILL stragglers."""
    running = [child for child in children if child.exit_code is None]
    for child in running:
        _signal_group(child, child.stop_signal)
    deadline = time.monotonic() + grace_s
    for child in running:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{child.name} did not stop within {grace_s:.0f} s; killing it")
            _signal_group(child, signal.SIGKILL)
            child.process.wait()
    for child in children:
        child.pump.join(timeout=2.0)


def drain(child: Child, timeout_s: float, stop_now: threading.Event) -> bool:
    """SIGTERM ``child`` (it drains: finishes its work, takes no more) and wait up to
    ``timeout_s`` for it to exit, or until ``stop_now`` is set; True if it exited."""
    if child.exit_code is not None:
        return True
    _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while not stop_now.is_set() and time.monotonic() < deadline:
        try:
            child.process.wait(timeout=DRAIN_POLL_S)
            return True
        except subprocess.TimeoutExpired:
            continue
    return child.exit_code is not None


def _signal_group(child: Child, signum: signal.Signals) -> None:
    """Send ``signum`` to the child's process group (its pid; it leads a new session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signum)
