"""The conversation designers' data: validation, held-out NLU scores, conversation tests.

These run Rasa's own tools against ``bot/``, ``nlu_data/`` and the trained model, the way a
designer would after editing the data (README: "Editing the conversation").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "paybot.tar.gz"
F1_BAR = 0.9

pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="no trained model: run make test")


def rasa(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false"}
    return subprocess.run(
        [sys.executable, "-m", "rasa", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_data_validates_without_a_single_warning():
    """`rasa data validate --fail-on-warnings` (what `make lint` runs) passes and warns of
    nothing: every intent has examples and a rule or story, and every response in the domain
    is said by a rule or story (what actions say is in bot/responses.yml)."""
    result = rasa(
        "data",
        "validate",
        "--fail-on-warnings",
        "--domain",
        "bot/domain.yml",
        "--data",
        "bot/data",
        "nlu_data",
        "--config",
        "bot/config.yml",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    warnings = [line for line in output.splitlines() if "UserWarning" in line]
    assert warnings == []


def test_held_out_nlu_examples_score_above_the_bar(tmp_path):
    result = rasa(
        "test",
        "nlu",
        "--nlu",
        "tests/rasa/nlu_holdout.yml",
        "--model",
        str(MODEL),
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    intents = json.loads((tmp_path / "intent_report.json").read_text())
    entities = json.loads((tmp_path / "DIETClassifier_report.json").read_text())
    intent_f1 = intents["weighted avg"]["f1-score"]
    entity_f1 = entities["weighted avg"]["f1-score"]
    print(f"held-out NLU: intent F1 {intent_f1:.3f}, entity F1 {entity_f1:.3f}")
    assert intent_f1 >= F1_BAR, {k: v for k, v in intents.items() if isinstance(v, dict)}
    assert entity_f1 >= F1_BAR, entities


def test_conversation_stories_pass(tmp_path):
    result = rasa(
        "test",
        "core",
        "--stories",
        "tests/rasa/test_stories.yml",
        "--model",
        str(MODEL),
        "--out",
        str(tmp_path),
        "--fail-on-prediction-errors",
    )
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, details or (result.stdout + result.stderr)[-4000:]
