"""Rasa's turn gate (``rasa_plugins/turn_gate.py``): at most N turns inside at once, the rest
let in strictly in arrival order, cancelled waiters and cancelled holders losing no place."""

from __future__ import annotations

import asyncio
import random

import pytest
from rasa.core.processor import MessageProcessor

from paybot_cli.up import plan
from rasa_plugins import turn_gate
from rasa_plugins.turn_gate import TurnGate


async def _walk(seed: int) -> None:
    """Seeded random arrivals, hold times and cancellations through one gate, checked
    against what a first-come-first-served gate must do."""
    rng = random.Random(seed)
    gate = TurnGate(rng.randint(1, 4))
    entered: list[int] = []
    queued: list[int] = []  # arrival order of those who had to wait
    peak = 0

    async def turn(i: int, hold_s: float) -> None:
        nonlocal peak
        if gate.inside >= gate.places or gate.waiting:
            queued.append(i)
        async with gate:
            entered.append(i)
            peak = max(peak, gate.inside)
            assert gate.inside <= gate.places
            await asyncio.sleep(hold_s)

    tasks: dict[int, asyncio.Task[None]] = {}
    cancelled: set[int] = set()
    for i in range(60):
        tasks[i] = asyncio.create_task(turn(i, rng.uniform(0, 0.004)))
        await asyncio.sleep(rng.choice((0, 0, 0.001, 0.002)))
        if rng.random() < 0.15:
            victim = rng.choice(list(tasks))
            if not tasks[victim].done():
                tasks[victim].cancel()
                cancelled.add(victim)
    await asyncio.gather(*tasks.values(), return_exceptions=True)

    assert gate.inside == 0 and gate.waiting == 0, "a place was lost or a waiter left behind"
    assert 1 <= peak <= gate.places
    # Those who waited went in in the order they came (the cancelled may not have gone in).
    waited_in = [i for i in entered if i in queued]
    assert waited_in == [i for i in queued if i in waited_in]
    # Everyone not cancelled went in.
    assert set(range(60)) - cancelled <= set(entered)


@pytest.mark.parametrize("seed", range(12))
async def test_a_random_crowd_goes_in_first_come_first_served_and_loses_no_place(seed):
    await _walk(seed)


async def test_no_one_overtakes_a_waiter_when_a_place_frees():
    gate = TurnGate(1)
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with gate:
            order.append("holder")
            await release.wait()

    async def named(name: str) -> None:
        async with gate:
            order.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(named("waiter"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0)  # the holder leaves and hands its place to the waiter...
    late = asyncio.create_task(named("late"))  # ...before the waiter has run again
    await asyncio.gather(first, waiter, late)
    assert order == ["holder", "waiter", "late"]


async def test_a_waiter_cancelled_after_it_was_handed_the_place_passes_it_on():
    gate = TurnGate(1)
    release = asyncio.Event()
    went_in: list[str] = []

    async def holder() -> None:
        async with gate:
            await release.wait()

    async def named(name: str) -> None:
        async with gate:
            went_in.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    doomed = asyncio.create_task(named("doomed"))
    after = asyncio.create_task(named("after"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0)  # the holder leaves, handing its place to "doomed"...
    assert first.done() and not doomed.done()
    doomed.cancel()  # ...which is cancelled before it runs again
    await asyncio.gather(doomed, after, return_exceptions=True)
    assert went_in == ["after"]
    assert gate.inside == 0 and gate.waiting == 0


@pytest.mark.parametrize(("raw", "places"), [(None, 0), ("", 0), (" 0 ", 0), ("3", 3)])
def test_the_size_comes_from_the_environment(raw, places):
    env = {} if raw is None else {turn_gate.ENV: raw}
    assert turn_gate.places_from_env(env) == places


@pytest.mark.parametrize("raw", ["three", "-1", "2.5"])
def test_a_bad_size_is_refused_with_the_variable_named(raw):
    with pytest.raises(ValueError, match=turn_gate.ENV):
        turn_gate.places_from_env({turn_gate.ENV: raw})


def test_install_gates_both_kinds_of_turn_once(monkeypatch):
    for name in ("handle_message", "trigger_external_user_uttered"):
        monkeypatch.setattr(MessageProcessor, name, getattr(MessageProcessor, name))
    assert turn_gate.install(0) is None
    gate = turn_gate.install(3)
    assert gate is not None and gate.places == 3
    assert turn_gate.install(5) is gate  # a second call keeps the first gate
    assert MessageProcessor.trigger_external_user_uttered.turn_gate is gate


def test_paybot_up_hands_rasa_the_size(monkeypatch):
    from pathlib import Path

    from paybot.settings import load_settings
    from paybot_cli.project import Project

    monkeypatch.setenv("PAYBOT_RASA_TURNS_AT_ONCE", "4")
    settings = load_settings(env="test")
    rasa = plan(settings, Project(Path(__file__).resolve().parents[1]))[0]
    assert rasa.env[turn_gate.ENV] == "4"
