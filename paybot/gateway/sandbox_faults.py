"""Failures injected into the sandbox gateway's next calls (for tests): timeouts and errors,
before processing or after it, as if the response were lost."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from paybot.gateway.base import GatewayError, GatewayTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class _Fault:
    error: type[GatewayError]
    when: str
    operation: str | None


class Faults:
    """Failures to inject into the next calls of one sandbox gateway (for tests).

    A fault applies to the next call of a faultable operation (``tokenize_card``,
    ``tokenize_bank_account``, ``charge_token``, ``charge_card``, ``refund``), or of the one
    named by ``operation``. ``when="before"`` raises without processing; ``when="after"``
    processes and stores the request, then raises as if the response were lost.
    """

    OPERATIONS = frozenset(
        {"tokenize_card", "tokenize_bank_account", "charge_token", "charge_card", "refund"}
    )

    def __init__(self) -> None:
        self._queue: list[_Fault] = []
        self._lock = threading.Lock()

    def timeout_next(self, n: int = 1, *, when: str = "before", operation: str | None = None):
        """Make the next ``n`` matching calls raise :class:`GatewayTimeout`."""
        self._add(GatewayTimeout, n, when, operation)

    def error_next(self, n: int = 1, *, when: str = "before", operation: str | None = None):
        """Make the next ``n`` matching calls raise a plain :class:`GatewayError`."""
        self._add(GatewayError, n, when, operation)

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        """How many faults are still waiting for a call."""
        with self._lock:
            return len(self._queue)

    def take(self, operation: str) -> _Fault | None:
        """Remove and return the first fault that applies to ``operation``, if any."""
        with self._lock:
            for index, fault in enumerate(self._queue):
                if fault.operation in (None, operation):
                    return self._queue.pop(index)
        return None

    def run(self, operation: str, work: Callable[[], T]) -> T:
        """Run ``work`` for ``operation``, honouring the first fault that applies to it."""
        fault = self.take(operation) if operation in self.OPERATIONS else None
        if fault is not None and fault.when == "before":
            log.info("sandbox %s: injected %s before processing", operation, fault.error.code)
            raise fault.error(f"sandbox: injected {fault.error.code} ({operation})")
        result = work()
        if fault is not None:
            log.info("sandbox %s: injected %s after processing", operation, fault.error.code)
            raise fault.error(f"sandbox: injected {fault.error.code} after processing")
        return result

    def _add(self, error: type[GatewayError], n: int, when: str, operation: str | None) -> None:
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        if operation is not None and operation not in self.OPERATIONS:
            raise ValueError(f"not a faultable operation: {operation!r}")
        with self._lock:
            self._queue.extend(_Fault(error, when, operation) for _ in range(n))
