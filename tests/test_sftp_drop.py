"""The SFTP drop against a local asyncssh server: the reconciliation file lands byte for byte
(password or key login), an unknown host key is refused before any login, and ``paybot sftp
pull`` fetches the biller's accounts file."""

from __future__ import annotations

import asyncio
import os
import random
from datetime import date

import asyncssh
import pytest

from paybot.reconciliation.columns import DEFAULT_COLUMNS
from paybot.reconciliation.daily import file_name, write_day
from paybot.reconciliation.publish import publish_day
from paybot.reconciliation.sftp import SftpConfig, SftpError, parse_sftp_url, upload
from paybot.settings import SettingsError, load_settings
from paybot_cli.main import main
from tests.paid_payments import seed_payments
from tests.sftp_server import PASSWORD, SftpServer

DAY = date(2026, 11, 10)


@pytest.fixture
async def server(tmp_path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    root = tmp_path / "sftp-root"
    (root / "drop").mkdir(parents=True)
    running = await SftpServer(root, client_key=key).start()
    running.client_key_file = tmp_path / "id_ed25519"  # type: ignore[attr-defined]
    key.write_private_key(str(running.client_key_file))  # type: ignore[attr-defined]
    yield running
    await running.stop()


def sftp_config(server: SftpServer, known_hosts, *, password=None, key_file=None) -> SftpConfig:
    host, port, user, directory = parse_sftp_url(server.url())
    return SftpConfig(host, port, user, directory, known_hosts, password, key_file)


async def test_the_file_lands_byte_identical(server, sqlite_engine, tmp_path):
    seed_payments(sqlite_engine, random.Random(2), DAY, 40)
    written = await asyncio.to_thread(write_day, sqlite_engine, tmp_path / "out", DAY,
                                      DEFAULT_COLUMNS)
    known = server.known_hosts(tmp_path / "known_hosts")
    by_password = sftp_config(server, known, password=PASSWORD)
    remote = await upload(by_password, written.path)
    assert remote == f"/drop/{file_name(DAY)}"
    landed = server.root / "drop" / file_name(DAY)
    assert landed.read_bytes() == written.path.read_bytes() and written.rows > 0
    # Again by key, over an older copy: replaced whole, no partial file left behind.
    landed.write_bytes(b"stale")
    by_key = sftp_config(server, known, key_file=server.client_key_file)
    await upload(by_key, written.path)
    assert landed.read_bytes() == written.path.read_bytes()
    assert sorted(os.listdir(server.root / "drop")) == [file_name(DAY)]


async def test_an_unknown_host_key_is_refused(server, tmp_path):
    local = tmp_path / "payments.csv"
    local.write_bytes(b"a,b\r\n")
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    wrong = server.known_hosts(tmp_path / "wrong_known_hosts", impostor)
    with pytest.raises(SftpError, match="host key"):
        await upload(sftp_config(server, wrong, password=PASSWORD), local)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(SftpError, match="host key"):
        await upload(sftp_config(server, empty, password=PASSWORD), local)
    assert os.listdir(server.root / "drop") == []
    right = server.known_hosts(tmp_path / "known_hosts")
    with pytest.raises(SftpError, match="refused the login"):
        await upload(sftp_config(server, right, password="wrong"), local)
    with pytest.raises(SftpError, match="known_hosts file not found"):
        await upload(sftp_config(server, tmp_path / "missing", password=PASSWORD), local)


async def test_publish_day_writes_and_uploads(server, sqlite_engine, settings, tmp_path):
    seed_payments(sqlite_engine, random.Random(6), DAY, 25)
    configured = load_settings(
        env="test", data_dir=tmp_path / "var", sftp_url=server.url(),
        sftp_known_hosts=server.known_hosts(tmp_path / "known_hosts"),
        sftp_key_file=server.client_key_file,
    )
    published = await publish_day(configured, sqlite_engine, DAY)
    assert published.remote == f"/drop/{file_name(DAY)}"
    assert published.file.path == tmp_path / "var" / "reconciliation" / file_name(DAY)
    assert (server.root / "drop" / file_name(DAY)).read_bytes() == published.file.path.read_bytes()


def test_sftp_settings_are_checked(settings):
    for bad in ({"sftp_url": "ftp://biller@host/drop", "sftp_known_hosts": "kh"},
                {"sftp_url": "sftp://host/drop", "sftp_known_hosts": "kh"},
                {"sftp_url": "sftp://biller:pw@host/drop", "sftp_known_hosts": "kh"},
                {"sftp_url": "sftp://biller@host/drop"},
                {"crm_webhook_url": "https://crm.example/hook"}):
        with pytest.raises(SettingsError):
            load_settings(env="test", **bad)


def test_paybot_sftp_pull_fetches_the_accounts_file(settings, tmp_path, monkeypatch):
    """The CLI runs its own event loop, so the server runs on one in a thread here."""
    import threading

    loop = asyncio.new_event_loop()
    root = tmp_path / "sftp-root"
    (root / "drop").mkdir(parents=True)
    accounts = "account_number,name,billing_zip,balance\r\n" + "".join(
        f"A-{n},Payer {n},30301,{n}.50\r\n" for n in range(50))
    (root / "drop" / "accounts.csv").write_bytes(accounts.encode())
    server = loop.run_until_complete(SftpServer(root).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("PAYBOT_SFTP_URL", server.url())
        monkeypatch.setenv("PAYBOT_SFTP_KNOWN_HOSTS",
                           str(server.known_hosts(tmp_path / "known_hosts")))
        monkeypatch.setenv("PAYBOT_SFTP_PASSWORD", PASSWORD)
        target = tmp_path / "in" / "accounts.csv"
        assert main(["sftp", "pull", "accounts.csv", str(target)]) == 0
        assert target.read_bytes() == accounts.encode()
        assert main(["sftp", "pull", "missing.csv", str(tmp_path / "in" / "x.csv")]) == 1
        assert sorted(os.listdir(tmp_path / "in")) == ["accounts.csv"]  # no partial file
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
