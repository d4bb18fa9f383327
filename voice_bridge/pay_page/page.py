"""The pay page's HTML: the form, its field errors, the confirmation and the refusals.

Plain HTML without scripts: every field has a label, autocomplete and ``inputmode`` hints, and
an error tied to it with ``aria-describedby`` (and ``aria-invalid``); the summary of errors is
an alert. It fits a phone (viewport meta, one column). Values are escaped; typed card or bank
digits are never written back into the page (only the account type is kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from paybot.money import format_amount
from paybot.paylinks import LinkView
from paybot.payments.confirmation import grouped

# What each reason code (paybot.gateway.cards, the capture's own) asks the payer to fix.
MESSAGES: dict[str, str] = {
    "invalid-card-number": "Enter the card number as it appears on your card.",
    "invalid-card-type": "We can't take this type of card. Please use another card.",
    "invalid-date": "Enter the expiry date as MM/YY.",
    "expired-card": "This card has expired. Please use another card.",
    "invalid-security-code": "Enter the security code: 3 digits on the back (4 on the front "
    "for American Express).",
    "invalid-postal-code": "Enter the 5-digit billing ZIP code.",
    "invalid-bank-routing-number": "Enter the 9-digit routing number.",
    "invalid-bank-account-number": "Enter the account number (4 to 17 digits).",
    "invalid-bank-account-type": "Choose checking or savings.",
    "invalid-method": "Choose to pay by card or from a bank account.",
}
DEFAULT_MESSAGE = "Please check this field."


def _text(value: str) -> str:
    """``value`` escaped for an element's content (apostrophes kept as they are)."""
    return escape(value, quote=False)


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    hint: str
    autocomplete: str


