"""The merchant settings an admin may read in the console: the payment profile and the
non-secret settings. Secrets are shown only as set or unset; URLs that may hold a password
are reduced to set or unset too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from paybot.payments.profile import load_profile
from paybot.settings import Settings

# Settings that are not secret types but may carry credentials or say too much.
_HIDDEN = {"database_url", "tracker_store_url", "lock_store_url", "sftp_url"}


@dataclass(frozen=True)
class SettingRow:
    name: str  # the environment variable
    value: str


def merchant_view(settings: Settings) -> tuple[list[SettingRow], list[SettingRow]]:
    """``(profile rows, settings rows)``, every value a display string."""
    profile = load_profile(settings)
    profile_rows = [
        SettingRow(key, _show(value)) for key, value in sorted(profile.dict().items())
    ]
    setting_rows = []
    for name, field in sorted(Settings.__fields__.items(), key=lambda kv: _env(kv[1])):
        value = getattr(settings, name)
        if field.type_ is SecretStr or name in _HIDDEN:
            shown = "set" if value is not None and _has(value) else "unset"
        else:
            shown = _show(value)
        setting_rows.append(SettingRow(_env(field), shown))
    return profile_rows, setting_rows


def _env(field: Any) -> str:
    env = field.field_info.extra.get("env") or field.name.upper()
    return env if isinstance(env, str) else sorted(env)[0]


def _has(value: Any) -> bool:
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value) or "—"
    return str(value)
