"""The endpoints file ``paybot up`` gives Rasa: ``bot/endpoints.yml`` plus the shared stores.

With neither ``PAYBOT_TRACKER_STORE_URL`` nor ``PAYBOT_LOCK_STORE_URL`` set, Rasa gets
``bot/endpoints.yml`` as it is (and keeps conversations and locks in memory). With either set,
``paybot up`` writes ``<data dir>/rasa-endpoints.yml``: a copy of ``bot/endpoints.yml`` with a
``tracker_store`` section (Rasa's SQL tracker store on PostgreSQL, with fewer round trips:
``rasa_plugins/sql_tracker_store.py``) and/or a ``lock_store``
section (Rasa's Redis lock store). Passwords are not in the file nor on a command line: the
file names environment variables (``${PAYBOT_TRACKER_STORE_PASSWORD}``), which Rasa expands
and which only the Rasa child process is given.

URL forms:

* ``postgresql://user:password@host:5432/db``; ``?schema=name`` keeps Rasa's ``events``
  table in that (existing) schema; other query parameters (``sslmode=require``...) go to the
  driver.
* ``redis://[:password@]host:6379/0`` or ``rediss://`` (TLS); ``?key_prefix=name``
  (letters and digits) namespaces the lock keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from sqlalchemy.engine import make_url

from paybot.settings import Settings, SettingsError
from paybot_cli.project import Project

GENERATED_NAME = "rasa-endpoints.yml"
TRACKER_PASSWORD_ENV = "PAYBOT_TRACKER_STORE_PASSWORD"  # noqa: S105 - a variable name
LOCK_PASSWORD_ENV = "PAYBOT_LOCK_STORE_PASSWORD"  # noqa: S105 - a variable name
SQL_TRACKER_STORE = "rasa_plugins.sql_tracker_store.FastSQLTrackerStore"
SCHEMA_ENV = "POSTGRESQL_SCHEMA"  # Rasa's own variable for the tracker store's schema
_HEADER = (
    "# Written by `paybot up` from bot/endpoints.yml and PAYBOT_TRACKER_STORE_URL /\n"
    "# PAYBOT_LOCK_STORE_URL; edit those, not this file. Passwords come from the environment.\n"
)


@dataclass(frozen=True)
class RasaEndpoints:
    """The endpoints file for Rasa and the environment the Rasa process needs for it."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)


def tracker_store(url: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``tracker_store`` section for a PostgreSQL URL, and the environment it reads."""
    parsed = make_url(url)
    if not parsed.drivername.startswith(("postgresql", "postgres")):
        raise SettingsError("PAYBOT_TRACKER_STORE_URL must be a postgresql:// URL")
    query = {k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()}
    env: dict[str, str] = {}
    if schema := query.pop("schema", None):
        env[SCHEMA_ENV] = schema
    section: dict[str, Any] = {
        # Rasa's SQL store with one read and one insert a turn (same table and rows).
        "type": SQL_TRACKER_STORE,
        "dialect": "postgresql" if parsed.drivername == "postgres" else parsed.drivername,
        "url": parsed.host or "localhost",
        "port": parsed.port or 5432,
        "db": parsed.database or "postgres",
    }
    if parsed.username:
        section["username"] = parsed.username
    if parsed.password:
        section["password"] = f"${{{TRACKER_PASSWORD_ENV}}}"
        env[TRACKER_PASSWORD_ENV] = str(parsed.password)
    if query:
        section["query"] = query
    return section, env


def lock_store(url: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``lock_store`` section for a Redis URL, and the environment it reads."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise SettingsError("PAYBOT_LOCK_STORE_URL must be a redis:// or rediss:// URL")
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise SettingsError("PAYBOT_LOCK_STORE_URL: the path must be a database number (/0)")
    section: dict[str, Any] = {
        "type": "redis",
        "url": parts.hostname or "localhost",
        "port": parts.port or 6379,
        "db": int(db),
        "use_ssl": parts.scheme == "rediss",
    }
    env: dict[str, str] = {}
    if parts.username:
        section["username"] = unquote(parts.username)
    if parts.password:
        section["password"] = f"${{{LOCK_PASSWORD_ENV}}}"
        env[LOCK_PASSWORD_ENV] = unquote(parts.password)
    if prefix := params.get("key_prefix"):
        if not prefix.isalnum():
            raise SettingsError("PAYBOT_LOCK_STORE_URL: key_prefix must be letters and digits")
        section["key_prefix"] = prefix
    return section, env


def rasa_endpoints(settings: Settings, project: Project) -> RasaEndpoints:
    """``bot/endpoints.yml``, or a copy with the configured stores written to the data dir.

    Raises:
        SettingsError: a store URL cannot be used.
    """
    stores: dict[str, Any] = {}
    env: dict[str, str] = {}
    if settings.tracker_store_url is not None:
        stores["tracker_store"], more = tracker_store(settings.tracker_store_url.get_secret_value())
        env.update(more)
    if settings.lock_store_url is not None:
        stores["lock_store"], more = lock_store(settings.lock_store_url.get_secret_value())
        env.update(more)
    if not stores:
        return RasaEndpoints(project.endpoints)
    base = yaml.safe_load((project.root / project.endpoints).read_text(encoding="utf-8")) or {}
    text = _HEADER + yaml.safe_dump({**base, **stores}, sort_keys=False)
    target = (settings.data_dir / GENERATED_NAME).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    temporary.replace(target)
    return RasaEndpoints(target, env)
