"""Payment reminders from the bridge, every ``PAYBOT_REMINDER_INTERVAL_S`` (0, the default,
turns it off; ``paybot reminders run`` from cron does the same job).

Each run is a :class:`paybot.reminders.run.ReminderRun`: texts go into the outbox (kind
``reminder``) that :mod:`voice_bridge.jobs.receipt_sender` sends; calls
(``PAYBOT_REMINDER_CHANNEL=voice``) are placed here through Twilio's REST API, their ``Url`` the
bridge's own voice webhook, so an answered call starts the same conversation as a call coming
in. Several bridges (and cron) may run at once: each reminder is claimed once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.engine import Engine

from paybot.accounts.directory import make_directory
from paybot.reminders.run import CallFailed, ReminderRun
from paybot.settings import Settings
from voice_bridge.jobs.background import every, running
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.twilio.rest import TwilioNotConfigured, TwilioRest, TwilioRestError
from voice_bridge.twilio.webhooks import STATUS_PATH, VOICE_PATH

log = logging.getLogger(__name__)


@dataclass
class TwilioDialer:
    """Places reminder calls through Twilio: answered, they ask the bridge's voice webhook."""

    rest: TwilioRest
    caller_id: str
    voice_url: str
    status_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioDialer:
        """Raises :class:`TwilioNotConfigured` without Twilio credentials or a number."""
        caller_id = settings.reminder_call_from or settings.sms_from
        if not caller_id:
            raise TwilioNotConfigured("reminder calls need PAYBOT_REMINDER_CALL_FROM")
        base = settings.public_base_url
        return cls(TwilioRest.from_settings(settings), caller_id, base + VOICE_PATH,
                   base + STATUS_PATH)  # fmt: skip

    def place_call(self, to: str) -> str:
        try:
            return self.rest.create_call(
                to, from_=self.caller_id, url=self.voice_url, status_callback=self.status_url
            )
        except TwilioRestError as exc:
            reason = f"http {exc.status}" if exc.status is not None else "no answer"
            raise CallFailed(
                reason + (f" code {exc.code}" if exc.code else ""),
                retryable=exc.retryable,
                maybe_done=exc.maybe_done,
            ) from None


@contextlib.asynccontextmanager
async def reminder_run(settings: Settings, engine: Engine) -> AsyncIterator[ReminderRun]:
    """The reminder job for ``settings``: with a dialer for calls, and in CRM mode the CRM
    (closed on the way out).

    Raises:
        TwilioNotConfigured: Calls are asked for but Twilio or the caller ID is not set.
    """
    voice = settings.reminder_channel == "voice"
    dialer = TwilioDialer.from_settings(settings) if voice else None
    directory = make_directory(settings, engine) if settings.crm == "http" else None
    try:
        yield ReminderRun(engine, settings, dialer=dialer, directory=directory)
    finally:
        if directory is not None:
            await directory.close()


async def reminder_job(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: run the reminders now and then every interval."""
    settings = app[SETTINGS]
    interval = settings.reminder_interval_s
    if interval <= 0:
        log.info("reminders: not run by the bridge (PAYBOT_REMINDER_INTERVAL_S=0)")
        yield
        return

    async def run() -> None:
        try:
            async with reminder_run(settings, app[DB_ENGINE]) as job:
                log.info("reminders: every %.0fs", interval)
                await every(interval, lambda: job.run(), "reminders")
        except TwilioNotConfigured as exc:
            log.warning("reminders: not run (%s)", exc)

    async with running(run(), "reminders"):
        yield
