"""Twilio Media Streams messages: the documented examples parse, outbound messages round-trip,
and malformed input raises a ProtocolError whose reason never echoes the payload."""

from __future__ import annotations

import base64
import json
import random

import pytest

from voice_bridge.twilio.messages import (
    Clear,
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaFormat,
    OutboundMark,
    OutboundMedia,
    ProtocolError,
    Start,
    Stop,
    parse_message,
    parse_outbound,
)

SID = "MZ" + "X" * 32
CALL = "CA" + "X" * 32
ACCOUNT = "AC" + "X" * 32
AUDIO = bytes(range(256)) * 2  # 512 bytes of every μ-law value
AUDIO_B64 = base64.b64encode(AUDIO).decode()

# The examples from twilio.com/docs/voice/media-streams/websocket-messages (payloads made whole).
CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": ACCOUNT,
        "streamSid": SID,
        "callSid": CALL,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
    },
    "streamSid": SID,
}
MEDIA = {
    "event": "media",
    "sequenceNumber": "4",
    "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": AUDIO_B64},
    "streamSid": SID,
}
DTMF = {
    "event": "dtmf",
    "streamSid": SID,
    "sequenceNumber": "5",
    "dtmf": {"track": "inbound_track", "digit": "1"},
}
MARK = {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "my label"}}
STOP = {
    "event": "stop",
    "sequenceNumber": "5",
    "stop": {"accountSid": ACCOUNT, "callSid": CALL},
    "streamSid": SID,
}


def _parse(message: dict) -> object:
    return parse_message(json.dumps(message))


def test_connected() -> None:
    assert _parse(CONNECTED) == Connected(protocol="Call", version="1.0.0")


def test_start() -> None:
    assert _parse(START) == Start(
        stream_sid=SID,
        call_sid=CALL,
        account_sid=ACCOUNT,
        custom_parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
        media_format=MediaFormat("audio/x-mulaw", 8000, 1),
        tracks=("inbound",),
        sequence_number=1,
    )


def test_start_without_top_level_stream_sid_or_parameters() -> None:
    start = {"event": "start", "start": {k: v for k, v in START["start"].items()}}
    del start["start"]["customParameters"]
    message = _parse(start)
    assert isinstance(message, Start)
    assert message.stream_sid == SID
    assert message.custom_parameters == {}
    assert message.sequence_number is None


def test_media_decodes_payload_and_string_numbers() -> None:
    message = _parse(MEDIA)
    assert message == Media(SID, "inbound", chunk=2, timestamp=5, payload=AUDIO, sequence_number=4)
    assert AUDIO_B64 not in repr(message)


def test_media_accepts_json_numbers() -> None:
    media = {**MEDIA, "media": {**MEDIA["media"], "chunk": 7, "timestamp": 140}}
    message = _parse(media)
    assert isinstance(message, Media)
    assert (message.chunk, message.timestamp) == (7, 140)


def test_outbound_media_example_parses_as_outbound() -> None:
    example = {"event": "media", "streamSid": SID, "media": {"payload": AUDIO_B64}}
    assert parse_outbound(json.dumps(example)) == OutboundMedia(SID, AUDIO)


def test_dtmf_hides_digit_in_repr() -> None:
    message = _parse(DTMF)
    assert message == Dtmf(SID, "1", "inbound_track", 5)
    assert "'1'" not in repr(message)


@pytest.mark.parametrize("digit", list("0123456789*#"))
def test_every_dtmf_key(digit: str) -> None:
    message = _parse({**DTMF, "dtmf": {"track": "inbound_track", "digit": digit}})
    assert isinstance(message, Dtmf)
    assert message.digit == digit


def test_mark_and_stop() -> None:
    assert _parse(MARK) == Mark(SID, "my label", 4)
    assert _parse(STOP) == Stop(SID, CALL, ACCOUNT, 5)


def test_bytes_frame_is_accepted() -> None:
    assert parse_message(json.dumps(MARK).encode()) == Mark(SID, "my label", 4)


# -- outbound ---------------------------------------------------------------------------------


def test_outbound_media_matches_documented_shape() -> None:
    message = OutboundMedia(SID, AUDIO)
    assert json.loads(message.to_json()) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": AUDIO_B64},
    }
    assert AUDIO_B64 not in repr(message)


def test_outbound_mark_and_clear_match_documented_shape() -> None:
    assert json.loads(OutboundMark(SID, "my label").to_json()) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "my label"},
    }
    assert json.loads(Clear(SID).to_json()) == {"event": "clear", "streamSid": SID}


