"""The NLU's reading of a message remembered by its text (``PAYBOT_RASA_PARSE_CACHE``: how many
texts; 0 for none).

Most of what callers and texters say is one of a few hundred short answers ("yes", "no",
"agent", "what's my balance", "start over"), and on a call the grammars give exactly the same
text for the same answer every time. Rasa runs its whole NLU pipeline (tokenizer, featurizers,
DIET in TensorFlow) for each message again: about a third of a turn's CPU in the Rasa process
(docs/benchmarks.md). The pipeline is a pure function of the message's text: none of its
components reads the conversation (``__tracker__``), its metadata or its id, and the parse data
Rasa keeps holds nothing else (text, intent, entities, ranking, tokens).

:func:`install` wraps ``MessageProcessor._parse_message_with_graph``: a text seen before
gets a copy of its remembered parse data, the least recently used text is forgotten past
``size``. Remembered per loaded model (a new model starts empty). Not remembered:

* texts with a digit or a number word ("seven", "oh", "hundred") in them: account numbers,
  ZIP codes, amounts and dates, typed or spelled out, which rarely repeat and which should not
  outlive their conversation in memory;
* texts longer than :data:`MAX_TEXT` characters;
* anything, if a node of the model's NLU graph reads the tracker (an end-to-end pipeline
  could), so a parse could depend on more than the text.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
from collections import OrderedDict
from typing import Any

from paybot import metrics
from paybot.spoken.numbers import ZERO_WORDS, is_number_word

ENV = "PAYBOT_RASA_PARSE_CACHE"
MAX_TEXT = 200
log = logging.getLogger(__name__)


def size_from_env(environ: dict[str, str] | None = None) -> int:
    """``PAYBOT_RASA_PARSE_CACHE`` as a count of texts (unset: 0, nothing remembered).

    Raises:
        ValueError: If it is not a whole number from 0 to 1,000,000.
    """
    raw = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > 1_000_000:
        raise ValueError(f"{ENV} must be a whole number from 0 to 1000000, not {raw!r}")
    return int(raw)


_WORD = re.compile(r"[^\W\d_]+")


def cacheable(text: Any) -> bool:
    """Whether a message text may be remembered: a short string without digits or number
    words."""
    return (
        isinstance(text, str)
        and len(text) <= MAX_TEXT
        and not any(character.isdigit() for character in text)
        and not any(
            is_number_word(word) or word in ZERO_WORDS for word in _WORD.findall(text.lower())
        )
    )


class ParseCache:
    """Parse data by (text, output properties only), the least recently used forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple[str, bool], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, bool]) -> dict[str, Any] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return copy.deepcopy(found)

    def put(self, key: tuple[str, bool], parse_data: dict[str, Any]) -> None:
        remembered = copy.deepcopy(parse_data)
        with self._lock:
            self._entries[key] = remembered
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def reads_only_the_message(processor: Any) -> bool:
    """Whether no node on the path to the model's NLU target needs the tracker."""
    schema = processor.model_metadata.predict_schema
    target = processor.model_metadata.nlu_target
    seen: set[str] = set()
    pending = [target]
    while pending:
        name = pending.pop()
        if name in seen or name not in schema.nodes:
            continue
        seen.add(name)
        needs = schema.nodes[name].needs.values()
        if "__tracker__" in needs:
            return False
        pending.extend(needs)
    return bool(seen)


_ATTRIBUTE = "_paybot_parse_cache"  # on Rasa's processor: one per loaded model
_UNSAFE = object()


def cache_for(processor: Any, size: int) -> ParseCache | None:
    """The cache of ``processor`` (Rasa makes a processor per loaded model; the cache is made on
    first use), or None if its model's parses must not be remembered."""
    found = getattr(processor, _ATTRIBUTE, None)
    if found is None:
        if reads_only_the_message(processor):
            found = ParseCache(size)
        else:
            log.warning("the NLU pipeline reads the tracker: parses are not remembered")
            found = _UNSAFE
        setattr(processor, _ATTRIBUTE, found)
    return None if found is _UNSAFE else found


def install(size: int) -> None:
    """Remember up to ``size`` texts' parse data in Rasa's processor (0: nothing). Idempotent."""
    from rasa.core.processor import MessageProcessor

    parse = MessageProcessor._parse_message_with_graph  # noqa: SLF001
    if size < 1 or getattr(parse, "remembers", False):
        return

    def _parse_message_with_graph(
        self: MessageProcessor, message: Any, tracker: Any, only_output_properties: bool = True
    ) -> dict[str, Any]:
        cache = cache_for(self, size) if cacheable(message.text) else None
        if cache is None:
            metrics.PARSE_CACHE.labels("skipped").inc()
            return parse(self, message, tracker, only_output_properties)
        key = (message.text, bool(only_output_properties))
        found = cache.get(key)
        if found is not None:
            metrics.PARSE_CACHE.labels("hit").inc()
            return found
        metrics.PARSE_CACHE.labels("miss").inc()
        parse_data = parse(self, message, tracker, only_output_properties)
        cache.put(key, parse_data)
        return parse_data

    _parse_message_with_graph.remembers = True  # type: ignore[attr-defined]
    MessageProcessor._parse_message_with_graph = _parse_message_with_graph  # type: ignore[method-assign]  # noqa: SLF001
