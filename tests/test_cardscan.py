"""The after-suite card-data scan (tests/cardscan.py) finds what is planted for it, and only
that: card numbers in tables, logs and trackers, keyed security codes next to their name, and
the run fails when the scan finds anything. Planted data lives in dirs the final scan skips."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from tests import cardscan

REPO = Path(__file__).resolve().parents[1]
CARD = "4000000000000002"
CODE = "8371"  # distinctive, as the tests that key security codes use


@pytest.fixture
def planted(tmp_path) -> Path:
    (tmp_path / cardscan.PLANTED_MARKER).touch()
    return tmp_path


@pytest.fixture
def code():
    cardscan.KEYED_CODES.add(CODE)
    yield CODE
    cardscan.KEYED_CODES.discard(CODE)


SID = "CA0123456789abcdef0123456789abcdef"
CLEAN_LOG = "\n".join(
    [
        "[bridge] 2026-12-05 01:02:03,837 INFO voice_bridge.secure_capture.session: "
        "capture call:CA0f3a:1b2c: security_code accepted",
        "[rasa] 2026-12-05 01:02:04 INFO rasa.core.processor - timestamp 1764893575.1234567 "
        "sender sms:+15555550100",
        "[actions] 2026-12-05 01:02:05,371 INFO paybot.ledger: payment 12 succeeded, "
        f"confirmation 123-456-786, idem call:{SID}:9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        f"[bridge] 2026-12-05 01:02:06,001 INFO voice_bridge.call.handler: call {SID}: "
        "reply 3 first audio 412 ms",
        "total 1,234,567.89 on account 100200300 zip 94107 phone +1 (555) 555-0100 port 38371",
        "",
    ]
)


def test_clean_logs_have_no_findings(tmp_path, code):
    (tmp_path / "clean.log").write_text(CLEAN_LOG)
    assert cardscan.scan_tree(tmp_path) == []


@pytest.mark.parametrize(
    "line",
    [
        f"card {CARD}",
        "pan=4000 0000 0000 0002 end",
        "4000-0000-0000-0002",
        "4000.0000.0000.0002",
        "x 4000,0000,0000,0002 y",
        "4000  0000  0000  0002",
        "amex 378282246310005",
        '{"text": "5555555555554444"}',
    ],
)
def test_a_planted_card_number_is_found_in_a_log_file(planted, line):
    log = planted / "paybot-up.log"
    log.write_text(CLEAN_LOG + line + "\n")
    log.with_name(cardscan.PLANTED_MARKER).unlink()
    [finding] = cardscan.scan_tree(planted)
    log.with_name(cardscan.PLANTED_MARKER).touch()
    assert finding.what.startswith("card number ending")
    assert CARD not in str(finding)  # findings never repeat the digits


@pytest.mark.parametrize(
    "line", [f"my cvv is {CODE}", f"CVC: {CODE}", f"security code {CODE} ok", f"{CODE} is the cvv"]
)
def test_a_planted_security_code_in_context_is_found(code, line):
    [finding] = cardscan.scan_text(CLEAN_LOG + line, "log")
    assert finding.what == "security code"
    assert cardscan.scan_text(f"port {CODE} open", "log") == []  # no context: not a finding


def test_scan_tree_reads_sqlite_files_and_logs_and_skips_planted_dirs(tmp_path, code):
    area = tmp_path / "area"
    (area / "stack").mkdir(parents=True)
    db = area / "stack" / "paybot.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE verification_failures (id INTEGER, account_number TEXT)")
        conn.execute("INSERT INTO verification_failures VALUES (1, ?)", (CARD,))
    (area / "stack" / "paybot-up.log").write_text(f"user said my cvv is {CODE}\n")
    found = {(Path(f.source.split(" ")[0]).name, f.what) for f in cardscan.scan_tree(area)}
    assert found == {("paybot.db", "card number ending 0002"), ("paybot-up.log", "security code")}
    (area / "stack" / cardscan.PLANTED_MARKER).touch()  # the scan's own plantings are skipped
    assert cardscan.scan_tree(area) == []


def test_a_tracker_is_scanned_in_every_form(code):
    spoken = "four zero zero zero " + "zero " * 11 + "two"
    tracker = {
        "sender_id": "chat:1",
        "slots": {"account_number": "100200300"},
        "events": [
            {"event": "user", "text": "my account is 100200300", "timestamp": 1764893575.123456},
            {"event": "user", "text": spoken},
            {"event": "user", "text": "/card_number_shared"},
        ],
    }
    [finding] = cardscan.scan_tracker(tracker, "chat:1")
    assert finding.source == "tracker chat:1" and "card number" in finding.what
    tracker["events"][1]["text"] = "fine, thanks"
    assert cardscan.scan_tracker(tracker, "chat:1") == []
    tracker["slots"]["account_number"] = CARD
    assert [f.what for f in cardscan.scan_tracker(tracker, "chat:1")] == ["card number ending 0002"]


def test_messages_are_scanned_one_at_a_time():
    """An account number and a ZIP keyed one after the other are two messages, not a card
    number, even when their digits together pass Luhn (100200300 then 94102)."""
    events = [{"event": "user", "text": t} for t in ("100200300", "94102", "yes")]
    assert cardscan.scan_tracker({"sender_id": "call:1", "events": events}, "call:1") == []


def test_a_card_number_in_a_database_table_is_found(db_engine):
    with db_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO verification_failures (account_number, at) VALUES (:n, :at)"),
            {"n": CARD, "at": "2026-12-05 00:00:00"},
        )
    try:
        [finding] = cardscan.scan_engine(db_engine, "db")
        assert finding.source.startswith("db table verification_failures id ")
    finally:  # planted: removed before the after-suite scan sees this database
        with db_engine.begin() as conn:
            conn.execute(text("DELETE FROM verification_failures"))
    assert cardscan.scan_engine(db_engine, "db") == []


def test_a_run_that_leaves_card_data_behind_fails(tmp_path):
    """The conftest hook fails a whole pytest run whose files hold a card number."""
    (tmp_path / cardscan.PLANTED_MARKER).touch()  # what the inner run leaves is planted
    test_file = tmp_path / "test_leak.py"
    test_file.write_text(
        textwrap.dedent(
            f"""
            def test_leaks(tmp_path):
                (tmp_path / "service.log").write_text("charged {CARD[:8]} {CARD[8:]}")

            def test_clean(tmp_path):
                (tmp_path / "service.log").write_text("charged a card ending 0002")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "-p", "tests.conftest", "-q",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "--basetemp",
         str(tmp_path / "inner")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "2 passed" in out and "CARD DATA FOUND after the tests (1)" in out, out
    assert "service.log line 1: card number ending 0002" in out and CARD not in out, out
