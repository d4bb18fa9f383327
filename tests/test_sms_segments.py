"""SMS segments (paybot/sms/segments.py): counting as carriers bill, and answers that fit."""

from __future__ import annotations

import os
import random
import re

import pytest

from paybot.sms.segments import GSM7_BASIC, GSM7_EXTENSION, fit, segments, to_gsm7

SEED = int(os.environ.get("PAYBOT_TEST_SEED", "20261205"))


@pytest.mark.parametrize(
    ("text", "coding", "units", "count"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("a" * 158 + "€", "GSM-7", 160, 1),  # the euro sign takes two septets
        ("a" * 159 + "€", "GSM-7", 161, 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),  # an escape pair is never split
        ("é" * 160, "GSM-7", 160, 1),  # é is in the basic table
        ("a" * 69 + "’", "UCS-2", 70, 1),  # one curly apostrophe: UCS-2
        ("a" * 70 + "’", "UCS-2", 71, 2),
        ("a" * 134, "GSM-7", 134, 1),
        ("😀" * 35, "UCS-2", 70, 1),  # a surrogate pair is two code units
        ("a" * 66 + "😀" + "a" * 66, "UCS-2", 134, 3),  # and never split
    ],
)
def test_segments_are_counted_as_carriers_bill(text, coding, units, count):
    got = segments(text)
    assert (got.encoding, got.units, got.segments) == (coding, units, count)


def test_smart_punctuation_becomes_gsm7():
    wording = "We’re sorry — “that” didn’t work… try again\u00a0later"
    plain = to_gsm7(wording)
    assert plain == "We're sorry - \"that\" didn't work... try again later"
    assert segments(plain).encoding == "GSM-7" and segments(wording).encoding == "UCS-2"


def _reference_segments(text: str) -> int:
    """An independent count: pack the message into user-data payloads byte by byte."""
    if not text:
        return 0
    if all(c in GSM7_BASIC | GSM7_EXTENSION for c in text):
        septets = [[0x1B, 0] if c in GSM7_EXTENSION else [0] for c in text]
        size, single, part = sum(map(len, septets)), 160, 153
    else:
        encoded = text.encode("utf-16-be")
        septets = [[0] * (len(c.encode("utf-16-be")) // 2) for c in text]
        size, single, part = len(encoded) // 2, 70, 67
    if size <= single:
        return 1
    count, used = 1, 0
    for group in septets:
        if used + len(group) > part:
            count, used = count + 1, 0
        used += len(group)
    return count


ALPHABET = (
    "abcdefghij ABCXYZ 0123456789 .,!?$£€[]{}~^|\\ éüÑ\n"  # GSM-7, basic and extension
    "’—…“”😀ñçł中"  # not GSM-7 (ñ is; the rest are not)
)


def _random_text(rng: random.Random) -> str:
    length = rng.choice((0, 1, 60, 70, 71, 134, 153, 159, 160, 161, 306, 307, 500, 1200))
    pool = ALPHABET if rng.random() < 0.5 else ALPHABET[:52]
    return "".join(rng.choice(pool) for _ in range(length))


def test_segment_counts_match_an_independent_packer_on_random_texts():
    rng = random.Random(SEED)
    for _ in range(3000):
        text = _random_text(rng)
        assert segments(text).segments == _reference_segments(text), (SEED, text)


WORDS = ["your", "payment", "of", "$321.72", "Visa", "ending", "4242", "—", "we’re", "sorry"]


def _random_reply(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(1, 12)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 30))]
        sentences.append(" ".join(words).capitalize() + rng.choice(".!?"))
    return " ".join(sentences)


def _words(texts: list[str]) -> list[str]:
    return [w for t in texts for w in re.split(r"\s+", to_gsm7(t)) if w]


def test_fit_keeps_every_word_within_the_segment_budget():
    rng = random.Random(SEED)
    for _ in range(500):
        replies = [_random_reply(rng) for _ in range(rng.randint(1, 4))]
        budget = rng.randint(1, 4)
        messages = fit(replies, max_segments=budget)
        assert all(segments(m).segments <= budget for m in messages), (SEED, replies, budget)
        assert all(segments(m).encoding == "GSM-7" for m in messages)
        assert _words(messages) == _words(replies), (SEED, replies, budget)  # none cut or lost


def test_short_replies_share_one_message_and_long_ones_split_between_sentences():
    assert fit(["Hello James.", "Your balance is $321.72."]) == [
        "Hello James.\n\nYour balance is $321.72."
    ]
    long = " ".join(f"Sentence number {i} is here." for i in range(40))
    messages = fit([long], max_segments=1)
    assert len(messages) > 1
    assert all(m.endswith(".") for m in messages)  # cut between sentences


def test_a_budget_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        fit(["hi"], max_segments=0)
