"""The agent console over real HTTP (no browser needed): sign-in and its lockout, sessions
and their expiry, CSRF on every POST, roles on every route, security headers, payment
search, admin refunds through the sandbox gateway, and the live calls' event stream.
tests/test_console_browser.py drives the same pages in Chromium."""

from __future__ import annotations

import json
import random
import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from sqlalchemy import update
from sqlmodel import Session, select

from paybot.db.models import (
    Account,
    AuditEvent,
    ConsoleLoginFailure,
    ConsoleSession,
    Payment,
    PaymentStatus,
    Refund,
    SandboxCharge,
)
from paybot.db.types import utcnow
from paybot.settings import load_settings
from tests.console_server import PASSWORD, ConsoleServer
from tests.helpers import account, rows, stored_method
from tests.stack import REPO
from voice_bridge.secure_capture.steps import CaptureProgress

LOCKOUT = 3
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
REFUND_KEY = re.compile(r'name="refund_key" value="([^"]+)"')


@pytest.fixture
def console_settings(settings, tmp_path):
    return load_settings(env="test", data_dir=tmp_path / "var", console_lockout_failures=LOCKOUT,
                         trust_proxy=True, console_secret="a test console secret")


@pytest.fixture
def console(console_settings, ledger, db_engine):
    with ConsoleServer(console_settings, db_engine) as server:
        server.add_users()
        yield server


def browser(server: ConsoleServer, client: str = "10.0.0.1") -> requests.Session:
    http = requests.Session()
    http.headers["X-Forwarded-For"] = client
    http.base = server.url  # type: ignore[attr-defined]
    return http


def get(http: requests.Session, path: str, **kw) -> requests.Response:
    return http.get(http.base + path, allow_redirects=False, timeout=10, **kw)  # type: ignore[attr-defined]


def post(http: requests.Session, path: str, data: dict, **kw) -> requests.Response:
    return http.post(http.base + path, data=data, allow_redirects=False, timeout=10, **kw)  # type: ignore[attr-defined]


def sign_in(http: requests.Session, name: str, password: str = PASSWORD) -> requests.Response:
    form = get(http, "/console/login")
    token = CSRF.search(form.text).group(1)
    return post(http, "/console/login", {"csrf": token, "name": name, "password": password})


def signed_in(server: ConsoleServer, name: str, client: str = "10.0.0.1") -> requests.Session:
    http = browser(server, client)
    assert sign_in(http, name).status_code == 303
    return http


def csrf_of(http: requests.Session, path: str = "/console/calls") -> str:
    return CSRF.search(get(http, path).text).group(1)


def pay_james(ledger, amount: str = "100.00"):
    james = account(ledger.engine, "100200300")
    method = stored_method(ledger.engine, james.id)
    return ledger.pay_with_stored_method(
        account_id=james.id, payment_method_id=method.id, amount=Decimal(amount),
        channel="voice", conversation_id="call:CA1",
    )


