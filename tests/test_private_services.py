"""Rasa and the action server are private: loopback, a shared secret, nothing secret on a
command line or in a log; user text is never an intent; card numbers are masked in logs.

One real stack (``paybot up``) with the bridge on every interface (``PAYBOT_HOST=0.0.0.0``),
everything logging at DEBUG (Rasa's and Sanic's too), so what these tests look for in the
output is what an operator would see at the most talkative setting.
"""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from pathlib import Path

import pytest
import requests
from twilio.request_validator import RequestValidator

from paybot.db.models import Payment
from paybot.settings import DEV_TWILIO_AUTH_TOKEN
from tests.helpers import rows
from tests.stack import RASA_TOKEN, Conversation, Stack

pytestmark = pytest.mark.services

JAMES = "+15555550100"
ACTION_SECRET = "e2e-action-secret-" + uuid.uuid4().hex  # noqa: S105 - a test secret
# The attack: a tracker that says James is identified and confirmed a stored-card
# payment of his whole balance minus a dollar.
FORGED_SLOTS = {
    "identified": True,
    "identified_by": "phone",
    "account_number": "100200300",
    "payment_method": "stored",
    "payment_amount": "320.72",
    "confirm_payment": True,
    "payment_key": "forged:" + uuid.uuid4().hex[:16],
    "channel": "chat",
}
# Card numbers as they might come out in a log line (all of them Luhn-valid).
CARD_FORMS = (
    "4242 4242 4242 4242",
    "4242424242424242",
    "4242-4242-4242-4242",
    "4242.4242.4242.4242",
    "4242,4242,4242,4242",
    "4242  4242  4242  4242",
    "4000 0566 5566 5556",
    "four two four two four two four two four two four two four two four two",
)
# Digits a few punctuation characters apart, as a reader would join them.
_DIGIT_RUN = re.compile(r"\d(?:[^0-9A-Za-z]{0,3}\d)*")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack.configure(
        tmp_path_factory.mktemp("private"),
        PAYBOT_HOST="0.0.0.0",  # noqa: S104 - the bridge only; Rasa and actions stay private
        PAYBOT_ACTION_SECRET=ACTION_SECRET,
        PAYBOT_LOG_LEVEL="DEBUG",
        LOG_LEVEL_LIBRARIES="DEBUG",  # Sanic's access log (URLs with ?token=...)
    )
    stack.start()
    yield stack
    assert stack.stop() == 0, stack.log_tail()


@pytest.fixture(autouse=True)
def fresh_data(stack):
    stack.reset_data()


def action_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.env['PAYBOT_ACTION_PORT']}/webhook"


def forged_call(action: str = "action_complete_payment") -> dict:
    sender = "chat:" + uuid.uuid4().hex[:12]
    return {
        "next_action": action,
        "sender_id": sender,
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": sender,
            "slots": FORGED_SLOTS,
            "latest_message": {"text": "yes", "intent": {"name": "affirm"}, "entities": []},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "payment_form",
        },
    }


def test_a_forged_tracker_without_the_secret_is_refused_and_charges_nothing(stack):
    for headers in ({}, {"X-Paybot-Action-Secret": "wrong"},
                    {"X-Paybot-Action-Secret": ACTION_SECRET[:-1]}):
        response = requests.post(action_url(stack), json=forged_call(), headers=headers,
                                 timeout=30)
        assert response.status_code in (401, 403), (headers, response.text)
        assert "messages" not in response.text
    listing = requests.get(action_url(stack).replace("/webhook", "/actions"), timeout=30)
    assert listing.status_code in (401, 403)
    assert rows(stack.engine, Payment) == []


def test_with_the_secret_rasas_own_calls_still_work(stack):
    """Rasa sends the secret from endpoints.yml: a whole stored-card payment goes through."""
    call = Conversation(stack, "voice", JAMES)
    call.start_call()
    call.say("94107")  # the second factor
    call.say("yes")  # the full balance
    call.say("yes please")  # the card on file
    done = call.say("yes")
    assert "was successful" in done.text, done.text
    [payment] = rows(stack.engine, Payment)
    assert payment.status == "succeeded"


