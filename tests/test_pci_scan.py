"""``paybot pci-scan`` finds a card number planted in each place it searches, in every written
and spoken form (seeded random Luhn-valid numbers of 13-19 digits), and nothing in what is not
card data; exit 0 clean, 1 found, 2 a source it could not read; the report never repeats the
number. Planted data lives in dirs the suite-end scan skips and rows removed before it."""

from __future__ import annotations

import asyncio
import os
import random
import re
import struct
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from paybot.pci_scan import dtmf
from paybot_cli.main import main
from tests import cardscan, pci_forms
from tests.conftest import PG_URL_ENV, fresh_schema, require_pg, schema_url
from tests.test_audio import FSDD, fsdd_sequence, needs_fsdd

SEEDS = range(3)
NOTES = "CREATE TABLE pci_scan_notes (id INTEGER PRIMARY KEY, note TEXT)"


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """A data dir the suite-end scan skips, the environment of a deployment, and the command."""
    data = tmp_path / "var"
    data.mkdir()
    (tmp_path / cardscan.PLANTED_MARKER).touch()
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("PAYBOT_") and key != PG_URL_ENV:
            monkeypatch.delenv(key)
    monkeypatch.setenv("PAYBOT_DATA_DIR", str(data))
    return data


def pci_scan(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["pci-scan", "--no-rasa", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def _database_url(engine) -> str:
    if engine.dialect.name == "sqlite":
        return str(engine.url)
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return schema_url(os.environ[PG_URL_ENV], schema)


@pytest.fixture
def database(db_engine, monkeypatch):
    """The migrated test database as the deployment's, with a table paybot does not know;
    planted rows are gone before the suite-end scan reads it."""
    monkeypatch.setenv("DATABASE_URL", _database_url(db_engine))
    with db_engine.begin() as conn:
        conn.execute(text(NOTES))
    yield db_engine
    with db_engine.begin() as conn:
        conn.execute(text("DROP TABLE pci_scan_notes"))
        conn.execute(text("DELETE FROM outbound_messages"))


def _plant_note(engine, content: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM pci_scan_notes"))
        conn.execute(text("INSERT INTO pci_scan_notes VALUES (1, :n)"), {"n": content})


def _plant_sms(engine, content: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbound_messages"))
        conn.execute(text("INSERT INTO outbound_messages (created_at, \"to\", kind, body, status, "
                          "attempts) VALUES (CURRENT_TIMESTAMP, '+15555550100', 'receipt', :b, "
                          "'queued', 0)"), {"b": content})


def _cases(seed: int) -> list[tuple[str, str]]:
    """(digits, as written or said) for every form, each a fresh number of 13-19 digits."""
    rng = random.Random(seed)
    return [(d := pci_forms.card_number(rng), pci_forms.form(name, d, rng))
            for name in pci_forms.FORMS]


def assert_found(code: int, out: str, digits: str, said: str, where: str) -> None:
    found = [line for line in out.splitlines() if line.startswith("FOUND")]
    assert code == 1, out
    assert len(found) == 1 and where in found[0], out
    assert found[0].endswith(f": card number ending {digits[-4:]}"), out
    assert digits not in re.sub(r"\D", "", out.replace(found[0], "")), out  # never repeated
    assert said not in out, out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("place", ["table", "outbox", "log"])
def test_a_planted_card_number_is_found_in_every_form(deployment, database, capsys, seed, place):
    plant: dict[str, Callable[[str], None]] = {
        "table": lambda c: _plant_note(database, f"customer note: {c} (call back)"),
        "outbox": lambda c: _plant_sms(database, f"Thanks! We charged {c}. Reply STOP to end."),
        "log": lambda c: (deployment / "paybot-up.log").write_text(
            f"[bridge] 2026-12-05 01:02:03,837 INFO x: heard {c} at 1764893575.1234567\n"),
    }
    where = {"table": "table pci_scan_notes id ", "outbox": "outbox id ", "log": "line 1"}[place]
    for digits, said in _cases(seed):
        plant[place](said)
        assert_found(*pci_scan(capsys), digits, said, where)


@pytest.mark.parametrize("seed", SEEDS)
def test_nothing_but_card_data_is_found(deployment, database, capsys, seed):
    rng = random.Random(seed)
    lines = pci_forms.negatives(rng)
    with database.begin() as conn:
        for i, line in enumerate(lines):
            conn.execute(text("INSERT INTO pci_scan_notes VALUES (:i, :n)"), {"i": i, "n": line})
    for body in pci_forms.message_negatives(rng):
        _plant_sms(database, body)
        (deployment / "paybot-up.log").write_text("\n".join(lines) + "\n")
        code, out = pci_scan(capsys)
        assert code == 0 and "no card data found" in out, out


def test_security_codes_are_found_only_when_named_and_next_to_their_name(deployment, database,
                                                                         capsys):
    log = deployment / "paybot-up.log"
    for line in ["my cvv is 4821", "CVC: 4821", "4821 is the security code",
                 "the security code is four eight two one"]:
        log.write_text(f"[rasa] user said: {line}\nport 4821 open\n")
        code, out = pci_scan(capsys, "--cvc", "739,4821")
        assert code == 1 and "line 1: security code" in out and "4821" not in out, out
        code, out = pci_scan(capsys)
        assert code == 0 and "security codes: not searched" in out, out
    log.write_text("port 4821 open, order 4821 shipped\n")
    assert pci_scan(capsys, "--cvc", "4821")[0] == 0
    code, out = pci_scan(capsys, "--cvc", "12a")
    assert code == 2 and "3 or 4 digits" in out


def test_an_unreachable_database_is_a_scan_error(deployment, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    (deployment / "paybot-up.log").write_text("4242 4242 4242 4242\n")
    code, out = pci_scan(capsys)
    assert code == 2, out
    assert "ERROR  database: cannot read the database (OperationalError" in out, out
    assert "card number ending 4242" in out  # what it could read is still reported
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{deployment / 'missing.db'}")
    code, out = pci_scan(capsys)
    assert code == 2 and "no database file at" in out and not (deployment / "missing.db").exists()


# --- Rasa's tracker store (PostgreSQL), written by Rasa's own SQL tracker store -------------


async def _save_conversation(url: str, schema: str, sender: str, said: str) -> None:
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    os.environ["POSTGRESQL_SCHEMA"] = schema
    try:
        store = SQLTrackerStore(Domain.empty(), dialect="postgresql", host=parsed.host,
                                port=parsed.port, db=parsed.database, username=parsed.username,
                                password=parsed.password)
    finally:
        del os.environ["POSTGRESQL_SCHEMA"]
    events = [UserUttered("hi"), BotUttered("What is your account number?"), UserUttered(said)]
    await store.save(DialogueStateTracker.from_events(sender, events))
    store.engine.dispose()


@pytest.mark.postgres
def test_a_card_number_in_the_tracker_store_is_found(request, deployment, sqlite_engine,
                                                     capsys, monkeypatch):
    url = require_pg(request.node.nodeid)
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    with fresh_schema(url, prefix="paybot_pci_scan") as schema:
        monkeypatch.setenv("PAYBOT_TRACKER_STORE_URL", f"{url}?schema={schema}")
        asyncio.run(_save_conversation(url, schema, "sms:+15555550100", "my zip is 94107"))
        code, out = pci_scan(capsys)
        assert code == 0 and "tracker store events 3" in out, out
        for i, (digits, said) in enumerate(_cases(7)):
            with fresh_schema(url, prefix="paybot_pci_scan") as each:
                monkeypatch.setenv("PAYBOT_TRACKER_STORE_URL", f"{url}?schema={each}")
                asyncio.run(_save_conversation(url, each, f"call:CA{i:032x}", said))
                assert_found(*pci_scan(capsys), digits, said, "tracker store event id ")
    monkeypatch.setenv("PAYBOT_TRACKER_STORE_URL", "postgresql://postgres@127.0.0.1:1/x")
    code, out = pci_scan(capsys)
    assert code == 2 and "ERROR  tracker store: cannot read it" in out, out


# --- recordings ------------------------------------------------------------------------------


def write_wav(path: Path, channels: list[np.ndarray], rate: int, comment: str = "") -> None:
    """A 16-bit WAV, with a LIST/INFO comment chunk when ``comment`` is given."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.column_stack(channels).astype("<i2").tobytes())
    if comment:
        body = comment.encode() + b"\x00"
        info = b"INFO" + b"ICMT" + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)
        data = path.read_bytes() + b"LIST" + struct.pack("<I", len(info)) + info
        path.write_bytes(data[:4] + struct.pack("<I", len(data) - 8) + data[8:])


def keyed(keys: str, rate: int, rng: random.Random) -> np.ndarray:
    """``keys`` as DTMF tones 60-120 ms long, 50-400 ms apart, over line noise."""
    parts = [rng.normal(0, 150, int(rate * 0.3))]
    for key in keys:
        parts += [dtmf.tone(key, rate, rng.uniform(0.06, 0.12)),
                  rng.normal(0, 150, int(rate * rng.uniform(0.05, 0.4)))]
    return np.concatenate(parts).astype(np.int16)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_card_number_in_a_recording_is_found(deployment, sqlite_engine, capsys, monkeypatch,
                                               seed):
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    wav = deployment / "recordings" / "call.wav"
    wav.parent.mkdir()
    for digits, said in _cases(seed)[:4]:  # keyed (tones), named, and in the metadata
        rate = rng.choice([8000, 16000])
        silence = np.zeros(rate, dtype=np.int16)
        tones = keyed(f"100200300#{digits}#94107#", rate, nprng)
        write_wav(wav, [tones, np.zeros_like(tones)], rate)
        assert_found(*pci_scan(capsys), digits, said, "call.wav")
        named = wav.with_name(f"call-{pci_forms.written(digits, '-')}.wav")
        write_wav(named, [silence], rate)
        wav.unlink()
        assert_found(*pci_scan(capsys), digits, said, "recordings/call-")
        named.unlink()
        write_wav(wav, [silence], rate, comment=f"agent note: {said}")
        assert_found(*pci_scan(capsys), digits, said, "call.wav")
    tones = keyed(f"{pci_forms.not_a_card(rng)}#100200300#94107#739#", 8000, nprng)
    write_wav(wav, [tones], 8000, comment="agent note: paid $321.72, confirmation 123456782")
    code, out = pci_scan(capsys)
    assert code == 0 and "recordings 1" in out and "speech in recordings is not scanned" in out


@needs_fsdd
def test_spoken_digits_are_not_heard_as_keys(tmp_path):
    """Speech is not keypad tones: a recording of 20 spoken digits in a row (FSDD) yields no
    card number however its stray detections fall, and at most a few keys."""
    from paybot.pci_scan import Finders
    from paybot.pci_scan.audio import scan_wav

    rng = random.Random(5)
    names = rng.sample(sorted(p.name for p in FSDD.glob("*.wav")), 400)
    stray = 0
    for i in range(0, len(names), 20):
        pcm, _ = fsdd_sequence(names[i : i + 20], gap_ms=150, seed=i)
        rate = 8000
        samples = np.frombuffer(pcm, dtype="<i2")
        stray += sum(map(len, dtmf.decode(samples, rate)))
        write_wav(tmp_path / "speech.wav", [samples], rate)
        report = scan_wav(tmp_path / "speech.wav", Finders())
        assert report.findings == [] and report.errors == []
    assert stray <= 10