# --- Signing in --------------------------------------------------------------------------------
def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session(console):
    http = browser(console)
    first = get(http, "/console/calls")
    assert first.status_code == 303 and first.headers["Location"] == "/console/login"
    answer = sign_in(http, "Agent")  # names are not case-sensitive
    assert answer.status_code == 303 and answer.headers["Location"] == "/console/calls"
    cookie = next(c for c in answer.raw.headers.getlist("Set-Cookie")
                  if c.startswith("paybot_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here: Secure only over https
    page = get(http, "/console/calls")
    assert page.status_code == 200 and "Live calls" in page.text
    csrf = CSRF.search(page.text).group(1)
    assert post(http, "/console/logout", {"csrf": csrf}).status_code == 303
    assert get(http, "/console/calls").status_code == 303  # the old cookie no longer works


def test_the_cookie_is_secure_over_https(console):
    http = browser(console)
    http.headers["X-Forwarded-Proto"] = "https"  # through the trusted proxy
    form = get(http, "/console/login")
    token = CSRF.search(form.text).group(1)
    assert "Secure" in form.headers["Set-Cookie"]
    answer = post(http, "/console/login", {"csrf": token, "name": "agent", "password": PASSWORD},
                  cookies={"paybot_console_login": form.cookies["paybot_console_login"]})
    cookie = next(c for c in answer.raw.headers.getlist("Set-Cookie")
                  if c.startswith("paybot_console="))
    assert "Secure" in cookie
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")


def test_pages_carry_the_security_headers(console):
    http = signed_in(console, "admin")
    for path in ("/console/login", "/console/calls", "/console/payments", "/console/settings",
                 "/console/reports", "/console/nowhere"):
        answer = get(http, path)
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script>" not in answer.text and " style=" not in answer.text  # nothing inline


def test_a_wrong_password_and_an_unknown_name_get_one_answer_then_the_lockout(
    console, console_settings, db_engine
):
    http = browser(console)
    answers = [sign_in(http, "agent", "wrong password here") for _ in range(LOCKOUT - 1)]
    answers.append(sign_in(browser(console, "10.0.0.9"), "nobody-by-that-name", "whatever"))
    assert {a.status_code for a in answers} == {401}
    assert len({_message(a.text) for a in answers}) == 1
    assert sign_in(http, "agent", "wrong password here").status_code == 401
    # Three refusals for "agent": even the right password is refused now, from anywhere.
    locked = sign_in(browser(console, "10.0.0.2"), "agent")
    assert locked.status_code == 429 and "Too many" in locked.text
    assert "nobody" not in locked.text
    # Another user is not locked out; and the lockout holds across a restart.
    assert sign_in(browser(console, "10.0.0.3"), "admin").status_code == 303
    with ConsoleServer(console_settings, db_engine) as again:
        assert sign_in(browser(again, "10.0.0.4"), "agent").status_code == 429


def test_the_lockout_counts_refusals_per_client_address(console):
    noisy = browser(console, "10.0.0.66")
    for name in ("x1", "x2", "x3"):  # different names, one address
        assert sign_in(noisy, name, "guess").status_code == 401
    assert sign_in(noisy, "admin").status_code == 429
    assert sign_in(browser(console, "10.0.0.7"), "admin").status_code == 303


def test_the_sign_in_form_needs_its_own_token(console, db_engine):
    http = browser(console)
    get(http, "/console/login")
    answer = post(http, "/console/login", {"name": "agent", "password": PASSWORD})
    assert answer.status_code == 403
    answer = post(http, "/console/login", {"csrf": "forged", "name": "agent", "password": PASSWORD})
    assert answer.status_code == 403
    assert rows(db_engine, ConsoleSession) == []


# --- Sessions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("clock", ["last_seen_at", "created_at"])
def test_an_expired_session_is_sent_to_sign_in(console, console_settings, db_engine, clock):
    http = signed_in(console, "agent")
    assert get(http, "/console/payments").status_code == 200
    limit = (timedelta(minutes=console_settings.console_idle_minutes) if clock == "last_seen_at"
             else timedelta(hours=console_settings.console_session_hours))
    with Session(db_engine) as session:
        values = {clock: utcnow() - limit - timedelta(seconds=5)}
        if clock == "created_at":
            values["last_seen_at"] = utcnow()  # busy, but signed in too long ago
        session.execute(update(ConsoleSession).values(**values))
        session.commit()
    answer = get(http, "/console/payments")
    assert answer.status_code == 303 and answer.headers["Location"] == "/console/login"
    [row] = rows(db_engine, ConsoleSession)
    assert row.ended_at is not None


def test_a_tampered_cookie_is_no_session(console):
    http = signed_in(console, "admin")
    value = http.cookies["paybot_console"]
    token, _, mac = value.rpartition(".")
    rng = random.Random(16)
    for _ in range(20):
        i = rng.randrange(len(token))
        forged = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:] + "." + mac
        answer = requests.get(console.url + "/console/calls", allow_redirects=False, timeout=10,
                              headers={"Cookie": f"paybot_console={forged}"})
        assert answer.status_code == 303
    genuine = requests.get(console.url + "/console/calls", allow_redirects=False, timeout=10,
                           headers={"Cookie": f"paybot_console={value}"})
    assert genuine.status_code == 200


# --- CSRF and roles ----------------------------------------------------------------------------
def test_a_post_without_the_sessions_csrf_token_is_refused(console, ledger, db_engine):
    outcome = pay_james(ledger)
    admin = signed_in(console, "admin")
    other = signed_in(console, "admin", "10.0.0.5")
    good = csrf_of(admin)
    rng = random.Random(7)
    forged = ["", "x", good[:-1], good + "A", good.upper(), csrf_of(other)]
    forged += ["".join(rng.choice("abcXYZ-_019") for _ in range(len(good))) for _ in range(10)]
    path = f"/console/payments/{outcome.payment_id}/refund"
    for token in forged:
        data = {"reason": "test", "refund_key": f"key-{rng.random()}"}
        if token:
            data["csrf"] = token
        answer = post(admin, path, data)
        assert answer.status_code == 403, token
    assert post(admin, "/console/logout", {}).status_code == 403
    assert get(admin, "/console/calls").status_code == 200  # still signed in
    assert rows(db_engine, Refund) == []
    assert [c for c in rows(db_engine, SandboxCharge) if c.status == "refund"] == []


def test_every_route_is_guarded_and_roles_open_only_their_pages(console):
    from aiohttp import web

    from voice_bridge.console import pages

    app = web.Application()
    pages.add_console(app)
    handlers = {route.handler for route in app.router.routes()}
    assert handlers and all(route.resource.canonical.startswith("/console")
                            for route in app.router.routes())
    unguarded = {h.__wrapped__.__name__ for h in handlers if not hasattr(h, "console_role")}
    # Signing in, the stylesheet and script, redirects and the not-found page only.
    assert unguarded == {"home", "login_form", "login", "static_file", "not_found"}
    expected = {
        "agent": {"/console/calls": 200, "/console/payments": 200, "/console/reports": 403,
                  "/console/settings": 403},
        "supervisor": {"/console/reports": 200, "/console/settings": 403},
        "admin": {"/console/reports": 200, "/console/settings": 200},
    }
    for name, pages_of in expected.items():
        http = signed_in(console, name)
        for path, status in pages_of.items():
            assert get(http, path).status_code == status, (name, path)
        if name != "admin":
            link = get(http, "/console/calls").text
            assert "/console/settings" not in link


def test_an_agent_cannot_refund(console, ledger, db_engine):
    outcome = pay_james(ledger)
    agent = signed_in(console, "agent")
    page = get(agent, f"/console/payments/{outcome.payment_id}")
    assert page.status_code == 200 and "refund_key" not in page.text
    answer = post(agent, f"/console/payments/{outcome.payment_id}/refund",
                  {"csrf": csrf_of(agent), "reason": "x", "refund_key": "k" * 20})
    assert answer.status_code == 403
    assert rows(db_engine, Refund) == []


# --- Payments ----------------------------------------------------------------------------------
def test_search_by_confirmation_account_and_dates_in_pages(console, ledger, db_engine):
    rng = random.Random(3)
    outcomes = [pay_james(ledger, f"{rng.randint(1, 9)}.{rng.randint(10, 99)}") for _ in range(27)]
    agent = signed_in(console, "agent")
    target = rng.choice(outcomes)
    found = get(agent, "/console/payments", params={"confirmation": target.confirmation_number})
    assert found.status_code == 200 and "1 payment<" in found.text
    assert f"/console/payments/{target.payment_id}\"" in found.text
    by_account = get(agent, "/console/payments", params={"account": "100200300"})
    assert "27 payments" in by_account.text and "Page 1 of 2" in by_account.text
    second = get(agent, "/console/payments", params={"account": "100200300", "page": "2"})
    ids_one = set(re.findall(r"/console/payments/(\d+)\"", by_account.text))
    ids_two = set(re.findall(r"/console/payments/(\d+)\"", second.text))
    assert len(ids_one) == 25 and len(ids_two) == 2 and not ids_one & ids_two
    today = utcnow().date()
    dated = get(agent, "/console/payments", params={"from": str(today), "to": str(today)})
    assert "27 payments" in dated.text
    later = {"from": str(today + timedelta(days=1)), "to": str(today + timedelta(days=9))}
    none = get(agent, "/console/payments", params=later)
    assert "0 payments" in none.text
    nothing = get(agent, "/console/payments", params={"confirmation": "0000000000"})
    assert "0 payments" in nothing.text
    detail = get(agent, f"/console/payments/{target.payment_id}")
    assert target.confirmation_number in detail.text and "4242" in detail.text


def test_an_admin_refunds_with_a_reason_once_and_never_more_than_was_paid(
    console, ledger, db_engine
):
    outcome = pay_james(ledger, "100.00")  # $102.00 with the $2.00 fee
    james_before = account(db_engine, "100200300").balance
    admin = signed_in(console, "admin")
    path = f"/console/payments/{outcome.payment_id}"
    page = get(admin, path)
    key = REFUND_KEY.search(page.text).group(1)
    csrf = CSRF.search(page.text).group(1)
    no_reason = post(admin, path + "/refund", {"csrf": csrf, "refund_key": key, "amount": "10"})
    assert no_reason.status_code == 422 and "needs a reason" in no_reason.text
    form = {"csrf": csrf, "refund_key": key, "amount": "40.00", "reason": "Billed twice"}
    for _ in range(2):  # the same form twice: one refund
        answer = post(admin, path + "/refund", form)
        assert answer.status_code == 303
    [refund] = rows(db_engine, Refund)
    assert refund.amount == Decimal("40.00") and refund.status == "succeeded"
    assert refund.actor == "console:admin" and refund.reason == "Billed twice"
    too_much = post(admin, path + "/refund", {"csrf": csrf, "refund_key": "another-key-1",
                                              "amount": "62.01", "reason": "more"})
    assert too_much.status_code == 422 and "62.00" in too_much.text
    rest = post(admin, path + "/refund", {"csrf": csrf, "refund_key": "another-key-2",
                                          "reason": "Closing the account"})
    assert rest.status_code == 303
    with Session(db_engine) as session:
        payment = session.get(Payment, outcome.payment_id)
        assert payment.status == PaymentStatus.REFUNDED
        refunds = session.exec(select(SandboxCharge).where(SandboxCharge.status == "refund")).all()
        assert sorted(r.amount for r in refunds) == [Decimal("40.00"), Decimal("62.00")]
        charge = session.exec(select(SandboxCharge).where(
            SandboxCharge.id == payment.gateway_transaction_id)).one()
        assert charge.refunded == Decimal("102.00")
        events = session.exec(select(AuditEvent).where(AuditEvent.kind.like("refund_%"))).all()
        balance = session.get(Account, payment.account_id).balance
    assert [e.kind for e in events] == ["refund_requested", "refund_succeeded"] * 2
    assert events[0].detail["reason"] == "Billed twice" and events[0].actor == "console:admin"
    assert balance == james_before + Decimal("100.00")  # the principal back; the fee was not on it
    shown = get(admin, path).text
    assert "refunded" in shown and "refund_key" not in shown  # nothing left to refund


def test_the_merchant_settings_show_secrets_only_as_set(console, console_settings):
    page = get(signed_in(console, "admin"), "/console/settings").text
    assert "a test console secret" not in page
    assert re.search(r"PAYBOT_CONSOLE_SECRET</th><td>set<", page)
    assert re.search(r"STRIPE_API_KEY</th><td>unset<", page)
    assert re.search(r"accepted_brands</th><td>visa, mastercard", page)


# --- Live calls --------------------------------------------------------------------------------
def test_live_calls_are_pushed_with_their_step_and_never_digits(console):
    agent = signed_in(console, "agent")
    console.on_loop(lambda live: live.begin("CA" + "1" * 32, "+15555550100"))
    with agent.get(console.url + "/console/calls/events", stream=True, timeout=10) as events:
        assert events.headers["Content-Type"].startswith("text/event-stream")
        lines = events.iter_lines(decode_unicode=True)
        first = _next_event(lines)
        assert [c["step"] for c in first] == ["answered"]
        progress = CaptureProgress("collecting", "card_number", 12, "visa", None, 0)
        console.on_loop(lambda live: live.step("CA" + "1" * 32, "secure capture: card_number",
                                               turns=3, capture=progress))
        second = _next_event(lines)
        assert second[0]["step"] == "secure capture: card_number" and second[0]["turns"] == 3
        assert second[0]["capture"]["digits_entered"] == 12
        done = CaptureProgress("confirming", "confirm", 0, "visa", "4242", 0)
        console.on_loop(lambda live: live.step("CA" + "1" * 32, "secure capture: confirm",
                                               capture=done))
        third = _next_event(lines)
        assert third[0]["capture"]["last4"] == "4242"
        console.on_loop(lambda live: live.end("CA" + "1" * 32))
        assert _next_event(lines) == []


def _next_event(lines) -> list[dict]:
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line[6:])
    raise AssertionError("the event stream ended")


