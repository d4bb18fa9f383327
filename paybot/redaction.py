"""Second line of defence: mask anything that looks like card or bank digits in text.

The secure capture never hands card data to anything that logs. This filter exists for the
mistakes: any run of 9 or more digits (optionally split by spaces or dashes) in a log record
is masked down to its last four, which also covers routing and bank account numbers.
"""

from __future__ import annotations

import logging
import re

_DIGIT_RUN = re.compile(r"(?<![\w])(?:\d[ -]?){8,18}\d(?![\w])")


def redact(text: str) -> str:
    """Mask every run of 9 to 19 digits in ``text`` to ``[redacted …1234]``."""
    return _DIGIT_RUN.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return f"[redacted …{digits[-4:]}]"


class RedactingFilter(logging.Filter):
    """A logging filter that renders the message once, redacted, and drops the args."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            del exc
        return True


def install(level: str = "INFO") -> None:
    """Configure root logging once: one stream handler with the redacting filter."""
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
