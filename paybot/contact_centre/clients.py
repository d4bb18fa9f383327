"""The contact-centre API's clients (``PAYBOT_API_CLIENTS``) and their bearer tokens.

Each entry is ``name:<sha256 hex of the token>[:<webhook secret>]``; entries are
comma-separated. Only the token's hash is configured, so the settings never hold a usable
token. A presented token is hashed and compared with every client's hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ApiClient:
    """One client: its name (the owner of its sessions), its token's hash and the secret its
    webhooks are signed with (None: it may not ask for callbacks)."""

    name: str
    token_sha256: str = field(repr=False)
    webhook_secret: str | None = field(default=None, repr=False)


def token_hash(token: str) -> str:
    """What ``PAYBOT_API_CLIENTS`` holds for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_clients(value: str) -> dict[str, ApiClient]:
    """The clients of a ``PAYBOT_API_CLIENTS`` value, by name.

    Raises:
        ValueError: An entry is malformed or a name repeats (the message names the entry by
            position, never its secrets).
    """
    clients: dict[str, ApiClient] = {}
    for position, entry in enumerate((e.strip() for e in value.split(",")), start=1):
        if not entry:
            continue
        name, _, rest = entry.partition(":")
        digest, _, secret = rest.partition(":")
        digest = digest.lower()
        if not _NAME.match(name) or not _SHA256.match(digest):
            raise ValueError(
                f"PAYBOT_API_CLIENTS entry {position}: expected name:<sha256 hex>[:secret]"
            )
        if name in clients:
            raise ValueError(f"PAYBOT_API_CLIENTS entry {position}: client {name} repeats")
        clients[name] = ApiClient(name, digest, secret or None)
    return clients


def authenticate(clients: dict[str, ApiClient], token: str) -> ApiClient | None:
    """The client whose token this is; None for any other token. Every client's hash is
    compared (in constant time), so the answer's timing says nothing about which came close."""
    presented = token_hash(token).encode("ascii")
    found = None
    for client in clients.values():
        if hmac.compare_digest(presented, client.token_sha256.encode("ascii")):
            found = client
    return found
