"""Pick the configured gateway."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from paybot.gateway.base import Gateway
from paybot.settings import Settings


def make_gateway(settings: Settings, engine: Engine) -> Gateway:
    """The gateway named by ``PAYBOT_GATEWAY`` (only the embedded sandbox so far)."""
    if settings.gateway == "sandbox":
        from paybot.gateway.sandbox import SandboxGateway

        return SandboxGateway(engine, latency_ms=settings.sandbox_latency_ms)
    raise ValueError(f"unknown gateway {settings.gateway!r}")
