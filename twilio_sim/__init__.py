"""A test caller that dials the bridge over Twilio's real protocol (``paybot call``).

One job per module: ``webhook`` (the signed voice webhook and its TwiML), ``client`` (the
caller's API: say, press, wait for the bot, barge in, hang up), ``line`` (Twilio's end of the
Media Stream: the 20 ms clock, sending, receiving), ``playback`` (Twilio's playback queue,
marks and ``clear``), ``turns`` (turns, latency, events), ``result`` (what a call recorded),
``transcript`` (its wording), ``voice`` (espeak-ng speech), ``script`` (call scripts),
``wav`` (a stereo recording). Optional ASR of the bot's audio (``paybot call --transcribe``)
is in :mod:`paybot_cli.transcriber`: this package depends only on the Twilio edge
(:mod:`voice_bridge.twilio`) and paybot's settings.

```python
from twilio_sim import CallerSession, load_script, run_script

async with CallerSession(settings=settings, url=bridge_url, from_="+15555550100") as call:
    await run_script(call, load_script("examples/calls/james_pays.yml"))
result = call.result()
assert result.late_frames == 0 and max(result.latencies_ms) < 1500
```
"""

from twilio_sim.client import (
    DEFAULT_FROM,
    DEFAULT_TO,
    CallEnded,
    CallerSession,
    CallerTimeout,
)
from twilio_sim.result import BotTurn, CallerTurn, CallResult
from twilio_sim.script import (
    Script,
    ScriptError,
    StepFailed,
    load_script,
    parse_line,
    parse_script,
    run_script,
    run_step,
)
from twilio_sim.transcript import CallEvent, format_event
from twilio_sim.voice import EspeakVoice, VoiceUnavailable
from twilio_sim.webhook import WebhookError

__all__ = [
    "DEFAULT_FROM",
    "DEFAULT_TO",
    "BotTurn",
    "CallEnded",
    "CallEvent",
    "CallResult",
    "CallerSession",
    "CallerTimeout",
    "CallerTurn",
    "EspeakVoice",
    "Script",
    "ScriptError",
    "StepFailed",
    "VoiceUnavailable",
    "WebhookError",
    "format_event",
    "load_script",
    "parse_line",
    "parse_script",
    "run_script",
    "run_step",
]
