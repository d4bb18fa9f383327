"""``paybot trackers prune --older-than DAYS``: the retention of Rasa's PostgreSQL tracker store.

Rasa's SQL tracker store (``PAYBOT_TRACKER_STORE_URL``, needed by several Rasa workers) keeps
every event of every conversation in its ``events`` table for ever. This deletes the
conversations whose last event is older than DAYS, in batches of conversations, each batch its
own transaction. A conversation that comes back while it is being pruned keeps its new events
(only events older than the cutoff are deleted): it starts afresh, as it would after its
session expired. Run it daily (cron, or ``deploy/systemd/paybot-trackers-prune.timer``).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from paybot.settings import Settings
from paybot_cli.console import emit, fail

log = logging.getLogger(__name__)
BATCH = 500  # conversations per transaction
_IDLE = "SELECT sender_id FROM events GROUP BY sender_id HAVING max(timestamp) < :cutoff"


@dataclass(frozen=True)
class Pruned:
    conversations: int
    events: int


def tracker_engine(url: str) -> Engine:
    """An engine on the tracker store at ``url`` (its ``?schema=`` as the search path)."""
    from paybot.db.engine import make_engine

    parsed = make_url(url)
    query = {k: v for k, v in parsed.query.items() if k != "schema"}
    schema = parsed.query.get("schema")
    if isinstance(schema, tuple):
        schema = schema[-1]
    return make_engine(
        parsed.set(query=query).render_as_string(hide_password=False), search_path=schema
    )


def create_events_table(url: str) -> None:
    """Create Rasa's ``events`` table (and its index) in the tracker store at ``url``, by Rasa's
    own table definition, unless it exists. Before several Rasa processes start: each creates
    it when missing, and PostgreSQL can fail one of two that create it at the same moment."""
    from rasa.core.tracker_store import SQLTrackerStore

    engine = tracker_engine(url)
    try:
        SQLTrackerStore.Base.metadata.create_all(engine)
    finally:
        engine.dispose()


def prune(engine: Engine, older_than_s: float, *, now: float | None = None,
          dry_run: bool = False) -> Pruned:
    """Delete (or, with ``dry_run``, count) the conversations idle for ``older_than_s``."""
    cutoff = (time.time() if now is None else now) - older_than_s
    if dry_run:
        with engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM events "  # noqa: S608 - constant
                     f"WHERE sender_id IN ({_IDLE}) GROUP BY sender_id) AS idle"),
                {"cutoff": cutoff},
            ).one()
        return Pruned(int(row[0]), int(row[1]))
    conversations = events = 0
    while True:
        with engine.begin() as conn:
            done, deleted = _prune_batch(conn, cutoff)
        conversations += done
        events += deleted
        if done < BATCH:
            return Pruned(conversations, events)


def _prune_batch(conn: Connection, cutoff: float) -> tuple[int, int]:
    senders = conn.execute(text(f"{_IDLE} LIMIT {BATCH}"), {"cutoff": cutoff}).scalars().all()
    if not senders:
        return 0, 0
    deleted = conn.execute(
        text("DELETE FROM events WHERE sender_id = ANY(:senders) AND timestamp < :cutoff"),
        {"senders": list(senders), "cutoff": cutoff},
    ).rowcount
    return len(senders), deleted


def prune_command(settings: Settings, args: argparse.Namespace) -> int:
    """Returns 0 after pruning, 1 when the store cannot be reached, 2 without a store or with
    a negative age."""
    if settings.tracker_store_url is None:
        fail("PAYBOT_TRACKER_STORE_URL is not set: Rasa keeps conversations in memory, "
             "where idle ones are forgotten on their own")
        return 2
    if args.older_than < 0:
        fail("--older-than: DAYS must be 0 or more")
        return 2
    engine = tracker_engine(settings.tracker_store_url.get_secret_value())
    try:
        pruned = prune(engine, args.older_than * 86400, dry_run=args.dry_run)
    except SQLAlchemyError as exc:
        fail(f"the tracker store could not be pruned ({type(exc).__name__})")
        return 1
    finally:
        engine.dispose()
    verb = "would delete" if args.dry_run else "deleted"
    emit(f"{verb} {pruned.conversations} conversations ({pruned.events} events) idle for "
         f"more than {args.older_than:g} days")
    return 0
