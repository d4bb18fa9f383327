"""A local fake of the part of Twilio's REST API paybot uses, spoken over the real wire protocol.

``twilio.rest.Client`` (through ``PAYBOT_TWILIO_API_URL``) talks to it exactly as it would to
``api.twilio.com``: form-encoded POSTs under ``/2010-04-01/Accounts/{AccountSid}/``, HTTP basic
auth with the account SID and auth token, JSON resources back, Twilio-shaped JSON errors.

* ``POST .../Calls/{CallSid}.json`` (``Twiml``, ``Status``, ...): the call resource.
  ``Twiml`` holding ``<Pay>`` starts a pay session (:class:`FakePay`, :meth:`FakeTwilio.pay`);
  the test then plays the caller's side of it: :meth:`FakeTwilio.pay_progress` sends signed
  status callbacks, :meth:`FakeTwilio.finish_pay` the signed action callback with a
  ``Result``, and follows the TwiML the bridge answers by opening a new Media Stream for the
  caller (``CallerSession.reconnect``), as Twilio does.
* ``POST .../Calls.json`` (``To``, ``From``, ``Url``, ``StatusCallback``): a new outbound
  call, ``CA…``, "queued" (201). :meth:`FakeTwilio.answer` then plays the callee picking up:
  the signed request to ``Url`` Twilio sends (``Direction`` outbound-api, ``CallStatus``
  in-progress), returning the TwiML the bridge answered.
* ``POST .../Conferences/{ConferenceSid}/Participants/{CallSid}.json`` (``Hold``,
  ``Muted``): a participant update; the participant resource back, its ``hold`` and ``muted``
  as last set (:meth:`FakeTwilio.participant`), 404 (code 20404) for a conference not in
  :attr:`FakeTwilio.conferences` (the test adds it: ``conferences[conf] = {agent_call}``).
* ``POST .../Messages.json`` (``To``, ``From``, ``Body``): a new message, ``SM…``, "queued".
  With a ``StatusCallback`` URL, the fake then reports the message's progress there as Twilio
  does: signed form POSTs of ``MessageStatus`` "sent", then "delivered" (or "undelivered" with
  ``ErrorCode`` 30003 for numbers in :attr:`FakeTwilio.undeliverable`); each answer's HTTP
  status is kept in :attr:`FakeTwilio.callbacks`. A number in :attr:`FakeTwilio.unsubscribed`
  (one that texted STOP to Twilio itself) is refused with error 21610.

Every request is recorded (:attr:`FakeTwilio.requests`) for assertions, and
:meth:`FakeTwilio.fail_next` makes the next N requests answer 500. The server runs on its own
event loop in a background thread, so synchronous code, async tests and a whole ``paybot up``
stack in a subprocess can all use it::

    def test_x(fake_twilio):                       # the pytest fixture below
        settings = load_settings(**fake_twilio.settings_overrides())
        ...
        assert fake_twilio.messages()[0].form["To"] == "+15555550100"

    with FakeTwilio() as fake:                     # or by hand, e.g. for a stack
        env = fake.env()                           # TWILIO_ACCOUNT_SID, ..._AUTH_TOKEN, API URL
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import threading
import time
import xml.etree.ElementTree as ET  # noqa: S405 - TwiML from the bridge under test
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientError, ClientSession, web
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 30 + "fa"
AUTH_TOKEN = "fake-twilio-auth-token"
API = "/2010-04-01/Accounts/{account}"


@dataclass(frozen=True)
class FakeRequest:
    """One request the fake received (auth already checked: ``authorized`` says how it went)."""

    method: str
    path: str
    form: dict[str, str]
    authorized: bool
    kind: str  # "call" (an update), "new_call", "message", "participant" or "other"
    sid: str | None = None  # the CallSid in the path, or the MessageSid created


@dataclass(frozen=True)
class FakePay:
    """A ``<Pay>`` the bridge handed a call to: its attributes as TwiML has them
    (``paymentConnector``, ``chargeAmount``, ``action``, ...) and what follows it."""

    call_sid: str
    attributes: dict[str, str]
    after: tuple[str, ...]  # the verbs after <Pay>, e.g. ("Redirect",)

    @property
    def action(self) -> str:
        return self.attributes["action"]

    @property
    def status_callback(self) -> str:
        return self.attributes["statusCallback"]


@dataclass(frozen=True)
class PayAnswer:
    """The bridge's answer to a callback the fake sent."""

    status: int
    body: str


