"""Several workers without starting the stack: what ``paybot up --workers N`` plans and refuses,
``paybot serve``, the HAProxy configurations (checked by the real ``haproxy -c``), the compose
file, the Dockerfile and the systemd units (``systemd-analyze verify``), and ``paybot trackers
prune`` on a PostgreSQL events table laid out as Rasa's. Docker cannot run here, so the image
and the compose file are checked for structure only (deploy/README.md)."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml
from sqlalchemy import text

from paybot.settings import load_settings
from paybot_cli.load_balancer import Frontends, Peers, for_settings, haproxy_config, parse_peers
from paybot_cli.main import main
from paybot_cli.project import find_project
from paybot_cli.trackers import create_events_table, prune, tracker_engine
from paybot_cli.up import plan_workers
from tests.conftest import fresh_schema, require_pg

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists()
                                      else None)
needs_haproxy = pytest.mark.skipif(HAPROXY is None,
                                   reason="haproxy is not installed (apt-get install haproxy)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def spaced_ports(request, monkeypatch):
    """Base ports far enough apart for several workers of each service."""
    if "cli_env" in request.fixturenames:
        request.getfixturevalue("cli_env")
        for name, port in (("RASA", 15005), ("ACTION", 15055), ("BRIDGE", 18080)):
            monkeypatch.setenv(f"PAYBOT_{name}_PORT", str(port))


def stores() -> dict[str, str]:
    return {"tracker_store_url": "postgresql://rasa@127.0.0.1:5432/conversations",
            "lock_store_url": "redis://127.0.0.1:6379/0"}


# --- what `paybot up --workers N` starts -------------------------------------------------------


@pytest.mark.parametrize(("rasa", "actions", "bridges"),
                         [(2, 2, 2), (2, 1, 3), (1, 3, 2), (3, 2, 1)])
def test_every_worker_gets_its_own_port_and_its_partner(rasa, actions, bridges, tmp_path):
    settings = load_settings(env="test", data_dir=tmp_path, rasa_port=15005, action_port=15055,
                             bridge_port=18080, rasa_workers=rasa, action_workers=actions,
                             bridge_workers=bridges, action_secret="shared-secret", **stores())
    services = plan_workers(settings, find_project(REPO))
    by_kind: dict[str, list] = {}
    for service in services:
        by_kind.setdefault(service.prefix.rstrip("0123456789"), []).append(service)
    assert [len(by_kind[k]) for k in ("rasa", "actions", "bridge")] == [rasa, actions, bridges]
    assert len({s.port for s in services}) == len(services)
    assert len({s.prefix for s in services}) == len(services)
    for i, service in enumerate(by_kind["rasa"]):
        assert service.port == 15005 + i and str(service.port) in service.argv
        assert service.env["PAYBOT_ACTION_SERVER_URL"] == (
            f"http://127.0.0.1:{15055 + i % actions}/webhook")
        assert service.env["PAYBOT_ACTION_SECRET"] == "shared-secret"
    for i, service in enumerate(by_kind["actions"]):
        assert service.port == 15055 + i and str(service.port) in service.argv
        assert service.health_url == f"http://127.0.0.1:{15055 + i}/health"
    for i, service in enumerate(by_kind["bridge"]):
        assert service.port == 18080 + i
        assert service.env["PAYBOT_BRIDGE_PORT"] == str(18080 + i)
        assert service.env["PAYBOT_RASA_PORT"] == str(15005 + i % rasa)
    # Every Rasa and every action server has someone to talk to it.
    assert {int(s.env["PAYBOT_RASA_PORT"]) for s in by_kind["bridge"]} == {
        s.port for s in by_kind["rasa"][:bridges]}
    if rasa >= actions:
        assert {s.env["PAYBOT_ACTION_SERVER_URL"] for s in by_kind["rasa"]} == {
            f"http://127.0.0.1:{s.port}/webhook" for s in by_kind["actions"]}


def test_one_worker_plans_the_stack_as_before(tmp_path, monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    settings = load_settings(env="test", data_dir=tmp_path)
    services = plan_workers(settings, find_project(REPO))
    assert [(s.name, s.prefix, s.port) for s in services] == [
        ("Rasa", "rasa", 5005), ("action server", "actions", 5055), ("bridge", "bridge", 8080)]
    # No worker's ports or settings; glibc's malloc arenas capped (the soak's memory growth).
    assert services[2].env == {"MALLOC_ARENA_MAX": "2"}


def test_the_bridge_keeps_a_malloc_arena_setting_of_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    settings = load_settings(env="test", data_dir=tmp_path)
    [bridge] = [s for s in plan_workers(settings, find_project(REPO)) if s.prefix == "bridge"]
    assert bridge.env["MALLOC_ARENA_MAX"] == "4"


def test_up_refuses_several_rasa_workers_without_the_shared_stores(cli_env, capsys, monkeypatch):
    assert main(["up", "--workers", "2"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "2 Rasa workers need the shared stores" in line
    assert "PAYBOT_TRACKER_STORE_URL and PAYBOT_LOCK_STORE_URL" in line
    assert not Path(cli_env["PAYBOT_DATA_DIR"]).exists(), "nothing may be migrated either"

    monkeypatch.setenv("PAYBOT_TRACKER_STORE_URL", stores()["tracker_store_url"])
    monkeypatch.setenv("PAYBOT_RASA_WORKERS", "3")
    assert main(["up"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "3 Rasa workers need the shared stores: set PAYBOT_LOCK_STORE_URL " in line


def test_up_refuses_workers_whose_ports_run_into_another_service(cli_env, capsys, monkeypatch):
    monkeypatch.setenv("PAYBOT_ACTION_PORT", "15007")  # Rasa 3 would be 15007
    for name, value in stores().items():
        monkeypatch.setenv(f"PAYBOT_{name.upper()}", value)
    assert main(["up", "--workers", "3"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "PAYBOT_RASA_PORT and PAYBOT_ACTION_PORT are both 15007" in line


def test_serve_checks_its_worker_and_the_shared_secret(cli_env, capsys, monkeypatch):
    assert main(["serve", "actions"]) == 2
    assert "needs PAYBOT_ACTION_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("PAYBOT_ACTION_SECRET", "shared-secret")
    monkeypatch.setenv("PAYBOT_BRIDGE_WORKERS", "2")
    assert main(["serve", "bridge", "--worker", "3"]) == 2
    assert "there are 2 bridge workers (PAYBOT_BRIDGE_WORKERS)" in capsys.readouterr().err
    monkeypatch.setenv("PAYBOT_RASA_WORKERS", "2")
    assert main(["serve", "rasa", "--worker", "2"]) == 2
    assert "need the shared stores" in capsys.readouterr().err


def test_serve_runs_the_action_server_worker_in_place(tmp_path):
    """``paybot serve actions --worker 2`` becomes the action server on base port + 1."""
    base = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBOT_")}
    env.update(PAYBOT_ENV="test", PAYBOT_DATA_DIR=str(tmp_path), PAYBOT_ACTION_PORT=str(base - 1),
               PAYBOT_ACTION_WORKERS="2", PAYBOT_ACTION_SECRET="shared-secret")
    process = subprocess.Popen(
        [sys.executable, "-m", "paybot_cli", "serve", "actions", "--worker", "2"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{base}/health", timeout=2) as r:  # noqa: S310
                    status = r.status
                    break
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"exit code {process.poll()}"
        assert "actions.server" in Path(f"/proc/{process.pid}/cmdline").read_text()  # exec'd
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


# --- HAProxy ----------------------------------------------------------------------------------


def haproxy_check(path: Path) -> subprocess.CompletedProcess:
    assert HAPROXY is not None
    return subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True,
                          timeout=30)


@needs_haproxy
def test_the_generated_haproxy_config_is_valid_and_lists_every_worker(tmp_path, cli_env, capsys,
                                                                      monkeypatch):
    for name, value in stores().items():
        monkeypatch.setenv(f"PAYBOT_{name.upper()}", value)
    out = tmp_path / "haproxy.cfg"
    assert main(["haproxy-config", "--workers", "3", "--port", "18000", "--chat-port", "15000",
                 "--stats-port", "18999", "--output", str(out)]) == 0
    config = out.read_text()
    checked = haproxy_check(out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    servers = re.findall(r"^\s+server (\S+) (\S+)$", config, re.M)
    assert servers == [("bridge1", "127.0.0.1:18080"), ("bridge2", "127.0.0.1:18081"),
                       ("bridge3", "127.0.0.1:18082"), ("rasa1", "127.0.0.1:15005"),
                       ("rasa2", "127.0.0.1:15006"), ("rasa3", "127.0.0.1:15007")]
    assert "option httpchk GET /healthz" in config and "bind 127.0.0.1:18000" in config
    assert "timeout tunnel" in config  # websockets outlive the HTTP timeouts
    assert "deny deny_status 404 unless { path_beg /webhooks/rest/ }" in config
    # A broken file fails the same check: the check can fail.
    out.write_text(config.replace("balance leastconn", "balance nonsense"))
    assert haproxy_check(out).returncode != 0


@needs_haproxy
def test_the_shipped_haproxy_config_is_valid():
    checked = haproxy_check(DEPLOY / "haproxy.cfg")
    assert checked.returncode == 0, checked.stdout + checked.stderr


class _Named(BaseHTTPRequestHandler):
    """A stand-in bridge: answers every request with its server's name."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _stand_in_bridges(count: int) -> list[ThreadingHTTPServer]:
    servers = []
    for n in range(count):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Named)
        server.name = f"bridge{n + 1}"  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers


