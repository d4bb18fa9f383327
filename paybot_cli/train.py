"""``paybot train``: train the Rasa model from ``bot/`` and ``nlu_data/`` into the model dir.

``--if-changed`` skips training when the model exists and a fingerprint of every training
file and of ``rasa_plugins/train.py`` (paths and contents) plus the Rasa version matches the
one saved after the last successful training, so ``make run`` starts at once when nothing
changed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

from paybot.settings import Settings
from paybot_cli.children import child_env
from paybot_cli.console import fail, forward_output, say
from paybot_cli.project import Project, find_project

log = logging.getLogger(__name__)
MODEL_NAME = "paybot"
FINGERPRINT_FILE = ".fingerprint"
CACHE_DIR = ".rasa-cache"


def model_path(model_dir: Path) -> Path:
    """The trained model file in ``model_dir``."""
    return model_dir / f"{MODEL_NAME}.tar.gz"


def training_files(root: Path, inputs: Iterable[Path]) -> list[Path]:
    """Every regular file among or under ``inputs`` (relative to ``root``), sorted, hidden
    files and ``__pycache__`` excluded."""
    files = []
    for entry in inputs:
        candidates = [root / entry] if (root / entry).is_file() else (root / entry).rglob("*")
        for path in candidates:
            relative = path.relative_to(root)
            if path.is_file() and not any(
                part.startswith(".") or part == "__pycache__" for part in relative.parts
            ):
                files.append(relative)
    return sorted(files, key=lambda p: p.as_posix())


def fingerprint(root: Path, inputs: Iterable[Path]) -> str:
    """A sha256 over the Rasa version and each training file's path and content."""
    digest = hashlib.sha256()
    digest.update(f"rasa {_rasa_version()}\0".encode())
    for relative in training_files(root, inputs):
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256((root / relative).read_bytes()).digest())
    return digest.hexdigest()


def is_up_to_date(project: Project, model_dir: Path) -> bool:
    """True when the model exists and was trained from exactly the current files."""
    model_dir = project.root / model_dir
    stamp = model_dir / FINGERPRINT_FILE
    if not model_path(model_dir).is_file() or not stamp.is_file():
        return False
    return stamp.read_text().strip() == fingerprint(project.root, project.training_inputs)


def rasa_train_argv(project: Project, model_dir: Path, force: bool) -> list[str]:
    """The ``rasa train`` command for this project (through :mod:`rasa_plugins.train`)."""
    argv = [sys.executable, "-m", "rasa_plugins.train", "train"]
    argv += ["--data", str(project.stories_dir), str(project.nlu_dir)]
    argv += ["--domain", str(project.domain), "--config", str(project.config)]
    argv += ["--out", str(model_dir), "--fixed-model-name", MODEL_NAME]
    return argv + (["--force"] if force else [])


def run_rasa(argv: Sequence[str], cwd: Path, model_dir: Path) -> int:
    """Run ``rasa train`` with its output forwarded as ``[rasa]`` lines; its exit code."""
    env = child_env()
    env.setdefault("RASA_CACHE_DIRECTORY", str(model_dir / CACHE_DIR))
    process = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    pump = forward_output(process.stdout, "rasa")
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait()
        raise
    pump.join(timeout=5.0)
    return code


def train(
    settings: Settings, *, if_changed: bool = False, force: bool = False,
    project: Project | None = None,
) -> int:
    """Train the model (or skip it when ``if_changed`` and nothing changed).

    Args:
        settings: Supplies the model directory.
        if_changed: Skip when the saved fingerprint matches and the model exists.
        force: Train even when Rasa thinks nothing changed.
        project: The project to train (default: the current directory).

    Returns:
        0 on success or when skipped, 1 when the project is incomplete or training fails.
    """
    project = project or find_project()
    if missing := project.missing():
        fail(f"no {missing[0]} in {project.root}; run paybot from the project root")
        return 1
    model_dir = settings.model_dir
    if if_changed and not force and is_up_to_date(project, model_dir):
        say(f"model is up to date ({model_path(model_dir)}); not training")
        return 0
    trained_from = fingerprint(project.root, project.training_inputs)
    say(f"training the Rasa model from {project.bot_dir}/ and {project.nlu_dir}/ "
        "(a few minutes)...")
    started = time.monotonic()
    code = run_rasa(rasa_train_argv(project, model_dir, force), project.root, model_dir)
    if code != 0 or not model_path(project.root / model_dir).is_file():
        fail(f"training failed (exit {code}); fix the errors in the [rasa] lines above "
             "(check the data with 'rasa data validate')")
        return 1
    (project.root / model_dir / FINGERPRINT_FILE).write_text(trained_from + "\n")
    say(f"model trained in {time.monotonic() - started:.0f} s: {model_path(model_dir)}")
    return 0


def command(settings: Settings, args: argparse.Namespace) -> int:
    """``paybot train [--if-changed] [--force]``."""
    return train(settings, if_changed=args.if_changed, force=args.force)


def _rasa_version() -> str:
    try:
        return metadata.version("rasa")
    except metadata.PackageNotFoundError:
        return "unknown"
