"""Draining the bridge on SIGTERM: no new calls, live ones finish, then exit.

:class:`Drain` counts the calls this bridge carries: each live Media Stream, and each call
handed to Twilio's ``<Pay>`` (its stream ended, but Twilio brings the call back here with a new
stream) until that stream starts or Twilio reports the call over. :func:`serve` runs the app:

* SIGTERM starts the drain: ``/healthz`` answers 503 ``{"status": "draining"}`` (a load
  balancer stops sending calls), the voice webhook answers a new call with a short apology
  and ``<Hangup/>``, and a Media Stream for a call answered after the drain began is closed
  with 1013 (try again later); streams of calls answered before, and calls coming back from
  ``<Pay>``, are admitted. The process exits once no call is left, or after
  ``PAYBOT_DRAIN_TIMEOUT_S`` (the calls still live then are cut, as a stop would).
* SIGINT stops at once (during a drain too), cutting live calls after
  :data:`SHUTDOWN_TIMEOUT_S`; a second SIGTERM changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web

from paybot import metrics
from paybot.settings import Settings

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 5.0  # open requests' time to finish once the bridge stops
TOKEN_CLOCK_S = 1.0  # a stream token's times are whole seconds (rounded up)
AWAY_MAX_S = 900.0  # a call at <Pay> longer than this is not waited for any more


@dataclass
class Drain:
    """The calls on this bridge and whether it is draining."""

    timeout_s: float
    began_at: float | None = None  # time.time() when the drain began
    _live: dict[str, int] = field(default_factory=dict)  # CallSid: its live streams
    _away: dict[str, float] = field(default_factory=dict)  # CallSid at <Pay>: since when
    _answering: dict[str, float] = field(default_factory=dict)  # CallSid: stream due by when
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def draining(self) -> bool:
        return self.began_at is not None

    @property
    def calls(self) -> int:
        """Calls the drain waits for: live streams and calls at ``<Pay>``."""
        now = time.monotonic()
        for call_sid, since in list(self._away.items()):
            if now - since > AWAY_MAX_S:
                del self._away[call_sid]
        return len(self._live.keys() | self._away.keys())

    @property
    def carried(self) -> int:
        """Calls this bridge carries: :attr:`calls` and the calls answered whose stream has
        not started yet (until their stream token expires). The drain does not wait for
        those: a call that never streams would hold it up to the token's lifetime."""
        now = time.monotonic()
        for call_sid, due in list(self._answering.items()):
            if now > due:
                del self._answering[call_sid]
        calls = self.calls  # prunes the calls at <Pay> given up on
        return calls + len(self._answering.keys() - self._live.keys() - self._away.keys())

    def full(self, max_calls: int) -> bool:
        """Whether a new call would be one more than ``max_calls`` (0: never full)."""
        return bool(max_calls) and self.carried >= max_calls

    def answered(self, call_sid: str, stream_within_s: float) -> bool:
        """``call_sid`` is being answered here: its stream should start within
        ``stream_within_s`` (its token's lifetime); it counts as carried until then or until
        it starts. False when it was already waiting for its stream (nothing new held)."""
        new = call_sid not in self._answering
        self._answering[call_sid] = time.monotonic() + stream_within_s
        return new

    def not_answered(self, call_sid: str) -> None:
        """The answer of ``call_sid`` failed (or was a repeat): it holds no place any more."""
        self._answering.pop(call_sid, None)

    def begin(self) -> None:
        """Refuse new calls from now on (idempotent)."""
        if self.began_at is None:
            self.began_at = time.time()
            metrics.DRAINING.set(1)
            self._changed.set()

    def admits(self, *, issued_at: float, resuming: bool) -> bool:
        """Whether a Media Stream may start: always, except during a drain for a call answered
        after it began (its stream token ``issued_at``, Unix seconds) that is not coming back
        from ``<Pay>``. Tokens carry their expiry in whole seconds, so "before" allows
        :data:`TOKEN_CLOCK_S` of slack."""
        if self.began_at is None or resuming:
            return True
        return issued_at - TOKEN_CLOCK_S < self.began_at

    @contextlib.contextmanager
    def call(self, call_sid: str) -> Iterator[None]:
        """While a stream of ``call_sid`` runs (it is back from ``<Pay>``, if it was there)."""
        self._away.pop(call_sid, None)
        self._answering.pop(call_sid, None)
        self._live[call_sid] = self._live.get(call_sid, 0) + 1
        self._update()
        try:
            yield
        finally:
            self._live[call_sid] -= 1
            if not self._live[call_sid]:
                del self._live[call_sid]
            self._update()

    def away(self, call_sid: str) -> None:
        """``call_sid`` was handed to ``<Pay>``: it comes back with a new stream."""
        self._away[call_sid] = time.monotonic()
        self._update()

    def ended(self, call_sid: str) -> None:
        """Twilio reports ``call_sid`` over (a status callback): not waited for any more."""
        answering = self._answering.pop(call_sid, None)
        if self._away.pop(call_sid, None) is not None or answering is not None:
            self._update()

    async def wait(self) -> bool:
        """Wait until no call is left (True) or the drain timeout passes (False)."""
        deadline = time.monotonic() + self.timeout_s
        while self.calls:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
        return True

    def _update(self) -> None:
        metrics.ACTIVE_CALLS.set(len(self._live))
        self._changed.set()


DRAIN = web.AppKey("drain", Drain)


def add_drain(app: web.Application, settings: Settings) -> Drain:
    """Give ``app`` its :class:`Drain` (before it starts)."""
    drain = Drain(settings.drain_timeout_s)
    app[DRAIN] = drain
    return drain


async def serve_until_stopped(app: web.Application, host: str, port: int) -> None:
    """Serve ``app`` until SIGINT, or SIGTERM and the drain; then shut down gracefully.
    The signals are handled from the start (a SIGTERM while the models load stops the
    bridge once they are loaded: there is no call to wait for).

    Raises:
        OSError: The address cannot be bound.
    """
    stop = asyncio.Event()
    drain = app[DRAIN]
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def on_term() -> None:
        if drain.draining:
            return
        drain.begin()
        log.info("SIGTERM: draining (calls live: %d), waiting up to %.0fs",
                 drain.calls, drain.timeout_s)
        task = loop.create_task(_drain_then_stop(drain, stop), name="drain")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_int() -> None:
        log.info("SIGINT: stopping now (calls live: %d)", drain.calls)
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_int)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("voice bridge running on http://%s:%d", host, port)
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await runner.cleanup()
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)


async def _drain_then_stop(drain: Drain, stop: asyncio.Event) -> None:
    if await drain.wait():
        log.info("drained: no call left; stopping")
    else:
        log.warning("drain timeout (%.0fs): cutting the calls left (%d)", drain.timeout_s,
                    drain.calls)
    stop.set()
