import json

import pytest

from keras_bert import BertConfig


def test_presets_have_documented_shapes():
    shapes = {name: (BertConfig.from_preset(name).num_layers, BertConfig.from_preset(name).hidden_size)
              for name in ("bert_tiny", "bert_mini", "bert_small", "bert_medium", "bert_base", "bert_large")}
    assert shapes == {"bert_tiny": (2, 128), "bert_mini": (4, 256), "bert_small": (4, 512),
                      "bert_medium": (8, 512), "bert_base": (12, 768), "bert_large": (24, 1024)}
    for name in ("bertimbau_base", "bertimbau_large"):
        config = BertConfig.from_preset(name)
        assert config.vocab_size == 29794 and not config.lowercase
    # All 24 small BERTs exist.
    assert len([n for n in BertConfig.presets() if n.startswith("bert_L")]) == 24
    assert BertConfig.from_preset("bert_L6_H512").num_heads == 8


def test_preset_overrides_and_unknown_preset():
    assert BertConfig.from_preset("bert_base", vocab_size=1000).vocab_size == 1000
    with pytest.raises(ValueError, match="Unknown BERT preset 'nope'"):
        BertConfig.from_preset("nope")


def test_hf_json_round_trip(tmp_path):
    config = BertConfig.from_preset("bert_mini", hidden_act="gelu_new", layer_norm_epsilon=1e-7)
    path = config.to_json(str(tmp_path / "config.json"))
    hf = json.load(open(path))
    assert hf["num_hidden_layers"] == 4 and hf["hidden_act"] == "gelu_new" and hf["layer_norm_eps"] == 1e-7
    assert BertConfig.from_json(path) == config
    assert BertConfig.from_json(config.to_json(hf=False)) == config


def test_head_size_of_pruned_heads_round_trips_and_no_checkpoint_layout_takes_it(tmp_path):
    from keras_bert.checkpoints.keras_hub import keras_hub_rules
    from keras_bert.checkpoints.layout import bert_rules

    standard = BertConfig.from_preset("bert_mini")
    assert standard.attention_head_size == 64 and standard.has_standard_heads
    assert "attention_head_size" not in standard.to_hf_dict()  # Plain models write plain Hugging Face files.
    pruned = standard.replace(num_heads=3, head_size=64)
    assert pruned.attention_head_size == 64 and not pruned.has_standard_heads
    assert BertConfig.from_json(pruned.to_json(str(tmp_path / "config.json"))) == pruned
    assert BertConfig.from_json(pruned.to_json(hf=False)) == pruned
    assert BertConfig(hidden_size=10, num_heads=3, head_size=4).attention_head_size == 4
    with pytest.raises(ValueError, match="head_size must be a positive int"):
        BertConfig(head_size=0)
    with pytest.raises(ValueError, match="pruned heads have no equivalent"):
        bert_rules(pruned, heads=False, name=lambda n: n, kernels_out_in=False)
    with pytest.raises(ValueError, match="pruned heads have no equivalent"):
        keras_hub_rules(pruned)


def test_hf_config_with_extra_keys_reads():
    hf = {"vocab_size": 99, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
          "intermediate_size": 32, "hidden_act": "gelu", "model_type": "bert", "torch_dtype": "float32",
          "gradient_checkpointing": False}
    assert BertConfig.from_dict(hf).intermediate_size == 32


def test_invalid_values_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="hidden_act='gelu2'"):
        BertConfig(hidden_act="gelu2")
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        BertConfig(hidden_size=10, num_heads=3)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        BertConfig.from_json(str(bad))
