"""Payment reminders: a text (or a call) some days before an account's due date.

* :mod:`~paybot.reminders.due`: which reminders are due today, and their wording.
* :mod:`~paybot.reminders.claims`: claiming a reminder (its unique row) so it goes out once,
  with its text in the outbox or its call's outcome.
* :mod:`~paybot.reminders.run`: one run over the due accounts (consent, quiet hours, the CRM,
  the pace), as ``paybot reminders run`` and the bridge's job make it.
* :mod:`~paybot.reminders.replies`: a text from a number that got a reminder, noted on it.

docs/text.md ("Reminders") describes the behaviour as a whole.
"""
