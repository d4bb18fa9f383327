"""An agent watches live phone calls in the console, in headless Chromium.

``paybot up`` runs the whole stack; the simulated caller (twilio_sim, as in
tests/test_voice_calls.py) phones the bridge. The agent's page, fed by the bridge's event
stream, shows the call appear, its step move on (listening for digits, then for a yes or no;
a secure capture field by field) and the call go when it ends. Of a keyed card the page shows
the brand and the last four, never the number.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from sqlmodel import Session, select

from paybot.console.reports import ReportRange, report
from paybot.console.users import add_user
from paybot.db.models import AuditEvent, Payment, PaymentStatus
from paybot.db.types import utcnow
from tests.console_browser import chromium, shot, sign_in
from tests.console_server import PASSWORD
from tests.helpers import rows
from tests.stack import wait_until
from tests.test_voice_calls import (
    JAMES,
    ROBERT,
    SECURITY_CODE,
    TEST_CARD,
    FakeTwilio,
    _to_capture,
    dial,
    voice_stack,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def fake_twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_twilio):
    yield from voice_stack(tmp_path_factory, fake_twilio)


@dataclass
class Watched:
    """What the agent's page showed of one call, change by change."""

    steps: list[str] = field(default_factory=list)
    captures: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    call_sid: str = ""


def watch(stack, fake_twilio, caller: str, script: Callable[[object], Awaitable[None]],
          name: str) -> Watched:
    """Place a call running ``script`` while an agent's page watches it; return what it saw."""
    stack.reset_data()
    add_user(stack.engine, "agent", "agent", PASSWORD)
    phone = dial(stack, fake_twilio, caller)
    finished = threading.Event()
    errors: list[BaseException] = []

    async def call() -> None:
        async with phone:
            await script(phone)

    def place() -> None:
        try:
            asyncio.run(asyncio.wait_for(call(), 240))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            finished.set()

    seen = Watched(call_sid=phone.call_sid)
    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, stack.bridge_url, "agent", PASSWORD)
        assert page.url.endswith("/console/calls")
        caller_thread = threading.Thread(target=place, name="caller", daemon=True)
        caller_thread.start()
        row = page.locator(f'tr[data-call-sid="{phone.call_sid}"]')
        row.wait_for(timeout=60_000)
        shot(page, f"{name}-live")
        while not finished.is_set():
            if row.count():
                step = row.locator(".step").inner_text()
                capture = row.locator(".capture").inner_text()
                if not seen.steps or seen.steps[-1] != step:
                    seen.steps.append(step)
                    if step.startswith(("listening", "secure capture: confirm")):
                        shot(page, f"{name}-{step.replace(': ', '-').replace(' ', '-')}")
                if capture and (not seen.captures or seen.captures[-1] != capture):
                    seen.captures.append(capture)
                seen.pages.append(page.content())
            time.sleep(0.1)
        caller_thread.join(10)
        assert not errors, errors
        row.wait_for(state="detached", timeout=20_000)
        assert page.locator("#no-calls").is_visible()
    return seen


def test_an_agent_sees_a_live_call_and_its_step_move_on(stack, fake_twilio):
    async def script(phone) -> None:
        await phone.wait_bot()  # welcome; the billing ZIP code, please
        await asyncio.sleep(1.5)  # the agent sees it listening for digits
        await phone.press("94107#")
        await phone.wait_bot()  # the greeting: ready to pay $321.72?
        await asyncio.sleep(1.5)
        await phone.hangup()

    seen = watch(stack, fake_twilio, JAMES, script, "call")
    listening = [s for s in seen.steps if s.startswith("listening")]
    assert "listening: digits" in listening, seen.steps
    assert len(set(seen.steps)) >= 3 and listening[-1] == "listening: yes_no", seen.steps
    assert not any("94107" in html for html in seen.pages)
    # The step the caller left at is kept for the reports' drop-off (paybot/console/reports.py).
    assert wait_until(lambda: _ending(stack, seen.call_sid) is not None, 20)
    ending = _ending(stack, seen.call_sid)
    assert ending.detail["step"] == "listening: yes_no", ending.detail
    assert ending.detail["reason"] == "caller hung up" and ending.detail["turns"] == 1
    assert ending.detail["handle_s"] >= 3
    today = utcnow().date()
    assert report(stack.engine, ReportRange(today, today), "dropoff").rows == [
        ("listening: yes_no", 1, 1)
    ]


def _ending(stack, call_sid: str) -> AuditEvent | None:
    found = select(AuditEvent).where(
        AuditEvent.kind == "call.ended", AuditEvent.conversation_id == f"call:{call_sid}"
    )
    with Session(stack.engine) as session:
        return session.exec(found).first()


def test_the_agent_sees_a_capture_as_brand_and_last_four_only(stack, fake_twilio):
    async def script(phone) -> None:
        await _to_capture(phone)
        await phone.press(TEST_CARD + "#")
        await phone.wait_bot()  # expiry
        await phone.press("1230")
        await phone.wait_bot()  # security code
        await phone.press(SECURITY_CODE)
        await phone.wait_bot()  # ZIP
        await phone.press("60601")
        await phone.wait_bot()  # Mastercard ending 4444, press 1
        await asyncio.sleep(1.0)
        await phone.press("1")
        await phone.wait_bot()  # processing, then the bot's result
        await phone.wait_bot()
        await phone.hangup()

    seen = watch(stack, fake_twilio, ROBERT, script, "capture")
    capture_steps = [s for s in seen.steps if s.startswith("secure capture: ")]
    assert capture_steps[0] == "secure capture: card_number", seen.steps
    assert "secure capture: confirm" in capture_steps, seen.steps
    assert any("mastercard ending 4444" in c for c in seen.captures), seen.captures
    last = max(i for i, s in enumerate(seen.steps) if s.startswith("secure capture"))
    assert seen.steps[last + 1:], seen.steps  # the conversation went on after the capture
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.method_last4 == "4444"
    for html in seen.pages:  # the card number is never on the agent's screen
        assert TEST_CARD not in html and TEST_CARD[-8:] not in html
    for text in seen.steps + seen.captures:  # nor the expiry or the security code
        assert SECURITY_CODE not in text and "1230" not in text, text
