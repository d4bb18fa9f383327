"""Fewer policy predictions per turn: TED and memoization are not asked when the rules decide.

Rasa 3.6 runs every policy of the ensemble for each next-action prediction (about three a
caller turn: the form or action, then ``action_listen``) and only then picks the winner
(:class:`rasa.core.policies.ensemble.DefaultPolicyPredictionEnsemble`): the highest
confidence, ties going to the higher priority, a "no user" prediction (a loop's happy path)
beating all others. When the rule policy (priority 6, the highest) is sure (confidence 1.0,
or a "no user" prediction), nothing TED (1) or memoization (3) can say changes the winner,
yet TED's inference was the largest single cost of a turn.

:func:`install` makes Rasa's graph runner run the rule policy first in a prediction graph and
hand its prediction to each lower-priority policy's node; that node then returns an
all-zero prediction of its own (what a policy without a model returns) instead of running,
when the rules decide. The winner, its confidence, its events and its diagnostic data are
the ones Rasa would have picked.

After a rejected action (a form that would not take the caller's "what's my balance?") the
ensemble zeroes the rejected action's confidence in every prediction before it picks; the
rules still decide when their 1.0 is on another action (the balance), which is what the
rules predict after most interruptions, and these were the turns where TED still ran (about
6-8 ms of CPU each). The short cut is not taken:

* when the rule's only certain action is the rejected one;
* for an end-to-end policy (trained on story text: its prediction could beat the rules');
* when a policy's priority is not below the rule policy's.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
_CERTAIN = 1.0


def _rejected_action(tracker: Any) -> str | None:
    """The action whose execution was rejected last, when no action ran since (the one the
    ensemble zeroes in every prediction: ``DefaultPolicyPredictionEnsemble``)."""
    from rasa.shared.core.events import ActionExecuted, ActionExecutionRejected

    for event in reversed(tracker.events):
        if isinstance(event, ActionExecutionRejected):
            return event.action_name
        if isinstance(event, ActionExecuted):
            return None
    return None


def _rules_decide(rule: Any, tracker: Any, domain: Any) -> bool:
    """Whether the rule policy's prediction ``rule`` wins whatever lower-priority policies
    predict for ``tracker``."""
    if rule is None or rule.is_end_to_end_prediction:
        return False
    if rule.is_no_user_prediction:
        return True  # only "no user" predictions compete, and only the rules make them
    rejected = _rejected_action(tracker)
    if rejected is None:
        return rule.max_confidence >= _CERTAIN
    if rejected not in domain.action_names_or_texts:
        return False  # Rasa's ensemble will say so itself
    zeroed = domain.index_for_action(rejected)
    return any(p >= _CERTAIN for i, p in enumerate(rule.probabilities) if i != zeroed)


class _AfterRules:
    """A policy's graph node that first looks at the rule policy's prediction (the extra
    last argument dask gives it) and runs the policy only when the rules do not decide."""

    def __init__(self, node: Any, rule_node: str) -> None:
        self.node = node
        self.rule_node = rule_node
        self.inputs = node._inputs  # noqa: SLF001 - parameter name -> providing node

    def __call__(self, *inputs: Any) -> tuple[str, Any]:
        received = dict(i for i in inputs if isinstance(i, tuple))
        rule = received.get(self.rule_node)
        tracker = received.get(self.inputs.get("tracker", ""))
        domain = received.get(self.inputs.get("domain", ""))
        component = self.node._component  # noqa: SLF001 - loaded when the model loaded
        ready = component is not None and tracker is not None and domain is not None
        if ready and _rules_decide(rule, tracker, domain):
            return self.node._node_name, component._prediction(  # noqa: SLF001
                component._default_predictions(domain)  # noqa: SLF001
            )
        return self.node(*inputs[:-1])


def _end_to_end(component: Any) -> bool:
    from rasa.shared.nlu.constants import TEXT

    return TEXT in (getattr(component, "fake_features", None) or {})


def _kind(node: Any) -> type:
    return node._component_class  # noqa: SLF001 - Rasa's graph node has no public accessor


def defer_to_rules(runner: Any, run_graph: dict[str, Any]) -> dict[str, Any]:
    """``run_graph`` (a dask graph of ``runner``'s nodes) with each lower-priority policy of
    a prediction ensemble run after the rule policy and skipped when the rules decide."""
    from rasa.core.policies.ensemble import DefaultPolicyPredictionEnsemble
    from rasa.core.policies.policy import Policy
    from rasa.core.policies.rule_policy import RulePolicy

    nodes = runner._instantiated_nodes  # noqa: SLF001
    for name, task in run_graph.items():
        if name not in nodes or not issubclass(_kind(nodes[name]), DefaultPolicyPredictionEnsemble):
            continue
        policies = [n for n in task[1:] if n in nodes and issubclass(_kind(nodes[n]), Policy)]
        rules = [n for n in policies if issubclass(_kind(nodes[n]), RulePolicy)]
        rule = nodes[rules[0]]._component if len(rules) == 1 else None  # noqa: SLF001
        if rule is None:
            continue
        for other in policies:
            component = nodes[other]._component  # noqa: SLF001
            skip = other == rules[0] or component is None or _end_to_end(component)
            if skip or component.priority >= rule.priority:
                continue
            if not isinstance(run_graph[other][0], _AfterRules):
                run_graph[other] = (
                    _AfterRules(nodes[other], rules[0]),
                    *run_graph[other][1:],
                    rules[0],
                )
    return run_graph


def install() -> None:
    """Apply :func:`defer_to_rules` to every graph Rasa's dask runner builds (idempotent)."""
    from rasa.engine.runner.dask import DaskGraphRunner

    build = DaskGraphRunner._build_dask_graph  # noqa: SLF001
    if getattr(build, "defers_to_rules", False):
        return

    def _build_dask_graph(self: Any, schema: Any) -> dict[str, Any]:
        return defer_to_rules(self, build(self, schema))

    _build_dask_graph.defers_to_rules = True  # type: ignore[attr-defined]
    DaskGraphRunner._build_dask_graph = _build_dask_graph  # type: ignore[method-assign]
