"""The payment reminder settings (docs/text.md, "Reminders"). A part of
:class:`paybot.settings.Settings`, which inherits them: read them there."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseSettings, Field, validator


class ReminderSettings(BaseSettings):
    # Payment reminders (docs/text.md, "Reminders"): how often the bridge runs them (0: off;
    # `paybot reminders run` from cron does the same), how many days before the due date,
    # by text or by call (from PAYBOT_REMINDER_CALL_FROM, else PAYBOT_SMS_FROM), at most so
    # many per second.
    reminder_interval_s: float = Field(0.0, env="PAYBOT_REMINDER_INTERVAL_S", ge=0)
    reminder_offsets_days: str = Field("7,3,1", env="PAYBOT_REMINDER_OFFSETS_DAYS")
    reminder_channel: Literal["sms", "voice"] = Field("sms", env="PAYBOT_REMINDER_CHANNEL")
    reminder_rate_per_s: float = Field(1.0, env="PAYBOT_REMINDER_RATE_PER_S", gt=0, le=1000)
    reminder_call_from: str | None = Field(None, env="PAYBOT_REMINDER_CALL_FROM")

    @validator("reminder_offsets_days")
    def _offsets(cls, value: str) -> str:  # noqa: N805
        return ",".join(str(days) for days in parse_offsets(value))

    @validator("reminder_call_from")
    def _caller_id(cls, value: str | None) -> str | None:  # noqa: N805
        from paybot.phone import is_e164

        if value is not None and value.strip() and not is_e164(value.strip()):
            raise ValueError("must be a phone number in E.164 form, e.g. +15555550000")
        return value.strip() if value and value.strip() else None

    @property
    def reminder_offsets(self) -> tuple[int, ...]:
        """``PAYBOT_REMINDER_OFFSETS_DAYS`` as days, largest first (7, 3, 1)."""
        return parse_offsets(self.reminder_offsets_days)


def parse_offsets(spec: str) -> tuple[int, ...]:
    """``"7,3,1"`` as (7, 3, 1): distinct whole days from 0 to 365, largest first.

    Raises:
        ValueError: Not a comma-separated list of such days.
    """
    try:
        days = {int(part) for part in spec.split(",") if part.strip()}
    except ValueError:
        raise ValueError("must be whole days separated by commas, e.g. 7,3,1") from None
    if not days or not all(0 <= d <= 365 for d in days):
        raise ValueError("must name at least one day, each from 0 to 365")
    return tuple(sorted(days, reverse=True))
