"""Rasa's TensorFlow models (DIET, TED) loaded for serving without a training step: the Rasa
server is up in seconds instead of most of a minute.

Rasa 3.6 builds a saved model's variables by compiling it and *training it for one step* on an
example batch (``RasaModel.load``), and only then reads the trained weights over them. Tracing
that training step (the loss, its gradients, the optimizer) was three quarters of the Rasa
process's start-up time (py-spy): about 28 of 36 s on the project's 2-core machine, on every
``paybot up``, every worker and every test stack.

:func:`install` loads the other way round, as TensorFlow's checkpoints allow: the weights are
read first (each variable is restored from the checkpoint as it is created), then one example
batch goes through the prediction path eagerly, which creates exactly the variables prediction
uses, then Rasa's own warm-up traces the prediction function as before. Every variable the
model has must then have come from the checkpoint (``assert_existing_objects_matched``);
anything unexpected (a fine-tuning load, no example batch, a variable the checkpoint does not
hold) falls back to Rasa's own load. ``tests/test_model_load.py`` loads the trained model both
ways and finds the same weights and the same parses.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def install() -> None:
    """Make ``RasaModel.load`` skip the training step when loading for prediction
    (idempotent)."""
    from rasa.utils.tensorflow.models import RasaModel

    if getattr(RasaModel.load, "without_training", False):
        return
    rasas_load = RasaModel.load.__func__  # type: ignore[attr-defined]

    def load(
        cls: type[RasaModel],
        model_file_name: str,
        model_data_example: Any,
        predict_data_example: Any = None,
        finetune_mode: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> RasaModel:
        if not finetune_mode and predict_data_example:
            try:
                return _load_for_prediction(
                    cls, model_file_name, predict_data_example, *args, **kwargs
                )
            except (AssertionError, ValueError) as exc:
                log.warning("%s: loading the Rasa way (%s)", cls.__name__, type(exc).__name__)
        return rasas_load(
            cls,
            model_file_name,
            model_data_example,
            predict_data_example,
            finetune_mode,
            *args,
            **kwargs,
        )

    load.without_training = True  # type: ignore[attr-defined]
    RasaModel.load = classmethod(load)  # type: ignore[method-assign,assignment]


def _load_for_prediction(
    cls: type[Any], model_file_name: str, predict_data_example: Any, *args: Any, **kwargs: Any
) -> Any:
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator

    model = cls(*args, **kwargs)
    status = model.load_weights(model_file_name)  # each variable restored as it is created
    batch = next(iter(RasaBatchDataGenerator(predict_data_example, batch_size=1, shuffle=False)))
    model._training = False  # noqa: SLF001 - Rasa's own flag for "predicting"
    model.prepare_for_predict()
    model.prepared_for_prediction = True
    model.batch_predict(batch[0])  # eagerly: creates (and so restores) what prediction uses
    status.assert_existing_objects_matched()  # every variable came from the checkpoint
    status.expect_partial()  # the optimizer's slots are in the checkpoint, unused here
    model.run_inference(predict_data_example)  # Rasa's warm-up: traces the prediction graph
    return model
