"""Knowledge distillation: a student task model learns a fine-tuned teacher's outputs (and, optionally, its hidden
states), with `model.fit`.

The losses (all `keras.ops`):

- `soft_target_loss`: KL(softmax(teacher / T) || softmax(student / T)) * T^2 (Hinton et al.);
- the hard-label loss of the student's task, on the labelled examples only;
- `hidden_state_loss`: MSE between student block outputs (through a learned projection when the widths differ)
  and the teacher block each one is mapped to (TinyBERT);
- `attention_loss`: KL between the teacher's and the student's self-attention distributions of mapped blocks
  (MiniLM, TinyBERT), over the real query rows.

Example:
>>> import numpy as np
>>> teacher = np.array([[2.0, -1.0]], "float32"); student = np.array([[0.5, 0.0]], "float32")
>>> round(float(soft_target_loss(teacher, student, temperature=2.0)), 3)
0.586
"""

import keras
import numpy as np
from keras import ops

from keras_bert.models.encoder import BertEncoder, _run_stack
from keras_bert.models.tasks import BertClassifier, BertRegressor

# The student task models `BertDistiller` distils into (the hard-label loss and soft target depend on the kind).
DISTILLABLE = {"classification": BertClassifier, "regression": BertRegressor}
LOSS_TERMS = ("soft_loss", "hard_loss", "hidden_loss", "attention_loss")


