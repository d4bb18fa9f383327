"""Shared fixtures: real databases (SQLite file and PostgreSQL) and settings.

``db_engine`` runs each test against a migrated SQLite file and, when
``PAYBOT_TEST_DATABASE_URL`` names a PostgreSQL server, against PostgreSQL too (in a schema
of its own, dropped at the end). Without that variable the PostgreSQL runs are skipped and
the summary says so loudly.

At the end of the run the card-data scan looks through every SQLite, log and WAV file the
tests made; PostgreSQL schemas are scanned before they are emptied. It is the production scan
(``paybot pci-scan``'s :mod:`paybot.pci_scan`) with the test glue of ``tests/cardscan.py`` (the
cards and codes the tests keyed). Any card number or keyed security code found fails the run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from paybot.db.engine import make_engine, migrate
from paybot.settings import Settings, load_settings
from tests import caller_voice, cardscan

PG_URL_ENV = "PAYBOT_TEST_DATABASE_URL"
_skipped_pg: list[str] = []


def pytest_configure(config) -> None:
    try:
        caller_voice.configure(os.environ)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config) -> str:
    return caller_voice.current().describe()


def pytest_runtest_setup(item) -> None:
    caller_voice.start_test()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that spoke names the caller's voice and the seed that replays it."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and caller_voice.spoke_in_test():
        report.sections.append(("caller voice", caller_voice.current().describe()))


def pytest_sessionfinish(session, exitstatus) -> None:
    """Scan what the tests left on disk; card data anywhere fails the run.

    Under pytest-xdist (``-n``) each worker scans its own temp dir (only workers import the
    test modules, which register the cards they key) and hands its findings and skipped
    PostgreSQL tests to the controller (:func:`pytest_testnodedown`), which fails the run."""
    workers = getattr(session.config, "workerinput", None) is None and _uses_xdist(session.config)
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)
    if not workers and basetemp is not None and Path(basetemp).is_dir():
        cardscan.record(cardscan.scan_tree(Path(basetemp)))
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["cardscan"] = [(f.source, f.what) for f in cardscan.FINDINGS]
        output["skipped_pg"] = list(_skipped_pg)
    if cardscan.FINDINGS:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _uses_xdist(config) -> bool:
    return bool(getattr(config.option, "numprocesses", None))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """An xdist worker finished: keep its card-data findings and skipped PostgreSQL tests."""
    output = getattr(node, "workeroutput", {}) or {}
    cardscan.record(cardscan.Finding(source, what) for source, what in output.get("cardscan", []))
    _skipped_pg.extend(output.get("skipped_pg", []))


def pytest_terminal_summary(terminalreporter) -> None:
    if caller_voice.spoke_at_all():
        terminalreporter.write_line(caller_voice.current().describe())
    if cardscan.FINDINGS:
        terminalreporter.write_sep(
            "!", f"CARD DATA FOUND after the tests ({len(cardscan.FINDINGS)})", red=True, bold=True
        )
        for finding in cardscan.FINDINGS:
            terminalreporter.write_line(f"  {finding}", red=True)
    if _skipped_pg:
        terminalreporter.write_sep(
            "!",
            f"PostgreSQL tests SKIPPED ({len(_skipped_pg)}): set {PG_URL_ENV} "
            "(e.g. postgresql://postgres@127.0.0.1:5432/test) to run them",
            red=True,
            bold=True,
        )


@pytest.fixture(autouse=True)
def _no_redaction_left_installed() -> Iterator[None]:
    """A command run in-process installs log redaction; later tests must see raw records."""
    yield
    from paybot.redaction import uninstall

    uninstall()


def require_pg(nodeid: str) -> str:
    """``PAYBOT_TEST_DATABASE_URL``; else skip (counted in the summary's red line)."""
    url = os.environ.get(PG_URL_ENV)
    if not url:
        _skipped_pg.append(nodeid)
        pytest.skip(f"PostgreSQL not configured: set {PG_URL_ENV}")
    return url


@contextmanager
def fresh_schema(url: str, prefix: str = "paybot_test") -> Iterator[str]:
    """A new, empty schema in the PostgreSQL database at ``url``, dropped afterwards; yields
    its name."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def schema_url(url: str, schema: str) -> str:
    """``url`` with every table in ``schema`` (a libpq option: what ``DATABASE_URL`` of a
    process needs to use the schema)."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine | None]:
    url = os.environ.get(PG_URL_ENV)
    if not url:
        yield None
        return
    with fresh_schema(url) as schema:
        engine = make_engine(url, search_path=schema)
        migrate(engine)
        try:
            yield engine
        finally:
            cardscan.check_engine(engine, f"postgresql schema {schema}")
            engine.dispose()


def _truncate_all(engine: Engine) -> None:
    from sqlmodel import SQLModel

    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (migrating is slower)."""
    path = tmp_path_factory.mktemp("template") / "paybot.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def _sqlite_copy(template: Path, tmp_path: Path) -> Engine:
    target = tmp_path / "paybot.db"
    shutil.copyfile(template, target)
    return make_engine(f"sqlite:///{target}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request, tmp_path, pg_engine, sqlite_template) -> Iterator[Engine]:
    """A migrated, empty database: a SQLite file, then PostgreSQL when available."""
    if request.param == "sqlite":
        engine = _sqlite_copy(sqlite_template, tmp_path)
        yield engine
        engine.dispose()
        return
    if pg_engine is None:
        require_pg(request.node.nodeid)
    _truncate_all(pg_engine)
    yield pg_engine
    cardscan.check_engine(pg_engine, f"postgresql {request.node.nodeid}")
    _truncate_all(pg_engine)


@pytest.fixture
def sqlite_engine(tmp_path, sqlite_template) -> Iterator[Engine]:
    """A migrated SQLite file only (for tests that need no PostgreSQL variant)."""
    engine = _sqlite_copy(sqlite_template, tmp_path)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """Dev settings with a private data dir, isolated from any ``.env`` of the developer."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("PAYBOT_") and key != PG_URL_ENV:
            monkeypatch.delenv(key)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return load_settings(env="test", data_dir=tmp_path / "var")


@pytest.fixture
def sandbox(db_engine):
    """The embedded sandbox gateway on ``db_engine``."""
    from paybot.gateway.sandbox import SandboxGateway

    return SandboxGateway(db_engine)


@pytest.fixture
def ledger(db_engine, sandbox):
    """A ledger over the seeded demo accounts with a $2.00 fee and no retry back-off."""
    from decimal import Decimal

    from paybot.payments.fees import FeePolicy
    from paybot.payments.ledger import Ledger
    from paybot.payments.rules import AmountRules
    from paybot.seed import seed_demo_data

    seed_demo_data(db_engine, sandbox)
    return Ledger(
        db_engine,
        sandbox,
        rules=AmountRules(minimum=Decimal("1.00")),
        fees=FeePolicy(flat=Decimal("2.00"), account="CONVENIENCE-FEES"),
        retries=2,
        backoff_s=0,
    )


@pytest.fixture
def svc(db_engine, ledger, monkeypatch):
    """The action server's services over the test database, installed as the actions' own."""
    from actions import services as services_module
    from paybot.accounts.directory import LocalDirectory
    from paybot.identity import IdentityVerifier, LockoutPolicy
    from paybot.payments.profile import PaymentProfile

    directory = LocalDirectory(db_engine)
    built = services_module.Services(
        settings=load_settings(env="test"),
        engine=db_engine,
        ledger=ledger,
        directory=directory,
        verifier=IdentityVerifier(db_engine, directory, LockoutPolicy(max_failures=5)),
        profile=PaymentProfile(),
    )
    monkeypatch.setattr(services_module, "_services", built)
    return built


@pytest.fixture(scope="session")
def localstripe():
    """localstripe, the Stripe emulator, for the whole run (``tests/localstripe.py``)."""
    from tests.localstripe import LocalStripe

    server = LocalStripe()
    yield server
    server.stop()


@pytest.fixture
def cli_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Run ``main()`` in-process from the repo root with free ports and a private data dir."""
    for key in list(os.environ):
        if key.startswith("PAYBOT_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    env = {
        "PAYBOT_ENV": "test",
        "PAYBOT_DATA_DIR": str(tmp_path / "var"),
        "PAYBOT_RASA_PORT": str(_free_port()),
        "PAYBOT_ACTION_PORT": str(_free_port()),
        "PAYBOT_BRIDGE_PORT": str(_free_port()),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
