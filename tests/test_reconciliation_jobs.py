"""The bridge's reconciliation jobs, run by the bridge's own ``cleanup_ctx`` machinery: a bridge
started after ``PAYBOT_RECONCILE_TIME`` writes yesterday's missing file, and the CRM webhook job
posts the completed payments; both off when unset."""

from __future__ import annotations

import asyncio
import csv
import io
import random
from datetime import timedelta

from aiohttp import ClientSession, web

from paybot.db.types import utcnow
from paybot.reconciliation.daily import file_name, yesterday
from paybot.reconciliation.deliveries import delivery_states
from paybot.settings import load_settings
from tests.crm_receiver import Receiver
from tests.paid_payments import expected_rows, seed_payments
from voice_bridge.jobs.reconciliation import crm_webhook_job, reconcile_job
from voice_bridge.keys import DB_ENGINE, HTTP_CLIENT, SETTINGS

SECRET = "whsec-jobs-test-secret"  # noqa: S105 - the tests' webhook secret


async def run_bridge_jobs(settings, engine, until, timeout_s: float = 20.0) -> None:
    app = web.Application()
    app[SETTINGS] = settings
    app[DB_ENGINE] = engine
    async with ClientSession() as http:
        app[HTTP_CLIENT] = http
        app.cleanup_ctx.append(reconcile_job)
        app.cleanup_ctx.append(crm_webhook_job)
        runner = web.AppRunner(app)
        await runner.setup()  # starts the cleanup_ctx jobs
        try:
            for _ in range(int(timeout_s * 10)):  # polled: the jobs signal nothing
                if until():
                    break
                await asyncio.sleep(0.1)
        finally:
            await runner.cleanup()


async def test_the_bridge_writes_yesterdays_file_and_posts_payments(sqlite_engine, settings,
                                                                    tmp_path):
    day = yesterday()
    seeded = seed_payments(sqlite_engine, random.Random(13), day, 40)
    receiver = await Receiver(SECRET, fail_first=1).start()
    configured = load_settings(
        env="test", data_dir=tmp_path / "var", reconcile_time="00:00",
        crm_webhook_url=receiver.url, crm_webhook_secret=SECRET, crm_webhook_interval_s=0.2,
        crm_webhook_backoff_s=0,
    )
    path = configured.reconcile_path / file_name(day)
    wanted = {s.confirmation for s in seeded
              if s.status == "succeeded" and s.completed_at
              and s.completed_at >= utcnow() - timedelta(days=7)}
    try:
        await run_bridge_jobs(configured, sqlite_engine,
                              lambda: path.exists() and len(receiver.accepted) >= len(wanted))
    finally:
        await receiver.stop()
    assert path.exists()
    rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode(), newline="")))
    assert rows == expected_rows(seeded, day)
    assert {b["confirmation_number"] for b in receiver.accepted.values()} == wanted
    assert set(receiver.attempts.values()) == {2}


async def test_both_jobs_are_off_by_default(sqlite_engine, settings, tmp_path):
    seed_payments(sqlite_engine, random.Random(14), yesterday(), 10)
    plain = load_settings(env="test", data_dir=tmp_path / "var")
    await run_bridge_jobs(plain, sqlite_engine, lambda: False, timeout_s=1.0)
    assert not plain.reconcile_path.exists()
    assert delivery_states(sqlite_engine) == {}


def test_the_bridge_runs_both_jobs(settings):
    from voice_bridge.app import create_app

    jobs = list(create_app(settings).cleanup_ctx)
    assert reconcile_job in jobs and crm_webhook_job in jobs
