"""The test caller's voice: espeak-ng, deliberately unlike the bot's Piper voice.

Each phrase is synthesised once (``espeak-ng --stdout``, in a worker thread, never on the
event loop), resampled to 8 kHz and μ-law encoded: exactly what a phone line would carry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import subprocess
from collections import OrderedDict

from voice_bridge.twilio.codec import TWILIO_RATE, pcm16_to_ulaw, read_wav_bytes, resample

log = logging.getLogger(__name__)
ESPEAK = "espeak-ng"
INSTALL_HINT = "install it with: sudo apt-get install espeak-ng"
SYNTH_TIMEOUT_S = 30.0


class VoiceUnavailable(RuntimeError):
    """The caller's speech synthesiser is missing or failed."""


DEFAULT_VOICE = "en-us+klatt2"
"""The Klatt variant at 170 words a minute (``paybot call``'s voice): among the espeak-ng voices
``bench/bench_asr.py`` tried, one of those PocketSphinx hears best (7% digit errors)."""
DEFAULT_WPM = 170
CALLER_VOICES: tuple[str, ...] = (DEFAULT_VOICE, "en-us+klatt", "en-us+klatt3")
"""The voices the voice tests pick their caller from, one per run (:func:`pick_voice`): those
the default engine (PocketSphinx) hears well enough to finish a call, measured with
``bench/bench_asr.py --only digits --per-voice --voice NAME`` (6-7% digit errors; every other
English voice tried, 9-60%: the figures are in the README's ``paybot call`` section), and
finishing every spoken call of tests/test_spoken_calls.py."""


def pick_voice(seed: int, pool: tuple[str, ...] = CALLER_VOICES) -> str:
    """The caller voice for a test run with this ``seed`` (the same seed, the same voice)."""
    return random.Random(seed).choice(pool)


class EspeakVoice:
    """Synthesise caller phrases as 8 kHz μ-law, cached per text.

    Args:
        voice: espeak-ng voice name (``-v``), e.g. ``en-us`` or ``en-us+klatt2``.
        words_per_minute: speaking rate (``-s``).
        cache_size: how many phrases to keep.
    """

    def __init__(
        self, voice: str = DEFAULT_VOICE, words_per_minute: int = DEFAULT_WPM,
        cache_size: int = 256,
    ) -> None:
        self.voice = voice
        self.words_per_minute = words_per_minute
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size

    @staticmethod
    def available() -> bool:
        return shutil.which(ESPEAK) is not None

    async def synthesize(self, text: str) -> bytes:
        """``text`` spoken, as μ-law 8 kHz bytes.

        Raises:
            VoiceUnavailable: espeak-ng is not installed or failed.
        """
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        ulaw = await asyncio.to_thread(self.synthesize_blocking, text)
        self._cache[text] = ulaw
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ulaw

    def synthesize_blocking(self, text: str) -> bytes:
        """The synchronous synthesis (call it from a worker thread)."""
        exe = shutil.which(ESPEAK)
        if exe is None:
            raise VoiceUnavailable(f"{ESPEAK} is not installed; {INSTALL_HINT}")
        command = [exe, "--stdout", "-v", self.voice, "-s", str(self.words_per_minute), "--", text]
        try:
            done = subprocess.run(command, capture_output=True, timeout=SYNTH_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VoiceUnavailable(f"{ESPEAK} failed: {exc}") from None
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip()[:200]
            raise VoiceUnavailable(f"{ESPEAK} exited with {done.returncode}: {reason}")
        try:
            pcm16, rate = read_wav_bytes(done.stdout)
        except ValueError as exc:
            raise VoiceUnavailable(f"{ESPEAK} gave no usable audio: {exc}") from None
        log.debug("espeak-ng synthesised %d samples at %d Hz", len(pcm16) // 2, rate)
        return pcm16_to_ulaw(resample(pcm16, rate, TWILIO_RATE))
