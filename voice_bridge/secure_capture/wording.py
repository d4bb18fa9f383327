"""What the caller hears during a secure capture: prompt names to speech text.

The capture state machine (:mod:`voice_bridge.secure_capture.session`) names its prompts and
passes only safe parameters (field, attempt, brand, last four, reason code, and for the
read-back of one field its expiry or ZIP). The words are the bot's: ``bot/capture.yml``, in the
domain's response format, where conversation designers edit them; a prompt's parameters stand
for the slots its variants' conditions name (``field``, ``brand``, ``reason``).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from paybot.dialog.responses import Responses, ResponsesError, Variant, candidates, parse_responses
from paybot.gateway.cards import BRANDS
from voice_bridge.secure_capture.fields import CONFIRM, RULES, Prompt

CAPTURE_FILE = Path(__file__).resolve().parents[2] / "bot" / "capture.yml"
BRAND_NAMES = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "discover": "Discover",
    "jcb": "JCB",
    "diners": "Diners Club",
    "unionpay": "UnionPay",
    "maestro": "Maestro",
}
FIELD_NAMES = {
    "card_number": "card number",
    "expiry": "expiry date",
    "cvc": "security code",
    "zip": "ZIP code",
    "routing": "routing number",
    "bank_account": "account number",
    CONFIRM: "choice",
}
# Prompt names that are not a field's question, and the response each one says.
RESPONSE_OF = {
    "confirm_field": "capture_confirm_field",
    "confirm_card": "capture_confirm_card",
    "confirm_bank": "capture_confirm_bank",
    "invalid_confirm": "capture_invalid_choice",
    "brand_not_accepted": "capture_brand_not_accepted",
    "timeout": "capture_timeout",
    "processing": "capture_processing",
    "cancelled": "capture_cancelled",
    "failed": "capture_failed",
    "save_offer": "capture_save_offer",
}
DEFAULT_ACCEPTED = ("visa", "mastercard", "amex", "discover")


@functools.lru_cache(maxsize=1)
def load_wording(path: Path = CAPTURE_FILE) -> Responses:
    """The capture's responses (read once per process; blocking)."""
    return parse_responses(path.read_text(encoding="utf-8"))


class CaptureWording:
    """The words of one capture: the accepted brands it names when refusing a card.

    Args:
        accepted: the brands the merchant takes, in the order to say them.
        responses: the responses to use (default: ``bot/capture.yml``).
        choose: picks one of several equally fitting variants (``random.choice``).
    """

    def __init__(
        self,
        accepted: Iterable[str] = DEFAULT_ACCEPTED,
        responses: Responses | None = None,
        choose: Callable[[Sequence[Variant]], Variant] = random.choice,
    ) -> None:
        self._accepted = tuple(accepted)
        self._responses = responses if responses is not None else load_wording()
        self._choose = choose

    def text(self, prompt: Prompt) -> str:
        """The sentence(s) to speak for ``prompt``; never digits beyond a last four, an
        expiry or a ZIP being read back."""
        name = prompt.name
        if name in RULES:  # a field's question, "let's try again" first on a later attempt
            again = int(prompt.params.get("attempt", 1) or 1) > 1
            ask = self.say("capture_ask", {**prompt.params, "field": name})
            return f"{self.say('capture_try_again', {})} {ask}" if again else ask
        if name in RESPONSE_OF:
            return self.say(RESPONSE_OF[name], prompt.params)
        if name.startswith("invalid_"):
            return self.say("capture_invalid", prompt.params)
        return ""

    def say(self, response: str, params: dict[str, Any]) -> str:
        """Response ``response`` chosen and filled for ``params``."""
        variants = self._responses.get(response)
        if variants is None:
            raise ResponsesError(f"no response {response!r} in {CAPTURE_FILE.name}")
        variant = self._choose(candidates(variants, params))
        return variant.text.format_map(self._values(params))

    def _values(self, params: dict[str, Any]) -> dict[str, str]:
        brand = str(params.get("brand") or "")
        spec = BRANDS.get(brand)
        return {
            "field_name": FIELD_NAMES.get(str(params.get("field")), "number"),
            "brand_name": BRAND_NAMES.get(brand, "card"),
            "last4": _spaced(params.get("last4")),
            "expiry": _pairs(params.get("expiry")),
            "postal_code": _spaced(params.get("postal_code")),
            "code_digits": "four" if spec is not None and spec.cvc_length == 4 else "three",
            "accepted": _listed([BRAND_NAMES.get(b, b) for b in self._accepted]),
        }


def prompt_text(prompt: Prompt, accepted: Iterable[str] = DEFAULT_ACCEPTED) -> str:
    """The words for ``prompt`` with the default choice of variants."""
    return CaptureWording(accepted).text(prompt)


def _spaced(digits: object) -> str:
    return " ".join(str(digits or ""))


def _pairs(expiry: object) -> str:
    text = str(expiry or "")
    return f"{text[:2]} {text[2:]}".strip()


def _listed(names: list[str]) -> str:
    if len(names) < 2:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"
