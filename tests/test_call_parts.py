"""The call handler's parts with real models: keypad answers, bot replies, capture wording,
playback with marks and barge-in (real Piper), and turn-taking plus recognition (real
PocketSphinx on FSDD digit recordings)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from paybot.dialog.payloads import Hangup, Listen, Prepare, SecureCapture, Transfer, to_dict
from paybot.parsing.card_numbers import CARD_NUMBER_REMOVED
from tests.helpers import edit_distance
from voice_bridge.asr.pocketsphinx_engine import PocketSphinxEngine
from voice_bridge.call.keypad import KeypadEntry
from voice_bridge.call.listener import Listener
from voice_bridge.call.playback import LEAD_SAFETY, Player
from voice_bridge.call.rasa_client import parse_reply
from voice_bridge.call.vad import TurnEventType
from voice_bridge.secure_capture.fields import Prompt
from voice_bridge.secure_capture.session import CaptureSession
from voice_bridge.secure_capture.wording import prompt_text
from voice_bridge.tts import PiperTts
from voice_bridge.twilio import codec as A

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
if not FSDD.is_dir():
    FSDD = Path("/work/shared/data/fsdd")
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD}")


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(4) as executor:
        yield executor


def runner(pool, jobs: list[bool] | None = None):
    """The runtime's ``run_tts`` on a plain pool (order is not tested here); ``jobs`` records
    each job's ``ahead`` flag."""

    async def run(fn, *args, deadline=None, ahead=False):
        if jobs is not None:
            jobs.append(ahead)
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    return run


@pytest.fixture(scope="module")
def tts() -> PiperTts:
    return PiperTts()


@pytest.fixture(scope="module")
def asr() -> PocketSphinxEngine:
    return PocketSphinxEngine()


# --- keypad -----------------------------------------------------------------------------------


def test_keypad_digits_end_with_pound_max_length_or_timeout() -> None:
    pad = KeypadEntry()
    pad.reset("digits", max_digits=5)
    assert [pad.key(d, 0.0) for d in "1234"] == [None] * 4
    assert pad.key("5", 0.1) == "12345"  # max length reached
    assert pad.key("9", 1.0) is None and pad.key("#", 1.1) == "9"
    pad.key("7", 2.0)
    assert pad.tick(4.0) is None and pad.tick(5.0) == "7"  # 3 s inter-digit timeout
    assert not pad.active


def test_keypad_star_clears_digits_and_is_a_point_in_amounts() -> None:
    pad = KeypadEntry()
    pad.reset("digits", max_digits=None)
    for d in "12*34#":
        result = pad.key(d, 0.0)
    assert result == "34"
    pad.reset("amount")
    for d in "150*50#":
        result = pad.key(d, 0.0)
    assert result == "150.50"


def test_keypad_yes_no_and_operator() -> None:
    pad = KeypadEntry()
    pad.reset("yes_no")
    assert pad.key("1", 0.0) == "yes" and pad.key("2", 0.0) == "no"
    pad.reset("free")
    assert pad.key("0", 0.0) is None and pad.key("#", 0.0) == "operator"
    pad.reset("digits")
    assert pad.key("0", 0.0) is None and pad.key("#", 0.0) == "0"
    assert pad.key("#", 0.0) is None  # nothing keyed: nothing sent


def test_a_card_number_keyed_outside_the_capture_never_becomes_a_turn() -> None:
    """Seeded walk: entries of random lengths (Luhn-valid or not) in random modes; 13 digits or
    more where the question does not ask for that many come out as the removed marker only."""
    rng = random.Random(1213)
    for _ in range(500):
        pad = KeypadEntry()
        mode = rng.choice(["free", "yes_no", "amount", "date", "digits"])
        max_digits = rng.choice([None, 5, 9, 12, 20]) if mode == "digits" else None
        pad.reset(mode, max_digits)
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 24)))
        if mode == "yes_no":
            digits = "9" + digits  # a first 1 or 2 answers at once
        turns = [t for t in (pad.key(d, 0.0) for d in digits + "#") if t is not None]
        for turn in turns:
            keyed = sum(ch.isdigit() for ch in turn)
            if keyed >= 13:
                assert mode == "digits" and max_digits and keyed <= max_digits, (mode, turn)
        if len(digits) >= 13 and not (mode == "digits" and max_digits):
            assert turns == [CARD_NUMBER_REMOVED], (mode, max_digits, turns)
    pad = KeypadEntry()
    pad.reset("digits", max_digits=20)  # a long account number is what was asked
    assert [t for t in (pad.key(d, 0.0) for d in "1234567890123456#") if t] == [
        "1234567890123456"]
    pad.reset("free")
    for d in "4111111111111112":  # mistyped (Luhn fails), still card data: timed out
        pad.key(d, 0.0)
    assert pad.tick(5.0) == CARD_NUMBER_REMOVED


