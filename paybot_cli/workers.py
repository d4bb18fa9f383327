"""How many processes of each service run, on which ports, and who talks to whom.

``PAYBOT_RASA_WORKERS``, ``PAYBOT_ACTION_WORKERS`` and ``PAYBOT_BRIDGE_WORKERS`` (or ``paybot
up --workers N`` for all three) give the counts. Worker ``i`` (from 0) of a service listens on
its base port plus ``i`` (``PAYBOT_RASA_PORT``, ``PAYBOT_ACTION_PORT``, ``PAYBOT_BRIDGE_PORT``).

Inside one machine there is no load balancer between the services: bridge ``i`` talks to Rasa
``i mod R`` and Rasa ``j`` calls action server ``j mod A``. Any Rasa can take any turn of any
conversation (the tracker and lock stores are shared) and the action server keeps no state, so
a fixed pairing loses nothing and adds no hop. Only the bridges (Twilio's webhooks and Media
Streams) and Rasa's REST channel (chat clients) sit behind the load balancer
(:mod:`paybot_cli.load_balancer`).
"""

from __future__ import annotations

from dataclasses import dataclass

from paybot.settings import Settings


@dataclass(frozen=True)
class Layout:
    """The worker counts and base ports of one ``paybot up``."""

    rasa: int
    actions: int
    bridges: int
    rasa_port: int
    action_port: int
    bridge_port: int

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        return cls(
            settings.rasa_workers, settings.action_workers, settings.bridge_workers,
            settings.rasa_port, settings.action_port, settings.bridge_port,
        )

    @property
    def single(self) -> bool:
        """One process of each service: ``paybot up`` as it always was."""
        return self.rasa == self.actions == self.bridges == 1

    @property
    def rasa_ports(self) -> list[int]:
        return [self.rasa_port + i for i in range(self.rasa)]

    @property
    def action_ports(self) -> list[int]:
        return [self.action_port + i for i in range(self.actions)]

    @property
    def bridge_ports(self) -> list[int]:
        return [self.bridge_port + i for i in range(self.bridges)]

    def rasa_settings(self, settings: Settings, i: int) -> Settings:
        """The settings of Rasa worker ``i``: its port, and its action server's."""
        return _with(settings, rasa_port=self.rasa_ports[i],
                     action_port=self.action_ports[i % self.actions])

    def action_settings(self, settings: Settings, i: int) -> Settings:
        return _with(settings, action_port=self.action_ports[i])

    def bridge_settings(self, settings: Settings, i: int) -> Settings:
        """The settings of bridge ``i``: its port, and its Rasa's."""
        return _with(settings, bridge_port=self.bridge_ports[i],
                     rasa_port=self.rasa_ports[i % self.rasa])


def with_workers(settings: Settings, workers: int | None) -> Settings:
    """``settings`` with ``workers`` processes of every service (None: as configured)."""
    if workers is None:
        return settings
    return _with(settings, rasa_workers=workers, action_workers=workers, bridge_workers=workers)


def workers_problem(settings: Settings) -> str | None:
    """Why these worker counts cannot run, or None. Several Rasa processes must share the
    conversations (a PostgreSQL tracker store) and their locks (a Redis lock store): with
    Rasa's in-memory stores each process would hold its own copy of a conversation and two
    turns of one conversation could run at once."""
    if settings.rasa_workers <= 1:
        return None
    missing = [name for name, value in (
        ("PAYBOT_TRACKER_STORE_URL", settings.tracker_store_url),
        ("PAYBOT_LOCK_STORE_URL", settings.lock_store_url),
    ) if value is None]
    if not missing:
        return None
    return (f"{settings.rasa_workers} Rasa workers need the shared stores: set "
            f"{' and '.join(missing)} (PostgreSQL and Redis; see the README, \"Running several "
            "workers\"), or run one Rasa worker (PAYBOT_RASA_WORKERS=1)")


def worker_name(name: str, prefix: str, i: int, count: int) -> tuple[str, str]:
    """The human name and output prefix of worker ``i`` of ``count`` ("Rasa 2", "rasa2");
    a lone worker keeps the plain ones."""
    return (name, prefix) if count == 1 else (f"{name} {i + 1}", f"{prefix}{i + 1}")


def _with(settings: Settings, **values: object) -> Settings:
    """A copy of ``settings`` with ``values`` (fields already validated by their types)."""
    return settings.copy(update=values)

