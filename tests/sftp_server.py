"""A local SFTP server for the tests (asyncssh, on the test's event loop, a free port): a fresh
host key, one user who logs in with a password or a client key, files under a directory of
the test's. :meth:`SftpServer.known_hosts` writes the known_hosts line a client needs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import asyncssh

USER = "biller"
PASSWORD = "sftp-test-password"  # noqa: S105 - the local test server's


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD


@dataclass
class SftpServer:
    root: Path
    client_key: asyncssh.SSHKey | None = None  # also accepted for USER
    host_key: asyncssh.SSHKey | None = None
    port: int = 0
    _acceptor: asyncssh.SSHAcceptor | None = None

    async def start(self) -> SftpServer:
        self.host_key = self.host_key or asyncssh.generate_private_key("ssh-ed25519")
        authorized = None
        if self.client_key is not None:
            authorized = asyncssh.import_authorized_keys(
                self.client_key.export_public_key().decode()
            )
        self._acceptor = await asyncssh.listen(
            "127.0.0.1", 0,
            server_host_keys=[self.host_key],
            server_factory=_Server,
            authorized_client_keys=authorized,
            sftp_factory=functools.partial(asyncssh.SFTPServer, chroot=str(self.root)),
            allow_scp=False,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()

    def url(self, directory: str = "/drop") -> str:
        return f"sftp://{USER}@127.0.0.1:{self.port}{directory}"

    def known_hosts(self, path: Path, key: asyncssh.SSHKey | None = None) -> Path:
        """A known_hosts file trusting ``key`` (default: this server's) for this port."""
        public = (key or self.host_key).export_public_key().decode().strip()  # type: ignore[union-attr]
        path.write_text(f"[127.0.0.1]:{self.port} {public}\n")
        return path
