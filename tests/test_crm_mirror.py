"""The CRM mirror (paybot/accounts/mirror.py) against a real HTTP CRM on 127.0.0.1 and a real
database: an account is written on first use, refreshed on every look-up, keeps payments taken
here until the CRM posts them, and is served unconfirmed while the CRM is down."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal

import pytest
from pydantic import SecretStr

from paybot.accounts.crm import HttpDirectory
from paybot.accounts.directory import DirectoryUnavailable, make_directory
from paybot.accounts.mirror import MirroredDirectory
from paybot.db.models import Account
from paybot.gateway.card_data import CardData
from tests.fake_crm import TOKEN, FakeCrm, crm_account
from tests.helpers import account, rows

CASEY = "+14045550142"


@pytest.fixture
def crm() -> Iterator[FakeCrm]:
    with FakeCrm({"C-1001": crm_account("C-1001", phone=CASEY)}) as fake:
        yield fake


@pytest.fixture
async def mirrored(crm, db_engine) -> AsyncIterator[MirroredDirectory]:
    async with MirroredDirectory(HttpDirectory(crm.url, TOKEN, 2.0), db_engine) as directory:
        yield directory


async def test_first_use_creates_the_row_and_later_look_ups_refresh_it(mirrored, crm, db_engine):
    assert rows(db_engine, Account) == []
    record = await mirrored.find_by_account_number("c-1001")
    assert record is not None and record.account_id is not None and record.confirmed
    row = account(db_engine, "C-1001")
    assert (row.id, row.name, row.phone, row.billing_zip) == (
        record.account_id, "Casey Morgan", CASEY, "30301")
    assert (row.balance, row.crm_balance, row.minimum_payment) == (
        Decimal("140.25"), Decimal("140.25"), Decimal("20.00"))
    assert row.due_date == date(2026, 12, 20) and row.crm_synced_at is not None

    crm.accounts["C-1001"] |= {"name": "Casey Morgan-Lee", "billing_zip": "30302",
                               "balance": "180.25", "status": "suspended"}
    (again,) = await mirrored.find_by_phone(CASEY)
    assert again.account_id == record.account_id
    assert (again.name, again.billing_zip, again.balance, again.status) == (
        "Casey Morgan-Lee", "30302", Decimal("180.25"), "suspended")
    assert len(rows(db_engine, Account)) == 1


async def test_a_payment_taken_here_stands_until_the_crm_posts_it(mirrored, crm, db_engine, ledger):
    record = await mirrored.find_by_account_number("C-1001")
    ledger.pay_with_new_method(
        account_id=record.account_id, method=CardData("4242424242424242", 12, 2031, "123"),
        amount=Decimal("100.00"), channel="sms", idempotency_key="mirror-test-1",
    )  # fmt: skip
    assert account(db_engine, "C-1001").balance == Decimal("40.25")
    # The CRM has not posted it yet: what the bot says (and may take) is what is left.
    assert (await mirrored.find_by_account_number("C-1001")).balance == Decimal("40.25")
    assert (await mirrored.find_by_phone(CASEY))[0].balance == Decimal("40.25")
    crm.accounts["C-1001"]["balance"] = "40.25"  # the biller posted the payment
    assert (await mirrored.find_by_account_number("C-1001")).balance == Decimal("40.25")
    crm.accounts["C-1001"]["balance"] = "95.00"  # and sent a new bill
    assert (await mirrored.find_by_account_number("C-1001")).balance == Decimal("95.00")


async def test_an_outage_serves_the_last_copy_unconfirmed(mirrored, crm, db_engine):
    crm.accounts["C-2002"] = crm_account("C-2002", phone="+14045550199")
    await mirrored.find_by_account_number("C-1001")
    crm.down = True
    kept = await mirrored.find_by_account_number("C-1001")
    assert kept is not None and not kept.confirmed and kept.balance == Decimal("140.25")
    (by_phone,) = await mirrored.find_by_phone(CASEY)
    assert by_phone.account_id == kept.account_id and not by_phone.confirmed
    with pytest.raises(DirectoryUnavailable):  # never mirrored: nothing to fall back on
        await mirrored.find_by_account_number("C-2002")
    with pytest.raises(DirectoryUnavailable):
        await mirrored.find_by_phone("+14045550199")
    crm.down = False
    assert (await mirrored.find_by_account_number("C-1001")).confirmed


async def test_local_accounts_are_never_served_as_crm_copies(mirrored, crm, db_engine, ledger):
    crm.down = True  # James is a local (seeded) account the CRM never answered for
    with pytest.raises(DirectoryUnavailable):
        await mirrored.find_by_account_number("100200300")


async def test_unknown_accounts_are_not_mirrored(mirrored, crm, db_engine):
    assert await mirrored.find_by_account_number("C-404") is None
    assert await mirrored.find_by_phone("+14045550000") == []
    assert rows(db_engine, Account) == []


async def test_concurrent_first_look_ups_make_one_row(mirrored, db_engine):
    found = await asyncio.gather(*(mirrored.find_by_account_number("C-1001") for _ in range(8)))
    assert len({r.account_id for r in found}) == 1
    assert len(rows(db_engine, Account)) == 1


async def test_generated_crm_changes_always_show_in_the_mirror(mirrored, crm, db_engine):
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    for step in range(40):
        change = {
            "name": rng.choice(["Casey Morgan", "Casey Lee", "C. Morgan"]),
            "billing_zip": rng.choice(["30301", "30302", "10001"]),
            "balance": f"{rng.randint(0, 50000) / 100:.2f}",
            "minimum_payment": rng.choice(["0.00", "20.00", "35.50"]),
            "status": rng.choice(["active", "active", "closed", "suspended"]),
            "due_date": rng.choice([None, "2026-12-20", "2027-01-05"]),
            "service_address": rng.choice([None, "77 Peachtree Street", "9 Elm Road"]),
        }
        crm.accounts["C-1001"] |= rng.sample(sorted(change.items()), rng.randint(1, 7))
        if rng.random() < 0.5:
            record = await mirrored.find_by_account_number("C-1001")
        else:
            (record,) = await mirrored.find_by_phone(CASEY)
        expected = crm.accounts["C-1001"]
        row = account(db_engine, "C-1001")
        for name in ("name", "billing_zip", "status", "service_address"):
            assert getattr(row, name) == getattr(record, name) == expected[name], (seed, step)
        assert row.balance == record.balance == Decimal(expected["balance"]), (seed, step)
        assert row.minimum_payment == Decimal(expected["minimum_payment"]), (seed, step)


def test_the_http_directory_is_mirrored_when_there_is_a_database(settings, sqlite_engine):
    http = settings.copy(update={"crm": "http", "crm_url": "http://127.0.0.1:9/api",
                                 "crm_token": SecretStr("t")})  # fmt: skip
    assert isinstance(make_directory(http, sqlite_engine), MirroredDirectory)
    assert isinstance(make_directory(http, None), HttpDirectory)
