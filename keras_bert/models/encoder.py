"""`BertEncoder`: the BERT network as a functional Keras model with dict inputs."""

import keras

from keras_bert.config import BertConfig
from keras_bert.layers import BertEmbeddings, BertPooler, TransformerBlock
from keras_bert.models.quantization import quantized_layers, requantize


def as_config(config):
    """Accepts a `BertConfig`, a preset name or a config dict."""
    if isinstance(config, BertConfig):
        return config
    if isinstance(config, str):
        return BertConfig.from_preset(config)
    if isinstance(config, dict):
        return BertConfig.from_dict(config)
    raise TypeError(f"Expected a BertConfig, a preset name or a dict, got {type(config).__name__}")


def encoder_inputs():
    """The three int32 `[batch, seq]` inputs every BERT model takes."""
    return {
        name: keras.Input(shape=(None,), dtype="int32", name=name)
        for name in ("token_ids", "segment_ids", "padding_mask")
    }


def _run_stack(inputs, embeddings, blocks, final_layer_norm, first_token_only=False, attentions=None):
    """Embeddings, then the blocks (the last at the first token only if asked), then the final LayerNorm.

    With a list `attentions`, each block's attention probabilities are appended to it.

    Returns:
        tuple `(output, layer_outputs)`.
    """
    x = embeddings(inputs["token_ids"], inputs["segment_ids"])
    layer_outputs = []
    for index, block in enumerate(blocks):
        x = block(x, inputs["padding_mask"], first_token_only=first_token_only and index == len(blocks) - 1,
                  return_attention_scores=attentions is not None)
        if attentions is not None:
            x, probs = x
            attentions.append(probs)
        layer_outputs.append(x)
    if final_layer_norm is not None:
        x = final_layer_norm(x)
    return x, layer_outputs


@keras.saving.register_keras_serializable(package="keras_bert")
class BertEncoder(keras.Model):
    """The BERT encoder: embeddings, transformer blocks and pooler.

    Inputs are a dict of int32 `[batch, seq]` tensors: `token_ids`,
    `segment_ids` and `padding_mask` (1 for real tokens, 0 for padding).
    Outputs are a dict: `sequence_output` `[batch, seq, hidden]`,
    `pooled_output` `[batch, hidden]`, with `output_all_layers=True`
    `layer_outputs`, the list of every block's output, and with
    `output_attentions=True` `attentions`, the list of every block's float32
    attention probabilities `[batch, heads, seq, seq]` (zero at padded keys;
    the non-fused attention path on every backend). Both settings have the
    same weights, so `set_weights` copies between them.

    Args:
        config: `BertConfig`, preset name or config dict.
        output_all_layers: bool. Also return every block's output.
        output_attentions: bool. Also return every block's attention probabilities.

    Example:
    >>> import numpy as np
    >>> encoder = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=100))
    >>> ids = np.array([[2, 5, 6, 3, 0]], "int32")
    >>> out = encoder({"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": (ids > 0).astype("int32")})
    >>> tuple(out["sequence_output"].shape), tuple(out["pooled_output"].shape)
    ((1, 5, 128), (1, 128))
    """

    def __init__(self, config, output_all_layers=False, output_attentions=False, **kwargs):
        config = as_config(config)
        # === Layers ===
        embeddings = BertEmbeddings(
            vocab_size=config.vocab_size, hidden_size=config.hidden_size,
            max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
            dropout=config.hidden_dropout, layer_norm_epsilon=config.layer_norm_epsilon,
            initializer_range=config.initializer_range, name="embeddings")
        blocks = [
            TransformerBlock(
                hidden_size=config.hidden_size, num_heads=config.num_heads,
                intermediate_size=config.intermediate_size, hidden_act=config.hidden_act,
                dropout=config.hidden_dropout, attention_dropout=config.attention_dropout,
                layer_norm_epsilon=config.layer_norm_epsilon, initializer_range=config.initializer_range,
                pre_layer_norm=config.pre_layer_norm, head_size=config.head_size, name=f"transformer_block_{i}")
            for i in range(config.num_layers)
        ]
        # Pre-LN stacks end with one more LayerNorm; post-LN blocks already end in one.
        final_layer_norm = None
        if config.pre_layer_norm:
            final_layer_norm = keras.layers.LayerNormalization(
                epsilon=config.layer_norm_epsilon, dtype="float32", name="final_layer_norm")
        pooler = BertPooler(config.hidden_size, initializer_range=config.initializer_range, name="pooler")

        # === Functional Model ===
        inputs = encoder_inputs()
        attentions = [] if output_attentions else None
        x, layer_outputs = _run_stack(inputs, embeddings, blocks, final_layer_norm, attentions=attentions)
        outputs = {"sequence_output": x, "pooled_output": pooler(x)}
        if output_all_layers:
            outputs["layer_outputs"] = layer_outputs
        if output_attentions:
            outputs["attentions"] = attentions
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.config = config
        self.output_all_layers = output_all_layers
        self.output_attentions = output_attentions
        self.embeddings = embeddings
        self.transformer_blocks = blocks
        self.final_layer_norm = final_layer_norm
        self.pooler = pooler

    @property
    def token_embedding(self):
        """The token-embedding layer (its matrix is tied to the MLM output projection)."""
        return self.embeddings.token_embedding

    def pooled_output(self, inputs):
        """`pooled_output` of `inputs` with the last block computed at `[CLS]` only.

        The same values as `encoder(inputs)["pooled_output"]`, on this encoder's layers
        (shared weights), for about `1 / num_layers` less work: sentence-level task models
        (`BertClassifier`, `BertRegressor`) build their graph with it.

        Args:
            inputs: dict of `token_ids`, `segment_ids`, `padding_mask` tensors (Keras inputs
                when building a functional model).
        """
        x, _ = _run_stack(inputs, self.embeddings, self.transformer_blocks, self.final_layer_norm,
                          first_token_only=True)
        return self.pooler(x)

    def attentions(self, inputs):
        """Every block's attention probabilities `[batch, heads, seq, seq]` for `inputs`, on this encoder's layers.

        The `attentions` output of `BertEncoder(config, output_attentions=True)`, computed eagerly (or in a
        `tf.function`) by an encoder built without it. (Keras cannot build a functional model on layers whose
        first call returned one output and this one two: `Task.with_attentions` builds one on a copy.)

        Args:
            inputs: dict of `token_ids`, `segment_ids`, `padding_mask` tensors.
        """
        attentions = []
        _run_stack(inputs, self.embeddings, self.transformer_blocks, self.final_layer_norm, attentions=attentions)
        return attentions

    def get_config(self):
        config = {
            "config": self.config.to_dict(),
            "output_all_layers": self.output_all_layers,
            "output_attentions": self.output_attentions,
            "name": self.name,
            "trainable": self.trainable,
        }
        quantized = quantized_layers(self)
        if quantized:  # `encoder.quantize("int8")`: rebuilt float layers would not take the int8 weights.
            config["quantized_layers"] = quantized
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        quantized = config.pop("quantized_layers", None)
        return requantize(cls(**config), quantized)
