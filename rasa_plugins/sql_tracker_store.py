"""Rasa's SQL tracker store with fewer round trips: what several Rasa processes share.

Rasa 3.6's ``SQLTrackerStore`` reads a conversation's latest session as ORM objects, and
saves a turn by first counting the stored events again (the same query, as a sub-select)
and then adding each new event as an ORM object, which SQLAlchemy's unit of work inserts
one ``INSERT ... RETURNING id`` at a time: a dozen round trips to PostgreSQL for a turn's
events, all of it on Rasa's event loop.

:class:`FastSQLTrackerStore` keeps the same table, rows and session rules (it is a
subclass; `paybot trackers prune` and Rasa's own tools read it as before):

* reading takes only the ``data`` column of the same query, and notes on the tracker how many
  of its events are stored;
* saving inserts the events past that number in one statement (psycopg2 sends a batch as
  one multi-row ``INSERT``). A tracker it did not read (a new conversation, all sessions) is
  counted as Rasa counts it.

Both run their round trips to the database in a worker thread, not on Rasa's event loop
(where Rasa's own store runs them): while one conversation waits for PostgreSQL, the process
goes on with the others. The tracker itself is read and built on the loop.

Each turn of a conversation holds Rasa's lock (the Redis lock store with several Rasa
processes), so nothing else writes its events between the read and the save: the assumption
Rasa's own count makes too.

``paybot up`` selects it with ``PAYBOT_TRACKER_STORE_URL`` (``paybot_cli/rasa_endpoints.py``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

# The number of a tracker's leading events that are stored, set when this store read or
# saved that tracker object.
STORED = "_paybot_stored_events"


class FastSQLTrackerStore(SQLTrackerStore):
    """:class:`rasa.core.tracker_store.SQLTrackerStore`, one read and one insert a turn."""

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> DialogueStateTracker | None:
        rows = await asyncio.to_thread(self._read, sender_id, fetch_events_from_all_sessions)
        events = [json.loads(data) for data in rows]
        if not self.domain or not events:
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        if not fetch_events_from_all_sessions and len(tracker.events) == len(events):
            setattr(tracker, STORED, len(events))
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the events of ``tracker`` that are not stored yet, in one statement."""
        await self.stream_events(tracker)
        events = list(tracker.events)  # the thread never touches the tracker itself
        stored = getattr(tracker, STORED, None)
        if stored is None or stored > len(events):  # not read here: count as Rasa counts
            stored = await asyncio.to_thread(self._count, tracker.sender_id)
        rows = [_row(tracker.sender_id, event) for event in events[stored:]]
        if rows:
            await asyncio.to_thread(self._insert, rows)
        setattr(tracker, STORED, len(events))

    def _read(self, sender_id: str, fetch_events_from_all_sessions: bool) -> list[str]:
        """The ``data`` of the conversation's stored events (its latest session's, unless
        ``fetch_events_from_all_sessions``), in order."""
        with self.session_scope() as session:
            query = self._event_query(session, sender_id, fetch_events_from_all_sessions)
            return [data for (data,) in query.with_entities(self.SQLEvent.data).all()]

    def _count(self, sender_id: str) -> int:
        """How many events of the conversation's latest session are stored (what Rasa's
        ``_additional_events`` counts)."""
        with self.session_scope() as session:
            return int(self._event_query(session, sender_id, False).count())

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self.session_scope() as session:
            session.execute(self.SQLEvent.__table__.insert(), rows)
            session.commit()


def _row(sender_id: str, event: Any) -> dict[str, Any]:
    """The ``events`` row of ``event``: what Rasa's own ``save`` writes."""
    data = event.as_dict()
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": data.get("timestamp"),
        "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }
