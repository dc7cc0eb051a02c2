"""`ServingModule`: tokenizer + packer + Keras model + task post-processing in one TF graph.

Every signature uses only TensorFlow core ops plus the tensorflow-text ops that
TF Serving's stock build registers (see `keras_bert/export/serving_ops_allowlist.txt`).

Character offsets (`start`, `end`, `entity_starts`, `entity_ends`) count Unicode
code points of the UTF-8 input, end exclusive, so that in Python
`text[start:end]` is the answer/entity text (an invalid UTF-8 byte counts as one
character, as `bytes.decode("utf-8", "replace")` does).
"""

import numpy as np
import tensorflow as tf

from keras_bert import tasks
from keras_bert.export.int8 import BUCKETED_KERNELS, row_warmup_shapes
from keras_bert.export.precision import BATCH_BUCKETS, bucket, check_precision, int8_kernel, length_buckets
from keras_bert.models import BertEncoder
from keras_bert.tasks.fill_mask import MASK_TEXT  # noqa: F401  (re-exported)
from keras_bert.tasks.token_classification import TagTable, parse_tag  # noqa: F401  (re-exported)
from keras_bert.tokenization import BertPacker, BertTokenizer

TASKS = tasks.KINDS
_MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask")
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
# task -> (signature key, method_name): TF Serving's Classify / Regress APIs take serialized
# tf.Examples as input `inputs`; outputs `classes` + `scores`, or `outputs`.
EXAMPLE_SIGNATURES = {
    "classification": ("classification", CLASSIFY_METHOD),
    "regression": ("regression", REGRESS_METHOD),
}


def default_max_length(model):
    """Returns the default truncation length: the encoder's `max_position_embeddings`, at most 512.

    Args:
        model: keras.Model. A `BertEncoder` or a model with an `.encoder`.
    """
    return min(int(_encoder_of(model).config.max_position_embeddings), 512)


def _encoder_of(model):
    return model if isinstance(model, BertEncoder) else model.encoder


def task_model(model, task, pooling=None):
    """Checks that `model` fits `task` and returns the Keras model the export runs.

    Args:
        model: keras.Model. What `keras_bert.load` returned.
        task: str. One of `TASKS`.
        pooling: str or None. For "embedding": "mean" (default) or "cls".

    Returns:
        keras.Model: the model itself, or a `BertEmbedder` sharing its encoder.
    """
    kind = tasks.get(task)
    if task == "embedding":
        return kind.check_model(model, pooling)
    if pooling is not None:
        raise ValueError(f"--pooling applies to the embedding task only, not {task!r}")
    return kind.check_model(model)


def _class_names(model):
    labels = getattr(model, "labels", None)
    return [str(label) for label in labels] if labels else [str(i) for i in range(model.num_classes)]


def _string_spec(name):
    return tf.TensorSpec([None], tf.string, name=name)


class ServingModule(tf.Module):
    """A `tf.Module` whose signatures take raw strings, ids, or `tf.Example`s.

    Classification and regression exports also carry TF Serving's `classification` /
    `regression` signature (`EXAMPLE_SIGNATURES`: serialized tf.Examples in `inputs`).

    Args:
        model: keras.Model. The task model (see `task_model`).
        task: str. One of `TASKS`.
        vocabulary: str or list[str]. The WordPiece vocabulary (path or tokens).
        lowercase: bool. Tokenizer casing (uncased models: True).
        max_length: int or None. Truncation length in word pieces including
            specials; None uses `default_max_length(model)`. Batches are padded
            only to their longest sequence.
        pair: bool. For classification/regression: inputs `text` and `text_pair`.
        top_k: int or None. fill_mask: number of predictions (None: 5); summarization: most sentences
            selected per aspect (None: 3).
        max_answer_length: int. For qa: the longest answer, in word pieces.
        doc_stride: int. For token_classification: pieces between the starts of the overlapping windows
            of a text longer than `max_length` (at most half a window), as `keras_bert.data.read_harem`.
        explain_steps: int or None. Add the `explain` signature (`keras_bert.explain.explain_texts`:
            Integrated Gradients with this many steps; classification and regression).
        precision: str or None. The `keras_bert.export.PRECISIONS` name of `model`'s weights
            (None: "float32"). For "int8" its quantized Dense layers run the export kernel
            (`keras_bert.export.int8`); an XLA kernel gets inputs padded to length and batch buckets.
    """

    def __init__(self, model, task, vocabulary, lowercase=True, max_length=None, pair=False, top_k=None,
                 max_answer_length=30, doc_stride=128, explain_steps=None,
                 precision=None):
        super().__init__(name="keras_bert_serving")
        self.kind = tasks.get(task)
        if pair and task not in ("classification", "regression"):
            raise ValueError(f"pair=True applies to classification and regression, not {task!r}")
        limit = int(_encoder_of(model).config.max_position_embeddings)
        max_length = default_max_length(model) if max_length is None else int(max_length)
        if not 3 <= max_length <= limit:
            raise ValueError(f"max_length must be in [3, {limit}] (the model's max_position_embeddings), "
                             f"got {max_length}")
        # === Layers ===
        # Kept out of TF's object tracking: a SavedModel that tracks the Keras objects saves
        # their variables in a form the TF1 loader (TF Serving) cannot restore; `signatures()`
        # tracks the raw tf.Variables the functions capture instead (as keras.export does).
        tokenizer = BertTokenizer(vocabulary, lowercase=lowercase, name="tokenizer")
        self._keras = _Untracked(
            model=model, tokenizer=tokenizer, xla_model=None, token_axis_outputs=None,
            packer=BertPacker.from_tokenizer(tokenizer, sequence_length=max_length, pad_to_longest=True,
                                             name="packer"))
        # === Config ===
        self.task = task
        self.pair = bool(pair)
        self.max_length = max_length
        self.top_k = min(int(self.kind.default_top_k if top_k is None else top_k), self.tokenizer.vocabulary_size())
        self.max_answer_length = int(max_answer_length)
        self.doc_stride = int(doc_stride)
        self.explain_steps = None if explain_steps is None else int(explain_steps)
        self.precision = check_precision(precision)
        self.int8_kernel = int8_kernel(model) if self.precision == "int8" else None
        self.jit_compile = self.int8_kernel == "xla"  # the whole model function
        bucketed = self.int8_kernel in BUCKETED_KERNELS
        self.length_buckets = length_buckets(max_length) if bucketed else ()
        self.batch_buckets = BATCH_BUCKETS if bucketed else ()
        # `serve_ids` input shapes that compile every XLA shape at load (one warmup record each).
        self.warmup_shapes = [(b, n) for b in self.batch_buckets for n in self.length_buckets]
        if self.int8_kernel == "xla_rows":
            self.warmup_shapes = row_warmup_shapes(max_length, BATCH_BUCKETS[-1])
        self.vocabulary = self.tokenizer.get_vocabulary()
        self.is_continuation = np.array([t.startswith("##") for t in self.vocabulary], dtype=bool)
        if task in ("classification", "token_classification"):
            self.class_names = _class_names(model)
        if task == "token_classification":
            self.tag_table = TagTable(self.class_names)
        self.text_inputs = ("text", "text_pair") if pair else self.kind.text_inputs
        self.id_inputs = _MODEL_INPUTS + (("masked_positions",) if task == "fill_mask" else ())
        self._build_functions()

    # ----------------------------------------------------------------- signatures
    def _build_functions(self):
        names = self.text_inputs
        if len(names) == 1:
            def serve_text(text):
                return self.predict_texts({"text": text})
        elif names == ("text", "text_pair"):
            def serve_text(text, text_pair):
                return self.predict_texts({"text": text, "text_pair": text_pair})
        else:
            def serve_text(question, context):
                return self.predict_texts({"question": question, "context": context})
        self.serving_default = tf.function(serve_text, input_signature=[_string_spec(n) for n in names])

        def parse_examples(examples):
            features = {n: tf.io.FixedLenFeature([], tf.string) for n in names}
            return tf.io.parse_example(examples, features)

        def serve_examples(examples):
            return self.predict_texts(parse_examples(examples))
        self.serve_examples = tf.function(serve_examples, input_signature=[_string_spec("examples")])

        if self.task == "classification":
            def classify_examples(inputs):
                scores = self.predict_texts(parse_examples(inputs))["probabilities"]
                classes = tf.broadcast_to(tf.constant(self.class_names), tf.shape(scores))
                return {"classes": classes, "scores": scores}
            self.classify_examples = tf.function(classify_examples, input_signature=[_string_spec("inputs")])
        elif self.task == "regression":
            def regress_examples(inputs):
                return {"outputs": self.predict_texts(parse_examples(inputs))["score"]}
            self.classify_examples = tf.function(regress_examples, input_signature=[_string_spec("inputs")])

        if self.task == "fill_mask":
            def serve_ids(token_ids, segment_ids, padding_mask, masked_positions):
                return self.predict_ids({"token_ids": token_ids, "segment_ids": segment_ids,
                                         "padding_mask": padding_mask, "masked_positions": masked_positions})
        else:
            def serve_ids(token_ids, segment_ids, padding_mask):
                return self.predict_ids({"token_ids": token_ids, "segment_ids": segment_ids,
                                         "padding_mask": padding_mask})
        self.serve_ids = tf.function(
            serve_ids, input_signature=[tf.TensorSpec([None, None], tf.int32, name=n) for n in self.id_inputs])
        if hasattr(self.kind, "id_signature"):  # Inputs other than packed [batch, seq] ids.
            self.serve_ids = self.kind.id_signature(self)

        if self.explain_steps is not None:
            from keras_bert.explain import SERVED_KINDS, explain_texts

            if self.task not in SERVED_KINDS:
                raise ValueError(f"--explain applies to {', '.join(SERVED_KINDS)} exports, not {self.task!r}")

            def explain(*strings):
                return explain_texts(self, dict(zip(names, strings)), steps=self.explain_steps)
            self.explain = tf.function(explain, input_signature=[_string_spec(n) for n in names])

    @property
    def model(self):
        """keras.Model: the task model."""
        return self._keras.model

    @property
    def tokenizer(self):
        """BertTokenizer: the in-graph tokenizer."""
        return self._keras.tokenizer

    @property
    def packer(self):
        """BertPacker: packs segments, truncating to `max_length`."""
        return self._keras.packer

    def signatures(self):
        """Traces the signatures, tracks the variables they use; returns `{name: concrete function}`."""
        functions = {
            "serving_default": self.serving_default.get_concrete_function(),
            "serve_ids": self.serve_ids.get_concrete_function(),
            "serve_examples": self.serve_examples.get_concrete_function(),
        }
        if self.task in EXAMPLE_SIGNATURES:
            functions[EXAMPLE_SIGNATURES[self.task][0]] = self.classify_examples.get_concrete_function()
        if self.explain_steps is not None:
            functions["explain"] = self.explain.get_concrete_function()
        variables = {}
        for function in functions.values():
            for variable in function.variables:
                variables.setdefault(id(variable), variable)
        self._all_variables = list(variables.values())
        return functions

    # ----------------------------------------------------------------- model
    def run_model(self, inputs):
        """The model's raw outputs on packed int ids (a Tensor, or a dict of them)."""
        inputs = {k: tf.cast(v, tf.int32) for k, v in inputs.items()}
        if self.batch_buckets:
            return self._run_bucketed(inputs)
        return self._call_model(inputs)

    def _call_model(self, inputs):
        outputs = self.model(inputs, training=False)
        if isinstance(outputs, dict):
            return {k: tf.convert_to_tensor(v) for k, v in outputs.items()}
        return tf.convert_to_tensor(outputs)

    def _run_bucketed(self, inputs):
        """Pads to the (batch, length) bucket, runs the (XLA-compiled) model, slices the padding off."""
        batch, length = tf.shape(inputs["token_ids"])[0], tf.shape(inputs["token_ids"])[1]
        padded_batch = _bucket_size(batch, self.batch_buckets)
        padded_length = _bucket_size(length, self.length_buckets)
        padded = {}
        for name, value in inputs.items():
            # masked_positions index the length axis: only their batch is padded.
            pad_length = padded_length - length if name in _MODEL_INPUTS else 0
            padded[name] = tf.pad(value, [[0, padded_batch - batch], [0, pad_length]])
        if self._keras.xla_model is None:
            self._keras.token_axis_outputs = _token_axis_outputs(self.model)
            specs = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in inputs}
            self._keras.xla_model = (tf.function(self._call_model, jit_compile=True, input_signature=[specs])
                                     if self.jit_compile else self._call_model)
        outputs = self._keras.xla_model(padded)

        def unpad(name, value):
            value = value[:batch]
            return value[:, :length] if name in self._keras.token_axis_outputs else value

        if isinstance(outputs, dict):
            return {name: unpad(name, value) for name, value in outputs.items()}
        return unpad(None, outputs)

    def predict_ids(self, inputs):
        """Runs the model on packed ids and returns its raw outputs as a dict.

        Args:
            inputs: dict of int32 Tensors `[batch, length]`: `token_ids`, `segment_ids`,
                `padding_mask` (and `masked_positions` `[batch, P]` for fill_mask).
        """
        outputs = self.run_model(inputs)
        return outputs if isinstance(outputs, dict) else {self.kind.output_name: outputs}

    # ----------------------------------------------------------------- text
    def pack_texts(self, texts):
        """Tokenizes and packs the `text` (and `text_pair`) strings."""
        segments = tuple(self.tokenizer(texts[name]) for name in self.text_inputs)
        return self.packer(segments if len(segments) == 2 else segments[0])

    def predict_texts(self, texts):
        """Tokenizes, packs, runs the model and post-processes (the task's `postprocess`): dense outputs.

        Args:
            texts: dict of tf.string Tensors `[batch]` keyed by `self.text_inputs`.
        """
        return self.kind.postprocess(self, texts)


