"""Frequent prompts synthesised once, when the bridge starts, so callers hear them at once.

The sentences of every response without a placeholder (``bot/domain.yml``,
``bot/responses.yml``) and of the secure capture's prompts go through the voice's sentence
cache in a worker thread after start-up; calls are served meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)
RESPONSE_FILES = ("bot/domain.yml", "bot/responses.yml")


def static_prompts(root: Path) -> list[str]:
    """Response texts with no ``{placeholder}``, from the bot's files, plus capture prompts."""
    from voice_bridge.capture_wording import FIELD_REQUESTS, FIXED_PROMPTS

    texts: list[str] = [*FIELD_REQUESTS.values(), *FIXED_PROMPTS]
    for name in RESPONSE_FILES:
        path = root / name
        if not path.is_file():
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        texts.extend(_texts(data.get("responses") or {}))
    seen: set[str] = set()
    return [t for t in texts if "{" not in t and not (t in seen or seen.add(t))]


def _texts(responses: dict[str, Any]) -> Iterable[str]:
    for variants in responses.values():
        for variant in variants or []:
            if isinstance(variant, dict) and isinstance(variant.get("text"), str):
                yield variant["text"]


def warm_up(tts: Any, texts: Iterable[str]) -> int:
    """Synthesise every sentence of ``texts`` into the cache (blocking; run it in a thread)."""
    started = time.perf_counter()
    count = 0
    for text in texts:
        for sentence in tts.plan(text):
            tts.sentence(sentence)
            count += 1
    log.info("tts cache warmed: %d sentences in %.1fs", count, time.perf_counter() - started)
    return count
