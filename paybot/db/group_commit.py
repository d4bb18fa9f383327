"""Group commit: the write transactions of many threads committed together, one commit for
many.

A caller hands :meth:`GroupCommit.run` a *job*, a function of a session that does its reads
and writes and returns a plain value (never an ORM object: the session's objects are expired
between jobs). One batcher thread takes every job queued by then (up to ``max_batch``), runs
them one after the other in one :func:`~paybot.db.engine.write_scope` transaction, commits, and
only then hands each caller its result. So:

- A caller sees its result only once its writes are committed (durably, as far as the
  database's commit is): what it does next (call the gateway, tell the payer) happens after.
- A job sees the writes of the jobs before it in its batch (one transaction): a read-then-write
  such as "lock the account, sum its open payments, insert one more" stays correct when
  several of one account's payments share a batch.
- If any job of a batch raises (a refusal, a unique-key collision, a deadlock), the whole
  batch is rolled back and every job of it is run again alone, in its own transaction, in the
  same order: a failure fails only its own job, and the others commit as if never batched.
  Jobs therefore must have no effects outside the session (they may run twice, the first run
  rolled back).
- A crash loses only uncommitted batches, whose callers were never answered.

A job submitted from the batcher thread itself (a job that calls code that groups its own
writes) runs at once as part of the job that submitted it, in the same transaction, instead
of waiting for itself.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot.db.engine import write_scope

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = Callable[[Session], Any]
IDLE_EXIT_S = 1.0  # the batcher thread ends after this long without work (restarted lazily)


class GroupCommit:
    """Runs write jobs from many threads in shared transactions (see the module notes)."""

    def __init__(self, engine: Engine, *, max_batch: int = 64, name: str = "writes") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.engine = engine
        self.max_batch = max_batch
        self.name = name
        self._queue: deque[tuple[Job, Future]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._session: Session | None = None  # the batcher's open transaction
        self.batches = 0  # committed shared transactions (for tests and the benchmark)
        self.replays = 0  # batches rolled back and run again job by job

    @property
    def pending(self) -> int:
        """Jobs queued and not yet taken into a batch."""
        with self._cond:
            return len(self._queue)

    def run(self, job: Callable[[Session], T]) -> T:
        """Run ``job`` in a shared transaction; its result once that transaction committed
        (or its exception, from a run of its own)."""
        if threading.current_thread() is self._thread:
            assert self._session is not None
            return job(self._session)
        future: Future = Future()
        with self._cond:
            self._queue.append((job, future))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name=f"group-commit-{self.name}", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return future.result()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(IDLE_EXIT_S)
                if not self._queue:
                    self._thread = None
                    return
                size = min(self.max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(size)]
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[Job, Future]]) -> None:
        if len(batch) > 1:
            try:
                with write_scope(self.engine) as session:
                    self._session = session
                    results = []
                    for job, _ in batch:
                        session.expire_all()
                        results.append(job(session))
                        session.flush()
            except BaseException:  # noqa: BLE001 - every job is run again, alone
                log.info("%s: a batch of %d rolled back; running its jobs one by one",
                         self.name, len(batch))
                self.replays += 1
            else:
                self.batches += 1
                for (_, future), value in zip(batch, results, strict=True):
                    future.set_result(value)
                return
        for job, future in batch:
            try:
                future.set_result(self._alone(job))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def _alone(self, job: Callable[[Session], T]) -> T:
        with write_scope(self.engine) as session:
            self._session = session
            return job(session)
