"""What makes a dialog turn cheaper in the Rasa process changes no outcome.

* The action-response check's quick path (``rasa_plugins.rasa_server``) agrees with the full
  JSON Schema check on seeded random responses, valid and invalid.
* Event classes remembered by name (``rasa_plugins.event_types``) are Rasa's own.
* TED and memoization skipped when the rules decide (``rasa_plugins.policy_shortcut``): with
  the trained model, the next action, the policy and the confidence Rasa picks for seeded
  random points of the test stories, and for the same points with the predicted action or
  a random one rejected, are the same with and without the short cut.
* Slots copied the quick way (``rasa_plugins.slot_copy``) are what ``copy.copy`` makes.
* Past states remembered on the tracker (``rasa_plugins.past_states``) are the ones Rasa
  lists, for every set of options, after the caller edited an earlier answer and after the
  tracker grew; and no prediction changes.
* The rule policy's rules matched on states parsed once and grouped by their latest previous
  action (``rasa_plugins.rule_lookup``) are the ones Rasa's own walk finds, on the test
  stories' states and seeded random edits of them, and no prediction changes.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from rasa_plugins import (
    event_types,
    past_states,
    policy_shortcut,
    rasa_server,
    rule_lookup,
    slot_copy,
)

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "paybot.tar.gz"
SEED = 17
EVENT_NAMES = ["slot", "followup", "action", "user", "bot", "active_loop", "reset_slots",
               "restart", "session_started", "entities", "form", "nonsense", 3, None]  # fmt: skip
VALUES = ["5.00", 3, 2.5, None, True, [], {}, {"text": "x"}, [1], "x" * 3]


def _event(rng: random.Random) -> object:
    event: dict = {"event": rng.choice(EVENT_NAMES)}
    for key in rng.sample(["name", "value", "timestamp", "metadata", "entities", "text",
                           "policy", "confidence", "parse_data"], rng.randint(0, 4)):  # fmt: skip
        event[key] = rng.choice(VALUES)
    if rng.random() < 0.1:
        event.pop("event")
    return event if rng.random() > 0.03 else rng.choice(VALUES)


def _response(rng: random.Random) -> object:
    response: dict = {}
    if rng.random() < 0.9:
        response["events"] = [_event(rng) for _ in range(rng.randint(0, 6))]
    if rng.random() < 0.7:
        response["responses"] = [rng.choice([{"text": "Hi."}, {}, "text"])
                                 for _ in range(rng.randint(0, 3))]  # fmt: skip
    return response if rng.random() > 0.02 else rng.choice(VALUES)


def test_the_quick_check_agrees_with_the_full_check_on_random_responses(monkeypatch):
    monkeypatch.setattr(
        RemoteAction, "_validate_action_result", RemoteAction._validate_action_result
    )  # restored afterwards
    rasa_server.install()
    action = RemoteAction("action_x", None)
    schema = RemoteAction.action_response_format_spec()
    full = jsonschema.validators.validator_for(schema)(schema)  # what jsonschema.validate does
    rng = random.Random(SEED)
    outcomes = {True: 0, False: 0}
    for _ in range(400):
        response = _response(rng)
        error = jsonschema.exceptions.best_match(full.iter_errors(response))
        outcomes[error is None] += 1
        if error is None:
            assert action._validate_action_result(copy.deepcopy(response)) is True, response
        else:
            with pytest.raises(jsonschema.ValidationError) as raised:
                action._validate_action_result(response)
            assert raised.value.message.startswith(error.message), response
    assert min(outcomes.values()) > 40, outcomes  # both kinds were tried, many times


def test_event_classes_remembered_by_name_are_rasas_own(monkeypatch):
    from rasa.shared.core.events import Event, SlotSet
    from rasa.shared.utils.common import all_subclasses

    monkeypatch.setattr(Event, "resolve_by_type", Event.__dict__["resolve_by_type"])
    event_types.install()
    event_types.install()  # twice is once
    names = {cls.type_name for cls in all_subclasses(Event)}
    for _ in range(2):  # the first time looks up, the second remembers
        for name in sorted(names):
            first = next(c for c in all_subclasses(Event) if c.type_name == name)
            assert Event.resolve_by_type(name) is first
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("no such event", SlotSet) is SlotSet
    with pytest.raises(ValueError, match="Unknown event name"):
        Event.resolve_by_type("no such event")


@pytest.fixture(scope="module")
def agent():
    """The trained model, loaded once for the module (each test restores what it patches;
    Rasa builds the prediction graph again at every run)."""
    from rasa.core.agent import Agent

    return Agent.load(str(MODEL))


def _with_rejections(agent, trackers, rng: random.Random) -> list:
    """Each tracker again with the action Rasa predicts for it rejected (what a form that will
    not take the answer does), and with a random action of the domain rejected."""
    from rasa.shared.core.events import ActionExecutionRejected
    from rasa.shared.core.trackers import DialogueStateTracker

    rejected = []
    names = agent.domain.action_names_or_texts
    for tracker, (predicted, _policy, _confidence) in zip(
        trackers, _predictions(agent, trackers), strict=True
    ):
        for name in (predicted, rng.choice(names)):
            events = [*tracker.events, ActionExecutionRejected(name)]
            rejected.append(DialogueStateTracker.from_events(
                tracker.sender_id, events, agent.domain.slots))  # fmt: skip
    return rejected


def _rule_policy(agent):
    """The loaded model's rule policy."""
    nodes = agent.processor.graph_runner._instantiated_nodes  # noqa: SLF001
    return next(node._component for name, node in nodes.items() if "RulePolicy" in name)  # noqa: SLF001


