"""The shared tracker store (rasa_plugins/sql_tracker_store.py) against Rasa's own SQL store
on real PostgreSQL: seeded random conversations, turn by turn, give the same rows and the same
trackers, in one read and one insert a turn."""

from __future__ import annotations

import json
import os
import random
import threading

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from rasa_plugins.sql_tracker_store import FastSQLTrackerStore
from tests.conftest import fresh_schema, require_pg

pytestmark = pytest.mark.postgres

DOMAIN = Domain.from_dict({
    "intents": ["greet", "inform", "affirm"],
    "slots": {
        "billing_zip": {"type": "text", "mappings": [{"type": "custom"}]},
        "amount": {"type": "text", "mappings": [{"type": "custom"}]},
    },
    "actions": ["action_pay"],
})  # fmt: skip
SEED = int(os.environ.get("PAYBOT_TEST_SEED", "0")) or random.SystemRandom().randrange(1, 10**6)


def store(cls: type, url: str, schema: str) -> SQLTrackerStore:
    parsed = make_url(url)
    os.environ["POSTGRESQL_SCHEMA"] = schema
    try:
        return cls(
            DOMAIN,
            dialect="postgresql",
            host=parsed.host,
            port=parsed.port,
            db=parsed.database,
            username=parsed.username,
            password=parsed.password,
        )
    finally:
        del os.environ["POSTGRESQL_SCHEMA"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_796_000_000.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


def turn_events(rng: random.Random, clock: Clock, new_session: bool) -> list:
    """What one turn appends: maybe a new session first, then the user, actions, slots."""
    events: list = []
    if new_session:
        events += [
            ActionExecuted("action_session_start", timestamp=clock()),
            SessionStarted(timestamp=clock()),
            ActionExecuted("action_listen", timestamp=clock()),
        ]
    text_ = rng.choice(["hi", "94107", "pay $5/month", "é ü 🙂", 'say "yes"', "no\nthanks"])
    intent = rng.choice(["greet", "inform", "affirm"])
    events.append(
        UserUttered(text_, {"name": intent, "confidence": rng.random()}, timestamp=clock())
    )
    for _ in range(rng.randint(0, 6)):
        kind = rng.randrange(4)
        if kind == 0:
            events.append(
                SlotSet(
                    rng.choice(["billing_zip", "amount"]),
                    rng.choice([None, "94107", "5.00"]),
                    timestamp=clock(),
                )
            )
        elif kind == 1:
            events.append(BotUttered(rng.choice(["Hello.", "Sorry?", ""]), timestamp=clock()))
        elif kind == 2:
            events.append(ActiveLoop(rng.choice([None, "payment_form"]), timestamp=clock()))
        else:
            events.append(ActionExecuted("action_pay", timestamp=clock()))
    events.append(ActionExecuted("action_listen", timestamp=clock()))
    return events


def rows(store_: SQLTrackerStore) -> list[tuple]:
    with store_.engine.connect() as conn:
        found = conn.execute(text(
            "SELECT sender_id, type_name, timestamp, intent_name, action_name, data "
            "FROM events ORDER BY id"
        )).all()  # fmt: skip
    return [(*r[:5], json.loads(r[5])) for r in found]


def statements(store_: SQLTrackerStore) -> list[str]:
    seen: list[str] = []
    event.listen(
        store_.engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_a: seen.append(sql.split()[0].upper()),
    )
    return seen


async def test_random_conversations_store_what_rasas_own_store_stores(request):
    url = require_pg(request.node.nodeid)
    rng = random.Random(SEED)
    print(f"seed {SEED} (PAYBOT_TEST_SEED={SEED} repeats it)")
    with (
        fresh_schema(url, "paybot_trk") as ours_schema,
        fresh_schema(url, "paybot_trk") as rasa_schema,
    ):
        ours, theirs = (
            store(FastSQLTrackerStore, url, ours_schema),
            store(SQLTrackerStore, url, rasa_schema),
        )
        sql = statements(ours)
        try:
            senders = [f"sms:{i:04d}" for i in range(4)]
            for _turn in range(60):
                sender = rng.choice(senders)
                clock = Clock()
                clock.now += _turn * 100
                new_session = rng.random() < 0.15
                appended = turn_events(rng, clock, new_session)
                trackers = []
                for s in (ours, theirs):
                    tracker = await s.retrieve(sender) or DialogueStateTracker(sender, DOMAIN.slots)
                    for e in appended:
                        tracker.update(e)
                    trackers.append(tracker)
                await ours.save(trackers[0])
                await theirs.save(trackers[1])
                del sql[:]
                await ours.save(trackers[0])  # saved again with nothing new: nothing written
                assert "INSERT" not in sql, sql
                assert rows(ours) == rows(theirs), f"turn {_turn}, seed {SEED}"
                for sender_ in senders:
                    a, b = await ours.retrieve(sender_), await theirs.retrieve(sender_)
                    assert (a is None) == (b is None)
                    if a is not None:
                        assert [e.as_dict() for e in a.events] == [e.as_dict() for e in b.events]
                        assert a.current_slot_values() == b.current_slot_values()
                        full = await ours.retrieve_full_tracker(sender_)
                        assert len(full.events) >= len(a.events)
        finally:
            ours.engine.dispose()
            theirs.engine.dispose()


async def test_one_read_and_one_insert_a_turn(request):
    url = require_pg(request.node.nodeid)
    with fresh_schema(url, "paybot_trk") as schema:
        ours = store(FastSQLTrackerStore, url, schema)
        sql = statements(ours)
        try:
            clock, rng = Clock(), random.Random(SEED)
            said = turn_events(rng, clock, True)
            await ours.save(DialogueStateTracker.from_events("sms:1", said))
            for _ in range(5):
                del sql[:]
                tracker = await ours.retrieve("sms:1")
                reads = [s for s in sql if s == "SELECT"]
                del sql[:]
                for e in turn_events(rng, clock, False):
                    tracker.update(e)
                    said.append(e)
                await ours.save(tracker)
                assert [s for s in sql if s in ("INSERT", "SELECT")] == ["INSERT"], sql
                assert len(reads) <= 2  # the events (and Rasa's check that the schema exists)
            stored = [row[5] for row in rows(ours)]
            assert stored == [e.as_dict() for e in said]
            latest = [e.as_dict() for e in (await ours.retrieve("sms:1")).events]
            assert latest == stored[1:]  # the session's events: all but action_session_start
        finally:
            ours.engine.dispose()


async def test_the_database_is_waited_for_off_the_event_loop(request):
    """Every statement of a read and a save (a tracker read here, and one it did not read)
    runs in a worker thread: the event loop goes on with other conversations meanwhile."""
    url = require_pg(request.node.nodeid)
    with fresh_schema(url, "paybot_trk") as schema:
        ours = store(FastSQLTrackerStore, url, schema)
        threads: list[int] = []
        event.listen(
            ours.engine, "before_cursor_execute", lambda *_a: threads.append(threading.get_ident())
        )
        try:
            clock, rng = Clock(), random.Random(SEED)
            first = DialogueStateTracker.from_events("sms:1", turn_events(rng, clock, True))
            await ours.save(first)
            unread = DialogueStateTracker.from_events("sms:2", turn_events(rng, clock, True))
            await ours.save(unread)  # counted first, then inserted
            tracker = await ours.retrieve("sms:1")
            for e in turn_events(rng, clock, False):
                tracker.update(e)
            await ours.save(tracker)
            assert len(threads) >= 5 and threading.get_ident() not in threads
        finally:
            ours.engine.dispose()
