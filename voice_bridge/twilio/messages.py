"""Typed Twilio Media Streams messages: parse what Twilio sends, serialize what we send back.

Inbound (Twilio → bridge): :class:`Connected`, :class:`Start`, :class:`Media`, :class:`Dtmf`,
:class:`Mark`, :class:`Stop`, built by :func:`parse_message` and serialized by ``to_json`` (as
Twilio sends them; the simulated caller in ``twilio_sim`` uses this). Outbound (bridge →
Twilio): :class:`OutboundMedia`, :class:`OutboundMark`, :class:`Clear`, serialized by
``to_json`` and parsed back by :func:`parse_outbound` (for tests and fake Twilio servers).

Twilio sends numbers as strings (``sequenceNumber``, ``chunk``, ``timestamp``); they are ints
here. Errors are :class:`ProtocolError` with a short reason that names the field, never its
value: a DTMF digit may be part of a card number, and a payload is caller audio.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_EVENT_NAME_MAX = 32
_INT_LIMIT = 2**63  # counters and timestamps; anything larger is not Twilio's
_INT_DIGITS_MAX = 19
DTMF_DIGITS = "0123456789*#"


class ProtocolError(ValueError):
    """A Media Streams message that cannot be used; ``reason`` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MediaFormat:
    """The audio format announced in ``start`` (always μ-law 8 kHz mono today)."""

    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


@dataclass(frozen=True)
class Connected:
    """First message on a new websocket; needs no reply."""

    protocol: str = "Call"
    version: str = "1.0.0"

    def to_json(self) -> str:
        return _dump({"event": "connected", "protocol": self.protocol, "version": self.version})


@dataclass(frozen=True)
class Start:
    """Stream metadata, sent once after ``connected``."""

    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    media_format: MediaFormat = field(default_factory=MediaFormat)
    tracks: tuple[str, ...] = ("inbound",)
    sequence_number: int | None = None

    def to_json(self) -> str:
        fmt = self.media_format
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": list(self.tracks),
            "customParameters": dict(self.custom_parameters),
            "mediaFormat": {
                "encoding": fmt.encoding, "sampleRate": fmt.sample_rate, "channels": fmt.channels
            },
        }
        return _inbound("start", self.sequence_number, self.stream_sid, start=start)


@dataclass(frozen=True)
class Media:
    """A chunk of caller audio (raw μ-law bytes, decoded from base64)."""

    stream_sid: str
    track: str
    chunk: int
    timestamp: int  # milliseconds since the stream started
    payload: bytes = field(repr=False)
    sequence_number: int | None = None

    def to_json(self) -> str:
        media = {
            "track": self.track,
            "chunk": str(self.chunk),
            "timestamp": str(self.timestamp),
            "payload": _b64(self.payload),
        }
        return _inbound("media", self.sequence_number, self.stream_sid, media=media)


@dataclass(frozen=True)
class Dtmf:
    """A key pressed by the caller. ``repr`` hides the digit: it may belong to a card."""

    stream_sid: str
    digit: str = field(repr=False)
    track: str = "inbound_track"
    sequence_number: int | None = None

    def to_json(self) -> str:
        dtmf = {"track": self.track, "digit": self.digit}
        return _inbound("dtmf", self.sequence_number, self.stream_sid, dtmf=dtmf)


@dataclass(frozen=True)
class Mark:
    """Echo of a mark we sent: the audio before it has played (or was cleared)."""

    stream_sid: str
    name: str
    sequence_number: int | None = None

    def to_json(self) -> str:
        return _inbound("mark", self.sequence_number, self.stream_sid, mark={"name": self.name})


@dataclass(frozen=True)
class Stop:
    """The stream stopped or the call ended."""

    stream_sid: str
    call_sid: str
    account_sid: str
    sequence_number: int | None = None

    def to_json(self) -> str:
        stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
        return _inbound("stop", self.sequence_number, self.stream_sid, stop=stop)


@dataclass(frozen=True)
class OutboundMedia:
    """Audio to play to the caller: raw μ-law 8 kHz bytes, no file header."""

    stream_sid: str
    payload: bytes = field(repr=False)

    def to_json(self) -> str:
        media = {"payload": _b64(self.payload)}
        return _dump({"event": "media", "streamSid": self.stream_sid, "media": media})


@dataclass(frozen=True)
class OutboundMark:
    """Ask Twilio to echo ``name`` once the audio sent before it has played."""

    stream_sid: str
    name: str

    def to_json(self) -> str:
        mark = {"name": self.name}
        return _dump({"event": "mark", "streamSid": self.stream_sid, "mark": mark})


@dataclass(frozen=True)
class Clear:
    """Drop all buffered audio (barge-in); Twilio then echoes every pending mark."""

    stream_sid: str

    def to_json(self) -> str:
        return _dump({"event": "clear", "streamSid": self.stream_sid})


InboundMessage = Connected | Start | Media | Dtmf | Mark | Stop
OutboundMessage = OutboundMedia | OutboundMark | Clear


def parse_message(text: str | bytes) -> InboundMessage:
    """Parse one text frame from Twilio.

    Args:
        text: the websocket text frame.

    Returns:
        The typed message.

    Raises:
        ProtocolError: malformed JSON, an unknown event, a missing or mistyped field, or a
            payload that is not base64. The reason never contains the values.
    """
    return _parse(text, _INBOUND, "event")


def parse_outbound(text: str | bytes) -> OutboundMessage:
    """Parse a message the bridge sends to Twilio (``media``, ``mark`` or ``clear``).

    Raises:
        ProtocolError: as :func:`parse_message`.
    """
    return _parse(text, _OUTBOUND, "outbound event")


# -- parsers -----------------------------------------------------------------------------------


