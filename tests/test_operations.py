"""Operations end to end: ``/metrics`` on each service, JSON log lines, and the bridge's drain.

One stack (``paybot up``) with ``PAYBOT_LOG_FORMAT=json`` and a metrics token; the Twilio REST
API is the local fake, calls are placed by :class:`twilio_sim.CallerSession`. The metrics are
read with prometheus_client's own text-format parser. The last test stops the stack with
SIGTERM during a live call: it must run last in this module.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from decimal import Decimal

import aiohttp
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from paybot.db.models import Payment
from paybot.settings import load_settings
from tests.helpers import rows
from tests.stack import Conversation, Stack
from tests.test_voice_calls import JAMES, dial, run, voice_stack
from twilio_sim.webhook import WebhookError, new_sid, signature, voice_params
from voice_bridge.twilio.messages import Connected, Start
from voice_bridge.twilio.stream_tokens import call_token_secret, issue_call_token

pytestmark = pytest.mark.services

TOKEN = "e2e-metrics-token"  # noqa: S105 - a test value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def fake_twilio():
    from tests.fake_twilio import FakeTwilio

    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_twilio):
    yield from voice_stack(
        tmp_path_factory, fake_twilio,
        PAYBOT_LOG_FORMAT="json", PAYBOT_METRICS_TOKEN=TOKEN, PAYBOT_DRAIN_TIMEOUT_S="90",
    )  # fmt: skip


def urls(stack: Stack) -> dict[str, str]:
    return {
        "bridge": stack.bridge_url,
        "rasa": stack.rasa_url,
        "actions": f"http://127.0.0.1:{stack.env['PAYBOT_ACTION_PORT']}",
    }


def metrics_text(base: str, token: str | None = TOKEN) -> str:
    """``base``'s ``/metrics``, checked to be Prometheus text format 0.0.4."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(base + "/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.text


