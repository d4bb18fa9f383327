"""Twilio's REST API for what the bridge does to a live call or on its own: transfer a caller to
a person, hand a call to ``<Pay>``, hang up, send a text message.

It is the official ``twilio.rest.Client`` (so production runs exactly this code) with an HTTP
client that can send every request to ``PAYBOT_TWILIO_API_URL`` instead of ``*.twilio.com``:
tests and the full-stack run point it at ``tests/fake_twilio.py``.

The client is synchronous (``requests``): call the ``*_async`` wrappers from the event loop.
Errors come out as :class:`TwilioRestError` carrying the HTTP status and Twilio's error code;
log lines name the operation and the CallSid or MessageSid, never a body, a number or TwiML.

A transfer replaces the call's TwiML (:mod:`voice_bridge.twilio.twiml` says what each kind
of ``PAYBOT_TRANSFER_TO`` gets), which also ends the Media Stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from paybot.settings import Settings
from voice_bridge.twilio.twiml import InvalidTransferTarget as InvalidTransferTarget  # re-export
from voice_bridge.twilio.twiml import target_kind, transfer_twiml

log = logging.getLogger(__name__)
T = TypeVar("T")
TWILIO_API_URL = "https://api.twilio.com"
TIMEOUT_S = 10.0


class TwilioNotConfigured(RuntimeError):
    """Twilio cannot be used: the message names the settings to set."""


class TwilioRestError(RuntimeError):
    """A Twilio REST call failed.

    Attributes:
        operation: "transfer", "pay", "hangup", "send_sms", "call", "hold" or "unhold".
        status: The HTTP status, or None when no answer came back.
        code: Twilio's error code (e.g. 21220 "call not in progress"), when it gave one.
        retryable: Trying again is safe and may work: Twilio was not reached, or answered
            429 or 5xx.
        maybe_done: No answer came back after the request went out, so Twilio may have acted
            on it (a text may have been sent).
    """

    def __init__(
        self,
        operation: str,
        *,
        status: int | None,
        code: int | None,
        retryable: bool,
        maybe_done: bool = False,
    ) -> None:
        what = f"http {status}" if status is not None else "no answer"
        super().__init__(f"twilio {operation} failed: {what}" + (f" (code {code})" if code else ""))
        self.operation = operation
        self.status = status
        self.code = code
        self.retryable = retryable
        self.maybe_done = maybe_done


class RedirectingHttpClient(TwilioHttpClient):
    """Twilio's HTTP client, sending ``*.twilio.com`` requests to another base URL, and logging
    method, path and status at debug level only (the stock one logs every request at INFO)."""

    def __init__(self, api_url: str = TWILIO_API_URL, *, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(timeout=timeout_s, logger=log)
        self.api_url = api_url.rstrip("/")

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        return super().request(
            method, self.rewrite(url), params, data, headers, auth, timeout, allow_redirects
        )

    def rewrite(self, url: str) -> str:
        """``url`` with a Twilio host replaced by ``api_url`` (unchanged when it is Twilio's)."""
        if self.api_url == TWILIO_API_URL:
            return url
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            return url
        base = urlsplit(self.api_url)
        path = base.path.rstrip("/") + parts.path
        return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))

    def log_request(self, kwargs: dict[str, Any]) -> None:
        log.debug("twilio request %s %s", kwargs["method"], urlsplit(kwargs["url"]).path)

    def log_response(self, status_code: int, response: Any) -> None:
        log.debug("twilio answered %s", status_code)