# --- bot replies ------------------------------------------------------------------------------


def test_parse_reply_splits_texts_and_instructions() -> None:
    messages = [
        {"recipient_id": "x", "text": "Hello James."},
        {"recipient_id": "x", "custom": to_dict(Listen("yes_no", barge_in=False))},
        {"recipient_id": "x", "custom": {"type": "dance"}},  # not ours: dropped
        {"recipient_id": "x", "custom": to_dict(Transfer("agent_requested", {"a": 1}))},
        {"recipient_id": "x", "custom": to_dict(Hangup())},
        "garbage",
    ]
    reply = parse_reply(messages)
    assert reply.texts == ("Hello James.",)
    assert reply.listen == Listen("yes_no", barge_in=False)
    assert not reply.interruptible
    assert reply.transfer is not None and reply.transfer.reason == "agent_requested"
    assert reply.hangup and reply.capture is None
    assert parse_reply([]).interruptible and parse_reply([]).listen is None


# --- capture wording --------------------------------------------------------------------------


def test_every_capture_prompt_has_words_and_no_digits_but_last_four() -> None:
    card = SecureCapture("card", "100200300", "10.00", "USD", "k1")
    session = CaptureSession(card)
    prompts = [a for a in session.start(0.0) if isinstance(a, Prompt)]
    for key in "4242424242424242#" "1230" "123" "94105":
        prompts += [a for a in session.key(key, 1.0) if isinstance(a, Prompt)]
    prompts += [a for a in session.key("9", 2.0) if isinstance(a, Prompt)]  # invalid confirm
    prompts += [Prompt("invalid_card_number", {"field": "card_number", "reason": "luhn"})]
    prompts += [Prompt("timeout", {"field": "cvc", "attempt": 2})]
    prompts += [Prompt("failed", {"reason": "too_many_attempts"}), Prompt("processing")]
    prompts += [Prompt("routing", {"attempt": 1}), Prompt("bank_account", {"attempt": 2})]
    prompts += [Prompt("confirm_bank", {"last4": "6789"})]
    names = {p.name for p in prompts}
    assert {"card_number", "expiry", "cvc", "zip", "confirm_card", "invalid_confirm"} <= names
    for prompt in prompts:
        text = prompt_text(prompt)
        assert text, prompt.name
        assert not re.search(r"\d{2,}", text), text
    confirm = next(p for p in prompts if p.name == "confirm_card")
    assert "Visa ending 4 2 4 2" in prompt_text(confirm)
    assert "Let's try again" in prompt_text(Prompt("bank_account", {"attempt": 2}))


# --- playback ---------------------------------------------------------------------------------


