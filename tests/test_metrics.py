"""The metrics (paybot/metrics.py) as the code moves them, and the bridge's ``/metrics``.

The ledger runs over the real sandbox gateway and database; the bridge's route is served by
aiohttp's test server over HTTP and read with prometheus_client's text-format parser. Each
check compares a value before and after, since a process has one registry.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from paybot import metrics
from paybot.db.engine import session_scope
from paybot.db.models import OutboundMessage
from paybot.gateway.card_data import CardData
from paybot.settings import Settings
from tests.helpers import account
from tests.test_ledger import FUTURE, pay_james
from voice_bridge.call.playback import PlayoutClock
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.metrics_route import add_metrics_route


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# --- payments and the gateway ----------------------------------------------------------------
def test_payment_outcomes_are_counted_by_status_and_the_gateway_timed(ledger, db_engine, sandbox):
    charged = {"gateway": "sandbox", "operation": "charge", "outcome": "ok"}
    before = {s: sample("paybot_payments_total", status=s) for s in ("succeeded", "declined",
                                                                    "unknown", "failed")}
    timed = sample("paybot_gateway_seconds_count", **charged)
    assert pay_james(ledger).succeeded
    maria = account(db_engine, "200300400")
    declined = ledger.pay_with_new_method(
        account_id=maria.id, method=CardData("4000000000000002", 12, FUTURE, "123"),
        amount=Decimal("20.00"), channel="voice",
    )  # fmt: skip
    assert declined.status == "declined"
    sandbox.faults.timeout_next(3, when="before")
    assert pay_james(ledger, "5.00").status == "unknown"
    (failed,) = ledger.reconcile(older_than_s=0)
    assert failed.status == "failed"

    moved = {s: sample("paybot_payments_total", status=s) - n for s, n in before.items()}
    assert moved == {"succeeded": 1, "declined": 1, "unknown": 1, "failed": 1}
    assert sample("paybot_gateway_seconds_count", **charged) == timed + 2
    timeouts = {"gateway": "sandbox", "operation": "charge", "outcome": "timeout"}
    assert sample("paybot_gateway_seconds_count", **timeouts) >= 3
    finds = {"gateway": "sandbox", "operation": "find", "outcome": "ok"}
    assert sample("paybot_gateway_seconds_count", **finds) >= 2  # after retries, reconcile


def test_timed_tells_ok_timeouts_and_errors_apart():
    class GatewayTimeout(Exception):
        pass

    def fails(exc: Exception) -> None:
        raise exc

    labels = {"gateway": "unit", "operation": "charge"}
    before = {o: sample("paybot_gateway_seconds_count", **labels, outcome=o)
              for o in ("ok", "timeout", "error")}
    assert metrics.timed("unit", "charge", lambda x: x * 2, 21) == 42
    with pytest.raises(GatewayTimeout):
        metrics.timed("unit", "charge", fails, GatewayTimeout())
    with pytest.raises(ValueError):
        metrics.timed("unit", "charge", fails, ValueError())
    for outcome in ("ok", "timeout", "error"):
        assert sample("paybot_gateway_seconds_count", **labels, outcome=outcome) == (
            before[outcome] + 1
        )


# --- late frames -----------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_audio_sent_after_the_last_ran_out_counts_its_missed_frames():
    clock = FakeClock()
    playout = PlayoutClock(clock)
    before = sample("paybot_late_frames_total")
    playout.sent(1000.0)  # 1 s of audio: plays until 101.0
    clock.now = 100.5
    playout.sent(500.0)  # in time: queued behind it, until 101.5
    assert playout.late_frames == 0
    clock.now = 101.6  # 100 ms of silence the caller heard
    playout.sent(200.0)
    assert playout.late_frames == 5
    assert sample("paybot_late_frames_total") == before + 5


def test_late_frames_match_a_random_walk_of_sends():
    rng = random.Random(1717)
    for _ in range(50):
        clock = FakeClock()
        playout = PlayoutClock(clock)
        now_ms, runs_out_ms, expected = 100_000, None, 0  # whole milliseconds: exact
        for _ in range(rng.randint(1, 12)):
            now_ms += rng.choice([0, 10, 200, 900, 1700])
            audio_ms = rng.choice([20, 240, 1000, 2600])
            if runs_out_ms is not None and now_ms > runs_out_ms:
                expected += (now_ms - runs_out_ms) // 20
            runs_out_ms = max(now_ms, runs_out_ms or now_ms) + audio_ms
            clock.now = now_ms / 1000.0
            playout.sent(float(audio_ms))
        assert playout.late_frames == expected


# --- the bearer token --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "token", "allowed"),
    [
        ("", None, True),
        ("Bearer anything", None, True),
        ("", "s3cret-token", False),
        ("Bearer s3cret-token", "s3cret-token", True),
        ("bearer s3cret-token", "s3cret-token", True),
        ("Bearer s3cret-tokem", "s3cret-token", False),
        ("Basic s3cret-token", "s3cret-token", False),
        ("s3cret-token", "s3cret-token", False),
    ],
)
def test_bearer_token(header, token, allowed):
    assert metrics.bearer_allowed(header, token) is allowed


# --- the bridge's /metrics -------------------------------------------------------------------
async def metrics_client(settings: Settings, engine) -> AsyncIterator[TestClient]:
    app = web.Application()
    app[SETTINGS] = settings
    app[DB_ENGINE] = engine
    add_metrics_route(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def queue_messages(engine, statuses: list[str]) -> None:
    with session_scope(engine) as session:
        for n, status in enumerate(statuses):
            session.add(OutboundMessage(to=f"+1555555{n:04d}", kind="receipt", body="Paid.",
                                        status=status))


async def test_the_bridge_metrics_need_the_token_when_one_is_set(settings, db_engine):
    guarded = settings.copy(update={"metrics_token": SecretStr("s3cret-token")})
    async for client in metrics_client(guarded, db_engine):
        assert (await client.get("/metrics")).status == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        good = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert good.status == 200
        assert good.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


async def test_the_bridge_metrics_are_off_in_prod_without_a_token(settings, db_engine):
    prod = settings.copy(update={"env": "prod"})
    async for client in metrics_client(prod, db_engine):
        assert (await client.get("/metrics")).status == 404


async def test_the_outbox_backlog_is_read_at_scrape_time(settings, db_engine):
    rng = random.Random(99)
    statuses = [rng.choice(["queued", "sending", "unknown", "sent", "failed"]) for _ in range(25)]
    queue_messages(db_engine, statuses)
    async for client in metrics_client(settings, db_engine):
        response = await client.get("/metrics")
        assert response.status == 200
        text = await response.text()
    backlog = {
        s.labels["status"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "paybot_outbox_messages"
    }
    assert backlog == {s: statuses.count(s) for s in ("queued", "sending", "unknown")}
