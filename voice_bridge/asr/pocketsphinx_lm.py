"""The free-speech language model for PocketSphinx: the bot's domain, over a floor of English.

PocketSphinx's bundled en-us trigram model is generic; on phone audio it hears "agent" as
"a good" and "a new card" as "new collar". This builds a small trigram model from the
conversation's own sentences (:mod:`voice_bridge.asr.domain_corpus`) with the most frequent
words of that bundled model mixed into its unigrams, so callers can still say something the
bot never anticipated. Only words in PocketSphinx's dictionary are kept. The ARPA file is cached
(:func:`voice_bridge.asr.domain_lm.cached_file`) under a hash of the NLU files, the builder's
source, the options and the model files, so it is built once and then just loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from voice_bridge.asr import domain_corpus, domain_lm

logger = logging.getLogger(__name__)

DEFAULT_NLU_DIR = Path(__file__).resolve().parents[2] / "nlu_data"
"""The Rasa NLU examples of this repository (``nlu_data/``)."""


@dataclass(frozen=True)
class DomainLmOptions:
    """How the domain language model is built.

    Attributes:
        nlu_dir: Directory of Rasa NLU YAML files; ``None`` or a missing directory leaves only
            the grammar phrases (logged as a warning).
        order: n-gram order.
        floor_words: How many of the bundled LM's most frequent words stay possible.
        floor_weight: Share of unigram probability given to those words.
        cache_dir: Where built models are kept (default :func:`domain_lm.default_cache_dir`).

    Measured with ``bench/bench_asr.py --only free,off-domain --set NAME=VALUE``: a bigram
    model made free speech about 8 points worse than the trigram; 1000-10000 floor words and
    weights 0.05-0.4 moved the word error rate by 2 points at most, so the defaults sit in the
    middle.
    """

    nlu_dir: Path | None = DEFAULT_NLU_DIR
    order: int = 3
    floor_words: int = 3000
    floor_weight: float = 0.2
    cache_dir: Path | None = None

    @property
    def nlu_files(self) -> list[Path]:
        """The NLU YAML files, sorted (empty when the directory is missing)."""
        if self.nlu_dir is None or not Path(self.nlu_dir).is_dir():
            return []
        return sorted(Path(self.nlu_dir).glob("*.yml")) + sorted(Path(self.nlu_dir).glob("*.yaml"))


def dictionary_words(dict_path: str | Path) -> set[str]:
    """Words of a CMU-style pronunciation dictionary (alternates like ``read(2)`` folded)."""
    words = set()
    with open(dict_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            head = line.split(maxsplit=1)[0] if line.strip() else ""
            if head:
                words.add(head.split("(", 1)[0])
    return words


def common_words(ps: object, lm_path: str | Path, words: set[str], count: int) -> dict[str, float]:
    """The ``count`` words of ``words`` most probable in an LM, with their unigram probabilities.

    Args:
        ps: The ``pocketsphinx`` module.
        lm_path: A language model PocketSphinx can read (e.g. the bundled ``en-us.lm.bin``).
        words: Candidate words (the dictionary).
        count: How many to keep.
    """
    if count <= 0:
        return {}
    lm = ps.NGramModel.readfile(str(lm_path))
    logmath = ps.LogMath()  # the LM's scores are logs in PocketSphinx's base (1.0001)
    zero = logmath.get_zero()
    scored = [(lm.prob([w]), w) for w in sorted(words)]
    scored = [(s, w) for s, w in scored if s > zero // 2]  # words the LM does not know
    scored.sort(key=lambda sw: (-sw[0], sw[1]))
    return {w: logmath.exp(s) for s, w in scored[:count]}


def domain_lm_file(
    ps: object, options: DomainLmOptions, dict_path: str | Path, generic_lm_path: str | Path
) -> Path:
    """Return the cached ARPA file of the domain model, building it if an input changed.

    Args:
        ps: The ``pocketsphinx`` module.
        options: Corpus and smoothing settings.
        dict_path: PocketSphinx's pronunciation dictionary (only its words are kept).
        generic_lm_path: The bundled generic LM (source of the floor words).

    Raises:
        ValueError: If an NLU file is not valid YAML.
        OSError: If an input cannot be read or the cache cannot be written.
    """
    files = options.nlu_files
    if not files:
        logger.warning("no NLU files in %s: free-speech LM from grammar phrases only",
                       options.nlu_dir)
    key_parts: list[str | bytes] = [
        repr((options.order, options.floor_words, options.floor_weight)),
        repr(domain_corpus.GRAMMAR_LIST_WEIGHT),
        repr(domain_corpus.grammar_sentences()),
        Path(domain_corpus.__file__).read_bytes(),
        Path(domain_lm.__file__).read_bytes(),
        Path(__file__).read_bytes(),
    ]
    for path in (Path(dict_path), Path(generic_lm_path)):
        stat = path.stat()
        key_parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    for path in files:
        key_parts += [path.name, path.read_bytes()]

    def build() -> str:
        known = dictionary_words(dict_path)
        sentences = domain_corpus.domain_sentences(files, known.__contains__)
        floor = common_words(ps, generic_lm_path, known, options.floor_words)
        return domain_lm.build_arpa(
            sentences, order=options.order, floor=floor, floor_weight=options.floor_weight
        )

    cache_dir = options.cache_dir or domain_lm.default_cache_dir()
    return domain_lm.cached_file(
        Path(cache_dir) / "asr", "domain-lm", domain_lm.input_hash(key_parts), build
    )