class Wire:
    """The websocket's send side, as the player sees it."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def marks(self) -> list[str]:
        return [m["mark"]["name"] for m in self.sent if m["event"] == "mark"]

    def payloads(self) -> list[bytes]:
        return [base64.b64decode(m["media"]["payload"]) for m in self.sent if m["event"] == "media"]

    def media_ms(self) -> float:
        """How much audio was sent (8 μ-law bytes a millisecond)."""
        return sum(map(len, self.payloads())) / 8.0


async def test_player_sends_frames_then_marks_and_tracks_what_was_heard(tts, pool) -> None:
    wire = Wire()
    player = Player("CA1", "MZ1", wire.send, tts, runner(pool))
    stats = await player.say(["Hello James. Are you ready to pay?", "Thanks."])
    assert wire.marks() == ["1.1", "1.2", "1.3", "1.end"]
    assert stats.sentences == 3 and stats.first_audio_ms is not None
    assert wire.media_ms() == stats.audio_ms > 1000
    # Whole 20 ms frames, at most a second a message, each piece's audio before its mark.
    assert all(len(p) % 160 == 0 and 0 < len(p) <= 8000 for p in wire.payloads())
    assert len(wire.payloads()) < stats.audio_ms / 20 / 10
    assert wire.sent[0]["event"] == "media" and wire.sent[-1]["mark"]["name"] == "1.end"
    assert player.speaking
    assert player.on_mark("1.2") is False and player.speaking  # in order: 1.1 played too
    assert player.on_mark("1.end") is True and not player.speaking
    await asyncio.wait_for(player.played(), 1)


async def test_a_piece_ready_after_the_audio_before_it_played_is_counted_late(
    tts, pool, caplog
) -> None:
    text = "Right. I have found your account for you. All done now."
    first, middle, last = tts.plan(text)
    before_ms = len(tts.audio(first) + tts.audio(middle)) / 8  # cached: sent at once
    make = runner(pool)

    async def slow_last(fn, *args, deadline=None, ahead=False):
        audio = await make(fn, *args, deadline=deadline, ahead=ahead)
        if args[1] == last:  # the machine fell behind on the last piece
            await asyncio.sleep(before_ms / 1000 + 0.5)
        return audio

    wire = Wire()
    caplog.set_level("WARNING", logger="voice_bridge.call.playback")
    stats = await Player("CA1", "MZ1", wire.send, tts, slow_last).say([text])
    assert stats.late_frames > 0 and wire.marks() == ["1.1", "1.2", "1.3", "1.end"]
    assert "reply 1 went out" in caplog.text and "piece 3 of 3" in caplog.text
    # Why, in counts and times: the piece's length, how long its audio took to come (it was
    # late by the test's delay), the lead the reply started with; never the words.
    why = re.search(r"piece 3 of 3: (\d+) characters, ready (\d+) ms after it was asked for, "
                    r"estimated (\d+) ms, begun after (\d+) ms; the reply started with (\d+) ms",
                    caplog.text)
    assert why, caplog.text
    assert int(why[1]) == len(last) and int(why[2]) >= before_ms + 500 and int(why[3]) > 0
    assert int(why[4]) < before_ms  # a thread took it at once: its synthesis was what lagged
    assert abs(int(why[5]) - len(tts.audio(first)) / 8) <= 1  # started on the first piece
    assert not any(word in caplog.text for word in ("found", "account", "done"))
    # the piece before went out at once (no send held it up); this one waited for its audio
    sending = re.search(r"went out (\d+) ms after the piece before, whose (\d+) ms of audio "
                        r"took (\d+) ms to send", caplog.text)
    assert sending, caplog.text
    assert int(sending[1]) >= before_ms + 400 and int(sending[3]) < 100
    assert abs(int(sending[2]) - len(tts.audio(middle)) / 8) <= 1
    # On time (every piece in the cache now): nothing counted, nothing logged.
    caplog.clear()
    assert (await Player("CA1", "MZ2", Wire().send, tts, make).say([text])).late_frames == 0
    assert "went out" not in caplog.text


async def test_a_reply_waits_for_its_next_piece_to_begin_before_it_starts(tts, pool) -> None:
    """The audio ready covers the next piece's estimated synthesis, but that piece is still
    queued behind other calls' (every thread busy): starting on the estimate would leave a
    gap mid-reply, so the first audio waits until a thread takes the next piece."""
    first = "Thanks for waiting, I have it now."
    text = f"{first} Your balance is due at the end of the month, and it can be paid today."
    pieces = tts.plan(text)
    tts.audio(pieces[0])  # the first piece from the cache, the next one never synthesised
    assert len(pieces) >= 2 and tts.estimate_ms(pieces[1]) > 0
    busy = 0.6  # how long the other calls keep every thread busy
    make = runner(pool)
    queued: list[float] = []

    async def crowded(fn, *args, deadline=None, ahead=False):
        if args[1] == pieces[1]:  # queued: a thread takes it only once the others are done
            queued.append(time.monotonic())
            await asyncio.sleep(busy)
        return await make(fn, *args, deadline=deadline, ahead=ahead)

    lead_ms = len(tts.audio(pieces[0])) / 8
    assert lead_ms >= tts.estimate_ms(pieces[1]) * LEAD_SAFETY  # the estimate alone: start
    wire = Wire()
    stats = await Player("CA1", "MZ1", wire.send, tts, crowded).say([text])
    assert queued and stats.first_audio_ms is not None
    assert stats.first_audio_ms >= busy * 1000 * 0.9  # held until the piece was taken
    assert stats.late_frames == 0
    # Nothing queued: the cached first piece goes out at once (the same reply, now cached).
    assert (await Player("CA1", "MZ2", Wire().send, tts, make).say([text])).first_audio_ms < 100


async def test_barge_in_clears_and_ignores_old_marks(tts, pool) -> None:
    wire = Wire()
    player = Player("CA1", "MZ1", wire.send, tts, runner(pool))
    await player.say(["This is a long sentence the caller will interrupt."])
    assert await player.interrupt() is True
    assert wire.sent[-1]["event"] == "clear" and not player.speaking
    assert player.on_mark("1.1") is False and player.on_mark("1.end") is False  # echoed by clear
    await player.say(["Fee disclosure."], interruptible=False)
    assert await player.interrupt() is False and player.speaking
    assert wire.sent[-1]["event"] == "mark"  # no clear sent
    assert player.on_mark("2.end") is True


async def test_what_the_bot_says_next_is_synthesised_while_this_reply_plays(pool) -> None:
    tts = PiperTts(cache_size=64)  # a cache of its own: nothing in it yet
    likely = "To confirm: your payment is $417.53. It will be paid with your Visa ending 4242."
    pieces = tts.plan(likely)
    assert len(pieces) >= 3 and all(tts.estimate_ms(p) > 0 for p in pieces)
    jobs: list[bool] = []
    player = Player("CA1", "MZ1", Wire().send, tts, runner(pool, jobs))
    await player.say(["Would you like to use your Visa ending 4242?"], prepare=[likely])
    await asyncio.wait_for(asyncio.gather(*player._preparing), 30)
    assert all(tts.estimate_ms(p) == 0 for p in pieces)  # every piece is in the cache now
    assert sorted(jobs) == [False, True]  # the question, and the next reply at low priority
    hits = tts.cache_stats()[0]
    wire, jobs = Wire(), []
    player = Player("CA1", "MZ2", wire.send, tts, runner(pool, jobs))
    stats = await player.say([likely])
    # Every piece came from the cache, on the spot: nothing queued in the speech pool.
    assert tts.cache_stats()[0] - hits >= len(pieces) and stats.first_audio_ms is not None
    assert jobs == [] and wire.media_ms() == stats.audio_ms
    # A call that ends drops what it queued for later.
    player.close()
    assert not player._preparing


def test_parse_reply_collects_what_to_prepare() -> None:
    reply = parse_reply([
        {"custom": to_dict(Prepare(texts=["Thank you. Your payment of $5.00 was successful."]))},
        {"custom": {"type": "prepare", "texts": "not a list"}},  # malformed: dropped
        {"custom": {"type": "prepare", "texts": [1, 2]}},
    ])
    assert reply.prepare == ("Thank you. Your payment of $5.00 was successful.",)
    assert parse_reply([]).prepare == ()


# --- listening --------------------------------------------------------------------------------


@needs_fsdd
async def test_listener_hears_a_keyless_digit_string(asr, pool) -> None:
    rng = random.Random(1)
    files = sorted(FSDD.glob("*_george_*.wav"))
    chosen = [rng.choice(files) for _ in range(5)]
    pcm = A.silence_pcm16(400, 8000)
    for path in chosen:
        pcm += A.read_wav(path)[0] + A.silence_pcm16(150, 8000)
    pcm += A.silence_pcm16(1500, 8000)
    line = A.ulaw_to_pcm16(A.pcm16_to_ulaw(pcm))
    listener = Listener(asr, runner(pool))
    listener.expect(Listen("digits", min_digits=4, max_digits=12))
    events = []
    turn = None
    for frame in A.iter_frames(line, A.PCM_FRAME_BYTES, pad=0):
        event = listener.feed(frame, bot_speaking=False)
        if event is not None:
            events.append(event.type)
            if event.type is TurnEventType.TURN_END:
                turn = listener.take_turn()
                break
    assert events == [TurnEventType.SPEECH_START, TurnEventType.TURN_END]
    assert turn is not None
    transcript = await turn.result()
    from voice_bridge.asr import words_to_digits

    heard = words_to_digits(transcript.text)
    truth = "".join(p.name[0] for p in chosen)
    assert edit_distance(truth, heard) <= 1, (truth, heard)


async def test_listener_reports_no_input_and_pauses(asr, pool) -> None:
    listener = Listener(asr, runner(pool))
    listener.expect(Listen("yes_no", timeout_s=0.5))
    silence = A.silence_pcm16(20, 8000)
    events = [listener.feed(silence, bot_speaking=False) for _ in range(30)]
    assert [e.type for e in events if e] == [TurnEventType.NO_INPUT]
    listener.pause()
    assert listener.feed(silence, bot_speaking=False) is None
    listener.resume(Listen("free"))
    assert not listener.paused and listener.expected.value == "free"


async def test_dropped_turn_releases_its_recognizer(asr, pool) -> None:
    before = asr.decoders_created
    listener = Listener(asr, runner(pool))
    loud = (A.samples_to_bytes((__import__("numpy").sin(
        __import__("numpy").arange(160) / 3.0) * 8000).astype("int16")))
    for _ in range(20):
        listener.feed(loud, bot_speaking=False)
    assert listener.in_turn
    listener.drop_turn()
    await asyncio.sleep(0.5)
    rec = await runner(pool)(asr.recognizer, "free")  # the pool slot came back
    rec.close()
    assert asr.decoders_created <= before + 1
