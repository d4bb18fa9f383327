"""Frequent prompts synthesised once, when the bridge starts, so callers hear them at once.

Every piece (sentence or clause, :meth:`PiperTts.plan`) without a placeholder of every response
(``bot/domain.yml``, ``bot/responses.yml``) and of the secure capture's prompts goes through the
voice's cache in a worker thread after start-up; calls are served meanwhile. So in "To confirm:
| your payment is {amount}, | plus a convenience fee of {fee}, | ..." the first piece is ready.
Their audio is kept on disk (:mod:`voice_bridge.tts.prompt_store`) for the next start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from voice_bridge.tts.prompt_store import PromptStore

log = logging.getLogger(__name__)
# The capture's prompts first: every caller paying with a new card hears them.
RESPONSE_FILES = ("bot/capture.yml", "bot/domain.yml", "bot/responses.yml")


def static_prompts(root: Path) -> list[str]:
    """Response texts (templates with ``{placeholders}`` too) from the bot's files (the
    capture's prompts first), each once; the fixed texts before the templates."""
    texts: list[str] = []
    for name in RESPONSE_FILES:
        path = root / name
        if not path.is_file():
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        texts.extend(_texts(data.get("responses") or {}))
    seen: set[str] = set()
    unique = [t for t in texts if not (t in seen or seen.add(t))]
    return sorted(unique, key=lambda text: "{" in text)


def _texts(responses: dict[str, Any]) -> Iterable[str]:
    for variants in responses.values():
        for variant in variants or []:
            if isinstance(variant, dict) and isinstance(variant.get("text"), str):
                yield variant["text"]


def warm_up(tts: Any, texts: Iterable[str], store: PromptStore | None = None) -> int:
    """Put every piece of ``texts`` without a placeholder into the cache (blocking; run it in
    a thread): from ``store`` when it has the piece, else synthesised (and then stored);
    returns how many pieces."""
    started = time.perf_counter()
    count = 0
    for text in texts:
        for piece in tts.plan(text):
            if "{" in piece:
                continue
            stored = store.get(piece) if store is not None else None
            if stored is not None:
                tts.remember(piece, stored)
            else:
                audio = tts.audio(piece)
                if store is not None:
                    store.put(piece, audio)
            count += 1
    log.debug("tts cache warmed: %d pieces in %.1fs", count, time.perf_counter() - started)
    return count
