"""TrainingState: a truncated newest checkpoint falls back to the previous one; nothing readable is an error."""

import glob
import os

import keras
import numpy as np
import pytest

import keras_bert
from keras_bert.trainer import ConfigError, TrainingState


def _model():
    keras.backend.clear_session()  # Layer names (part of the checkpoint's signature) as in a fresh process.
    config = keras_bert.BertConfig.from_preset("bert_tiny", vocab_size=50, hidden_size=8, num_layers=1, num_heads=2,
                                               intermediate_size=16, max_position_embeddings=8)
    model = keras_bert.BertClassifier(keras_bert.BertEncoder(config), num_classes=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def _truncate(directory, step):
    for path in glob.glob(os.path.join(directory, f"ckpt-{step}.data-*")):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)


def _save_two_checkpoints(directory):
    """Checkpoints at step 10 (first kernel all 1.0) and 20 (all 2.0); returns the listing as after step 10."""
    keras.utils.set_random_seed(0)
    model = _model()
    state = TrainingState(str(directory), model)
    kernel = model.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, 1.0, "float32"))
    state.save(10)
    listing = (directory / "checkpoint").read_text()
    kernel.assign(np.full(kernel.shape, 2.0, "float32"))
    state.save(20)
    return listing


def _restore(directory):
    keras.utils.set_random_seed(1)
    restored = _model()
    step = TrainingState(str(directory), restored).restore_or_start()
    return step, restored.trainable_variables[0].numpy()


def test_truncated_newest_checkpoint_falls_back_to_previous(tmp_path):
    _save_two_checkpoints(tmp_path)
    _truncate(str(tmp_path), 20)
    step, kernel = _restore(tmp_path)
    assert step == 10
    np.testing.assert_array_equal(kernel, 1.0)


def test_checkpoint_missing_from_the_listing_is_still_restored(tmp_path):
    # A kill after a checkpoint's files are written but before the `checkpoint` listing is rewritten.
    listing = _save_two_checkpoints(tmp_path)
    (tmp_path / "checkpoint").write_text(listing)
    step, kernel = _restore(tmp_path)
    assert step == 20
    np.testing.assert_array_equal(kernel, 2.0)


def test_no_readable_checkpoint_is_an_error(tmp_path):
    model = _model()
    state = TrainingState(str(tmp_path), model)
    state.save(5)
    _truncate(str(tmp_path), 5)
    with pytest.raises(ConfigError, match="no readable checkpoint"):
        TrainingState(str(tmp_path), _model()).restore_or_start()


def test_fresh_directory_starts_at_zero(tmp_path):
    assert TrainingState(str(tmp_path / "new"), _model()).restore_or_start() == 0
