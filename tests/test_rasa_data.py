"""The conversation designers' data: validation, held-out NLU scores, conversation tests.

These run Rasa's own tools against ``bot/``, ``nlu_data/`` and the trained model, the way a
designer would after editing the data (README: "Editing the conversation").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "paybot.tar.gz"
SYSTEM_INTENTS = {"session_begin", "capture_result", "silence"}
# Intents only ever heard as an answer inside the payment form (read by its validation action).
FORM_ANSWER_INTENTS = {"other_amount"}
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


def used_by_actions() -> set[str]:
    """Response names that actions send (``response="utter_..."``)."""
    names: set[str] = set()
    for path in (REPO / "actions").glob("*.py"):
        names |= set(re.findall(r'"(utter_[a-z_]+)"', path.read_text()))
    return names


def test_data_validates_and_every_warning_is_accounted_for():
    result = rasa(
        "data",
        "validate",
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
    actions_responses = used_by_actions()
    unexplained = []
    for line in output.splitlines():
        if "UserWarning" not in line:
            continue
        unused = re.search(r"The utterance '(utter_\w+)' is not used in any story or rule", line)
        if unused and (
            unused.group(1) in actions_responses
            or unused.group(1).startswith("utter_ask_")
            or unused.group(1) == "utter_default"  # Rasa's own fallback action says it
        ):
            continue  # sent by an action (or the form, or Rasa), not by a rule
        no_nlu = re.search(
            r"The intent '(\w+)' is listed in the domain file, but is not found", line
        )
        if no_nlu and no_nlu.group(1) in SYSTEM_INTENTS:
            continue  # system events come from the bridge, never from NLU
        no_story = re.search(r"The intent '(\w+)' is not used in any story or rule", line)
        if no_story and no_story.group(1) in FORM_ANSWER_INTENTS:
            continue
        unexplained.append(line)
    assert unexplained == []


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
