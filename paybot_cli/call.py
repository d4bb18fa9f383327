"""``paybot call``: phone the running bridge the way Twilio would, and print what happened.

It posts the signed voice webhook, opens the Media Stream the TwiML names, streams the caller's
audio (espeak-ng speech, or silence) every 20 ms, keys DTMF, plays the bot's audio back in real
time with Twilio's mark and clear rules, and prints a timed transcript. With ``--script`` the
caller follows a YAML script (see ``twilio_sim/script.py`` and ``examples/calls/``);
without it, each line typed is said (``press 123#`` keys, ``hangup`` or Ctrl-D hangs up).
Start the stack first (``make run``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import threading

from paybot.phone import InvalidPhoneNumber, to_e164
from paybot.settings import Settings
from paybot_cli.transcriber import BotTranscriber
from twilio_sim import (
    DEFAULT_FROM,
    DEFAULT_TO,
    CallEnded,
    CallerSession,
    CallerTimeout,
    CallEvent,
    CallResult,
    EspeakVoice,
    Script,
    ScriptError,
    StepFailed,
    VoiceUnavailable,
    WebhookError,
    format_event,
    load_script,
    parse_line,
    run_script,
    run_step,
)
from twilio_sim.script import BargeIn, Hangup, Say
from twilio_sim.voice import DEFAULT_VOICE, INSTALL_HINT

CALL_SID = re.compile(r"CA[0-9a-f]{32}")


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Place one call; 0 when it went as scripted, 1 when it failed, 2 on bad input."""
    try:
        script = load_script(args.script) if args.script else None
        caller = to_e164(args.caller or (script and script.caller) or DEFAULT_FROM)
        called = to_e164(args.called or (script and script.called) or DEFAULT_TO)
    except ScriptError as exc:
        return _fail(str(exc), 2)
    except InvalidPhoneNumber as exc:
        return _fail(f"--from/--to: {exc}", 2)
    if args.call_sid and not CALL_SID.fullmatch(args.call_sid):
        return _fail("--call-sid must be CA followed by 32 hex digits", 2)
    speaks = script is None or any(isinstance(s, Say | BargeIn) for s in script.steps)
    if speaks and not EspeakVoice.available():
        return _fail(f"the caller's voice needs espeak-ng; {INSTALL_HINT}", 2)
    return asyncio.run(_place(settings, args, script, caller, called))


async def _place(
    settings: Settings, args: argparse.Namespace, script: Script | None, caller: str, called: str
) -> int:
    transcriber = await BotTranscriber.load(settings) if args.transcribe else None
    session = CallerSession(
        settings=settings, url=args.url, from_=caller, to=called, call_sid=args.call_sid,
        on_event=_print_event, record=args.wav is not None, transcriber=transcriber,
        wait_timeout_s=args.timeout, voice=EspeakVoice(args.voice or DEFAULT_VOICE),
    )
    code = 0
    try:
        async with session as call:
            if script is not None:
                await run_script(call, script)
            else:
                print("-- type what to say; 'press 123#' keys; 'hangup' or Ctrl-D hangs up",
                      flush=True)
                await _interactive(call)
    except WebhookError as exc:
        return _fail(str(exc), 1)
    except (StepFailed, VoiceUnavailable) as exc:
        code = _fail(str(exc), 1)
    except OSError as exc:  # the websocket could not be opened
        return _fail(f"could not open the media stream: {exc}", 1)
    _print_summary(session.result())
    if args.wav is not None:
        await session.write_wav(str(args.wav))
        print(f"-- saved {args.wav} (left caller, right bot)", flush=True)
    return code


async def _interactive(call: CallerSession) -> None:
    """Say each typed line until EOF, ``hangup``, or the bridge ends the call."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    _start_stdin_reader(asyncio.get_running_loop(), lines)
    ended = asyncio.create_task(call.wait_ended())
    try:
        number = 0
        while True:
            getter = asyncio.create_task(lines.get())
            await asyncio.wait({getter, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                return
            line = getter.result()
            if line is None:
                await call.hangup()
                return
            number += 1
            try:
                step = parse_line(line, number)
                if step is not None:
                    await run_step(call, step)
            except (ScriptError, CallerTimeout, VoiceUnavailable) as exc:
                print(f"-- {exc}", flush=True)
                continue
            except CallEnded:
                return
            if isinstance(step, Hangup):
                return
    finally:
        ended.cancel()


def _start_stdin_reader(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue) -> None:
    """Read stdin in a daemon thread (a blocked read must not keep the process alive)."""

    def read() -> None:
        for line in sys.stdin:
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:  # the loop is gone: the call is over
                return
        try:
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:
            return

    threading.Thread(target=read, name="paybot-call-stdin", daemon=True).start()


def _print_event(event: CallEvent) -> None:
    print(format_event(event), flush=True)


def _print_summary(result: CallResult) -> None:
    latencies = sorted(result.latencies_ms)
    if latencies:
        middle = latencies[len(latencies) // 2]
        answered = (f"{len(latencies)} answered, response latency median {middle:.0f} ms, "
                    f"max {latencies[-1]:.0f} ms")
    else:
        answered = "none answered"
    print(f"-- caller turns: {len(result.caller_turns)} ({answered}); bot turns: "
          f"{len(result.bot_turns)}; late frames: {result.late_frames}; "
          f"marks echoed: {len(result.marks)}", flush=True)


def _fail(message: str, code: int) -> int:
    print(f"paybot: {message}", file=sys.stderr, flush=True)
    return code

