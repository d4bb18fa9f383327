"""Several workers end to end: ``paybot up`` with two bridges, two Rasa servers and two action
servers on loopback, a real HAProxy in front (its configuration from ``paybot haproxy-config``),
PostgreSQL for the database and Rasa's tracker store (fresh schemas), Redis for Rasa's locks (a
database number of its own and a fresh key prefix).

Through HAProxy at once: phone calls that pay with a new card keyed in the secure capture
(twilio_sim: the signed voice webhook, then the Media Streams websocket) and chat
conversations on Rasa's REST channel that pay with the card on file, every turn of a chat
round-robin to either Rasa. Meanwhile both bridges run their background jobs over the same
outbox. Afterwards: every conversation ended paid, every payment was charged once (the
payments table and the sandbox gateway's charges), every receipt went out once, and both
bridges and both Rasa servers served traffic (HAProxy's counters; the bridges' logs).

Skipped, saying why, without PostgreSQL (``PAYBOT_TEST_DATABASE_URL``), Redis
(``PAYBOT_TEST_REDIS_URL``, default 127.0.0.1:6379) or haproxy (``make test`` installs it).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import random
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from sqlmodel import Session, select

from paybot.db.models import Account, OutboundMessage, Payment, SandboxCharge
from paybot.settings import load_settings
from tests import capture_calls as cc
from tests import cardscan
from tests.balancer import HAPROXY, Through, start_haproxy, worker_ports
from tests.conftest import fresh_schema, require_pg, schema_url
from tests.rasa_stores import redis_reachable, shared_stores
from tests.stack import OUTPUT_LOG, RASA_TOKEN, Conversation, Stack, wait_until
from tests.test_voice_calls import fake_twilio, voice_stack_env  # noqa: F401 - a fixture
from twilio_sim import CallerSession
from twilio_sim.voice import EspeakVoice

pytestmark = [pytest.mark.services, pytest.mark.postgres]

REDIS_URL = os.environ.get("PAYBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
WORKERS = 2
CALLS, CHATS, RECEIPTS = 4, 10, 12
CODE = cardscan.keyed_code("739")


@dataclass
class Workers:
    stack: Stack
    balancer: str  # the bridges' frontend
    chat: str  # Rasa's REST channel frontend
    stats: str
    callers: list[str] = field(default_factory=list)

    def counters(self) -> dict[tuple[str, str], int]:
        """HAProxy's total sessions per (backend, server)."""
        body = requests.get(f"{self.stats};csv", timeout=10).text.lstrip("# ")
        return {(row["pxname"], row["svname"]): int(row["stot"] or 0)
                for row in csv.DictReader(io.StringIO(body))}


@pytest.fixture(scope="module")
def workers(request, tmp_path_factory, fake_twilio):  # noqa: F811
    pg_url = require_pg(request.node.nodeid)
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (make test installs it: apt-get install haproxy)")
    if not redis_reachable(REDIS_URL):
        pytest.skip(f"no Redis at {REDIS_URL} (set PAYBOT_TEST_REDIS_URL)")
    rng = random.Random()
    data_dir = tmp_path_factory.mktemp("workers")
    with shared_stores(pg_url, REDIS_URL) as stores, \
            fresh_schema(pg_url, "paybot_workers") as schema:
        worker_env, ports = worker_ports(WORKERS, rng)
        balancer = f"http://127.0.0.1:{ports['bridges']}"
        stack = Stack.configure(
            data_dir,
            **voice_stack_env(fake_twilio),
            **stores.env(),
            DATABASE_URL=schema_url(pg_url, schema),
            **worker_env,
            PAYBOT_PUBLIC_URL=balancer,  # what Twilio signs and streams to
            PAYBOT_SPEECH_THREADS="2",
            PAYBOT_ASR_DECODERS="3",
        )
        haproxy = None
        try:
            stack.start(timeout_s=900)
            haproxy = start_haproxy(stack, data_dir, ports, WORKERS)
            yield Workers(stack, balancer, f"http://127.0.0.1:{ports['chat']}",
                          f"http://127.0.0.1:{ports['stats']}/stats")
        finally:
            if haproxy is not None:
                haproxy.terminate()
                haproxy.wait(timeout=10)
            code = stack.stop()
            if stack.engine is not None:
                stack.engine.dispose()
    assert code == 0, stack.log_tail()


# --- the traffic -------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str  # "call" or "chat"
    phone: str
    sender: str = ""
    said: list[str] = field(default_factory=list)
    error: BaseException | None = None


def place_call(workers: Workers, fake, phone_number: str, card: str) -> Outcome:
    outcome = Outcome("call", phone_number)
    settings = load_settings(**fake.settings_overrides(), public_url=workers.balancer)

    async def run() -> None:
        session = CallerSession(settings=settings, url=workers.balancer, from_=phone_number,
                                voice=EspeakVoice(), wait_timeout_s=60.0)
        outcome.sender = f"call:{session.call_sid}"
        async with session as phone:
            await cc.to_capture(phone, workers.stack)
            await cc.steps(phone, card + "#", "1230", CODE, cc.ZIP)
            await phone.press("1")
            await cc.until_said(workers.stack, phone, "was successful", "didn't go through",
                                "went wrong", timeout_s=180)
            await phone.hangup()

    try:
        asyncio.run(asyncio.wait_for(run(), 480))
    except BaseException as exc:  # reported by the test
        outcome.error = exc
    return outcome


