"""``paybot up``: check, prepare and start Rasa, the action server and the voice bridge.

This module decides *what* runs (commands, ports, health URLs) and checks that it can run
before anything starts; :mod:`paybot_cli.supervisor` runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import secrets
import signal
import sys

from paybot import redaction
from paybot.payments.profile import ProfileError, load_profile
from paybot.settings import Settings, SettingsError
from paybot_cli import console, database
from paybot_cli.console import fail
from paybot_cli.health import port_in_use
from paybot_cli.project import Project, find_project
from paybot_cli.rasa_endpoints import RasaEndpoints, rasa_endpoints
from paybot_cli.supervisor import Service, Supervisor
from paybot_cli.train import model_path
from paybot_cli.workers import Layout, with_workers, worker_name, workers_problem

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 300.0
_SDK_LEVEL = {"DEBUG": ["--debug"], "WARNING": ["--quiet"], "ERROR": ["--quiet"]}
# How long Rasa and the action server (Sanic, 5 s by default) keep an idle keep-alive
# connection open. Their clients reuse an idle connection for up to 15 s (the bridge's aiohttp
# session) or 3 s (Rasa's, rasa_plugins/http_pool.py); a server that closes first races the
# client's next request on it ("Can not write request body"), and Rasa then drops the action's
# events and answers nothing. The server must outlast the client.
SERVER_KEEP_ALIVE_S = 75
# glibc's malloc arenas for the bridge (default: 8 per core). Its speech threads allocate and
# free audio all the time; with fewer arenas that memory is reused instead of kept per thread
# (bench/bench_soak.py: the resident memory of a 10-minute soak stops growing).
BRIDGE_MALLOC_ARENAS = "2"



def action_secret(settings: Settings) -> str:
    """``PAYBOT_ACTION_SECRET``, or a fresh random one for this run when it is unset."""
    if settings.action_secret is not None and settings.action_secret.get_secret_value():
        return settings.action_secret.get_secret_value()
    return secrets.token_urlsafe(32)


def plan(
    settings: Settings,
    project: Project,
    endpoints: RasaEndpoints | None = None,
    secret: str | None = None,
) -> list[Service]:
    """The three services, configured from ``settings``; Rasa reads ``endpoints`` (default
    ``bot/endpoints.yml``: in-memory tracker and lock stores). Rasa and the action server
    share ``secret`` (default :func:`action_secret`); secrets go to the children in their
    environment, never on a command line."""
    python = sys.executable
    endpoints = endpoints or RasaEndpoints(project.endpoints)
    secret = secret or action_secret(settings)
    redaction.register_secret(secret)
    level = settings.log_level.upper()
    rasa = Service(
        "Rasa", "rasa", settings.rasa_port, "PAYBOT_RASA_PORT", settings.rasa_url, "/",
        # Rasa's own command line, with its action-response check compiled once and the
        # API token read from PAYBOT_RASA_TOKEN.
        [python, "-m", "rasa_plugins.rasa_server", "run", "--enable-api",
         "--interface", settings.rasa_host, "--port", str(settings.rasa_port),
         "--model", str(model_path(settings.model_dir)),
         "--endpoints", str(endpoints.path), "--credentials", str(project.credentials)],
        {"PAYBOT_ACTION_SERVER_URL": settings.action_server_url,
         "PAYBOT_ACTION_SECRET": secret,
         "PAYBOT_RASA_TOKEN": settings.rasa_token.get_secret_value(),
         "LOG_LEVEL": level,
         **_log_and_metrics_env(settings),
         "PAYBOT_TRACKER_MAX_CONVERSATIONS": str(settings.tracker_max_conversations),
         "PAYBOT_RASA_TURNS_AT_ONCE": str(settings.rasa_turns_at_once),
         "PAYBOT_RASA_PARSE_CACHE": str(settings.rasa_parse_cache),
         "SANIC_KEEP_ALIVE_TIMEOUT": str(SERVER_KEEP_ALIVE_S),
         **endpoints.env},
        host=settings.rasa_host,
    )
    # rasa_sdk's own entry point (what `rasa run actions` calls, without importing Rasa and
    # TensorFlow) behind the shared-secret check; SANIC_HOST is its bind address.
    actions = Service(
        "action server", "actions", settings.action_port, "PAYBOT_ACTION_PORT",
        settings.action_server_url.removesuffix("/webhook"), "/health",
        [python, "-m", "actions.server", "--actions", "actions",
         "--port", str(settings.action_port), *_SDK_LEVEL.get(level, [])],
        {"SANIC_HOST": settings.action_host, "PAYBOT_ACTION_SECRET": secret,
         "SANIC_KEEP_ALIVE_TIMEOUT": str(SERVER_KEEP_ALIVE_S),
         **_log_and_metrics_env(settings)},
        host=settings.action_host,
    )
    bridge = Service(
        "bridge", "bridge", settings.bridge_port, "PAYBOT_BRIDGE_PORT",
        settings.bridge_url, "/healthz",
        [python, "-m", "paybot_cli", "bridge"],
        {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", BRIDGE_MALLOC_ARENAS)},
        host=settings.host,
        # SIGTERM drains it (voice_bridge.drain); SIGINT stops it at once.
        stop_signal=signal.SIGINT,
        drain_timeout_s=settings.drain_timeout_s,
    )
    return [rasa, actions, bridge]


def _log_and_metrics_env(settings: Settings) -> dict[str, str]:
    """The log format and the metrics token for Rasa and the action server, which read
    them from their environment (a ``.env`` file is read by ``paybot`` only)."""
    env = {"PAYBOT_LOG_FORMAT": settings.log_format}
    if settings.metrics_token is not None and settings.metrics_token.get_secret_value():
        env["PAYBOT_METRICS_TOKEN"] = settings.metrics_token.get_secret_value()
    return env


def plan_workers(
    settings: Settings,
    project: Project,
    endpoints: RasaEndpoints | None = None,
    secret: str | None = None,
) -> list[Service]:
    """:func:`plan` for every worker of every service (:mod:`paybot_cli.workers`): each on its
    own port, each bridge given its Rasa and each Rasa its action server."""
    layout = Layout.of(settings)
    if layout.single:
        return plan(settings, project, endpoints, secret)
    secret = secret or action_secret(settings)
    services: list[Service] = []
    for count, which, worker_settings in (
        (layout.rasa, 0, layout.rasa_settings),
        (layout.actions, 1, layout.action_settings),
        (layout.bridges, 2, layout.bridge_settings),
    ):
        for i in range(count):
            own = worker_settings(settings, i)
            service = plan(own, project, endpoints, secret)[which]
            name, prefix = worker_name(service.name, service.prefix, i, count)
            env = dict(service.env)
            if which == 2:  # `paybot bridge` reads its port and its Rasa's from the environment
                env.update(PAYBOT_BRIDGE_PORT=str(own.bridge_port),
                           PAYBOT_RASA_PORT=str(own.rasa_port))
            services.append(dataclasses.replace(service, name=name, prefix=prefix, env=env))
    return services


def preflight(settings: Settings, project: Project, services: list[Service]) -> str | None:
    """The first reason the stack cannot start, or None when it can."""
    if missing := project.missing():
        return f"no {missing[0]} in {project.root}; run paybot from the project root"
    if problem := workers_problem(settings):
        return problem
    try:
        profile = load_profile(settings)
    except ProfileError as exc:
        return f"{exc} (PAYBOT_PAYMENT_PROFILE)"
    if profile.capture == "twilio_pay" and not settings.twilio_account_sid:
        return ("the payment profile hands card capture to Twilio <Pay> (capture: twilio_pay), "
                "which needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    seen: dict[int, Service] = {}
    for service in services:
        if other := seen.get(service.port):
            return (f"{other.port_env} and {service.port_env} are both {service.port}; "
                    f"give each service its own port{'s' if len(services) > 3 else ''}")
        seen[service.port] = service
        if port_in_use(service.host, service.port):
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


def up(
    settings: Settings, startup_timeout_s: float = STARTUP_TIMEOUT_S, workers: int | None = None
) -> int:
    """Check, migrate (and seed in dev), then supervise the stack until stopped.

    Returns:
        0 after a clean stop on SIGINT/SIGTERM/SIGHUP; 1 when a check fails, a service
        exits early or does not become healthy in time.
    """
    console.use_json(settings.log_format == "json")
    project = find_project()
    settings = with_workers(settings, workers)
    secret = action_secret(settings)
    services = plan_workers(settings, project, secret=secret)
    if problem := preflight(settings, project, services):
        fail(problem)
        return 1
    try:
        endpoints = rasa_endpoints(settings, project)
    except SettingsError as exc:
        fail(str(exc))
        return 1
    services = plan_workers(settings, project, endpoints, secret)
    database.prepare(settings)
    database.prepare_tracker_store(settings)
    return Supervisor(services, project.root, startup_timeout_s).run()


def command(settings: Settings, args: argparse.Namespace) -> int:
    """``paybot up [--timeout SECONDS] [--workers N]``."""
    return up(settings, args.timeout, getattr(args, "workers", None))
