"""The reports' charts: SVG drawn on the server by matplotlib (its object API, no pyplot and
no display), one chart per report table. The console shows them as images (``<img>``), so
the pages keep their strict Content-Security-Policy; an SVG from here holds no script.

Drawing takes a good part of a second on a busy machine, so a chart is drawn once per table
content (the last :data:`CACHED` kept) and under one lock (matplotlib's settings are global).
Blocking: run in a thread. matplotlib is imported on the first chart, not with the console.
"""

from __future__ import annotations

import functools
import io
import threading
from datetime import date
from typing import Any

from paybot.console.reports import AGENT_RESULTS, Cell, Table

CACHED = 64
CHARTED = ("daily", "payments", "dropoff", "declines", "transfers", "sessions", "agents", "live")
PALETTE = (
    "#1f5fbf",
    "#2e9e6b",
    "#d08a1c",
    "#a8201a",
    "#7a4fb5",
    "#5b6475",
    "#3aa6b9",
    "#c2577a",
    "#8c6d1f",
    "#4c7a2a",
    "#9aa3b5",
    "#1d2433",
)
# An outcome keeps its colour on every chart: green went through, red was refused...
OUTCOMES = {
    "succeeded": "#2e9e6b",
    "declined": "#a8201a",
    "failed": "#d08a1c",
    "pending": "#9aa3b5",
    "unknown": "#5b6475",
    "refunded": "#7a4fb5",
    "scheduled": "#1f5fbf",
    "skipped": "#3aa6b9",
    "cancelled": "#c2577a",
    "expired": "#8c6d1f",
    "matched": "#3aa6b9",
    "in_progress": "#1f5fbf",
    "created": "#9aa3b5",
}
# With text left as text, the SVG names matplotlib's font; the browser falls back from it.
FONT = ("'DejaVu Sans'", "'DejaVu Sans', system-ui, sans-serif")
INK, MUTED, GRID = "#1d2433", "#5b6475", "#d7dbe3"
# The column a bar chart counts, by report.
COUNTED = {
    "dropoff": "Calls dropped",
    "declines": "Declines",
    "transfers": "Transfers",
    "live": "Calls",
}
LONGEST_LABEL = 34
MOST_BARS = 15
_lock = threading.Lock()


def chart_svg(table: Table) -> str:
    """The chart of ``table`` as an SVG document (one saying so when there is nothing to draw)."""
    return _drawn(table.name, table.title, table.columns, tuple(table.rows))


@functools.lru_cache(maxsize=CACHED)
def _drawn(
    name: str, title: str, columns: tuple[str, ...], rows: tuple[tuple[Cell, ...], ...]
) -> str:
    table = Table(name, title, columns, list(rows))
    with _lock:
        from cycler import cycler
        from matplotlib import rc_context

        with rc_context({**_STYLE, "axes.prop_cycle": cycler(color=PALETTE)}):
            figure = _figure(table)
            out = io.StringIO()
            figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue().replace(*FONT)


_STYLE: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: searchable, and small
    "font.family": "DejaVu Sans",  # shipped with matplotlib
    "font.size": 10,
    "axes.edgecolor": GRID,
    "axes.labelcolor": MUTED,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": MUTED,
    "ytick.color": INK,
}


def _figure(table: Table) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.2, 3.2), layout="constrained")
    axes = figure.subplots()  # no title: the page's heading and the image's alt text say it
    if not table.rows:
        axes.set_axis_off()
        axes.text(
            0.5,
            0.5,
            "Nothing in this range",
            ha="center",
            va="center",
            color=MUTED,
            transform=axes.transAxes,
        )
        return figure
    draws = {"daily": _daily, "payments": _payments, "sessions": _sessions, "agents": _agents}
    draw = draws.get(table.name)
    if draw is not None:
        draw(axes, table)
    else:  # the first column the label, summed over the rest (a reason's currencies)
        counted: dict[str, int] = {}
        what = COUNTED[table.name]
        for label, n in zip(table.column(table.columns[0]), table.column(what), strict=True):
            counted[str(label)] = counted.get(str(label), 0) + int(n or 0)
        _bars(axes, list(counted), list(counted.values()), what)
    return figure


