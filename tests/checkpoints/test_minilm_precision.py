"""Real weights (all-MiniLM-L6-v2): bfloat16 and int8 SavedModel exports agree with float32 on real sentences.

Mean-pooled sentence embeddings from `serving_default` (raw text in, the export's own tokenizer) on the
fixture sentences plus SST-2 dev sentences when ../shared/data is present; the float32 side is the Keras
float32 encoder on the same packed ids (`serve_ids` of the same export feeds both).
"""

import json
import os

import numpy as np
import pytest

import keras_bert
from keras_bert import checkpoints
from tests.checkpoints.test_minilm import _cosine, _mean_pool, minilm_dir  # noqa: F401  (fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
SST2_DEV = os.path.join(HERE, "..", "..", "..", "shared", "data", "sst2", "dev.tsv")
# Cosine of each sentence embedding with float32, at least (the int8 scheme: per-channel weights,
# per-token activations; bfloat16: 8-bit mantissas in weights and matmul inputs).
MIN_COSINE = {"bfloat16": 0.995, "int8": 0.99}


def _sentences():
    with open(os.path.join(HERE, "..", "fixtures", "minilm_reference.json")) as f:
        sentences = json.load(f)["sentences"]
    if os.path.exists(SST2_DEV):
        from keras_bert.data import read_text_examples

        sentences += list(read_text_examples(SST2_DEV).texts_a)[:16]
    return sentences


@pytest.fixture(scope="module")
def minilm_model_dir(minilm_dir, tmp_path_factory):  # noqa: F811
    encoder = checkpoints.from_hf(minilm_dir)
    return keras_bert.save(encoder, str(tmp_path_factory.mktemp("minilm") / "model"),
                           vocab_file=os.path.join(minilm_dir, "vocab.txt"))


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_minilm_low_precision_export_agrees_with_float32(minilm_model_dir, precision, tmp_path):
    from keras_bert.export import export_model_dir
    from tests.export.helpers import Tf1Model

    sentences = _sentences()
    path = export_model_dir(minilm_model_dir, str(tmp_path / precision), "embedding", precision=precision,
                            max_length=128, warmup=False, server_configs=False)
    served = Tf1Model(path)
    try:
        embeddings = served.run("serving_default", {"text": sentences})["embedding"]
    finally:
        served.close()
    tokenizer = keras_bert.load_tokenizer(minilm_model_dir)
    from keras_bert.tokenization import BertPacker

    packer = BertPacker.from_tokenizer(tokenizer, sequence_length=128, pad_to_longest=True)
    packed = {k: np.asarray(v) for k, v in packer(tokenizer(np.asarray(sentences))).items()}
    expected = _mean_pool(keras_bert.load(minilm_model_dir), packed)
    cosines = _cosine(embeddings, expected)
    print(f"MiniLM {precision} vs float32 cosine over {len(sentences)} sentences: "
          f"min {cosines.min():.5f}, mean {cosines.mean():.5f}")
    assert cosines.min() >= MIN_COSINE[precision], cosines
    assert cosines.min() < 0.999999  # the export really ran at lower precision
    # The fixture's paraphrase pairs (its first sentences) are still each other's nearest neighbours.
    with open(os.path.join(HERE, "..", "fixtures", "minilm_reference.json")) as f:
        fixture = json.load(f)
    count = len(fixture["sentences"])
    similarity = _cosine(embeddings[:count, None], embeddings[None, :count])
    for i, j in fixture["paraphrases"]:
        assert similarity[i, j] == max(similarity[i, k] for k in range(count) if k != i), (i, j)
