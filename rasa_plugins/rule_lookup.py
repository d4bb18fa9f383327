"""The rule policy's matching of rules against a conversation, without work Rasa repeats.

To find the rules that apply, Rasa's ``RulePolicy._get_possible_keys`` walks back through
every state of the conversation and, at each, keeps the rules whose state at that distance
matches. For every rule and every step it parses the rule's key again (a cached JSON parse,
then a reversed copy of the list), turns list values into tuples again, and it goes on to
the conversation's first state although a rule only has a few: once every rule left is
shorter than the distance walked, each of them applies whatever comes before. In a profile
of twenty simultaneous conversations that was about a fifteenth of the Rasa process's CPU.

:func:`install` replaces it with the same test (``_is_rule_applicable`` and
``_does_rule_match_state``, line for line) on each rule's states parsed once, tried first
only on the rules whose latest state could match the conversation's (those naming its
previous action, and those naming none), and stopping as soon as no rule left is long
enough to be tested further. The set of keys found is Rasa's; when several equally long rules
apply, Rasa picks one by the set's order, which string hashing makes differ from one process
to the next, and ours is no less arbitrary. A subclass of ``RulePolicy`` that changes how a
rule is parsed or matched keeps Rasa's own walk.
"""

from __future__ import annotations

import json
from typing import Any

_Rule = tuple[dict[str, dict[str, Any]], ...]  # a rule's states, the latest first


def _reversed_states(key: str) -> _Rule:
    """The rule ``key``'s states, latest first, list values as tuples (as Rasa compares them:
    JSON made its tuples lists). Parsed once per lookup grouped (:class:`_Index`), so what is
    kept goes with the lookups kept."""
    return tuple(
        {
            kind: {k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()}
            for kind, sub in state.items()
        }
        for state in reversed(json.loads(key))
    )


def _matches(rule_state: dict[str, dict[str, Any]], state: dict[str, Any], unset: str) -> bool:
    """Rasa's ``RulePolicy._does_rule_match_state`` (``unset``: its ``SHOULD_NOT_BE_SET``)."""
    for kind, rule_sub_state in rule_state.items():
        sub_state = state.get(kind, {})
        for key, wanted in rule_sub_state.items():
            found = sub_state.get(key)
            if wanted and wanted != unset and found != wanted:
                return False
            if wanted == unset and found and found != unset:
                return False
    return True


def _applies(rule: _Rule, turn: int, state: dict[str, Any], previous: str, unset: str) -> bool:
    """Rasa's ``RulePolicy._is_rule_applicable`` for the rule's state ``turn`` steps back
    (``previous``: the key of the previous action in a state)."""
    if turn >= len(rule):
        return True
    current = state.get(previous)
    wanted = rule[turn].get(previous)
    if not wanted and not current:
        return True
    if not wanted or not current:
        return False
    return _matches(rule[turn], state, unset)


class _Index:
    """A lookup's rules parsed, grouped by the previous action their latest state names (a
    rule naming one can only apply to a conversation whose latest state names the same)."""

    def __init__(self, lookup: dict[str, Any], previous: str, unset: str) -> None:
        self.keys = set(lookup)
        self.by_action: dict[Any, list[tuple[str, _Rule]]] = {}
        self.others: list[tuple[str, _Rule]] = []
        for key in lookup:
            rule = _reversed_states(key)
            named = rule[0].get(previous, {}).get(ACTION_NAME) if rule else None
            if named and named != unset:
                self.by_action.setdefault(named, []).append((key, rule))
            else:
                self.others.append((key, rule))

    def candidates(self, state: dict[str, Any], previous: str) -> list[tuple[str, _Rule]]:
        """The rules that may apply to the conversation's latest ``state``."""
        named = (state.get(previous) or {}).get(ACTION_NAME)
        return self.others + self.by_action.get(named, []) if named else self.others


ACTION_NAME = "action_name"  # rasa.shared.nlu.constants.ACTION_NAME (checked at install)
_indexes: dict[int, tuple[dict[str, Any], _Index]] = {}  # by id of a lookup kept alive here
_MAX_INDEXES = 8  # a model has two lookups; a reloaded model's replace the old ones


def _index(lookup: dict[str, Any], previous: str, unset: str) -> _Index:
    kept = _indexes.get(id(lookup))
    if kept is None or kept[0] is not lookup or kept[1].keys != lookup.keys():
        if kept is None and len(_indexes) >= _MAX_INDEXES:
            _indexes.clear()  # lookups of models no longer loaded are not kept alive
        kept = (lookup, _Index(lookup, previous, unset))  # new, or the lookup has changed
        _indexes[id(lookup)] = kept
    return kept[1]


def possible_keys(lookup: dict[str, Any], states: list[dict[str, Any]]) -> set[str]:
    """The keys of ``lookup`` whose rules apply to the conversation's ``states``."""
    from rasa.shared.core.constants import PREVIOUS_ACTION, SHOULD_NOT_BE_SET

    if not states:
        return set(lookup)
    index = _index(lookup, PREVIOUS_ACTION, SHOULD_NOT_BE_SET)
    rules = index.candidates(states[-1], PREVIOUS_ACTION)
    longest = max((len(rule) for _key, rule in rules), default=0)
    for turn, state in enumerate(reversed(states)):
        if turn >= longest:
            break  # every rule left applies, whatever the earlier states
        rules = [
            (k, r) for k, r in rules if _applies(r, turn, state, PREVIOUS_ACTION, SHOULD_NOT_BE_SET)
        ]
        longest = max((len(rule) for _key, rule in rules), default=0)
    return {key for key, _rule in rules}


def install() -> None:
    """Make ``RulePolicy._get_possible_keys`` use :func:`possible_keys` (idempotent)."""
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.shared.nlu import constants

    walk = RulePolicy._get_possible_keys  # noqa: SLF001
    if getattr(walk, "parsed_once", False):
        return
    if constants.ACTION_NAME != ACTION_NAME:
        return  # not the Rasa this was written for: keep its own walk
    own = ("_is_rule_applicable", "_does_rule_match_state", "_rule_key_to_state")

    def _get_possible_keys(self: Any, lookup: dict[str, Any], states: list[Any]) -> set[str]:
        kind = type(self)
        if kind is not RulePolicy and any(
            getattr(kind, name) is not getattr(RulePolicy, name) for name in own
        ):
            return walk(self, lookup, states)
        return possible_keys(lookup, states)

    _get_possible_keys.parsed_once = True  # type: ignore[attr-defined]
    RulePolicy._get_possible_keys = _get_possible_keys  # type: ignore[method-assign]
