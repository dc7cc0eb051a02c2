"""`BertDistiller`: the soft-target and attention losses against NumPy, every loss term falls under `fit`,
students from teachers."""

import keras
import numpy as np
import pytest

import keras_bert
from keras_bert.models.distiller import (BertDistiller, attention_loss, default_layer_map, encoder_flops,
                                         hidden_state_loss, soft_target_loss, student_from_layers,
                                         student_on_encoder)
from tests.test_case import assert_all_close, random_inputs, run_serialization_test, tiny_config


def _numpy_soft_target_loss(teacher, student, temperature):
    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    p_log, q_log = log_softmax(teacher / temperature), log_softmax(student / temperature)
    return float(np.mean(np.sum(np.exp(p_log) * (p_log - q_log), -1)) * temperature ** 2)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_soft_target_loss_equals_numpy_reference(temperature):
    rng = np.random.default_rng(int(temperature))
    teacher = rng.normal(scale=3.0, size=(6, 3)).astype("float32")
    student = rng.normal(scale=3.0, size=(6, 3)).astype("float32")
    expected = _numpy_soft_target_loss(teacher.astype("float64"), student.astype("float64"), temperature)
    got = float(soft_target_loss(teacher, student, temperature))
    assert expected > 0.1
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert float(soft_target_loss(teacher, teacher, temperature)) == pytest.approx(0.0, abs=1e-6)


def test_hidden_state_loss_ignores_padding():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 4, 3)).astype("float32"), rng.normal(size=(2, 4, 3)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], "int32")
    expected = np.mean(((a - b) ** 2)[mask.astype(bool)])
    np.testing.assert_allclose(float(hidden_state_loss(a, b, mask)), expected, rtol=1e-5)


def test_attention_loss_equals_numpy_reference_over_real_rows():
    rng = np.random.default_rng(5)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], "int32")

    def probs():
        scores = rng.normal(scale=2.0, size=(2, 3, 4, 4)) + np.where(mask[:, None, None, :] > 0, 0.0, -np.inf)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        return (p / p.sum(-1, keepdims=True)).astype("float32")

    p, q = probs(), probs()
    kl = np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q.clip(1e-30)), 0.0), -1)  # [batch, heads, rows]
    expected = kl.transpose(0, 2, 1)[mask.astype(bool)].mean()
    np.testing.assert_allclose(float(attention_loss(p, q, mask)), expected, rtol=1e-4)
    assert float(attention_loss(p, p, mask)) == pytest.approx(0.0, abs=1e-6)


def _teacher(num_layers=3, hidden_size=16, kind=keras_bert.BertClassifier, num_heads=2):
    """A tiny teacher whose head gives confident, input-dependent logits (large pooler and output kernels) and peaked attention (large query/key kernels)."""
    keras.utils.set_random_seed(1)
    config = tiny_config(hidden_size=hidden_size, num_layers=num_layers, intermediate_size=2 * hidden_size,
                         num_heads=num_heads)
    teacher = (kind(keras_bert.BertEncoder(config), num_classes=3, labels=["a", "b", "c"])
               if kind is keras_bert.BertClassifier else kind(keras_bert.BertEncoder(config)))
    rng = np.random.default_rng(2)
    for layer in (teacher.encoder.pooler, teacher.get_layer("logits" if kind is keras_bert.BertClassifier else "score")):
        weights = layer.get_weights()
        layer.set_weights([rng.normal(scale=1.0, size=w.shape).astype("float32") for w in weights])
    for block in teacher.encoder.transformer_blocks:  # Peaked attention distributions.
        for variable in block.weights:
            if variable.path.endswith("qkv/kernel"):
                variable.assign(rng.normal(scale=1.0, size=variable.shape).astype("float32"))
    return teacher


