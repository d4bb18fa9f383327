"""``paybot serve rasa|actions|bridge [--worker I]``: one service in the foreground, as
``paybot up`` would start it, for a process manager (systemd, a container) to run.

Worker ``I`` (from 1) listens where ``paybot up`` puts it: its service's base port plus
``I - 1``; a Rasa worker calls its action server and a bridge its Rasa as
:mod:`paybot_cli.workers` pairs them. The process replaces this one (``exec``), so signals
from the process manager reach the service itself. Nothing is migrated: run
``paybot db prepare`` once before the services start.
"""

from __future__ import annotations

import argparse
import os

from paybot.settings import Settings, SettingsError
from paybot_cli.children import child_env
from paybot_cli.console import fail
from paybot_cli.project import find_project
from paybot_cli.rasa_endpoints import rasa_endpoints
from paybot_cli.train import model_path
from paybot_cli.up import plan_workers
from paybot_cli.workers import Layout, workers_problem


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Exec the service; returns only when it cannot start (1, or 2 for a usage error)."""
    kind, worker = args.service, args.worker
    layout = Layout.of(settings)
    workers, variable = {
        "rasa": (layout.rasa, "PAYBOT_RASA_WORKERS"),
        "actions": (layout.actions, "PAYBOT_ACTION_WORKERS"),
        "bridge": (layout.bridges, "PAYBOT_BRIDGE_WORKERS"),
    }[kind]
    if not 1 <= worker <= workers:
        fail(f"--worker {worker}: there are {workers} {kind} workers ({variable})")
        return 2
    if settings.action_secret is None or not settings.action_secret.get_secret_value():
        fail("paybot serve needs PAYBOT_ACTION_SECRET: Rasa and the action server run as "
             "separate services and must share it")
        return 2
    if kind == "rasa" and (problem := workers_problem(settings)):
        fail(problem)
        return 2
    project = find_project()
    if kind == "rasa" and not (project.root / model_path(settings.model_dir)).is_file():
        fail(f"no trained model in {settings.model_dir}/; run 'paybot train'")
        return 1
    try:
        endpoints = rasa_endpoints(settings, project) if kind == "rasa" else None
    except SettingsError as exc:
        fail(str(exc))
        return 1
    services = plan_workers(settings, project, endpoints)
    mine = [s for s in services if s.prefix.rstrip("0123456789") == kind]
    service = mine[worker - 1]
    os.chdir(project.root)
    os.execvpe(service.argv[0], service.argv, child_env(service.env))  # noqa: S606
    return 1  # pragma: no cover - exec does not return
