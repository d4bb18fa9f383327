"""DIET's training step as ``paybot train`` builds it (rasa_plugins/train.py): traced once
(every variable made before the first step), without the CRF's decode, and the model it
trains still finds intents and entities, the entities through the CRF's decode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

NLU = """\
version: "3.1"
nlu:
- intent: pay
  examples: |
    - I want to pay [50](amount) dollars
    - pay [20](amount)
    - can I pay [100](amount) today
    - let me pay [75](amount) please
    - I'd like to pay [12](amount)
    - put [30](amount) on it
    - pay [45](amount) now
    - [60](amount) please
- intent: balance
  examples: |
    - what is my balance
    - how much do I owe
    - balance please
    - what do I owe you
    - tell me my balance
    - how much is due
    - what's the amount due
    - my balance
- intent: goodbye
  examples: |
    - bye
    - goodbye
    - see you
    - that's all
    - thanks bye
    - I'm done
    - nothing else
    - have a good day
"""

CONFIG = """\
recipe: default.v1
assistant_id: step
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: DIETClassifier
    epochs: 30
    random_seed: 1
    constrain_similarities: true
policies: []
"""

# Trains DIET in a process of its own (the patch stays out of this test process) and prints
# one JSON line: the training step's trace counts and the trained model's parses.
SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from rasa_plugins import train
    from rasa.nlu.classifiers.diet_classifier import DIET

    train.install_diet_step()
    train.install_diet_step()
    traces, shown = [], []
    patched_fit = DIET.fit

    def fit(self, *args, **kwargs):
        result = patched_fit(self, *args, **kwargs)
        traces.append(self.train_function.experimental_get_tracing_count())
        shown.append(list(self.metrics_to_log))
        return result

    DIET.fit = fit
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    model = train_nlu("config.yml", "nlu.yml", "out", fixed_model_name="m")
    agent = Agent.load(model)
    parses = {}
    for text in sys.argv[1:]:
        parse = asyncio.run(agent.parse_message(text))
        parses[text] = [parse["intent"]["name"],
                        [[e["entity"], e["value"]] for e in parse["entities"]]]
    print("RESULT " + json.dumps({"traces": traces, "shown": shown, "parses": parses}))
    """
)


def test_diet_trains_with_one_trace_and_still_finds_entities(tmp_path):
    pytest.importorskip("rasa")
    (tmp_path / "nlu.yml").write_text(NLU)
    (tmp_path / "config.yml").write_text(CONFIG)
    env = dict(os.environ, RASA_CACHE_DIRECTORY=str(tmp_path / "cache"),
               PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    texts = ["I want to pay 50 dollars", "pay 20", "can I pay 75 today",
             "what is my balance", "bye"]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *texts], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (result.stdout + result.stderr)[-4000:]
    found = json.loads(lines[-1].removeprefix("RESULT "))

    # The training (and, in this process, loading's one step): Rasa's own step traced twice.
    assert found["traces"][0] == 1
    assert not any(name.endswith("_f1") for name in found["shown"][0])
    assert found["parses"] == {
        "I want to pay 50 dollars": ["pay", [["amount", "50"]]],
        "pay 20": ["pay", [["amount", "20"]]],
        "can I pay 75 today": ["pay", [["amount", "75"]]],
        "what is my balance": ["balance", []],
        "bye": ["goodbye", []],
    }
