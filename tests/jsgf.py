"""A small JSGF reader for tests: every phrase of a finite rule, or random phrases of any rule.

Only what the bot's grammars use: words, ``<rule>`` references, ``|``, ``( )``, ``[ ]`` and
``+``. A phrase comes back as a tree, so a test can tell which rule produced which words.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"<[^>]+>|[()\[\]|+*]|[^\s()\[\]|+*<>]+")


@dataclass(frozen=True)
class Node:
    """The words one rule produced: terminal words and the nodes of the rules it used."""

    rule: str
    children: tuple[str | Node, ...]

    def words(self) -> list[str]:
        out: list[str] = []
        for child in self.children:
            out += [child] if isinstance(child, str) else child.words()
        return out

    def text(self) -> str:
        return " ".join(self.words())


# Parsed rule bodies: ("alt", [seq...]), ("seq", [item...]), ("opt", expr), ("rep", expr),
# ("word", w), ("ref", name).
Expr = tuple


def parse(grammar: str) -> dict[str, Expr]:
    """Rule name (without brackets) -> parsed body, for every rule of a JSGF grammar."""
    rules: dict[str, Expr] = {}
    for statement in grammar.split(";"):
        statement = statement.strip()
        if "=" not in statement:
            continue
        head, body = statement.split("=", 1)
        name = head.replace("public", "").strip().strip("<>")
        tokens = _TOKEN.findall(body)
        expr, rest = _alternatives(tokens)
        assert not rest, f"unparsed JSGF: {rest}"
        rules[name] = expr
    return rules


def _alternatives(tokens: list[str]) -> tuple[Expr, list[str]]:
    seqs = []
    seq, tokens = _sequence(tokens)
    seqs.append(seq)
    while tokens[:1] == ["|"]:
        seq, tokens = _sequence(tokens[1:])
        seqs.append(seq)
    return ("alt", seqs), tokens


def _sequence(tokens: list[str]) -> tuple[Expr, list[str]]:
    items = []
    while tokens and tokens[0] not in ("|", ")", "]"):
        token, tokens = tokens[0], tokens[1:]
        if token in ("(", "["):
            inner, tokens = _alternatives(tokens)
            assert tokens[:1] == [")" if token == "(" else "]"], "unbalanced JSGF"
            tokens = tokens[1:]
            item: Expr = inner if token == "(" else ("opt", inner)
        elif token.startswith("<"):
            item = ("ref", token.strip("<>"))
        else:
            item = ("word", token)
        if tokens[:1] == ["+"]:
            item, tokens = ("rep", item), tokens[1:]
        items.append(item)
    return ("seq", items), tokens


def _expand(expr: Expr, rules: dict[str, Expr], rng: random.Random) -> list[str | Node]:
    kind, value = expr
    if kind == "word":
        return [value]
    if kind == "ref":
        return [Node(value, tuple(_expand(rules[value], rules, rng)))]
    if kind == "alt":
        return _expand(rng.choice(value), rules, rng)
    if kind == "seq":
        return [part for item in value for part in _expand(item, rules, rng)]
    if kind == "opt":
        return _expand(value, rules, rng) if rng.random() < 0.5 else []
    if kind == "rep":
        return [part for _ in range(rng.randint(1, 4)) for part in _expand(value, rules, rng)]
    raise AssertionError(kind)


def random_phrase(rules: dict[str, Expr], rule: str, rng: random.Random) -> Node:
    """One random phrase of ``rule`` (each alternative and option equally likely)."""
    return Node(rule, tuple(_expand(rules[rule], rules, rng)))


def all_phrases(rules: dict[str, Expr], rule: str) -> list[str]:
    """Every phrase of a finite rule (no ``+``), as text."""

    def phrases(expr: Expr) -> list[list[str]]:
        kind, value = expr
        if kind == "word":
            return [[value]]
        if kind == "ref":
            return phrases(rules[value])
        if kind == "alt":
            return [p for seq in value for p in phrases(seq)]
        if kind == "seq":
            parts = [phrases(item) for item in value]
            return [sum(combo, []) for combo in itertools.product(*parts)]
        if kind == "opt":
            return [[], *phrases(value)]
        raise AssertionError(f"not finite: {kind}")

    return [" ".join(words) for words in phrases(rules[rule])]
