"""Second line of defence: mask card numbers, long digit runs and secrets in log output.

The secure capture never hands card data to anything that logs; this exists for the mistakes.
:func:`redact` masks, down to the last four digits:

* every card number: 13-19 digits passing Luhn, typed with spaces, tabs, dashes, dots,
  commas, slashes or underscores between groups, or spoken as digit words ("four two ...");
* every other run of 9 or more digits without separators (bank account and routing numbers);

and replaces with ``[secret]`` every value registered with :func:`register_secret`, the
value of a ``token=``/``secret=``/``password=`` parameter (Rasa's ``?token=`` in a URL) and the
token of a secure pay link in a ``/pay/...`` path.

:func:`install` puts it on every log record a process makes, whichever handler writes it
(``Logger.makeRecord`` redacts the message, exception text and extra fields);
``paybot up`` also redacts each line of its children's output before printing it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from paybot.parsing.card_numbers import find_card_numbers, run_digits
from paybot.spoken.numbers import NUMBER_WORDS, REPEATS, ZERO_WORDS

SECRET = "[secret]"  # noqa: S105 - the mask, not a secret
# Environment variables whose values are secrets in every process (the launchers register them).
SECRET_ENV = ("PAYBOT_RASA_TOKEN", "PAYBOT_ACTION_SECRET", "TWILIO_AUTH_TOKEN",
              "PAYBOT_CONSOLE_SECRET", "PAYBOT_CRM_TOKEN", "PAYBOT_TRACKER_STORE_PASSWORD",
              "PAYBOT_LOCK_STORE_PASSWORD", "PAYBOT_PAY_LINK_SECRET",
              "PAYBOT_METRICS_TOKEN")
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words

# Words that may start a spoken card number (one letter is too common to be worth a look).
_RUN_WORDS = tuple(w for w in sorted({*NUMBER_WORDS, *ZERO_WORDS, *REPEATS}) if len(w) > 1)
_LONG_DIGITS = re.compile(r"(?<!\d)\d{9,}(?!\d)")
# A date and time is never a card number, whatever its digits add up to.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?")
_SECRET_PARAM = re.compile(
    r"((?:token|auth_token|access_token|secret|password|api_key)=)[^&\s\"'#]+", re.IGNORECASE
)

# A secure pay link's token in a URL path (paybot.paylinks.tokens): the access log has it.
_PAY_LINK_PATH = re.compile(r"(/pay/)[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{32}")

_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its URL-encoded form) wherever it appears from now on."""
    global _secret_pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        _secrets.update({value, quote(value, safe="")})
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_secrets_from_env(names: Iterable[str] = SECRET_ENV) -> None:
    """Register the values of the secret environment variables this process was given."""
    for name in names:
        register_secret(os.environ.get(name))


def redact(text: str) -> str:
    """``text`` with card numbers, long digit runs and secrets masked (see the module)."""
    if _secret_pattern is not None:
        text = _secret_pattern.sub(SECRET, text)
    text = _SECRET_PARAM.sub(lambda m: m.group(1) + SECRET, text)
    text = _PAY_LINK_PATH.sub(lambda m: m.group(1) + SECRET, text)
    if not any(ch.isdigit() for ch in text) and not _has_digit_word(text):
        return text
    pieces, last = [], 0
    for stamp in _TIMESTAMP.finditer(text):
        pieces += [_redact_digits(text[last:stamp.start()]), stamp.group(0)]
        last = stamp.end()
    pieces.append(_redact_digits(text[last:]))
    return "".join(pieces)


def _has_digit_word(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _RUN_WORDS)


def _redact_digits(text: str) -> str:
    out, last = [], 0
    for run in find_card_numbers(text):  # the one detector the channels use too
        out += [text[last:run.start], _mask(text[run.start:run.end])]
        last = run.end
    out.append(text[last:])
    return _LONG_DIGITS.sub(lambda m: _mask(m.group(0)), "".join(out))


def _mask(found: str) -> str:
    return f"[redacted …{run_digits(found)[-4:]}]"


# --- logging ------------------------------------------------------------------------------

_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime"}


def _redact_record(record: logging.LogRecord) -> None:
    """Render the record's message once, redacted, and drop the args; redact its
    exception and stack text and any string an extra field carries."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not lose the record
        message = str(record.msg)
    redacted = redact(message)
    if redacted != message or record.args:
        record.msg, record.args = redacted, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRIBUTES and isinstance(value, str):
            setattr(record, key, redact(value))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the record (see :func:`_redact_record`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


MakeRecord = Callable[..., logging.LogRecord]


def _redacting_make_record(make_record: MakeRecord) -> MakeRecord:
    """``Logger.makeRecord`` that redacts each record once its extra fields are set."""

    def redacting(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(self, *args, **kwargs)
        _redact_record(record)
        return record

    redacting.redacting = True  # type: ignore[attr-defined]
    redacting.original = make_record  # type: ignore[attr-defined]
    return redacting


def install(level: str | None = None, fmt: str | None = None) -> None:
    """Redact every log record this process makes, from any logger to any handler, whoever
    configures the handlers later (Rasa, Sanic, coloredlogs, structlog through logging).

    Registers the secrets in the environment (:data:`SECRET_ENV`) and makes
    ``logging.Logger.makeRecord`` redact each record it makes, extra fields included (Sanic's
    access log puts the URL in one). With ``level``, also gives the root logger a stderr
    handler (``fmt``) at that level when it has none. Idempotent.
    """
    register_secrets_from_env()
    if not getattr(logging.Logger.makeRecord, "redacting", False):
        logging.Logger.makeRecord = _redacting_make_record(  # type: ignore[method-assign]
            logging.Logger.makeRecord
        )
    if level is not None:
        numeric = logging.getLevelName(level.upper())
        logging.basicConfig(level=numeric if isinstance(numeric, int) else logging.INFO,
                            format=fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s")


def uninstall() -> None:
    """Undo :func:`install`'s ``makeRecord`` (tests: a test that runs a command in-process
    must not hide what later tests look for in their logs)."""
    original = getattr(logging.Logger.makeRecord, "original", None)
    if original is not None:
        logging.Logger.makeRecord = original  # type: ignore[method-assign]
