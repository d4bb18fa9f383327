"""The TTS pool runs the most urgent job first and skips cancelled ones."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading

import pytest

from voice_bridge.urgent_pool import UrgentPool


def test_jobs_run_by_deadline_then_by_submission() -> None:
    pool = UrgentPool(1, name="test")
    gate, ran = threading.Event(), []
    blocker = pool.submit(0.0, gate.wait)  # holds the only worker while the queue fills
    jobs = [pool.submit(deadline, ran.append, label) for deadline, label in
            [(math.inf, "warm-up"), (5.0, "look-ahead"), (1.0, "first piece"), (1.0, "second")]]
    gate.set()
    blocker.result(5)
    for job in jobs:
        job.result(5)
    assert ran == ["first piece", "second", "look-ahead", "warm-up"]
    pool.shutdown()


def test_a_cancelled_job_never_runs_and_errors_reach_the_caller() -> None:
    pool = UrgentPool(1)
    gate, ran = threading.Event(), []
    pool.submit(0.0, gate.wait)
    dropped = pool.submit(1.0, ran.append, "dropped")
    assert dropped.cancel()
    failing = pool.submit(2.0, int, "not a number")
    gate.set()
    with pytest.raises(ValueError):
        failing.result(5)
    assert ran == [] and pool.queued() == 0
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(0.0, print)


def test_cancelling_the_awaiting_task_cancels_the_queued_job() -> None:
    pool = UrgentPool(1)
    gate, ran = threading.Event(), []

    async def scenario() -> None:
        pool.submit(0.0, gate.wait)
        waiting = asyncio.ensure_future(asyncio.wrap_future(pool.submit(1.0, ran.append, "x")))
        await asyncio.sleep(0.05)
        waiting.cancel()  # a barge-in drops the look-ahead
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert ran == []
    pool.shutdown()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")
def test_a_low_priority_pool_runs_its_jobs_below_the_process() -> None:
    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    low, normal = UrgentPool(1, name="ahead", nice=10), UrgentPool(1)
    try:
        assert low.submit(0.0, priority).result(5) == priority() + 10
        assert normal.submit(0.0, priority).result(5) == priority()
    finally:
        low.shutdown()
        normal.shutdown()
