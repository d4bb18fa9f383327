"""Quiet hours: outreach (reminders, notices) reaches a customer only outside a daily window of
their local time, ``PAYBOT_SMS_QUIET_HOURS`` ("21:00-08:00", the TCPA's 9 pm to 8 am).

The local time is the recipient's number's: ``phonenumbers`` knows the time zones of a
country or an area code. A number in several zones (some area codes straddle a boundary) is
quiet while any of them is; a number it cannot place (555 numbers, unknown areas) is in
``PAYBOT_SMS_TIME_ZONE``. Replies to a customer's own text and the receipts they asked for in
the conversation are not outreach and go out at once (:mod:`paybot.sms.outreach`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

_WINDOW = re.compile(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*")
_UNKNOWN = "Etc/Unknown"
_MAX_STEPS = 8  # a number's zones rarely differ by more than a few hours


def parse_window(spec: str) -> tuple[time, time] | None:
    """``"21:00-08:00"`` as (start, end); None for "" (no quiet hours).

    Raises:
        ValueError: Not ``HH:MM-HH:MM``, or a window of no length.
    """
    if not spec.strip():
        return None
    match = _WINDOW.fullmatch(spec)
    if not match:
        raise ValueError("quiet hours must look like 21:00-08:00 (or be empty for none)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ValueError("quiet hours must start and end at different times")
    return start, end


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``.

    Raises:
        ValueError: No such zone on this system.
    """
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name.strip()!r}") from None


def zones_for_number(e164: str, default: str) -> tuple[ZoneInfo, ...]:
    """The time zones of ``e164`` as far as its country and area code tell; ``default``
    when they tell nothing."""
    try:
        names = number_zones.time_zones_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        names = ()
    found = []
    for name in names:
        if name == _UNKNOWN:
            continue
        try:
            found.append(zone(name))
        except ValueError:
            continue
    return tuple(found) or (zone(default),)


@dataclass(frozen=True)
class QuietHours:
    """A daily window, local to each recipient, when outreach waits."""

    start: time
    end: time
    default_zone: str

    @classmethod
    def from_spec(cls, spec: str, default_zone: str) -> QuietHours | None:
        window = parse_window(spec)
        return None if window is None else cls(window[0], window[1], default_zone)

    def is_quiet(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # the window spans midnight

    def resume_at(self, e164: str, now: datetime) -> datetime | None:
        """None when a message may go to ``e164`` at ``now`` (UTC); else the first UTC time
        when it may, in every zone of the number."""
        zones = zones_for_number(e164, self.default_zone)
        at = now
        for _ in range(_MAX_STEPS):
            ends = [self._end_of_quiet(at, z) for z in zones]
            later = [end for end in ends if end is not None]
            if not later:
                return None if at == now else at
            at = max(later)
        return at  # zones a whole day apart: send at the end of the last window found

    def _end_of_quiet(self, moment: datetime, where: ZoneInfo) -> datetime | None:
        """When the quiet window holding ``moment`` ends in ``where`` (UTC); None outside."""
        local = moment.astimezone(where)
        if not self.is_quiet(local.time()):
            return None
        day = local.date() if local.time() < self.end else local.date() + timedelta(days=1)
        end = datetime.combine(day, self.end, tzinfo=where)
        return end.astimezone(timezone.utc)