def test_student_from_layers_copies_the_chosen_blocks():
    teacher = _teacher()
    student = student_from_layers(teacher, [0, 2])
    assert type(student) is keras_bert.BertClassifier and student.labels == teacher.labels
    assert student.encoder.config.num_layers == 2
    for got, index in zip(student.encoder.transformer_blocks, [0, 2]):
        assert_all_close(got.get_weights(), teacher.encoder.transformer_blocks[index].get_weights(), atol=0)
    assert_all_close(student.get_layer("logits").get_weights(), teacher.get_layer("logits").get_weights(), atol=0)
    # All blocks kept: the same model.
    inputs = random_inputs(vocab_size=50)
    assert_all_close(student_from_layers(teacher, [0, 1, 2])(inputs), teacher(inputs), atol=1e-5)
    with pytest.raises(ValueError, match=r"student_layers \[0, 3\]"):
        student_from_layers(teacher, [0, 3])


def test_pruned_student_is_the_teacher_without_its_weakest_feed_forward_neurons():
    teacher = _teacher()  # intermediate_size 32
    student = student_from_layers(teacher, [0, 2], intermediate_size=12)
    assert student.encoder.config.intermediate_size == 12
    # The same function as keeping every neuron of a teacher whose dropped neurons are silenced.
    silenced = student_from_layers(teacher, [0, 2])
    for block, index in zip(silenced.encoder.transformer_blocks, [0, 2]):
        source = teacher.encoder.transformer_blocks[index]
        inputs = keras.ops.convert_to_numpy(source.intermediate.kernel)
        outputs = keras.ops.convert_to_numpy(source.ffn_output.kernel)
        importance = np.linalg.norm(inputs, axis=0) * np.linalg.norm(outputs, axis=1)
        dropped = np.argsort(importance)[:32 - 12]  # NumPy's own ranking, weakest first.
        kernel = outputs.copy()
        kernel[dropped] = 0.0
        block.ffn_output.kernel.assign(kernel)
    x = random_inputs(vocab_size=50)
    assert_all_close(student(x), silenced(x), atol=1e-5)
    assert not np.allclose(keras.ops.convert_to_numpy(student(x)),
                           keras.ops.convert_to_numpy(student_from_layers(teacher, [0, 2])(x)), atol=1e-3)
    assert encoder_flops(student.encoder.config, 20) < encoder_flops(silenced.encoder.config, 20)
    run_serialization_test(student)
    for bad in (0, 33):
        with pytest.raises(ValueError, match=r"intermediate_size .* must be in \[1, 32\]"):
            student_from_layers(teacher, [0], intermediate_size=bad)


def test_head_pruned_student_is_the_teacher_without_its_weakest_heads():
    teacher = _teacher(num_heads=4)  # hidden 16: 4 heads of 4
    student = student_from_layers(teacher, [0, 2], intermediate_size=12, num_heads=3)
    config = student.encoder.config
    assert (config.num_heads, config.attention_head_size, config.hidden_size) == (3, 4, 16)
    # The same function as keeping every head of a teacher whose dropped heads' outputs are silenced.
    silenced = student_from_layers(teacher, [0, 2], intermediate_size=12)
    for block, index in zip(silenced.encoder.transformer_blocks, [0, 2]):
        source = teacher.encoder.transformer_blocks[index].attention
        value = keras.ops.convert_to_numpy(source.qkv.kernel)[:, 32:].reshape(16, 4, 4)  # [hidden, heads, size]
        output = keras.ops.convert_to_numpy(source.output_dense.kernel).reshape(4, 4, 16)
        importance = np.sqrt((value ** 2).sum(axis=(0, 2))) * np.sqrt((output ** 2).sum(axis=(1, 2)))
        dropped = np.argsort(importance)[0]  # NumPy's own ranking: the weakest head.
        output[dropped] = 0.0
        block.attention.output_dense.kernel.assign(output.reshape(16, 16))
    x = random_inputs(vocab_size=50)
    assert_all_close(student(x), silenced(x), atol=1e-5)
    assert not np.allclose(keras.ops.convert_to_numpy(student(x)),
                           keras.ops.convert_to_numpy(student_from_layers(teacher, [0, 2], 12)(x)), atol=1e-3)
    assert encoder_flops(config, 20) < encoder_flops(silenced.encoder.config, 20)
    run_serialization_test(student)
    for bad in (0, 5):
        with pytest.raises(ValueError, match=r"num_heads .* must be in \[1, 4\]"):
            student_from_layers(teacher, [0], num_heads=bad)


