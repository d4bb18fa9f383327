"""Where Rasa and the action server listen, the secrets they get and how: settings, the plan
``paybot up`` runs, and the action server's launcher as a real process (no Rasa needed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from actions.server import HEADER
from paybot.settings import SettingsError, load_settings
from paybot_cli.main import main
from paybot_cli.project import find_project
from paybot_cli.up import plan
from rasa_plugins.rasa_server import token_from_env

REPO = Path(__file__).resolve().parents[1]
PROD = {
    "env": "prod",
    "twilio_auth_token": "a-real-twilio-token",
    "console_secret": "a-real-console-secret",
    "rasa_token": "a-real-rasa-token",
    "database_url": "sqlite:///x.db",
    "public_url": "https://pay.example.com",
    "pay_link_secret": "a-real-pay-link-secret-of-32-chars!",
}


def test_rasa_and_the_action_server_default_to_loopback_whatever_paybot_host_says(settings):
    exposed = load_settings(env="test", host="0.0.0.0")  # noqa: S104 - the bridge only
    rasa, actions, bridge = plan(exposed, find_project(REPO))
    assert rasa.argv[rasa.argv.index("--interface") + 1] == "127.0.0.1"
    assert rasa.host == actions.host == "127.0.0.1" and actions.env["SANIC_HOST"] == "127.0.0.1"
    assert bridge.host == "0.0.0.0"  # noqa: S104
    assert rasa.env["PAYBOT_ACTION_SERVER_URL"] == (
        f"http://127.0.0.1:{exposed.action_port}/webhook")
    own = load_settings(env="test", rasa_host="10.0.0.5", action_host="::1", action_secret="s" * 20)
    rasa, actions, _ = plan(own, find_project(REPO))
    assert rasa.argv[rasa.argv.index("--interface") + 1] == "10.0.0.5"
    assert actions.env["SANIC_HOST"] == "::1" and actions.url.startswith("http://[::1]:")


def test_secrets_go_in_the_environment_never_on_a_command_line(settings):
    """No secret in any argv; without PAYBOT_ACTION_SECRET each run makes a new one that
    Rasa and the action server share."""
    dev = load_settings(env="test", rasa_token="the-rasa-token-value")
    first, second = plan(dev, find_project(REPO)), plan(dev, find_project(REPO))
    secret = first[0].env["PAYBOT_ACTION_SECRET"]
    assert len(secret) >= 32 and first[1].env["PAYBOT_ACTION_SECRET"] == secret
    assert second[0].env["PAYBOT_ACTION_SECRET"] != secret
    assert first[0].env["PAYBOT_RASA_TOKEN"] == "the-rasa-token-value"
    for service in first:
        argv = " ".join(service.argv)
        assert secret not in argv and "the-rasa-token-value" not in argv, argv
        assert "--auth-token" not in argv
    configured = load_settings(env="test", action_secret="configured-secret-value")
    assert {s.env.get("PAYBOT_ACTION_SECRET") for s in plan(configured, find_project(REPO))} == {
        "configured-secret-value", None}


def test_rasas_launcher_takes_the_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("PAYBOT_RASA_TOKEN", "tok-from-env")
    assert token_from_env(["rasa", "run", "--enable-api"]) == [
        "rasa", "run", "--enable-api", "--auth-token", "tok-from-env"]
    assert token_from_env(["rasa", "train"]) == ["rasa", "train"]


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "pay.internal"])  # noqa: S104
def test_prod_refuses_an_exposed_action_server_without_its_secret(host):
    with pytest.raises(SettingsError, match="PAYBOT_ACTION_SECRET"):
        load_settings(**PROD, action_host=host)
    with pytest.raises(SettingsError, match="PAYBOT_ACTION_SECRET"):
        load_settings(**PROD, action_host=host, action_secret="changeme")
    assert load_settings(**PROD, action_host=host, action_secret="a-long-real-secret")
    assert load_settings(**PROD, action_host="127.0.0.1")  # loopback: one per run
    assert load_settings(**PROD, action_host="localhost")


def test_prod_refuses_an_exposed_rasa_without_its_token():
    with pytest.raises(SettingsError, match="PAYBOT_RASA_TOKEN"):
        load_settings(**{**PROD, "rasa_token": "dev-rasa-token"}, rasa_host="0.0.0.0")  # noqa: S104


def test_paybot_up_in_prod_with_an_exposed_action_server_exits_before_starting(
    tmp_path, monkeypatch, capsys
):
    for key in list(os.environ):
        if key.startswith("PAYBOT_") or key in ("DATABASE_URL", "TWILIO_AUTH_TOKEN"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    env = {"PAYBOT_ENV": "prod", "TWILIO_AUTH_TOKEN": "a-real-twilio-token",
           "PAYBOT_CONSOLE_SECRET": "a-real-console-secret", "PAYBOT_RASA_TOKEN": "a-real-token",
           "DATABASE_URL": "sqlite:///x.db", "PAYBOT_PUBLIC_URL": "https://pay.example.com",
           "PAYBOT_PAY_LINK_SECRET": "p" * 32, "PAYBOT_ACTION_HOST": "0.0.0.0"}  # noqa: S104
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("started a process"))

    assert main(["up"]) == 2
    assert "PAYBOT_ACTION_SECRET" in capsys.readouterr().err


# --- the action server's launcher, for real ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _action_server(tmp_path: Path, secret: str | None) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBOT_")}
    env.update(PAYBOT_ENV="test", PAYBOT_DATA_DIR=str(tmp_path), SANIC_HOST="127.0.0.1")
    if secret is not None:
        env["PAYBOT_ACTION_SECRET"] = secret
    process = subprocess.Popen(
        [sys.executable, "-m", "actions.server", "--actions", "actions",
         "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return process, port


def test_the_action_server_launcher_refuses_to_run_without_a_secret(tmp_path):
    process, _ = _action_server(tmp_path, None)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2 and "PAYBOT_ACTION_SECRET is not set" in out


def test_the_action_server_answers_only_calls_with_the_secret(tmp_path):
    secret = "launcher-secret-" + os.urandom(8).hex()
    process, port = _action_server(tmp_path, secret)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = requests.get(f"{base}/health", timeout=2)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the action server did not start"
                time.sleep(0.3)
        assert health.status_code == 200  # the liveness probe stays open
        call = {"next_action": "action_no_such_action", "sender_id": "x", "tracker": {}}
        for headers in ({}, {HEADER: ""}, {HEADER: "wrong"}, {HEADER: secret + "x"},
                        {HEADER.lower(): secret[:-1]}, {"Authorization": secret}):
            refused = requests.post(f"{base}/webhook", json=call, headers=headers, timeout=10)
            assert refused.status_code == 403, headers
            assert requests.get(f"{base}/actions", headers=headers, timeout=10).status_code == 403
        allowed = requests.post(f"{base}/webhook", json=call, headers={HEADER: secret}, timeout=10)
        assert allowed.status_code == 404  # past the check: rasa_sdk looked for the action
        listing = requests.get(f"{base}/actions", headers={HEADER.lower(): secret}, timeout=10)
        assert listing.status_code == 200 and {"name": "action_complete_payment"} in listing.json()
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    assert secret not in out
