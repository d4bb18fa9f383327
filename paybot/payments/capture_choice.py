"""Who takes a caller's new card or bank account: paybot's keypad capture or Twilio's ``<Pay>``.

``keypad`` (the default): the bridge's secure capture collects the digits by DTMF and charges
them through paybot's gateway. ``twilio_pay``: the call is handed to Twilio's ``<Pay>`` verb,
which collects the digits and charges them through a Pay Connector configured in the Twilio
console, so card data never reaches the merchant's servers (docs/payments.md).

:func:`capture_choice` is the one place the choice is read (the payment profile's ``capture``
and ``pay_connector``, whose defaults are ``PAYBOT_CAPTURE`` and ``PAYBOT_PAY_CONNECTOR``);
everything else asks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from paybot.settings import Settings

CaptureMode = Literal["keypad", "twilio_pay"]


@dataclass(frozen=True)
class CaptureChoice:
    """How new payment details are captured, and through which Pay Connector for ``<Pay>``."""

    mode: CaptureMode
    pay_connector: str

    @property
    def twilio_pay(self) -> bool:
        return self.mode == "twilio_pay"


def capture_choice(settings: Settings) -> CaptureChoice:
    """The capture mode and Pay Connector of the payment profile (blocking on first use)."""
    from paybot.payments.profile import load_profile

    profile = load_profile(settings)
    return CaptureChoice(mode=profile.capture, pay_connector=profile.pay_connector)
