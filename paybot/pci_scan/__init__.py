"""The card-data scan: is there card data anywhere paybot keeps things?

Card data belongs inside the secure capture, the gateway and the ledger's tokens only; this
looks everywhere else a mistake could leave it. One module per job: :mod:`.finders` (what
counts, in a piece of text), :mod:`.tables` (every database table, the SMS outbox),
:mod:`.trackers` (Rasa's tracker store or its API), :mod:`.files` (logs, stray databases),
:mod:`.audio` and :mod:`.dtmf` (recordings), :mod:`.report` (findings, errors, exit code) and
:mod:`.scan` (all of them over one deployment). ``paybot pci-scan`` runs it; the test suite runs
the same finders over everything the tests wrote (``tests/cardscan.py``).
"""

from .finders import SECURITY_CODE, Finders, card
from .report import CLEAN, FOUND, SCAN_ERROR, Finding, Report
from .scan import Target, run

__all__ = ["CLEAN", "FOUND", "SCAN_ERROR", "SECURITY_CODE", "Finders", "Finding", "Report",
           "Target", "card", "run"]
