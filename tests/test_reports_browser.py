"""A supervisor reads the reports in headless Chromium: the range presets, the summary, the
charts (SVG images the strict Content-Security-Policy lets through), each table and its CSV
download; an agent has no way in. Seeded random data of the last seven days
(tests/report_data.py); screenshots go to artifacts/ (console-reports-*.png)."""

from __future__ import annotations

import csv
import io
import random
from datetime import timedelta
from pathlib import Path

import pytest

from paybot.db.types import utcnow
from paybot.settings import load_settings
from tests.console_browser import chromium, shot, sign_in
from tests.console_server import PASSWORD, ConsoleServer
from tests.report_data import seed_reports

TABLES = ("daily", "payments", "dropoff", "declines", "transfers", "sessions", "agents")


@pytest.fixture
def console(settings, tmp_path, ledger, db_engine):
    console_settings = load_settings(env="test", data_dir=tmp_path / "var")
    with ConsoleServer(console_settings, db_engine) as server:
        server.add_users()
        yield server


def test_a_supervisor_reads_the_weeks_reports_with_charts_and_csv(console):
    today = utcnow().date()
    seed_reports(
        console.engine,
        random.Random(11),
        today - timedelta(days=6),
        7,
        calls=120,
        payments=150,
        sessions=20,
    )
    problems: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console",
            lambda message: (
                problems.append(message.text) if message.type in ("error", "warning") else None
            ),
        )
        sign_in(page, console.url, "supervisor", PASSWORD)
        page.get_by_role("link", name="Reports").click()
        assert page.url.endswith("/console/reports")
        assert page.get_by_label("From").input_value() == today.isoformat()  # today by default
        page.get_by_role("link", name="Last 7 days").click()
        assert page.get_by_label("From").input_value() == (today - timedelta(days=6)).isoformat()
        page.wait_for_load_state("networkidle")
        charts = page.locator("img.chart")
        assert charts.count() == len(TABLES)
        drawn = page.evaluate(
            "Array.from(document.querySelectorAll('img.chart'))"
            ".map(i => i.complete && i.naturalWidth > 0)"
        )
        assert drawn == [True] * len(TABLES), drawn
        calls = int(page.locator("#summary div", has_text="Calls").first.locator("dd").inner_text())
        assert calls > 0
        for name in TABLES:
            assert page.locator(f"table#{name} tbody tr").count() > 0, name
        shot(page, "reports-week")
        with page.expect_download() as download_info:
            page.locator("#report-payments a.csv").click()
        download = download_info.value
        assert download.suggested_filename == (
            f"paybot-payments-{today - timedelta(days=6)}-to-{today}.csv"
        )
        parsed = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
        assert parsed[0] == ["Channel", "Outcome", "Currency", "Payments", "Amount"]
        shown = page.locator("table#payments tbody tr").count()
        assert len(parsed) - 1 == shown
        page.get_by_label("From").fill((today - timedelta(days=2)).isoformat())
        page.get_by_label("To").fill(today.isoformat())
        page.get_by_role("button", name="Show").click()
        assert "refreshed every minute" in page.inner_text("#range")
        shot(page, "reports-range")
        agent = browser.new_page()
        sign_in(agent, console.url, "agent", PASSWORD)
        assert "Reports" not in agent.inner_text("header nav")
        answer = agent.goto(console.url + "/console/reports")
        assert answer.status == 403
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
