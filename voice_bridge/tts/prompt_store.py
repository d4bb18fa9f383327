"""The static prompts' audio kept on disk, so a restarted bridge does not synthesise them again.

The start-up warm-up (:mod:`voice_bridge.tts.warmup`) synthesises every piece of every
response without a placeholder: about 190 pieces and half a minute of CPU on two cores. This
store keeps their Twilio-ready μ-law audio in ``PAYBOT_TTS_CACHE_DIR`` (default
``<data dir>/tts-cache``), one file per piece, under a key of the voice (its files' size and
modification time, its config and the synthesis settings): another voice or setting never
reads audio made by the last one. Only the warm-up writes here, so only fixed wording is on
disk, never a caller's name, amount or digits. Writes are atomic (a temporary file renamed
into place), so bridges sharing the directory never read half a file; a store that cannot be
written is switched off with a warning, and the bridge synthesises as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
SUFFIX = ".ulaw"


class PromptStore:
    """Audio of fixed prompt pieces on disk, for one voice and synthesis setting."""

    def __init__(self, directory: Path, voice_key: str) -> None:
        self.directory = directory / hashlib.sha256(voice_key.encode()).hexdigest()[:16]
        self.enabled = True

    def get(self, piece: str) -> bytes | None:
        """The stored audio of ``piece``, or None (not stored, unreadable, or empty)."""
        if not self.enabled:
            return None
        try:
            audio = self._path(piece).read_bytes()
        except OSError:
            return None
        return audio or None

    def put(self, piece: str, audio: bytes) -> None:
        """Keep ``audio`` for ``piece`` (atomically); failures switch the store off."""
        if not self.enabled or not audio:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(fd, "wb") as file:
                file.write(audio)
            os.replace(temporary, self._path(piece))
        except OSError as exc:
            self.enabled = False
            log.warning("tts prompt store %s is off: %s", self.directory, exc.strerror or exc)

    def _path(self, piece: str) -> Path:
        return self.directory / (hashlib.sha256(piece.encode()).hexdigest()[:32] + SUFFIX)
