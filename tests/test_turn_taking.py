"""Turn-taking with the real recognizer: a complete answer ends the turn after a short pause, a
caller who stops mid-number is not cut off, and only speech (not noise, not a cough) over the
bot interrupts it.

The caller's audio is espeak-ng speech over an 8 kHz μ-law line; the listener runs real
PocketSphinx in a thread pool. Frames are fed in audio time and the test waits for the
recognizer to catch up after each one, so results do not depend on how busy the machine is.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from paybot.dialog.payloads import Listen
from tests.caller_voice import caller_voice
from twilio_sim.voice import EspeakVoice
from voice_bridge.asr.pocketsphinx_engine import PocketSphinxEngine
from voice_bridge.call.answer_complete import answer_complete, complete_digit_counts
from voice_bridge.call.barge_in import interrupts, is_backchannel
from voice_bridge.call.listener import Listener
from voice_bridge.call.vad import EndOfTurnDetector, TurnEventType, turn_config
from voice_bridge.twilio import codec as A

ZIP = Listen("digits", min_digits=5, max_digits=9)
ACCOUNT = Listen("digits", min_digits=4, max_digits=20, timeout_s=10.0)
YES_NO = Listen("yes_no")

if not EspeakVoice.available():
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def asr() -> PocketSphinxEngine:
    return PocketSphinxEngine()


async def speech(*parts: str, pause_ms: int = 0) -> bytes:
    """The parts spoken by the test caller's voice, ``pause_ms`` apart, as line pcm16."""
    voice = caller_voice()
    said = [_trimmed(A.ulaw_to_pcm16(await voice.synthesize(p))) for p in parts]
    return (b"\0\0" * (pause_ms * 8)).join(said)


def _trimmed(pcm: bytes) -> bytes:
    """Without the synthesiser's own leading and trailing silence (so pauses are exact)."""
    x = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > 300)
    return x[loud[0] : loud[-1] + 1].tobytes() if loud.size else pcm


def line(pcm: bytes, tail_ms: int = 2500) -> bytes:
    quiet = np.random.default_rng(0).normal(0, 20, 8 * (400 + tail_ms))
    pad = A.samples_to_bytes(quiet)
    return A.ulaw_to_pcm16(A.pcm16_to_ulaw(pad[: 2 * 8 * 400] + pcm + pad[2 * 8 * 400 :]))


