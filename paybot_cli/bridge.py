"""``paybot bridge``: run the voice bridge in the foreground until SIGINT (at once) or SIGTERM
(after the drain: live calls end, new ones are refused; :mod:`voice_bridge.drain`)."""

from __future__ import annotations

import argparse

from paybot.settings import Settings
from paybot_cli.console import fail


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the bridge on ``PAYBOT_HOST:PAYBOT_BRIDGE_PORT``; 1 if it cannot listen."""
    from voice_bridge.app import serve

    try:
        serve(settings)
    except OSError as exc:
        fail(f"the bridge cannot listen on {settings.host}:{settings.bridge_port}: {exc}")
        return 1
    return 0
