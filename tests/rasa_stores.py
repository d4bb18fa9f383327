"""Rasa's shared stores for a test stack: a fresh schema in the ``PAYBOT_TEST_DATABASE_URL``
database for the tracker store and a fresh key prefix in Redis for the lock store. On the way
out the schema is scanned for card data and dropped, and the prefix's keys deleted."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.engine import Engine

from paybot.db.engine import make_engine
from tests import cardscan


@dataclass(frozen=True)
class SharedStores:
    schema: str
    prefix: str
    admin: Engine  # the whole database (Rasa's table is "<schema>".events)
    redis: Any  # redis.Redis on the lock store's database
    tracker_store_url: str
    lock_store_url: str

    def env(self) -> dict[str, str]:
        """What ``paybot up`` needs to use them."""
        return {"PAYBOT_TRACKER_STORE_URL": self.tracker_store_url,
                "PAYBOT_LOCK_STORE_URL": self.lock_store_url}


def redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def shared_stores(pg_url: str, redis_url: str) -> Iterator[SharedStores]:
    import redis

    suffix = uuid.uuid4().hex[:8]
    schema, prefix = f"paybot_rasa_{suffix}", f"paybottest{suffix}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    red = redis.Redis.from_url(redis_url)
    try:
        yield SharedStores(schema, prefix, admin, red, f"{pg_url}?schema={schema}",
                           f"{redis_url}?key_prefix={prefix}")
    finally:
        rasa_tables = make_engine(pg_url, search_path=schema)  # Rasa's tracker store
        cardscan.check_engine(rasa_tables, f"rasa tracker store schema {schema}")
        rasa_tables.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        for key in red.scan_iter(f"{prefix}:*"):
            red.delete(key)
