"""What the caller heard, in words: the bot's played audio through the project's ASR.

Optional (``paybot call --transcribe``): free-speech recognition of 8 kHz phone audio is rough,
so the words are approximate; they help a person read a transcript, not a test assert on it.
The engine loads and decodes in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio

from paybot.settings import Settings
from voice_bridge.asr import AsrEngine, ExpectedInput, make_asr_engine
from voice_bridge.twilio.codec import PCM_FRAME_BYTES, iter_frames, ulaw_to_pcm16


class BotTranscriber:
    """Transcribes μ-law 8 kHz audio with one loaded ASR engine."""

    def __init__(self, engine: AsrEngine) -> None:
        self._engine = engine

    @classmethod
    async def load(cls, settings: Settings) -> BotTranscriber:
        """The engine the bridge uses (``PAYBOT_ASR_ENGINE``, Vosk when a model is set)."""
        return cls(
            await asyncio.to_thread(
                make_asr_engine, settings.vosk_model, 1, settings.asr_engine
            )
        )

    async def transcribe(self, ulaw: bytes) -> str:
        return await asyncio.to_thread(self._transcribe, ulaw)

    def _transcribe(self, ulaw: bytes) -> str:
        with self._engine.recognizer(ExpectedInput.FREE) as recognizer:
            for frame in iter_frames(ulaw_to_pcm16(ulaw), PCM_FRAME_BYTES, pad=0):
                recognizer.accept(frame)
            return recognizer.final().text