class TwilioRest:
    """Call control and text messages through Twilio's REST API (synchronous; thread-safe
    enough to share: each request is independent)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_url: str = TWILIO_API_URL,
        sms_from: str | None = None,
        transfer_to: str | None = None,
        timeout_s: float = TIMEOUT_S,
        status_callback: str | None = None,
    ) -> None:
        self.sms_from = sms_from
        self.transfer_to = transfer_to
        self.status_callback = status_callback  # where Twilio reports each text's status
        self.http_client = RedirectingHttpClient(api_url, timeout_s=timeout_s)
        self._client = Client(account_sid, auth_token, http_client=self.http_client)

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioRest:
        """The client for ``settings``.

        Raises:
            TwilioNotConfigured: TWILIO_ACCOUNT_SID or TWILIO_AUTH_TOKEN is not set.
        """
        token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                ("TWILIO_AUTH_TOKEN", token),
            )
            if not value
        ]
        if missing:
            raise TwilioNotConfigured("Twilio REST needs " + " and ".join(missing))
        return cls(
            account_sid=str(settings.twilio_account_sid),
            auth_token=token,
            api_url=settings.twilio_api_url,
            sms_from=settings.sms_from,
            transfer_to=settings.transfer_to,
        )

    # Call control ----------------------------------------------------------------------
    def transfer(
        self,
        call_sid: str,
        target: str | None = None,
        reason: str = "",
        context: dict[str, Any] | None = None,
    ) -> None:
        """Hand ``call_sid`` to a person at ``target`` (default ``PAYBOT_TRANSFER_TO``).

        Raises:
            TwilioNotConfigured: No target given and PAYBOT_TRANSFER_TO is not set.
            InvalidTransferTarget: The target is not one of the three forms.
            TwilioRestError: Twilio refused or did not answer (code 21220: the call ended).
        """
        target = target or self.transfer_to
        if not target:
            raise TwilioNotConfigured("transfers need PAYBOT_TRANSFER_TO")
        twiml = transfer_twiml(target, call_sid=call_sid, reason=reason, context=context or {})
        log.info(
            "transferring call %s to %s (reason %s, context %s)",
            call_sid,
            target_kind(target),
            reason or "-",
            ",".join(sorted(context or {})) or "-",
        )
        self._run("transfer", call_sid, lambda: self._client.calls(call_sid).update(twiml=twiml))

    def start_pay(self, call_sid: str, twiml: str) -> None:
        """Hand ``call_sid`` to ``<Pay>`` (:mod:`voice_bridge.twilio.pay_twiml`): its TwiML
        is replaced, which ends the Media Stream."""
        calls = self._client.calls
        self._run("pay", call_sid, lambda: calls(call_sid).update(twiml=twiml))
        log.info("call %s handed to <Pay>", call_sid)

    def hangup(self, call_sid: str) -> None:
        """End ``call_sid`` now (``Status=completed``)."""
        calls = self._client.calls
        self._run("hangup", call_sid, lambda: calls(call_sid).update(status="completed"))
        log.info("hung up call %s", call_sid)

    def hold_participant(self, conference_sid: str, call_sid: str, held: bool) -> None:
        """Hold (and mute) ``call_sid``'s leg in ``conference_sid``, or take it off hold: a
        held participant neither hears the conference nor is heard (Conference Participants,
        ``Hold`` and ``Muted``)."""
        participant = self._client.conferences(conference_sid).participants(call_sid)
        self._run("hold" if held else "unhold", call_sid,
                  lambda: participant.update(hold=held, muted=held))
        log.info("conference %s: participant %s %s", conference_sid, call_sid,
                 "held" if held else "back")

    # Messages ----------------------------------------------------------------------------
    def send_sms(self, to: str, body: str) -> str:
        """Send ``body`` to ``to`` (E.164) from ``PAYBOT_SMS_FROM``; returns the MessageSid.
        Twilio reports the message's status to ``status_callback`` when one is set.

        Raises:
            TwilioNotConfigured: PAYBOT_SMS_FROM is not set.
            TwilioRestError: Twilio refused (e.g. 400, code 21211: not a valid number) or
                did not answer; see ``retryable`` and ``maybe_done``.
        """
        if not self.sms_from:
            raise TwilioNotConfigured("text messages need PAYBOT_SMS_FROM")
        messages, sender = self._client.messages, self.sms_from
        extra = {"status_callback": self.status_callback} if self.status_callback else {}
        message = self._run(
            "send_sms",
            "new message",
            lambda: messages.create(to=to, from_=sender, body=body, **extra),
        )
        log.info("sms %s accepted by twilio", message.sid)
        return str(message.sid)

    def create_call(
        self, to: str, *, from_: str, url: str, status_callback: str | None = None
    ) -> str:
        """Call ``to`` (E.164) from ``from_``; when it is answered Twilio asks ``url`` (the
        voice webhook) what to do, as for a call coming in. Returns the CallSid.

        Raises:
            TwilioRestError: Twilio refused or did not answer; see ``retryable``.
        """
        calls = self._client.calls
        extra = {"status_callback": status_callback} if status_callback else {}
        call = self._run(
            "call", "new call", lambda: calls.create(to=to, from_=from_, url=url, **extra)
        )
        log.info("call %s created", call.sid)
        return str(call.sid)

    # Async wrappers, for the event loop --------------------------------------------------
    async def transfer_async(
        self,
        call_sid: str,
        target: str | None = None,
        reason: str = "",
        context: dict[str, Any] | None = None,
    ) -> None:
        await asyncio.to_thread(self.transfer, call_sid, target, reason, context)

    async def start_pay_async(self, call_sid: str, twiml: str) -> None:
        await asyncio.to_thread(self.start_pay, call_sid, twiml)

    async def hangup_async(self, call_sid: str) -> None:
        await asyncio.to_thread(self.hangup, call_sid)

    async def send_sms_async(self, to: str, body: str) -> str:
        return await asyncio.to_thread(self.send_sms, to, body)

    def _run(self, operation: str, ref: str, call: Callable[[], T]) -> T:
        """Run one REST call, turning its failures into :class:`TwilioRestError`."""
        try:
            return call()
        except TwilioRestException as exc:
            status = int(exc.status)
            error = TwilioRestError(
                operation,
                status=status,
                code=exc.code if isinstance(exc.code, int) else None,
                retryable=status == 429 or status >= 500,
            )
        except requests.RequestException as exc:
            reached = _may_have_reached_twilio(exc)
            error = TwilioRestError(
                operation, status=None, code=None, retryable=not reached, maybe_done=reached
            )
        log.warning("%s (%s)", error, ref)
        raise error from None  # Twilio's own message can quote the number: keep it out


def _may_have_reached_twilio(exc: requests.RequestException) -> bool:
    """False only when the connection was never made (refused, unreachable, connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not type(reason).__name__.startswith(("NewConnectionError", "ConnectTimeout"))
    return True
