"""Rasa's turn gate (``rasa_plugins/turn_gate.py``): at most N turns at once, a freed place to
the oldest turn waiting, no place held while a turn waits long on the network, and no place
lost to cancellations, on seeded random crowds of turns and in worked examples."""

from __future__ import annotations

import asyncio
import random

import pytest
from rasa.core.processor import MessageProcessor
from rasa.utils.endpoints import EndpointConfig

from paybot_cli.up import plan
from rasa_plugins import turn_gate
from rasa_plugins.turn_gate import TurnGate, gated_turn, network_wait


class Crowd:
    """Turns through one gate: each alternates work (holding a place) with network waits,
    and records what the gate let it do."""

    def __init__(self, places: int, slow_s: float = 0.001) -> None:
        self.gate = TurnGate(places, slow_s)
        self.entered: list[str] = []  # each time a turn (re)started work
        self.peak = 0
        self.request = network_wait(self._network, self.gate)
        self.turn = gated_turn(self._turn, self.gate)

    async def _network(self, seconds: float) -> None:
        this = turn_gate._CURRENT.get()
        assert this is not None
        await asyncio.sleep(seconds)
        if seconds > 3 * self.gate.slow_s:
            assert not this.holding, "a place held over a slow request"

    async def _turn(self, name: str, steps: list[tuple[float, float]]) -> str:
        for work_s, network_s in steps:
            this = turn_gate._CURRENT.get()
            assert this is not None and this.holding
            assert self.gate.inside <= self.gate.places
            self.peak = max(self.peak, self.gate.inside)
            self.entered.append(name)
            await asyncio.sleep(work_s)  # the turn's work, holding its place
            if network_s:
                await self.request(network_s)
        return name


async def _walk(seed: int) -> None:
    rng = random.Random(seed)
    crowd = Crowd(rng.randint(1, 3))
    tasks: dict[int, asyncio.Task[str]] = {}
    cancelled: set[int] = set()
    for i in range(40):
        steps = [
            (rng.uniform(0, 0.002), rng.choice((0, 0, rng.uniform(0, 0.004))))
            for _ in range(rng.randint(1, 4))
        ]
        tasks[i] = asyncio.create_task(crowd.turn(str(i), steps))
        await asyncio.sleep(rng.choice((0, 0, 0.001, 0.002)))
        if rng.random() < 0.12:
            victim = rng.choice(list(tasks))
            if not tasks[victim].done():
                tasks[victim].cancel()
                cancelled.add(victim)
    results = await asyncio.gather(*tasks.values(), return_exceptions=True)
    gate = crowd.gate
    assert gate.inside == 0 and gate.waiting == 0, "a place was lost or a waiter left behind"
    assert 1 <= crowd.peak <= gate.places
    finished = {r for r in results if isinstance(r, str)}
    assert {str(i) for i in range(40)} - {str(i) for i in cancelled} <= finished
    assert not [
        r for r in results if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)
    ]


@pytest.mark.parametrize("seed", range(12))
async def test_a_random_crowd_keeps_to_the_places_and_loses_none(seed):
    await _walk(seed)


async def test_one_place_finishes_turns_without_network_waits_in_arrival_order():
    crowd = Crowd(1)
    rng = random.Random(5)
    tasks = []
    for i in range(15):
        steps = [(rng.uniform(0, 0.002), 0.0) for _ in range(rng.randint(1, 3))]
        tasks.append(asyncio.create_task(crowd.turn(str(i), steps)))
        await asyncio.sleep(rng.choice((0, 0.0005)))
    finished = []
    for done in asyncio.as_completed(tasks):
        finished.append(await done)
    assert finished == [str(i) for i in range(15)]


async def test_a_quick_request_keeps_the_place():
    crowd = Crowd(1, slow_s=1.0)
    first = asyncio.create_task(crowd.turn("first", [(0, 0.2), (0, 0)]))
    await asyncio.sleep(0.02)  # "first" waits 200 ms on the network, under the 1 s limit
    assert crowd.gate.inside == 1
    second = asyncio.create_task(crowd.turn("second", [(0, 0)]))  # must wait for "first"
    await asyncio.gather(first, second)
    assert crowd.entered == ["first", "first", "second"]


async def test_a_turn_back_from_the_network_goes_before_younger_turns():
    # Times in tenths of a second, so that a loaded machine's lateness does not reorder them.
    crowd = Crowd(1, slow_s=0.02)
    first = asyncio.create_task(crowd.turn("old", [(0, 0.2), (0, 0)]))
    await asyncio.sleep(0.08)  # "old" has waited long on the network: it holds nothing
    assert crowd.gate.inside == 0
    second = asyncio.create_task(crowd.turn("mid", [(0.4, 0)]))  # works 400 ms
    await asyncio.sleep(0.05)
    third = asyncio.create_task(crowd.turn("new", [(0, 0)]))  # arrives while "mid" works
    await asyncio.gather(first, second, third)
    # "old" came back (200 ms) while "mid" worked; when "mid" was done, "old" went before
    # "new", which had waited longer but came later
    assert crowd.entered == ["old", "mid", "old", "new"]


async def test_a_turn_cancelled_after_it_was_handed_the_place_passes_it_on():
    gate = TurnGate(1)
    await gate.enter(gate.ticket())  # someone holds the only place
    doomed = asyncio.create_task(gate.enter(gate.ticket()))
    after = asyncio.create_task(gate.enter(gate.ticket()))
    await asyncio.sleep(0)
    assert gate.waiting == 2
    gate.leave()  # handed to "doomed", which has not run yet...
    doomed.cancel()  # ...and is cancelled before it does
    await asyncio.gather(doomed, return_exceptions=True)
    await after  # the place went on
    assert gate.inside == 1 and gate.waiting == 0
    gate.leave()
    assert gate.inside == 0


@pytest.mark.parametrize(("raw", "places"), [(None, 0), ("", 0), (" 0 ", 0), ("3", 3)])
def test_the_size_comes_from_the_environment(raw, places):
    env = {} if raw is None else {turn_gate.ENV: raw}
    assert turn_gate.places_from_env(env) == places


@pytest.mark.parametrize("raw", ["three", "-1", "2.5"])
def test_a_bad_size_is_refused_with_the_variable_named(raw):
    with pytest.raises(ValueError, match=turn_gate.ENV):
        turn_gate.places_from_env({turn_gate.ENV: raw})


def test_install_gates_both_kinds_of_turn_and_the_network_once(monkeypatch):
    for name in ("handle_message", "trigger_external_user_uttered"):
        monkeypatch.setattr(MessageProcessor, name, getattr(MessageProcessor, name))
    monkeypatch.setattr(EndpointConfig, "request", EndpointConfig.request)
    request = EndpointConfig.request
    assert turn_gate.install(0) is None
    gate = turn_gate.install(3)
    assert gate is not None and gate.places == 3
    assert turn_gate.install(5) is gate  # a second call keeps the first gate
    assert MessageProcessor.trigger_external_user_uttered.turn_gate is gate
    assert EndpointConfig.request is not request and EndpointConfig.request.__wrapped__ is request


def test_paybot_up_hands_rasa_the_size(monkeypatch):
    from pathlib import Path

    from paybot.settings import load_settings
    from paybot_cli.project import Project

    monkeypatch.setenv("PAYBOT_RASA_TURNS_AT_ONCE", "4")
    settings = load_settings(env="test")
    rasa = plan(settings, Project(Path(__file__).resolve().parents[1]))[0]
    assert rasa.env[turn_gate.ENV] == "4"