def _predictions(agent, trackers) -> list[tuple[str, str, float]]:
    picked = []
    for tracker in trackers:
        prediction = agent.processor._predict_next_with_tracker(tracker)
        action = agent.domain.action_names_or_texts[prediction.max_confidence_index]
        picked.append((action, prediction.policy_name, round(prediction.max_confidence, 6)))
    return picked


def _story_points(agent, count: int) -> list:
    """Seeded random points of the test stories: each a tracker just before an action."""
    from rasa.core.test import _create_data_generator
    from rasa.shared.core.events import ActionExecuted
    from rasa.shared.core.trackers import DialogueStateTracker

    generator = _create_data_generator(str(REPO / "tests/rasa/test_stories.yml"), agent,
                                       use_conversation_test_files=True)  # fmt: skip
    points = []
    for story in generator.generate_story_trackers():
        events = list(story.events)
        for i, event in enumerate(events):
            if isinstance(event, ActionExecuted) and i > 0:
                points.append(DialogueStateTracker.from_events(
                    story.sender_id, events[:i], agent.domain.slots))  # fmt: skip
    rng = random.Random(SEED)
    return rng.sample(points, min(count, len(points)))


@pytest.mark.skipif(not MODEL.is_file(), reason="no trained model: run make test")
def test_rules_deciding_leave_every_prediction_as_it_was(monkeypatch, agent):
    from rasa.engine.runner.dask import DaskGraphRunner

    monkeypatch.setattr(
        DaskGraphRunner, "_build_dask_graph", DaskGraphRunner._build_dask_graph
    )  # restored afterwards
    trackers = _story_points(agent, 150)
    assert len(trackers) >= 100
    rejected = _with_rejections(agent, trackers[:60], random.Random(SEED))
    before = _predictions(agent, trackers)
    before_rejected = _predictions(agent, rejected)
    decided = {True: 0, False: 0}
    decided_rejected = {True: 0, False: 0}
    rules_decide = policy_shortcut._rules_decide

    def counted(rule, tracker, domain):
        decision = rules_decide(rule, tracker, domain)
        counts = decided_rejected if policy_shortcut._rejected_action(tracker) else decided
        counts[decision] += 1
        return decision

    monkeypatch.setattr(policy_shortcut, "_rules_decide", counted)
    policy_shortcut.install()
    policy_shortcut.install()  # twice is once
    assert _predictions(agent, trackers) == before
    # asked once for TED and once for memoization per prediction (the test stories follow the
    # rules throughout, so here the rules decide nearly always)
    assert decided[True] > decided[False], decided
    # after a rejection: the rules decide when their certain action is another one, and
    # otherwise TED and memoization run; either way Rasa's pick is unchanged
    assert _predictions(agent, rejected) == before_rejected
    assert decided_rejected[True] > 0 and decided_rejected[False] > 0, decided_rejected


class _Kept:
    """A slot-like class that copies itself its own way (``copy.copy`` must use it)."""

    def __getstate__(self) -> dict:
        return {"payload": ["copied"]}


