"""Build the ledger from settings (used by the action server, the bridge and the CLI)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from paybot.gateway.factory import make_gateway
from paybot.payments.fees import FeePolicy
from paybot.payments.ledger import Ledger
from paybot.payments.rules import AmountRules
from paybot.payments.style import payment_choice
from paybot.settings import Settings


def make_ledger(settings: Settings, engine: Engine) -> Ledger:
    return Ledger(
        engine,
        make_gateway(settings, engine, payment_choice(settings).gateway),
        rules=AmountRules(
            minimum=settings.min_payment_amount,
            allow_overpayment=settings.allow_overpayment,
            currency=settings.currency,
        ),
        fees=FeePolicy(flat=settings.fee_amount, account=settings.fee_account),
        retries=settings.gateway_retries,
    )
