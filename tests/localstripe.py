"""localstripe, the Stripe emulator, started by the tests themselves.

:class:`LocalStripe` runs ``python -m tests.localstripe --port N`` from the project's venv
and waits for it; the production Stripe gateway (the official ``stripe`` SDK) talks to it
through ``PAYBOT_STRIPE_API_BASE``. Run as a module, this file starts localstripe 1.15.10 with
two changes, both to make it behave the way Stripe's test mode is documented to
(https://docs.stripe.com/testing#declined-payments), not to fake paybot's side:

- Stripe's decline test cards decline when they are charged, each with its own ``code`` and
  ``decline_code`` (localstripe declines them only when attached, always as ``card_declined``
  with no ``decline_code``).
- Nothing is written to ``/tmp/localstripe.pickle`` (it would be shared by every localstripe
  on the machine, and re-pickling the whole store on every request slows each one down).

What it cannot do is said in the gateway (``paybot/gateway/stripe_gateway.py``): no ACH, no
idempotency-key replay (paybot's own intent records make retries safe without it), Visa as
the brand of every card, 16-digit numbers and 3-digit security codes only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "sk_test_paybot_localstripe"

# Stripe's documented decline test cards: number -> (code, decline_code).
DECLINES: dict[str, tuple[str, str | None]] = {
    "4000000000000002": ("card_declined", "generic_decline"),
    "4000000000009995": ("card_declined", "insufficient_funds"),
    "4000000000009987": ("card_declined", "lost_card"),
    "4000000000009979": ("card_declined", "stolen_card"),
    "4000000000006975": ("card_declined", "card_velocity_exceeded"),
    "4000000000000069": ("expired_card", "expired_card"),
    "4000000000000127": ("incorrect_cvc", "incorrect_cvc"),
    "4000000000000119": ("processing_error", "processing_error"),
    "4000000000000341": ("card_declined", "generic_decline"),  # attaches, then declines
}


class LocalStripe:
    """A localstripe process on a free port (``url``), stopped by :meth:`stop`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.localstripe", "--port", str(self.port),
             "--from-scratch"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("localstripe exited at start")
            try:
                requests.get(f"{self.url}/v1/customers", auth=(API_KEY, ""), timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("localstripe did not start within 30 s")

    def env(self) -> dict[str, str]:
        """The settings that point paybot's Stripe gateway here."""
        return {
            "PAYBOT_GATEWAY": "stripe",
            "STRIPE_API_KEY": API_KEY,
            "PAYBOT_STRIPE_API_BASE": self.url,
        }

    def get(self, path: str) -> dict:
        """A GET on the emulator's API (for assertions)."""
        response = requests.get(f"{self.url}{path}", auth=(API_KEY, ""), timeout=10)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


def _teach_stripe_declines() -> None:
    """Patch localstripe as the module docstring says (in the emulator's process only)."""
    from localstripe import resources
    from localstripe.errors import UserError

    resources.Store.dump_to_disk = lambda self: None
    method_cls, charge_cls, intent_cls = (
        resources.PaymentMethod, resources.Charge, resources.PaymentIntent,
    )

    def number(method) -> str | None:
        return getattr(method, "_card_number", None) if method.type == "card" else None

    charging = method_cls._charging_is_declined
    method_cls._charging_is_declined = lambda self: number(self) in DECLINES or charging(self)

    def set_auth_failure(self) -> None:
        card = number(method_cls._api_retrieve(self.payment_method))
        self.failure_code, self._decline_code = DECLINES.get(card, ("card_declined", None))
        self.status = "failed"
        self.failure_message = "Your card was declined."

    def raise_failure(self) -> None:
        body = {"code": self.failure_code, "charge": self.id}
        if getattr(self, "_decline_code", None):
            body["decline_code"] = self._decline_code
        raise UserError(402, self.failure_message, body)

    charge_cls._set_auth_failure = set_auth_failure
    charge_cls._raise_failure = raise_failure
    last_error = intent_cls.last_payment_error.fget

    def last_payment_error(self):
        error = last_error(self)
        decline = getattr(self.latest_charge, "_decline_code", None)
        if error is not None and decline:
            error["decline_code"] = decline
        return error

    intent_cls.last_payment_error = property(last_payment_error)
    attach = method_cls._api_attach.__func__

    def attach_declining(cls, id, customer=None, **kwargs):
        card = number(cls._api_retrieve(id)) if isinstance(id, str) else None
        if card in DECLINES and card != "4000000000000341":
            code, decline = DECLINES[card]
            raise UserError(402, "Your card was declined.", {"code": code, "decline_code": decline})
        return attach(cls, id, customer=customer, **kwargs)

    method_cls._api_attach = classmethod(attach_declining)
    # The routes were listed with the original bound method; the server registers them
    # when it is imported (after this).
    resources.extra_apis[:] = [
        (verb, url, method_cls._api_attach if url.endswith("/attach") else func)
        for verb, url, func in resources.extra_apis
    ]


if __name__ == "__main__":
    _teach_stripe_declines()
    from localstripe import server

    server.start()