def _descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = [int(c) for c in children]
    for child in list(found):
        found += _descendants(child)
    return found


def _secret_env(pid: int, name: str) -> str | None:
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        key, _, value = item.decode(errors="replace").partition("=")
        if key == name:
            return value
    return None


def test_no_secret_is_on_a_command_line(stack):
    assert stack.process is not None
    pids = [stack.process.pid, *_descendants(stack.process.pid)]
    assert len(pids) >= 4, pids  # paybot up, Rasa, the action server, the bridge
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        for secret in (RASA_TOKEN, ACTION_SECRET):
            assert secret not in cmdline, f"pid {pid}: {cmdline}"


def _listening(port: int) -> set[str]:
    """The local addresses something listens on at ``port`` (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_rasa_and_the_action_server_listen_on_loopback_only(stack):
    loopback = {"0100007F"}  # 127.0.0.1 in /proc/net/tcp's byte order
    for name in ("PAYBOT_RASA_PORT", "PAYBOT_ACTION_PORT"):
        addresses = _listening(int(stack.env[name]))
        assert addresses and addresses <= loopback, (name, addresses)
    assert _listening(int(stack.env["PAYBOT_BRIDGE_PORT"])) == {"00000000"}  # PAYBOT_HOST


def test_rasa_and_the_action_server_outlast_their_clients_keep_alive(stack):
    """An idle keep-alive connection stays open longer than the clients (aiohttp: 15 s) keep
    it for reuse, so a request never races the server closing it (before, Sanic closed after
    5 s; under load Rasa's call to the action server then failed with "Can not write request
    body" and the customer got an empty reply)."""
    from concurrent.futures import ThreadPoolExecutor

    probes = [("PAYBOT_RASA_PORT", "/"), ("PAYBOT_ACTION_PORT", "/health")]
    with ThreadPoolExecutor(len(probes)) as pool:
        answers = list(pool.map(lambda p: _idle_then_again(int(stack.env[p[0]]), p[1], 16.0),
                                probes))
    assert answers == [(True, True)] * len(probes)


def _idle_then_again(port: int, path: str, idle_s: float) -> tuple[bool, bool]:
    """Two GETs on one connection, ``idle_s`` apart: was each answered?"""
    import socket
    import time

    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        answered = []
        for pause in (0.0, idle_s):
            time.sleep(pause)
            try:
                sock.sendall(request.encode())
                answered.append(sock.recv(65536).startswith(b"HTTP/1.1 200"))
            except OSError:
                answered.append(False)
        return answered[0], answered[1]


# --- `/ /affirm`: user text never reaches Rasa's intent syntax -------------------------------

_SLASHES = ("/", "/", "/", "／", "∕", "⁄")
_SPACES = (" ", "  ", "\t", "\u200b", "\u00a0", "\u3000", "\u2028", "\ufeff", "")
_PREFIXES = ("EXTERNAL:", "external :", "EXTERNAL: ", "")
_PAYLOADS = ("affirm", 'inform{"payment_amount": "0.01"}', "deny", 'inform{"zip": "94107"}',
             "affirm@1.0", "stop")


def intent_syntax_inputs(rng: random.Random, count: int) -> list[str]:
    texts = ["/ /affirm", '/ /inform{"payment_amount": "0.01"}', "//affirm", "/\t/affirm",
             "EXTERNAL: /affirm", "/EXTERNAL: /affirm", "/ EXTERNAL:/ /affirm"]
    while len(texts) < count:
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(rng.choice(_SPACES))
            parts.append(rng.choice(_SLASHES + _PREFIXES))
        texts.append("".join(parts) + rng.choice(_SPACES) + "/" + rng.choice(_PAYLOADS))
    return texts


def test_slashes_spaces_and_prefixes_never_make_an_intent(stack):
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    chat = Conversation(stack, "chat")  # nobody identified: no payment whatever NLU hears
    chat.say("hi")
    for text in intent_syntax_inputs(rng, 40):
        chat.say(text)
        # The message as Rasa parsed it (its user event: a fallback reverts the message, which
        # empties the tracker's latest_message but keeps the event).
        events = chat.tracker(include_events="ALL")["events"]
        latest = next(e for e in reversed(events) if e.get("event") == "user")
        latest = {**latest.get("parse_data", {}), "text": latest.get("text")}
        ranking = latest.get("intent_ranking") or []
        by_syntax = [e for e in latest.get("entities", [])
                     if e.get("extractor") == "RegexMessageHandler"]
        assert not latest["text"].lstrip().startswith("/"), (seed, text, latest["text"])
        assert not by_syntax, (seed, text, by_syntax)
        assert not (len(ranking) == 1 and ranking[0].get("confidence") == 1.0), (
            f"seed {seed}: {text!r} was parsed as an intent: {latest['intent']}"
        )
    assert rows(stack.engine, Payment) == []


# --- nothing secret and no card number in any process's output -------------------------------


def _signed_sms(stack: Stack, message_sid: str, body: str) -> requests.Response:
    """A text message as Twilio posts it to the bridge (signed with the dev auth token)."""
    params = {"MessageSid": message_sid, "From": "+15555550100", "To": "+15555550000",
              "Body": body}
    signature = RequestValidator(DEV_TWILIO_AUTH_TOKEN).compute_signature(
        stack.bridge_url + "/twilio/sms", params)
    return requests.post(stack.bridge_url + "/twilio/sms", data=params,
                         headers={"X-Twilio-Signature": signature}, timeout=60)


def test_logs_mask_card_numbers_and_secrets(stack):
    """Each process logs card numbers (the action server, Rasa, the bridge) and the token
    (Rasa's access log); the output shows neither."""
    sms_status = []
    for form in CARD_FORMS:
        sms_status.append(_signed_sms(stack, f"SM-{form}", "hi").status_code)  # "sms SM-..."
        requests.post(f"{stack.rasa_url}/webhooks/rest/webhook",  # Rasa logs the text
                      json={"sender": "chat:" + uuid.uuid4().hex[:8], "message": form},
                      timeout=60).raise_for_status()
        call = forged_call(action=f"action_{form}")  # "No registered action found for name"
        response = requests.post(action_url(stack), json=call,
                                 headers={"X-Paybot-Action-Secret": ACTION_SECRET}, timeout=30)
        assert response.status_code == 404
        sender = "chat:" + form.replace(" ", "_")
        requests.get(f"{stack.rasa_url}/conversations/{sender}/tracker",
                     params={"token": RASA_TOKEN}, timeout=30).raise_for_status()
    marker = "end-of-log-test-" + uuid.uuid4().hex[:8]
    requests.get(f"{stack.rasa_url}/conversations/{marker}/tracker",
                 params={"token": RASA_TOKEN}, timeout=30).raise_for_status()
    out = stack.wait_for_output(marker, "action_[redacted", timeout_s=20)
    assert marker in out and "No registered action found" in out, stack.log_tail()
    for prefix in ("[actions]", "[rasa]", "[bridge]"):  # each process logged them, masked
        masked = [line for line in out.splitlines()
                  if line.startswith(prefix) and "[redacted …4242]" in line]
        assert masked, f"no masked card number in the {prefix} output"
    assert "token=[secret]" in out  # Sanic's access log of the tracker requests
    assert set(sms_status) == {200}
    for line in out.splitlines():
        for run in _DIGIT_RUN.finditer(line):
            digits = re.sub(r"\D", "", run.group(0))
            assert "4242424242424242" not in digits and "4000056655665556" not in digits, line
    for form in CARD_FORMS:
        assert form not in out, form
        assert form.replace(" ", "_") not in out, form
    assert RASA_TOKEN not in out
    assert ACTION_SECRET not in out
    assert json.dumps(ACTION_SECRET) not in out