def _bucket_size(size, buckets):
    """In-graph `keras_bert.export.precision.bucket`: the smallest bucket >= size, else a multiple of the last."""
    table = tf.constant(buckets, tf.int32)
    index = tf.minimum(tf.searchsorted(table, tf.reshape(size, [1]), side="left")[0], len(buckets) - 1)
    last = buckets[-1]
    return tf.where(size <= last, tf.gather(table, index), (size + last - 1) // last * last)


def _token_axis_outputs(model):
    """Names of the outputs whose second axis is the token axis (None: a single such output).

    Traced symbolically with an unknown sequence length and one masked position, so
    `mlm_logits` `[batch, positions, vocab]` is not mistaken for a per-token output.
    """
    import keras

    specs = {name: keras.KerasTensor((None, None), "int32", name=name) for name in _MODEL_INPUTS}
    if "masked_positions" in [getattr(i, "name", None) for i in keras.tree.flatten(model.inputs)]:
        specs["masked_positions"] = keras.KerasTensor((None, 1), "int32", name="masked_positions")
    outputs = model.compute_output_spec(specs)
    items = outputs.items() if isinstance(outputs, dict) else [(None, outputs)]
    return {name for name, spec in items if len(spec.shape) >= 2 and spec.shape[1] is None}


class _Untracked:
    """A plain attribute holder that TF's object tracking does not look into."""

    def __init__(self, **attributes):
        self.__dict__.update(attributes)
