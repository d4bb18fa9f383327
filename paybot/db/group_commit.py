"""Group commit: the write transactions of many threads committed together, one commit for
many.

A caller hands :meth:`GroupCommit.run` a *job*, a function of a session that does its reads
and writes and returns a plain value (not an ORM object). The jobs of a batch share one
session: an object one job loaded is, for the next, already loaded (a job that must see a row
as an earlier job of the batch changed it reads it with ``populate_existing``).

One batcher thread takes every job queued by then (up to ``max_batch``), runs
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
- A job run alone that PostgreSQL picks as a deadlock victim is run again (up to
  ``RETRIES`` times).

Rows a job only inserts and no later job of the batch needs to read (audit events, ledger
lines) can be handed to :func:`defer_insert`: they are inserted just before the commit, one
multi-row statement per table for the whole batch, in the order they were deferred.

A *set job* (:meth:`GroupCommit.run_set`) is one item of work that is done for many items
at once: every item of a batch handed to the same set function runs in one call of it, with
the items in queue order, where the first of them stood in the batch (so one lock, one read
and one multi-row write can serve them all). The items of a batch are concurrent requests
whose callers have not been answered, so running them as if one after the other in that order
is as good as any. The function returns one result per item; an item's result that is an
exception is raised to that item's caller alone, and the batch goes on (the function must have
written nothing for that item); an exception the function raises fails the batch as any job's
does, and its items are run again one by one (each a set of one).

A job submitted from the batcher thread itself (a job that calls code that groups its own
writes) runs at once as part of the job that submitted it, in the same transaction, instead
of waiting for itself.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from paybot.db.engine import write_scope

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = Callable[[Session], Any]
SetWork = Callable[[Session, list[Any]], list[Any]]  # items -> one result (or exception) each
IDLE_EXIT_S = 1.0  # the batcher thread ends after this long without work (restarted lazily)
# A job run alone whose transaction PostgreSQL aborted to break a deadlock (or a serialization
# failure) is run again: batches lock rows in their jobs' order, so two processes' batches can
# wait on each other (two processes settling one payment at once).
RETRIES = 3
_RETRYABLE = {"40P01", "40001"}  # deadlock_detected, serialization_failure
_DEFERRED = "group_commit.deferred"  # session.info key: {table: [rows]}, in deferral order


def defer_insert(session: Session, table: Table, row: dict[str, Any]) -> None:
    """Insert ``row`` into ``table`` with the rest of the batch, just before its commit
    (only inside a :class:`GroupCommit` job; the row must carry every value it needs, as
    model defaults are not applied)."""
    deferred = session.info.get(_DEFERRED)
    if deferred is None:
        raise RuntimeError("defer_insert outside a group commit job")
    deferred.setdefault(table, []).append(row)


class _SetItem:
    """An item queued for a set function (:meth:`GroupCommit.run_set`)."""

    __slots__ = ("work", "item")

    def __init__(self, work: SetWork, item: Any) -> None:
        self.work, self.item = work, item

    def __call__(self, session: Session) -> Any:
        """The item as a set of one (run alone, or submitted from the batcher itself)."""
        value = self.work(session, [self.item])[0]
        if isinstance(value, BaseException):
            raise value
        return value


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
        # The batcher's connection, kept while it runs (no pool check-out and ping per batch).
        self._connection: Connection | None = None
        self.batches = 0  # committed shared transactions (for tests and the benchmark)
        self.batched_jobs = 0  # the jobs those committed
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

    def run_set(self, work: SetWork, item: Any) -> Any:
        """Run ``item`` with the other items of its batch handed to the same ``work`` (one call
        for them all: see the module notes); its result once the transaction committed."""
        return self.run(_SetItem(work, item))

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(IDLE_EXIT_S)
                if not self._queue:
                    self._thread = None
                    self._drop_connection()
                    return
                size = min(self.max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(size)]
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[Job, Future]]) -> None:
        if len(batch) > 1:
            try:
                with self._transaction() as session:
                    results = _run_jobs(session, [job for job, _ in batch])
            except BaseException:  # noqa: BLE001 - every job is run again, alone
                log.info(
                    "%s: a batch of %d rolled back; running its jobs one by one",
                    self.name,
                    len(batch),
                )
                self.replays += 1
            else:
                self.batches += 1
                self.batched_jobs += len(batch)
                for (job, future), value in zip(batch, results, strict=True):
                    if isinstance(job, _SetItem) and isinstance(value, BaseException):
                        future.set_exception(value)  # that item's alone: the rest committed
                    else:
                        future.set_result(value)
                return
        for job, future in batch:
            try:
                future.set_result(self._alone(job))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def _alone(self, job: Callable[[Session], T]) -> T:
        for attempt in range(1, RETRIES + 1):
            try:
                with self._transaction() as session:
                    return job(session)
            except DBAPIError as exc:
                if attempt == RETRIES or getattr(exc.orig, "pgcode", None) not in _RETRYABLE:
                    raise
                log.warning(
                    "%s: a job's transaction was chosen as a deadlock victim (attempt "
                    "%d); running it again",
                    self.name,
                    attempt,
                )
        raise AssertionError("unreachable")

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        if self._connection is None:
            self._connection = self.engine.connect()
        try:
            with write_scope(self.engine, connection=self._connection) as session:
                session.info[_DEFERRED] = {}
                self._session = session
                yield session
                session.flush()
                for table, rows in session.info[_DEFERRED].items():
                    session.execute(insert(table), rows)
        except BaseException:
            self._drop_connection()  # whatever went wrong, the next batch starts afresh
            raise
        finally:
            self._session = None

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _run_jobs(session: Session, jobs: list[Job]) -> list[Any]:
    """Run a batch's jobs in order, each set function once for all its items (where the first
    of them stands); their results, in the jobs' order."""
    results: list[Any] = [None] * len(jobs)
    done: set[int] = set()
    for i, job in enumerate(jobs):
        if i in done:
            continue
        if isinstance(job, _SetItem):
            members = [
                k for k in range(i, len(jobs))
                if isinstance(jobs[k], _SetItem) and jobs[k].work == job.work
            ]  # fmt: skip
            values = job.work(session, [jobs[k].item for k in members])
            for k, value in zip(members, values, strict=True):
                results[k] = value
            done.update(members)
        else:
            results[i] = job(session)
        session.flush()
    return results
