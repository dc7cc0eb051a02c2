"""In-graph BERT WordPiece tokenizer as a Keras layer (TF Serving compatible ops only)."""

import functools
import os

import keras
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.core.pybinds import pywrap_fast_bert_normalizer_model_builder
from tensorflow_text.core.pybinds import pywrap_fast_wordpiece_tokenizer_model_builder
from tensorflow_text.python.ops.fast_bert_normalizer import FastBertNormalizer
from tensorflow_text.python.ops.fast_wordpiece_tokenizer import FastWordpieceTokenizer

from keras_bert.tokenization.vocabulary import load_vocabulary, validate_vocabulary

# Characters original BERT's `_clean_text` deletes (not replaces by a space): NUL, U+FFFD and
# every Unicode "C*" category character except tab/newline/carriage return (which are whitespace).
# FastBertNormalize would turn them into spaces and split words ("d\x92água" -> "d", "água"),
# so we delete them first. Invalid UTF-8 bytes are deleted as well (decoded as U+FFFD).
_CONTROL_CHARS_REGEX = r"[^\P{C}\t\n\r]|\x{FFFD}"
_CONTROL_CATEGORY_REGEX = _CONTROL_CHARS_REGEX

# Uncased normalisation, as original BERT's BasicTokenizer: Python `str.lower()`, then NFD and deletion
# of the "Mn" (non-spacing combining mark) characters. No NFKC compatibility mapping, no case folding.
# tf.strings.lower (the core StringLower op, ICU) follows the process's ICU default locale (LANG): in
# Turkish/Azeri "I" -> "ı", in Lithuanian "I", "J", "Į", "Ì", "Í", "Ĩ" gain a combining dot. These
# are the only locale-dependent lower-case mappings (CLDR/SpecialCasing), so they are replaced first by
# what the root locale gives after accent stripping ("İ" -> "i̇" -> "i", "Ì" -> "ì" -> "i", ...).
_LOCALE_SENSITIVE_I_REGEX = "[I\u00cc\u00cd\u0128\u012e\u0130]"
_NONSPACING_MARK_REGEX = r"\p{Mn}"


def _lowercase_and_strip_accents(strings):
    """str.lower() + NFD + deletion of Mn characters, with TF Serving ops (StringLower, NormalizeUTF8,
    StaticRegexReplace). Context-dependent only through the final sigma ("ΑΣ" -> "ας"), as str.lower()."""
    strings = tf.strings.regex_replace(strings, _LOCALE_SENSITIVE_I_REGEX, "i")
    strings = tf.strings.regex_replace(strings, "J", "j")
    strings = tf.strings.lower(strings, encoding="utf-8")
    strings = tf_text.normalize_utf8(strings, "NFD")
    return tf.strings.regex_replace(strings, _NONSPACING_MARK_REGEX, "")


def _in_keras_safe_mode():
    """Whether Keras is deserializing with `safe_mode=True` (load_model, deserialize_keras_object).

    Keras 3.15 has no public accessor; `serialization_lib.in_safe_mode()` returns True/False inside a
    `SafeModeScope` (which `from_config` runs in) and None outside one.
    """
    try:
        from keras.src.saving.serialization_lib import in_safe_mode
    except ImportError:  # pragma: no cover - a Keras without it: assume the safe default.
        return True
    return bool(in_safe_mode())


def _refuse_path_in_safe_mode(vocabulary, where):
    if isinstance(vocabulary, (str, bytes, os.PathLike)) and _in_keras_safe_mode():
        raise ValueError(
            f"{where}: the config's vocabulary is a file path ({os.fsdecode(vocabulary)!r}), which Keras "
            "safe mode does not allow to be read: a model config could otherwise make loading read any "
            "file. Saved keras_bert models store the vocabulary tokens; re-save the model, or "
            "turn Keras safe mode off only for a file you trust."
        )


@functools.lru_cache(maxsize=4)
def _normalizer_model(lowercase_and_strip_accents):
    return pywrap_fast_bert_normalizer_model_builder.build_fast_bert_normalizer_model(
        lowercase_and_strip_accents
    )


def _wordpiece_model(vocabulary, unknown_token, max_bytes_per_word):
    return pywrap_fast_wordpiece_tokenizer_model_builder.build_fast_wordpiece_model(
        list(vocabulary), max_bytes_per_word, "##", unknown_token, False, False
    )