def test_quick_slot_copies_are_what_copy_copy_makes():
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.slots import Slot

    domain = Domain.load(str(REPO / "bot" / "domain.yml"))
    rng = random.Random(SEED)
    values = [None, "x", 3.5, True, ["a", "b"], {"k": "v"}, "0300"]
    slots = []
    for slot in domain.slots:
        for _ in range(3):
            one = copy.copy(slot)  # Rasa's way: no __copy__ installed yet
            one._value = rng.choice(values)  # noqa: SLF001 - any value, as Rasa stores it
            one._has_been_set = rng.random() < 0.5  # noqa: SLF001
            slots.append(one)
    standard = [copy.copy(slot) for slot in slots]
    assert "__copy__" not in vars(Slot)
    slot_copy.install()
    try:
        slot_copy.install()  # twice is once
        assert len({type(slot) for slot in slots}) >= 3  # several kinds of slot, not one
        for slot, before in zip(slots, standard, strict=True):
            quick = copy.copy(slot)
            assert type(quick) is type(before) and vars(quick) == vars(before)
            assert quick is not slot and vars(quick) is not vars(slot)
            assert quick._value is slot._value  # noqa: SLF001 - shallow, as copy.copy is
            quick.reset()
            assert vars(slot) == vars(before)  # the original is untouched

        class Kept(_Kept, Slot):
            type_name = "kept"

            def _as_feature(self) -> list:
                return []

            def _feature_dimensionality(self) -> int:
                return 0

        kept = Kept.__new__(Kept)
        kept.payload = [1]
        assert copy.copy(kept).payload == ["copied"]  # its own __getstate__, as copy.copy
    finally:
        del Slot.__copy__


@pytest.mark.skipif(not MODEL.is_file(), reason="no trained model: run make test")
def test_remembered_past_states_are_rasas_own(monkeypatch, agent):
    from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    listed = DialogueStateTracker.past_states
    monkeypatch.setattr(DialogueStateTracker, "past_states", listed)  # restored afterwards
    domain = agent.domain
    trackers = _story_points(agent, 80)
    events = [list(tracker.events) for tracker in trackers]
    before = _predictions(agent, trackers)
    rule_policy = _rule_policy(agent)
    rule_only = rule_policy._get_rule_only_data()  # noqa: SLF001
    options = [(False, False, None), (True, False, None), (False, True, rule_only),
               (True, True, rule_only), (False, True, {})]  # fmt: skip
    past_states.install()
    past_states.install()  # twice is once
    rng = random.Random(SEED)
    for tracker in trackers:
        for omit, ignore, rule_only_data in rng.sample(options, 3):
            expected = listed(tracker, domain, omit, ignore, rule_only_data)
            for _ in range(3):  # listed, then remembered twice
                answer = tracker.past_states(domain, omit, ignore, rule_only_data)
                assert answer == expected
                for state in answer:  # the caller edits its copy, as Rasa's featurizer does
                    for part in state.values():
                        part.clear()
                    state.clear()
        greet = UserUttered("hi", {"name": "greet", "confidence": 1.0})
        grown = rng.choice([greet, ActionExecuted("action_listen"), SlotSet("channel", "sms")])
        tracker.update(grown)
        assert tracker.past_states(domain) == listed(tracker, domain)
    assert _predictions(agent, trackers) == _predictions_without_memo(agent, trackers, listed)
    fresh = [DialogueStateTracker.from_events(tracker.sender_id, kept, domain.slots)
             for tracker, kept in zip(trackers, events, strict=True)]  # fmt: skip
    assert _predictions(agent, fresh) == before  # what the trackers were before they grew


def _predictions_without_memo(agent, trackers, listed) -> list:
    from rasa.shared.core.trackers import DialogueStateTracker

    remembered = DialogueStateTracker.past_states
    DialogueStateTracker.past_states = listed
    try:
        return _predictions(agent, trackers)
    finally:
        DialogueStateTracker.past_states = remembered


def _edited(states: list, rng: random.Random, intents: list, actions: list) -> list:
    """``states`` with seeded random edits: intents and actions swapped, parts dropped or
    marked "should not be set", the history cut short."""
    from rasa.shared.core.constants import PREVIOUS_ACTION, SHOULD_NOT_BE_SET, USER

    edited = [{kind: dict(sub) for kind, sub in state.items()} for state in states]
    for state in edited:
        roll = rng.random()
        if roll < 0.15 and USER in state:
            state[USER]["intent"] = rng.choice(intents)
        elif roll < 0.3 and PREVIOUS_ACTION in state:
            state[PREVIOUS_ACTION]["action_name"] = rng.choice(actions)
        elif roll < 0.4 and state:
            del state[rng.choice(sorted(state))]
        elif roll < 0.5 and state:
            sub = state[rng.choice(sorted(state))]
            if sub:
                sub[rng.choice(sorted(sub))] = SHOULD_NOT_BE_SET
    return edited[rng.randrange(len(edited)) :] if edited and rng.random() < 0.3 else edited


