"""The action server's connections to the paybot domain: built on first use, once per process.

Nothing here holds conversation state (that lives in slots and the database); it only keeps
the engine, the ledger and the customer directory so each action does not reconnect.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from actions.responses import load_responses
from paybot.accounts.directory import CustomerDirectory, make_directory
from paybot.db.engine import make_engine
from paybot.identity import IdentityVerifier, LockoutPolicy
from paybot.payments.factory import make_ledger
from paybot.payments.ledger import Ledger
from paybot.payments.profile import PaymentProfile, load_profile
from paybot.settings import Settings, load_settings


@dataclass
class Services:
    settings: Settings
    engine: Engine
    ledger: Ledger
    directory: CustomerDirectory
    verifier: IdentityVerifier
    profile: PaymentProfile


_lock = threading.Lock()
_services: Services | None = None


def _build() -> Services:
    load_responses()  # read bot/responses.yml here, in the worker thread, not on the event loop
    settings = load_settings()
    engine = make_engine(settings.db_url)
    directory = make_directory(settings, engine)
    return Services(
        settings=settings,
        engine=engine,
        ledger=make_ledger(settings, engine),
        directory=directory,
        profile=load_profile(settings),
        verifier=IdentityVerifier(
            engine,
            directory,
            LockoutPolicy(
                max_failures=settings.lockout_failures,
                window=timedelta(minutes=settings.lockout_window_minutes),
                rate_limit=settings.idv_rate_limit,
                rate_window=timedelta(seconds=settings.idv_rate_window_s),
            ),
        ),
    )


async def services() -> Services:
    """The process's services, built (in a thread: it connects) on the first call."""
    if _services is None:
        return await asyncio.to_thread(_get_or_build)
    return _services


def _get_or_build() -> Services:
    global _services
    with _lock:
        if _services is None:
            _services = _build()
        return _services