@keras.saving.register_keras_serializable(package="keras_bert")
class BertTokenizer(keras.layers.Layer):
    """Turns raw UTF-8 strings into BERT word-piece ids, inside the TensorFlow graph.

    Follows original BERT's BasicTokenizer + WordpieceTokenizer: control characters
    deleted, whitespace normalised, punctuation and CJK characters split; when
    uncased, lower-casing with accent stripping (NFD, drop combining marks). Built on
    tensorflow-text's FastBertNormalize and FastWordpieceTokenizeWithOffsets ops, both
    registered by TF Serving's stock build, so the layer can be exported with a model.

    Uncased normalisation is original BERT's: `str.lower()` (StringLower), NFD (NormalizeUTF8),
    deletion of "Mn" marks (StaticRegexReplace); no NFKC, no case folding ("ﬁ", "½", "ß" kept).
    The differences left against HF `tokenizers` over all code points (Unicode table versions,
    HF's own deviations from original BERT) are listed in tests/tokenization/test_code_point_sweep.py.

    Args:
        vocabulary: str path to vocab.txt, or list[str] of tokens (index = id). The config
            (`get_config`) always holds the tokens; a path in a config is refused while
            Keras deserializes in safe mode.
        lowercase: bool, lower-case the text (uncased models).
        strip_accents: bool or None; None follows `lowercase` as in BERT. Only
            `strip_accents == lowercase` is supported by the in-graph normaliser.
        unknown_token: str, token for words that cannot be split into pieces.
        max_bytes_per_word: int, words longer than this become `unknown_token`.
        **kwargs: standard Keras layer arguments (name, ...).
    """

    def __init__(
        self,
        vocabulary,
        lowercase=True,
        strip_accents=None,
        unknown_token="[UNK]",
        max_bytes_per_word=100,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        if strip_accents is None:
            strip_accents = lowercase
        if bool(strip_accents) != bool(lowercase):
            raise ValueError(
                "BertTokenizer supports lowercase=True with accent stripping (uncased BERT) "
                "or lowercase=False without it (cased BERT); got "
                f"lowercase={lowercase}, strip_accents={strip_accents}."
            )
        # Also guards layers that build a tokenizer from their own config (BertTextPreprocessor).
        _refuse_path_in_safe_mode(vocabulary, "BertTokenizer")
        if isinstance(vocabulary, (str, os.PathLike)):
            tokens = load_vocabulary(vocabulary)
        else:
            tokens = list(vocabulary)
            validate_vocabulary(tokens)
        if unknown_token not in tokens:
            raise ValueError(f"unknown_token {unknown_token!r} is not in the vocabulary")
        self.vocabulary = tokens
        self.lowercase = bool(lowercase)
        self.strip_accents = bool(strip_accents)
        self.unknown_token = unknown_token
        self.max_bytes_per_word = int(max_bytes_per_word)
        self._token_to_id = {token: index for index, token in enumerate(tokens)}
        # Lower-casing and accent stripping are done before (see `_normalize`); FastBertNormalize only
        # does BERT's whitespace / CJK handling (its own uncased mode is NFKC case folding, not BERT's).
        self._normalizer = FastBertNormalizer(model_buffer=_normalizer_model(False))
        self._wordpiece = FastWordpieceTokenizer(
            model_buffer=_wordpiece_model(tokens, unknown_token, self.max_bytes_per_word),
            token_out_type=tf.int32,
        )
        self.built = True

    # ----------------------------------------------------------------- vocabulary
    def vocabulary_size(self):
        """Returns the number of tokens in the vocabulary.

        Returns:
            int: the vocabulary size.
        """
        return len(self.vocabulary)

    def get_vocabulary(self):
        """Returns the vocabulary as a list of tokens (index = id).

        Returns:
            list[str]: a copy of the vocabulary.
        """
        return list(self.vocabulary)

    def id_to_token(self, token_id):
        """Maps one id to its token.

        Args:
            token_id: int, a vocabulary id.

        Returns:
            str: the token.
        """
        token_id = int(token_id)
        if not 0 <= token_id < len(self.vocabulary):
            raise ValueError(f"id {token_id} is outside the vocabulary (size {len(self.vocabulary)})")
        return self.vocabulary[token_id]

    def token_to_id(self, token):
        """Maps one token to its id.

        Args:
            token: str, a vocabulary token.

        Returns:
            int: the id.
        """
        if token not in self._token_to_id:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return self._token_to_id[token]

    @property
    def pad_token_id(self):
        """int: id of [PAD]."""
        return self._token_to_id["[PAD]"]

    @property
    def cls_token_id(self):
        """int: id of [CLS]."""
        return self._token_to_id["[CLS]"]

    @property
    def sep_token_id(self):
        """int: id of [SEP]."""
        return self._token_to_id["[SEP]"]

    @property
    def mask_token_id(self):
        """int: id of [MASK]."""
        return self._token_to_id["[MASK]"]

    @property
    def unknown_token_id(self):
        """int: id of the unknown token."""
        return self._token_to_id[self.unknown_token]

    # ----------------------------------------------------------------- tokenizing
    @staticmethod
    def _to_string_tensor(inputs):
        if not isinstance(inputs, (tf.Tensor, tf.RaggedTensor)):
            inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
        if inputs.dtype != tf.string:
            raise ValueError(f"BertTokenizer expects tf.string input, got {inputs.dtype}")
        return inputs

    def _normalize(self, strings):
        return _lowercase_and_strip_accents(strings) if self.lowercase else strings

    def call(self, inputs):
        """Tokenizes a batch of strings into word-piece ids.

        Args:
            inputs: tf.string Tensor of shape [batch] (or a scalar).

        Returns:
            tf.RaggedTensor of int32, shape [batch, (pieces)] (or [(pieces)] for a scalar).
        """
        inputs = self._to_string_tensor(inputs)
        scalar = inputs.shape.rank == 0
        if scalar:
            inputs = tf.expand_dims(inputs, 0)
        cleaned = tf.strings.unicode_transcode(
            inputs, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        cleaned = tf.strings.regex_replace(cleaned, _CONTROL_CHARS_REGEX, "")
        normalized = self._normalizer.normalize(self._normalize(cleaned))
        token_ids = self._wordpiece.tokenize(normalized)
        return token_ids[0] if scalar else token_ids

    def tokenize(self, inputs):
        """Same as calling the layer: strings -> ragged word-piece ids.

        Args:
            inputs: tf.string Tensor of shape [batch].

        Returns:
            tf.RaggedTensor of int32, shape [batch, (pieces)].
        """
        return self(inputs)

    def tokenize_with_offsets(self, inputs):
        """Tokenizes strings and returns each piece's byte span in the original string.

        Args:
            inputs: tf.string Tensor of shape [batch].

        Returns:
            tuple (token_ids, starts, ends) of int32/int64 RaggedTensors [batch, (pieces)]:
            ids, and the start (inclusive) / end (exclusive) UTF-8 byte offsets of each
            piece in the input string (a "##" piece covers only its own characters).
        """
        inputs = self._to_string_tensor(inputs)
        # Decode (invalid bytes -> U+FFFD, one "character" per bad byte), drop control chars.
        codepoints, char_starts = tf.strings.unicode_decode_with_offsets(
            inputs, "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        byte_lengths = tf.strings.length(inputs, unit="BYTE")
        # Each character's byte length = next character's start (or the string's length) - its start.
        # Computed on flat values so that empty strings (no characters) get no entry.
        flat_starts = char_starts.flat_values
        row_ids = char_starts.value_rowids()
        is_last = tf.equal(tf.range(tf.size(flat_starts, out_type=row_ids.dtype)) + 1,
                           tf.gather(char_starts.row_splits[1:], row_ids))
        following = tf.concat([flat_starts[1:], tf.zeros([1], flat_starts.dtype)], axis=0)[:tf.size(flat_starts)]
        next_flat = tf.where(is_last, tf.cast(tf.gather(byte_lengths, row_ids), flat_starts.dtype), following)
        char_byte_lengths = char_starts.with_flat_values(next_flat - flat_starts)
        char_strings = tf.strings.unicode_encode(
            tf.expand_dims(codepoints, -1), "UTF-8"
        )
        is_control = tf.strings.regex_full_match(char_strings, _CONTROL_CATEGORY_REGEX)
        keep = tf.logical_not(is_control)
        kept_codepoints = tf.ragged.boolean_mask(codepoints, keep)
        kept_starts = tf.ragged.boolean_mask(char_starts, keep)
        kept_lengths = tf.ragged.boolean_mask(char_byte_lengths, keep)
        cleaned = tf.strings.unicode_encode(kept_codepoints, "UTF-8")
        # The text is normalised as a whole (exactly as `call`); each kept character's normalised byte
        # length (0 when it is only a mark) maps the normalised bytes back to it. Per character and as a
        # whole the lengths are the same: only the final sigma depends on context (σ/ς, 2 bytes both).
        kept_strings = tf.ragged.boolean_mask(char_strings, keep)
        normalized_lengths = kept_strings.with_flat_values(
            tf.strings.length(self._normalize(kept_strings.flat_values), unit="BYTE")
        )
        normalized_text = self._normalize(cleaned)
        # char_of_byte[b] = index (in the flat kept characters) of the character normalised byte b comes from.
        flat_char_index = tf.range(tf.size(normalized_lengths.flat_values, out_type=tf.int64))
        per_byte = tf.repeat(flat_char_index, tf.cast(normalized_lengths.flat_values, tf.int64))
        byte_row_splits = tf.gather(
            tf.concat([[0], tf.cumsum(tf.cast(normalized_lengths.flat_values, tf.int64))], axis=0),
            normalized_lengths.row_splits,
        )
        char_of_byte = tf.RaggedTensor.from_row_splits(per_byte, byte_row_splits)
        flat_char_starts = tf.cast(kept_starts.flat_values, tf.int64)
        flat_char_ends = flat_char_starts + tf.cast(kept_lengths.flat_values, tf.int64)
        normalized, norm_offsets = self._normalizer.normalize_with_offsets(normalized_text)
        token_ids, norm_starts, norm_ends = self._wordpiece.tokenize_with_offsets(normalized)
        text_starts = tf.gather(norm_offsets, norm_starts, axis=-1, batch_dims=-1)
        text_ends = tf.gather(norm_offsets, norm_ends, axis=-1, batch_dims=-1)
        char_of_byte = tf.cast(char_of_byte, text_starts.dtype)
        first_chars = tf.gather(char_of_byte, text_starts, axis=-1, batch_dims=-1)
        last_chars = tf.gather(char_of_byte, text_ends - 1, axis=-1, batch_dims=-1)
        starts = tf.ragged.map_flat_values(tf.gather, flat_char_starts, first_chars)
        ends = tf.ragged.map_flat_values(tf.gather, flat_char_ends, last_chars)
        return token_ids, starts, ends

    def detokenize(self, token_ids):
        """Maps ids back to text: tokens joined by spaces, "##" pieces joined to the piece before.

        `qu ##ick` -> "quick". The text is the normalised one (uncased: lower-case, no accents) and
        punctuation stays split ("hello , world"), as BERT's tokens are.

        Args:
            token_ids: int Tensor or RaggedTensor of shape [batch, (pieces)] (or [(pieces)]).

        Returns:
            tf.string Tensor [batch] (or a scalar).
        """
        table = tf.constant(self.vocabulary)
        if isinstance(token_ids, tf.RaggedTensor):
            tokens = tf.ragged.map_flat_values(tf.gather, table, token_ids)
        else:
            tokens = tf.gather(table, token_ids)
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        return tf.strings.regex_replace(text, " ##", "")

    def compute_output_spec(self, inputs):
        return keras.KerasTensor([None, None], dtype="int32", ragged=True)

    @classmethod
    def from_config(cls, config):
        """Builds the layer from `get_config()`; a vocabulary *path* is refused in Keras safe mode.

        Raises:
            ValueError: when `config["vocabulary"]` is a str path and Keras is in safe mode
                (`keras.saving.load_model(..., safe_mode=True)`, the default).
        """
        _refuse_path_in_safe_mode(config.get("vocabulary"), "BertTokenizer.from_config")
        return cls(**config)

    def get_config(self):
        # The tokens themselves, never a path: a saved model is self-contained and loading reads no file.
        config = super().get_config()
        config.update(
            {
                "vocabulary": list(self.vocabulary),
                "lowercase": self.lowercase,
                "strip_accents": self.strip_accents,
                "unknown_token": self.unknown_token,
                "max_bytes_per_word": self.max_bytes_per_word,
            }
        )
        return config