def _haproxy(config: Path, url: str) -> subprocess.Popen:
    """HAProxy on ``config``, once ``url`` answers through it."""
    process = subprocess.Popen([HAPROXY, "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(f"{url}/healthz", timeout=2).raise_for_status()
            return process
        except requests.RequestException:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError(process.communicate()[1]) from None
            time.sleep(0.2)


def _reach(url: str, path: str, form: dict[str, str] | None = None) -> str:
    if form is None:
        return requests.get(url + path, timeout=5).text
    return requests.post(url + path, data=form, timeout=5).text


def _call_sids(rng: random.Random, count: int) -> list[str]:
    return ["CA" + "".join(rng.choice("0123456789abcdef") for _ in range(32))
            for _ in range(count)]


def _assert_the_call_stays(url: str, sid: str, bridge: str) -> None:
    """The call's stream, status callback and <Pay> webhook reach ``bridge`` through ``url``."""
    assert _reach(url, f"/twilio/stream/{sid}") == bridge, sid
    assert _reach(url, "/twilio/status", {"CallStatus": "completed", "CallSid": sid}) == bridge
    assert _reach(url, "/twilio/pay/action?t=x", {"CallSid": sid, "Result": "success"}) == bridge


@needs_haproxy
def test_one_call_sticks_to_the_bridge_that_answered_it(tmp_path):
    """The generated configuration in a real HAProxy before three stand-in bridges: for each
    of 40 random CallSids, the voice webhook reaches some bridge, and the call's status
    callbacks, its <Pay> webhook and its stream (by the CallSid in its path) reach that one;
    the calls spread over every bridge, and a text (no CallSid) is balanced as before."""
    servers = _stand_in_bridges(3)
    front = free_port()
    config = tmp_path / "haproxy.cfg"
    addresses = [f"127.0.0.1:{s.server_address[1]}" for s in servers]
    config.write_text(haproxy_config(Frontends("127.0.0.1", front), addresses, []))
    url = f"http://127.0.0.1:{front}"
    process = _haproxy(config, url)
    rng = random.Random(4242)
    try:
        answered = {sid: _reach(url, "/twilio/voice", {"CallSid": sid, "From": "+15551230000"})
                    for sid in _call_sids(rng, 40)}
        for sid in rng.sample(sorted(answered), len(answered)):  # later, in another order
            _assert_the_call_stays(url, sid, answered[sid])
        assert set(answered.values()) == {"bridge1", "bridge2", "bridge3"}
        texts = {_reach(url, "/twilio/sms", {"MessageSid": f"SM{n}", "Body": "hi"})
                 for n in range(12)}
        assert len(texts) > 1, texts
    finally:
        process.terminate()
        process.wait(timeout=10)
        for server in servers:
            server.shutdown()


def _stick_entries(sock_path: Path) -> int:
    """How many calls HAProxy's stick table holds (its runtime API: ``show table``)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(sock_path))
        sock.sendall(b"show table bridges\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    match = re.search(rb"used:(\d+)", reply)
    assert match, reply
    return int(match.group(1))


def _calls_across_two_balancers(tmp_path: Path, peered: bool) -> tuple[int, int]:
    """40 calls answered through two HAProxy processes (20 each) before the same three
    stand-in bridges; returns how many of them reached, through the other balancer, the bridge
    that answered them (stream, status callback and <Pay> webhook), and how many did not."""
    servers = _stand_in_bridges(3)
    addresses = [f"127.0.0.1:{s.server_address[1]}" for s in servers]
    names = ("lb1", "lb2")
    peer_specs = [f"{name}=127.0.0.1:{free_port()}" for name in names]
    urls, processes, sockets = {}, [], {}
    rng = random.Random(77)
    try:
        for name in names:
            front = free_port()
            config = tmp_path / f"{name}{'-peered' if peered else ''}.cfg"
            sockets[name] = config.with_suffix(".sock")
            peers = parse_peers(peer_specs, name) if peered else None
            text = haproxy_config(Frontends("127.0.0.1", front), addresses, [], peers=peers)
            config.write_text(text.replace("global\n", f"global\n    stats socket "
                                                        f"{sockets[name]}\n", 1))
            assert haproxy_check(config).returncode == 0
            urls[name] = f"http://127.0.0.1:{front}"
            processes.append(_haproxy(config, urls[name]))
        answered = {}
        for name, sids in zip(names, (_call_sids(rng, 20), _call_sids(rng, 20)), strict=True):
            for sid in sids:
                answered[sid] = (name, _reach(urls[name], "/twilio/voice", {"CallSid": sid}))
        assert {bridge for _, bridge in answered.values()} == {"bridge1", "bridge2", "bridge3"}
        if peered:  # the peers push each new entry to the other
            deadline = time.monotonic() + 10
            while min(_stick_entries(sock) for sock in sockets.values()) < len(answered):
                assert time.monotonic() < deadline, [_stick_entries(s) for s in sockets.values()]
                time.sleep(0.1)
        stayed = moved = 0
        for sid in rng.sample(sorted(answered), len(answered)):
            first, bridge = answered[sid]
            other = urls[names[1 - names.index(first)]]
            try:
                _assert_the_call_stays(other, sid, bridge)
                stayed += 1
            except AssertionError:
                moved += 1
        return stayed, moved
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        for server in servers:
            server.shutdown()


@needs_haproxy
def test_two_balancers_keep_a_call_on_one_bridge(tmp_path):
    """Two balancers in front of the same bridges, peers of each other (``paybot
    haproxy-config --peer ... --local-peer``): a call answered through either reaches, through
    the other, the bridge that answered it. Without the peers section calls move."""
    assert _calls_across_two_balancers(tmp_path, peered=True) == (40, 0)
    stayed, moved = _calls_across_two_balancers(tmp_path, peered=False)
    assert moved > 0, stayed


def test_peers_need_every_balancer_and_this_ones_name(capsys, cli_env):
    assert parse_peers(None, None) is None
    peers = parse_peers(["lb-1=10.0.0.1:10000", "lb2.example=[fd00::2]:10000"], "lb-1")
    assert peers == Peers("lb-1", (("lb-1", "10.0.0.1:10000"),
                                   ("lb2.example", "[fd00::2]:10000")))
    for specs, local in ((["lb1=10.0.0.1:10000"], None), (None, "lb1"),
                         (["lb1=10.0.0.1"], "lb1"), (["lb1=10.0.0.1:1", "lb1=10.0.0.2:1"], "lb1"),
                         (["lb1=10.0.0.1:10000"], "lb3"), (["lb 1=10.0.0.1:1"], "lb 1")):
        with pytest.raises(ValueError):
            parse_peers(specs, local)
    assert main(["haproxy-config", "--peer", "lb1=10.0.0.1:10000", "--local-peer", "lb9"]) == 2
    assert "not among the peers" in capsys.readouterr().err


def test_the_config_for_one_machine_follows_the_settings(tmp_path):
    settings = load_settings(env="test", data_dir=tmp_path, host="0.0.0.0", bridge_workers=2)  # noqa: S104
    config = for_settings(settings, Frontends("0.0.0.0", 8000))  # noqa: S104
    assert "server bridge1 127.0.0.1:8080\n" in config
    assert "server bridge2 127.0.0.1:8081\n" in config
    assert "frontend chat" not in config and "listen stats" not in config


# --- compose, Dockerfile, systemd ---------------------------------------------------------------


def test_the_compose_file_runs_every_service_from_the_one_image():
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "prepare", "rasa", "actions", "bridge", "lb"}
    commands = {name: services[name]["command"] for name in ("prepare", "rasa", "actions",
                                                              "bridge")}
    assert commands == {"prepare": ["db", "prepare"], "rasa": ["serve", "rasa"],
                        "actions": ["serve", "actions"], "bridge": ["serve", "bridge"]}
    for name in commands:
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        env = service["environment"]
        for key in ("DATABASE_URL", "PAYBOT_TRACKER_STORE_URL", "PAYBOT_LOCK_STORE_URL"):
            assert key in env, (name, key)
        assert env["PAYBOT_ENV"] == "prod"
        assert service["depends_on"]["prepare" if name != "prepare" else "postgres"]
        load_settings(**{  # every value the settings would read is valid for them
            "env": "dev", "tracker_store_url": env["PAYBOT_TRACKER_STORE_URL"],
            "lock_store_url": env["PAYBOT_LOCK_STORE_URL"]})
    for name in ("rasa", "actions", "bridge"):
        assert "replicas" in services[name]["deploy"]
    anywhere = "0.0.0.0"  # noqa: S104 - the containers listen for the load balancer
    assert services["rasa"]["environment"]["PAYBOT_RASA_HOST"] == anywhere
    assert services["actions"]["environment"]["PAYBOT_ACTION_HOST"] == anywhere
    assert services["bridge"]["environment"]["PAYBOT_HOST"] == anywhere
    assert services["bridge"]["environment"]["PAYBOT_RASA_HOST"] == "lb"
    assert services["rasa"]["environment"]["PAYBOT_ACTION_HOST"] == "lb"
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    for host, port in (("bridge", 8080), ("rasa", 5005), ("actions", 5055)):
        assert f" {host}:{port}\n" in haproxy  # each compose service behind the balancer
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
    assert (DEPLOY / services["prepare"]["env_file"][0]).with_suffix(".env.example").exists()


def test_the_dockerfile_copies_what_the_project_has():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM python:3.10-slim" in dockerfile
    copied = re.findall(r"^COPY (.+) \S+$", dockerfile, re.M)
    for sources in copied:
        for source in sources.split():
            assert (REPO / source).exists(), source
    packages = re.search(r'include = \[(.+)\]', (REPO / "pyproject.toml").read_text()).group(1)
    for package in re.findall(r'"(\w+)\*"', packages):
        assert f"COPY {package}/ {package}/" in dockerfile, package
    assert "pip install -c constraints.txt ." in dockerfile
    assert 'ENTRYPOINT ["paybot"]' in dockerfile


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_units_verify(tmp_path):
    paybot = Path(sys.executable).with_name("paybot")
    units = sorted((DEPLOY / "systemd").iterdir())
    names = []
    for unit in units:
        body = unit.read_text().replace("/opt/paybot/.venv/bin/paybot", str(paybot))
        body = body.replace("EnvironmentFile=/etc", "EnvironmentFile=-/etc")
        name = unit.name.replace("@.", "@1.")
        (tmp_path / name).write_text(body)
        names.append(name)
    assert {"paybot-rasa@1.service", "paybot-actions@1.service", "paybot-bridge@1.service",
            "paybot-prepare.service", "paybot.target"} <= set(names)
    for unit in units:
        if "@" in unit.name:
            assert "ExecStart=/opt/paybot/.venv/bin/paybot serve " in unit.read_text()
            assert "--worker %i" in unit.read_text()
    verify = ["systemd-analyze", "verify", "--man=no", *(f"./{n}" for n in names)]
    done = subprocess.run(verify, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "paybot-bridge@1.service"
    broken.write_text(broken.read_text().replace("ExecStart=", "ExecStrat="))
    done = subprocess.run([*verify[:3], "./paybot-bridge@1.service"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 or "Unknown key" in done.stderr + done.stdout


# --- paybot trackers prune --------------------------------------------------------------------


@pytest.mark.postgres
def test_prune_deletes_conversations_idle_past_the_age_and_keeps_the_rest(request):
    url = require_pg(request.node.nodeid)
    seed = 20261205
    rng = random.Random(seed)
    now = 1_800_000_000.0
    day = 86400.0
    with fresh_schema(url, "paybot_trackers") as schema:
        create_events_table(f"{url}?schema={schema}")  # Rasa's own table, before any Rasa
        create_events_table(f"{url}?schema={schema}")  # and again: it exists, nothing to do
        engine = tracker_engine(f"{url}?schema={schema}")
        with engine.begin() as conn:
            last: dict[str, float] = {}
            for n in range(120):
                sender = f"sms:+1555{n:07d}"
                start = now - rng.uniform(0, 90) * day
                times = sorted(start + rng.uniform(0, 2) * day for _ in range(rng.randint(1, 6)))
                times = [min(t, now) for t in times]
                last[sender] = times[-1]
                for t in times:
                    conn.execute(text("INSERT INTO events (sender_id, type_name, timestamp, data) "
                                      "VALUES (:s, 'user', :t, '{}')"), {"s": sender, "t": t})
        idle = {s for s, t in last.items() if t < now - 30 * day}
        counted = prune(engine, 30 * day, now=now, dry_run=True)
        assert counted.conversations == len(idle) > 0, f"seed {seed}"
        pruned = prune(engine, 30 * day, now=now)
        assert pruned == counted, f"seed {seed}"
        with engine.connect() as conn:
            left = set(conn.execute(text("SELECT DISTINCT sender_id FROM events")).scalars())
        assert left == set(last) - idle, f"seed {seed}"
        assert prune(engine, 30 * day, now=now).conversations == 0
        engine.dispose()


def test_prune_without_a_tracker_store_says_so(cli_env, capsys):
    assert main(["trackers", "prune", "--older-than", "30"]) == 2
    assert "PAYBOT_TRACKER_STORE_URL is not set" in capsys.readouterr().err