def _message(html: str) -> str:
    return re.search(r'id="message"[^>]*>([^<]*)<', html).group(1)


def test_refused_sign_ins_are_stored(console, db_engine):
    sign_in(browser(console), "agent", "nope nope nope")
    [failure] = rows(db_engine, ConsoleLoginFailure)
    assert failure.name == "agent" and failure.client == "10.0.0.1"


# --- The command line --------------------------------------------------------------------------
def test_paybot_console_adds_users_with_the_password_from_stdin(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBOT_")}
    env.update(PAYBOT_DATA_DIR=str(tmp_path / "var"), PYTHONPATH=str(REPO), PAYBOT_ENV="test")
    env.pop("DATABASE_URL", None)

    def paybot(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "paybot_cli", "console", *args], input=stdin,
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    added = paybot("add-user", "Carol", "--role", "supervisor", stdin=PASSWORD + "\n")
    assert added.returncode == 0 and "added supervisor carol" in added.stdout
    assert paybot("add-user", "carol", "--role", "agent", stdin=PASSWORD + "\n").returncode == 1
    weak = paybot("add-user", "dave", "--role", "agent", stdin="short\n")
    assert weak.returncode == 1 and "12 characters" in weak.stderr
    assert paybot("add-user", "erin", "--role", "agent").returncode == 1  # no password at all
    assert paybot("disable", "carol").returncode == 0
    listed = paybot("users")
    assert listed.stdout.split("\n")[0] == "carol\tsupervisor (disabled)"
    assert PASSWORD not in added.stdout + added.stderr + listed.stdout + listed.stderr
    with pytest.raises(SystemExit):  # there is no way to pass it on the command line
        from paybot_cli.main import build_parser

        build_parser().parse_args(["console", "add-user", "x", "--role", "agent", "--password",
                                   "y"])


def test_the_event_stream_ends_with_the_session_and_does_not_keep_it_alive(
    console, db_engine, monkeypatch
):
    from voice_bridge.console import live_events

    monkeypatch.setattr(live_events, "KEEPALIVE_S", 0.2)
    agent = signed_in(console, "agent")
    with agent.get(console.url + "/console/calls/events", stream=True, timeout=10) as events:
        lines = events.iter_lines(decode_unicode=True)
        assert _next_event(lines) == []
        idle_since(db_engine, timedelta(minutes=5))
        time.sleep(1.0)  # several session checks
        [row] = rows(db_engine, ConsoleSession)
        assert utcnow() - row.last_seen_at > timedelta(minutes=4)  # not touched by the stream
        idle_since(db_engine, timedelta(hours=1))
        assert "event: signed-out" in list(lines)


def idle_since(engine, ago: timedelta) -> None:
    with Session(engine) as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - ago))
        session.commit()


