"""The Stripe gateway, through Stripe's official Python SDK (``stripe``).

- A keyed card becomes a PaymentMethod; a payment is a PaymentIntent marked MOTO
  (``payment_method_options[card][moto]=true``: the card was given over the phone, so no
  3-D Secure), created and then confirmed. Cards are validated here first, so bad data never
  leaves paybot. Sending raw card numbers to Stripe needs Stripe's approval on the account.
- Exactly once: the PaymentIntent made under a ledger idempotency key is recorded
  (:mod:`paybot.gateway.stripe_refs`) before it is confirmed, and Stripe gets idempotency keys
  derived from the ledger's. A retry with the same key resumes that intent: it confirms it if
  it never was, and otherwise returns its result; :meth:`find_charge` reads it (and cancels one
  never confirmed, so a late confirmation cannot land after paybot gave up on it).
- Declines are results with paybot's reason codes (:mod:`paybot.gateway.stripe_errors`);
  timeouts, lost connections, 5xx and 409 are :class:`GatewayTimeout`, retried by the ledger.
- Tokens: a one-time token is a PaymentMethod attached to nobody; a reusable one is attached to
  the account's Stripe Customer (``cus_.../pm_...``). Deleting detaches a reusable one; either
  way the token is refused here from then on.
- Bank accounts (ACH) are refused: localstripe, the emulator the tests run against, has no
  ``us_bank_account`` PaymentMethods, so that path could not be tested and is not offered.

Blocking calls: the ledger runs them in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import stripe
from sqlalchemy.engine import Engine

from paybot.gateway.base import (
    CardDeclined,
    ChargeResult,
    Gateway,
    GatewayError,
    GatewayTimeout,
    IdempotencyConflict,
    TokenInfo,
    UnknownToken,
)
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.cards import normalize_expiry, validate_card
from paybot.gateway.sandbox_requests import check_key, check_money, request_fingerprint
from paybot.gateway.stripe_errors import card_error_reason, decline_reason, translate
from paybot.gateway.stripe_refs import CUSTOMER, DELETED, INTENT, StripeRefs
from paybot.money import quantum

log = logging.getLogger(__name__)
EXPAND = ["payment_method"]


class BankAccountsNotSupported(GatewayError):
    """This gateway takes cards only."""

    code = "bank_not_supported"


class StripeGateway(Gateway):
    """Stripe PaymentMethods and PaymentIntents (MOTO), with paybot's exactly-once rules.

    Args:
        engine: the paybot database (the gateway's records, ``stripe_refs``).
        api_key: the secret key (``STRIPE_API_KEY``).
        api_base: another API address (``PAYBOT_STRIPE_API_BASE``; the tests' localstripe).
        timeout_s: per request; past it the outcome is unknown (a :class:`GatewayTimeout`).
    """

    name = "stripe"

    def __init__(
        self,
        engine: Engine,
        *,
        api_key: str,
        api_base: str | None = None,
        timeout_s: float = 10.0,
        today: Callable[[], date] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("the Stripe gateway needs STRIPE_API_KEY")
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            max_network_retries=0,  # the ledger retries, with its own key
            http_client=stripe.RequestsClient(timeout=timeout_s),
        )
        self._refs = StripeRefs(engine)
        self._today = today or (lambda: datetime.now(timezone.utc).date())

    def _call(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API request; Stripe's errors other than card errors become gateway errors."""
        try:
            return operation(*args, **kwargs)
        except stripe.CardError:
            raise
        except stripe.StripeError as exc:
            log.warning("stripe: %s (%s)", type(exc).__name__, exc.code or exc.http_status)
            raise translate(exc) from None

    # -- tokens --------------------------------------------------------------------------

    def _payment_method(self, card: CardData) -> Any:
        details: dict[str, Any] = {
            "number": card.number,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "cvc": card.cvc or "",
        }
        params: dict[str, Any] = {"type": "card", "card": details}
        if card.postal_code:
            params["billing_details"] = {"address": {"postal_code": card.postal_code}}
        return self._call(self._client.v1.payment_methods.create, params=params)

    def tokenize_card(
        self, card: CardData, *, reusable: bool = True, customer: str | None = None
    ) -> TokenInfo:
        """A PaymentMethod for ``card``; a reusable one attached to ``customer``'s Customer.

        Raises:
            InvalidPaymentData: the card fails validation (nothing is sent).
            CardDeclined: the issuer refused it when it was attached.
        """
        brand = validate_card(card, today=self._today())
        expiry = normalize_expiry(card.exp_month, card.exp_year)
        method = self._payment_method(card)
        token = method.id
        if reusable:
            owner = self._customer(customer)
            try:
                attach = self._client.v1.payment_methods.attach
                self._call(attach, method.id, params={"customer": owner})
            except stripe.CardError as declined:
                raise CardDeclined(card_error_reason(declined)) from None
            token = f"{owner}/{method.id}"
        log.info("stripe tokenized %s (%s)", method.id, "reusable" if reusable else "one-time")
        return TokenInfo(
            token=token,
            kind="card",
            brand=brand,
            last4=card.last4,
            exp_month=expiry.month,
            exp_year=expiry.year,
            reusable=reusable,
        )

    def tokenize_bank_account(
        self, account: BankAccount, *, reusable: bool = True, customer: str | None = None
    ) -> TokenInfo:
        """Refused: see the module (no ACH on this gateway yet)."""
        raise BankAccountsNotSupported("the Stripe gateway takes cards only")

    def _customer(self, account: str | None) -> str:
        """The Stripe Customer of a paybot account, made once."""
        if account is not None:
            known = self._refs.get(CUSTOMER, account)
            if known is not None and known.stripe_id:
                return known.stripe_id
        made = self._call(
            self._client.v1.customers.create,
            params={"metadata": {"paybot_account": account or ""}},
        )
        if account is None:
            return made.id
        return self._refs.claim(CUSTOMER, account, stripe_id=made.id).stripe_id or made.id

    def delete_token(self, token: str) -> None:
        """Detach a reusable token from its Customer; refuse the token from now on."""
        owner, method = _split(token)
        if owner:
            try:
                self._call(self._client.v1.payment_methods.detach, method)
            except UnknownToken:
                pass
            except GatewayError as exc:
                if isinstance(exc, GatewayTimeout):
                    raise
                log.info("stripe: %s was not attached any more", method)
        self._refs.claim(DELETED, token)
        log.info("stripe deleted token %s", method)

    # -- charges -------------------------------------------------------------------------

    def charge_token(
        self,
        token: str,
        amount: Decimal,
        currency: str,
        *,
        idempotency_key: str,
        description: str | None = None,
    ) -> ChargeResult:
        """Charge a token once per key (a retry resumes the same PaymentIntent).

        Raises:
            UnknownToken: the token was deleted or Stripe does not know it.
            IdempotencyConflict: the key was used for another request.
            GatewayTimeout: no answer; retry with the same key.
        """
        amount, currency = check_money(amount, currency)
        if self._refs.get(DELETED, token) is not None:
            raise UnknownToken("payment token deleted")
        owner, method = _split(token)
        fingerprint = request_fingerprint("charge_token", token, amount, currency)
        return self._pay(
            check_key(idempotency_key), fingerprint, amount, currency, description,
            lambda: (method, owner), None,
        )

    def charge_card(
        self,
        card: CardData,
        amount: Decimal,
        currency: str,
        *,
        idempotency_key: str,
        description: str | None = None,
    ) -> ChargeResult:
        """Charge keyed card data once per key; the PaymentMethod is attached to nobody and
        not kept by paybot.

        Raises:
            InvalidPaymentData: the card fails validation (nothing is sent).
            IdempotencyConflict, GatewayTimeout: as :meth:`charge_token`.
        """
        amount, currency = check_money(amount, currency)
        brand = validate_card(card, today=self._today())
        expiry = normalize_expiry(card.exp_month, card.exp_year)
        fingerprint = request_fingerprint(
            "charge_card", brand, card.last4, expiry.month, expiry.year, amount, currency
        )
        return self._pay(
            check_key(idempotency_key), fingerprint, amount, currency, description,
            lambda: (self._payment_method(card).id, None), brand,
        )

    def _pay(
        self,
        key: str,
        fingerprint: str,
        amount: Decimal,
        currency: str,
        description: str | None,
        method: Callable[[], tuple[str, str | None]],
        brand: str | None,
    ) -> ChargeResult:
        record = self._refs.claim(INTENT, key, fingerprint=fingerprint)
        if record.fingerprint != fingerprint:
            raise IdempotencyConflict("idempotency key used for another request")
        intents = self._client.v1.payment_intents
        replayed = record.stripe_id is not None
        if record.stripe_id is None:
            payment_method, owner = method()
            params: dict[str, Any] = {
                "amount": int(amount / quantum(currency)),
                "currency": currency.lower(),
                "payment_method": payment_method,
                "payment_method_types": ["card"],
                "payment_method_options": {"card": {"moto": True}},
                "metadata": {"paybot_key": key, "description": (description or "")[:200]},
                "expand": EXPAND,
            }
            if owner:
                params["customer"] = owner
            intent = self._call(intents.create, params=params, options={"idempotency_key": key})
            self._refs.set_id(INTENT, key, intent.id)
            kept = self._refs.get(INTENT, key)
            intent_id = kept.stripe_id if kept is not None and kept.stripe_id else intent.id
            if intent_id != intent.id:  # a concurrent retry recorded its intent first
                intent = self._call(intents.retrieve, intent_id, params={"expand": EXPAND})
        else:
            intent_id = record.stripe_id
            intent = self._call(intents.retrieve, intent_id, params={"expand": EXPAND})
        if intent.status == "requires_confirmation":
            replayed = False
            try:
                intent = self._call(
                    intents.confirm,
                    intent_id,
                    params={"expand": EXPAND},
                    options={"idempotency_key": f"{key}-confirm"},
                )
            except stripe.CardError as declined:
                intent = self._call(intents.retrieve, intent_id, params={"expand": EXPAND})
                return self._result(intent, brand, replayed, card_error_reason(declined))
        if intent.status == "canceled":
            raise GatewayError("stripe: this payment was cancelled before it was confirmed")
        return self._result(intent, brand, replayed)

    def _result(
        self, intent: Any, brand: str | None, replayed: bool, reason: str | None = None
    ) -> ChargeResult:
        status = intent.status
        if status in ("processing", "requires_capture"):
            raise GatewayTimeout(f"stripe: payment still {status}")
        if status == "requires_action":  # MOTO is exempt; if the issuer insists, stop here
            self._call(self._client.v1.payment_intents.cancel, intent.id)
            reason = "generic_decline"
        elif status != "succeeded" and reason is None:
            error = intent.last_payment_error
            reason = decline_reason(
                getattr(error, "code", None), getattr(error, "decline_code", None)
            )
        card = getattr(intent.payment_method, "card", None)
        currency = intent.currency.upper()
        return ChargeResult(
            approved=status == "succeeded",
            transaction_id=intent.id,
            amount=Decimal(intent.amount) * quantum(currency),
            currency=currency,
            brand=brand or (card.brand if card is not None else ""),
            last4=card.last4 if card is not None else "",
            decline_code=None if status == "succeeded" else reason,
            replayed=replayed,
        )

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        """The result of the PaymentIntent made under the key; None if none was confirmed
        (one never confirmed is cancelled first, so it never will be)."""
        record = self._refs.get(INTENT, idempotency_key)
        if record is None or record.stripe_id is None:
            return None
        intents = self._client.v1.payment_intents
        intent = self._call(intents.retrieve, record.stripe_id, params={"expand": EXPAND})
        if intent.status == "requires_confirmation":
            try:
                intent = self._call(intents.cancel, intent.id, params={"expand": EXPAND})
            except GatewayError:
                intent = self._call(intents.retrieve, intent.id, params={"expand": EXPAND})
        if intent.status in ("canceled", "requires_confirmation"):
            return None
        return self._result(intent, None, replayed=True)

    # -- refunds -------------------------------------------------------------------------

    def refund(
        self, transaction_id: str, amount: Decimal | None = None, *, idempotency_key: str
    ) -> ChargeResult:
        """Refund all (``amount`` None) or part of a succeeded PaymentIntent."""
        intent = self._call(
            self._client.v1.payment_intents.retrieve, transaction_id, params={"expand": EXPAND}
        )
        currency = intent.currency.upper()
        params: dict[str, Any] = {"payment_intent": transaction_id}
        if amount is not None:
            amount, _ = check_money(amount, currency)
            params["amount"] = int(amount / quantum(currency))
        refund = self._call(
            self._client.v1.refunds.create,
            params=params,
            options={"idempotency_key": check_key(idempotency_key)},
        )
        card = getattr(intent.payment_method, "card", None)
        return ChargeResult(
            approved=refund.status == "succeeded",
            transaction_id=refund.id,
            amount=Decimal(refund.amount) * quantum(currency),
            currency=currency,
            brand=card.brand if card is not None else "",
            last4=card.last4 if card is not None else "",
        )


def _split(token: str) -> tuple[str | None, str]:
    """``(customer, payment method)`` of a token: ``cus_.../pm_...`` or ``pm_...``."""
    owner, _, method = token.rpartition("/")
    return owner or None, method
