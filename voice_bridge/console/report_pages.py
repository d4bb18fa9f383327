"""The console's reports (supervisors and admins): the page for a range of UTC days (today by
default, refreshed every minute while the range includes today), each report's chart as an
SVG image and each report as a CSV file. The queries are :mod:`paybot.console.reports`'s,
the charts :mod:`paybot.console.charts`', the files :mod:`paybot.console.report_csv`'s."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from aiohttp import web

from paybot.console.charts import CHARTED, chart_svg
from paybot.console.report_csv import file_name, to_csv
from paybot.console.reports import (
    REPORTS,
    BadRange,
    Cell,
    ReportRange,
    Table,
    all_reports,
    live_steps,
    report,
)
from paybot.db.models import ConsoleRole
from paybot.db.types import utcnow
from voice_bridge.console.guard import ACTIVE, requires
from voice_bridge.console.render import page
from voice_bridge.keys import DB_ENGINE, LIVE_CALLS

# An SVG shown as an image runs no script; its own styles (matplotlib's) are all it may use.
CHART_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
REFRESH_S = 60


@requires(ConsoleRole.SUPERVISOR)
async def reports(request: web.Request) -> web.StreamResponse:
    today = utcnow().date()
    error, status = None, 200
    try:
        rng = _range(request, today)
    except web.HTTPBadRequest as exc:
        rng, error, status = ReportRange(today, today), exc.text, 400
    tables = await asyncio.to_thread(all_reports, request.config_dict[DB_ENGINE], rng)
    summary, *rest = tables
    query = urlencode({"from": rng.start.isoformat(), "to": rng.end.isoformat()})
    return page(
        "reports.html",
        status=status,
        title="Reports",
        me=request[ACTIVE],
        rng=rng,
        error=error,
        summary=_shown(summary),
        live=_shown(_live(request)),
        tables=[_shown(t) for t in rest],
        query=query,
        presets=_presets(today),
        refresh=REFRESH_S if rng.end >= today else None,
        charted=CHARTED,
    )


@requires(ConsoleRole.SUPERVISOR)
async def report_csv(request: web.Request) -> web.StreamResponse:
    """``/console/reports/<name>.csv?from=&to=``: one report as a CSV attachment."""
    name, rng = request.match_info["name"], _range(request, utcnow().date())
    table = await _table(request, name, rng)
    response = web.Response(text=to_csv(table), content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{file_name(table, rng)}"'
    return response


@requires(ConsoleRole.SUPERVISOR)
async def report_chart(request: web.Request) -> web.StreamResponse:
    """``/console/reports/<name>.svg?from=&to=``: one report's chart."""
    name, rng = request.match_info["name"], _range(request, utcnow().date())
    if name not in CHARTED:
        raise web.HTTPNotFound()
    svg = await asyncio.to_thread(chart_svg, await _table(request, name, rng))
    response = web.Response(text=svg, content_type="image/svg+xml", charset="utf-8")
    response.headers["Content-Security-Policy"] = CHART_CSP
    return response


async def _table(request: web.Request, name: str, rng: ReportRange) -> Table:
    if name == "live":
        return _live(request)
    if name not in REPORTS:
        raise web.HTTPNotFound()
    return await asyncio.to_thread(report, request.config_dict[DB_ENGINE], rng, name)


def _live(request: web.Request) -> Table:
    return live_steps([call.step for call in request.config_dict[LIVE_CALLS].snapshot()])


def _range(request: web.Request, today: date) -> ReportRange:
    try:
        return ReportRange.parse(request.query.get("from"), request.query.get("to"), today)
    except BadRange as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


def _presets(today: date) -> list[tuple[str, str]]:
    """The range links above the reports: (label, query)."""

    def link(start: date, end: date = today) -> str:
        return urlencode({"from": start.isoformat(), "to": end.isoformat()})

    yesterday = today - timedelta(days=1)
    return [
        ("Today", link(today)),
        ("Yesterday", link(yesterday, yesterday)),
        ("Last 7 days", link(today - timedelta(days=6))),
        ("Last 30 days", link(today - timedelta(days=29))),
        ("This month", link(today.replace(day=1))),
    ]


def _shown(table: Table) -> dict[str, object]:
    """``table`` for the template: its cells as text ("—" for none)."""
    empty = "No calls on this bridge now." if table.name == "live" else "Nothing in this range."
    return {
        "empty": empty,
        "name": table.name,
        "title": table.title,
        "columns": table.columns,
        "rows": [[_text(cell) for cell in row] for row in table.rows],
    }


def _text(cell: Cell) -> str:
    if cell is None:
        return "—"
    if isinstance(cell, date):
        return cell.isoformat()
    if isinstance(cell, Decimal):
        return f"{cell:,}"
    return f"{cell:,}" if isinstance(cell, int) else str(cell)
