"""An agent watches a live phone call in the console, in headless Chromium.

``paybot up`` runs the whole stack; the simulated caller (twilio_sim, as in
tests/test_voice_calls.py) phones the bridge, keys the billing ZIP code and listens to the
greeting. The agent's page, fed by the bridge's event stream, shows the call appear, its step
move on as the bot listens for digits and then for an answer, and the call go when it ends.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from paybot.console.users import add_user
from tests.console_browser import chromium, shot, sign_in
from tests.console_server import PASSWORD
from tests.test_voice_calls import JAMES, FakeTwilio, dial, voice_stack

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def fake_twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_twilio):
    yield from voice_stack(tmp_path_factory, fake_twilio)


def test_an_agent_sees_a_live_call_and_its_step_move_on(stack, fake_twilio):
    stack.reset_data()
    add_user(stack.engine, "agent", "agent", PASSWORD)
    phone = dial(stack, fake_twilio, JAMES)
    finished = threading.Event()
    errors: list[BaseException] = []

    async def call() -> None:
        async with phone:
            await phone.wait_bot()  # welcome; the billing ZIP code, please
            await asyncio.sleep(1.5)  # the agent sees it listening for digits
            await phone.press("94107#")
            await phone.wait_bot()  # the greeting: ready to pay $321.72?
            await asyncio.sleep(1.5)
            await phone.hangup()

    def place() -> None:
        try:
            asyncio.run(asyncio.wait_for(call(), 180))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            finished.set()

    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, stack.bridge_url, "agent", PASSWORD)
        assert page.url.endswith("/console/calls")
        caller = threading.Thread(target=place, name="caller", daemon=True)
        caller.start()
        row = page.locator(f'tr[data-call-sid="{phone.call_sid}"]')
        row.wait_for(timeout=60_000)
        shot(page, "live-call")
        steps: list[str] = []
        while not finished.is_set():
            if row.count():
                step = row.locator(".step").inner_text()
                if not steps or steps[-1] != step:
                    steps.append(step)
                    if step.startswith("listening"):
                        shot(page, "live-call-" + step.replace(": ", "-"))
            time.sleep(0.1)
        caller.join(10)
        assert not errors, errors
        page.locator(f'tr[data-call-sid="{phone.call_sid}"]').wait_for(
            state="detached", timeout=20_000
        )
        assert page.locator("#no-calls").is_visible()
    listening = [s for s in steps if s.startswith("listening")]
    assert "listening: digits" in listening, steps
    assert len(set(steps)) >= 3 and listening[-1] != "listening: digits", steps
    assert "94107" not in " ".join(steps)
