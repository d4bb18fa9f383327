"""The response files' format (``bot/responses.yml``, ``bot/capture.yml``): Rasa's domain format.

Each response is a list of variants: a ``text`` with ``{placeholders}`` and an optional
``condition`` (a list of ``{type: slot, name, value}``). Variants whose conditions all hold win
over unconditional ones, as in Rasa, and of those the ones with the most conditions win (so a
variant for "texting and asking the balance" beats one for "texting"); among equals one is
picked at random. The action server
(:mod:`actions.responses`) checks conditions against slots; the secure capture
(:mod:`voice_bridge.secure_capture.wording`) against a prompt's parameters (field, brand,
reason), which play the part of slots there.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import yaml


class ResponsesError(ValueError):
    """A response file is malformed, or a response was asked for that it lacks."""


@dataclass(frozen=True)
class Variant:
    """One wording of a response, used when every ``(slot, value)`` condition holds."""

    text: str
    conditions: tuple[tuple[str, Any], ...] = ()

    @property
    def placeholders(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.text) if name}

    def applies(self, slots: dict[str, Any]) -> bool:
        return all(slots.get(name) == value for name, value in self.conditions)


Responses = dict[str, tuple[Variant, ...]]


def _variant(name: str, raw: Any) -> Variant:
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise ResponsesError(f"response {name!r}: each variant needs a text")
    conditions = []
    for condition in raw.get("condition") or []:
        if not isinstance(condition, dict) or condition.get("type") != "slot":
            raise ResponsesError(f"response {name!r}: conditions must be of type slot")
        conditions.append((str(condition.get("name")), condition.get("value")))
    return Variant(raw["text"], tuple(conditions))


def parse_responses(text: str) -> Responses:
    """The responses of a ``responses:`` YAML document; :class:`ResponsesError` if malformed."""
    data = yaml.safe_load(text) or {}
    responses = data.get("responses") if isinstance(data, dict) else None
    if not isinstance(responses, dict):
        raise ResponsesError("expected a top-level 'responses:' mapping")
    parsed: Responses = {}
    for name, variants in responses.items():
        if not isinstance(variants, list) or not variants:
            raise ResponsesError(f"response {name!r}: expected a list of variants")
        parsed[str(name)] = tuple(_variant(name, v) for v in variants)
    return parsed


def candidates(variants: tuple[Variant, ...], slots: dict[str, Any]) -> list[Variant]:
    """The wordings to pick from: the most specific of those whose conditions hold, else the
    unconditional ones (else all)."""
    matching = [v for v in variants if v.conditions and v.applies(slots)]
    if matching:
        most = max(len(v.conditions) for v in matching)
        return [v for v in matching if len(v.conditions) == most]
    return [v for v in variants if not v.conditions] or list(variants)