def scrape(base: str) -> Samples:
    """Every sample of ``base``'s ``/metrics``, read with prometheus_client's parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics_text(base)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def json_lines(stack: Stack) -> list[dict]:
    entries = []
    for line in stack.all_output().splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON line: {line!r}")
    return entries


# --- /metrics ------------------------------------------------------------------------------
def test_each_service_serves_metrics_to_the_token_only(stack):
    for name, base in urls(stack).items():
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
            refused = requests.get(base + "/metrics", headers=headers, timeout=30)
            assert refused.status_code == 401, (name, headers)
        families = {f.name for f in text_string_to_metric_families(metrics_text(base))}
        # prometheus_client names a counter's family without "_total"
        assert {"paybot_payments", "paybot_gateway_seconds"} <= families, name
        assert "paybot_http_request_seconds" in families, name
    bridge = scrape(stack.bridge_url)
    assert value(bridge, "paybot_active_calls") == 0
    assert value(bridge, "paybot_draining") == 0
    for status in ("queued", "sending", "unknown"):  # read from the database
        assert ("paybot_outbox_messages", frozenset({("status", status)})) in bridge


def test_a_payment_moves_the_counters_and_its_log_lines_carry_its_ids(stack):
    stack.reset_data()
    actions, rasa = urls(stack)["actions"], urls(stack)["rasa"]
    before, rasa_before = scrape(actions), scrape(rasa)
    call = Conversation(stack, "voice", JAMES)
    assert "ZIP code" in call.start_call().text
    assert "Hello James" in call.say("94107").text
    assert "Visa ending 4242" in call.say("yes").text
    assert "$323.72" in call.say("yes please").text
    assert "was successful" in call.say("yes").text
    [payment] = rows(stack.engine, Payment)
    assert payment.status == "succeeded" and payment.total == Decimal("323.72")

    after, rasa_after = scrape(actions), scrape(rasa)
    for status, moved in (("succeeded", 1), ("declined", 0), ("failed", 0), ("unknown", 0)):
        name = "paybot_payments_total"
        assert value(after, name, status=status) - value(before, name, status=status) == moved
    charge = {"gateway": "sandbox", "operation": "charge", "outcome": "ok"}
    assert value(after, "paybot_gateway_seconds_count", **charge) == (
        value(before, "paybot_gateway_seconds_count", **charge) + 1
    )
    posts = {"method": "POST", "status": "2xx"}
    answered = value(rasa_after, "paybot_http_request_seconds_count", **posts) - value(
        rasa_before, "paybot_http_request_seconds_count", **posts
    )
    assert answered >= 5  # the trigger and four messages
    # Rasa's parse cache is on as paybot up starts it: the ZIP is parsed afresh (digits are
    # never remembered), the second "yes" is remembered.
    cache = "paybot_rasa_parse_cache_total"
    moved = {o: value(rasa_after, cache, outcome=o) - value(rasa_before, cache, outcome=o)
             for o in ("hit", "miss", "skipped")}  # fmt: skip
    assert moved["skipped"] >= 1 and moved["hit"] >= 1, moved
    # No label holds an id: only kinds and statuses.
    for name, labels in after:
        for label, text in labels if name.startswith("paybot_") else ():
            assert str(payment.id) != text and call.sender not in text, (name, label)

    lines = stack.wait_for_output(f'"payment_id": "{payment.id}"')
    assert f'"payment_id": "{payment.id}"' in lines
    entries = json_lines(stack)
    about = [e for e in entries if e.get("conversation_id") == call.sender]
    assert "actions" in {e["service"] for e in about}
    settled = [e for e in entries if e.get("payment_id") == str(payment.id)]
    assert any(e["message"] == f"payment {payment.id} succeeded" for e in settled)


def test_every_line_of_paybot_up_is_one_json_object(stack):
    entries = json_lines(stack)
    assert len(entries) > 50
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert entry["time"].endswith("Z")
    services = {e.get("service") for e in entries}
    assert {"rasa", "actions", "bridge"} <= services
    assert any(e["message"] == "paybot is up; Ctrl-C to stop" for e in entries)


# --- SIGTERM: the drain (last: it stops the stack) ------------------------------------------
def settings_for(stack: Stack, fake_twilio):
    return load_settings(
        **fake_twilio.settings_overrides(), bridge_port=int(stack.env["PAYBOT_BRIDGE_PORT"])
    )


def health(base: str) -> int:
    return requests.get(base + "/healthz", timeout=10).status_code


async def refused_stream(stack: Stack, settings) -> tuple[int | None, str]:
    """Open a Media Stream for a call answered now (its token issued after the drain began):
    the close code and reason the bridge answers with."""
    call_sid = new_sid("CA")
    token = issue_call_token(  # two seconds after the drain began, at least
        call_token_secret(settings), call_sid=call_sid, caller=JAMES,
        ttl_s=settings.call_token_ttl_s,
        now=time.time() + 2,
    )
    url = stack.bridge_url.replace("http", "ws") + "/twilio/stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(Connected().to_json())
        start = Start("MZ" + "1" * 32, call_sid, "AC" + "0" * 32, {"token": token})
        await ws.send_str(start.to_json())
        message = await ws.receive(timeout=10)
        return ws.close_code, str(message.extra)


def test_sigterm_lets_the_live_call_finish_and_refuses_new_ones(stack, fake_twilio):
    stack.reset_data()
    bridge = stack.bridge_url
    settings = settings_for(stack, fake_twilio)

    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()  # welcome; the ZIP code, please
            await phone.press("94107#")
            await phone.wait_bot()  # the greeting
            live = await asyncio.to_thread(scrape, bridge)  # the call's loop must not block
            assert value(live, "paybot_active_calls") == 1
            assert value(live, "paybot_turn_latency_seconds_count") >= 1
            assert value(live, "paybot_rasa_round_trip_seconds_count", kind="trigger") >= 1
            assert value(live, "paybot_rasa_round_trip_seconds_count", kind="message") >= 1
            waited = [v for (name, _), v in live.items()
                      if name == "paybot_speech_queue_wait_seconds_count"]
            assert sum(waited) > 0
            assert ("paybot_late_frames_total", frozenset()) in live

            stack.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while (await asyncio.to_thread(health, bridge)) != 503:
                assert time.monotonic() < deadline, "the bridge did not start draining"
                await asyncio.sleep(0.2)
            assert value(await asyncio.to_thread(scrape, bridge), "paybot_draining") == 1
            # A new call hears an apology and is hung up on; a new stream is refused.
            params = voice_params(call_sid=new_sid("CA"), account_sid=fake_twilio.account_sid,
                                  caller=JAMES, called="+15555550000")
            headers = {"X-Twilio-Signature": signature(settings, "/twilio/voice", params,
                                                       bridge)}
            async with aiohttp.ClientSession() as http, http.post(
                bridge + "/twilio/voice", data=params, headers=headers
            ) as answer:
                assert answer.status == 200
                twiml = await answer.text()
            assert "<Hangup" in twiml and "<Stream" not in twiml
            with pytest.raises(WebhookError):
                async with dial(stack, fake_twilio, JAMES):
                    pass
            assert await refused_stream(stack, settings) == (1013, "draining")
            # The live call goes on: Rasa and the action server still serve it.
            await phone.say("no")
            answered = await phone.wait_bot()
            assert answered.received_bytes > 8000  # a second of the bot's voice
            assert stack.process.poll() is None
            await phone.hangup()

    run(call())
    code = stack.process.wait(timeout=60)
    assert code == 0, stack.log_tail()
    output = stack.wait_for_output("drained: no call left")
    assert "drained: no call left" in output
    entries = json_lines(stack)
    calls = [e for e in entries if e.get("call_sid") and e.get("service") == "bridge"]
    assert calls and all(e["conversation_id"] == "call:" + e["call_sid"] for e in calls)
    stack.check_database()
