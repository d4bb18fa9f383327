"""``rasa train`` as ``paybot train`` runs it: ``python -m rasa_plugins.train ...`` is
``python -m rasa train ...`` with DIET's batches made of sentences of about the same length.

DIET pads every batch to its longest sentence and runs its transformer over the padding too.
Our training sentences are short and uneven (about 1,100, four words on average, the longest
14 on 2026-12-06), so a batch drawn at random was about three times as long as its words: two
thirds of DIET's transformer work was padding (``docs/benchmarks.md``, "Training"). :func:`install`
keeps Rasa's shuffled and balanced order of each epoch and then, within each run of
:data:`WINDOW` batches of it, sorts the sentences by length before cutting the batches, and
shuffles the order of the full batches (the short last one stays last, where Rasa's batch
count expects it). Every sentence is still seen once an epoch, in a batch of the epoch's batch
size; only which sentences share a batch changes. Data without one sequence of tokens per
example (TED's dialogues) and unshuffled passes (prediction, evaluation) are left as Rasa
makes them.
"""

from __future__ import annotations

import sys
from typing import Any

WINDOW = 8  # batches whose sentences are sorted by length together


def bucketed_order(lengths: Any, batch_size: int, rng: Any) -> Any:
    """The order in which to take examples of ``lengths`` (a numpy array, in Rasa's shuffled
    order) so that each batch of ``batch_size`` holds sentences of about the same length: a
    permutation of ``range(len(lengths))``. ``rng`` is numpy's random module (Rasa seeds it)."""
    import numpy as np

    count = len(lengths)
    window = batch_size * WINDOW
    order = np.concatenate(
        [
            start + np.argsort(lengths[start : start + window], kind="stable")
            for start in range(0, count, window)
        ]
        or [np.zeros(0, dtype=int)]
    )
    full = count // batch_size
    batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(full)]
    shuffled = [batches[i] for i in rng.permutation(full)]
    return np.concatenate([*shuffled, order[full * batch_size :]]).astype(int)


def sequence_lengths(data: dict[str, Any]) -> Any:
    """Each example's number of tokens, or None when ``data`` has no token sequence per
    example (a 3-dimensional feature array under ``text``/``sequence``)."""
    import numpy as np
    from rasa.shared.nlu.constants import TEXT
    from rasa.utils.tensorflow.constants import SEQUENCE

    arrays = data.get(TEXT, {}).get(SEQUENCE)
    if not arrays or arrays[0].number_of_dimensions != 3:
        return None
    return np.array([example.shape[0] for example in arrays[0]])


def install() -> None:
    """Make Rasa's batch generator bucket shuffled sentences by length (idempotent)."""
    import numpy as np
    from rasa.utils.tensorflow.data_generator import RasaDataGenerator

    original = RasaDataGenerator._shuffle_and_balance
    if getattr(original, "bucketed", False):
        return

    def _shuffle_and_balance(self: Any, batch_size: int) -> Any:
        data = original(self, batch_size)
        lengths = sequence_lengths(data) if self.shuffle else None
        if lengths is None or batch_size < 2:
            return data
        order = bucketed_order(lengths, batch_size, np.random)
        return self.model_data._data_for_ids(data, order)

    _shuffle_and_balance.bucketed = True  # type: ignore[attr-defined]
    RasaDataGenerator._shuffle_and_balance = _shuffle_and_balance


def main() -> None:
    install()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *sys.argv[1:]]
    rasa_main()


if __name__ == "__main__":
    main()