@dataclass
class FakeTwilio:
    """The fake server. ``start()`` it (or use it as a context manager); ``.url`` is its base."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    requests: list[FakeRequest] = field(default_factory=list)
    pays: list[FakePay] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)
    undeliverable: set[str] = field(default_factory=set)
    unsubscribed: set[str] = field(default_factory=set)  # refused with error 21610, as after STOP
    callbacks: list[tuple[str, str, int]] = field(default_factory=list)  # sid, status, answer
    callback_delay_s: float = 0.2
    conferences: dict[str, set[str]] = field(default_factory=dict)  # ConfSid: its CallSids
    participants: dict[tuple[str, str], dict[str, bool]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _tasks: set = field(default_factory=set)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeTwilio:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="fake-twilio", daemon=True
        )
        self._thread.start()
        if not ready.wait(10) or not self.port:
            raise RuntimeError("fake Twilio did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # Test controls -----------------------------------------------------------------------
    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` (a Twilio-shaped JSON error)."""
        with self._lock:
            self._failures.extend([status] * count)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.pays.clear()
            self._failures.clear()
            self.callbacks.clear()
            self.undeliverable.clear()
            self.unsubscribed.clear()
            self.conferences.clear()
            self.participants.clear()

    def calls(self, call_sid: str | None = None) -> list[FakeRequest]:
        """Authorized call updates (for ``call_sid`` only, if given)."""
        return self._select("call", call_sid)

    def participant(self, conference_sid: str, call_sid: str) -> dict[str, bool]:
        """A participant's ``hold`` and ``muted`` as last set (both False if never set)."""
        with self._lock:
            return dict(self.participants.get((conference_sid, call_sid),
                                              {"hold": False, "muted": False}))

    def participant_updates(self) -> list[FakeRequest]:
        """Authorized conference participant updates, in order."""
        return self._select("participant", None)

    def created_calls(self) -> list[FakeRequest]:
        """Authorized outbound call creations, including the ones told to fail."""
        return self._select("new_call", None)

    async def answer(self, created: FakeRequest) -> PayAnswer:
        """The callee of a created call picks up: Twilio's signed request to its ``Url``."""
        url = created.form["Url"]
        form = {"AccountSid": self.account_sid, "CallSid": created.sid or "", "ApiVersion":
                "2010-04-01", "From": created.form["From"], "To": created.form["To"],
                "Direction": "outbound-api", "CallStatus": "in-progress"}  # fmt: skip
        signature = RequestValidator(self.auth_token).compute_signature(url, form)
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response,
        ):
            return PayAnswer(response.status, await response.text())

    def messages(self) -> list[FakeRequest]:
        """Authorized message creations, including the ones told to fail."""
        return self._select("message", None)

    def wait_for(self, predicate: Callable[[FakeTwilio], bool], timeout_s: float = 10.0) -> None:
        """Block until ``predicate(self)`` holds (e.g. a receipt sent by a background task)."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"fake Twilio: condition not met in {timeout_s}s")
            time.sleep(0.05)

    def pay(self, call_sid: str, timeout_s: float = 30.0) -> FakePay:
        """The ``<Pay>`` ``call_sid`` was handed to (waits for it)."""
        self.wait_for(lambda fake: any(p.call_sid == call_sid for p in fake.pays), timeout_s)
        with self._lock:
            return [p for p in self.pays if p.call_sid == call_sid][-1]

    async def pay_progress(
        self, pay: FakePay, step: str, *, attempt: int = 1, error: str = "", **more: str
    ) -> PayAnswer:
        """One signed ``<Pay>`` status callback: the caller is at ``step`` (``For``)."""
        params = {"For": step, "Attempt": str(attempt), **more}
        if error:
            params["ErrorType"] = error
        return await self.callback(pay, pay.status_callback, params)

    async def finish_pay(
        self,
        pay: FakePay,
        result: str,
        *,
        caller: Any = None,
        signed: bool = True,
        **more: str,
    ) -> PayAnswer:
        """``<Pay>`` ends with ``result``: the signed action callback, as Twilio sends it
        (``more`` adds or overrides fields, e.g. ``PaymentConfirmationCode``). If the bridge
        answers ``<Connect><Stream>`` and ``caller`` (a ``twilio_sim.CallerSession``) is
        given, the call follows it onto a new Media Stream."""
        params = {"Result": result, "PaymentMethod": pay.attributes.get("paymentMethod", "")}
        if result == "success" and pay.attributes.get("paymentMethod") != "ach-debit":
            params.update(
                PaymentCardNumber="xxxx-xxxx-xxxx-4242",  # masked, as Twilio sends it
                PaymentCardType="visa",
                ExpirationDate="1230",
                SecurityCode="***",
                PaymentCardPostalCode="94107",
            )
        params.update(more)
        answer = await self.callback(pay, pay.action, params, signed=signed)
        if caller is not None and answer.status == 200 and "<Stream" in answer.body:
            await caller.reconnect(answer.body)
        return answer

    async def callback(
        self, pay: FakePay, url: str, params: dict[str, str], *, signed: bool = True
    ) -> PayAnswer:
        """POST ``params`` (plus the call's own fields) to ``url``, signed (or not) as Twilio
        signs webhooks: HMAC-SHA1 of the URL and the fields with the auth token."""
        form = {
            "AccountSid": self.account_sid,
            "CallSid": pay.call_sid,
            "CallStatus": "in-progress",
            "ApiVersion": "2010-04-01",
            **params,
        }
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if signed:
            validator = RequestValidator(self.auth_token)
            headers["X-Twilio-Signature"] = validator.compute_signature(url, form)
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=form, headers=headers) as response,
        ):
            return PayAnswer(response.status, await response.text())

    def env(self) -> dict[str, str]:
        """Environment for a process (``paybot up``) that should use this fake."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "PAYBOT_TWILIO_API_URL": self.url,
        }

    def settings_overrides(self) -> dict[str, str]:
        """Keyword arguments for ``load_settings`` that point at this fake."""
        return {
            "twilio_account_sid": self.account_sid,
            "twilio_auth_token": self.auth_token,
            "twilio_api_url": self.url,
        }

    # Server ------------------------------------------------------------------------------
    def _serve(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._startup())
        ready.set()
        self._loop.run_forever()

    async def _startup(self) -> None:
        app = web.Application()
        app.router.add_post(API + "/Calls.json", self._create_call)
        app.router.add_post(API + "/Calls/{call_sid}.json", self._call)
        app.router.add_post(API + "/Messages.json", self._message)
        app.router.add_post(API + "/Conferences/{conf}/Participants/{call_sid}.json",
                            self._participant)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _call(self, request: web.Request) -> web.Response:
        call_sid = request.match_info["call_sid"]
        form, rejected = await self._admit(request, "call", call_sid)
        if rejected is not None:
            return rejected
        status = form.get("Status") or "in-progress"
        if "<Pay" in form.get("Twiml", ""):
            try:
                pay = _parse_pay(call_sid, form["Twiml"])
            except (ET.ParseError, ValueError, ArithmeticError) as exc:
                return _error(400, 12100, f"Document parse failure: {exc}")
            with self._lock:
                self.pays.append(pay)
        return web.json_response(self._call_resource(call_sid, status))

    async def _participant(self, request: web.Request) -> web.Response:
        conference, call_sid = request.match_info["conf"], request.match_info["call_sid"]
        form, rejected = await self._admit(request, "participant", call_sid)
        if rejected is not None:
            return rejected
        with self._lock:
            if call_sid not in self.conferences.get(conference, set()):
                return _error(404, 20404, "The requested resource was not found")
            state = self.participants.setdefault((conference, call_sid),
                                                 {"hold": False, "muted": False})
            for name in ("Hold", "Muted"):
                if name in form:
                    state[name.lower()] = form[name].lower() == "true"
            resource = {"account_sid": self.account_sid, "call_sid": call_sid,
                        "conference_sid": conference, "hold": state["hold"],
                        "muted": state["muted"], "status": "connected",
                        "date_updated": _rfc2822(), "uri": request.path}  # fmt: skip
        return web.json_response(resource)

    async def _create_call(self, request: web.Request) -> web.Response:
        sid = "CA" + secrets.token_hex(16)
        form, rejected = await self._admit(request, "new_call", sid)
        if rejected is not None:
            return rejected
        if not form.get("To"):
            return _error(400, 21201, "No 'To' number is specified")
        if not form.get("From"):
            return _error(400, 21213, "No 'From' number is specified")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return _error(400, 21205, "Url parameter is required.")
        resource = self._call_resource(sid, "queued") | {
            "direction": "outbound-api", "to": form["To"], "from": form["From"],
        }  # fmt: skip
        return web.json_response(resource, status=201)

    async def _message(self, request: web.Request) -> web.Response:
        sid = "SM" + secrets.token_hex(16)
        form, rejected = await self._admit(request, "message", sid)
        if rejected is not None:
            return rejected
        if not form.get("To") or not (form.get("Body") or form.get("MediaUrl")):
            return _error(400, 21602, "Message body is required.")
        if form["To"] in self.unsubscribed:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        if form.get("StatusCallback"):
            task = asyncio.get_running_loop().create_task(self._report(sid, form))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(self._message_resource(sid, form), status=201)

    async def _report(self, sid: str, form: dict[str, str]) -> None:
        """Twilio's status callbacks for a message: sent, then its ending."""
        from voice_bridge.twilio.signature import sign

        url = form["StatusCallback"]
        ending = ("undelivered", "30003") if form["To"] in self.undeliverable else ("delivered", "")
        async with ClientSession() as session:
            for status, code in (("sent", ""), ending):
                await asyncio.sleep(self.callback_delay_s)
                params = {"AccountSid": self.account_sid, "MessageSid": sid, "SmsSid": sid,
                          "MessageStatus": status, "SmsStatus": status, "To": form["To"],
                          "From": form.get("From", "")} | ({"ErrorCode": code} if code else {})
                headers = {"X-Twilio-Signature": sign(url, params, self.auth_token)}
                try:
                    async with session.post(url, data=params, headers=headers) as answer:
                        result = answer.status
                except ClientError:
                    result = 0
                with self._lock:
                    self.callbacks.append((sid, status, result))

    async def _admit(
        self, request: web.Request, kind: str, sid: str
    ) -> tuple[dict[str, str], web.Response | None]:
        """Record the request; its form, and an error response if it is unauthorized or told
        to fail."""
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        authorized = self._authorized(request)
        with self._lock:
            self.requests.append(
                FakeRequest(request.method, request.path, form, authorized, kind, sid)
            )
            failure = self._failures.pop(0) if authorized and self._failures else None
        if not authorized:
            return form, _error(401, 20003, "Authenticate")
        if failure is not None:
            return form, _error(failure, 20500, "Internal Server Error")
        return form, None

    def _authorized(self, request: web.Request) -> bool:
        if request.match_info.get("account") != self.account_sid:
            return False
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(f"{user}:{password}", f"{self.account_sid}:{self.auth_token}")

    def _select(self, kind: str, sid: str | None) -> list[FakeRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.kind == kind and r.authorized and (sid is None or r.sid == sid)
            ]

    def _call_resource(self, call_sid: str, status: str) -> dict:
        return {
            "sid": call_sid,
            "account_sid": self.account_sid,
            "status": status,
            "direction": "inbound",
            "api_version": "2010-04-01",
            "date_updated": _rfc2822(),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}.json",
        }

    def _message_resource(self, sid: str, form: dict[str, str]) -> dict:
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "api_version": "2010-04-01",
            "date_created": _rfc2822(),
            "date_updated": _rfc2822(),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }


