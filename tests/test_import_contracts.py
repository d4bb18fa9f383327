"""The import contracts (``[tool.importlinter]`` in pyproject.toml) hold on the tree, and a wrong
arrow breaks them: each contract is checked again on a scratch copy of the packages with one
bad import added. ``make lint`` runs the same contracts (``lint-imports``).

The card-data contract has a second check here: no module outside the secure capture, the
gateway and the ledger imports ``CardData``, ``BankAccount`` or ``DigitBuffer`` by name, from
wherever (a re-export would slip past a module-level contract).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("paybot", "paybot_cli", "actions", "voice_bridge", "rasa_plugins", "twilio_sim")
LINT = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]
CARD_DATA_NAMES = frozenset({"CardData", "BankAccount", "DigitBuffer"})
CARD_DATA_ROOMS = (
    "voice_bridge/secure_capture/",
    "paybot/gateway/",
    "paybot/payments/ledger.py",
    "paybot/payments/tokenized.py",  # the ledger's token half: tokenizes after the rules
)


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the packages under ``root`` (only ``contracts``, by id, if given)."""
    argv = [*LINT, "--no-cache", *(arg for c in contracts for arg in ("--contract", c))]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_contracts_hold_on_the_tree():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contracts")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(
    ("contract", "module", "bad_import"),
    [
        ("layers", "paybot/money.py", "import voice_bridge.keys"),
        ("layers", "actions/wording.py", "from paybot_cli import console"),
        ("services", "voice_bridge/keys.py", "import actions.wording"),
        ("rasa-plugins", "paybot_cli/chat.py", "from rasa_plugins import channel"),
        ("twilio-sim", "twilio_sim/wav.py", "from voice_bridge import runtime"),
        ("services", "rasa_plugins/channel.py", "from voice_bridge.twilio import messages"),
        ("card-data", "actions/wording.py", "from paybot.gateway.card_data import CardData"),
        ("card-data", "paybot/seed.py", "from paybot.gateway.card_data import BankAccount"),
        ("card-data", "voice_bridge/call/handler.py",
         "from voice_bridge.secure_capture.fields import DigitBuffer"),
    ],
)
def test_a_wrong_import_breaks_its_contract(scratch: Path, contract: str, module: str,
                                            bad_import: str):
    path = scratch / module
    original = path.read_text()
    try:
        path.write_text(f"{original}\n{bad_import}  # noqa\n")
        done = lint_imports(scratch, contract)
    finally:
        path.write_text(original)
    assert done.returncode != 0, done.stdout
    assert "1 broken" in done.stdout, done.stdout + done.stderr


def card_data_imports(source: str) -> list[str]:
    """The card-data names ``source`` imports (``from x import CardData``, ``x.CardData``...)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found += [alias.name for alias in node.names if alias.name in CARD_DATA_NAMES]
    return found


def test_only_the_card_data_rooms_import_card_data_by_name():
    offenders = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative.startswith(CARD_DATA_ROOMS):
                continue
            names = card_data_imports(path.read_text())
            if names:
                offenders.append(f"{relative}: {', '.join(names)}")
    assert not offenders, f"card-data types imported outside the secure capture: {offenders}"


def test_a_card_data_import_by_name_is_seen():
    source = "from paybot.gateway.base import CardData as C\nfrom x import y, DigitBuffer\n"
    assert card_data_imports(source) == ["CardData", "DigitBuffer"]
    assert card_data_imports("import paybot.gateway.card_data\nfrom x import y\n") == []
