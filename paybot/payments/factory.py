"""Build the ledger from settings (used by the action server, the bridge and the CLI)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from paybot.gateway.factory import make_gateway
from paybot.payments.fees import FeePolicy
from paybot.payments.ledger import Ledger
from paybot.payments.profile import load_profile
from paybot.payments.rules import AmountRules
from paybot.payments.style import payment_choice
from paybot.settings import Settings


def make_ledger(settings: Settings, engine: Engine) -> Ledger:
    """The ledger with the amounts, currency and fee of the payment profile (blocking: the
    profile is read on first use)."""
    profile = load_profile(settings)
    return Ledger(
        engine,
        make_gateway(settings, engine, payment_choice(settings).gateway),
        rules=amount_rules(settings),
        fees=FeePolicy(flat=profile.convenience_fee, account=settings.fee_account),
        retries=settings.gateway_retries,
    )


def amount_rules(settings: Settings) -> AmountRules:
    """The ledger's amount rules: the payment profile's range and currency (blocking: the
    profile is read on first use)."""
    profile = load_profile(settings)
    return AmountRules(
        minimum=profile.minimum_amount,
        allow_overpayment=settings.allow_overpayment,
        currency=profile.currency,
        maximum=profile.maximum_amount,
    )