def hold_chat(workers: Workers, account_number: str) -> Outcome:
    """A chat client pays the balance with the card on file, every turn through HAProxy."""
    outcome = Outcome("chat", account_number)
    try:
        chat = Conversation(Through(workers.stack, workers.chat), "chat")  # type: ignore[arg-type]
        outcome.sender = chat.sender
        for message, expected in (
            ("hi", "account number"), (account_number, "ZIP"),
            (cc.ZIP, "are you ready to make your payment"), ("yes", "Mastercard ending 4444"),
            ("yes please", "Shall I go ahead"), ("yes", "was successful"),
        ):
            reply = chat.say(message)
            outcome.said.append(reply.text)
            assert expected in reply.text, (message, reply.text)
    except BaseException as exc:  # reported by the test
        outcome.error = exc
    return outcome


def queue_receipts(workers: Workers, count: int) -> list[int]:
    """Texts queued straight into the outbox both bridges' senders work through."""
    with Session(workers.stack.engine) as session:
        rows = [OutboundMessage(to=f"+1555558{n:04d}", body=f"paybot test receipt {n}",
                                kind="receipt") for n in range(count)]
        session.add_all(rows)
        session.commit()
        return [r.id for r in rows]


def test_calls_and_chats_across_two_of_everything_pay_once_each(workers, fake_twilio):  # noqa: F811
    stack = workers.stack
    seed = int(os.environ.get("PAYBOT_TEST_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)
    phones = cc.add_callers(stack, CALLS + CHATS, first=1)
    with Session(stack.engine) as session:
        numbers = {a.phone: a.account_number for a in session.exec(select(Account))}
    call_phones, chat_phones = phones[:CALLS], phones[CALLS:]
    cards = [cc.card_number(rng.choice(["visa", "mastercard"]), rng) for _ in call_phones]
    receipts = queue_receipts(workers, RECEIPTS)
    with ThreadPoolExecutor(CALLS + CHATS) as pool:
        calls = [pool.submit(place_call, workers, fake_twilio, p, c)
                 for p, c in zip(call_phones, cards, strict=True)]
        chats = []
        for p in chat_phones:
            chats.append(pool.submit(hold_chat, workers, numbers[p]))
            time.sleep(0.2)
        outcomes = [f.result() for f in calls + chats]
    failed = [(o.kind, o.phone, o.said, repr(o.error)) for o in outcomes if o.error is not None]
    assert not failed, f"seed {seed}: {failed}"

    # Every conversation paid, once: one succeeded payment per account, one charge per key.
    with Session(stack.engine) as session:
        payments = session.exec(select(Payment)).all()
        charges = session.exec(select(SandboxCharge)).all()
        accounts = {a.phone: a for a in session.exec(select(Account))}
    by_account = Counter(p.account_id for p in payments)
    for phone in phones:
        assert by_account[accounts[phone].id] == 1, (phone, seed)
        assert accounts[phone].balance == 0, (phone, seed)
    assert all(p.status == "succeeded" for p in payments), [(p.id, p.status) for p in payments]
    charged = Counter(c.idempotency_key for c in charges if c.status == "succeeded")
    assert {p.idempotency_key for p in payments} == set(charged)
    assert set(charged.values()) == {1}, charged
    conversations = {p.conversation_id for p in payments}
    assert conversations == {o.sender for o in outcomes}

    # Both bridges' outbox senders ran; each receipt went out once.
    def sent() -> bool:
        with Session(stack.engine) as session:
            rows = session.exec(select(OutboundMessage).where(OutboundMessage.id.in_(receipts)))
            return all(r.status in ("sent", "delivered") and r.provider_id for r in rows)

    assert wait_until(sent, timeout_s=60)
    bodies = Counter(r.form.get("Body") for r in fake_twilio.messages()
                     if "paybot test receipt" in (r.form.get("Body") or ""))
    assert len(bodies) == RECEIPTS and set(bodies.values()) == {1}, bodies

    # The chat frontend publishes Rasa's REST channel, not its token-protected API.
    refused = requests.get(f"{workers.chat}/conversations/{outcomes[-1].sender}/tracker",
                           params={"token": RASA_TOKEN}, timeout=10)
    assert refused.status_code == 404

    # Both bridges and both Rasa servers took their share.
    counters = workers.counters()
    for server in ("bridge1", "bridge2"):
        assert counters[("bridges", server)] > 0, counters
    for server in ("rasa1", "rasa2"):
        assert counters[("rasa", server)] > 0, counters
    out = (stack.data_dir / OUTPUT_LOG).read_text(encoding="utf-8")  # all of it
    # (not by the SIDs' shape: the log redaction masks a SID with a run of nine digits)
    streams = {prefix: len(re.findall(rf"^\[{prefix}\].*call .+: stream .+ started", out,
                                      re.M)) for prefix in ("bridge1", "bridge2")}
    assert sum(streams.values()) == CALLS, streams
    # Each call's stream reached the bridge that answered its webhook (HAProxy's stick table).
    # A SID may be masked ("[redacted …1234]", spaces and all), the same way in both lines.
    answered = {sid: prefix for prefix, sid in re.findall(
        r"^\[(bridge\d)\].*call (.+?) answered with a media stream$", out, re.M)}
    streamed = {sid: prefix for prefix, sid in re.findall(
        r"^\[(bridge\d)\].*call (.+?): stream .+ started$", out, re.M)}
    assert len(answered) == CALLS and streamed == answered, (answered, streamed)
