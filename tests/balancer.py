"""Several workers of every service behind a real HAProxy, for tests and benchmarks.

``paybot up`` starts N workers of each service on consecutive ports; ``paybot haproxy-config``
writes the HAProxy configuration a deployment would use (the bridges' frontend, Rasa's REST
channel frontend, a stats page), and :func:`start_haproxy` runs it once every worker is up.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.stack import Stack, wait_until

REPO = Path(__file__).resolve().parents[1]
HAPROXY = shutil.which("haproxy") or next(
    (p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)  # fmt: skip


@dataclass
class Through:
    """What a :class:`~tests.stack.Conversation` needs of a stack, with Rasa reached through
    HAProxy's chat frontend at ``rasa_url``."""

    stack: Stack
    rasa_url: str

    def track(self, sender: str) -> str:
        return self.stack.track(sender)


def free_ports(count: int, rng: random.Random) -> int:
    """The first of ``count`` consecutive ports nothing listens on (or binds) right now."""
    for _ in range(200):
        base = rng.randrange(20000, 60000 - count)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free run of ports")


def worker_ports(workers: int, rng: random.Random) -> tuple[dict[str, str], dict[str, int]]:
    """``paybot up``'s port settings for ``workers`` of each service, and HAProxy's ports
    (``bridges``, ``chat``, ``stats``) right after them."""
    base = free_ports(3 * workers + 3, rng)
    env = {
        "PAYBOT_RASA_PORT": str(base),
        "PAYBOT_ACTION_PORT": str(base + workers),
        "PAYBOT_BRIDGE_PORT": str(base + 2 * workers),
        "PAYBOT_RASA_WORKERS": str(workers),
        "PAYBOT_ACTION_WORKERS": str(workers),
        "PAYBOT_BRIDGE_WORKERS": str(workers),
    }
    front = base + 3 * workers
    return env, {"bridges": front, "chat": front + 1, "stats": front + 2}


def start_haproxy(
    stack: Stack, data_dir: Path, ports: dict[str, int], workers: int
) -> subprocess.Popen:
    """HAProxy with what ``paybot haproxy-config`` writes for this stack's workers, once it
    sees every bridge and Rasa up."""
    config = data_dir / "haproxy.cfg"
    written = subprocess.run(
        [sys.executable, "-m", "paybot_cli", "haproxy-config", "--port", str(ports["bridges"]),
         "--chat-port", str(ports["chat"]), "--stats-port", str(ports["stats"]),
         "--output", str(config)],
        cwd=REPO, env=stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert HAPROXY is not None
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip

    def up() -> bool:
        try:
            body = requests.get(f"http://127.0.0.1:{ports['stats']}/stats;csv", timeout=2).text
        except requests.RequestException:
            return False
        return len(re.findall(r"^(bridges|rasa),(bridge|rasa)\d+,.*?,UP,", body, re.M)) == (
            2 * workers
        )

    if not wait_until(up, timeout_s=30, interval_s=0.5):
        process.terminate()
        raise AssertionError("HAProxy did not see every worker up")
    return process
