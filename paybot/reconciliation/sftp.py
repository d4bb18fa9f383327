"""The SFTP drop (asyncssh): upload a reconciliation file to the biller's server, and fetch a
file from it (the accounts file, for ``paybot accounts import``).

``PAYBOT_SFTP_URL`` is ``sftp://user@host[:port]/directory``. The server's host key must be in
``PAYBOT_SFTP_KNOWN_HOSTS`` (an OpenSSH known_hosts file; ``[host]:port`` lines for other ports
than 22): an unknown or changed key is refused, there is no "accept new keys". Log in with
``PAYBOT_SFTP_PASSWORD`` or the private key file ``PAYBOT_SFTP_KEY_FILE``; no SSH agent and no
``~/.ssh/config`` are consulted. An upload goes to ``.<name>.part`` and is renamed over the
final name, so the biller never picks up half a file; a download lands the same way locally.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import asyncssh

if TYPE_CHECKING:
    from paybot.settings import Settings

DEFAULT_PORT = 22


class SftpError(RuntimeError):
    """The transfer failed; the message says why without any secret."""


@dataclass(frozen=True)
class SftpConfig:
    host: str
    port: int
    username: str
    directory: str
    known_hosts: Path
    password: str | None = None
    key_file: Path | None = None


def parse_sftp_url(url: str) -> tuple[str, int, str, str]:
    """(host, port, username, directory) of ``sftp://user@host[:port]/directory``.

    Raises:
        ValueError: another scheme, or no user or host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme != "sftp" or not parts.hostname or not parts.username:
        raise ValueError("PAYBOT_SFTP_URL must look like sftp://user@host[:port]/directory")
    if parts.password:
        raise ValueError("PAYBOT_SFTP_URL must not hold a password: use PAYBOT_SFTP_PASSWORD")
    directory = unquote(parts.path) or "."
    return parts.hostname, parts.port or DEFAULT_PORT, unquote(parts.username), directory


def sftp_config(settings: Settings) -> SftpConfig | None:
    """The configured SFTP server; None when ``PAYBOT_SFTP_URL`` is unset."""
    if not settings.sftp_url or settings.sftp_known_hosts is None:
        return None
    host, port, username, directory = parse_sftp_url(settings.sftp_url)
    password = settings.sftp_password.get_secret_value() if settings.sftp_password else None
    return SftpConfig(host, port, username, directory, settings.sftp_known_hosts, password,
                      settings.sftp_key_file)


def _connect(config: SftpConfig):  # noqa: ANN202 - asyncssh's connect context
    if not config.known_hosts.is_file():
        raise SftpError(f"known_hosts file not found: {config.known_hosts}")
    return asyncssh.connect(
        config.host,
        config.port,
        username=config.username,
        password=config.password,
        client_keys=[str(config.key_file)] if config.key_file else [],
        known_hosts=str(config.known_hosts),
        agent_path=None,
        config=[],
        connect_timeout=30,
    )


async def upload(config: SftpConfig, local: Path, remote_name: str | None = None) -> str:
    """Put ``local`` into the configured directory (atomically there); its remote path."""
    name = remote_name or local.name
    final = posixpath.join(config.directory, name)
    partial = posixpath.join(config.directory, f".{name}.part")
    try:
        async with _connect(config) as conn, conn.start_sftp_client() as sftp:
            await sftp.put(str(local), partial)
            try:
                await sftp.posix_rename(partial, final)
            except asyncssh.SFTPOpUnsupported:
                if await sftp.exists(final):
                    await sftp.remove(final)
                await sftp.rename(partial, final)
    except (OSError, asyncssh.Error) as exc:
        raise SftpError(_why(exc)) from None
    return final


async def download(config: SftpConfig, remote: str, local: Path) -> Path:
    """Fetch ``remote`` (relative to the configured directory, or absolute) into ``local``."""
    path = remote if remote.startswith("/") else posixpath.join(config.directory, remote)
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.")
    os.close(fd)
    try:
        async with _connect(config) as conn, conn.start_sftp_client() as sftp:
            await sftp.get(path, temp)
        os.replace(temp, local)
    except (OSError, asyncssh.Error) as exc:
        raise SftpError(_why(exc)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return local


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return "the server's host key is not in the known_hosts file (refused)"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "the server refused the login"
    if isinstance(exc, asyncssh.SFTPError):
        return f"sftp: {exc.reason}"
    if isinstance(exc, asyncssh.Error):
        return f"ssh: {exc.reason}"
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or 'connection failed'}"
