"""Audio helpers and VAD/end-of-turn detection, on synthetic signals and real FSDD speech."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from voice_bridge.asr.grammars import ExpectedInput
from voice_bridge.audio import StreamingUpsampler
from voice_bridge.call.vad import (
    EndOfTurnDetector,
    TurnConfig,
    TurnEventType,
    turn_config,
)
from voice_bridge.twilio import codec as A

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
if not FSDD.is_dir():
    FSDD = Path("/work/shared/data/fsdd")
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD}")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python 3.13+
        audioop = None


def tone(ms: float, freq: float = 440.0, dbfs: float = -20.0, rate: int = 8000) -> bytes:
    t = np.arange(round(rate * ms / 1000)) / rate
    return A.samples_to_bytes(np.sin(2 * np.pi * freq * t) * 32768 * 10 ** (dbfs / 20))


def noise(ms: float, dbfs: float = -62.0, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return A.samples_to_bytes(rng.normal(0, 32768 * 10 ** (dbfs / 20), round(8 * ms)))


def level_at(pcm16: bytes, rate: int, freq: float) -> float:
    """Amplitude of a sinusoid at ``freq`` (least-squares fit)."""
    x = A.bytes_to_samples(pcm16).astype(float)[200:-200]
    t = np.arange(x.size) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    return float(np.hypot(*coef))


def run(detector: EndOfTurnDetector, pcm16: bytes) -> list:
    return [e for f in A.iter_frames(pcm16, A.PCM_FRAME_BYTES, pad=0) if (e := detector.process(f))]


# --- μ-law -----------------------------------------------------------------------------------


@pytest.mark.skipif(audioop is None, reason="audioop not available on this Python")
def test_ulaw_encode_matches_audioop_for_every_sample() -> None:
    every = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert A.pcm16_to_ulaw_numpy(every) == audioop.lin2ulaw(every, 2) == A.pcm16_to_ulaw(every)


@pytest.mark.skipif(audioop is None, reason="audioop not available on this Python")
def test_ulaw_decode_matches_audioop_for_every_code() -> None:
    codes = bytes(range(256))
    assert A.ulaw_to_pcm16_numpy(codes) == audioop.ulaw2lin(codes, 2) == A.ulaw_to_pcm16(codes)


def test_ulaw_round_trip() -> None:
    codes = bytes(c for c in range(256) if c != 0x7F)  # 0x7F is "-0", it re-encodes as 0xFF
    assert A.pcm16_to_ulaw(A.ulaw_to_pcm16(codes)) == codes
    speech = tone(500, 300, -10) + tone(500, 1200, -40)
    back = A.bytes_to_samples(A.ulaw_to_pcm16(A.pcm16_to_ulaw(speech))).astype(float)
    orig = A.bytes_to_samples(speech).astype(float)
    snr = 10 * np.log10(np.sum(orig**2) / np.sum((orig - back) ** 2))
    assert snr > 30  # G.711 gives ~38 dB on loud tones
    assert A.ulaw_to_pcm16(bytes([A.ULAW_SILENCE])) == b"\x00\x00"


def test_odd_pcm_length_rejected() -> None:
    with pytest.raises(ValueError):
        A.pcm16_to_ulaw(b"\x00\x00\x00")


# --- resampling and framing -------------------------------------------------------------------


def test_resample_8k_to_16k_keeps_tone() -> None:
    up = A.resample(tone(1000, 1000, -12), 8000, 16000)
    assert len(up) == 2 * 16000
    assert level_at(up, 16000, 1000) == pytest.approx(32768 * 10 ** (-12 / 20), rel=0.02)
    assert level_at(up, 16000, 7000) < 30  # the 8 kHz - 1 kHz image is filtered out


def test_resample_22050_to_8000_anti_aliases() -> None:
    rate = 22050
    passband = A.resample(tone(1000, 1000, -12, rate), rate, 8000)
    assert len(passband) == 2 * 8000
    assert level_at(passband, 8000, 1000) == pytest.approx(8231, rel=0.02)
    # 6 kHz is above the new Nyquist: without a filter it would alias to 2 kHz at full level
    aliased = A.resample(tone(1000, 6000, -12, rate), rate, 8000)
    assert level_at(aliased, 8000, 2000) < 8231 * 0.01  # > 40 dB down


def test_streaming_upsampler_is_seamless() -> None:
    signal = tone(1000, 700, -15) + noise(300, -40)
    whole = StreamingUpsampler().process(signal)
    up = StreamingUpsampler()
    framed = b"".join(up.process(f) for f in A.iter_frames(signal, 320, pad=None))
    assert framed == whole
    assert level_at(whole[:32000], 16000, 700) == pytest.approx(32768 * 10 ** (-15 / 20), rel=0.02)
    assert level_at(whole[:32000], 16000, 8000 - 700) < 60


def test_ulaw_frames() -> None:
    frames = A.ulaw_frames(b"\x01" * 330)
    assert [len(f) for f in frames] == [160, 160, 160]
    assert frames[-1] == b"\x01" * 10 + b"\xff" * 150
    out = A.pcm16_to_ulaw_frames(tone(1000, 500, rate=22050), 22050)
    assert len(out) == 50 and all(len(f) == A.ULAW_FRAME_BYTES for f in out)


def test_wav_round_trip(tmp_path: Path) -> None:
    pcm = tone(250, 440)
    A.write_wav(tmp_path / "x.wav", pcm, 8000)
    assert A.read_wav(tmp_path / "x.wav") == (pcm, 8000)


@needs_fsdd
def test_reads_fsdd_recording() -> None:
    pcm, rate = A.read_wav(FSDD / "3_george_12.wav")
    assert rate == 8000 and 200 < A.duration_ms(pcm, rate) < 1500


# --- VAD / end of turn: synthetic -------------------------------------------------------------


@pytest.mark.parametrize("expected", list(ExpectedInput))
def test_turn_ends_after_expected_silence(expected: ExpectedInput) -> None:
    cfg = turn_config(expected)
    det = EndOfTurnDetector()
    det.configure(cfg)
    events = run(det, noise(1000) + tone(600, 300) + noise(3000, seed=1))
    assert [e.type for e in events] == [TurnEventType.SPEECH_START, TurnEventType.TURN_END]
    start, end = events
    assert start.speech_start_ms == 1000 and start.at_ms == 1000 + cfg.start_ms
    assert end.speech_end_ms == 1600 and end.reason == "silence"
    assert end.at_ms == 1600 + cfg.end_silence_ms


def test_end_silence_differs_per_expected_input() -> None:
    got = {e: turn_config(e).end_silence_ms for e in ExpectedInput}
    assert got[ExpectedInput.YES_NO] < got[ExpectedInput.FREE] < got[ExpectedInput.DIGITS]
    assert got[ExpectedInput.AMOUNT] == 800


def test_short_noise_does_not_start_a_turn() -> None:
    det = EndOfTurnDetector()
    det.configure(TurnConfig(start_ms=120))
    assert run(det, noise(500) + tone(80, 2000, -10) + noise(2000)) == []


def test_barge_in_needs_longer_speech_while_bot_talks() -> None:
    det = EndOfTurnDetector(bot_speaking=True)
    det.configure(turn_config("free"))
    barge_in_ms = turn_config("free").barge_in_ms
    assert run(det, noise(300) + tone(barge_in_ms - 60, 250) + noise(1500)) == []  # "mm"
    events = run(det, tone(700, 250) + noise(1500))
    assert events[0].type is TurnEventType.SPEECH_START
    in_frames = -(-barge_in_ms // 20) * 20  # counted in whole 20 ms frames
    assert events[0].at_ms - events[0].speech_start_ms == pytest.approx(in_frames)


@pytest.mark.parametrize("seed", range(5))
def test_a_loud_noise_burst_does_not_barge_in_but_opens_a_turn_when_the_bot_is_quiet(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    burst = noise(float(rng.uniform(400, 900)), dbfs=float(rng.uniform(-30, -12)), seed=seed + 9)
    talking = EndOfTurnDetector(bot_speaking=True)
    talking.configure(turn_config("yes_no"))
    assert run(talking, noise(300) + burst + noise(1500)) == []  # unvoiced: not a caller
    quiet = EndOfTurnDetector()
    quiet.configure(turn_config("yes_no"))
    assert [e.type for e in run(quiet, noise(300) + burst + noise(1500))][:1] == [
        TurnEventType.SPEECH_START
    ]


def test_barge_in_needs_well_under_500_ms_of_speech() -> None:
    assert 150 <= turn_config("free").barge_in_ms <= 350  # set from bench/bench_barge_in.py


def test_a_complete_answer_ends_the_turn_after_a_short_pause() -> None:
    cfg = turn_config("yes_no")
    det = EndOfTurnDetector()
    det.configure(cfg)
    events = run(det, noise(500) + tone(400, 300))
    assert [e.type for e in events] == [TurnEventType.SPEECH_START]
    det.answer_complete = True  # the listener read a complete answer in the partial result
    end = run(det, noise(2000, seed=3))[0]
    assert end.type is TurnEventType.TURN_END and end.reason == "complete"
    assert end.at_ms == 900 + cfg.complete_silence_ms
    assert cfg.complete_silence_ms < cfg.end_silence_ms


def test_no_input_waits_while_the_bridge_is_busy_and_restarts_on_a_key() -> None:
    det = EndOfTurnDetector()
    det.configure(turn_config("digits", no_input_ms=1500))
    det.waiting = False  # the bot is still working on the caller's last input
    assert run(det, noise(4000)) == []
    det.waiting = True
    assert run(det, noise(1000)) == []
    det.restart_no_input()  # a key: the caller is there
    assert run(det, noise(1400)) == []
    assert [e.type for e in run(det, noise(200))] == [TurnEventType.NO_INPUT]


def test_no_input_is_armed_again_after_a_turn_that_got_no_reply() -> None:
    det = EndOfTurnDetector()
    det.configure(turn_config("yes_no", no_input_ms=1500))
    events = run(det, noise(500) + tone(400, 300) + noise(800, seed=2))
    assert [e.type for e in events] == [TurnEventType.SPEECH_START, TurnEventType.TURN_END]
    assert run(det, noise(3000)) == []  # a turn was taken: the reply will ask anew
    det.rearm_no_input()  # ...but it held no words and got no reply
    assert run(det, noise(1400)) == []
    assert [e.type for e in run(det, noise(200))] == [TurnEventType.NO_INPUT]
    assert run(det, noise(3000)) == []  # once


def test_max_turn_length_cuts_turn() -> None:
    det = EndOfTurnDetector()
    det.configure(turn_config("yes_no"))
    events = run(det, noise(200) + tone(8000, 200))
    assert events[1].type is TurnEventType.TURN_END and events[1].reason == "max_length"
    assert events[1].at_ms == 200 + 5000
    assert events[2].type is TurnEventType.SPEECH_START  # still talking: a new turn opens


def test_no_input_reported_once() -> None:
    det = EndOfTurnDetector()
    det.configure(turn_config("digits", no_input_ms=1500))
    events = run(det, noise(4000))
    assert [(e.type, e.at_ms) for e in events] == [(TurnEventType.NO_INPUT, 1500)]


def test_pre_roll_audio_covers_onset() -> None:
    det = EndOfTurnDetector()
    det.configure(TurnConfig(start_ms=120, pre_roll_ms=200))
    start = run(det, noise(1000) + tone(400, 300) + noise(1000))[0]
    assert A.duration_ms(start.audio, 8000) == pytest.approx(200 + 120)


# --- VAD / end of turn: real speech -----------------------------------------------------------


def fsdd_sequence(files: list[str], gap_ms: int, seed: int = 0) -> tuple[bytes, list[float]]:
    """Lead noise, FSDD digits separated by gaps of line noise, tail noise; and digit ends."""
    pcm = noise(800, seed=seed)
    ends = []
    for i, name in enumerate(files):
        digit, _ = A.read_wav(FSDD / name)
        pcm += A.ulaw_to_pcm16(A.pcm16_to_ulaw(digit))
        ends.append(A.duration_ms(pcm, 8000))
        if i < len(files) - 1:
            pcm += noise(gap_ms, seed=seed + i + 1)
    return pcm + noise(2500, seed=seed + 99), ends


def reference_bounds(name: str) -> tuple[float, float]:
    """Speech onset/end in a recording: first/last 10 ms within 30 dB of its loudest 10 ms."""
    pcm = A.ulaw_to_pcm16(A.pcm16_to_ulaw(A.read_wav(FSDD / name)[0]))
    levels = np.array([A.rms_dbfs(pcm[i : i + 160]) for i in range(0, len(pcm) - 159, 160)])
    loud = np.nonzero(levels > levels.max() - 30)[0]
    return loud[0] * 10.0, (loud[-1] + 1) * 10.0


@needs_fsdd
def test_one_turn_per_spoken_digit_with_accurate_bounds() -> None:
    # Measured over all 2,000 recordings: one turn each; detector minus reference bounds has
    # median 0 ms (onset) and 10 ms (end), 98% within -60..+125 ms.
    names = random.Random(7).sample(sorted(p.name for p in FSDD.glob("*.wav")), 80)
    start_err, end_err = [], []
    for name in names:
        det = EndOfTurnDetector()
        det.configure(turn_config("digits"))
        pcm, _ = fsdd_sequence([name], 0)
        events = run(det, pcm)
        assert [e.type for e in events] == [TurnEventType.SPEECH_START, TurnEventType.TURN_END]
        onset, end = reference_bounds(name)
        start_err.append(events[0].speech_start_ms - 800 - onset)
        end_err.append(events[1].speech_end_ms - 800 - end)
        assert events[1].at_ms - events[1].speech_end_ms == 1000
    assert abs(np.median(start_err)) <= 30 and abs(np.median(end_err)) <= 30
    assert np.percentile(np.abs(start_err), 90) <= 130
    assert np.percentile(np.abs(end_err), 90) <= 130


@needs_fsdd
def test_digit_pauses_keep_one_turn_but_end_a_yes_no_turn() -> None:
    files = ["4_jackson_3.wav", "2_nicolas_10.wav", "7_lucas_21.wav", "1_george_5.wav"]
    pcm, _ = fsdd_sequence(files, gap_ms=650)
    end = 800 + 3 * 650 + sum(A.duration_ms(A.read_wav(FSDD / f)[0], 8000) for f in files[:-1])
    end += reference_bounds(files[-1])[1]
    digits = EndOfTurnDetector()
    digits.configure(turn_config("digits"))
    events = run(digits, pcm)
    assert [e.type for e in events] == [TurnEventType.SPEECH_START, TurnEventType.TURN_END]
    assert abs(events[1].at_ms - (end + 1000)) <= 130
    yes_no = EndOfTurnDetector()
    yes_no.configure(turn_config("yes_no"))
    turns = [e for e in run(yes_no, pcm) if e.type is TurnEventType.TURN_END]
    assert len(turns) == len(files)


@needs_fsdd
def test_detector_is_deterministic() -> None:
    pcm, _ = fsdd_sequence(["9_george_3.wav", "0_lucas_4.wav"], gap_ms=400)
    results = []
    for _ in range(2):
        det = EndOfTurnDetector()
        det.configure(turn_config("amount"))
        results.append(run(det, pcm))
    assert results[0] == results[1] and results[0]