def test_concurrent_refunds_never_give_back_more_than_was_paid(ledger, db_engine):
    from concurrent.futures import ThreadPoolExecutor

    from paybot.gateway.sandbox import SandboxGateway
    from paybot.payments.refunds import RefundRefused, refund_payment
    from tests.helpers import second_engine

    outcome = pay_james(ledger, "100.00")  # $102.00
    other = second_engine(db_engine)
    rng = random.Random(11)
    amounts = [Decimal(f"{rng.randint(5, 40)}.{rng.randint(0, 99):02d}") for _ in range(12)]

    def one(i: int) -> Decimal:
        engine = db_engine if i % 2 else other
        try:
            result = refund_payment(
                engine, lambda _name: SandboxGateway(engine), payment_id=outcome.payment_id,
                amount=amounts[i], reason=f"race {i}", actor="test",
                idempotency_key=f"race-{i:04d}",
            )
        except RefundRefused as exc:
            assert exc.code == "too_much"
            return Decimal("0")
        assert result.status == "succeeded"
        return result.amount

    try:
        with ThreadPoolExecutor(6) as pool:
            given = sum(pool.map(one, range(len(amounts))))
    finally:
        other.dispose()
    refunds = [r for r in rows(db_engine, Refund) if r.status == "succeeded"]
    assert given == sum(r.amount for r in refunds) <= Decimal("102.00")
    charges = [c for c in rows(db_engine, SandboxCharge) if c.status == "refund"]
    assert sum(c.amount for c in charges) == given
    assert given > Decimal("102.00") - max(amounts)  # refused only when it would not fit
