"""Rasa's trackers: the SQL tracker store's ``events`` table, or the running Rasa's API.

With ``PAYBOT_TRACKER_STORE_URL`` (PostgreSQL, ``?schema=name`` for Rasa's schema) every row of
Rasa's ``events`` table is read: the event's JSON, and a user event's text as a message (what
the user said, spoken forms and all; one message at a time, so an account number and a ZIP
said one after the other are not a card number).

Without it Rasa keeps conversations in its own memory, which nothing outside can list: the
scan asks the running Rasa (``GET /conversations/<id>/tracker`` with the API token) for every
conversation the database names (each call's ``call:<CallSid>``, and the conversation ids of
payments, audit events and failed verifications). When Rasa is not running its in-memory
trackers are gone with it, and the report says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import requests
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from .finders import Finders
from .report import Report

EVENTS_TABLE = "events"
# Where the database names conversations (table, column, prefix of Rasa's sender id).
CONVERSATION_COLUMNS = (
    ("calls", "call_sid", "call:"),
    ("payments", "conversation_id", ""),
    ("audit_events", "conversation_id", ""),
    ("verification_failures", "conversation_id", ""),
)


def scan_events(events: Iterable[dict[str, Any]], source: str, finders: Finders) -> list[str]:
    """What a list of Rasa events holds: each event's JSON, and user texts as messages."""
    found: dict[str, None] = {}
    for event in events:
        found.update(dict.fromkeys(finders.find(json.dumps(event))))
        if event.get("event") == "user":
            found.update(dict.fromkeys(finders.find(str(event.get("text") or ""), message=True)))
    return list(found)


def scan_tracker(tracker: dict[str, Any], label: str, finders: Finders) -> Report:
    """A tracker as Rasa's API returns it: its slots and the rest, and its events."""
    report = Report()
    rest = {k: v for k, v in tracker.items() if k != "events"}
    found = dict.fromkeys(finders.find(json.dumps(rest)))
    found.update(dict.fromkeys(scan_events(tracker.get("events") or [], label, finders)))
    report.add(f"tracker {label}", found)
    report.read("trackers")
    return report


def tracker_store_engine(url: str) -> Engine:
    """An engine on the tracker store (``?schema=`` becomes the search path)."""
    parsed = make_url(url)
    query = dict(parsed.query)
    schema = query.pop("schema", None)
    if isinstance(schema, tuple):
        schema = schema[-1]
    if parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql")
    args = {"options": f"-csearch_path={schema}"} if schema else {}
    return create_engine(parsed.set(query=query), connect_args=args, pool_pre_ping=True)


def scan_tracker_store(engine: Engine, finders: Finders) -> Report:
    """Every event in the SQL tracker store's ``events`` table."""
    report = Report()
    try:
        with engine.connect() as conn:
            if EVENTS_TABLE not in inspect(conn).get_table_names():
                report.note("tracker store: no events table (Rasa has stored nothing yet)")
                return report
            rows = conn.execute(text(f"SELECT id, data FROM {EVENTS_TABLE}"))  # noqa: S608
            for event_id, data in rows:
                try:
                    event = json.loads(data or "{}")
                except ValueError:
                    event = {"data": data}
                report.add(f"tracker store event id {event_id}",
                           scan_events([event if isinstance(event, dict) else {"data": event}],
                                       str(event_id), finders))
                report.read("tracker store events")
    except SQLAlchemyError as exc:
        report.error("tracker store: cannot read it "
                     f"({type(exc).__name__}: {str(getattr(exc, 'orig', exc)).strip()[:200]})")
    return report


def known_conversations(engine: Engine) -> set[str]:
    """Rasa sender ids the database names (see :data:`CONVERSATION_COLUMNS`)."""
    ids: set[str] = set()
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        for table, column, prefix in CONVERSATION_COLUMNS:
            if table in tables:
                query = text(f"SELECT DISTINCT {column} FROM {table} "  # noqa: S608 - ours
                             f"WHERE {column} IS NOT NULL")
                ids.update(prefix + value for (value,) in conn.execute(query))
    return ids


def scan_rasa_api(rasa_url: str, token: str, senders: Iterable[str], finders: Finders,
                  timeout_s: float = 30.0) -> Report:
    """The tracker of each of ``senders`` from the running Rasa's HTTP API."""
    report = Report()
    senders = sorted(senders)
    try:
        requests.get(f"{rasa_url}/version", timeout=timeout_s).raise_for_status()
    except requests.RequestException:
        report.note(f"Rasa not reachable at {rasa_url}: its in-memory trackers are gone with "
                    "it when it is not running (set PAYBOT_TRACKER_STORE_URL to keep them)")
        return report
    for sender in senders:
        try:
            response = requests.get(f"{rasa_url}/conversations/{sender}/tracker",
                                    params={"token": token}, timeout=timeout_s)
            response.raise_for_status()
            tracker = response.json()
        except (requests.RequestException, ValueError) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            report.error(f"tracker {sender}: Rasa's API refused it "
                         f"({status or type(exc).__name__}; is PAYBOT_RASA_TOKEN right?)")
            if status in (401, 403):
                break
            continue
        report.merge(scan_tracker(tracker, sender, finders))
    return report
