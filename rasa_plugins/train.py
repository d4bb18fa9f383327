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

:func:`install_diet_step` makes DIET's first training step cheaper to build. TensorFlow
traces a ``tf.function`` twice when its first call creates variables (once to create them,
once without), and DIET's training step made every weight on its first call: about an eighth
of DIET's time went on tracing (py-spy, 2026-12-07). Before ``fit`` one batch now
runs eagerly (the layers build their weights) and the optimizer makes its slots, so the step
is traced once. And in training the step no longer decodes the CRF's best tag sequence
(Viterbi, a loop as costly to trace as the loss itself) only to report the entity F1 on the
progress bar: the loss needs the CRF's likelihood, not its decode. Prediction, evaluation and
the saved model are unchanged.
"""

from __future__ import annotations

import sys
from typing import Any

from rasa_plugins import training_lanes

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


def _entity_loss_without_decode(original: Any) -> Any:
    """DIET's entity loss for training steps: the CRF's loss without its decode (F1 0)."""
    import tensorflow as tf

    def _calculate_entity_loss(
        self: Any, inputs: Any, tag_ids: Any, mask: Any, sequence_lengths: Any,
        tag_name: str, entity_tags: Any = None,
    ) -> Any:
        crf = self._tf_layers[f"crf.{tag_name}"]
        if not self._training or not crf.built:
            return original(self, inputs, tag_ids, mask, sequence_lengths, tag_name, entity_tags)
        tag_ids = tf.cast(tag_ids[:, :, 0], tf.int32)
        if entity_tags is not None:
            inputs = tf.concat([inputs, self._tf_layers[f"embed.{tag_name}.tags"](entity_tags)], -1)
        logits = self._tf_layers[f"embed.{tag_name}.logits"](inputs)
        return crf.loss(logits, tag_ids, sequence_lengths), tf.zeros(()), logits

    _calculate_entity_loss.patched = True  # type: ignore[attr-defined]
    return _calculate_entity_loss


def _fit_built(original: Any) -> Any:
    """DIET's ``fit`` with every variable made before the training step is traced."""

    def fit(self: Any, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not self.trainable_variables and len(x):
            batch, _ = x[0]
            self._training = True
            try:
                self.batch_loss(batch)  # eagerly: each layer builds its weights
            finally:
                self._training = None
            self.optimizer.build(self.trainable_variables)
            # The entity F1 is not computed in training any more (above): not shown.
            self.metrics_to_log = [m for m in self.metrics_to_log if not m.endswith("_f1")]
        return original(self, x, *args, **kwargs)

    fit.patched = True  # type: ignore[attr-defined]
    return fit


def install_diet_step() -> None:
    """Trace DIET's training step once and without the CRF's decode (idempotent)."""
    from rasa.nlu.classifiers.diet_classifier import DIET

    if getattr(DIET.fit, "patched", False):
        return
    DIET._calculate_entity_loss = _entity_loss_without_decode(DIET._calculate_entity_loss)
    DIET.fit = _fit_built(DIET.fit)


def main() -> None:
    install()
    install_diet_step()
    training_lanes.install()
    try:
        rasa_main_with_argv()
    finally:
        training_lanes.stop_worker()


def rasa_main_with_argv() -> None:
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *sys.argv[1:]]
    rasa_main()


if __name__ == "__main__":
    main()
