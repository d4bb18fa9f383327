"""Call scripts for ``paybot call --script``: what the caller says and keys, in order.

A script is YAML: an optional ``from``/``to`` (the CLI's ``--from``/``--to`` win) and a list
of ``steps``, each one of:

```yaml
from: "+15555550100"
steps:
  - wait_bot                  # wait until the bot has spoken and its reply has played out
  - wait_bot: 30              # ... giving it up to 30 s (default 20)
  - say: yes please           # speak (espeak-ng); first waits for the bot's reply to end
  - press: 4242424242424242#  # key DTMF digits 150 ms apart; also waits for the bot first
  - press: {keys: "1", gap_ms: 300, wait_bot: false}  # options; a lone "#" needs quotes
  - say: {text: "one moment", wait_bot: false}         # speak without waiting for the bot
  - wait: 1.5                 # stay silent for 1.5 s
  - barge_in: agent please    # talk over the bot once 800 ms of its reply have played
  - barge_in: {text: stop, after_ms: 300}
  - hangup                    # the caller hangs up (sends stop, closes the socket); or:
  - wait_hangup: 10           # expect the bridge to end the call within 10 s (default 20)
```

A script that ends without ``hangup`` or ``wait_hangup`` hangs up after its last step.

Before each ``say`` and ``press`` the caller waits for the bot's reply to end, as a person
would; ``wait_bot: false`` on the step turns that off. The interactive mode reads the same
steps as lines (:func:`parse_line`): plain text is said, ``press 123#`` keys, ``wait 2``,
``wait_bot``, ``barge_in TEXT``, ``wait_hangup``, ``hangup``. Errors name the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from twilio_sim.client import CallEnded, CallerSession, CallerTimeout
from twilio_sim.voice import VoiceUnavailable
from voice_bridge.twilio.messages import DTMF_DIGITS

# Largest value each number may take (seconds for waits, milliseconds for *_ms).
_LIMITS = {"wait": 600.0, "wait_bot": 600.0, "wait_hangup": 600.0, "gap_ms": 10_000.0,
           "after_ms": 600_000.0}


class ScriptError(ValueError):
    """A script that cannot be run; the message names the file and line."""


class StepFailed(RuntimeError):
    """A step of a running script failed (the bot did not answer in time, the call ended,
    the caller's voice is missing); ``step`` is the step, ``__cause__`` the original error."""

    def __init__(self, message: str, step: Step) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class Say:
    text: str
    wait_bot: bool = True
    line: int = 0


@dataclass(frozen=True)
class Press:
    keys: str
    gap_ms: int | None = None
    wait_bot: bool = True
    line: int = 0

    def __repr__(self) -> str:  # keys may be a card number
        return f"Press(keys={'*' * len(self.keys)}, line={self.line})"


@dataclass(frozen=True)
class WaitBot:
    timeout_s: float | None = None
    line: int = 0


@dataclass(frozen=True)
class Wait:
    seconds: float
    line: int = 0


@dataclass(frozen=True)
class BargeIn:
    text: str
    after_ms: float = 800.0
    line: int = 0


@dataclass(frozen=True)
class Hangup:
    line: int = 0


@dataclass(frozen=True)
class WaitHangup:
    timeout_s: float | None = None
    line: int = 0


Step = Say | Press | WaitBot | Wait | BargeIn | Hangup | WaitHangup
STEP_NAMES = ("say", "press", "wait_bot", "wait", "barge_in", "hangup", "wait_hangup")
_STEP_TYPES = (Say, Press, WaitBot, Wait, BargeIn, Hangup, WaitHangup)


@dataclass(frozen=True)
class Script:
    """A parsed script: its steps, the numbers it calls from and to, where it came from."""

    steps: tuple[Step, ...]
    caller: str | None = None
    called: str | None = None
    source: str = "script"
    description: str = ""


def load_script(path: str | Path) -> Script:
    """Read and parse a script file (small and read once, before the call starts)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read the script ({exc.strerror})") from None
    return parse_script(text, str(path))


def parse_script(text: str, source: str = "script") -> Script:
    """Parse a YAML script.

    Raises:
        ScriptError: Bad YAML or a bad step; the message is ``"<source>:<line>: <problem>"``.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ScriptError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if root is None:
        raise ScriptError(f"{source}: the script is empty")
    fields: dict[str, yaml.Node] = {}
    if isinstance(root, yaml.SequenceNode):
        fields["steps"] = root
    elif isinstance(root, yaml.MappingNode):
        fields = _mapping(root, source, allowed=("from", "to", "steps", "description"))
    else:
        raise ScriptError(f"{source}:{_line(root)}: expected a list of steps or a 'steps:' key")
    steps_node = fields.get("steps")
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        raise ScriptError(f"{source}:{_line(steps_node or root)}: 'steps' must be a non-empty list")
    steps = tuple(_step(node, source) for node in steps_node.value)
    caller, called = (_text(fields[k], source, k) if k in fields else None for k in ("from", "to"))
    about = fields.get("description")
    description = about.value if isinstance(about, yaml.ScalarNode) else ""
    return Script(steps, caller, called, source, description)


def parse_line(text: str, line: int = 0) -> Step | None:
    """One interactive line as a step (``None`` for a blank line); plain text is said."""
    words = text.strip()
    if not words:
        return None
    verb, _, rest = words.partition(" ")
    rest = rest.strip()
    where = f"line {line}" if line else "input"
    if verb == "hangup" and not rest:
        return Hangup(line)
    if verb == "wait_bot":
        return WaitBot(_number(rest, where, "wait_bot") if rest else None, line)
    if verb == "wait_hangup":
        return WaitHangup(_number(rest, where, "wait_hangup") if rest else None, line)
    if verb == "wait" and _is_number(rest):
        return Wait(_number(rest, where, "wait"), line)
    if verb == "press":
        return Press(_keys(rest, where), line=line)
    if verb == "barge_in" and rest:
        return BargeIn(rest, line=line)
    return Say(words, line=line)


async def run_script(call: CallerSession, script: Script) -> None:
    """Run every step of ``script`` on a started call (stops once the call has ended).

    Raises:
        StepFailed: A step failed; the message names the script line and the step.
    """
    for step in script.steps:
        try:
            await run_step(call, step)
        except (CallEnded, CallerTimeout, VoiceUnavailable) as exc:
            name = STEP_NAMES[_STEP_TYPES.index(type(step))]
            raise StepFailed(f"{script.source}:{step.line}: {name}: {exc}", step) from exc
        if isinstance(step, Hangup | WaitHangup):
            return


async def run_step(call: CallerSession, step: Step) -> None:
    """Do one step; ``say``/``press`` first wait for the bot unless told not to."""
    if isinstance(step, Say | Press) and step.wait_bot:
        await call.wait_bot()
    if isinstance(step, Say):
        await call.say(step.text)
    elif isinstance(step, Press):
        await call.press(step.keys, step.gap_ms)
    elif isinstance(step, WaitBot):
        await call.wait_bot(step.timeout_s)
    elif isinstance(step, Wait):
        await call.wait(step.seconds)
    elif isinstance(step, BargeIn):
        await call.barge_in(step.text, step.after_ms)
    elif isinstance(step, Hangup):
        await call.hangup()
    elif isinstance(step, WaitHangup):
        await call.wait_ended(call.wait_timeout_s if step.timeout_s is None else step.timeout_s)


# -- parsing helpers -------------------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: yaml.MappingNode, source: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name not in allowed:
            raise ScriptError(
                f"{source}:{_line(key)}: unknown key {name!r} (expected {', '.join(allowed)})"
            )
        if name in out:
            raise ScriptError(f"{source}:{_line(key)}: {name!r} given twice")
        out[name] = value
    return out


def _step(node: yaml.Node, source: str) -> Step:
    line = _line(node)
    where = f"{source}:{line}"
    if isinstance(node, yaml.ScalarNode):
        name, value = node.value, None
    elif isinstance(node, yaml.MappingNode) and len(node.value) == 1:
        key, value = node.value[0]
        name = key.value if isinstance(key, yaml.ScalarNode) else ""
    else:
        raise ScriptError(f"{where}: a step is one of {', '.join(STEP_NAMES)}, e.g. 'say: yes'")
    if name not in STEP_NAMES:
        raise ScriptError(f"{where}: unknown step {name!r} (expected {', '.join(STEP_NAMES)})")
    options = _options(name, value, source)
    try:
        return _build(name, options, where, line)
    except KeyError as exc:
        hint = " (quote a lone '#': press: \"#\")" if name == "press" else ""
        raise ScriptError(f"{where}: {name} needs {exc.args[0]}{hint}") from None


_MAIN_OPTION = {"say": "text", "press": "keys", "barge_in": "text", "wait": "seconds",
                "wait_bot": "timeout", "wait_hangup": "timeout"}
_OPTIONS = {"say": ("text", "wait_bot"), "press": ("keys", "gap_ms", "wait_bot"),
            "barge_in": ("text", "after_ms"), "wait": ("seconds",), "wait_bot": ("timeout",),
            "wait_hangup": ("timeout",), "hangup": ()}


def _options(name: str, value: yaml.Node | None, source: str) -> dict[str, str]:
    """A step's options as raw strings: ``say: hi`` → ``{"text": "hi"}``."""
    if value is None or (isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null")):
        return {}
    if isinstance(value, yaml.ScalarNode):
        if not _MAIN_OPTION.get(name):
            raise ScriptError(f"{source}:{_line(value)}: {name} takes no value")
        return {_MAIN_OPTION[name]: value.value}
    if isinstance(value, yaml.MappingNode):
        raw = _mapping(value, source, allowed=_OPTIONS[name])
        for key, node in raw.items():
            if not isinstance(node, yaml.ScalarNode):
                raise ScriptError(f"{source}:{_line(node)}: {name}.{key} must be a single value")
        return {key: node.value for key, node in raw.items()}
    raise ScriptError(f"{source}:{_line(value)}: {name} takes text or a mapping of options")


def _build(name: str, o: dict[str, str], where: str, line: int) -> Step:
    wait_bot = _flag(o.get("wait_bot", "true"), where, "wait_bot")
    if name == "say":
        return Say(_said(o["text"], where), wait_bot, line)
    if name == "press":
        gap = int(_number(o["gap_ms"], where, "gap_ms")) if "gap_ms" in o else None
        return Press(_keys(o["keys"], where), gap, wait_bot, line)
    if name == "barge_in":
        after = _number(o["after_ms"], where, "after_ms") if "after_ms" in o else 800.0
        return BargeIn(_said(o["text"], where), after, line)
    if name == "wait":
        return Wait(_number(o["seconds"], where, "wait"), line)
    if name in ("wait_bot", "wait_hangup"):
        timeout = _number(o["timeout"], where, name) if "timeout" in o else None
        return WaitBot(timeout, line) if name == "wait_bot" else WaitHangup(timeout, line)
    return Hangup(line)


def _said(text: str, where: str) -> str:
    if not text.strip():
        raise ScriptError(f"{where}: nothing to say")
    return text.strip()


def _keys(keys: str, where: str) -> str:
    keys = "".join(keys.split())
    if not keys:
        raise ScriptError(f"{where}: press needs keys (quote a lone '#': press: \"#\")")
    if any(k not in DTMF_DIGITS for k in keys):
        raise ScriptError(f"{where}: press takes only the keys 0-9, * and #")
    return keys


def _number(text: str, where: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScriptError(f"{where}: {what} needs a number, got {text!r}") from None
    if not 0 <= value <= _LIMITS[what]:
        raise ScriptError(f"{where}: {what} must be between 0 and {_LIMITS[what]:g}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _flag(text: str, where: str, what: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    raise ScriptError(f"{where}: {what} must be true or false")


def _text(node: yaml.Node, source: str, key: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not node.value.strip():
        raise ScriptError(f"{source}:{_line(node)}: '{key}' must be a phone number")
    return node.value.strip()
