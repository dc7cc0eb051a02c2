"""The tokenizer + packer graph (tf.function and SavedModel) uses only allow-listed ops."""

import os

import pytest
import tensorflow as tf

from keras_bert.tokenization import (
    BertPacker,
    BertTokenizer,
    disallowed_ops,
    list_graph_ops,
    load_allowlist,
)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "!", "a"]


class _Preprocessor(tf.Module):
    def __init__(self):
        super().__init__()
        self.tokenizer = BertTokenizer(VOCAB, lowercase=True)
        self.packer = BertPacker.from_tokenizer(self.tokenizer, sequence_length=8)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])
    def pack_pair(self, first, second):
        return self.packer((self.tokenizer(first), self.tokenizer(second)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize_with_offsets(self, text):
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(text)
        return {"ids": ids.to_tensor(), "starts": starts.to_tensor(), "ends": ends.to_tensor()}


@pytest.fixture(scope="module")
def module():
    return _Preprocessor()


def test_allowlist_excludes_trimmer_ops():
    allowed = load_allowlist()
    assert "FastWordpieceTokenizeWithOffsets" in allowed
    for op in ("RoundRobinTrim", "TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks", "TFText>Utf8Binarize"):
        assert op not in allowed


def test_tf_function_graph_uses_only_allowed_ops(module):
    for function in (module.pack_pair, module.tokenize_with_offsets):
        concrete = function.get_concrete_function()
        ops = list_graph_ops(concrete)
        assert "FastWordpieceTokenizeWithOffsets" in ops
        assert not disallowed_ops(concrete), sorted(ops - load_allowlist())


def test_saved_model_graph_uses_only_allowed_ops(module, tmp_path):
    export_dir = str(tmp_path / "preprocessor")
    tf.saved_model.save(
        module,
        export_dir,
        signatures={
            "pack_pair": module.pack_pair.get_concrete_function(),
            "tokenize_with_offsets": module.tokenize_with_offsets.get_concrete_function(),
        },
    )
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    graph_def = saved_model.meta_graphs[0].graph_def
    ops = list_graph_ops(graph_def)
    assert "FastBertNormalize" in ops
    assert ops <= load_allowlist(), sorted(ops - load_allowlist())

    restored = tf.saved_model.load(export_dir)
    out = restored.signatures["pack_pair"](
        first=tf.constant(["Hello worlds!"]), second=tf.constant(["a"])
    )
    assert out["token_ids"].numpy().tolist() == [[2, 5, 6, 7, 8, 3, 9, 3]]
    assert out["segment_ids"].numpy().tolist() == [[0, 0, 0, 0, 0, 0, 1, 1]]


def test_list_graph_ops_rejects_other_types():
    with pytest.raises(TypeError):
        list_graph_ops(42)
