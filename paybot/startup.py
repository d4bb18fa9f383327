"""What every start does before serving: migrate, seed demo data (dev), reconcile payments."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from paybot.db.engine import make_engine, migrate
from paybot.gateway.factory import make_gateway
from paybot.payments.factory import make_ledger
from paybot.seed import seed_demo_data
from paybot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartupReport:
    seeded: int
    reconciled: int


def prepare_database(settings: Settings) -> StartupReport:
    """Bring the schema up to date, seed an empty dev database, settle open payments.

    Payments left ``pending`` or ``unknown`` by a crash or a lost gateway answer are settled
    from the gateway's record of their idempotency key before any new call is taken.
    """
    engine = make_engine(settings.db_url)
    try:
        migrate(engine)
        seeded = 0
        if settings.is_dev and settings.seed_demo_data:
            seeded = seed_demo_data(engine, make_gateway(settings, engine))
        ledger = make_ledger(settings, engine)
        settled = ledger.reconcile(settings.reconcile_after_s)
        ledger.tokens.sweep(settings.reconcile_after_s)  # tokens a crash left behind
        if settled:
            log.warning("settled %d payments left open by an earlier run", len(settled))
        return StartupReport(seeded=seeded, reconciled=len(settled))
    finally:
        engine.dispose()