def _parse_pay(call_sid: str, twiml: str) -> FakePay:
    """The ``<Pay>`` of a call update's TwiML (its attributes, and the verbs after it)."""
    root = ET.fromstring(twiml)  # noqa: S314 - the bridge under test wrote it
    verbs = list(root)
    [pay] = [verb for verb in verbs if verb.tag == "Pay"]
    after = tuple(verb.tag for verb in verbs[verbs.index(pay) + 1 :])
    attributes = dict(pay.attrib)
    # Inline TwiML needs absolute action URLs; the rest as <Pay>'s reference allows.
    for url in (attributes.get("action", ""), attributes.get("statusCallback", "")):
        if not url.startswith(("https://", "http://")):
            raise ValueError("action and statusCallback must be absolute URLs")
    if not 0 <= Decimal(attributes.get("chargeAmount", "0")) <= 1_000_000:
        raise ValueError("chargeAmount out of range")
    if attributes.get("paymentMethod", "credit-card") not in ("credit-card", "ach-debit"):
        raise ValueError("unknown paymentMethod")
    return FakePay(call_sid, attributes, after)


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


def _rfc2822() -> str:
    return format_datetime(datetime.now(timezone.utc), usegmt=True)


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A running fake Twilio REST API (its own thread), stopped after the test."""
    with FakeTwilio() as fake:
        yield fake
