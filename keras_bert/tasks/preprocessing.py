"""Text in for the Keras task models: `BertTextPreprocessor`, the tf.data pipelines of `fit(texts, labels)`,
and `load_pretrained` (any checkpoint directory -> encoder + vocabulary)."""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_bert.data import align_word_labels, squad_windows
from keras_bert.tokenization import BertPacker, BertTokenizer


@keras.saving.register_keras_serializable(package="keras_bert")
class BertTextPreprocessor(keras.layers.Layer):
    """Raw strings -> `token_ids`, `segment_ids`, `padding_mask`, in the TF graph (tf.data or SavedModel).

    Batches are truncated to `sequence_length` and padded to their longest sequence. The vocabulary is
    part of the config, so a saved task model carries it.

    Args:
        vocabulary: str path to vocab.txt, or list of str tokens (index = id).
        lowercase: bool. Uncased models: True.
        sequence_length: int. Longest packed sequence, special tokens included.

    Example:
    >>> tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "is", "good"]
    >>> preprocessor = BertTextPreprocessor(tokens, sequence_length=8)
    >>> preprocessor(["the film is good", "good"])["token_ids"].numpy().tolist()
    [[2, 5, 6, 7, 8, 3], [2, 8, 3, 0, 0, 0]]
    """

    def __init__(self, vocabulary, lowercase=True, sequence_length=512, **kwargs):
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.tokenizer = BertTokenizer(vocabulary, lowercase=lowercase, name="tokenizer")
        self.packer = BertPacker.from_tokenizer(self.tokenizer, sequence_length=sequence_length, pad_to_longest=True,
                                                name="packer")
        self.lowercase = bool(lowercase)
        self.sequence_length = int(sequence_length)
        self.built = True

    def call(self, texts):
        """Packs a batch of strings, or a tuple of two batches (text pairs)."""
        if isinstance(texts, (tuple, list)) and len(texts) == 2 and not isinstance(texts[0], str):
            return self.packer(tuple(self.tokenizer(t) for t in texts))
        return self.packer(self.tokenizer(texts))

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.tokenizer.get_vocabulary(), lowercase=self.lowercase,
                      sequence_length=self.sequence_length)
        return config


# --- Recognizing text ---

def _is_strings(value):
    if isinstance(value, (str, bytes)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "USO"
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(v, (str, bytes)) for v in value)
    return False


def is_raw_text(x):
    """Whether `x` is text for a preprocessor (strings, a pair of string lists, word lists, a string dataset)."""
    if isinstance(x, tf.data.Dataset):
        return any(spec.dtype == tf.string for spec in tf.nest.flatten(x.element_spec))
    if isinstance(x, tuple) and len(x) == 2:
        return _is_strings(x[0]) and _is_strings(x[1])
    if isinstance(x, list) and x and all(isinstance(v, (list, tuple)) for v in x):
        return all(_is_strings(list(v)) or not v for v in x)  # Word lists (token classification).
    return _is_strings(x)


def _texts(x):
    """A tuple of one or two lists of str."""
    if isinstance(x, (str, bytes)):
        x = [x]
    if isinstance(x, tuple) and len(x) == 2:
        first, second = list(x[0]), list(x[1])
        if len(first) != len(second):
            raise ValueError(f"a text pair needs two lists of the same length, got {len(first)} and {len(second)}")
        return first, second
    return (list(x),)


# --- Labels ---

def label_ids(y, names, num_classes=None, regression=False):
    """Class ids (from ids or names) or float scores of `y`, with an error naming the bad item.

    Args:
        y: list or array of class names, class ids or (regression) numbers.
        names: list of str or None. The model's class names.
        num_classes: int or None. Ids must lie in `[0, num_classes)`.
        regression: bool. `y` holds scores.
    """
    values = list(np.asarray(y).reshape(-1)) if not isinstance(y, (list, tuple)) else list(y)
    if regression:
        try:
            return np.asarray(values, np.float32)
        except (TypeError, ValueError):
            raise ValueError("regression targets must be numbers") from None
    index = {name: i for i, name in enumerate(names or [])}
    num_classes = len(index) if num_classes is None else num_classes
    ids = []
    for position, value in enumerate(values):
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if isinstance(value, str):
            if value not in index:
                raise ValueError(f"labels[{position}]: {value!r} is not one of the model's labels {names}")
            ids.append(index[value])
        elif float(value).is_integer() and 0 <= int(value) < num_classes:
            ids.append(int(value))
        else:
            raise ValueError(f"labels[{position}]: {value!r} is not a class id in [0, {num_classes})")
    return np.asarray(ids, np.int32)


def _label_lookup(names):
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(names)), tf.range(len(names), dtype=tf.int32)), -1)

    def lookup(labels):
        ids = table.lookup(labels)
        tf.debugging.assert_non_negative(ids, message=f"a label is not one of the model's labels {list(names)}")
        return ids

    return lookup


# --- Datasets ---

