"""``paybot train`` on two cores: TED trains in a second process while DIET trains in this one.

Rasa runs its training graph one node at a time (``dask.get``, the synchronous scheduler), and
each TensorFlow model it trains keeps about one core busy: on two cores, DIET and TED took
their turns while the other core idled (``docs/benchmarks.md``, "Training"). :func:`install`
replaces the graph runner's scheduler with :func:`run_graph`, which runs every node as Rasa
does except the training of a TensorFlow policy (:data:`OFFLOADED`), which it hands, with its
inputs, to one worker process started as training begins (spawned: TensorFlow is not safe
to fork) as soon as those inputs are ready, and takes its result when a node needs it or the
graph ends. The node's hooks (Rasa's training cache, its log lines) run here, in this
thread, before the worker's call and when its result is taken, as they run around a node's
own call; the model the worker trains is written to the same model storage on disk. The
worker's model sets its random seeds when it is made, in a process of its own, so training
stays repeatable.

With one core, or a graph without such a node (``rasa train nlu``, a cached policy), the
graph runs as Rasa runs it.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import multiprocessing
import os
from typing import Any

OFFLOADED = frozenset({("TEDPolicy", "train")})  # (component class, function) run aside

_pool: concurrent.futures.ProcessPoolExecutor | None = None


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux (macOS has no affinity call)
        return os.cpu_count() or 1


def start_worker() -> None:
    """Start the worker process now, so that it imports TensorFlow and Rasa's policies while
    this process reads and validates the training data (idempotent; nothing on one core)."""
    global _pool
    if _pool is not None or cores() < 2:
        return
    _pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_setup,
        initargs=(logging.getLogger().getEffectiveLevel(),),
    )
    _pool.submit(_warm_up)


def stop_worker() -> None:
    """Stop the worker process (before the interpreter winds down)."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None


def _worker_setup(level: int) -> None:
    import warnings

    warnings.simplefilter("ignore", DeprecationWarning)  # the imports' own, said once above
    from rasa.utils.common import configure_logging_and_warnings

    configure_logging_and_warnings(level)


def _warm_up() -> None:
    import rasa.core.policies.ted_policy  # noqa: F401  (TensorFlow with it)


def offloaded(task: Any) -> bool:
    """True for a graph task that trains a policy :data:`OFFLOADED` to the worker."""
    node = task[0] if isinstance(task, tuple) and task else None
    component = getattr(node, "_component_class", None)
    return (getattr(component, "__name__", None), getattr(node, "_fn_name", None)) in OFFLOADED


def _call_node(node: Any, inputs: list[Any]) -> Any:
    """In the worker: run a graph node (its hooks already left out) on ``inputs``."""
    return node(*inputs)


class _Aside:
    """A node running in the worker: its call there, its hooks here (in this thread)."""

    def __init__(self, task: Any, cache: dict[Any, Any]) -> None:
        from dask.core import _execute_task

        self.node, *args = task
        inputs = [_execute_task(arg, cache) for arg in args]
        received = dict(value for value in inputs if isinstance(value, tuple))
        kwargs = {name: received[source] for name, source in self.node._inputs.items()}
        self.hook_data = self.node._run_before_hooks(kwargs)
        remote = copy.copy(self.node)
        remote._hooks = []
        assert _pool is not None
        self.call = _pool.submit(_call_node, remote, inputs)

    def result(self) -> Any:
        """The node's ``(name, output)``, once its hooks have run on it."""
        name, output = self.call.result()
        self.node._run_after_hooks(self.hook_data, output)
        return name, output


def run_graph(dsk: dict[Any, Any], keys: list[Any]) -> tuple[Any, ...]:
    """``dask.get(dsk, keys)``, with :func:`offloaded` nodes trained in the worker.

    Ready nodes run in Rasa's order, except that an offloaded node goes to the worker as soon
    as its inputs are there, and the nodes it needs run before the others."""
    from dask.core import _execute_task, get_dependencies, toposort

    needs = {key: get_dependencies(dsk, key) for key in dsk}
    offloads = [key for key in dsk if _pool is not None and offloaded(dsk[key])]
    if not offloads:
        import dask

        return dask.get(dsk, keys)
    ahead: set[Any] = set()  # what the offloaded nodes need, run first
    stack = list(offloads)
    while stack:
        for need in needs[stack.pop()]:
            if need not in ahead:
                ahead.add(need)
                stack.append(need)
    remaining = list(toposort(dsk))
    cache: dict[Any, Any] = {}
    running: dict[Any, _Aside] = {}
    try:
        while remaining or running:
            for key in [key for key, node in running.items() if node.call.done()]:
                cache[key] = running.pop(key).result()
            ready = [key for key in remaining if needs[key].issubset(cache)]
            if not ready:
                concurrent.futures.wait([node.call for node in running.values()],
                                        return_when=concurrent.futures.FIRST_COMPLETED)
                continue
            key = next((k for k in ready if k in offloads), None)
            key = key or next((k for k in ready if k in ahead), ready[0])
            remaining.remove(key)
            if key in offloads:
                running[key] = _Aside(dsk[key], cache)
            else:
                cache[key] = _execute_task(dsk[key], cache)
    finally:
        for node in running.values():  # a node failed here: let the worker's node end
            concurrent.futures.wait([node.call])
    return tuple(cache[key] for key in keys)


def install() -> None:
    """Run Rasa's training graphs with :func:`run_graph` and start the worker (idempotent)."""
    from rasa.engine.runner import dask as runner

    if cores() < 2 or getattr(runner.dask, "lanes", False):
        return

    class _Dask:
        """What the graph runner module sees as ``dask``: ``get`` is :func:`run_graph`."""

        lanes = True
        get = staticmethod(run_graph)

    runner.dask = _Dask  # type: ignore[assignment]
    start_worker()
