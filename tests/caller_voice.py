"""The simulated caller's voice for this test run: one of ``twilio_sim.voice.CALLER_VOICES``,
picked from a seed, so that the voice tests are not tuned to one voice.

The seed and the voice are in the pytest header, and in the report of every failed test that
spoke (``tests/conftest.py``). ``PAYBOT_TEST_VOICE_SEED=N`` replays a run's pick;
``PAYBOT_TEST_VOICE=NAME`` names the voice outright (any espeak-ng voice, also one outside the
pool). Without either a fresh seed is drawn and exported, so that processes the tests start
pick the same voice. Given the voice, the caller's audio is the same on every run.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from twilio_sim.voice import CALLER_VOICES, EspeakVoice, pick_voice

SEED_ENV = "PAYBOT_TEST_VOICE_SEED"
VOICE_ENV = "PAYBOT_TEST_VOICE"


@dataclass(frozen=True)
class VoiceChoice:
    """The run's caller voice and the seed it was picked with (``None``: named outright)."""

    voice: str
    seed: int | None

    def describe(self) -> str:
        if self.seed is None:
            return f"caller voice {self.voice} (from {VOICE_ENV})"
        pool = ", ".join(CALLER_VOICES)
        return (f"caller voice {self.voice}, picked from [{pool}] with seed {self.seed} "
                f"(replay: {SEED_ENV}={self.seed})")


def choose(environ: Mapping[str, str]) -> VoiceChoice:
    """The voice ``environ`` asks for, else one picked with its seed (a fresh one if unset).

    Raises:
        ValueError: The seed is not a whole number, or the voice name is blank.
    """
    if VOICE_ENV in environ:
        voice = environ[VOICE_ENV].strip()
        if not voice:
            raise ValueError(f"{VOICE_ENV} is set but empty (an espeak-ng voice, e.g. en-us)")
        return VoiceChoice(voice, None)
    raw = environ.get(SEED_ENV, "").strip()
    try:
        seed = int(raw) if raw else secrets.randbelow(1_000_000)
    except ValueError:
        raise ValueError(f"{SEED_ENV} must be a whole number, got {raw!r}") from None
    return VoiceChoice(pick_voice(seed), seed)


_choice: VoiceChoice | None = None
_spoke = False
_spoke_at_all = False


def configure(environ: MutableMapping[str, str]) -> VoiceChoice:
    """Pick the run's voice once (at the start of the run) and export its seed."""
    global _choice
    _choice = choose(environ)
    if _choice.seed is not None:
        environ[SEED_ENV] = str(_choice.seed)
    return _choice


def current() -> VoiceChoice:
    return _choice if _choice is not None else configure({})


def caller_voice() -> EspeakVoice:
    """The run's caller voice, to give a :class:`twilio_sim.CallerSession`; notes that the
    current test spoke (its failure report then names the voice)."""
    global _spoke, _spoke_at_all
    _spoke = _spoke_at_all = True
    return EspeakVoice(current().voice)


def start_test() -> None:
    global _spoke
    _spoke = False


def spoke_in_test() -> bool:
    return _spoke


def spoke_at_all() -> bool:
    return _spoke_at_all
