"""Text messages to and from customers: what the law and the carriers ask of them.

* :mod:`~paybot.sms.keywords`: STOP, START and HELP as Twilio's Advanced Opt-Out reads them.
* :mod:`~paybot.sms.consent`: who opted out, per number (``sms_consents``), and
  :func:`~paybot.sms.consent.may_text`, which every sender of outreach asks first.
* :mod:`~paybot.sms.quiet_hours`: the recipient's local hours outreach waits out.
* :mod:`~paybot.sms.outreach`: what the outbox does with a message (send, skip or defer).

docs/text.md describes the behaviour as a whole.
"""
