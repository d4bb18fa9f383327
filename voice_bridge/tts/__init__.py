"""Speech synthesis for the bridge: Piper voices and speech-text normalisation."""

from voice_bridge.tts.normalize import normalize_for_speech
from voice_bridge.tts.piper_engine import (
    PiperTts,
    SpokenSentence,
    TtsError,
    default_voice_path,
    split_sentences,
)

__all__ = [
    "PiperTts",
    "SpokenSentence",
    "TtsError",
    "default_voice_path",
    "normalize_for_speech",
    "split_sentences",
]