def _odd_rule(key: str, rng: random.Random) -> str:
    """The rule ``key`` with its latest state's previous action edited at random."""
    import json

    from rasa.shared.core.constants import PREVIOUS_ACTION, SHOULD_NOT_BE_SET

    states = json.loads(key)
    if states:
        latest = states[-1]
        roll = rng.random()
        if roll < 0.3:
            latest[PREVIOUS_ACTION] = {"action_name": SHOULD_NOT_BE_SET}
        elif roll < 0.5:
            latest[PREVIOUS_ACTION] = {"action_text": "hello"}
        elif roll < 0.6:
            latest[PREVIOUS_ACTION] = {}
        elif roll < 0.8:  # names no action, yet matches any that is named
            latest[PREVIOUS_ACTION] = {"action_text": SHOULD_NOT_BE_SET}
    return json.dumps(states)


@pytest.mark.skipif(not MODEL.is_file(), reason="no trained model: run make test")
def test_rules_matched_once_parsed_are_the_ones_rasa_finds(monkeypatch, agent):
    from rasa.core.policies.rule_policy import RulePolicy

    monkeypatch.setattr(RulePolicy, "_get_possible_keys", RulePolicy._get_possible_keys)
    domain = agent.domain
    trackers = _story_points(agent, 80)
    before = _predictions(agent, trackers)
    rule_policy = _rule_policy(agent)
    lookups = [rule_policy.lookup[name] for name in ("rules", "rules_for_loop_unhappy_path")]
    rng = random.Random(SEED)
    intents = [*domain.intents, "no_such_intent"]
    actions = [*domain.action_names_or_texts, "no_such_action"]
    rasas = RulePolicy._get_possible_keys
    found = 0
    for tracker in trackers:
        for use_text in (False, True):
            states = rule_policy._prediction_states(  # noqa: SLF001
                tracker, domain, use_text, rule_only_data=rule_policy._get_rule_only_data()
            )
            for candidate in (states, _edited(states, rng, intents, actions), []):
                for lookup in lookups:
                    expected = rasas(rule_policy, lookup, candidate)
                    assert rule_lookup.possible_keys(lookup, candidate) == expected
                    found += 0 < len(expected) < len(lookup)
    assert found > len(trackers)  # some rules applied and some did not, often
    changed = dict(lookups[0])  # a lookup that changes is grouped again
    for tracker in trackers[:20]:
        states = rule_policy._prediction_states(tracker, domain)  # noqa: SLF001
        expected = rasas(rule_policy, changed, states)
        assert rule_lookup.possible_keys(changed, states) == expected
        if expected:  # a rule that applies goes, another comes: as many keys as before
            changed[rng.choice(sorted(lookups[1]))] = changed.pop(rng.choice(sorted(expected)))
            assert rule_lookup.possible_keys(changed, states) == rasas(rule_policy, changed, states)
    # rules unlike the model's (a previous action "should not be set", or none named)
    odd = {_odd_rule(key, rng): action for key, action in lookups[0].items()}
    for tracker in trackers:
        states = rule_policy._prediction_states(tracker, domain)  # noqa: SLF001
        assert rule_lookup.possible_keys(odd, states) == rasas(rule_policy, odd, states)
    rule_lookup.install()
    rule_lookup.install()  # twice is once
    assert _predictions(agent, trackers) == before


def test_rule_groupings_kept_are_bounded_and_follow_the_lookup():
    """Each new lookup (a reloaded model's) gets its own grouping, at most a few are kept alive,
    and a lookup seen again after it was dropped is grouped again, not answered from another's."""
    import json

    lookups = [{json.dumps([{"prev_action": {"action_name": f"action_{n}"}}]): "x"}
               for n in range(3 * rule_lookup._MAX_INDEXES)]  # noqa: SLF001
    for _ in range(2):
        for n, lookup in enumerate(lookups):
            mine = [{"prev_action": {"action_name": f"action_{n}"}}]
            other = [{"prev_action": {"action_name": f"action_{n + 1}"}}]
            assert rule_lookup.possible_keys(lookup, mine) == set(lookup)
            assert rule_lookup.possible_keys(lookup, other) == set()
            assert len(rule_lookup._indexes) <= rule_lookup._MAX_INDEXES  # noqa: SLF001
    assert any(kept is lookups[-1] for kept, _index in rule_lookup._indexes.values())  # noqa: SLF001
    # Nothing else outlives the lookups: the parsed rules are the groupings' own.
    assert not [name for name, value in vars(rule_lookup).items()
                if isinstance(value, dict) and name != "_indexes" and not name.startswith("__")]
