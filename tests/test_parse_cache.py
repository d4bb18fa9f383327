"""Rasa's parse cache (``rasa_plugins/parse_cache``): a remembered parse is the parse.

With the trained model, seeded random messages (training examples, mutated ones, random
strings with and without digits, many said again) get the same parse data through the cache as
from Rasa's pipeline run each time; a caller changing what it got changes nothing remembered;
texts with digits are never remembered; the cache keeps only the most recently used texts
(checked against a plain reference on seeded random uses); a pipeline that reads the tracker
gets no cache at all.
"""

from __future__ import annotations

import random
import re
import string
from collections import OrderedDict
from types import SimpleNamespace

import pytest

from paybot import metrics
from rasa_plugins import model_load, parse_cache
from tests.test_turn_cost import MODEL

SEED = 20261206


def test_the_setting_is_a_count_and_anything_else_is_refused():
    assert parse_cache.size_from_env({}) == 0
    assert parse_cache.size_from_env({parse_cache.ENV: " 4096 "}) == 4096
    assert parse_cache.size_from_env({parse_cache.ENV: "0"}) == 0
    for bad in ("-1", "many", "1.5", "1000001"):
        with pytest.raises(ValueError, match=parse_cache.ENV):
            parse_cache.size_from_env({parse_cache.ENV: bad})


def test_texts_with_digits_number_words_or_too_long_are_never_remembered():
    rng = random.Random(SEED)
    words = ["yes", "no", "pay", "my", "balance", "agent", "seven", "Oh", "hundred", "twenty",
             "zero", "one", "please", "O", "Nine", "bill"]  # fmt: skip
    numbers = {"seven", "oh", "hundred", "twenty", "zero", "one", "o", "nine"}
    for _ in range(3000):
        if rng.random() < 0.5:
            text = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 240)))
            expected = len(text) <= parse_cache.MAX_TEXT and not any(c.isdigit() for c in text)
            if expected and not set(re.findall(r"[^\W\d_]+", text.lower())) & numbers:
                assert parse_cache.cacheable(text), text
            elif not expected:
                assert not parse_cache.cacheable(text), text
        else:
            said = [rng.choice(words) for _ in range(rng.randint(1, 6))]
            text = rng.choice([" ", ", ", "-"]).join(said)
            assert parse_cache.cacheable(text) is not ({w.lower() for w in said} & numbers), text
    assert not parse_cache.cacheable("my zip is ９４１０７")  # any Unicode digit
    assert not parse_cache.cacheable("four two four two, oh")
    assert parse_cache.cacheable("what's my balance")
    assert not parse_cache.cacheable(None)


def test_the_least_recently_used_text_goes_first():
    rng = random.Random(SEED)
    for size in (1, 2, 5, 17):
        cache, reference = parse_cache.ParseCache(size), OrderedDict()
        for step in range(3000):
            key = (rng.choice("abcdefghijklmnopqrstuvwxyz"[: size + 6]), rng.random() < 0.9)
            if rng.random() < 0.5:
                found = cache.get(key)
                assert found == reference.get(key), (size, step)
                if key in reference:
                    reference.move_to_end(key)
            else:
                cache.put(key, {"step": step})
                reference[key] = {"step": step}
                reference.move_to_end(key)
                while len(reference) > size:
                    reference.popitem(last=False)
            assert len(cache) == len(reference) <= size


def test_a_pipeline_that_reads_the_tracker_gets_no_cache(caplog):
    def processor(needs: dict[str, dict[str, str]]) -> SimpleNamespace:
        nodes = {name: SimpleNamespace(needs=n) for name, n in needs.items()}
        schema = SimpleNamespace(nodes=nodes)
        return SimpleNamespace(model_metadata=SimpleNamespace(predict_schema=schema,
                                                              nlu_target="nlu"))  # fmt: skip

    plain = processor({"nlu": {"messages": "featurize"}, "featurize": {"messages": "__message__"}})
    reading = processor({"nlu": {"messages": "e2e"}, "e2e": {"tracker": "__tracker__"}})
    assert isinstance(parse_cache.cache_for(plain, 8), parse_cache.ParseCache)
    assert parse_cache.cache_for(plain, 8) is parse_cache.cache_for(plain, 8)
    again = processor({"nlu": {"messages": "__message__"}})  # a model loaded anew: its own
    assert len(parse_cache.cache_for(again, 8)) == 0
    assert parse_cache.cache_for(again, 8) is not parse_cache.cache_for(plain, 8)
    assert parse_cache.cache_for(reading, 8) is None
    assert "reads the tracker" in caplog.text


def _messages(examples: list[str], count: int) -> list[str]:
    """Seeded messages: training examples, mutated ones, random strings (some with digits),
    about half of them said again later."""
    rng = random.Random(SEED)
    said: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if said and roll < 0.4:
            said.append(rng.choice(said))
        elif roll < 0.7:
            said.append(rng.choice(examples))
        elif roll < 0.85:
            words = rng.choice(examples).split()
            words[rng.randrange(len(words))] = rng.choice(["", "please", "umm", "42", "uh"])
            said.append(" ".join(w for w in words if w) or "hi")
        else:
            alphabet = string.ascii_lowercase + string.digits + " "
            said.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25))))
    return said


def _outcomes() -> dict[str, float]:
    sample = metrics.REGISTRY.get_sample_value
    return {o: sample("paybot_rasa_parse_cache_total", {"outcome": o}) or 0.0
            for o in ("hit", "miss", "skipped")}  # fmt: skip


@pytest.mark.skipif(not MODEL.is_file(), reason="no trained model: run make test")
def test_remembered_parses_are_the_pipelines_own(monkeypatch):
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.core.processor import MessageProcessor
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.utils.tensorflow.models import RasaModel

    monkeypatch.setattr(RasaModel, "load", RasaModel.__dict__["load"])  # restored afterwards
    monkeypatch.setattr(MessageProcessor, "_parse_message_with_graph",
                        MessageProcessor._parse_message_with_graph)  # fmt: skip
    model_load.install()
    pipeline = MessageProcessor._parse_message_with_graph
    parse_cache.install(64)
    parse_cache.install(64)  # twice is once
    assert MessageProcessor._parse_message_with_graph.remembers

    processor = Agent.load(str(MODEL)).processor
    examples = sorted({m.get("text") for m in load_data("nlu_data").intent_examples})
    said = _messages(examples, 400)
    before = _outcomes()
    for i, text in enumerate(said):
        message = UserMessage(text, sender_id=f"s{i % 7}", metadata={"channel": "sms"})
        tracker = DialogueStateTracker.from_events(message.sender_id, [])
        got = processor._parse_message_with_graph(message, tracker)
        assert got == pipeline(processor, message, tracker), text
        got["intent"]["name"] = "changed by the caller"  # a copy: nothing remembered changes
        got["entities"].append({"entity": "x"})
    moved = {k: v - before[k] for k, v in _outcomes().items()}
    assert moved["skipped"] == sum(not parse_cache.cacheable(t) for t in said)
    assert moved["hit"] + moved["miss"] == sum(parse_cache.cacheable(t) for t in said)
    assert moved["hit"] > 50  # said again, and still in the 64 most recent (70 with this seed)
    cache = parse_cache.cache_for(processor, 64)
    assert cache is not None and len(cache) == 64
    assert all(parse_cache.cacheable(text) for text, _ in cache._entries)
