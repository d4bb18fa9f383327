"""``paybot up``: check, prepare and start Rasa, the action server and the voice bridge.

This module decides *what* runs (commands, ports, health URLs) and checks that it can run
before anything starts; :mod:`paybot.cli.supervisor` runs it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from paybot.cli import database
from paybot.cli.console import fail
from paybot.cli.health import base_url, port_in_use
from paybot.cli.project import Project, find_project
from paybot.cli.rasa_endpoints import RasaEndpoints, rasa_endpoints
from paybot.cli.supervisor import Service, Supervisor
from paybot.cli.train import model_path
from paybot.settings import Settings, SettingsError

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 300.0


def plan(
    settings: Settings, project: Project, endpoints: RasaEndpoints | None = None
) -> list[Service]:
    """The three services, configured from ``settings``; Rasa reads ``endpoints`` (default
    ``bot/endpoints.yml``: in-memory tracker and lock stores)."""
    host = settings.host
    python = sys.executable
    endpoints = endpoints or RasaEndpoints(project.endpoints)
    rasa = Service(
        "Rasa", "rasa", settings.rasa_port, "PAYBOT_RASA_PORT",
        base_url(host, settings.rasa_port), "/",
        # Rasa's own command line, with its action-response check compiled once.
        [python, "-m", "paybot.dialog.rasa_server", "run", "--enable-api",
         "--auth-token", settings.rasa_token.get_secret_value(),
         "--interface", host, "--port", str(settings.rasa_port),
         "--model", str(model_path(settings.model_dir)),
         "--endpoints", str(endpoints.path), "--credentials", str(project.credentials)],
        {"PAYBOT_ACTION_SERVER_URL": base_url(host, settings.action_port) + "/webhook",
         "PAYBOT_TRACKER_MAX_CONVERSATIONS": str(settings.tracker_max_conversations),
         **endpoints.env},
    )
    # rasa_sdk's own entry point is what `rasa run actions` calls, without importing Rasa
    # and TensorFlow (about 2 s and 90 MB less); SANIC_HOST is its bind address.
    actions = Service(
        "action server", "actions", settings.action_port, "PAYBOT_ACTION_PORT",
        base_url(host, settings.action_port), "/health",
        [python, "-m", "rasa_sdk", "--actions", "actions", "--port", str(settings.action_port)],
        {"SANIC_HOST": host},
    )
    bridge = Service(
        "bridge", "bridge", settings.bridge_port, "PAYBOT_BRIDGE_PORT",
        base_url(host, settings.bridge_port), "/healthz",
        [python, "-m", "paybot.cli", "bridge"],
    )
    return [rasa, actions, bridge]


def preflight(settings: Settings, project: Project, services: list[Service]) -> str | None:
    """The first reason the stack cannot start, or None when it can."""
    if missing := project.missing():
        return f"no {missing[0]} in {project.root}; run paybot from the project root"
    seen: dict[int, Service] = {}
    for service in services:
        if other := seen.get(service.port):
            return (f"{other.port_env} and {service.port_env} are both {service.port}; "
                    "give each service its own port")
        seen[service.port] = service
        if port_in_use(settings.host, service.port):
            return (f"port {service.port} ({service.name}) is already in use; "
                    f"stop what uses it or set {service.port_env}")
    if not (project.root / model_path(settings.model_dir)).is_file():
        return (f"no trained model in {settings.model_dir}/; "
                "run 'paybot train' (or 'make run')")
    if settings.vosk_model is not None:
        from voice_bridge.asr import AsrModelError
        from voice_bridge.asr.vosk_engine import check_vosk_model_dir

        try:
            check_vosk_model_dir(project.root / settings.vosk_model)
        except AsrModelError as exc:
            return str(exc)
    return None


def up(settings: Settings, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> int:
    """Check, migrate (and seed in dev), then supervise the stack until stopped.

    Returns:
        0 after a clean stop on SIGINT/SIGTERM/SIGHUP; 1 when a check fails, a service
        exits early or does not become healthy in time.
    """
    project = find_project()
    services = plan(settings, project)
    if problem := preflight(settings, project, services):
        fail(problem)
        return 1
    try:
        endpoints = rasa_endpoints(settings, project)
    except SettingsError as exc:
        fail(str(exc))
        return 1
    services = plan(settings, project, endpoints)
    database.prepare(settings)
    return Supervisor(services, project.root, startup_timeout_s).run()


def command(settings: Settings, args: argparse.Namespace) -> int:
    """``paybot up [--timeout SECONDS]``."""
    return up(settings, args.timeout)
