"""Reconciliation: completed payments written back to the biller (docs/reconciliation.md).

A daily CSV file (:mod:`~paybot.reconciliation.report`, :mod:`~paybot.reconciliation.files`,
:mod:`~paybot.reconciliation.daily`), an HTTP POST per completed payment
(:mod:`~paybot.reconciliation.signing`, :mod:`~paybot.reconciliation.deliveries`,
:mod:`~paybot.reconciliation.poster`) and an SFTP drop (:mod:`~paybot.reconciliation.sftp`).
"""
