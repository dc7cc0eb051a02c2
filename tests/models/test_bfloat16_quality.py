"""bfloat16 training must not move quality: same steps, MLM accuracy within 1 point of float32."""

import keras
import numpy as np
import pytest

import keras_bert

VOCAB, SEQ, PREDICTIONS, BATCH, STEPS = 64, 16, 3, 32, 200


def _batches(rng, count):
    """Two segments, each one random token repeated; the masked tokens are copies of unmasked ones.

    A tiny model learns this to near-perfect accuracy in a few hundred steps in
    either precision (it needs attention restricted by segment), so the two
    accuracies can be compared to the point.
    """
    pair = rng.integers(4, VOCAB, size=(count, 2))
    segments = (np.arange(SEQ) >= SEQ // 2).astype("int32")[None].repeat(count, axis=0)
    tokens = np.where(segments == 0, pair[:, :1], pair[:, 1:]).astype("int32")
    positions = np.sort(np.stack([rng.choice(np.arange(1, SEQ - 1), PREDICTIONS, replace=False)
                                  for _ in range(count)]), axis=1).astype("int32")
    labels = np.take_along_axis(tokens, positions, axis=1)
    masked = tokens.copy()
    np.put_along_axis(masked, positions, 3, axis=1)  # [MASK] = 3
    x = {"token_ids": masked, "segment_ids": segments,
         "padding_mask": np.ones_like(masked), "masked_positions": positions}
    y = {"mlm_labels": labels, "mlm_weights": np.ones(labels.shape, "float32"),
         "nsp_labels": np.zeros((count,), "int32")}
    return x, y


def _train_and_evaluate(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(7)
        config = keras_bert.BertConfig(vocab_size=VOCAB, hidden_size=64, num_layers=2, num_heads=2,
                                       intermediate_size=128, max_position_embeddings=SEQ,
                                       hidden_dropout=0.0, attention_dropout=0.0)
        model = keras_bert.BertPretrainer(keras_bert.BertEncoder(config))
        model.compile(optimizer=keras.optimizers.Adam(2e-3))
        rng = np.random.default_rng(0)
        x, y = _batches(rng, BATCH * STEPS)
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        x_eval, y_eval = _batches(np.random.default_rng(1), 512)
        logits = model.predict(x_eval, batch_size=128, verbose=0)["mlm_logits"]
        assert logits.dtype == np.float32
        return float(np.mean(np.argmax(logits, axis=-1) == y_eval["mlm_labels"]))
    finally:
        keras.config.set_dtype_policy(previous)


def test_bfloat16_mlm_accuracy_matches_float32():
    accuracy_f32 = _train_and_evaluate("float32")
    accuracy_bf16 = _train_and_evaluate("mixed_bfloat16")
    # The task must be learned at all, or the comparison says nothing.
    assert accuracy_f32 > 0.9, accuracy_f32
    assert abs(accuracy_bf16 - accuracy_f32) <= 0.01, (accuracy_f32, accuracy_bf16)
