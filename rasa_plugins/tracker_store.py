"""Rasa's in-memory tracker store, bounded: the default for one Rasa process.

Rasa's own ``InMemoryTrackerStore`` keeps every conversation it ever saw until the process
exits. :class:`BoundedTrackerStore` keeps them in memory too, but forgets a conversation idle
for longer than the domain's session expiry (``session_config.session_expiration_time``; Rasa
would start a new session for it anyway) and, past ``max_conversations``, the least recently
used one. ``bot/endpoints.yml`` selects it::

    tracker_store:
      type: rasa_plugins.tracker_store.BoundedTrackerStore
      max_conversations: ${PAYBOT_TRACKER_MAX_CONVERSATIONS}

Each conversation keeps only its latest session (:func:`latest_session`).

Optional keys: ``max_conversations`` (default 10000; ``paybot up`` sets the variable from the
setting) and ``idle_expiry_s`` (default: the session expiry; one day when sessions never
expire). Several Rasa processes need a shared
store instead (``PAYBOT_TRACKER_STORE_URL``: PostgreSQL). Logs carry counts, never sender ids
(they hold phone numbers).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

log = logging.getLogger(__name__)
DEFAULT_MAX_CONVERSATIONS = 10_000
NEVER_EXPIRING_IDLE_S = 24 * 3600.0  # sessions that never expire are still forgotten after a day


class BoundedTrackerStore(InMemoryTrackerStore):
    """In-memory conversations, at most ``max_conversations``, none idle past the expiry.

    Args:
        domain: The bot's domain (its session expiry is the default idle expiry).
        event_broker: Rasa's event broker, if any.
        max_conversations: How many conversations to keep; the least recently used goes first.
        idle_expiry_s: Forget a conversation not saved or read for this long (seconds).
        clock: Wall-clock seconds (for tests).
    """

    def __init__(
        self,
        domain: Domain,
        event_broker: EventBroker | None = None,
        *,
        host: Any = None,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        idle_expiry_s: float | None = None,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        if int(max_conversations) < 1:
            raise ValueError("max_conversations must be at least 1")
        if idle_expiry_s is not None and float(idle_expiry_s) <= 0:
            raise ValueError("idle_expiry_s must be positive")
        super().__init__(domain, event_broker, **kwargs)
        self.store: OrderedDict[str, str] = OrderedDict()
        self.max_conversations = int(max_conversations)
        self._idle_expiry_s = None if idle_expiry_s is None else float(idle_expiry_s)
        self._clock = clock
        self._last_used: dict[str, float] = {}

    @property
    def idle_expiry_s(self) -> float:
        """The configured idle expiry, else the domain's session expiry (read each time: Rasa
        sets the domain after it loads the model)."""
        if self._idle_expiry_s is not None:
            return self._idle_expiry_s
        minutes = self.domain.session_config.session_expiration_time if self.domain else 0
        return float(minutes) * 60.0 if minutes and minutes > 0 else NEVER_EXPIRING_IDLE_S

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Save the conversation's latest session (:func:`latest_session`) as the most
        recently used, then make room."""
        await self.stream_events(tracker)
        self.store[tracker.sender_id] = self.serialise_tracker(latest_session(tracker))
        self._touch(tracker.sender_id)
        self._evict()

    async def keys(self) -> Iterable[str]:
        self._evict()
        return list(self.store.keys())

    async def _retrieve(
        self, sender_id: str, fetch_all_sessions: bool
    ) -> DialogueStateTracker | None:
        self._evict()
        if sender_id in self.store:
            self._touch(sender_id)
        return await super()._retrieve(sender_id, fetch_all_sessions)

    def _touch(self, sender_id: str) -> None:
        self.store.move_to_end(sender_id)
        self._last_used[sender_id] = self._clock()

    def _evict(self) -> None:
        """Drop idle conversations (oldest first), then the least recently used over the cap."""
        cutoff = self._clock() - self.idle_expiry_s
        idle = over = 0
        while self.store:
            oldest = next(iter(self.store))
            if self._last_used.get(oldest, 0.0) <= cutoff:
                idle += 1
            elif len(self.store) > self.max_conversations:
                over += 1
            else:
                break
            del self.store[oldest]
            self._last_used.pop(oldest, None)
        if idle or over:
            log.info(
                "tracker store: forgot %d idle and %d least recently used conversations "
                "(%d kept)",
                idle,
                over,
                len(self.store),
            )


def latest_session(tracker: DialogueStateTracker) -> DialogueStateTracker:
    """``tracker`` without the sessions before its latest ``session_started``.

    The bot starts a new session in the middle of a text conversation (goodbye, a transfer:
    ``actions.anytime.end_of_session``) without Rasa's ``action_session_start``, so Rasa's
    own split by session never drops the earlier ones: a number that texts every day would
    carry every earlier conversation, read and written in full at each message (and sent to
    the action server). Nothing before the latest ``session_started`` counts any more (the
    dialog, the slots and the per-session counts start afresh there); only the last turn
    before it is kept: its message (Rasa times the session expiry from the latest one) and the
    bot's reply (a caller may ask to hear it again).
    """
    events = list(tracker.events)
    cut = next(
        (i for i in range(len(events) - 1, -1, -1) if isinstance(events[i], SessionStarted)), 0
    )
    if cut == 0:
        return tracker
    before = events[cut - 1]
    if isinstance(before, ActionExecuted) and before.action_name == ACTION_SESSION_START_NAME:
        kept = events[cut - 1 :]  # Rasa's own session start: what its split would keep
    else:  # the bot's: from the message that ended the session (its reply can be repeated)
        last = next((i for i in range(cut - 1, -1, -1) if isinstance(events[i], UserUttered)), cut)
        kept = events[last:]
    return DialogueStateTracker.from_events(
        tracker.sender_id,
        kept,
        tracker.slots.values(),
        max_event_history=tracker._max_event_history,
        sender_source=tracker.sender_source,
    )
