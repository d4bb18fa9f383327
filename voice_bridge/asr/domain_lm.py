"""A small back-off n-gram language model in ARPA format, and a file cache for it.

:func:`build_arpa` estimates an interpolated Witten-Bell model from weighted sentences and writes
it in back-off form (the form ARPA files and PocketSphinx use). The unigram level mixes the
sentences' word frequencies with an optional *floor* distribution (common English words with
their frequencies) so out-of-domain speech can still be decoded::

    P1(w)      = (1 - λ) c(w) / N + λ F(w)
    P(w | h)   = (c(h w) + T(h) P(w | h')) / (c(h) + T(h))   for seen (h, w)
    P(w | h)   = α(h) P(w | h')                               otherwise, α(h) = T(h) / (c(h) + T(h))

where c(h) is the weight of words seen after history h, T(h) their number of distinct types and h'
is h without its first word. Because every seen n-gram's suffix is seen too, this α makes each
conditional distribution sum to exactly one.

:func:`cached_file` keeps a built model on disk under a hash of everything it was built from, so
an engine start only rebuilds it when an input changed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

BOS, EOS = "<s>", "</s>"
NO_PROB = -99.0
"""ARPA's log10 "probability" for ``<s>``, which is a context but never predicted."""

Ngram = tuple[str, ...]


def _counts(sentences: Iterable[tuple[Sequence[str], float]], order: int) -> list[dict]:
    """Weighted n-gram counts per order: ``counts[n-1][ngram] = weight``."""
    counts: list[dict[Ngram, float]] = [defaultdict(float) for _ in range(order)]
    for words, weight in sentences:
        if not words or weight <= 0:
            continue
        tokens = (BOS, *words, EOS)
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                gram = tokens[i : i + n]
                if gram[-1] != BOS:
                    counts[n - 1][gram] += weight
    return counts


def _unigrams(counts: Mapping[Ngram, float], floor: Mapping[str, float], weight: float) -> dict:
    """The mixed unigram distribution ``(1 - λ) c(w) / N + λ F(w)`` (F renormalised)."""
    total = sum(counts.values())
    floor_total = sum(floor.values())
    lam = weight if floor_total > 0 else 0.0
    probs: dict[Ngram, float] = {}
    for (word,), count in counts.items():
        probs[(word,)] = (1 - lam) * count / total
    for word, f in floor.items():
        if f > 0 and word not in (BOS, EOS):
            probs[(word,)] = probs.get((word,), 0.0) + lam * f / floor_total
    return probs


def build_arpa(
    sentences: Iterable[tuple[Sequence[str], float]],
    *,
    order: int = 3,
    floor: Mapping[str, float] | None = None,
    floor_weight: float = 0.0,
) -> str:
    """Build an ARPA language model from weighted sentences.

    Args:
        sentences: ``(words, weight)`` pairs; a weight of 1 counts a sentence once.
        order: Highest n-gram order (2 or more).
        floor: Word → relative frequency of words the model should also allow on their own
            (e.g. common English). Words here need not occur in ``sentences``.
        floor_weight: λ, the share of unigram probability given to ``floor``.

    Raises:
        ValueError: If there are no sentences, ``order`` < 2 or ``floor_weight`` is not in [0, 1).
    """
    if order < 2:
        raise ValueError(f"order must be 2 or more, not {order}")
    if not 0.0 <= floor_weight < 1.0:
        raise ValueError(f"floor_weight must be in [0, 1), not {floor_weight}")
    counts = _counts(sentences, order)
    if not counts[0]:
        raise ValueError("no sentences to build a language model from")
    probs: list[dict[Ngram, float]] = [_unigrams(counts[0], floor or {}, floor_weight)]
    backoffs: list[dict[Ngram, float]] = []
    for n in range(2, order + 1):
        followers: dict[Ngram, float] = defaultdict(float)
        types: dict[Ngram, int] = defaultdict(int)
        for gram, count in counts[n - 1].items():
            followers[gram[:-1]] += count
            types[gram[:-1]] += 1
        level: dict[Ngram, float] = {}
        for gram, count in counts[n - 1].items():
            hist = gram[:-1]
            lower = probs[n - 2][gram[1:]]
            level[gram] = (count + types[hist] * lower) / (followers[hist] + types[hist])
        probs.append(level)
        backoffs.append({h: types[h] / (followers[h] + types[h]) for h in followers})
    return _format(probs, backoffs)


def _format(probs: list[dict[Ngram, float]], backoffs: list[dict[Ngram, float]]) -> str:
    """Write the model as ARPA text (log10 values, n-grams sorted, ``<s>`` first)."""
    unigrams = dict(probs[0])
    unigrams[(BOS,)] = 0.0
    levels = [unigrams, *probs[1:]]
    lines = ["", "\\data\\"]
    lines += [f"ngram {n}={len(level)}" for n, level in enumerate(levels, 1)]
    for n, level in enumerate(levels, 1):
        lines += ["", f"\\{n}-grams:"]
        alphas = backoffs[n - 1] if n <= len(backoffs) else {}
        for gram in sorted(level):
            prob = NO_PROB if gram == (BOS,) else math.log10(level[gram])
            line = f"{min(prob, 0.0):.6f}\t{' '.join(gram)}"
            if gram in alphas:
                line += f"\t{math.log10(alphas[gram]):.6f}"
            lines.append(line)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def input_hash(parts: Iterable[str | bytes]) -> str:
    """A short stable hash of the inputs a model is built from (each part length-prefixed)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()[:20]


def default_cache_dir() -> Path:
    """``$PAYBOT_CACHE_DIR``, else ``$XDG_CACHE_HOME/paybot``, else ``~/.cache/paybot``."""
    explicit = os.environ.get("PAYBOT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "paybot"


def cached_file(
    cache_dir: Path, name: str, key: str, build: Callable[[], str], suffix: str = ".arpa"
) -> Path:
    """Return ``cache_dir/name-key.suffix``, building and writing it first if it is missing.

    The write is atomic (temporary file, then rename), so processes starting together may
    both build but never read a half-written file. Falls back to the system temporary
    directory when ``cache_dir`` cannot be created.
    """
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache_dir = Path(tempfile.gettempdir()) / "paybot-cache"
        cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{name}-{key}{suffix}"
    if path.is_file():
        return path
    text = build()
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=suffix, dir=cache_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("built %s (%d bytes)", path.name, len(text))
    return path
