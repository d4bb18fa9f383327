"""Conversation turns through Rasa a few at a time, the oldest turn first
(``PAYBOT_RASA_TURNS_AT_ONCE``: how many at once; 0 for Rasa's own way, all at once).

Rasa handles every turn on one event loop. A turn's CPU work (the NLU pipeline, the policies)
runs in slices between its awaits (above all the action server's answers), and with many
conversations at once the slices of all of them interleave, in Rasa and in the action server:
each turn takes about as long as all the work in flight, so the slowest replies take about
twice the average.

The gate lets a turn in only while it holds one of a few places, and gives a freed place to
the *oldest* turn waiting, counted from when it entered Rasa's message processor. A turn keeps
its place over the action server's usual quick answers; one whose request
(``EndpointConfig.request``) takes longer than :data:`SLOW_S` (a payment gateway behind the
action server) gives its place back until the answer comes, so it holds up no one else, and
takes it back ahead of younger turns. The machine does the same work in about the same time;
the replies come in nearer the average (``bench/bench_conversation.py --turns-at-once``,
docs/benchmarks.md).

The gate is inside Rasa's per-conversation lock (around ``MessageProcessor.handle_message`` and
``trigger_external_user_uttered``: the REST channel's messages and the bridge's system events),
so a conversation's queued messages hold no place while they wait for their own conversation.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import os
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

ENV = "PAYBOT_RASA_TURNS_AT_ONCE"
# A turn waiting on the network longer than this lets another turn in meanwhile: the action
# server answers in milliseconds, a payment gateway behind it can take seconds.
SLOW_S = 0.25


@dataclass
class _Turn:
    ticket: int  # arrival order: the lower, the sooner it gets a place
    holding: bool = False


_CURRENT: ContextVar[_Turn | None] = ContextVar("paybot_rasa_turn", default=None)


class TurnGate:
    """``places`` places for the turns of one event loop; a freed place goes to the waiting
    turn with the lowest ticket. A turn cancelled while waiting leaves the queue, or passes on
    the place it was handed just before."""

    def __init__(self, places: int, slow_s: float = SLOW_S) -> None:
        if places < 1:
            raise ValueError("a gate needs at least one place")
        self.places = places
        self.slow_s = slow_s
        self.inside = 0
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._tickets = itertools.count()

    def ticket(self) -> int:
        return next(self._tickets)

    @property
    def waiting(self) -> int:
        return sum(1 for _, fut in self._waiting if not fut.done())

    async def enter(self, ticket: int) -> None:
        if self.inside < self.places:  # a free place means no one is waiting
            self.inside += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (ticket, fut))
        try:
            await fut  # the place is handed over: ``inside`` already counts it
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.leave()  # handed a place, then cancelled: pass it on
            else:
                fut.cancel()  # stays in the heap, skipped when its turn comes
            raise

    def leave(self) -> None:
        while self._waiting:
            _, fut = heapq.heappop(self._waiting)
            if not fut.done():
                fut.set_result(None)
                return
        self.inside -= 1


def places_from_env(environ: dict[str, str] | None = None) -> int:
    """The number of places from :data:`ENV` (unset or 0: no gate)."""
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


def gated_turn(method: Callable[..., Awaitable[Any]], gate: TurnGate) -> Callable[..., Any]:
    """``method`` (a whole turn) run holding a place of ``gate``, except while it waits long
    on the network (:func:`network_wait`)."""

    @functools.wraps(method)
    async def turn(*args: Any, **kwargs: Any) -> Any:
        this = _Turn(gate.ticket())
        token = _CURRENT.set(this)
        try:
            await gate.enter(this.ticket)
            this.holding = True
            return await method(*args, **kwargs)
        finally:
            if this.holding:
                this.holding = False
                gate.leave()
            _CURRENT.reset(token)

    turn.turn_gate = gate  # type: ignore[attr-defined]
    return turn


def network_wait(method: Callable[..., Awaitable[Any]], gate: TurnGate) -> Callable[..., Any]:
    """``method`` (a request over the network) run keeping the current turn's place, unless it
    takes longer than the gate's ``slow_s``: then the place is given back until the answer
    comes, and taken back ahead of younger turns."""

    @functools.wraps(method)
    async def request(*args: Any, **kwargs: Any) -> Any:
        this = _CURRENT.get()
        if this is None or not this.holding:
            return await method(*args, **kwargs)
        call = asyncio.ensure_future(method(*args, **kwargs))
        try:
            done, _ = await asyncio.wait({call}, timeout=gate.slow_s)
        except asyncio.CancelledError:
            call.cancel()
            raise
        if done:
            return call.result()
        this.holding = False
        gate.leave()
        try:
            return await call
        finally:
            await gate.enter(this.ticket)
            this.holding = True

    return request


def install(places: int) -> TurnGate | None:
    """Put a gate of ``places`` places around Rasa's turns (none for 0). Once per process:
    a second call keeps the first gate."""
    from rasa.core.processor import MessageProcessor
    from rasa.utils.endpoints import EndpointConfig

    current = getattr(MessageProcessor.handle_message, "turn_gate", None)
    if current is not None or places == 0:
        return current
    gate = TurnGate(places)
    for name in ("handle_message", "trigger_external_user_uttered"):
        setattr(MessageProcessor, name, gated_turn(getattr(MessageProcessor, name), gate))
    EndpointConfig.request = network_wait(EndpointConfig.request, gate)  # type: ignore[method-assign]
    return gate
