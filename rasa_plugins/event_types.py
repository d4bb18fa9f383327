"""Event classes looked up by name once, not once per event.

Rasa turns every stored event back into an object through ``Event.resolve_by_type``, which
walks the whole tree of ``Event`` subclasses (``all_subclasses``, with an ``isabstract`` check
for each) to find the one of that name. The in-memory tracker store keeps conversations
serialised, so every turn does this for every event of the conversation, and so does reading
each action server answer: about a tenth of the Rasa process's CPU time in a profile of
twenty simultaneous conversations. :func:`install` remembers each name's class the first
time it is found; a name not found yet (or not at all) still goes through Rasa's own lookup,
with its default and its error.
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    """Make ``Event.resolve_by_type`` remember the class of each name it found (idempotent)."""
    from rasa.shared.core.events import Event

    resolve = Event.resolve_by_type
    if getattr(resolve, "remembers", False):
        return
    found: dict[str, Any] = {}

    def resolve_by_type(type_name: str, default: Any = None) -> Any:
        cls = found.get(type_name)
        if cls is not None:
            return cls
        cls = resolve(type_name, default)
        if cls is not None and cls is not default:
            found[type_name] = cls
        return cls

    resolve_by_type.remembers = True  # type: ignore[attr-defined]
    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign,assignment]