@pytest.mark.parametrize(
    "message",
    [
        OutboundMedia(SID, AUDIO),
        OutboundMedia(SID, b""),
        OutboundMark(SID, "utt-42"),
        OutboundMark(SID, 'naïve ✓ "quoted"'),
        Clear(SID),
    ],
    ids=["media", "empty-media", "mark", "unicode-mark", "clear"],
)
def test_outbound_round_trip(message: object) -> None:
    text = message.to_json()  # type: ignore[attr-defined]
    assert parse_outbound(text) == message
    assert parse_outbound(text).to_json() == text  # type: ignore[union-attr]


def test_outbound_mark_echo_parses_as_inbound_mark() -> None:
    assert parse_message(OutboundMark(SID, "utt-1").to_json()) == Mark(SID, "utt-1")


# -- malformed input --------------------------------------------------------------------------

SECRET = "4242424242424242"


def _reason(text: str | bytes, parse=parse_message) -> str:
    with pytest.raises(ProtocolError) as info:
        parse(text)
    reason = info.value.reason
    assert str(info.value) == reason
    assert SECRET not in reason and AUDIO_B64[:16] not in reason
    return reason


def _with(base: dict, key: str, **changes: object) -> str:
    inner = {**base[key], **changes}
    return json.dumps({**base, key: {k: v for k, v in inner.items() if v is not None}})


def test_malformed_json() -> None:
    assert _reason('{"event": "media", "payload": "' + SECRET).startswith("malformed JSON")
    assert _reason(b"\xff\xfe" + SECRET.encode()).startswith("malformed JSON")
    assert _reason("[" * 100_000).startswith("malformed JSON")


def test_not_an_object() -> None:
    assert _reason(json.dumps([SECRET])) == "message is not a JSON object"
    assert _reason(json.dumps(SECRET)) == "message is not a JSON object"


def test_missing_event() -> None:
    assert _reason(json.dumps({"streamSid": SID, "payload": SECRET})) == "missing field 'event'"


def test_unknown_event_is_named() -> None:
    assert _reason(json.dumps({"event": "clear", "streamSid": SID})) == "unknown event 'clear'"
    assert _reason(json.dumps({"event": 7})) == "unknown event of type int"
    long_name = "x" * 100 + SECRET
    reason = _reason(json.dumps({"event": long_name}))
    assert reason.startswith("unknown event 'xxx") and len(reason) < 60
    assert _reason(json.dumps({"event": "start"}), parse_outbound).startswith(
        "unknown outbound event 'start'"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (json.dumps({"event": "connected", "version": "1.0.0"}), "missing field 'protocol'"),
        (json.dumps({**MEDIA, "media": None}), "media is not an object"),
        (_with(MEDIA, "media", payload=None), "missing field 'media.payload'"),
        (_with(MEDIA, "media", track=None), "missing field 'media.track'"),
        (
            json.dumps({k: v for k, v in MEDIA.items() if k != "streamSid"}),
            "missing field 'streamSid'",
        ),
        (_with(START, "start", callSid=None), "missing field 'start.callSid'"),
        (
            _with(START, "start", mediaFormat={"encoding": "audio/x-mulaw", "channels": 1}),
            "missing field 'start.mediaFormat.sampleRate'",
        ),
        (_with(STOP, "stop", accountSid=None), "missing field 'stop.accountSid'"),
        (json.dumps({**MARK, "mark": {}}), "missing field 'mark.name'"),
        (_with(DTMF, "dtmf", digit=None), "missing field 'dtmf.digit'"),
    ],
)
def test_missing_fields(text: str, reason: str) -> None:
    assert _reason(text) == reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_with(MEDIA, "media", chunk="two"), "media.chunk is not an integer"),
        (_with(MEDIA, "media", timestamp=SECRET + "x"), "media.timestamp is not an integer"),
        (_with(MEDIA, "media", timestamp=True), "media.timestamp is not an integer"),
        (json.dumps({**MEDIA, "sequenceNumber": "4a"}), "sequenceNumber is not an integer"),
        (_with(MEDIA, "media", payload=12345), "media.payload is not a string"),
        (
            _with(START, "start", customParameters=[SECRET]),
            "start.customParameters is not an object",
        ),
        (_with(START, "start", tracks="inbound"), "start.tracks is not a list of strings"),
        (_with(DTMF, "dtmf", digit=SECRET), "dtmf.digit is not a DTMF key"),
        (_with(DTMF, "dtmf", digit="A"), "dtmf.digit is not a DTMF key"),
        (json.dumps({**MARK, "streamSid": 42}), "streamSid is not a string"),
    ],
)
def test_mistyped_fields(text: str, reason: str) -> None:
    assert _reason(text) == reason


