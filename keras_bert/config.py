"""`BertConfig`: the shape and hyperparameters of a BERT encoder, with presets."""

import dataclasses
import json
import typing

# Hugging Face `hidden_act` names -> what they compute (`keras_bert.layers.get_activation` maps each to its function).
ACTIVATIONS = {
    "gelu": "gelu_erf",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
    "tanh": "tanh",
}
# The names of GELU's tanh approximation (Google BERT's code and keras-hub compute this one).
TANH_GELU = tuple(name for name, function in ACTIVATIONS.items() if function == "gelu_tanh")

# Our field name -> the Hugging Face `config.json` key.
_HF_KEYS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "hidden_act": "hidden_act",
    "hidden_dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "initializer_range": "initializer_range",
    "layer_norm_epsilon": "layer_norm_eps",
    "pad_token_id": "pad_token_id",
}

# Written only by models whose heads are not `hidden_size // num_heads` wide.
_HEAD_SIZE_KEY = "attention_head_size"


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Shape and hyperparameters of a BERT encoder.

    Args:
        vocab_size: int. Number of word pieces in the vocabulary.
        hidden_size: int. Width of every transformer layer.
        num_layers: int. Number of transformer blocks.
        num_heads: int. Attention heads per block; must divide `hidden_size` unless
            `head_size` is set.
        intermediate_size: int. Width of the feed-forward inner layer.
        hidden_act: str. Feed-forward activation, named as Hugging Face's
            `hidden_act`: `"gelu"` is the exact erf form, `"gelu_new"`,
            `"gelu_pytorch_tanh"` and `"gelu_fast"` the tanh approximation.
        hidden_dropout: float. Dropout after embeddings and sublayers.
        attention_dropout: float. Dropout on attention probabilities.
        max_position_embeddings: int. Longest sequence the encoder accepts.
        type_vocab_size: int. Number of segment ids.
        initializer_range: float. Stddev of the truncated-normal initializer.
        layer_norm_epsilon: float. Epsilon of every LayerNorm.
        pre_layer_norm: bool. LayerNorm before each sublayer (pre-LN) instead
            of after the residual (post-LN, as the original BERT).
        pad_token_id: int. Id of `[PAD]`.
        lowercase: bool. Whether the vocabulary is uncased (tokenizer hint).
        head_size: int or None. Width of each attention head; None: `hidden_size //
            num_heads` (every checkpoint layout). A student with pruned heads sets it.

    Example:
    >>> config = BertConfig.from_preset("bert_tiny", vocab_size=1000)
    >>> config.hidden_size
    128
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_epsilon: float = 1e-12
    pre_layer_norm: bool = False
    pad_token_id: int = 0
    lowercase: bool = True
    head_size: typing.Optional[int] = None

    def __post_init__(self):
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"BertConfig.hidden_act={self.hidden_act!r} is not one of {tuple(ACTIVATIONS)}")
        if self.head_size is not None and (not isinstance(self.head_size, int) or isinstance(self.head_size, bool)
                                           or self.head_size <= 0):
            raise ValueError(f"BertConfig.head_size must be a positive int or None, got {self.head_size!r}")
        if self.head_size is None and self.hidden_size % self.num_heads:
            raise ValueError(
                f"BertConfig.hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}"
            )
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"BertConfig.{name} must be a positive int, got {value!r}")

    @property
    def attention_head_size(self):
        """The width of each attention head (`head_size`, or `hidden_size // num_heads`)."""
        return self.head_size if self.head_size is not None else self.hidden_size // self.num_heads

    @property
    def has_standard_heads(self):
        """Whether the heads together are as wide as the hidden size, as every checkpoint layout has them."""
        return self.num_heads * self.attention_head_size == self.hidden_size

    # --- presets -----------------------------------------------------------

    @classmethod
    def from_preset(cls, name, **overrides):
        """Returns the preset `name` (see `BertConfig.presets()`), with keyword overrides."""
        if name not in PRESETS:
            raise ValueError(f"Unknown BERT preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
        return cls(**{**PRESETS[name], **overrides})

    @staticmethod
    def presets():
        """Names of the built-in presets."""
        return sorted(PRESETS)

    def replace(self, **changes):
        """Returns a copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # --- dict / JSON -----------------------------------------------------

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Builds a config from our own dict or from a Hugging Face `config.json` dict."""
        if "num_hidden_layers" in values or "num_attention_heads" in values:
            return cls.from_hf_dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown BertConfig keys: {unknown}")
        return cls(**values)

    def to_hf_dict(self):
        """The Hugging Face `BertConfig` dict (`config.json` keys)."""
        hf = {hf_key: getattr(self, key) for key, hf_key in _HF_KEYS.items()}
        if self.head_size is not None:  # Not a Hugging Face key: only a pruned-head model writes it.
            hf[_HEAD_SIZE_KEY] = self.head_size
        hf.update(model_type="bert", architectures=["BertForPreTraining"], position_embedding_type="absolute")
        return hf

    @classmethod
    def from_hf_dict(cls, hf):
        """Reads a Hugging Face `config.json` dict; keys outside BERT's shape are ignored."""
        missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads") if k not in hf]
        if missing:
            raise ValueError(f"Hugging Face BERT config is missing keys {missing}")
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"Unsupported position_embedding_type={hf['position_embedding_type']!r}")
        values = {key: hf[hf_key] for key, hf_key in _HF_KEYS.items() if hf_key in hf and hf[hf_key] is not None}
        values.setdefault("intermediate_size", 4 * values["hidden_size"])
        if hf.get(_HEAD_SIZE_KEY) is not None:
            values["head_size"] = hf[_HEAD_SIZE_KEY]
        return cls(**values)

    def to_json(self, path=None, hf=True):
        """Writes (or returns) JSON; `hf=True` uses the Hugging Face `config.json` keys."""
        text = json.dumps(self.to_hf_dict() if hf else self.to_dict(), indent=2, sort_keys=True)
        if path is None:
            return text
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        return path

    @classmethod
    def from_json(cls, path_or_text):
        """Reads our JSON or a Hugging Face `config.json` (a path or a JSON string)."""
        text = path_or_text
        source = "<string>"
        if not str(path_or_text).lstrip().startswith("{"):
            source = str(path_or_text)
            with open(path_or_text, encoding="utf-8") as f:
                text = f.read()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}: not valid JSON ({e})") from e
        try:
            return cls.from_dict(values)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from e


