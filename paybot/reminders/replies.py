"""A text from a number that got a reminder is noted on that reminder: when it came and what
kind of answer it was, never its words (a reply could hold a card number).

The kinds: ``pay`` (the text starts with the word PAY), ``stop``, ``start`` and ``help`` (the
compliance keywords, as :mod:`paybot.sms.keywords` matches them), ``yes``, or ``other``. Only
the first text after a reminder counts, and only within :data:`REPLY_WINDOW` of it; a number
that got several reminders answers the latest.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.types import utcnow
from paybot.sms.keywords import Keyword, classify

REPLY_WINDOW = timedelta(days=7)
_PAY = re.compile(r"\s*pay\b", re.IGNORECASE | re.ASCII)
_KINDS = {Keyword.OPT_OUT: "stop", Keyword.OPT_IN: "start", Keyword.HELP: "help"}


def reply_kind(body: str, opt_out_type: str | None = None) -> str:
    """What kind of answer ``body`` is (one of the words above)."""
    found = classify(body, opt_out_type)
    if found is not None:
        kind, word = found
        return "yes" if word == "YES" and not opt_out_type else _KINDS[kind]
    return "pay" if _PAY.match(body) else "other"


def note_reply(engine: Engine, phone: str, kind: str, now: datetime | None = None) -> int | None:
    """Note a reply of ``kind`` from ``phone`` on its latest unanswered reminder; that
    reminder's id, or None when the number has none (blocking)."""
    now = now or utcnow()
    since = now - REPLY_WINDOW
    with session_scope(engine) as session:
        reminder = queries.unreplied_reminder(session=session, phone=phone, since=since)
        if reminder is None or reminder.id is None:
            return None
        won = queries.mark_replied(session=session, reminder_id=reminder.id, reply=kind, now=now)
        return reminder.id if won else None
