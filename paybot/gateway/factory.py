"""Pick the configured gateway."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from paybot.gateway.base import Gateway
from paybot.settings import Settings, SettingsError


def make_gateway(settings: Settings, engine: Engine, name: str | None = None) -> Gateway:
    """The gateway ``name`` (by default ``PAYBOT_GATEWAY``): the embedded sandbox, or Stripe."""
    name = name or settings.gateway
    if name == "sandbox":
        from paybot.gateway.sandbox import SandboxGateway

        return SandboxGateway(engine, latency_ms=settings.sandbox_latency_ms)
    if name == "stripe":
        from paybot.gateway.stripe_gateway import StripeGateway

        if settings.stripe_api_key is None or not settings.stripe_api_key.get_secret_value():
            raise SettingsError("PAYBOT_GATEWAY=stripe needs STRIPE_API_KEY")
        return StripeGateway(
            engine,
            api_key=settings.stripe_api_key.get_secret_value(),
            api_base=settings.stripe_api_base,
            timeout_s=settings.gateway_timeout_s,
        )
    raise ValueError(f"unknown gateway {name!r}")
