"""``paybot pci-scan``: look for card data everywhere paybot keeps things; exit 1 on any.

Scans the database (every table, the SMS outbox), Rasa's trackers (the tracker store, or the
running Rasa's API), and the logs, recordings and SQLite files under the data dir and under
each ``--path`` (see :mod:`paybot.pci_scan`). Prints a report that names a card number by its
last four digits only. Exit 0 clean, 1 card data found, 2 a source could not be scanned or the
options are wrong.
"""

from __future__ import annotations

import argparse
import sys

from paybot.pci_scan import SCAN_ERROR, Finders, Target, run
from paybot.settings import Settings


def parse_codes(value: str | None) -> frozenset[str]:
    """``--cvc 123,4567`` as a set of codes; ValueError unless each is 3 or 4 digits."""
    codes = frozenset(c.strip() for c in (value or "").split(",") if c.strip())
    if any(not (c.isascii() and c.isdigit() and len(c) in (3, 4)) for c in codes):
        raise ValueError("--cvc takes security codes of 3 or 4 digits, separated by commas")
    return codes


def command(settings: Settings, args: argparse.Namespace) -> int:
    try:
        finders = Finders(codes=parse_codes(args.cvc))
    except ValueError as exc:
        print(f"paybot pci-scan: {exc}", file=sys.stderr)
        return SCAN_ERROR
    store = settings.tracker_store_url
    target = Target(
        database_url=settings.db_url,
        data_dir=settings.data_dir,
        tracker_store_url=store.get_secret_value() if store is not None else None,
        rasa_url=None if args.no_rasa else settings.rasa_url,
        rasa_token=settings.rasa_token.get_secret_value(),
        paths=tuple(args.path),
        conversations=frozenset(args.conversation),
    )
    report = run(target, finders)
    print(report.render(), flush=True)
    return report.exit_code