def _bars(axes: Any, labels: list[str], values: list[int], what: str) -> None:
    """Horizontal bars, biggest at the top, each with its count."""
    labels, values = _top(labels, values)
    places = list(range(len(labels)))[::-1]
    bars = axes.barh(places, values, color=PALETTE[0])
    axes.set_yticks(places, [_short(label) for label in labels])
    axes.bar_label(bars, padding=3, color=INK)
    axes.set_xlabel(what)
    axes.margins(x=0.12)
    axes.xaxis.get_major_locator().set_params(integer=True)


def _daily(axes: Any, table: Table) -> None:
    days = [d for d in table.column("Day") if isinstance(d, date)]
    series = ("Calls", "Contained", "Transferred")
    if len(days) <= 31:
        width = 0.8 / len(series)
        for n, heading in enumerate(series):
            offsets = [i + (n - 1) * width for i in range(len(days))]
            axes.bar(offsets, [int(c or 0) for c in table.column(heading)], width, label=heading)
        step = max(1, len(days) // 10)
        axes.set_xticks(range(0, len(days), step), [d.strftime("%b %d") for d in days][::step])
    else:
        for heading in series:
            axes.plot(days, [int(c or 0) for c in table.column(heading)], label=heading)
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncol=3)


def _stacked(axes: Any, groups: list[str], parts: dict[str, dict[str, int]], what: str) -> None:
    """One horizontal bar per group, split into its parts (a colour per part)."""
    places = list(range(len(groups)))[::-1]
    left = [0] * len(groups)
    for n, (part, by_group) in enumerate(sorted(parts.items())):
        values = [by_group.get(group, 0) for group in groups]
        colour = OUTCOMES.get(part, PALETTE[n % len(PALETTE)])
        axes.barh(places, values, left=left, label=part, color=colour)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.set_yticks(places, [_short(group) for group in groups])
    axes.set_xlabel(what)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)


def _payments(axes: Any, table: Table) -> None:
    _stacked(axes, *_split(table, "Channel", "Outcome", "Payments"), "Payments")


def _sessions(axes: Any, table: Table) -> None:
    _stacked(axes, *_split(table, "Status", "Failure reason", "Sessions"), "Sessions")


def _agents(axes: Any, table: Table) -> None:
    """A bar per agent (over its currencies), split by how the payments ended."""
    groups = list(dict.fromkeys(str(agent) for agent in table.column("Agent")))
    parts: dict[str, dict[str, int]] = {}
    for ending in AGENT_RESULTS:
        counts = table.column(ending.capitalize())
        by_agent: dict[str, int] = {}
        for agent, n in zip(table.column("Agent"), counts, strict=True):
            by_agent[str(agent)] = by_agent.get(str(agent), 0) + int(n or 0)
        if any(by_agent.values()):
            parts[ending] = by_agent
    _stacked(axes, groups, parts, "Payments asked for")


def _split(table: Table, group: str, part: str, count: str) -> tuple[list[str], dict]:
    groups: list[str] = []
    parts: dict[str, dict[str, int]] = {}
    for g, p, n in zip(table.column(group), table.column(part), table.column(count), strict=True):
        name, piece = str(g), str(p or "—")
        if name not in groups:
            groups.append(name)
        by_group = parts.setdefault(piece, {})
        by_group[name] = by_group.get(name, 0) + int(n or 0)
    return groups, parts


def _top(labels: list[str], values: list[int]) -> tuple[list[str], list[int]]:
    """At most :data:`MOST_BARS` bars: the biggest, the rest summed as "other"."""
    ranked = sorted(zip(labels, values, strict=True), key=lambda pair: -pair[1])
    if len(ranked) <= MOST_BARS:
        return [label for label, _ in ranked], [value for _, value in ranked]
    kept, rest = ranked[: MOST_BARS - 1], ranked[MOST_BARS - 1 :]
    kept.append(("other", sum(value for _, value in rest)))
    return [label for label, _ in kept], [value for _, value in kept]


def _short(label: str) -> str:
    return label if len(label) <= LONGEST_LABEL else label[: LONGEST_LABEL - 1] + "…"
