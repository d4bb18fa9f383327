"""When a caller speaking over the bot interrupts it.

A turn opens over the bot after ``TurnConfig.barge_in_ms`` of speech (:mod:`voice_bridge.call.vad`).
It stops the bot as soon as the recognizer hears words in it that are more than a backchannel
("mhm", "uh huh": the caller is listening, not taking the floor), whether in its partial result
while the caller speaks (:attr:`voice_bridge.call.listener.Listener.settled_words`: for free speech
once it has stayed the same for 100 ms of audio, as a first guess flickers; under a grammar
once it is a complete answer, as "mm" reads "that", the start of "that's right") or in its
final transcript, or once the caller has
spoken over the bot for ``SUSTAINED_MS``. A noise or a cough that opens a turn but holds no
word lets the bot go on.

``bench/bench_barge_in.py`` measures this rule per ``barge_in_ms`` on noise, coughs,
backchannels and real interruptions; the default threshold comes from it.
"""

from __future__ import annotations

from paybot.spoken.fillers import FILLERS

# What a listening caller says over the bot: heard, not an interruption.
BACKCHANNELS = FILLERS | {"mm-hmm"}
SUSTAINED_MS = 1000.0  # speech over the bot for this long interrupts it, words or not


def is_backchannel(words: str) -> bool:
    """True for nothing but backchannel words (or nothing at all)."""
    text = words.strip().lower()
    return not text or text in BACKCHANNELS or all(w in BACKCHANNELS for w in text.split())


def interrupts(words: str, speech_ms: float = 0.0) -> bool:
    """Whether a turn over the bot with these ``words`` so far (partial or final) and
    ``speech_ms`` since it opened stops the bot."""
    return not is_backchannel(words) or speech_ms >= SUSTAINED_MS