class _Reader:
    """Typed access to a JSON object; errors name the field's dotted path, never its value."""

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self.data, self.path = data, path

    def get(self, key: str) -> Any:
        if key not in self.data:
            raise ProtocolError(f"missing field '{self.path}{key}'")
        return self.data[key]

    def obj(self, key: str) -> _Reader:
        value = self.get(key)
        if not isinstance(value, dict):
            raise ProtocolError(f"{self.path}{key} is not an object")
        return _Reader(value, f"{self.path}{key}.")

    def text(self, key: str, default: str | None = None) -> str:
        if default is not None and key not in self.data:
            return default
        value = self.get(key)
        if not isinstance(value, str):
            raise ProtocolError(f"{self.path}{key} is not a string")
        return value

    def integer(self, key: str) -> int:
        """An int sent as a JSON number or, as Twilio does, as a string of digits."""
        value = self.get(key)
        if isinstance(value, str) and value.isascii() and value.isdigit():
            if len(value) > _INT_DIGITS_MAX:
                raise ProtocolError(f"{self.path}{key} is out of range")
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) >= _INT_LIMIT:
                raise ProtocolError(f"{self.path}{key} is out of range")
            return value
        raise ProtocolError(f"{self.path}{key} is not an integer")

    def base64(self, key: str) -> bytes:
        text = self.text(key)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(f"{self.path}{key} is not valid base64") from None

    def sequence(self) -> int | None:
        return self.integer("sequenceNumber") if "sequenceNumber" in self.data else None


def _parse_start(msg: _Reader) -> Start:
    start = msg.obj("start")
    fmt = start.obj("mediaFormat")
    params = start.obj("customParameters").data if "customParameters" in start.data else {}
    tracks = start.data.get("tracks", ["inbound"])
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise ProtocolError("start.tracks is not a list of strings")
    return Start(
        stream_sid=msg.text("streamSid") if "streamSid" in msg.data else start.text("streamSid"),
        call_sid=start.text("callSid"),
        account_sid=start.text("accountSid"),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        media_format=MediaFormat(
            fmt.text("encoding"), fmt.integer("sampleRate"), fmt.integer("channels")
        ),
        tracks=tuple(tracks),
        sequence_number=msg.sequence(),
    )


def _parse_media(msg: _Reader) -> Media:
    media = msg.obj("media")
    return Media(
        stream_sid=msg.text("streamSid"),
        track=media.text("track"),
        chunk=media.integer("chunk"),
        timestamp=media.integer("timestamp"),
        payload=media.base64("payload"),
        sequence_number=msg.sequence(),
    )


def _parse_dtmf(msg: _Reader) -> Dtmf:
    dtmf = msg.obj("dtmf")
    digit = dtmf.text("digit")
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise ProtocolError("dtmf.digit is not a DTMF key")
    track = dtmf.text("track", default="inbound_track")
    return Dtmf(msg.text("streamSid"), digit, track, msg.sequence())


def _parse_stop(msg: _Reader) -> Stop:
    stop = msg.obj("stop")
    return Stop(
        msg.text("streamSid"), stop.text("callSid"), stop.text("accountSid"), msg.sequence()
    )


_INBOUND: dict[str, Callable[[_Reader], InboundMessage]] = {
    "connected": lambda m: Connected(m.text("protocol"), m.text("version")),
    "start": _parse_start,
    "media": _parse_media,
    "dtmf": _parse_dtmf,
    "mark": lambda m: Mark(m.text("streamSid"), m.obj("mark").text("name"), m.sequence()),
    "stop": _parse_stop,
}
_OUTBOUND: dict[str, Callable[[_Reader], OutboundMessage]] = {
    "media": lambda m: OutboundMedia(m.text("streamSid"), m.obj("media").base64("payload")),
    "mark": lambda m: OutboundMark(m.text("streamSid"), m.obj("mark").text("name")),
    "clear": lambda m: Clear(m.text("streamSid")),
}


def _parse(text: str | bytes, parsers: dict[str, Callable[[_Reader], Any]], kind: str) -> Any:
    """Parse with the parser for the message's event; every failure is a ProtocolError."""
    try:
        msg, event = _load(text)
        parser = parsers.get(event)
        if parser is None:
            raise ProtocolError(f"unknown {kind} {_event_label(msg)}")
        return parser(msg)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("malformed JSON: nested too deeply") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:
        # E.g. an integer past Python's int-string conversion limit (ValueError, even inside
        # json.loads), a key that cannot be a string: the reason names the kind, not the value.
        raise ProtocolError(f"unusable message ({type(exc).__name__})") from None


def _load(text: str | bytes) -> tuple[_Reader, str]:
    """The message as a reader, and its event name ("" when not a string)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"malformed JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise ProtocolError("malformed JSON: not UTF-8") from None
    if not isinstance(data, dict):
        raise ProtocolError("message is not a JSON object")
    event = _Reader(data).get("event")
    return _Reader(data), event if isinstance(event, str) else ""


def _event_label(msg: _Reader) -> str:
    """The event name, quoted and cut short, for an error message."""
    event = msg.data["event"]
    if not isinstance(event, str):
        return f"of type {type(event).__name__}"
    name = "".join(c if c.isprintable() else "?" for c in event[:_EVENT_NAME_MAX])
    return repr(name + ("…" if len(event) > _EVENT_NAME_MAX else ""))


# -- serialization helpers ---------------------------------------------------------------------


def _b64(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


def _dump(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _inbound(event: str, sequence: int | None, stream_sid: str, **body: Any) -> str:
    """A message as Twilio sends it: numbers as strings, a top-level ``streamSid``."""
    message: dict[str, Any] = {"event": event}
    if sequence is not None:
        message["sequenceNumber"] = str(sequence)
    message.update(body)
    message["streamSid"] = stream_sid
    return _dump(message)