@pytest.mark.parametrize("kind", [keras_bert.BertClassifier, keras_bert.BertRegressor])
def test_every_loss_term_decreases_under_fit(kind):
    teacher = _teacher(kind=kind)
    keras.utils.set_random_seed(3)
    narrow = tiny_config(hidden_size=8, num_layers=2, intermediate_size=16)
    student = student_on_encoder(teacher, keras_bert.BertEncoder(narrow))
    distiller = BertDistiller(student, teacher, temperature=2.0, hard_weight=0.5, hidden_weight=1.0,
                              attention_weight=1.0)
    assert len(distiller.projections) == 2 and distiller.layer_map == default_layer_map(2, 3) == [1, 2]
    x = random_inputs(batch=16, seq=8, vocab_size=50, seed=4)
    teacher_outputs = np.asarray(teacher(x))
    labels = (teacher_outputs.argmax(-1) if kind is keras_bert.BertClassifier else teacher_outputs)
    labelled = (np.arange(16) < 8).astype("float32")  # Half are teacher-labelled only.
    if kind is keras_bert.BertClassifier:
        labels = np.where(labelled > 0, labels, -1).astype("int32")
    y = {"teacher_logits": teacher_outputs, "labels": labels, "labelled": labelled}
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = distiller.fit(x, y, batch_size=16, epochs=30, verbose=0).history
    for term in ("soft_loss", "hard_loss", "hidden_loss", "attention_loss", "loss"):
        assert history[term][-1] < 0.9 * history[term][0], (term, history[term][0], history[term][-1])
    assert not teacher.trainable_weights
    assert_all_close(teacher(x), teacher_outputs, atol=0)  # The teacher is frozen.


def test_distiller_serializes():
    teacher = _teacher()
    distiller = BertDistiller(student_from_layers(teacher, [1]), teacher, temperature=3.0, hidden_weight=0.5,
                              layer_map=[2], attention_weight=0.25)
    restored = run_serialization_test(distiller)
    assert restored.temperature == 3.0 and restored.layer_map == [2] and restored.attention_weight == 0.25


def test_distiller_refuses_what_it_cannot_distil():
    teacher = _teacher()
    wide = student_on_encoder(teacher, keras_bert.BertEncoder(tiny_config(hidden_size=32, num_layers=1)))
    with pytest.raises(ValueError, match="wider than the teacher"):
        BertDistiller(wide, teacher, hidden_weight=1.0)
    heads = student_on_encoder(teacher, keras_bert.BertEncoder(tiny_config(hidden_size=16, num_heads=4)))
    with pytest.raises(ValueError, match="num_heads"):
        BertDistiller(heads, teacher, attention_weight=1.0)
    with pytest.raises(ValueError, match="layer_map"):
        BertDistiller(student_from_layers(teacher, [0]), teacher, hidden_weight=1.0, layer_map=[5])
    with pytest.raises(ValueError, match="teacher is a regression model"):
        BertDistiller(student_from_layers(teacher, [0]), _teacher(kind=keras_bert.BertRegressor))


def test_encoder_flops_scale_with_layers_and_width():
    config = keras_bert.BertConfig.from_preset("bert_tiny")
    assert encoder_flops(config.replace(num_layers=4), 32, False) == pytest.approx(
        2 * encoder_flops(config.replace(num_layers=2), 32, False))
    # The last block at [CLS] only costs a small part of a full block.
    assert encoder_flops(config, 32) < encoder_flops(config, 32, False)