def _shape(layers, hidden, **kw):
    return dict(num_layers=layers, hidden_size=hidden, num_heads=max(1, hidden // 64),
                intermediate_size=4 * hidden, **kw)


PRESETS = {
    # The 24 small BERTs (Turc et al., 2019) by their common names; all uncased, 30522 word pieces.
    "bert_tiny": _shape(2, 128),
    "bert_mini": _shape(4, 256),
    "bert_small": _shape(4, 512),
    "bert_medium": _shape(8, 512),
    "bert_base": _shape(12, 768),
    "bert_large": _shape(24, 1024),
    "bert_base_cased": _shape(12, 768, vocab_size=28996, lowercase=False),
    "bert_base_multilingual_cased": _shape(12, 768, vocab_size=119547, lowercase=False),
    # BERTimbau (neuralmind/bert-{base,large}-portuguese-cased).
    "bertimbau_base": _shape(12, 768, vocab_size=29794, lowercase=False),
    "bertimbau_large": _shape(24, 1024, vocab_size=29794, lowercase=False),
}
# The remaining small-BERT grid points: bert_L{2,4,6,8,10,12}_H{128,256,512,768}.
for _layers in (2, 4, 6, 8, 10, 12):
    for _hidden in (128, 256, 512, 768):
        PRESETS[f"bert_L{_layers}_H{_hidden}"] = _shape(_layers, _hidden)
