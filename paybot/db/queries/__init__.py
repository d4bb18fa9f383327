"""The query layer: the reads (and the few conditional writes) that several parts of paybot
share, as keyword-only functions over a session the caller owns.

Each function takes ``session=`` first and never commits: the caller decides the
transaction (``Session(engine)`` to read, :func:`paybot.db.engine.session_scope` or
``write_scope`` to write). So the same query serves the actions, the bridge and the domain,
on SQLite and PostgreSQL alike. All of them block; call them from async code in a thread::

    with Session(engine) as session:
        payment = queries.payment_by_key(session=session, idempotency_key=key)

One module per table group: :mod:`~paybot.db.queries.accounts` (accounts and their stored
methods), :mod:`~paybot.db.queries.payments`, :mod:`~paybot.db.queries.outbox` (the text
message outbox), :mod:`~paybot.db.queries.consent` (opt-outs), :mod:`~paybot.db.queries.calls`,
:mod:`~paybot.db.queries.reminders` and :mod:`~paybot.db.queries.verification`.
"""

from paybot.db.queries.accounts import (
    account_by_number,
    account_by_typed_number,
    accounts_by_phone,
    count_accounts,
    default_payment_method,
)
from paybot.db.queries.calls import call_by_sid
from paybot.db.queries.consent import consent_for, is_opted_out, set_consent
from paybot.db.queries.outbox import (
    claim_message,
    due_message_ids,
    message_by_provider_id,
    outbox_backlog,
    park_stale_sending,
    receipt_message,
    send_in_flight,
    stale_sending_ids,
)
from paybot.db.queries.payments import (
    due_scheduled_payment_ids,
    payment_by_key,
    payments_awaiting_gateway,
    scheduled_payments,
    unclaimed_payment_ids,
    used_token_payment_ids,
)
from paybot.db.queries.reminders import (
    accounts_due_on,
    calls_to_retry,
    claim_call_retry,
    mark_replied,
    reminder_keys,
    unreplied_reminder,
)
from paybot.db.queries.verification import count_verification_failures

__all__ = [
    "account_by_number",
    "accounts_due_on",
    "calls_to_retry",
    "claim_call_retry",
    "mark_replied",
    "reminder_keys",
    "unreplied_reminder",
    "account_by_typed_number",
    "accounts_by_phone",
    "call_by_sid",
    "claim_message",
    "consent_for",
    "count_accounts",
    "count_verification_failures",
    "default_payment_method",
    "due_message_ids",
    "due_scheduled_payment_ids",
    "is_opted_out",
    "message_by_provider_id",
    "send_in_flight",
    "stale_sending_ids",
    "park_stale_sending",
    "payment_by_key",
    "unclaimed_payment_ids",
    "used_token_payment_ids",
    "payments_awaiting_gateway",
    "outbox_backlog",
    "receipt_message",
    "scheduled_payments",
    "set_consent",
]