def text_dataset(preprocessor, x, labels=None, *, batch_size=32, shuffle=False, seed=None, label_names=None,
                 labelled=True):
    """Batches of packed ids (and labels) from strings or a `tf.data.Dataset` of strings.

    Args:
        preprocessor: `BertTextPreprocessor`.
        x: str list/array, a tuple of two (pairs), or a `tf.data.Dataset` of strings, string pairs,
            or `(strings, labels)`, batched or not; labels may be names (looked up in `label_names`).
        labels: array or None. Class ids or scores for list input.
        batch_size: int. Batch size for list input and unbatched datasets.
        shuffle: bool. Shuffle list input.
        seed: int or None.
        label_names: list of str or None. Class names, for string labels in a dataset.
        labelled: bool. A dataset's elements carry labels (`fit`, `evaluate`), else only text (`predict`).
    """
    if isinstance(x, tf.data.Dataset):
        dataset = x
        text_spec = tf.nest.flatten(dataset.element_spec)[0]
        if text_spec.shape.rank == 0:
            dataset = dataset.batch(batch_size)
        lookup = _label_lookup(label_names) if label_names else None

        def pack(*element):
            texts, y = _split_element(element, labelled)
            features = preprocessor(texts)
            if y is None:
                return features
            if y.dtype == tf.string:
                if lookup is None:
                    raise ValueError("string labels in a dataset need a model with `labels`")
                y = lookup(y)
            return features, y

        return dataset.map(pack, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    texts = _texts(x)
    segments = tuple(tf.constant(t, tf.string) for t in texts)
    dataset = tf.data.Dataset.from_tensor_slices(segments if labels is None else (segments, tf.constant(labels)))
    if shuffle:
        dataset = dataset.shuffle(len(texts[0]), seed=seed)
    dataset = dataset.batch(batch_size)
    if labels is None:
        dataset = dataset.map(lambda *t: preprocessor(t if len(t) == 2 else t[0]))
    else:
        dataset = dataset.map(lambda t, y: (preprocessor(t if len(t) == 2 else t[0]), y))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _split_element(element, with_labels):
    """`(texts, labels or None)` of a dataset element: `text`, `(text, pair)`, `(text, y)`, `((text, pair), y)`."""
    if len(element) == 1:
        return element[0], None
    if len(element) == 2:
        first, second = element
        if isinstance(first, tuple) or with_labels:
            return first, second
        return (first, second), None
    raise ValueError(f"dataset elements must be text, (text, pair) or (texts, labels); got {len(element)} parts")


def as_words(x):
    """A list of word lists: texts are split at whitespace."""
    if isinstance(x, (str, bytes)):
        x = [x]
    return [text.split() if isinstance(text, str) else [str(w) for w in text] for text in x]


def word_examples(preprocessor, x, y, tags):
    """`NerExamples` for word lists (or texts) and their per-word tags (names or ids; None for prediction)."""
    words = as_words(x)
    if y is None:
        y = [[tags[0]] * len(w) for w in words]
    if len(y) != len(words):
        raise ValueError(f"{len(words)} texts but {len(y)} tag sequences")
    sentences = []
    for number, (w, t) in enumerate(zip(words, y)):
        t = [tags[int(tag)] if not isinstance(tag, str) else tag for tag in t]
        if len(t) != len(w):
            raise ValueError(f"text {number}: {len(w)} words but {len(t)} tags")
        sentences.append((w, t, 1))
    return align_word_labels(sentences, preprocessor.tokenizer, list(tags), preprocessor.sequence_length,
                             source="<tags>")


def qa_windows(preprocessor, x, y, doc_stride=128, max_query_length=64):
    """doc_stride windows of `(questions, contexts)`; answers `y` are `{"text", "answer_start"}` dicts or None."""
    questions, contexts = _texts(x) if isinstance(x, tuple) else (None, None)
    if questions is None:
        raise ValueError("question answering takes x=(questions, contexts)")
    answers = [[]] * len(questions) if y is None else y
    if len(answers) != len(questions):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
    records = []
    for i, (question, context, answer) in enumerate(zip(questions, contexts, answers)):
        if isinstance(answer, dict):
            answer = [answer]
        records.append((str(i), question, context, list(answer)))
    features, windows, skipped = squad_windows(
        records, preprocessor.tokenizer, sequence_length=preprocessor.sequence_length,
        doc_stride=min(doc_stride, preprocessor.sequence_length // 2),
        max_query_length=min(max_query_length, preprocessor.sequence_length // 4),
        skip_mismatched_answers=False, source="<answers>")
    return features, windows


# --- Pretrained weights ---

def checkpoint_format(directory):
    """`keras_bert`, `hf` or `tf1`: what kind of model directory `directory` is."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such model directory")
    names = set(os.listdir(directory))
    if "model.keras" in names:
        return "keras_bert"
    if any(n.endswith(".safetensors") for n in names) and "config.json" in names:
        return "hf"
    if "bert_config.json" in names or any(n.endswith(".index") for n in names):
        return "tf1"
    raise ValueError(f"{directory}: not a keras_bert directory (model.keras), a Hugging Face BERT directory "
                     "(config.json + *.safetensors) or a Google TF1 checkpoint (bert_config.json + *.ckpt*)")


def load_pretrained(directory):
    """Loads the encoder and tokenizer settings of any supported model directory.

    Args:
        directory: str. A `keras_bert.save` directory, a Hugging Face BERT directory (safetensors,
            config.json, vocab.txt) or a Google TF1 checkpoint directory.

    Returns:
        tuple `(encoder, vocabulary, lowercase)`; `vocabulary` is a vocab.txt path or a list of tokens.
    """
    import keras_bert
    from keras_bert.checkpoints.hf import import_hf
    from keras_bert.checkpoints.tf1 import import_tf1

    source = checkpoint_format(directory)
    if source == "keras_bert":
        model = keras_bert.load(directory)
        settings = keras_bert.load_tokenizer_settings(directory)
        vocabulary, lowercase = settings.get("vocab_file"), settings.get("lowercase", True)
        preprocessor = getattr(model, "preprocessor", None)
        if vocabulary is None and preprocessor is not None:
            vocabulary = preprocessor.tokenizer.get_vocabulary()
    else:
        model, vocabulary, lowercase = (import_hf if source == "hf" else import_tf1)(directory, heads=False)
    if vocabulary is None:
        raise ValueError(f"{directory} has no vocab.txt: a text-in model needs the model's vocabulary")
    encoder = model if isinstance(model, keras_bert.BertEncoder) else model.encoder
    return encoder, vocabulary, bool(lowercase)
