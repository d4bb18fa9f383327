"""The CSV account import, on SQLite and PostgreSQL: validation, line numbers, all-or-nothing,
--skip-bad, idempotent upserts, encodings, a large file and the CLI entry point."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot.accounts.csv_import import ImportReport, RowError, import_accounts
from paybot.cli.accounts import cli_import
from paybot.db.models import Account

HEADER = "account_number,name,phone,zip,balance,minimum_payment,due_date,currency,status,email"
ROWS = [
    "100200300,James Smith,(555) 555-0100,94107,$321.72,25.00,2026-12-01,USD,active,j@example.com",
    'ACME-0042,Ana Lopez,+1 555 555 0101,10001-1234,"$1,250.00",,,,suspended,',
    "55501234,Wei Chen,555.555.0102,02134,0,0,,usd,CLOSED,",
]


def write_csv(tmp_path: Path, lines: list[str], name: str = "accounts.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def accounts(engine: Engine) -> dict[str, Account]:
    with Session(engine) as session:
        return {a.account_number: a for a in session.exec(select(Account)).all()}


def run(engine: Engine, tmp_path: Path, lines: list[str], **kwargs) -> ImportReport:
    return import_accounts(engine, write_csv(tmp_path, lines), **kwargs)


# --- a good file ------------------------------------------------------------------------------


def test_good_file_imports_every_row_normalised(db_engine, tmp_path):
    report = run(db_engine, tmp_path, [HEADER, *ROWS])

    assert report.errors == []
    assert (report.rows, report.created, report.updated, report.unchanged, report.skipped) == (
        3, 3, 0, 0, 0,
    )  # fmt: skip
    assert report.applied and report.ok
    rows = accounts(db_engine)
    assert set(rows) == {"100200300", "ACME-0042", "55501234"}
    james = rows["100200300"]
    assert (james.name, james.phone, james.billing_zip) == ("James Smith", "+15555550100", "94107")
    assert james.balance == Decimal("321.72") and isinstance(james.balance, Decimal)
    assert james.minimum_payment == Decimal("25.00")
    assert (james.due_date, james.currency, james.status) == (date(2026, 12, 1), "USD", "active")
    assert james.email == "j@example.com"
    ana = rows["ACME-0042"]
    assert (ana.balance, ana.minimum_payment) == (Decimal("1250.00"), Decimal("0.00"))
    assert (ana.due_date, ana.currency, ana.status, ana.email) == (None, "USD", "suspended", None)
    assert ana.billing_zip == "10001-1234"
    wei = rows["55501234"]
    assert (wei.phone, wei.billing_zip, wei.currency, wei.status) == (
        "+15555550102", "02134", "USD", "closed",
    )  # fmt: skip
    assert wei.created_at.tzinfo is not None


def test_text_file_objects_and_lowercase_account_numbers(db_engine):
    text = HEADER + "\nabc-1234,Jo Park,5555550103,94107,10.00,,,,,\n"
    report = import_accounts(db_engine, io.StringIO(text))
    assert report.created == 1, report.errors
    assert set(accounts(db_engine)) == {"ABC-1234"}


def test_bom_crlf_blank_lines_whitespace_and_header_aliases(db_engine, tmp_path):
    body = (
        " Account Number ,NAME, Phone ,Billing_Zip,Balance\r\n"
        "\r\n"
        "  100200300 ,  James Smith , (555) 555-0100 , 94107 ,  321.72 \r\n"
        "   \r\n"
        "ACME-0042,Ana Lopez,5555550101,10001,0.50\r\n"
    )
    path = tmp_path / "excel.csv"
    path.write_bytes(body.encode("utf-8-sig"))

    report = import_accounts(db_engine, path)

    assert report.errors == []
    assert (report.rows, report.created) == (2, 2)
    james = accounts(db_engine)["100200300"]
    assert (james.name, james.phone, james.billing_zip) == ("James Smith", "+15555550100", "94107")
    assert james.balance == Decimal("321.72")
    assert (james.minimum_payment, james.status, james.currency) == (
        Decimal("0.00"),
        "active",
        "USD",
    )


# --- bad rows ---------------------------------------------------------------------------------

GOOD = dict(
    account_number="100200300", name="James Smith", phone="5555550100", zip="94107",
    balance="321.72", minimum_payment="25.00", due_date="2026-12-01", currency="USD",
    status="active", email="j@example.com",
)  # fmt: skip


def row(**changes: str) -> str:
    return ",".join({**GOOD, **changes}.values())


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"account_number": "12"}, "account_number: must be 4-32 letters, digits or hyphens"),
        ({"account_number": "ABC 1234"}, "account_number: must be 4-32 letters, digits or hyphens"),
        ({"account_number": "9" * 33}, "account_number: must be 4-32 letters, digits or hyphens"),
        ({"account_number": ""}, "account_number: required"),
        ({"name": "  "}, "name: required"),
        ({"name": "J" * 201}, "name: longer than 200 characters"),
        ({"phone": "call me maybe"}, "phone: not a phone number"),
        ({"phone": "12"}, "phone: not a phone number"),
        ({"phone": ""}, "phone: required"),
        ({"zip": "9410"}, "zip: must be 5 digits or ZIP+4 (12345-6789)"),
        ({"zip": "94107-12"}, "zip: must be 5 digits or ZIP+4 (12345-6789)"),
        ({"zip": "٩٤١٠٧"}, "zip: must be 5 digits or ZIP+4 (12345-6789)"),
        ({"balance": "١٢"}, "balance: not an amount (write 1250.00 or $1,250.00)"),
        ({"balance": "12.345"}, "balance: more decimal places than USD has"),
        ({"balance": "-5.00"}, "balance: must not be negative"),
        ({"balance": "1e3"}, "balance: not an amount (write 1250.00 or $1,250.00)"),
        ({"balance": "NaN"}, "balance: not an amount (write 1250.00 or $1,250.00)"),
        ({"balance": "12_000"}, "balance: not an amount (write 1250.00 or $1,250.00)"),
        ({"balance": "twelve"}, "balance: not an amount (write 1250.00 or $1,250.00)"),
        ({"balance": "1000000000000.00"}, "balance: too large"),
        ({"minimum_payment": "abc"}, "minimum_payment: not an amount (write 1250.00 or $1,250.00)"),
        ({"minimum_payment": "400.00"}, "minimum_payment: greater than balance"),
        ({"due_date": "12/01/2026"}, "due_date: not a date in YYYY-MM-DD form"),
        ({"due_date": "2026-02-30"}, "due_date: not a date in YYYY-MM-DD form"),
        ({"status": "frozen"}, "status: must be one of active, closed, suspended"),
        ({"currency": "US"}, "currency: must be a 3-letter code such as USD"),
        ({"currency": "U$D"}, "currency: must be a 3-letter code such as USD"),
        ({"email": "not-an-address"}, "email: not an email address"),
    ],
)
def test_each_kind_of_bad_cell_is_reported_on_its_line(db_engine, tmp_path, changes, reason):
    lines = [HEADER, row(account_number="11110000"), row(**changes), row(account_number="2222")]
    report = run(db_engine, tmp_path, lines)

    assert report.errors == [RowError(3, reason)]
    assert str(report.errors[0]) == f"line 3: {reason}"
    bad_value = next(iter(changes.values())).strip()
    if len(bad_value) > 3:  # the reason names the column, never the value or the row
        assert bad_value not in reason
    assert "James Smith" not in reason
    assert not report.applied and report.created == 0 and report.skipped == 1
    assert accounts(db_engine) == {}


def test_wrong_field_count_duplicates_and_multiline_fields_keep_physical_lines(db_engine, tmp_path):
    lines = [
        HEADER,  # 1
        row(account_number="11110000", name='"James\nSmith"'),  # 2-3: quoted newline
        row(account_number="22220000").rsplit(",", 1)[0],  # 4: one field short
        "",  # 5: blank
        row(account_number="11110000"),  # 6: duplicate of line 2
        row(account_number="33330000", phone="nope", zip="1"),  # 7: two problems
        row(account_number="33330000") + ",extra",  # 8: one field too many
    ]
    report = run(db_engine, tmp_path, lines)

    assert report.errors == [
        RowError(4, "expected 10 fields, found 9"),
        RowError(6, "account_number: duplicate of line 2"),
        RowError(7, "phone: not a phone number"),
        RowError(7, "zip: must be 5 digits or ZIP+4 (12345-6789)"),
        RowError(8, "expected 10 fields, found 11"),
    ]
    assert (report.rows, report.skipped, report.applied) == (5, 4, False)
    assert "nothing imported" in report.summary()


def test_missing_required_columns_is_a_whole_file_error(db_engine, tmp_path):
    lines = ["account_number,name,balance,email", "100200300,James Smith,1.00,"]
    report = run(db_engine, tmp_path, lines, skip_bad=True)

    assert report.errors == [RowError(1, "header: missing required column(s): phone, zip")]
    assert not report.applied
    assert accounts(db_engine) == {}


def test_semicolon_files_get_a_hint(db_engine, tmp_path):
    report = run(db_engine, tmp_path, [HEADER.replace(",", ";")])
    assert report.errors[0].line == 1
    assert "must be comma-separated" in report.errors[0].reason


def test_empty_file(db_engine, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    report = import_accounts(db_engine, path)
    assert report.errors == [RowError(1, "file is empty: expected a header row")]


def test_a_column_given_twice_is_a_whole_file_error(db_engine, tmp_path):
    report = run(db_engine, tmp_path, [HEADER.replace("email", "billing_zip"), row()])
    assert report.errors == [RowError(1, "header: column zip appears more than once")]


def test_non_utf8_file_is_rejected_with_its_line(db_engine, tmp_path):
    path = tmp_path / "latin1.csv"
    text = "\n".join([HEADER, row(account_number="11110000"), row(name="José Núñez")]) + "\n"
    path.write_bytes(text.encode("latin-1"))

    report = import_accounts(db_engine, path, skip_bad=True)

    assert report.errors == [RowError(3, "file is not UTF-8 text (save it as UTF-8)")]
    assert not report.applied
    assert accounts(db_engine) == {}


def test_broken_quoting_stops_the_import(db_engine, tmp_path):
    lines = [HEADER, row(account_number="11110000"), row(name='"James" Smith')]
    report = run(db_engine, tmp_path, lines, skip_bad=True)
    assert [e.line for e in report.errors] == [3]
    assert report.errors[0].reason.startswith("malformed CSV")
    assert accounts(db_engine) == {}


# --- all-or-nothing, --skip-bad, dry run ------------------------------------------------------


def test_one_bad_row_means_nothing_is_imported(db_engine, tmp_path):
    lines = [HEADER, ROWS[0], ROWS[1].replace("10001-1234", "ABCDE"), ROWS[2]]
    report = run(db_engine, tmp_path, lines)

    assert report.errors == [RowError(3, "zip: must be 5 digits or ZIP+4 (12345-6789)")]
    assert (report.created, report.updated, report.unchanged, report.applied) == (0, 0, 0, False)
    assert accounts(db_engine) == {}


def test_skip_bad_imports_the_good_rows_and_reports_the_bad(db_engine, tmp_path):
    lines = [HEADER, ROWS[0], ROWS[1].replace("10001-1234", "ABCDE"), ROWS[2]]
    report = run(db_engine, tmp_path, lines, skip_bad=True)

    assert report.errors == [RowError(3, "zip: must be 5 digits or ZIP+4 (12345-6789)")]
    assert (report.created, report.skipped, report.applied) == (2, 1, True)
    assert set(accounts(db_engine)) == {"100200300", "55501234"}
    assert "2 created" in report.summary() and "1 skipped" in report.summary()


def test_dry_run_counts_but_writes_nothing(db_engine, tmp_path):
    run(db_engine, tmp_path, [HEADER, ROWS[0]])
    changed = ROWS[0].replace("$321.72", "300.00")
    report = run(db_engine, tmp_path, [HEADER, changed, *ROWS[1:]], dry_run=True)

    assert (report.created, report.updated, report.unchanged) == (2, 1, 0)
    assert report.dry_run and "dry run" in report.summary()
    rows = accounts(db_engine)
    assert set(rows) == {"100200300"}
    assert rows["100200300"].balance == Decimal("321.72")


# --- idempotent upserts -----------------------------------------------------------------------


def test_reimporting_the_same_file_changes_nothing(db_engine, tmp_path):
    path = write_csv(tmp_path, [HEADER, *ROWS])
    import_accounts(db_engine, path)
    before = {n: (a.id, a.updated_at) for n, a in accounts(db_engine).items()}

    report = import_accounts(db_engine, path)

    assert (report.created, report.updated, report.unchanged, report.skipped) == (0, 0, 3, 0)
    assert {n: (a.id, a.updated_at) for n, a in accounts(db_engine).items()} == before


def test_changed_balance_updates_only_that_account(db_engine, tmp_path):
    run(db_engine, tmp_path, [HEADER, *ROWS])
    before = accounts(db_engine)
    changed = ROWS[0].replace("$321.72", "300.10").replace("2026-12-01", "2027-01-01")

    report = run(db_engine, tmp_path, [HEADER, changed, *ROWS[1:]])

    assert (report.created, report.updated, report.unchanged) == (0, 1, 2)
    after = accounts(db_engine)
    james = after["100200300"]
    assert (james.balance, james.due_date) == (Decimal("300.10"), date(2027, 1, 1))
    assert james.id == before["100200300"].id
    assert james.created_at == before["100200300"].created_at
    assert james.updated_at > before["100200300"].updated_at
    assert after["ACME-0042"].updated_at == before["ACME-0042"].updated_at


def test_optional_columns_absent_from_the_header_are_left_alone(db_engine, tmp_path):
    run(db_engine, tmp_path, [HEADER, *ROWS])
    lines = [
        "account_number,name,phone,zip,balance",
        "ACME-0042,Ana Lopez,5555550101,10001-1234,1250",
    ]

    report = run(db_engine, tmp_path, lines)

    assert (report.updated, report.unchanged) == (0, 1)
    ana = accounts(db_engine)["ACME-0042"]
    assert ana.status == "suspended"


def test_empty_optional_cell_resets_to_the_default(db_engine, tmp_path):
    run(db_engine, tmp_path, [HEADER, ROWS[0]])
    report = run(db_engine, tmp_path, [HEADER, ROWS[0].replace(",j@example.com", ",")])
    assert report.updated == 1
    assert accounts(db_engine)["100200300"].email is None


def test_service_address_column(db_engine, tmp_path):
    lines = [
        "account_number,name,phone,zip,balance,Service Address",
        'A-1001,Sam Rivera,5555550144,97205,64.30,"  12   Oak Street "',
        "A-1002,Sam Rivera,5555550144,97205,148.95,48 Pine Avenue",
        "A-1003,Sam Rivera,5555550144,97205,5.00,",
    ]
    report = run(db_engine, tmp_path, lines)
    assert report.created == 3, report.errors
    rows = accounts(db_engine)
    assert rows["A-1001"].service_address == "12 Oak Street"  # whitespace tidied
    assert rows["A-1002"].service_address == "48 Pine Avenue"
    assert rows["A-1003"].service_address is None
    # "address" is the same column; absent from a later file, the address is left alone.
    moved = ["account_number,name,phone,zip,balance,address", "A-1002,Sam Rivera,5555550144,"
             "97205,148.95,50 Pine Avenue"]  # fmt: skip
    assert run(db_engine, tmp_path, moved).updated == 1
    assert run(db_engine, tmp_path, [lines[0].rsplit(",", 1)[0], lines[1].rsplit(",", 1)[0]]
               ).unchanged == 1  # fmt: skip
    rows = accounts(db_engine)
    assert rows["A-1002"].service_address == "50 Pine Avenue"
    assert rows["A-1001"].service_address == "12 Oak Street"


def test_too_long_service_address_is_reported(db_engine, tmp_path):
    lines = ["account_number,name,phone,zip,balance,service_address",
             f"A-1001,Sam Rivera,5555550144,97205,64.30,{'x' * 201}"]  # fmt: skip
    report = run(db_engine, tmp_path, lines)
    assert report.errors == [RowError(2, "service_address: longer than 200 characters")]


# --- a large file -----------------------------------------------------------------------------


def big_file(tmp_path: Path, count: int, balance: str = "10.00") -> Path:
    lines = [HEADER] + [
        f"{10000000 + i},Customer {i},555555{i % 10000:04d},{i % 100000:05d},"
        f"{balance},1.00,2026-12-{i % 28 + 1:02d},USD,active,"
        for i in range(count)
    ]
    return write_csv(tmp_path, lines, f"big-{balance}.csv")


def test_five_thousand_rows(db_engine, tmp_path):
    progress: list[tuple[str, int]] = []
    path = big_file(tmp_path, 5000)

    report = import_accounts(db_engine, path, progress=lambda *p: progress.append(p))

    assert report.errors == []
    assert (report.rows, report.created) == (5000, 5000)
    assert [p for p in progress if p[0] == "validated"] == [
        ("validated", n) for n in (1000, 2000, 3000, 4000, 5000)
    ]
    assert len(accounts(db_engine)) == 5000

    again = import_accounts(db_engine, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5000)

    changed = import_accounts(db_engine, big_file(tmp_path, 5000, balance="11.00"))
    assert (changed.created, changed.updated, changed.unchanged) == (0, 5000, 0)
    assert {a.balance for a in accounts(db_engine).values()} == {Decimal("11.00")}


# --- the CLI entry point ----------------------------------------------------------------------


def test_cli_import_ok_then_idempotent(settings, tmp_path, capsys):
    path = write_csv(tmp_path, [HEADER, *ROWS])

    assert cli_import(settings, path, skip_bad=False, dry_run=False) == 0
    out = capsys.readouterr().out
    assert "accounts.csv: 3 rows: 3 created, 0 updated, 0 unchanged, 0 skipped" in out

    assert cli_import(settings, str(path), skip_bad=False, dry_run=False) == 0
    assert "0 created, 0 updated, 3 unchanged" in capsys.readouterr().out


def test_cli_import_reports_errors_and_exit_codes(settings, tmp_path, capsys):
    path = write_csv(tmp_path, [HEADER, ROWS[0], ROWS[1].replace("+1 555 555 0101", "nope")])

    assert cli_import(settings, path, skip_bad=False, dry_run=False) == 1
    out = capsys.readouterr().out
    assert "line 3: phone: not a phone number" in out
    assert "nothing imported" in out and "--skip-bad" in out
    assert "Ana Lopez" not in out

    assert cli_import(settings, path, skip_bad=True, dry_run=True) == 0
    assert "1 created, 0 updated, 0 unchanged, 1 skipped (dry run" in capsys.readouterr().out

    all_bad = write_csv(tmp_path, [HEADER, ROWS[1].replace("+1 555 555 0101", "x")], "bad.csv")
    assert cli_import(settings, all_bad, skip_bad=True, dry_run=False) == 1


def test_cli_import_unreadable_file(settings, tmp_path, capsys):
    assert cli_import(settings, tmp_path / "missing.csv", skip_bad=False, dry_run=False) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli_import(settings, tmp_path, skip_bad=False, dry_run=False) == 2


def test_cli_import_prints_progress_to_stderr(settings, tmp_path, capsys):
    assert cli_import(settings, big_file(tmp_path, 2100), skip_bad=False, dry_run=False) == 0
    captured = capsys.readouterr()
    assert "1000 rows validated" in captured.err and "2000 rows validated" in captured.err
    assert "2100 rows: 2100 created" in captured.out
