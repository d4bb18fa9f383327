"""DIET's training batches by sentence length (rasa_plugins/train.py): every example once an
epoch, batches of the epoch's size with the short one last, far less padding, Rasa's own
generator patched only where a sentence has a token sequence, and on the project's own data."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rasa_plugins import train


def padded(lengths: np.ndarray, order: np.ndarray, batch_size: int) -> int:
    """Tokens a DIET batch would hold, padding included, over an epoch taken in ``order``."""
    return sum(
        int(lengths[order[i : i + batch_size]].max()) * len(order[i : i + batch_size])
        for i in range(0, len(order), batch_size)
    )


@pytest.mark.parametrize("seed", range(40))
def test_every_example_once_in_batches_of_about_one_length(seed):
    rng = random.Random(seed)
    count = rng.randrange(1, 3000)
    batch_size = rng.choice([2, 7, 64, 100, 256])
    lengths = np.array([min(1 + int(rng.expovariate(0.3)), 40) for _ in range(count)])
    np.random.seed(seed)
    order = train.bucketed_order(lengths, batch_size, np.random)

    assert sorted(order.tolist()) == list(range(count))  # nothing lost, nothing twice
    full = count // batch_size
    tail = order[full * batch_size :]
    window = batch_size * train.WINDOW
    assert len(tail) == count % batch_size  # the short batch is last, as Rasa counts them
    assert all(i // window == (count - 1) // window for i in tail)
    for start in range(0, full * batch_size, batch_size):
        batch = order[start : start + batch_size]
        assert len({i // window for i in batch}) == 1  # from one window of Rasa's order
    if count >= 4 * batch_size:
        assert padded(lengths, order, batch_size) < padded(lengths, np.arange(count), batch_size)

    np.random.seed(seed)
    assert (train.bucketed_order(lengths, batch_size, np.random) == order).all()  # seeded


def test_the_projects_sentences_pad_far_less():
    """On this project's training sentences (as Rasa tokenises them, the measure
    docs/benchmarks.md gives) an epoch's padded tokens drop by about half (more in the larger
    batches of later epochs)."""
    pytest.importorskip("rasa")
    from rasa.shared.importers.importer import TrainingDataImporter

    importer = TrainingDataImporter.load_from_dict(
        training_data_paths=["nlu_data"], domain_path="bot/domain.yml"
    )
    messages = importer.get_nlu_data().intent_examples
    lengths = np.array([len(m.get("text", "").split()) + 1 for m in messages])  # + the CLS
    assert len(lengths) > 500
    np.random.seed(0)
    shuffled = np.random.permutation(len(lengths))
    lengths = lengths[shuffled]
    for batch_size in (64, 160, 256):
        before = padded(lengths, np.arange(len(lengths)), batch_size)
        after = padded(lengths, train.bucketed_order(lengths, batch_size, np.random), batch_size)
        assert after < 0.6 * before, (batch_size, before, after)


def test_the_generator_is_patched_for_sentences_only(monkeypatch):
    """Through Rasa's own batch generator: DIET-shaped data (a token sequence per example)
    comes out in batches of one length; TED-shaped data (4-D dialogues) and unshuffled
    passes come out exactly as Rasa orders them; installing twice patches once."""
    pytest.importorskip("rasa")
    import scipy.sparse
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator, RasaDataGenerator
    from rasa.utils.tensorflow.model_data import FeatureArray, RasaModelData

    # Rasa's own method is put back after the test: the patch must not leak into other tests.
    monkeypatch.setattr(RasaDataGenerator, "_shuffle_and_balance",
                        RasaDataGenerator._shuffle_and_balance)
    train.install()
    train.install()
    assert RasaBatchDataGenerator._shuffle_and_balance.bucketed
    rng = random.Random(5)
    lengths = [rng.randrange(1, 15) for _ in range(600)]
    sentences = FeatureArray(
        np.array([scipy.sparse.coo_matrix(np.ones((n, 3))) for n in lengths], dtype=object),
        number_of_dimensions=3,
    )
    ids = FeatureArray(np.array([[i] for i in range(600)]), number_of_dimensions=2)
    data = RasaModelData(label_key="label", label_sub_key="ids",
                         data={"text": {"sequence": [sentences]}, "label": {"ids": [ids]}})

    np.random.seed(1)
    generator = RasaBatchDataGenerator(data, batch_size=64, epochs=2, shuffle=True,
                                       batch_strategy="sequence")
    seen, spread = [], []
    for index in range(len(generator)):
        (batch, _target) = generator[index]
        taken = [int(i) for i in batch[-1].ravel()]  # the ids, padded dense
        seen += taken
        sizes = [lengths[i] for i in taken]
        spread.append(max(sizes) - min(sizes))
    assert sorted(seen) == list(range(600))
    assert np.mean(spread) < 4  # drawn at random, a batch of 64 spans nearly 1 to 14

    plain = RasaBatchDataGenerator(data, batch_size=64, epochs=1, shuffle=False,
                                   batch_strategy="sequence")
    (batch, _target) = plain[0]
    assert [int(i) for i in batch[-1].ravel()] == list(range(64))

    dialogues = FeatureArray(
        np.array([[scipy.sparse.coo_matrix(np.ones((2, 3)))] for _ in range(600)], dtype=object),
        number_of_dimensions=4,
    )
    ted = RasaModelData(label_key="label", label_sub_key="ids",
                        data={"text": {"sequence": [dialogues]}, "label": {"ids": [ids]}})
    np.random.seed(2)
    expected = np.random.permutation(600)
    np.random.seed(2)
    generator = RasaBatchDataGenerator(ted, batch_size=64, epochs=1, shuffle=True,
                                       batch_strategy="sequence")
    (batch, _target) = generator[0]
    assert [int(i) for i in batch[-1].ravel()] == expected[:64].tolist()