async def turns(asr, pool, listen: Listen, pcm: bytes, *, bot_speaking: bool = False):
    """Feed ``pcm`` frame by frame, letting the recognizer catch up after each; returns the
    events (type, reason, at_ms, speech_end_ms) and the finished turns' transcripts."""

    async def run(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    listener = Listener(asr, run)
    listener.expect(listen)
    events, texts = [], []
    for frame in A.iter_frames(pcm, A.PCM_FRAME_BYTES, pad=0):
        event = listener.feed(frame, bot_speaking=bot_speaking)
        if event is not None:
            events.append((event.type, event.reason, event.at_ms, event.speech_end_ms))
            if event.type is TurnEventType.TURN_END:
                turn = listener.take_turn()
                assert turn is not None
                texts.append((await turn.result()).text)
        turn = listener._turn
        while turn is not None and turn.behind_bytes > 0:  # noqa: ASYNC110 - a test's poll
            await asyncio.sleep(0.002)
    listener.drop_turn()
    return events, texts


# --- what counts as complete --------------------------------------------------------------------
def test_complete_answers_by_what_was_asked() -> None:
    assert complete_digit_counts(ZIP) == {5, 9}
    assert complete_digit_counts(ACCOUNT) == {20}
    assert complete_digit_counts(Listen("digits", 4, 4)) == {4}
    assert answer_complete(ZIP, "nine four one zero seven")
    assert not answer_complete(ZIP, "nine four one")
    assert not answer_complete(ZIP, "nine four one zero seven two")
    assert not answer_complete(ACCOUNT, "one zero zero two zero zero three zero zero")
    assert answer_complete(YES_NO, "yes")
    assert answer_complete(YES_NO, "mm no")
    assert not answer_complete(YES_NO, "no what is my")  # more is coming
    assert answer_complete(YES_NO, "no what is my balance")  # an anytime request, whole
    assert not answer_complete(YES_NO, "mhm")
    assert answer_complete(Listen("amount"), "fifty dollars and twenty cents")
    assert answer_complete(Listen("amount"), "the full amount")
    assert not answer_complete(Listen("amount"), "fifty")
    assert not answer_complete(Listen("free"), "yes")
    assert not answer_complete(None, "yes")
    assert answer_complete(YES_NO, "agent") and answer_complete(ZIP, "operator please")


def test_backchannels_do_not_interrupt_words_do() -> None:
    assert is_backchannel("mhm") and is_backchannel("uh huh") and is_backchannel("")
    assert not interrupts("mm", 300) and not interrupts("", 500)
    assert interrupts("agent", 100) and interrupts("", 1000)


# --- end of turn with the real recognizer ---------------------------------------------------
async def test_a_clear_yes_ends_the_turn_after_a_short_pause(asr, pool) -> None:
    events, texts = await turns(asr, pool, YES_NO, line(await speech("yes")))
    assert [e[0] for e in events] == [TurnEventType.SPEECH_START, TurnEventType.TURN_END]
    _kind, reason, at_ms, speech_end_ms = events[1]
    assert reason == "complete", texts
    assert at_ms - speech_end_ms < turn_config("yes_no").end_silence_ms
    assert texts[0] in ("yes", "yeah", "yep"), texts


async def test_all_five_digits_of_a_zip_end_the_turn_early(asr, pool) -> None:
    events, texts = await turns(asr, pool, ZIP, line(await speech("nine four one zero seven")))
    assert [e[0] for e in events] == [TurnEventType.SPEECH_START, TurnEventType.TURN_END]
    assert events[1][1] == "complete", texts
    assert events[1][2] - events[1][3] < turn_config("digits").end_silence_ms


async def test_a_pause_mid_account_number_does_not_cut_the_caller_off(asr, pool) -> None:
    pcm = line(await speech("one zero zero", "two zero zero three zero zero", pause_ms=700))
    events, texts = await turns(asr, pool, ACCOUNT, pcm)
    assert [e[0] for e in events] == [TurnEventType.SPEECH_START, TurnEventType.TURN_END]
    assert events[1][1] == "silence"  # the long pause: an account number has no fixed length
    assert len(texts[0].split()) >= 7, texts


async def test_a_pause_mid_zip_does_not_cut_the_caller_off(asr, pool) -> None:
    pcm = line(await speech("nine four one", "zero seven", pause_ms=600))
    events, texts = await turns(asr, pool, ZIP, pcm)
    assert [e[0] for e in events] == [TurnEventType.SPEECH_START, TurnEventType.TURN_END], texts


async def test_free_speech_keeps_the_long_pause(asr, pool) -> None:
    events, _texts = await turns(asr, pool, Listen("free"), line(await speech("yes")))
    assert events[-1][1] == "silence"
    assert events[-1][2] - events[-1][3] >= turn_config("free").end_silence_ms


# --- barge-in ---------------------------------------------------------------------------------
def _burst(rng: np.random.Generator, kind: str) -> bytes:
    if kind == "cough":
        n = int(8 * rng.uniform(200, 450))
        t = np.arange(n) / 8000
        x = rng.normal(0, 1, n)
        x = np.convolve(x, np.ones(3) / 3, "same") - np.convolve(x, np.ones(25) / 25, "same")
        x *= np.minimum(t / 0.01, 1.0) * np.exp(-t / rng.uniform(0.08, 0.15))
    else:
        x = rng.normal(0, 1, int(8 * rng.uniform(300, 800)))
    x *= 32768 * 10 ** (rng.uniform(-22, -10) / 20) / np.sqrt(np.mean(x**2))
    return A.samples_to_bytes(np.clip(x, -32767, 32767))


def _over_bot(asr, pcm: bytes, expected: str) -> bool:
    """Does ``pcm`` spoken over the bot interrupt it? The detector and the bridge's rule on
    the recognizer's partial and final words (``bench/bench_barge_in.py`` does the same)."""
    detector = EndOfTurnDetector(config=replace(turn_config(expected)), bot_speaking=True)
    recognizer, opened, previous, steady_ms = None, 0.0, "", 0.0
    for frame in A.iter_frames(pcm, A.PCM_FRAME_BYTES, pad=0):
        event = detector.process(frame)
        if event is not None and event.type is TurnEventType.SPEECH_START:
            recognizer, opened = asr.recognizer(expected), event.at_ms
            recognizer.accept(event.audio)
            continue
        if recognizer is None:
            continue
        recognizer.accept(frame)
        if event is not None and event.type is TurnEventType.TURN_END:
            return interrupts(recognizer.final().text)
        words = recognizer.partial()  # as the bridge's Listener.settled_words
        steady_ms = steady_ms + 20 if words == previous else 0.0
        previous = words
        if expected == "free":
            settled = words if steady_ms >= 100 else ""
        else:
            settled = words if answer_complete(Listen(expected), words) else ""
        if interrupts(settled, detector.now_ms - opened):
            recognizer.close()
            return True
    if recognizer is not None:
        recognizer.close()
    return False


@pytest.mark.parametrize("kind", ["noise", "cough"])
@pytest.mark.parametrize("expected", ["yes_no", "free"])
def test_noise_and_coughs_over_the_bot_do_not_interrupt_it(asr, kind, expected) -> None:
    rng = np.random.default_rng(5)
    for _ in range(6):
        assert not _over_bot(asr, line(_burst(rng, kind), tail_ms=1500), expected)


@pytest.mark.parametrize("expected", ["yes_no", "free"])
def test_a_spoken_agent_over_the_bot_interrupts_it(asr, expected) -> None:
    assert _over_bot(asr, line(asyncio.run(speech("agent")), tail_ms=1500), expected)
