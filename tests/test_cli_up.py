"""The ``paybot`` command line: ``up`` (preflight checks and the real stack), ``train``
(fingerprints), and what ``up`` starts (the bridge app, the actions package).

The ``services`` test starts Rasa, the action server and the bridge for real; it needs a
trained model and trains one first if the training files changed (``make test`` already has).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from paybot.settings import Settings, load_settings
from paybot_cli import train as train_cli
from paybot_cli.main import main
from paybot_cli.project import find_project

REPO = Path(__file__).resolve().parents[1]
UP_TIMEOUT_S = 300.0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET ``url`` (no proxies); status and body."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.status, response.read()


def post_json(url: str, payload: dict, timeout: float = 60.0) -> object:
    """POST ``payload`` as JSON (no proxies); the decoded JSON answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(  # noqa: S310 - a local http URL built by the test
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with opener.open(request, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture
def no_children(monkeypatch) -> None:
    """Fail the test if anything tries to start a child process."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"started a process: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


# --- paybot up: checks before anything starts ---------------------------------------------


def test_up_refuses_a_port_in_use(cli_env, no_children, capsys, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("PAYBOT_RASA_PORT", str(port))
        code = main(["up"])

    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"paybot: port {port} (Rasa) is already in use; stop what uses it or set PAYBOT_RASA_PORT"
    ]
    assert not Path(cli_env["PAYBOT_DATA_DIR"]).exists(), "nothing may be migrated either"


def test_up_refuses_two_services_on_one_port(cli_env, no_children, capsys, monkeypatch):
    monkeypatch.setenv("PAYBOT_BRIDGE_PORT", cli_env["PAYBOT_ACTION_PORT"])

    assert main(["up"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "PAYBOT_ACTION_PORT and PAYBOT_BRIDGE_PORT are both" in line


def test_up_without_a_model_says_how_to_train(cli_env, no_children, capsys, tmp_path, monkeypatch):
    empty = tmp_path / "no-models"
    monkeypatch.setenv("PAYBOT_MODEL_DIR", str(empty))

    assert main(["up"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"paybot: no trained model in {empty}/; run 'paybot train' (or 'make run')"
    ]


def test_up_with_a_bad_vosk_model_says_what_is_wrong(
    cli_env, no_children, capsys, tmp_path, monkeypatch
):
    models = tmp_path / "models"
    models.mkdir()
    (models / "paybot.tar.gz").write_bytes(b"")  # preflight only looks for the file
    monkeypatch.setenv("PAYBOT_MODEL_DIR", str(models))
    monkeypatch.setenv("PAYBOT_VOSK_MODEL", str(tmp_path / "vosk-model-small-en-us-0.15"))

    assert main(["up"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "Vosk model directory not found" in line and "alphacephei.com/vosk/models" in line


def test_bad_settings_are_one_line_and_exit_2(cli_env, no_children, capsys, monkeypatch):
    monkeypatch.setenv("PAYBOT_RASA_PORT", "not-a-port")

    assert main(["up"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("paybot: invalid configuration: rasa_port")


# --- paybot train: the fingerprint behind --if-changed ------------------------------------


@pytest.fixture
def rasa_project(tmp_path) -> Path:
    """A minimal project tree (content does not matter: Rasa is not run)."""
    files = {
        "bot/domain.yml": "intents: [greet]\n",
        "bot/config.yml": "language: en\n",
        "bot/data/rules.yml": "rules: []\n",
        "nlu_data/nlu.yml": "nlu: []\n",
    }
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    return tmp_path


def _fingerprint(root: Path) -> str:
    return train_cli.fingerprint(root, find_project(root).training_inputs)


def test_fingerprint_follows_contents_and_paths_only(rasa_project):
    before = _fingerprint(rasa_project)
    assert _fingerprint(rasa_project) == before

    (rasa_project / ".DS_Store").write_text("junk")
    (rasa_project / "bot" / ".domain.yml.swp").write_text("junk")
    assert _fingerprint(rasa_project) == before, "hidden files do not count"

    (rasa_project / "nlu_data" / "nlu.yml").write_text("nlu: [x]\n")
    changed = _fingerprint(rasa_project)
    assert changed != before

    (rasa_project / "nlu_data" / "nlu.yml").rename(rasa_project / "nlu_data" / "other.yml")
    assert _fingerprint(rasa_project) != changed, "a rename changes the fingerprint"

    renamed = _fingerprint(rasa_project)
    (rasa_project / "bot" / "endpoints.yml").write_text("action_endpoint: {url: x}\n")
    (rasa_project / "bot" / "responses.yml").write_text("responses: {}\n")
    assert _fingerprint(rasa_project) == renamed, "files rasa train does not read do not count"
    (rasa_project / "bot" / "domain.yml").write_text("intents: [greet, bye]\n")
    assert _fingerprint(rasa_project) != renamed
    domain_changed = _fingerprint(rasa_project)
    (rasa_project / "rasa_plugins").mkdir()
    (rasa_project / "rasa_plugins" / "channel.py").write_text("# serving, not training\n")
    assert _fingerprint(rasa_project) == domain_changed
    (rasa_project / "rasa_plugins" / "train.py").write_text("# how DIET's batches are cut\n")
    assert _fingerprint(rasa_project) != domain_changed, "the training code counts"
    batches_changed = _fingerprint(rasa_project)
    (rasa_project / "rasa_plugins" / "training_lanes.py").write_text("# TED aside\n")
    assert _fingerprint(rasa_project) != batches_changed, "so does where TED trains"


def _train(settings: Settings, root: Path) -> int:
    return train_cli.train(settings, if_changed=True, project=find_project(root))


def test_train_if_changed_runs_rasa_once_then_is_a_no_op(settings, rasa_project, monkeypatch):
    calls: list[list[str]] = []

    def fake_rasa(argv, cwd, model_dir):
        calls.append(list(argv))
        (cwd / model_dir).mkdir(parents=True, exist_ok=True)
        train_cli.model_path(cwd / model_dir).write_bytes(b"model")
        return 0

    monkeypatch.setattr(train_cli, "run_rasa", fake_rasa)

    assert _train(settings, rasa_project) == 0
    assert _train(settings, rasa_project) == 0
    assert len(calls) == 1
    argv = calls[0]
    assert argv[1:4] == ["-m", "rasa_plugins.train", "train"]
    assert argv[argv.index("--data") + 1 : argv.index("--data") + 3] == ["bot/data", "nlu_data"]
    assert argv[argv.index("--fixed-model-name") + 1] == "paybot"

    (rasa_project / "bot" / "domain.yml").write_text("intents: [greet, goodbye]\n")
    assert _train(settings, rasa_project) == 0
    assert len(calls) == 2, "a changed file means training again"


def test_train_if_changed_retrains_when_the_model_is_gone(settings, rasa_project, monkeypatch):
    models = rasa_project / "models"
    models.mkdir()
    (models / train_cli.FINGERPRINT_FILE).write_text(_fingerprint(rasa_project))
    calls = []
    monkeypatch.setattr(train_cli, "run_rasa", lambda *a: calls.append(a) or 1)

    assert _train(settings, rasa_project) == 1
    assert len(calls) == 1


def test_failed_training_is_one_line_with_a_hint(settings, rasa_project, monkeypatch, capsys):
    monkeypatch.setattr(train_cli, "run_rasa", lambda *a: 1)

    assert _train(settings, rasa_project) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("paybot: training failed (exit 1)")
    assert not (rasa_project / "models" / train_cli.FINGERPRINT_FILE).exists()


# --- what paybot up starts ------------------------------------------------------------------


async def test_bridge_healthz(settings):
    from voice_bridge.app import create_app

    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get("/healthz")
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


def test_the_action_server_can_load_the_actions_package():
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")  # what `python -m rasa_sdk --actions actions` does

    assert "action_session_start" in executor.actions


# --- the real stack ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_model() -> None:
    """Make sure models/ holds a model trained from the current files (usually a no-op)."""
    previous = Path.cwd()
    os.chdir(REPO)
    try:
        settings = load_settings(env="test", model_dir=REPO / "models")
        assert train_cli.train(settings, if_changed=True, project=find_project(REPO)) == 0
    finally:
        os.chdir(previous)


def _read_lines(pipe, lines: queue.Queue) -> None:
    for line in pipe:
        lines.put(line)
    lines.put(None)


@pytest.mark.services
def test_up_starts_serves_and_stops_cleanly(trained_model, tmp_path):
    ports = {name: free_port() for name in ("RASA", "ACTION", "BRIDGE")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBOT_")}
    env.pop("DATABASE_URL", None)
    env.update({f"PAYBOT_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(PAYBOT_ENV="test", PAYBOT_DATA_DIR=str(tmp_path / "var"))
    process = subprocess.Popen(
        [sys.executable, "-m", "paybot_cli", "up"], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    output: list[str] = []
    try:
        _wait_for_up(lines, output)
        _check_services(ports)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, "".join(output[-40:])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for name, port in ports.items():
        assert not listening(port), f"{name} port {port} still in use after paybot up stopped"


def _wait_for_up(lines: queue.Queue, output: list[str]) -> None:
    deadline = time.monotonic() + UP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            pytest.fail("paybot up exited before it was up:\n" + "".join(output[-60:]))
        output.append(line)
        if line.startswith("paybot is up"):
            return
    pytest.fail(f"paybot up was not up within {UP_TIMEOUT_S:.0f} s:\n" + "".join(output[-60:]))


def _check_services(ports: dict[str, int]) -> None:
    for name, path in (("RASA", "/"), ("ACTION", "/health"), ("BRIDGE", "/healthz")):
        status, _ = get(f"http://127.0.0.1:{ports[name]}{path}")
        assert status == 200, name
    replies = post_json(
        f"http://127.0.0.1:{ports['RASA']}/webhooks/rest/webhook",
        {"sender": "chat:test", "message": "hello"},
    )
    assert isinstance(replies, list)
    assert any(isinstance(r, dict) and r.get("text") for r in replies), replies