CARD = (
    Field("card_number", "Card number", "The long number on the front of your card.",
          "cc-number"),
    Field("expiry", "Expiry date (MM/YY)", "For example 04/29.", "cc-exp"),
    Field("cvc", "Security code", "3 digits on the back, or 4 on the front for Amex.", "cc-csc"),
    Field("zip", "Billing ZIP code", "The ZIP code of the card's billing address.",
          "postal-code"),
)  # fmt: skip
BANK = (
    Field("routing", "Routing number", "9 digits, at the bottom left of a check.", "off"),
    Field("bank_account", "Account number", "4 to 17 digits.", "off"),
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;padding:1rem;line-height:1.5;color:#111;
background:#fff}main{max-width:32rem;margin:0 auto}h1{font-size:1.5rem}
label{display:block;font-weight:600;margin-top:1rem}
input,select,button{font-size:1.125rem;width:100%;box-sizing:border-box;padding:.6rem;
margin-top:.25rem;border:2px solid #555;border-radius:.3rem}
input[readonly]{background:#eee}button{background:#0b5394;color:#fff;border:0;
margin-top:1.5rem;cursor:pointer}button:focus,input:focus,select:focus{outline:3px solid #f90}
.hint{color:#444;margin:.2rem 0 0;font-size:.95rem}.error{color:#b00020;font-weight:600;
margin:.2rem 0 0}[aria-invalid=true]{border-color:#b00020}
.alert{border:2px solid #b00020;padding:.5rem 1rem;margin:1rem 0}
details{margin-top:2rem}summary{cursor:pointer;font-weight:600}
"""


def document(title: str, body: str, style_nonce: str) -> str:
    """A whole page: ``body`` (already HTML) under ``title``."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title>"
        f'<style nonce="{escape(style_nonce)}">{_STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>\n"
    )


def form_page(
    link: LinkView,
    *,
    business: str,
    form_nonce: str,
    style_nonce: str,
    fee: Decimal = Decimal("0.00"),
    errors: Mapping[str, str] | None = None,
    method: str = "card",
    account_type: str = "checking",
) -> str:
    """The pay form for ``link``: the amount (fixed) and a card form, with the bank form
    behind a disclosure (open when the payer chose it)."""
    errors = errors or {}
    amount = format_amount(link.amount, link.currency)
    charge = (
        f" A {format_amount(fee, link.currency)} convenience fee applies: the total charged "
        f"is {format_amount(link.amount + fee, link.currency)}."
        if fee
        else ""
    )
    intro = (
        f"<h1>Pay {escape(business)}</h1>"
        f'<p id="summary">Amount: <strong>{escape(amount)}</strong> for the account ending '
        f"{escape(link.account_last4)}.{escape(charge)} This secure link works once and "
        f"expires at {link.expires_at:%H:%M} UTC.</p>"
    )
    alert = ""
    if errors:
        items = "".join(
            f'<li><a href="#{escape(name)}">{_text(MESSAGES.get(code, DEFAULT_MESSAGE))}</a></li>'
            for name, code in errors.items()
        )
        alert = (
            '<div class="alert" role="alert" id="form-errors"><p><strong>Please correct '
            f"the following:</strong></p><ul>{items}</ul></div>"
        )
    card_errors = errors if method == "card" else {}
    bank_errors = errors if method == "bank" else {}
    card = _form("card", link, form_nonce, CARD, card_errors, f"Pay {amount} by card")
    bank_type = _account_type(account_type, bank_errors.get("account_type"))
    bank = _form(
        "bank", link, form_nonce, BANK, bank_errors, f"Pay {amount} from my bank account",
        extra=bank_type,
    )  # fmt: skip
    opened = " open" if method == "bank" else ""
    body = (
        f"{intro}{alert}<h2>Pay by card</h2>{card}"
        f"<details{opened}><summary>Pay from a bank account instead</summary>{bank}</details>"
    )
    return document(f"Pay {amount} - {business}", body, style_nonce)


def _form(
    method: str,
    link: LinkView,
    form_nonce: str,
    fields: tuple[Field, ...],
    errors: Mapping[str, str],
    button: str,
    extra: str = "",
) -> str:
    amount_id = f"{method}-amount"
    parts = [
        f'<form method="post" novalidate aria-label="{escape(button)}">',
        f'<input type="hidden" name="nonce" value="{escape(form_nonce)}">',
        f'<input type="hidden" name="method" value="{method}">',
        f'<label for="{amount_id}">Amount ({escape(link.currency)})</label>',
        f'<input id="{amount_id}" name="amount" value="{link.amount:.2f}" readonly '
        f'aria-readonly="true" aria-describedby="{amount_id}-hint">',
        f'<p class="hint" id="{amount_id}-hint">The amount is set by this link.</p>',
    ]
    parts += [_input(field, errors.get(field.name)) for field in fields]
    parts += [extra, f'<button type="submit">{escape(button)}</button></form>']
    return "".join(parts)


def _input(field: Field, error: str | None) -> str:
    described = f"{field.name}-hint" + (f" {field.name}-error" if error else "")
    invalid = ' aria-invalid="true"' if error else ""
    message = (
        f'<p class="error" id="{field.name}-error">{_text(MESSAGES.get(error, DEFAULT_MESSAGE))}'
        "</p>"
        if error
        else ""
    )
    return (
        f'<label for="{field.name}">{escape(field.label)}</label>'
        f'<input id="{field.name}" name="{field.name}" type="text" inputmode="numeric" '
        f'autocomplete="{field.autocomplete}" spellcheck="false" required '
        f'aria-describedby="{described}"{invalid}>'
        f'<p class="hint" id="{field.name}-hint">{escape(field.hint)}</p>{message}'
    )


def _account_type(chosen: str, error: str | None) -> str:
    options = "".join(
        f'<option value="{kind}"{" selected" if kind == chosen else ""}>{kind.title()}</option>'
        for kind in ("checking", "savings")
    )
    described = ' aria-describedby="account_type-error" aria-invalid="true"' if error else ""
    message = (
        f'<p class="error" id="account_type-error">{_text(MESSAGES[error])}</p>' if error else ""
    )
    return (
        f'<label for="account_type">Account type</label>'
        f'<select id="account_type" name="account_type"{described}>{options}</select>{message}'
    )


def paid_page(
    *, business: str, total: str, confirmation: str, texted: bool, style_nonce: str
) -> str:
    """The confirmation after a successful payment."""
    sent = " We've also sent it to you by text message." if texted else ""
    body = (
        f'<h1>Thank you</h1><p role="status" id="confirmation">Your payment of '
        f"<strong>{escape(total)}</strong> to {escape(business)} was successful. Your "
        f"confirmation number is <strong>{escape(grouped(confirmation, '-'))}</strong>."
        f"{_text(sent)}</p><p>You can close this page.</p>"
    )
    return document("Payment received", body, style_nonce)


def message_page(title: str, message: str, style_nonce: str) -> str:
    """A page with one message: refusals, a decline, a payment still being confirmed."""
    body = f'<h1>{_text(title)}</h1><p role="alert" id="message">{_text(message)}</p>'
    return document(title, body, style_nonce)
