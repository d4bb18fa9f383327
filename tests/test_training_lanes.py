"""TED's training in a second process (rasa_plugins/training_lanes.py), through Rasa's own
graph runner and graph nodes: the offloaded node runs in the worker while the others run
here, its hooks run here around it, the results are what Rasa's scheduler gives, and a
failure in either lane fails the graph."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import pytest

pytest.importorskip("rasa")

from rasa.engine.graph import (  # noqa: E402
    ExecutionContext,
    GraphComponent,
    GraphNodeHook,
    GraphSchema,
    SchemaNode,
)
from rasa.engine.runner.dask import DaskGraphRunner  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402

from rasa_plugins import training_lanes  # noqa: E402

WORK_S = 1.5  # how long each lane's node works


class _Component(GraphComponent):
    @classmethod
    def create(cls, config: dict, model_storage: Any, resource: Any,
               execution_context: Any) -> _Component:
        component = cls()
        component.config = config
        return component


class Numbers(_Component):
    def provide(self) -> list[int]:
        return self.config["numbers"]


class TEDPolicy(_Component):
    """Named as the policy the lanes offload; trains by summing, slowly."""

    def train(self, numbers: list[int]) -> dict:
        started = time.time()
        if self.config.get("fail"):
            raise ValueError("the policy could not train")
        time.sleep(WORK_S)
        return {"pid": os.getpid(), "value": sum(numbers) * self.config["scale"],
                "started": started, "ended": time.time()}


class Featurizer(_Component):
    def run(self, numbers: list[int]) -> dict:
        started = time.time()
        if self.config.get("fail"):
            raise ValueError("the featurizer failed")
        time.sleep(WORK_S)
        return {"pid": os.getpid(), "value": max(numbers),
                "started": started, "ended": time.time()}


class Combine(_Component):
    def combine(self, policy: dict, features: dict) -> dict:
        return {"policy": policy, "features": features,
                "value": policy["value"] + features["value"]}


class Recorder(GraphNodeHook):
    """Records each hook call (in the process that makes it)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, Any]] = []

    def on_before_node(self, node_name: str, execution_context: Any, config: dict,
                       received_inputs: dict) -> dict:
        self.calls.append(("before", node_name, os.getpid(), sorted(received_inputs)))
        return {"token": node_name}

    def on_after_node(self, node_name: str, execution_context: Any, config: dict,
                      output: Any, input_hook_data: dict) -> None:
        self.calls.append(("after", node_name, os.getpid(), input_hook_data["token"]))


def schema(numbers: list[int], scale: int, fail: str = "") -> GraphSchema:
    def node(uses: type, fn: str, needs: dict, **config: Any) -> SchemaNode:
        return SchemaNode(needs=needs, uses=uses, constructor_name="create", fn=fn,
                          config=config)

    return GraphSchema({
        "numbers": node(Numbers, "provide", {}, numbers=numbers),
        "train_TEDPolicy0": node(TEDPolicy, "train", {"numbers": "numbers"}, scale=scale,
                                 fail=fail == "policy"),
        "run_Featurizer": node(Featurizer, "run", {"numbers": "numbers"},
                               fail=fail == "featurizer"),
        "combine": SchemaNode(
            needs={"policy": "train_TEDPolicy0", "features": "run_Featurizer"},
            uses=Combine, constructor_name="create", fn="combine", config={},
            is_target=True),
    })


def run(graph: GraphSchema, tmp_path: Any, hooks: list[GraphNodeHook]) -> dict:
    storage = LocalModelStorage(tmp_path / f"storage{random.random()}")
    runner = DaskGraphRunner(graph, storage, ExecutionContext(graph, "test"), hooks)
    return runner.run()["combine"]


@pytest.fixture
def lanes(monkeypatch):
    from rasa.engine.runner import dask as runner_module

    if training_lanes.cores() < 2:
        pytest.skip("one CPU: the lanes stay off")
    monkeypatch.setattr(runner_module, "dask", runner_module.dask)  # put back afterwards
    training_lanes.install()
    training_lanes.install()
    yield
    training_lanes.stop_worker()


def test_the_policy_trains_in_the_worker_while_this_process_works(lanes, tmp_path):
    rng = random.Random(7)
    for attempt in range(4):
        numbers = [rng.randrange(100) for _ in range(rng.randrange(1, 20))]
        scale = rng.randrange(1, 9)
        recorder = Recorder()
        result = run(schema(numbers, scale), tmp_path, [recorder])

        assert result["value"] == sum(numbers) * scale + max(numbers)
        policy, features = result["policy"], result["features"]
        assert policy["pid"] != os.getpid()  # in the worker
        assert features["pid"] == os.getpid()
        # the two lanes overlapped (once the worker has imported TensorFlow: in training it
        # does so while this process reads and validates the data)
        overlap = policy["started"] < features["ended"] and features["started"] < policy["ended"]
        assert overlap or attempt == 0
        # every node's hooks ran here, the offloaded one's too, before and after its call
        ours = [call for call in recorder.calls if call[1] == "train_TEDPolicy0"]
        assert ours == [("before", "train_TEDPolicy0", os.getpid(), ["numbers"]),
                        ("after", "train_TEDPolicy0", os.getpid(), "train_TEDPolicy0")]
        assert {call[1] for call in recorder.calls} == {
            "numbers", "train_TEDPolicy0", "run_Featurizer", "combine"}


def test_the_same_results_as_rasas_own_scheduler(tmp_path):
    graph = schema([3, 1, 4, 1, 5], 3)
    plain = run(graph, tmp_path, [])
    assert plain["policy"]["pid"] == os.getpid()  # no lanes installed here
    assert plain["value"] == 3 * 14 + 5


@pytest.mark.parametrize("where", ["policy", "featurizer"])
def test_a_failure_in_either_lane_fails_the_graph(lanes, tmp_path, where):
    from rasa.engine.exceptions import GraphComponentException, GraphRunError

    recorder = Recorder()
    with pytest.raises((GraphComponentException, GraphRunError)) as raised:
        run(schema([1, 2], 2, fail=where), tmp_path, [recorder])
    assert "could not train" in repr(raised.value.__cause__) or where == "featurizer"
    assert ("after", "combine", os.getpid(), "combine") not in recorder.calls
    # the worker is still there for the next graph
    assert run(schema([1, 2], 2), tmp_path, [])["value"] == 6 + 2
