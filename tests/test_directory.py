"""The customer directory: LocalDirectory on SQLite and PostgreSQL, HttpDirectory against a real
aiohttp CRM on 127.0.0.1, and the factory."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from sqlalchemy import delete

from paybot.accounts.crm import HttpDirectory
from paybot.accounts.directory import (
    AccountRecord,
    DirectoryError,
    DirectoryUnavailable,
    LocalDirectory,
    make_directory,
)
from paybot.db.engine import session_scope
from paybot.db.models import Account
from paybot.settings import SettingsError

PHONE = "+15555550100"
TOKEN = "good-token"
SECRET_BODY = "secret-body-marker"


def account_json(number: str, **changes: Any) -> dict[str, Any]:
    data = {
        "account_number": number,
        "name": "James Smith",
        "phone": PHONE,
        "billing_zip": "94107",
        "balance": "321.72",
        "minimum_payment": "25.00",
        "due_date": "2026-12-01",
        "currency": "USD",
        "status": "active",
        "crm_internal": {"ignored": True},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


# --- LocalDirectory ---------------------------------------------------------------------------


def seed(engine) -> dict[str, int]:
    rows = [
        Account(account_number="200", name="Closed Twin", phone=PHONE, billing_zip="94107",
                balance=Decimal("0.00"), minimum_payment=Decimal("0.00"), status="closed"),
        Account(account_number="100", name="James Smith", phone=PHONE, billing_zip="94107",
                balance=Decimal("321.72"), minimum_payment=Decimal("25.00"),
                due_date=date(2026, 12, 1)),
        Account(account_number="ACME-0042", name="Ana Lopez", phone="+15555550101",
                billing_zip="10001", balance=Decimal("5.00"), minimum_payment=Decimal("0.00"),
                status="suspended"),
    ]  # fmt: skip
    with session_scope(engine) as session:
        session.add_all(rows)
        session.flush()
        return {a.account_number: a.id for a in rows}


async def test_local_find_by_phone_returns_every_account_with_status(db_engine):
    ids = seed(db_engine)
    directory = LocalDirectory(db_engine)

    found = await directory.find_by_phone(PHONE)

    assert [r.account_number for r in found] == ["100", "200"]
    james, twin = found
    assert james == AccountRecord(
        account_number="100", name="James Smith", phone=PHONE, billing_zip="94107",
        balance=Decimal("321.72"), minimum_payment=Decimal("25.00"), due_date=date(2026, 12, 1),
        currency="USD", status="active", account_id=ids["100"],
    )  # fmt: skip
    assert james.is_active and not twin.is_active and twin.status == "closed"
    assert await directory.find_by_phone("(555) 555-0100") == found
    assert await directory.find_by_phone("+15555550999") == []
    assert await directory.find_by_phone("anonymous") == []


async def test_local_find_by_account_number(db_engine):
    ids = seed(db_engine)
    directory = LocalDirectory(db_engine)

    ana = await directory.find_by_account_number(" acme-0042 ")
    assert ana is not None
    assert (ana.account_id, ana.status, ana.balance) == (
        ids["ACME-0042"],
        "suspended",
        Decimal("5.00"),
    )
    assert await directory.find_by_account_number("999") is None
    assert await directory.find_by_account_number("  ") is None
    assert ana.service_address is None
    async with directory:
        assert (await directory.find_by_account_number("100")).name == "James Smith"


async def test_local_service_address(db_engine):
    seed(db_engine)
    with session_scope(db_engine) as session:
        session.add(
            Account(account_number="300", name="Sam Rivera", phone=PHONE, billing_zip="97205",
                    service_address="12 Oak Street", balance=Decimal("1.00"),
                    minimum_payment=Decimal("0.00"))
        )  # fmt: skip
    found = await LocalDirectory(db_engine).find_by_phone(PHONE)
    assert {r.account_number: r.service_address for r in found} == {
        "100": None,
        "200": None,
        "300": "12 Oak Street",
    }


def test_record_repr_hides_personal_data():
    record = AccountRecord(
        "100", "James Smith", PHONE, "94107", Decimal("321.72"), Decimal("0"), None, "USD",
        "active",
    )  # fmt: skip
    text = repr(record)
    assert "100" in text
    assert (
        "James" not in text and PHONE not in text and "321.72" not in text and "94107" not in text
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.balance = Decimal("0")  # type: ignore[misc]


# --- a real HTTP CRM --------------------------------------------------------------------------

ACCOUNTS = {
    "100": account_json("100"),
    "200": account_json("200", status="closed", balance="0.00", minimum_payment=...),
    "FLOAT-1": account_json("FLOAT-1", balance=321.72, minimum_payment=25),
    "MISSING-1": account_json("MISSING-1", balance=...),
    "BADAMOUNT-1": account_json("BADAMOUNT-1", balance="-5.00"),
    "FLOATY-1": account_json("FLOATY-1", balance=0.1 + 0.2),
    "BADSTATUS-1": account_json("BADSTATUS-1", status="frozen"),
    "OTHER-1": account_json("SOMEONE-ELSE"),
    "ADDR-1": account_json("ADDR-1", service_address=" 12 Oak Street "),
    "NOADDR-1": account_json("NOADDR-1", service_address=""),
    "BADADDR-1": account_json("BADADDR-1", service_address=12),
    "LONGADDR-1": account_json("LONGADDR-1", service_address="x" * 201),
}


REQUESTS = web.AppKey("requests", list)


def paybot_logs(caplog: pytest.LogCaptureFixture) -> str:
    """What paybot itself logged (the test CRM's access log is not ours)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("paybot"))


def crm_app() -> web.Application:
    app = web.Application()
    app[REQUESTS] = []

    def authorised(request: web.Request) -> bool:
        app[REQUESTS].append(request)
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def by_phone(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return web.json_response({"error": SECRET_BODY}, status=401)
        phone = request.query.get("phone")
        if phone == "+15555550500":
            return web.Response(text=f"<html>{SECRET_BODY}</html>", status=500)
        if phone == "+15555550600":
            return web.json_response({"results": []})
        found = [ACCOUNTS[n] for n in ("200", "100") if ACCOUNTS[n]["phone"] == phone]
        return web.json_response({"accounts": found})

    async def by_number(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return web.json_response({"error": SECRET_BODY}, status=401)
        number = request.match_info["number"]
        if number == "SLOW-1":
            await asyncio.sleep(1.5)
        if number == "BOOM-1":
            return web.Response(text=SECRET_BODY, status=503)
        if number == "JUNK-1":
            return web.Response(text='{"account_number": "JUNK-1", ' + SECRET_BODY, status=200)
        if number == "NAN-1":
            return web.Response(text='{"balance": NaN}', content_type="application/json")
        if number == "TEAPOT-1":
            return web.Response(text=SECRET_BODY, status=418)
        if number not in ACCOUNTS:
            return web.json_response({"error": "not found"}, status=404)
        body = web.json_response(ACCOUNTS[number]).text
        if number == "FLOAT-1":  # a JSON number written as the CRM wrote it, not as Python would
            body = body.replace('"balance": 321.72', '"balance": 321.720')
        return web.Response(text=body, content_type="application/json")

    app.router.add_get("/api/accounts", by_phone)
    app.router.add_get("/api/accounts/{number}", by_number)
    return app


@pytest.fixture
async def crm() -> AsyncIterator[TestServer]:
    server = TestServer(crm_app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def directory(crm: TestServer) -> AsyncIterator[HttpDirectory]:
    async with HttpDirectory(str(crm.make_url("/api/")), TOKEN, timeout_s=2.0) as directory:
        yield directory


async def test_http_account_numbers_are_escaped_in_the_path(directory, crm):
    assert await directory.find_by_account_number("12/34 5?x=1") is None
    request = crm.app[REQUESTS][-1]
    assert request.match_info["number"] == "12/34 5?x=1" and not request.query


@pytest.mark.parametrize(
    "number",
    ["4000000000000002", "4000 0000 0000 0002", " 4000-0000-0000-0002 ", "4111.1111.1111.1111"],
)
async def test_http_a_card_shaped_account_number_is_never_sent_to_the_crm(directory, crm, number):
    assert await directory.find_by_account_number(number) is None
    assert crm.app[REQUESTS] == []


async def test_local_a_card_shaped_account_number_is_never_looked_up(db_engine):
    seed(db_engine)
    card = Account(account_number="4000000000000002", name="Planted", phone="+15555550102",
                   billing_zip="94107", balance=Decimal("1.00"), minimum_payment=Decimal("0"))
    with session_scope(db_engine) as session:
        session.add(card)  # as if a CRM import had one: it is still never looked up
    directory = LocalDirectory(db_engine)
    try:
        for number in ("4000000000000002", "4000 0000 0000 0002"):
            assert await directory.find_by_account_number(number) is None
        assert (await directory.find_by_account_number("100")) is not None
    finally:  # the after-suite card scan must not find the planted number
        with session_scope(db_engine) as session:
            session.execute(delete(Account).where(Account.name == "Planted"))


async def test_http_one_account_by_number(directory, crm):
    record = await directory.find_by_account_number("100")

    assert record == AccountRecord(
        account_number="100", name="James Smith", phone=PHONE, billing_zip="94107",
        balance=Decimal("321.72"), minimum_payment=Decimal("25.00"), due_date=date(2026, 12, 1),
        currency="USD", status="active", account_id=None,
    )  # fmt: skip
    request = crm.app[REQUESTS][-1]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.path == "/api/accounts/100"


async def test_http_service_address(directory):
    assert (await directory.find_by_account_number("ADDR-1")).service_address == "12 Oak Street"
    assert (await directory.find_by_account_number("NOADDR-1")).service_address is None
    assert (await directory.find_by_account_number("100")).service_address is None
    assert "Oak" not in repr(await directory.find_by_account_number("ADDR-1"))


async def test_http_several_accounts_on_one_phone(directory, crm):
    found = await directory.find_by_phone("(555) 555-0100")

    assert [(r.account_number, r.status) for r in found] == [("100", "active"), ("200", "closed")]
    assert found[1].minimum_payment == Decimal("0.00")
    assert crm.app[REQUESTS][-1].query["phone"] == PHONE  # the "+" survived the query string
    assert await directory.find_by_phone("+15555550999") == []


async def test_http_not_found_and_garbage_input_make_no_match(directory, crm):
    assert await directory.find_by_account_number("404-NOPE") is None
    count = len(crm.app[REQUESTS])
    assert await directory.find_by_phone("anonymous") == []
    assert await directory.find_by_account_number("   ") is None
    assert await directory.find_by_account_number("..") is None
    assert len(crm.app[REQUESTS]) == count  # nothing worth asking the CRM


async def test_http_json_numbers_become_exact_decimals(directory):
    record = await directory.find_by_account_number("FLOAT-1")
    assert record.balance == Decimal("321.72") and isinstance(record.balance, Decimal)
    assert record.minimum_payment == Decimal("25.00")


async def test_http_wrong_token_is_a_directory_error(crm):
    async with HttpDirectory(str(crm.make_url("/api")), "wrong", timeout_s=2.0) as directory:
        with pytest.raises(DirectoryError) as info:
            await directory.find_by_phone(PHONE)
    assert not isinstance(info.value, DirectoryUnavailable)
    assert "HTTP 401" in str(info.value) and SECRET_BODY not in str(info.value)


@pytest.mark.parametrize(
    ("call", "arg", "message"),
    [
        ("find_by_phone", "+15555550500", "CRM failed (HTTP 500)"),
        ("find_by_account_number", "BOOM-1", "CRM failed (HTTP 503)"),
    ],
)
async def test_http_5xx_is_unavailable(directory, call, arg, message, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DirectoryUnavailable) as info:
        await getattr(directory, call)(arg)
    assert str(info.value) == message
    assert "HTTP" in paybot_logs(caplog)
    assert SECRET_BODY not in paybot_logs(caplog) and arg not in paybot_logs(caplog)


async def test_http_slow_answer_times_out(crm):
    async with HttpDirectory(str(crm.make_url("/api")), TOKEN, timeout_s=0.2) as directory:
        started = asyncio.get_running_loop().time()
        with pytest.raises(DirectoryUnavailable, match="did not answer within 0.2s"):
            await directory.find_by_account_number("SLOW-1")
        assert asyncio.get_running_loop().time() - started < 1.0


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("JUNK-1", "not valid JSON"),
        ("NAN-1", "not valid JSON"),
        ("MISSING-1", "balance missing"),
        ("BADAMOUNT-1", "balance is not a non-negative USD amount"),
        ("FLOATY-1", "balance is not a non-negative USD amount"),
        ("BADSTATUS-1", "status is not active, closed or suspended"),
        ("OTHER-1", "the account returned is not the one asked for"),
        ("BADADDR-1", "service_address is not a string of up to 200 characters"),
        ("LONGADDR-1", "service_address is not a string of up to 200 characters"),
        ("TEAPOT-1", None),
    ],
)
async def test_http_malformed_answers_are_directory_errors(directory, number, problem, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DirectoryError) as info:
        await directory.find_by_account_number(number)
    assert not isinstance(info.value, DirectoryUnavailable)
    message = str(info.value)
    if problem is None:
        assert message == "CRM answered with unexpected HTTP 418"
    else:
        assert message == f"CRM answer malformed: {problem}"
        assert problem in paybot_logs(caplog)
    for leak in (SECRET_BODY, "James Smith", PHONE, "321.72"):
        assert leak not in message and leak not in paybot_logs(caplog)


async def test_http_wrong_envelope_is_malformed(directory):
    with pytest.raises(DirectoryError, match=r'expected \{"accounts": \[\.\.\.\]\}'):
        await directory.find_by_phone("+15555550600")


async def test_http_connection_refused_is_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with HttpDirectory(f"http://127.0.0.1:{port}", TOKEN, timeout_s=2.0) as directory:
        with pytest.raises(DirectoryUnavailable, match="CRM unreachable"):
            await directory.find_by_phone(PHONE)


async def test_http_shared_session_is_not_closed(crm):
    async with aiohttp.ClientSession() as session:
        directory = HttpDirectory(str(crm.make_url("/api")), TOKEN, 2.0, session)
        assert (await directory.find_by_account_number("100")).account_number == "100"
        await directory.close()
        assert not session.closed
        assert await directory.find_by_account_number("404-NOPE") is None


# --- the factory ------------------------------------------------------------------------------


def test_make_directory_local(settings, sqlite_engine):
    assert isinstance(make_directory(settings, sqlite_engine), LocalDirectory)


async def test_make_directory_http(settings):
    configured = settings.copy(
        update={"crm": "http", "crm_url": "https://crm.example/api", "crm_token": SecretStr("t")}
    )
    directory = make_directory(configured, None)
    assert isinstance(directory, HttpDirectory)
    assert directory._headers()["Authorization"] == "Bearer t"
    await directory.close()


@pytest.mark.parametrize("url", [None, "", "crm.example/api"])
def test_make_directory_http_needs_a_url(settings, url):
    with pytest.raises(SettingsError, match="PAYBOT_CRM_URL"):
        make_directory(settings.copy(update={"crm": "http", "crm_url": url}), None)
