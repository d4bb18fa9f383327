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


async def test_of_two_bridges_one_writes_and_uploads_the_day_once(db_engine, settings, tmp_path,
                                                                 caplog):
    """Two bridges on two machines (each its own data dir) over one database: one claims
    yesterday, writes its file and uploads it; the other skips it, then and at its restart."""
    import asyncssh

    from tests.sftp_server import PASSWORD, SftpServer

    day = yesterday()
    seed_payments(db_engine, random.Random(15), day, 12)
    root = tmp_path / "sftp-root"
    (root / "drop").mkdir(parents=True)
    server = await SftpServer(root, client_key=asyncssh.generate_private_key("ssh-ed25519")).start()
    known = server.known_hosts(tmp_path / "known_hosts")
    bridges = [
        load_settings(env="test", data_dir=tmp_path / f"machine{i}", reconcile_time="00:00",
                      sftp_url=server.url(), sftp_known_hosts=known, sftp_password=PASSWORD)
        for i in range(2)
    ]
    caplog.set_level("INFO")
    try:
        def settled() -> bool:
            return bool(runs(db_engine)) and runs(db_engine)[0].status != "running"

        await asyncio.gather(*(run_bridge_jobs(s, db_engine, settled) for s in bridges))
        await run_bridge_jobs(bridges[1], db_engine, lambda: False, timeout_s=0.5)  # restart
    finally:
        await server.stop()
    [run] = runs(db_engine)
    assert (run.day, run.status) == (day, "done")
    written = [s for s in bridges if (s.reconcile_path / file_name(day)).exists()]
    assert len(written) == 1
    assert (root / "drop" / file_name(day)).read_bytes() == (
        written[0].reconcile_path / file_name(day)
    ).read_bytes()
    uploads = [r for r in caplog.records if r.getMessage() == f"reconciliation {day}: uploaded"]
    assert len(uploads) == 1
    skipped = [r for r in caplog.records if "published by another bridge" in r.getMessage()]
    assert len(skipped) == 2


def test_a_failed_or_abandoned_day_can_be_claimed_again(db_engine):
    from paybot.reconciliation.runs import LEASE, claim_day, finish_day

    day = yesterday()
    now = utcnow()
    assert claim_day(db_engine, day, now)
    assert not claim_day(db_engine, day, now)  # running
    assert not claim_day(db_engine, day, now + LEASE / 2)
    assert claim_day(db_engine, day, now + LEASE * 2)  # its bridge died mid-way
    finish_day(db_engine, day, ok=False)
    assert claim_day(db_engine, day, now + LEASE * 2)  # failed: tried again
    finish_day(db_engine, day, ok=True)
    assert not claim_day(db_engine, day, now + LEASE * 10)  # done for good


def runs(engine) -> list:
    from sqlmodel import Session, select

    from paybot.db.models import ReconciliationRun

    with Session(engine) as session:
        return list(session.exec(select(ReconciliationRun)).all())