@pytest.mark.parametrize(
    "payload",
    [AUDIO_B64[:-1], "no+JhoaJjpz...", SECRET + "!!!!", AUDIO_B64 + "\n" + AUDIO_B64],
    ids=["truncated", "doc-ellipsis", "bad-chars", "newline"],
)
def test_bad_base64_does_not_echo_payload(payload: str) -> None:
    reason = _reason(_with(MEDIA, "media", payload=payload))
    assert reason == "media.payload is not valid base64"
    outbound = json.dumps({"event": "media", "streamSid": SID, "media": {"payload": payload}})
    assert _reason(outbound, parse_outbound) == "media.payload is not valid base64"


# Generated frames ----------------------------------------------------------------------------
HUGE_INTEGERS = [
    '{"event": "media", "sequenceNumber": ' + "1" * 5000 + "}",
    '{"event": "start", "start": {"n": ' + "9" * 4301 + "}}",
    json.dumps({"event": "media", "streamSid": SID, "media": {"track": "inbound",
                "chunk": "1" * 5000, "timestamp": "5", "payload": AUDIO_B64}}),
    json.dumps({"event": "media", "streamSid": SID, "media": {"track": "inbound",
                "chunk": 10**40, "timestamp": "5", "payload": AUDIO_B64}}),
    json.dumps({**START, "sequenceNumber": "9" * 100}),
]


@pytest.mark.parametrize("text", HUGE_INTEGERS, ids=range(len(HUGE_INTEGERS)))
def test_huge_integers_are_protocol_errors(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_message(text)
    assert "1111" not in info.value.reason and "9999" not in info.value.reason


def test_start_with_a_huge_custom_parameter_is_a_protocol_error() -> None:
    start = json.loads(json.dumps(START))
    text = json.dumps(start).replace('"customParameters": {', '"customParameters": {"n": '
                                     + "7" * 4400 + ", ", 1)
    with pytest.raises(ProtocolError):
        parse_message(text)


def _mutations(rng, value, depth: int = 0):
    """``value`` with one part replaced by something generated (type, size or content)."""
    choices = [
        None, True, 0, -1, 1.5, 10**rng.randint(15, 60), "", "x" * rng.randint(1, 3000),
        "1" * rng.randint(18, 6000), "\ud800", "\x00", [], {}, [1, "a"], {"a": {"b": []}},
        "!!not base64!!", "é" * 10,
    ]
    if isinstance(value, dict) and value and depth < 4 and rng.random() < 0.8:
        key = rng.choice(list(value))
        copy = dict(value)
        action = rng.random()
        if action < 0.15:
            del copy[key]
        elif action < 0.25:
            copy[rng.choice(["extra", "", "\x00", "event"])] = rng.choice(choices)
        else:
            copy[key] = _mutations(rng, value[key], depth + 1)
        return copy
    if isinstance(value, list) and value and rng.random() < 0.5:
        return [_mutations(rng, v, depth + 1) for v in value]
    return rng.choice(choices)


def _frames(rng, count: int):
    examples = [CONNECTED, START, MEDIA, DTMF, MARK, STOP]
    for _ in range(count):
        message = _mutations(rng, rng.choice(examples))
        text = json.dumps(message, ensure_ascii=rng.random() < 0.5)
        cut = rng.random()
        if cut < 0.1:
            text = text[: rng.randint(0, len(text))]
        elif cut < 0.15:
            text = text.replace("1", "1" * rng.randint(4300, 5000), 1)
        elif cut < 0.2:
            yield text.encode("utf-8", "surrogatepass")[: rng.randint(0, 40)] + b"\xff\xfe"
            continue
        elif cut < 0.25:
            text = "[" * rng.randint(1, 100_000) + text
        yield text


def test_generated_frames_parse_or_raise_protocol_errors() -> None:
    seed = 20261205
    rng = random.Random(seed)
    outcomes = {"parsed": 0, "refused": 0}
    for frame in _frames(rng, 4000):
        for parse in (parse_message, parse_outbound):
            try:
                parse(frame)
                outcomes["parsed"] += 1
            except ProtocolError:
                outcomes["refused"] += 1
            except Exception as exc:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{parse.__name__} raised {type(exc).__name__} on {frame[:120]!r} "
                            f"(seed {seed})")
    assert outcomes["parsed"] > 100 and outcomes["refused"] > 1000, outcomes
