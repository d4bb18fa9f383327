"""The capture door's clock: a field's silence timeout counts from when the caller has heard
its question, however long the question took to synthesise and play.

The door runs a real :class:`CaptureSession` (the built-in payment profile: 15 s to start a
field, 5 s between keys). The call's voice is a fake ``say`` that records each reply and lets
the test decide when its end mark is echoed (``door.prompt_played``), as the call handler does
when Twilio echoes it; the clock is the test's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

from paybot.dialog.payloads import SecureCapture
from paybot.payments.profile import PaymentProfile
from paybot.settings import Settings
from voice_bridge.secure_capture.door import PROMPT_HOLD_MAX_S, CaptureDoor

TIMEOUTS = PaymentProfile().timeouts
START_S, BETWEEN_S = TIMEOUTS.field_start_s, TIMEOUTS.inter_digit_s
VISA = "4242424242424242"


class Line:
    """The door's caller: a clock, the replies said, and the door under test."""

    def __init__(self) -> None:
        self.now = 0.0
        self.replies: list[str] = []
        runtime = SimpleNamespace(settings=Settings(), engine=None, ledger=None)
        self.door = CaptureDoor(runtime, "CAtest", "call:CAtest")  # type: ignore[arg-type]

    async def say(self, text: str) -> None:
        self.replies.append(text)

    def clock(self) -> float:
        return self.now

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async def advance(self, seconds: float, step: float = 0.25) -> None:
        """Let ``seconds`` pass, ticking the door every ``step`` as the handler does."""
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            self.door.tick(self.now)
            await self.settle()

    async def press(self, keys: str) -> None:
        for key in keys:
            self.door.key(key, self.now)
            await self.settle()

    def heard(self) -> None:
        self.door.prompt_played(self.now)


def instruction() -> SecureCapture:
    return SecureCapture("card", "100200300", "10.00", "USD", "door-test")


async def started(line: Line) -> asyncio.Task[str]:
    task = asyncio.ensure_future(line.door.run(instruction(), line.say, line.clock))
    await line.settle()
    assert len(line.replies) == 1 and "card number" in line.replies[0]
    return task


def on_a_line(body: Callable[[Line], Awaitable[None]]) -> None:
    """Start a capture (its first question said), run ``body`` on the line, stop it."""

    async def scenario() -> None:
        line = Line()
        task = await started(line)
        try:
            await body(line)
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_the_silence_timeout_waits_for_the_question_to_be_heard():
    async def body(line: Line) -> None:
        await line.advance(START_S + 10)  # synthesis and playback on a busy machine
        assert len(line.replies) == 1, line.replies  # no "I didn't get the card number" yet
        line.heard()
        await line.advance(START_S - 1)
        assert len(line.replies) == 1
        await line.advance(1.5)
        assert len(line.replies) == 2 and "didn't get the card number" in line.replies[1]

    on_a_line(body)


def test_the_prompts_of_one_step_are_one_reply():
    async def body(line: Line) -> None:
        line.heard()
        await line.press("4242424242424241#")  # Luhn fails: "doesn't look right", then ask again
        assert len(line.replies) == 2, line.replies
        assert "doesn't look right" in line.replies[1] and "card number" in line.replies[1]

    on_a_line(body)


def test_a_key_over_the_prompt_lets_the_clock_run():
    async def body(line: Line) -> None:
        await line.press("4242")  # over the question: no end mark will come for it
        await line.advance(BETWEEN_S + 0.5)  # too short for a card number: a failed attempt
        assert len(line.replies) == 2 and "card number" in line.replies[1], line.replies

    on_a_line(body)


def test_a_prompt_never_echoed_holds_the_clock_only_so_long():
    async def body(line: Line) -> None:
        await line.advance(PROMPT_HOLD_MAX_S - 1)
        assert len(line.replies) == 1
        await line.advance(1 + START_S + 0.5)  # the hold given up, then a field's time
        assert len(line.replies) == 2, line.replies

    on_a_line(body)


def test_seeded_walks_never_time_out_a_caller_before_they_had_their_time():
    """Seeded random walks: each question takes 0-25 s to synthesise and play (a busy machine),
    callers answer after random pauses, some too long, some stall mid-entry, some key over the
    question. A reply the caller did not cause by a key (a timeout's) never comes while a
    question is being said, nor sooner than the field's time after the question was heard or
    the time between keys after the last key."""
    timeouts = [asyncio.run(_walk(random.Random(seed), seed)) for seed in range(60)]
    assert sum(timeouts) >= 20, timeouts  # the walks did time callers out, when they should


async def _walk(rng: random.Random, seed: int) -> int:
    """One caller's walk; returns how many timeouts the capture said."""
    line = Line()
    said_at: list[float] = []

    async def say(text: str) -> None:
        line.replies.append(text)
        said_at.append(line.now)

    task = asyncio.ensure_future(line.door.run(instruction(), say, line.clock))
    await line.settle()
    entries, done = [VISA + "#", "1230", "123", "60601"], 0
    timeouts = 0
    for _ in range(40):
        if task.done():
            break
        count = len(line.replies)
        if rng.random() < 0.2:  # keys over the question: no end mark comes for it
            await line.advance(rng.uniform(0.0, 2.0))
        else:
            await line.advance(rng.uniform(0.0, 25.0))
            assert len(line.replies) == count, (seed, "a timeout while the question was said")
            line.heard()
            heard_at = line.now
            await line.advance(rng.choice([0.5, 3.0, START_S - 1, START_S + 2]))
            if len(line.replies) > count:
                assert said_at[-1] - heard_at >= START_S, seed
                timeouts += 1
                continue
        entry = entries[done] if done < len(entries) else "9"
        stall = rng.random() < 0.2
        completed = True
        for n, key in enumerate(entry):
            await line.press(key)
            keyed_at = line.now
            if len(line.replies) > count:
                break  # the key ended the field (or the capture)
            gap = BETWEEN_S + 1 if stall and n == len(entry) // 2 else rng.uniform(0.1, 0.4)
            await line.advance(gap)
            if len(line.replies) > count:  # the keys stopped too long: timed out
                assert said_at[-1] - keyed_at >= BETWEEN_S, seed
                completed = False
                timeouts += 1
                break
        done += completed
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return timeouts
