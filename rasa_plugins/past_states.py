"""A conversation's past states listed once per prediction, not once per policy pass.

To predict the next action, Rasa's rule policy lists the conversation's past states
(``DialogueStateTracker.past_states``: the whole conversation replayed, one state per
action) twice after each message: once to match rules on the message's text, once on its
intent; TED and memoization list them again with their own options when they run. The
two passes get the same list (each then edits its own copy of the last state). In a
profile of twenty simultaneous conversations the listing was an eighth of the Rasa
process's CPU time, half of it repeated.

:func:`install` makes ``past_states`` remember its last answer on the tracker, for the
options it was asked with, and give a copy of it while the tracker has the same events
(the same number, the last one the same object: Rasa only ever appends to a tracker's
events, and a state depends only on the events and the domain's slots). Each caller gets its
own copy of every state and of every part of a state (the parts' values are strings and
tuples), so editing one changes nothing remembered.
"""

from __future__ import annotations

import weakref
from typing import Any

_MEMO = "_paybot_past_states"  # the tracker attribute that holds what was remembered


def _copied(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{part: dict(values) for part, values in state.items()} for state in states]


def _options(rule_only_data: dict[str, Any] | None) -> Any:
    if not rule_only_data:
        return None
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in rule_only_data.items()))  # fmt: skip


def install() -> None:
    """Make ``DialogueStateTracker.past_states`` remember its last answer per set of
    options (idempotent)."""
    from rasa.shared.core.trackers import DialogueStateTracker

    listed = DialogueStateTracker.past_states
    if getattr(listed, "remembers", False):
        return

    def past_states(
        self: Any,
        domain: Any,
        omit_unset_slots: bool = False,
        ignore_rule_only_turns: bool = False,
        rule_only_data: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        try:
            options = (omit_unset_slots, ignore_rule_only_turns, _options(rule_only_data))
            hash(options)
        except TypeError:  # rule-only data Rasa never makes: list them afresh
            return listed(self, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        events = self.events
        version = (len(events), id(events[-1]) if events else None)
        memo = self.__dict__.setdefault(_MEMO, {})
        seen = memo.get(options)
        if seen is not None and seen[0] == version and seen[1]() is domain:
            return _copied(seen[2])
        states = listed(self, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        memo[options] = (version, weakref.ref(domain), _copied(states))
        return states

    past_states.remembers = True  # type: ignore[attr-defined]
    DialogueStateTracker.past_states = past_states  # type: ignore[method-assign]
