"""JSON log lines (paybot/log_format.py): one object a line, ids as fields, redacted.

Records go through real loggers and handlers with the process-wide installs the services
use (:func:`paybot.redaction.install`, :func:`paybot.log_format.install`), undone after each
test. Card numbers are generated (seeded) with every separator the redaction knows.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import re
from collections.abc import Iterator

import pytest

from paybot import log_format, redaction
from paybot_cli import console

LUHN_PREFIXES = ("4", "51", "55", "37", "6011")


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through a plain StreamHandler, in JSON mode, redacted."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))  # JSON wins
    logger = logging.getLogger("paybot.test_log_format")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    redaction.install()
    log_format.install("json")
    try:
        yield logger, stream
    finally:
        log_format.uninstall()
        redaction.uninstall()
        logger.removeHandler(handler)


def entries(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def luhn_card(rng: random.Random) -> str:
    prefix = rng.choice(LUHN_PREFIXES)
    length = 15 if prefix == "37" else 16
    digits = [int(d) for d in prefix] + [rng.randint(0, 9) for _ in range(length - len(prefix) - 1)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def spaced(number: str, rng: random.Random) -> str:
    sep = rng.choice(["", " ", "-", ".", "  ", "/", "_"])
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def test_a_line_is_one_json_object_with_time_level_logger_and_message(json_log):
    logger, stream = json_log
    logger.info("call %s: stream %s started", "CA" + "a" * 32, "MZ" + "b" * 32)
    logger.warning("two\nlines")
    first, second = entries(stream)
    assert first["message"] == f"call CA{'a' * 32}: stream MZ{'b' * 32} started"
    assert (first["level"], first["logger"]) == ("INFO", "paybot.test_log_format")
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert second["message"] == "two\nlines" and second["level"] == "WARNING"
    assert len(stream.getvalue().splitlines()) == 2  # the newline stayed inside the string


def test_ids_come_from_extra_and_from_the_context(json_log):
    logger, stream = json_log
    logger.info("no ids")
    with log_format.log_ids(call_sid="CA1", conversation_id="call:CA1"):
        logger.info("in the call")
        logger.info("a payment", extra={"payment_id": 42})
        with log_format.log_ids(payment_id=7):
            logger.info("nested")
    logger.info("after")
    plain, call, payment, nested, after = entries(stream)
    assert not {"call_sid", "conversation_id", "payment_id"} & plain.keys()
    assert (call["call_sid"], call["conversation_id"]) == ("CA1", "call:CA1")
    assert payment["payment_id"] == "42" and payment["call_sid"] == "CA1"
    assert nested["payment_id"] == "7"
    assert "call_sid" not in after


async def test_ids_follow_tasks_and_threads_started_in_their_context(json_log):
    logger, stream = json_log

    async def worker() -> None:
        await asyncio.sleep(0)
        logger.info("in a task")

    with log_format.log_ids(call_sid="CA2"):
        task = asyncio.create_task(worker())
        await asyncio.to_thread(logger.info, "in a thread")
    await task
    assert [e.get("call_sid") for e in entries(stream)] == ["CA2", "CA2"]


def test_card_numbers_are_masked_in_json_output_too(json_log):
    logger, stream = json_log
    rng = random.Random(4242)
    for _ in range(200):
        number = luhn_card(rng)
        typed = spaced(number, rng)
        where = rng.choice(["message", "arg", "extra", "exception"])
        if where == "message":
            logger.info(f"caller said {typed} twice")
        elif where == "arg":
            logger.info("heard %s", typed)
        elif where == "extra":
            logger.info("with extra", extra={"conversation_id": f"chat:{typed}"})
        else:
            try:
                raise ValueError(f"bad card {typed}")
            except ValueError:
                logger.exception("failed")
        entry = entries(stream)[-1]
        text = json.dumps(entry, ensure_ascii=False)
        fields = " ".join(str(v) for k, v in entry.items() if k != "time")
        assert number not in re.sub(r"\D", "", fields), entry
        assert "[redacted …" + number[-4:] + "]" in text, entry
    assert len(entries(stream)) == 200


def test_text_mode_leaves_the_handlers_formats_alone():
    log_format.install("text")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
    logger = logging.getLogger("paybot.test_log_format.text")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("plain")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "WARNING|plain\n"


def test_paybot_up_forwards_each_child_line_as_one_json_object(capsys):
    console.use_json()
    try:
        console._forward_line(b'{"time": "t", "level": "INFO", "logger": "x", "message": "m"}',
                              "bridge", True, 0.0)
        console._forward_line(b"2026-01-01 12:00:00 INFO rasa: card 4111 1111 1111 1111",
                              "rasa", True, 0.0)
        console.say("paybot is up; Ctrl-C to stop")
    finally:
        console.use_json(False)
    child, wrapped, status = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert child == {"time": "t", "level": "INFO", "logger": "x", "message": "m",
                     "service": "bridge"}
    assert wrapped["service"] == "rasa" and "[redacted …1111]" in wrapped["message"]
    assert "4111 1111" not in wrapped["message"]
    assert status["message"] == "paybot is up; Ctrl-C to stop" and status["logger"] == "paybot"


async def test_a_wrapped_handler_puts_its_conversation_on_its_lines(json_log):
    logger, stream = json_log

    class Executor:
        async def run(self, call: dict) -> str:
            await asyncio.to_thread(logger.info, "running an action")
            return "done"

    run = log_format.with_conversation(Executor.run, lambda _self, call: call.get("sender_id"))
    assert log_format.with_conversation(run, lambda *_: None) is run  # idempotent
    assert await run(Executor(), {"sender_id": "chat:abc"}) == "done"
    assert await run(Executor(), {}) == "done"
    logger.info("outside")
    inside, without, outside = entries(stream)
    assert inside["conversation_id"] == "chat:abc"
    assert "conversation_id" not in without and "conversation_id" not in outside
