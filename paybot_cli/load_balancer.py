"""``paybot haproxy-config``: an HAProxy configuration for the workers ``paybot up`` starts.

Two frontends:

* the bridges (the public one: Twilio's webhooks and Media Streams websockets), ``leastconn``
  over every bridge, each checked on ``GET /healthz``. A call's state lives only in the handler
  of its websocket, one TCP connection that HAProxy keeps on the server it chose (``timeout
  tunnel`` lets it last the whole call), and every webhook works on any bridge (tokens, call
  records and payments are rows in the shared database: docs/architecture.md, "Scale"). One
  call still sticks to one bridge (:data:`STICK_BY_CALL`): its webhooks by the ``CallSid`` of
  their form, its stream by the ``CallSid`` in its path, so the bridge that answered a call
  carries its stream and hears its hang-up, and ``PAYBOT_MAX_CALLS`` counts what each carries.
* Rasa's REST channel, for chat clients (only ``/webhooks/rest/``: Rasa's token-protected API
  stays unreachable from there), round-robin over every Rasa, checked on ``GET /``.

And, when asked, a stats page (``/stats``, ``/stats;csv``) on loopback, and peers: with two
balancers in front of the same bridges (either may take a call's next request), each names
both in a ``peers`` section (``--peer NAME=HOST:PORT`` twice, ``--local-peer`` its own) and
their stick tables stay in step, so a call's stream reaches the bridge that answered its
webhook through the other balancer too.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from paybot.settings import Settings
from paybot_cli.workers import Layout, with_workers

HEADER = "# Written by `paybot haproxy-config`; regenerate it when the worker counts change.\n"
# A call's Media Stream lasts as long as the call; Twilio sends a frame every 20 ms.
TUNNEL_TIMEOUT = "4h"
# One call, one bridge: the CallSid of a webhook's form (the voice webhook picks the bridge)
# and of a stream's path (/twilio/stream/<CallSid>) map to the bridge chosen first; a bridge
# that is down loses its calls' entries to another (redispatch).
STICK_BY_CALL = (
    "    option redispatch",
    "    option http-buffer-request",
    f"    stick-table type string len 64 size 200k expire {TUNNEL_TIMEOUT}",
    "    stick on req.body_param(CallSid) if METH_POST",
    "    stick on path,field(-1,/) if { path_reg /twilio/stream/[A-Za-z0-9]+$ }",
)


PEER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # e.g. a host name, HAProxy's default


@dataclass(frozen=True)
class Peers:
    """Balancers that share the call stick table: ``(name, "host:port")`` each, and which is
    this one (HAProxy's ``localpeer``)."""

    local: str
    peers: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if self.local not in {name for name, _ in self.peers}:
            raise ValueError(f"the local peer {self.local!r} is not among the peers")


@dataclass(frozen=True)
class Frontends:
    """Where HAProxy listens: the bridges' port, Rasa's (chat) and the stats page (None: off)."""

    bind: str
    bridge_port: int
    chat_port: int | None = None
    stats_port: int | None = None


def haproxy_config(
    frontends: Frontends,
    bridges: list[str],
    rasa: list[str],
    *,
    server_options: str = "",
    peers: Peers | None = None,
) -> str:
    """The configuration text for ``bridges`` and ``rasa`` (``host:port`` each)."""
    stick = list(STICK_BY_CALL)
    if peers is not None:
        stick = [line + " peers balancers" if "stick-table" in line else line for line in stick]
    lines = [
        HEADER,
        "global",
        "    maxconn 4096",
        *([f"    localpeer {peers.local}"] if peers else []),
        "",
        *(["peers balancers", *(f"    peer {name} {address}" for name, address in peers.peers),
           ""] if peers else []),
        "defaults",
        "    mode http",
        "    option forwardfor",
        "    timeout connect 5s",
        "    timeout http-request 10s",
        "    timeout client 60s",
        "    timeout server 60s",
        f"    timeout tunnel {TUNNEL_TIMEOUT}",
        "",
        "frontend bridges",
        f"    bind {frontends.bind}:{frontends.bridge_port}",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)]",
        "    default_backend bridges",
        "",
        "backend bridges",
        "    balance leastconn",
        *stick,
        "    option httpchk GET /healthz",
        "    http-check expect status 200",
        f"    default-server check inter 2s fall 2 rise 2{server_options}",
        *(f"    server bridge{i + 1} {address}" for i, address in enumerate(bridges)),
    ]
    if frontends.chat_port is not None:
        lines += [
            "",
            "frontend chat",
            f"    bind {frontends.bind}:{frontends.chat_port}",
            "    http-request deny deny_status 404 unless { path_beg /webhooks/rest/ }",
            "    default_backend rasa",
            "",
            "backend rasa",
            "    balance roundrobin",
            "    option httpchk GET /",
            "    http-check expect status 200",
            f"    default-server check inter 2s fall 2 rise 2{server_options}",
            *(f"    server rasa{i + 1} {address}" for i, address in enumerate(rasa)),
        ]
    if frontends.stats_port is not None:
        lines += [
            "",
            "listen stats",
            f"    bind 127.0.0.1:{frontends.stats_port}",
            "    stats enable",
            "    stats uri /stats",
            "    stats refresh 10s",
        ]
    return "\n".join(lines) + "\n"


def for_settings(settings: Settings, frontends: Frontends, peers: Peers | None = None) -> str:
    """The configuration for the workers of ``settings`` on this machine."""
    layout = Layout.of(settings)
    bridge_host = _reach(settings.host)
    rasa_host = _reach(settings.rasa_host)
    return haproxy_config(
        frontends,
        [f"{bridge_host}:{port}" for port in layout.bridge_ports],
        [f"{rasa_host}:{port}" for port in layout.rasa_ports],
        peers=peers,
    )


def command(settings: Settings, args: argparse.Namespace) -> int:
    """``paybot haproxy-config [--workers N] [--port P] [--chat-port P] [--stats-port P]
    [--bind ADDR] [--peer NAME=HOST:PORT ... --local-peer NAME] [--output FILE]``."""
    settings = with_workers(settings, args.workers)
    try:
        peers = parse_peers(args.peer, args.local_peer)
    except ValueError as exc:
        print(f"paybot haproxy-config: {exc}", file=sys.stderr)
        return 2
    text = for_settings(
        settings, Frontends(args.bind, args.port, args.chat_port, args.stats_port), peers
    )
    if args.output is None:
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def parse_peers(specs: list[str] | None, local: str | None) -> Peers | None:
    """``--peer NAME=HOST:PORT`` (each balancer, this one too) and ``--local-peer NAME``."""
    if not specs and not local:
        return None
    if not specs or not local:
        raise ValueError("peers need every balancer as --peer NAME=HOST:PORT and --local-peer")
    peers = []
    for spec in specs:
        name, _, address = spec.partition("=")
        host, _, port = address.rpartition(":")
        if not PEER_NAME.fullmatch(name) or not host or not port.isdigit():
            raise ValueError(f"--peer {spec!r} is not NAME=HOST:PORT")
        peers.append((name, address))
    if len({name for name, _ in peers}) != len(peers):
        raise ValueError("two --peer options share a name")
    return Peers(local, tuple(peers))


def _reach(host: str) -> str:
    """The address HAProxy dials for a service bound to ``host`` (wildcards: loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    return f"[{host}]" if ":" in host else host
