"""The Rasa server's model loading without Rasa's one training step (``rasa_plugins/model_load``):
the trained model loaded both ways has the same weights and gives the same parses and the same
next actions, on seeded random messages and points of the test stories."""

from __future__ import annotations

import asyncio
import random
import string
from collections import Counter

import pytest

from rasa_plugins import model_load
from tests.test_turn_cost import MODEL, _predictions, _story_points

pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="no trained model: run make test")
SEED = 20261206


def _weights(agent) -> dict[str, Counter]:
    """Each TensorFlow model of the agent's graph (DIET, TED): its weights as a multiset of
    (shape, bytes), independent of the names Keras numbers per process."""
    import tensorflow as tf

    found = {}
    for name, node in agent.processor.graph_runner._instantiated_nodes.items():
        model = getattr(node._component, "model", None)
        if isinstance(model, tf.keras.Model):
            found[name] = Counter((tuple(v.shape), v.numpy().tobytes()) for v in model.weights)
    return found


def _messages(count: int) -> list[str]:
    """Seeded messages: examples of the training data, some with a word dropped or doubled or
    a typo, and strings of random letters and digits."""
    from rasa.shared.nlu.training_data.loading import load_data

    examples = sorted({m.get("text") for m in load_data("nlu_data").intent_examples})
    rng = random.Random(SEED)
    messages = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.5:
            messages.append(rng.choice(examples))
        elif roll < 0.8:
            words = rng.choice(examples).split()
            i = rng.randrange(len(words))
            typo = words[i][:-1] + rng.choice(string.ascii_lowercase)
            words[i] = rng.choice(["", words[i] * 2, typo])
            messages.append(" ".join(w for w in words if w) or "hi")
        else:
            alphabet = string.ascii_lowercase + string.digits + " "
            messages.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))))
    return messages


def test_the_model_loads_without_training_to_the_same_weights_parses_and_actions(monkeypatch):
    from rasa.core.agent import Agent
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.utils.tensorflow.models import RasaModel

    monkeypatch.setattr(DaskGraphRunner, "_build_dask_graph", DaskGraphRunner._build_dask_graph)
    monkeypatch.setattr(RasaModel, "load", RasaModel.__dict__["load"])  # restored afterwards
    messages = _messages(120)
    points: list = []

    def everything(agent) -> tuple:
        parses = [asyncio.run(agent.parse_message(text)) for text in messages]
        points[:] = points or _story_points(agent, 60)  # the same trackers for both
        return _weights(agent), parses, _predictions(agent, points)

    rasas = everything(Agent.load(str(MODEL)))
    model_load.install()
    model_load.install()  # twice is once
    assert getattr(RasaModel.load, "without_training", False)
    ours = everything(Agent.load(str(MODEL)))

    assert set(rasas[0]) == set(ours[0]) and len(rasas[0]) == 2  # DIET and TED
    for name in rasas[0]:
        assert rasas[0][name] == ours[0][name], f"{name}: weights differ"
    assert ours[1] == rasas[1]  # intents, rankings, entities, confidences: all equal
    assert ours[2] == rasas[2]


def test_a_checkpoint_missing_a_variable_falls_back_to_rasas_load(monkeypatch, caplog):
    """If the prediction path made a variable the checkpoint does not restore, the load is
    Rasa's own (with its training step), not a model with an untrained weight."""
    from rasa.utils.tensorflow.models import RasaModel

    monkeypatch.setattr(RasaModel, "load", RasaModel.__dict__["load"])
    calls = []

    def rasas_way(cls, *args, **kwargs):
        calls.append(cls.__name__)
        return "rasa's model"

    monkeypatch.setattr(RasaModel, "load", classmethod(rasas_way))

    def unmatched(*_args, **_kwargs):
        raise AssertionError("Unresolved object in checkpoint")

    monkeypatch.setattr(model_load, "_load_for_prediction", unmatched)
    model_load.install()

    class Model(RasaModel):
        pass

    with caplog.at_level("WARNING", logger=model_load.__name__):
        assert Model.load("weights", "example", "predict example") == "rasa's model"
        assert Model.load("weights", "example", None) == "rasa's model"  # nothing to predict on
    assert calls == ["Model", "Model"]
    assert "loading the Rasa way (AssertionError)" in caplog.text