def soft_target_loss(teacher_logits, student_logits, temperature=2.0):
    """Mean over the batch of KL(softmax(teacher / T) || softmax(student / T)), times T^2.

    Args:
        teacher_logits: float tensor `[batch, classes]`.
        student_logits: float tensor `[batch, classes]`.
        temperature: float. Softens both distributions; T^2 keeps the gradients' scale.
    """
    teacher = ops.cast(teacher_logits, "float32") / temperature
    student = ops.cast(student_logits, "float32") / temperature
    teacher_log_p = ops.log_softmax(teacher, axis=-1)
    student_log_p = ops.log_softmax(student, axis=-1)
    kl = ops.sum(ops.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    return ops.mean(kl) * (temperature ** 2)


def hidden_state_loss(teacher_hidden, student_hidden, padding_mask):
    """MSE between two `[batch, seq, hidden]` tensors over the real (unpadded) tokens.

    Args:
        teacher_hidden: float tensor `[batch, seq, hidden]`.
        student_hidden: float tensor `[batch, seq, hidden]` (already projected to the teacher's width).
        padding_mask: int tensor `[batch, seq]`, 1 for real tokens.
    """
    mask = ops.cast(padding_mask, "float32")[..., None]
    squared = ops.square(ops.cast(student_hidden, "float32") - ops.cast(teacher_hidden, "float32")) * mask
    width = ops.cast(ops.shape(teacher_hidden)[-1], "float32")
    return ops.sum(squared) / ops.maximum(ops.sum(mask) * width, 1.0)


def attention_loss(teacher_probs, student_probs, padding_mask):
    """Mean KL(teacher || student) of attention distributions `[batch, heads, seq, seq]` over real query rows.

    Args:
        teacher_probs: float tensor `[batch, heads, seq, seq]`; each query row sums to 1 over the keys.
        student_probs: float tensor of the same shape (the same number of heads).
        padding_mask: int tensor `[batch, seq]`, 1 for real tokens.
    """
    p = ops.cast(teacher_probs, "float32")
    q = ops.cast(student_probs, "float32")
    kl = ops.sum(p * (ops.log(p + 1e-9) - ops.log(q + 1e-9)), axis=-1)  # [batch, heads, queries]
    rows = ops.cast(padding_mask, "float32")[:, None, :] * ops.ones_like(kl)
    return ops.sum(kl * rows) / ops.maximum(ops.sum(rows), 1.0)


def default_layer_map(student_layers, teacher_layers):
    """The teacher block each student block learns from: evenly spaced, the last on the last (TinyBERT)."""
    return [round((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]


def check_layer_map(layer_map, student_layers, teacher_layers):
    """Raises `ValueError` naming `layer_map` unless it maps each student block to a teacher block."""
    layer_map = list(layer_map)
    if len(layer_map) != student_layers or not all(isinstance(i, int) and 0 <= i < teacher_layers
                                                   for i in layer_map):
        raise ValueError(f"layer_map {layer_map} must give, for each of the student's {student_layers} blocks, "
                         f"a teacher block in [0, {teacher_layers})")
    return layer_map


def _head_layers(model):
    """The layers of a functional task model after its encoder's pooler (dropout, output dense, reshape)."""
    layers = model.layers
    pooler = next(i for i, layer in enumerate(layers) if layer is model.encoder.pooler)
    return layers[pooler + 1:]


def _encode_all(model, x, training, attentions=None):
    """`(head output, block outputs)` of a sentence-level task model, with every block over every token (and each
    block's attention probabilities appended to the list `attentions`)."""
    encoder = model.encoder
    sequence, blocks = _run_stack(x, encoder.embeddings, encoder.transformer_blocks, encoder.final_layer_norm,
                                  attentions=attentions)
    # The blocks inherit `training` from this call (Keras' call context), as in the task model's own graph.
    out = encoder.pooler(sequence)
    for layer in _head_layers(model):
        out = layer(out, training=training) if "Dropout" in type(layer).__name__ else layer(out)
    return out, blocks


@keras.saving.register_keras_serializable(package="keras_bert")
class BertDistiller(keras.Model):
    """Trains a student task model on a teacher's soft targets, the hard labels and, optionally, hidden states.

    Targets for `fit` are a dict: `teacher_logits` (`[batch, classes]`, or `[batch]` scores for regression;
    computed once per example and cached by `training.distill`), `labels` (class ids or scores) and `labelled`
    (1.0 where the example has a gold label, 0.0 for teacher-labelled text). Each loss term is a metric
    (`soft_loss`, `hard_loss` and, when on, `hidden_loss` and `attention_loss`). Only the student (and the projections) are trained; save
    `distiller.student`.

    Args:
        student: `BertClassifier` or `BertRegressor`.
        teacher: task model of the same kind, or None. Needed only for `hidden_weight` or `attention_weight`
            (its hidden states are computed each step; its logits come in the targets). Frozen.
        temperature: float. Softmax temperature of the soft targets (classification).
        soft_weight: float. Weight of the soft-target loss (regression: MSE to the teacher's score).
        hard_weight: float. Weight of the hard-label loss on labelled examples.
        hidden_weight: float. Weight of the hidden-state MSE.
        attention_weight: float. Weight of the attention-distribution KL (the student needs the teacher's
            number of heads).
        layer_map: list of int or None. The teacher block for each student block (hidden states and
            attentions); None: `default_layer_map`.

    Example (needs a trained teacher):

        distiller = BertDistiller(student, teacher, temperature=2.0, hard_weight=0.5, hidden_weight=1.0)
        distiller.compile(optimizer="adam")
        distiller.fit(x, {"teacher_logits": t, "labels": y, "labelled": ones})
    """

    def __init__(self, student, teacher=None, temperature=2.0, soft_weight=1.0, hard_weight=0.0,
                 hidden_weight=0.0, layer_map=None, attention_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        kind = getattr(student, "task_kind", None)
        if kind not in DISTILLABLE or not isinstance(student, DISTILLABLE[kind]):
            raise ValueError(f"student must be one of {sorted(DISTILLABLE)} task models, got {type(student).__name__}")
        if teacher is not None and getattr(teacher, "task_kind", None) != kind:
            raise ValueError(f"teacher is a {getattr(teacher, 'task_kind', type(teacher).__name__)} model, "
                             f"the student a {kind} model")
        if (hidden_weight or attention_weight) and teacher is None:
            raise ValueError("hidden_weight or attention_weight > 0 needs the teacher model")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.student = student
        self.teacher = teacher
        self.encoder = student.encoder  # What checkpoints record as the model's shape.
        self.temperature = float(temperature)
        self.soft_weight = float(soft_weight)
        self.hard_weight = float(hard_weight)
        self.hidden_weight = float(hidden_weight)
        self.attention_weight = float(attention_weight)
        self.layer_map = None
        self.projections = []
        if teacher is not None:
            teacher.trainable = False
            s, t = student.encoder.config, teacher.encoder.config
            self.layer_map = check_layer_map(layer_map or default_layer_map(s.num_layers, t.num_layers),
                                             s.num_layers, t.num_layers)
            if hidden_weight and s.hidden_size != t.hidden_size:
                if s.hidden_size > t.hidden_size:
                    raise ValueError(f"the student's hidden_size ({s.hidden_size}) is wider than the teacher's "
                                     f"({t.hidden_size}): the hidden-state projection maps a narrower student up")
                for i in range(s.num_layers):
                    projection = keras.layers.Dense(t.hidden_size, name=f"hidden_projection_{i}")
                    projection.build((None, None, s.hidden_size))
                    self.projections.append(projection)
            if attention_weight and s.num_heads != t.num_heads:
                raise ValueError(f"the student's num_heads ({s.num_heads}) differs from the teacher's "
                                 f"({t.num_heads}): attention distributions are compared head by head")
        active = LOSS_TERMS[:2] + (("hidden_loss",) if self.hidden_weight else ()) + (
            ("attention_loss",) if self.attention_weight else ())
        self.loss_trackers = {name: keras.metrics.Mean(name=name) for name in active}

    @property
    def task_kind(self):
        return self.student.task_kind

    def call(self, x, training=False):
        if not (self.hidden_weight or self.attention_weight):
            return {"logits": self.student(x, training=training)}
        student_attentions = [] if self.attention_weight else None
        teacher_attentions = [] if self.attention_weight else None
        logits, student_blocks = _encode_all(self.student, x, training, student_attentions)
        _, teacher_blocks = _encode_all(self.teacher, x, False, teacher_attentions)
        projected = [p(h) for p, h in zip(self.projections, student_blocks)] if self.projections else student_blocks
        outputs = {"logits": logits, "student_hidden": projected,
                   "teacher_hidden": [ops.stop_gradient(teacher_blocks[i]) for i in self.layer_map],
                   "padding_mask": x["padding_mask"]}
        if self.attention_weight:
            outputs["student_attentions"] = student_attentions
            outputs["teacher_attentions"] = [ops.stop_gradient(teacher_attentions[i]) for i in self.layer_map]
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits = ops.cast(y_pred["logits"], "float32")
        labelled = ops.cast(y["labelled"], "float32")
        count = ops.maximum(ops.sum(labelled), 1.0)
        if self.task_kind == "regression":
            soft = ops.mean(ops.square(logits - ops.cast(y["teacher_logits"], "float32")))
            hard = ops.sum(ops.square(logits - ops.cast(y["labels"], "float32")) * labelled) / count
        else:
            soft = soft_target_loss(y["teacher_logits"], logits, self.temperature)
            labels = ops.maximum(ops.cast(y["labels"], "int32"), 0)  # Unlabelled rows (-1) are masked out below.
            cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            hard = ops.sum(cross_entropy * labelled) / count
        total = self.soft_weight * soft + self.hard_weight * hard
        hidden = ops.zeros(())
        if self.hidden_weight:
            terms = [hidden_state_loss(t, s, y_pred["padding_mask"])
                     for t, s in zip(y_pred["teacher_hidden"], y_pred["student_hidden"])]
            hidden = ops.mean(ops.stack(terms))
            total = total + self.hidden_weight * hidden
        attention = ops.zeros(())
        if self.attention_weight:
            terms = [attention_loss(t, s, y_pred["padding_mask"])
                     for t, s in zip(y_pred["teacher_attentions"], y_pred["student_attentions"])]
            attention = ops.mean(ops.stack(terms))
            total = total + self.attention_weight * attention
        for name, value in zip(LOSS_TERMS, (soft, hard, hidden, attention)):
            if name in self.loss_trackers:
                self.loss_trackers[name].update_state(value)
        if self.student.losses:
            total = total + ops.sum(self.student.losses)
        return total

    def get_config(self):
        return {
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": None if self.teacher is None else keras.saving.serialize_keras_object(self.teacher),
            "temperature": self.temperature, "soft_weight": self.soft_weight, "hard_weight": self.hard_weight,
            "hidden_weight": self.hidden_weight, "attention_weight": self.attention_weight,
            "layer_map": self.layer_map, "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("student", "teacher"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def encoder_flops(config, sequence_length, first_token_only_last=True):
    """Multiply-adds x 2 of one sequence through a `BertConfig`'s blocks (embeddings and pooler aside).

    Args:
        config: `BertConfig`.
        sequence_length: int or float. Tokens per sequence (e.g. the mean of a data set).
        first_token_only_last: bool. The last block at `[CLS]` only, as sentence-level task models run it.
    """
    h, inter, n = config.hidden_size, config.intermediate_size, float(sequence_length)
    a = config.num_heads * config.attention_head_size  # The heads' total width.

    def block(rows):  # K and V over every token; Q, scores, output and FFN for `rows` query rows.
        return 2 * (2 * n * h * a + rows * h * a + 2 * rows * n * a + rows * a * h + 2 * rows * h * inter)

    full = block(n)
    last = block(1.0) if first_token_only_last else full
    return (config.num_layers - 1) * full + last


def student_from_layers(teacher, layers, intermediate_size=None, num_heads=None):
    """A student of the teacher's class with a subset of its blocks (DistilBERT-style), their weights copied.

    Args:
        teacher: `BertClassifier` or `BertRegressor`.
        layers: list of int. Teacher blocks to keep, in order (e.g. `[0, 2, 4]`).
        intermediate_size: int or None. Feed-forward neurons each kept block keeps (default: all): those with the
            largest product of their input and output weight norms, a structured pruning of the feed-forward
            network that cuts its cost in proportion.
        num_heads: int or None. Attention heads each kept block keeps (default: all): those with the largest
            product of their value and output weight norms. They keep the teacher's head width, so the query,
            key, value and output projections shrink in proportion.

    Returns:
        The student task model (embeddings, the chosen blocks, pooler and head: the teacher's weights).
    """
    t = teacher.encoder.config
    layers = list(layers)
    if not layers or not all(isinstance(i, int) and 0 <= i < t.num_layers for i in layers):
        raise ValueError(f"student_layers {layers} must be teacher blocks in [0, {t.num_layers})")
    intermediate_size = t.intermediate_size if intermediate_size is None else intermediate_size
    if not (isinstance(intermediate_size, int) and 1 <= intermediate_size <= t.intermediate_size):
        raise ValueError(f"intermediate_size {intermediate_size!r} must be in [1, {t.intermediate_size}] (the "
                         f"teacher's feed-forward width)")
    num_heads = t.num_heads if num_heads is None else num_heads
    if not (isinstance(num_heads, int) and 1 <= num_heads <= t.num_heads):
        raise ValueError(f"num_heads {num_heads!r} must be in [1, {t.num_heads}] (the teacher's heads)")
    head_size = t.head_size if num_heads == t.num_heads else t.attention_head_size
    encoder = BertEncoder(t.replace(num_layers=len(layers), intermediate_size=intermediate_size,
                                    num_heads=num_heads, head_size=head_size))
    student = _same_head(teacher, encoder)
    encoder.embeddings.set_weights(teacher.encoder.embeddings.get_weights())
    for block, index in zip(encoder.transformer_blocks, layers):
        source = teacher.encoder.transformer_blocks[index]
        neurons = ffn_neurons(source, intermediate_size)
        columns = head_columns(source.attention, attention_heads(source.attention, num_heads))
        qkv = np.concatenate([columns + part * source.attention.attention_size for part in range(3)])
        # The same layer class, so the same variables in the same order; only the kept neurons' and heads'
        # rows and columns differ.
        rows = {id(source.intermediate.kernel): (slice(None), neurons), id(source.intermediate.bias): neurons,
                id(source.ffn_output.kernel): neurons,
                id(source.attention.qkv.kernel): (slice(None), qkv), id(source.attention.qkv.bias): qkv,
                id(source.attention.output_dense.kernel): columns}
        for target, weight in zip(block.weights, source.weights):
            value = ops.convert_to_numpy(weight)
            target.assign(value[rows[id(weight)]] if id(weight) in rows else value)
    if encoder.final_layer_norm is not None:
        encoder.final_layer_norm.set_weights(teacher.encoder.final_layer_norm.get_weights())
    encoder.pooler.set_weights(teacher.encoder.pooler.get_weights())
    copy_head(teacher, student)
    return student


def ffn_neurons(block, count):
    """The `count` feed-forward neurons of a `TransformerBlock` with the largest ||input weights|| x ||output
    weights||, in their original order (int array)."""
    inputs = ops.convert_to_numpy(block.intermediate.kernel)  # [hidden, intermediate]
    outputs = ops.convert_to_numpy(block.ffn_output.kernel)  # [intermediate, hidden]
    importance = np.linalg.norm(inputs, axis=0) * np.linalg.norm(outputs, axis=1)
    return np.sort(np.argsort(-importance, kind="stable")[:count])


def attention_heads(attention, count):
    """The `count` heads of a `SelfAttention` with the largest ||value weights|| x ||output weights||, in their
    original order (int array)."""
    heads, size = attention.num_heads, attention.head_size
    qkv = ops.convert_to_numpy(attention.qkv.kernel)  # [hidden, 3 * heads * size]: query, key, value.
    value = qkv[:, 2 * heads * size:].reshape(-1, heads, size)
    output = ops.convert_to_numpy(attention.output_dense.kernel).reshape(heads, size, -1)
    importance = np.linalg.norm(value, axis=(0, 2)) * np.linalg.norm(output, axis=(1, 2))
    return np.sort(np.argsort(-importance, kind="stable")[:count])


def head_columns(attention, heads):
    """The columns of one of a `SelfAttention`'s query, key or value projections (or the output projection's
    rows) that belong to `heads` (int array)."""
    size = attention.head_size
    return (np.asarray(heads)[:, None] * size + np.arange(size)[None, :]).reshape(-1)


def _same_head(teacher, encoder):
    """A task model of the teacher's class and head arguments on `encoder`."""
    return type(teacher)(encoder, **{key: getattr(teacher, key) for key in teacher.config_keys})


def copy_head(teacher, student):
    """Copies the teacher's head weights (layers after the pooler) where the shapes match; returns the names."""
    copied = []
    teacher_head = {layer.name: layer for layer in _head_layers(teacher)}
    for layer in _head_layers(student):
        source = teacher_head.get(layer.name)
        if source is None or not layer.weights:
            continue
        if [w.shape for w in source.get_weights()] == [tuple(v.shape) for v in layer.weights]:
            layer.set_weights(source.get_weights())
            copied.append(layer.name)
    return copied


def student_on_encoder(teacher, encoder):
    """A student of the teacher's class and labels on another encoder (pretrained or fresh); the head is copied
    from the teacher when the widths match."""
    student = _same_head(teacher, encoder)
    copy_head(teacher, student)
    return student
