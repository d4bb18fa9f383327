"""Worker threads that run the most urgent job first: speech synthesis for many calls at once.

With ten calls on two cores, synthesis requests queue. A first-come pool would make the caller
who just stopped speaking wait behind other calls' look-ahead sentences, which are not needed
for seconds yet. :class:`UrgentPool` orders jobs by a deadline (the loop clock, seconds) that
the submitter chooses: "now" for the first piece of a reply, when the queued audio runs out for
a piece further ahead, ``math.inf`` for the start-up cache warm-up. Equal deadlines run in
submission order.

A pool can also run at a lower CPU priority (``nice``): its threads then only get the cores
when the bridge's own urgent work leaves them idle. The bridge runs work that no caller is
waiting for yet (the start-up warm-up, a reply synthesised ahead) in such a pool, so on a busy
machine it never slows down the reply a caller is waiting for.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)


class UrgentPool:
    """``threads`` daemon workers taking jobs by earliest deadline.

    Args:
        threads: How many jobs run at once.
        name: Thread name prefix, for profilers and thread dumps.
        nice: How much lower than the process the workers' CPU priority is (0: the same;
            10: they get about a tenth of a core that normal threads also want). Linux sets
            it per thread; elsewhere it is ignored.
    """

    def __init__(self, threads: int, name: str = "urgent", nice: int = 0) -> None:
        self.nice = nice
        self._heap: list[tuple[float, int, Future[Any], Callable[..., Any], tuple[Any, ...]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, deadline: float, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(*args)``; it runs before every queued job with a later deadline.

        Raises:
            RuntimeError: The pool was shut down.
        """
        future: Future[Any] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            heapq.heappush(self._heap, (deadline, next(self._order), future, fn, args))
            self._ready.notify()
        return future

    def queued(self) -> int:
        with self._ready:
            return len(self._heap)

    def shutdown(self) -> None:
        """Cancel what has not started; running jobs finish in their threads."""
        with self._ready:
            self._closed = True
            for _deadline, _n, future, _fn, _args in self._heap:
                future.cancel()
            self._heap.clear()
            self._ready.notify_all()

    def _work(self) -> None:
        if self.nice:
            _lower_priority(self.nice)
        while True:
            with self._ready:
                while not self._heap and not self._closed:
                    self._ready.wait()
                if not self._heap:
                    return
                _deadline, _n, future, fn, args = heapq.heappop(self._heap)
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued (the caller hung up, a barge-in)
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting coroutine
                future.set_exception(exc)
            else:
                future.set_result(result)


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (Linux: per thread)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: run as we are
        log.debug("thread priority not lowered (%s)", type(exc).__name__)
