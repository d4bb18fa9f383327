"""Rasa's tracker store (PostgreSQL) and lock store (Redis) for more than one Rasa process:
the endpoints file ``paybot up`` writes, and the real stack using both."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from paybot.settings import SettingsError, load_settings
from paybot_cli.project import find_project
from paybot_cli.rasa_endpoints import rasa_endpoints
from paybot_cli.up import plan
from tests.conftest import PG_URL_ENV
from tests.rasa_stores import redis_reachable, shared_stores
from tests.stack import Conversation, Stack

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("PAYBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_without_stores_rasa_gets_bot_endpoints(settings):
    endpoints = rasa_endpoints(settings, find_project(REPO))
    assert endpoints.path == Path("bot/endpoints.yml") and endpoints.env == {}
    rasa = plan(settings, find_project(REPO))[0]
    assert rasa.argv[rasa.argv.index("--endpoints") + 1] == "bot/endpoints.yml"


def test_stores_go_into_a_generated_endpoints_file_without_secrets(settings):
    configured = settings.copy(
        update={
            "tracker_store_url": load_settings(
                tracker_store_url="postgresql://rasa:pa%24%24word@db.internal:6543/conv"
                "?schema=rasa&sslmode=require"
            ).tracker_store_url,
            "lock_store_url": load_settings(
                lock_store_url="rediss://:r3dis@cache.internal:6380/3?key_prefix=paybot"
            ).lock_store_url,
        }
    )
    project = find_project(REPO)
    endpoints = rasa_endpoints(configured, project)
    written = endpoints.path.read_text()
    assert endpoints.path == (configured.data_dir / "rasa-endpoints.yml").resolve()
    assert endpoints.path.stat().st_mode & 0o077 == 0  # private to the user
    assert "pa$$word" not in written and "r3dis" not in written
    config = yaml.safe_load(written)
    assert config["action_endpoint"] == {
        "url": "${PAYBOT_ACTION_SERVER_URL}",
        "headers": {"X-Paybot-Action-Secret": "${PAYBOT_ACTION_SECRET}"},
    }
    assert config["tracker_store"] == {
        "type": "rasa_plugins.sql_tracker_store.FastSQLTrackerStore",
        "dialect": "postgresql",
        "url": "db.internal",
        "port": 6543,
        "db": "conv",
        "username": "rasa",
        "password": "${PAYBOT_TRACKER_STORE_PASSWORD}",
        "query": {"sslmode": "require"},
    }
    assert config["lock_store"] == {
        "type": "redis",
        "url": "cache.internal",
        "port": 6380,
        "db": 3,
        "use_ssl": True,
        "password": "${PAYBOT_LOCK_STORE_PASSWORD}",
        "key_prefix": "paybot",
    }
    assert endpoints.env == {
        "POSTGRESQL_SCHEMA": "rasa",
        "PAYBOT_TRACKER_STORE_PASSWORD": "pa$$word",
        "PAYBOT_LOCK_STORE_PASSWORD": "r3dis",
    }
    rasa = plan(configured, project, endpoints)[0]
    assert rasa.argv[rasa.argv.index("--endpoints") + 1] == str(endpoints.path)
    assert not any("pa$$word" in arg or "r3dis" in arg for arg in rasa.argv)  # env, not argv
    assert rasa.env["PAYBOT_TRACKER_STORE_PASSWORD"] == "pa$$word"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PAYBOT_TRACKER_STORE_URL", "mysql://db/conv"),
        ("PAYBOT_TRACKER_STORE_URL", "sqlite:///rasa.db"),
        ("PAYBOT_LOCK_STORE_URL", "memcached://cache"),
    ],
)
def test_other_stores_are_refused_at_start(monkeypatch, tmp_path, variable, value):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable.removeprefix("PAYBOT_").lower()):
        load_settings()


def test_a_bad_lock_store_prefix_is_refused(settings):
    bad = settings.copy(
        update={
            "lock_store_url": load_settings(
                lock_store_url="redis://h/0?key_prefix=a-b"
            ).lock_store_url
        }  # fmt: skip
    )
    with pytest.raises(SettingsError, match="key_prefix"):
        rasa_endpoints(bad, find_project(REPO))


# --- the real stack on PostgreSQL and Redis --------------------------------------------------
@pytest.mark.services
@pytest.mark.postgres
def test_stack_keeps_conversations_in_postgresql_and_locks_in_redis(tmp_path):
    from rasa.core.lock import Ticket, TicketLock

    pg_url = os.environ.get(PG_URL_ENV)
    if not pg_url:
        pytest.skip(f"PostgreSQL not configured: set {PG_URL_ENV}")
    if not redis_reachable(REDIS_URL):
        pytest.skip(f"no Redis at {REDIS_URL} (set PAYBOT_TEST_REDIS_URL)")
    with shared_stores(pg_url, REDIS_URL) as stores:
        schema, prefix, admin, red = stores.schema, stores.prefix, stores.admin, stores.redis
        stack = Stack.configure(tmp_path / "stack", **stores.env())
        try:
            stack.start()
            chat = Conversation(stack, "sms", "+15555550100")  # a number the bridge vouches for
            assert "ZIP" in chat.say("hi").text  # caller ID is a hint: one more factor first
            assert "James" in chat.say("94107").text  # the greeting, worded for a text

            # Another Rasa process holds this conversation's lock (a ticket in Redis): this
            # one waits for it to expire before it answers.
            held = TicketLock(chat.sender, [Ticket(0, time.time() + 3.0)])
            red.set(f"{prefix}:lock:{chat.sender}", held.dumps())
            started = time.monotonic()
            balance = chat.say("what's my balance")
            assert time.monotonic() - started >= 2.0, "Rasa did not wait for the lock in Redis"
            assert "$321.72" in balance.text
            assert red.get(f"{prefix}:lock:{chat.sender}") is None  # released after the turn

            with admin.connect() as conn:
                query = f'SELECT type_name, data FROM "{schema}".events WHERE sender_id = :s'  # noqa: S608 - our schema
                events = conn.execute(text(query + " ORDER BY id"), {"s": chat.sender}).all()
            kinds = [kind for kind, _ in events]
            assert "session_started" in kinds and kinds.count("user") == 3
            said = [json.loads(data).get("text") for kind, data in events if kind == "user"]
            assert said == ["hi", "94107", "what's my balance"]
            assert chat.tracker()["sender_id"] == chat.sender
        finally:
            code = stack.stop()
    assert code == 0, stack.log_tail()


# --- the bounded in-memory tracker store (one Rasa process) -----------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _endpoint_variables(monkeypatch, settings) -> None:
    """What `paybot up` gives the Rasa process for bot/endpoints.yml."""
    rasa = plan(settings, find_project(REPO))[0]
    for name in ("PAYBOT_ACTION_SERVER_URL", "PAYBOT_ACTION_SECRET",
                 "PAYBOT_TRACKER_MAX_CONVERSATIONS"):
        monkeypatch.setenv(name, rasa.env[name])


def _bot_tracker_store(clock=None, **overrides):
    """The tracker store Rasa builds from bot/endpoints.yml, by Rasa's own code path
    (``rasa run`` reads the endpoints, then ``TrackerStore.create``)."""
    from rasa.core.tracker_store import TrackerStore
    from rasa.core.utils import AvailableEndpoints
    from rasa.shared.core.domain import Domain

    endpoints = AvailableEndpoints.read_endpoints(str(REPO / "bot/endpoints.yml"))
    config = endpoints.tracker_store
    assert config is not None, "bot/endpoints.yml has no tracker_store section"
    config.kwargs.update(overrides)
    if clock is not None:
        config.kwargs["clock"] = clock
    domain = Domain.load(str(REPO / "bot/domain.yml"))
    return TrackerStore.create(config, domain=domain)


async def _converse(store, sender: str) -> None:
    from rasa.shared.core.events import UserUttered

    tracker = await store.get_or_create_tracker(sender)
    tracker.update(UserUttered("hi", {"name": "greet", "confidence": 1.0}))
    await store.save(tracker)


async def test_bot_tracker_store_is_bounded_and_forgets_the_least_recently_used(
    monkeypatch, settings
):
    _endpoint_variables(monkeypatch, settings)
    from rasa_plugins.tracker_store import BoundedTrackerStore

    store = _bot_tracker_store(max_conversations=50)
    assert isinstance(store, BoundedTrackerStore)  # not Rasa's silent in-memory fallback
    seed = 20261205
    rng = random.Random(seed)
    senders = [f"sms:+1555{rng.randrange(10**7):07d}" for _ in range(400)]
    recent: list[str] = []
    for sender in senders:
        await _converse(store, sender)
        recent = [s for s in recent if s != sender] + [sender]
        if rng.random() < 0.3 and len(recent) > 5:  # an older conversation comes back
            back = recent[rng.randrange(len(recent) - 5, len(recent))]
            assert await store.retrieve(back) is not None, f"seed {seed}"
            recent = [s for s in recent if s != back] + [back]
    kept = set(await store.keys())
    assert kept == set(recent[-50:]), f"seed {seed}"
    assert await store.retrieve(recent[-51]) is None


async def test_bot_tracker_store_forgets_conversations_idle_past_the_session_expiry(
    monkeypatch, settings
):
    _endpoint_variables(monkeypatch, settings)
    clock = Clock()
    store = _bot_tracker_store(clock)
    assert store.max_conversations == settings.tracker_max_conversations == 10_000
    expiry_s = store.domain.session_config.session_expiration_time * 60
    assert expiry_s > 0
    await _converse(store, "call:CA1")
    await _converse(store, "chat:a")
    clock.now += expiry_s - 1
    await _converse(store, "chat:a")  # still talking
    assert set(await store.keys()) == {"call:CA1", "chat:a"}
    clock.now += 2
    assert set(await store.keys()) == {"chat:a"}
    assert await store.retrieve("call:CA1") is None
    tracker = await store.retrieve("chat:a")
    assert tracker is not None and tracker.latest_message.text == "hi"


async def test_bot_tracker_store_keeps_only_the_latest_session(monkeypatch, settings):
    """Seeded conversations that start new sessions mid-way (the bot's goodbye on a text
    channel) and Rasa's own way: what the store gives back holds at most one session, yet the
    dialog sees the same events, slots and latest message time as with every session kept."""
    from rasa.shared.core.events import (
        ActionExecuted,
        BotUttered,
        SessionStarted,
        SlotSet,
        UserUttered,
    )
    from rasa.shared.core.trackers import get_trackers_for_conversation_sessions

    _endpoint_variables(monkeypatch, settings)
    store = _bot_tracker_store()
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    slots = [s for s in ("stage", "channel", "caller_number") if s in store.domain.slots]
    for case in range(40):
        sender = f"sms:+1555{case:07d}"
        tracker = await store.get_or_create_tracker(sender)
        for turn in range(rng.randrange(1, 60)):
            tracker.update(UserUttered(f"words {turn}", {"name": "greet", "confidence": 1.0},
                                       timestamp=1_000 + turn))
            if slots and rng.random() < 0.5:
                tracker.update(SlotSet(rng.choice(slots), f"v{turn}"))
            tracker.update(BotUttered(f"reply {turn}"))
            roll = rng.random()
            if roll < 0.15:  # the bot's end of session
                tracker.update(SessionStarted())
            elif roll < 0.2:  # Rasa's own
                tracker.update(ActionExecuted("action_session_start"))
                tracker.update(SessionStarted())
            tracker.update(ActionExecuted("action_listen"))
            if rng.random() < 0.3:
                await store.save(tracker)
                tracker = await store.retrieve(sender)
        await store.save(tracker)
        back = await store.retrieve(sender)

        def dicts(events):
            return [e.as_dict() for e in events]

        where = f"case {case} (seed {seed})"
        assert dicts(back.applied_events()) == dicts(tracker.applied_events()), where
        assert back.current_slot_values() == tracker.current_slot_values(), where
        # The latest message (Rasa times the session expiry from it) as Rasa's own split
        # by session would leave it.
        stock = get_trackers_for_conversation_sessions(tracker)[-1]
        latest, kept = (t.get_last_event_for(UserUttered) for t in (stock, back))
        assert (kept and kept.timestamp) == (latest and latest.timestamp), where
        starts = [i for i, e in enumerate(back.events) if isinstance(e, SessionStarted)]
        before = list(back.events)[: starts[-1]] if starts else []
        assert sum(isinstance(e, UserUttered) for e in before) <= 1, where  # one turn kept
        # The bot's reply to the turn that ended the session is kept (to be said again).
        bots = [e.text for e in tracker.events if isinstance(e, (BotUttered, UserUttered))]
        kept = [e.text for e in back.events if isinstance(e, (BotUttered, UserUttered))]
        assert bots[len(bots) - len(kept):] == kept, where


def test_unbounded_settings_are_refused():
    from rasa.shared.core.domain import Domain

    from rasa_plugins.tracker_store import BoundedTrackerStore

    with pytest.raises(ValueError, match="max_conversations"):
        BoundedTrackerStore(Domain.empty(), max_conversations=0)
    with pytest.raises(ValueError, match="idle_expiry_s"):
        BoundedTrackerStore(Domain.empty(), idle_expiry_s=0)


@pytest.mark.services
def test_stack_rasa_keeps_at_most_the_configured_conversations(tmp_path):
    """The real Rasa process loads the bounded store from bot/endpoints.yml (not Rasa's
    silent fallback to its unbounded one) with the limit `paybot up` passes it."""
    stack = Stack.configure(tmp_path / "stack", PAYBOT_TRACKER_MAX_CONVERSATIONS="2")
    try:
        stack.start()
        chats = [Conversation(stack, "chat") for _ in range(3)]
        for chat in chats:
            assert chat.say("hi").text
        said = [
            [e.get("text") for e in chat.tracker()["events"] if e["event"] == "user"]
            for chat in chats[::-1]  # newest first: reading one back makes it the newest
        ]
        assert said == [["hi"], ["hi"], []], said
    finally:
        code = stack.stop()
    assert code == 0, stack.log_tail()
    assert "InMemoryTrackerStore" not in "\n".join(stack.output)
