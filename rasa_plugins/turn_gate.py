"""At most a few conversation turns inside Rasa's message processor at once; the others wait
their turn in the order they came (``PAYBOT_RASA_TURNS_AT_ONCE``, 0 for no limit).

Rasa handles every turn on one event loop. A turn's CPU work (the NLU pipeline, the policies)
runs in slices between its awaits (the action server's answers, the tracker store), and with
many conversations at once the slices of all of them interleave: every turn takes as long as
all the work in flight, so a turn's latency grows with how many others are running, and a
heavy turn behind many light ones is the slowest of all. Letting only a few turns in at a time
(enough to keep Rasa busy while one waits for the action server) and the rest in arrival order
gives the same throughput with each turn's wait bounded by the turns before it: the slowest
replies come in nearer the average (``bench/bench_conversation.py``, docs/benchmarks.md).

The gate is inside Rasa's per-conversation lock (around ``MessageProcessor.handle_message``
and ``trigger_external_user_uttered``, the turns of the REST channel and of the bridge's
system events), so a conversation's queued messages hold no place while they wait for their
own conversation.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from typing import Any

ENV = "PAYBOT_RASA_TURNS_AT_ONCE"


class TurnGate:
    """A first-come-first-served gate of ``places`` places for the coroutines of one event
    loop. asyncio's semaphore (Python 3.10.9 and later) hands a freed place to the longest
    waiter, lets no newcomer overtake one, and passes on the place of a waiter cancelled just
    as it got it (``tests/test_turn_gate.py`` checks all three)."""

    def __init__(self, places: int) -> None:
        if places < 1:
            raise ValueError("a gate needs at least one place")
        self.places = places
        self.inside = 0
        self.waiting = 0
        self._places = asyncio.Semaphore(places)

    async def __aenter__(self) -> None:
        self.waiting += 1
        try:
            await self._places.acquire()
        finally:
            self.waiting -= 1
        self.inside += 1

    async def __aexit__(self, *_exc: object) -> None:
        self.inside -= 1
        self._places.release()


def places_from_env(environ: dict[str, str] | None = None) -> int:
    """The gate's size from :data:`ENV` (unset or 0: no gate)."""
    raw = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not raw:
        return 0
    try:
        places = int(raw)
    except ValueError:
        raise ValueError(f"{ENV} must be a whole number, not {raw!r}") from None
    if places < 0:
        raise ValueError(f"{ENV} must be 0 (no limit) or more, not {places}")
    return places


def _gated(method: Callable[..., Any], gate: TurnGate) -> Callable[..., Any]:
    @functools.wraps(method)
    async def gated(*args: Any, **kwargs: Any) -> Any:
        async with gate:
            return await method(*args, **kwargs)

    gated.turn_gate = gate  # type: ignore[attr-defined]
    return gated


def install(places: int) -> TurnGate | None:
    """Put a gate of ``places`` places around Rasa's turns (none for 0). Once per process:
    a second call keeps the first gate."""
    from rasa.core.processor import MessageProcessor

    current = getattr(MessageProcessor.handle_message, "turn_gate", None)
    if current is not None or places == 0:
        return current
    gate = TurnGate(places)
    for name in ("handle_message", "trigger_external_user_uttered"):
        setattr(MessageProcessor, name, _gated(getattr(MessageProcessor, name), gate))
    return gate
