"""The merchant's payment choice: which gateway takes the money, and in which style.

- ``one_step``: the secure capture charges the keyed card (a bank account: a one-time token,
  charged and deleted at once); nothing is kept.
- ``two_step``: the secure capture only tokenizes (after the payment row and the rules
  check); the action server charges the token. A one-time token is deleted after use, whatever
  the outcome; a reusable one (the caller agreed by keypad) is saved to the account once.

:func:`payment_choice` is the one place that reads them: from the merchant payment profile
(:mod:`paybot.payments.profile`, keys ``gateway`` and ``payment_style``), whose defaults are
``PAYBOT_GATEWAY`` and ``PAYBOT_PAYMENT_STYLE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from paybot.settings import Settings

Style = Literal["one_step", "two_step"]


@dataclass(frozen=True)
class PaymentChoice:
    gateway: str  # "sandbox" or "stripe"
    style: Style

    @property
    def capture_mode(self) -> Literal["charge", "tokenize"]:
        """What the secure capture does with the keyed details."""
        return "tokenize" if self.style == "two_step" else "charge"


def payment_choice(settings: Settings) -> PaymentChoice:
    """The gateway and the payment style in force (the profile's; blocking on first use)."""
    from paybot.payments.profile import load_profile

    profile = load_profile(settings)
    return PaymentChoice(gateway=profile.gateway, style=profile.payment_style)
