"""The benchmark harness's own arithmetic and timing contract (tiny configs; no timings asserted)."""

import pytest

import keras_bert
from benchmarks import compare, harness, matmul_ceiling
from tests.test_case import tiny_config


@pytest.mark.parametrize("mode", ["step", "infer"])
@pytest.mark.parametrize("preset,seq,batch", [("bert_mini", 128, 32), ("bert_base", 128, 16), ("bert_mini", 512, 8)])
def test_matmul_list_adds_up_to_the_flops_formula(preset, seq, batch, mode):
    config = keras_bert.BertConfig.from_preset(preset)
    flops = sum(count * matmul_ceiling.matmul_flops(batch_dims, m, k, n)
                for _, count, batch_dims, m, k, n in matmul_ceiling.matmuls(config, seq, batch, mode))
    assert flops == batch * harness.flops_per_sequence(config, seq, mode)


@pytest.mark.parametrize("package", ["ours", "hub"])
def test_runners_time_their_paths(package):
    config = tiny_config(vocab_size=1100)  # random_batch draws token ids from 1000 up
    x, y = harness.random_batch(config, seq=32, batch=4)  # 20 masked positions
    variant = harness.Variant(package, "float32", config)
    for mode in ("step", "infer", "fit", "predict"):
        warmup, run = harness.make_runner(variant, mode, False, x, y, steps=2)
        warmup()
        seconds = run()
        if mode in ("fit", "predict"):  # timed by the BatchTimer callback, over exactly `steps` batches
            assert seconds > 0
        else:
            assert seconds is None


def test_stored_bfloat16_variant_holds_bfloat16_weights_and_float32_layer_norms():
    config = tiny_config(vocab_size=1100)
    variant = harness.Variant("ours", "bfloat16", config, stored_bfloat16=True)
    assert variant.name == "ours-bf16w" and variant.inference_only
    dtypes = {w.path: w.dtype for w in variant.encoder.weights}
    assert {d for p, d in dtypes.items() if "layer_norm" in p} == {"float32"}
    assert {d for p, d in dtypes.items() if p.endswith("kernel")} == {"bfloat16"}
    x, y = harness.random_batch(config, seq=32, batch=4)
    warmup, run = harness.make_runner(variant, "infer", False, x, y, steps=1)
    warmup()
    assert run() is None
    with pytest.raises(ValueError, match="keras_bert's only"):
        harness.Variant("hub", "bfloat16", config, stored_bfloat16=True)


def test_jax_compare_report_groups_by_batch_and_keeps_the_latest_row(tmp_path, capsys):
    import json

    from benchmarks import jax_compare

    def run_file(name, rows):
        path = tmp_path / name
        path.write_text(json.dumps(dict(command=name, device=dict(kind="test"), jax="0", keras="0", results=rows)))
        return str(path)

    def row(batch, seq_per_s, package="ours"):
        return dict(config="mini-128", preset="bert_mini", seq=128, batch=batch, mode="infer", xla=True,
                    package=package, dtype="float32", variant=f"{package}-f32", seq_per_s=seq_per_s,
                    tokens_per_s=seq_per_s * 128, gflops=1.0, peak_share=0.1)

    first = run_file("first.json", [row(32, 10.0), row(32, 5.0, "hub"), row(256, 40.0), row(256, 20.0, "hub")])
    later = run_file("later.json", [row(32, 15.0)])
    jax_compare.report([first, later])
    out = capsys.readouterr().out
    assert "b32   infer float32  ours / hub-f32: 3.00x" in out  # the later ours row replaced the first
    assert "b256  infer float32  ours / hub-f32: 2.00x" in out


def test_report_of_a_recorded_run_ends_with_the_targets(tmp_path, capsys):
    """`compare --merge` of the recorded run: the last lines are the targets, computed from its rows."""
    import json
    import os

    recorded = os.path.join(os.path.dirname(compare.__file__), "results", "compare_full.json")
    out = tmp_path / "report.json"
    compare.main(["--configs", "--no-memory", "--no-real-text", "--merge", recorded, "--json", str(out)])
    lines = capsys.readouterr().out.rstrip().splitlines()
    report = json.loads(out.read_text())
    header = lines.index("Targets (ours / keras-hub, measured side by side in one process):")
    assert len(lines) - header - 1 == len(report["targets"]) > 10  # nothing is printed after the targets
    rows = report["results"]
    ours = max(r["seq_per_s"] for r in rows if (r["config"], r["mode"], r["package"], r["dtype"])
               == ("base-128", "infer", "ours", "float32"))
    hub = max(r["seq_per_s"] for r in rows if (r["config"], r["mode"], r["package"], r["dtype"])
              == ("base-128", "infer", "hub", "float32"))
    line = next(l for l in lines[header:] if "BERT-base inference f32 ours / hub f32" in l)
    assert line.split()[0] == ("PASS" if ours / hub >= 1.1 else "MISS")
    assert f": {ours / hub:.2f} (target >= 1.1)" in line
    assert "CPUs" in report["machine"]["description"]


def test_profile_xla_attributes_op_time_to_layers():
    """`benchmarks.profile_xla` (its own process: XLA reads its flags when TensorFlow loads)."""
    import os
    import re
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(compare.__file__))
    result = subprocess.run([sys.executable, "-m", "benchmarks.profile_xla", "--config", "mini-128", "--path", "infer",
                             "--calls", "1", "--top", "30"], cwd=root, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    total, matmul, other = map(float, re.search(
        r"XLA ops ([\d.]+) thread-ms, of which matmuls ([\d.]+) ms .* other ops ([\d.]+) ms", out).groups())
    assert total > 0 and abs(total - matmul - other) < 0.2
    layers = {name: float(mm) for name, mm in re.findall(r"^(\S+) +([\d.]+) +[\d.]+$", out, re.M)}
    # Every block's projections and FFN are matmuls attributed to their layers; no backward at inference.
    for layer in ("transformer_block/attention", "transformer_block/intermediate", "transformer_block/ffn_output"):
        assert layers.get(layer, 0) > 0, out
    assert "(backward)" not in out


@pytest.mark.parametrize("op_name,layer", [
    ("bert_pretrainer_1/bert_encoder_1/transformer_block_2_1/intermediate_1/MatMul", "transformer_block/intermediate"),
    ("gradient_tape/bert_pretrainer_1/mlm_head_1/MatMul/MatMul", "mlm_head (backward)"),
    ("gradient_tape/bert_pretrainer_1/bert_encoder_1/transformer_block_0_1/Gelu/Tanh/TanhGrad",
     "transformer_block/Gelu (backward)"),
    ("SparseSoftmaxCrossEntropyWithLogits/SparseSoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits"),
    ("adam_w/AssignSubVariableOp_63", "adam_w"),
    ("functional_1/bert_backbone_1/transformer_layer_3_1/feedforward_dropout_1/stateless_dropout/x",
     "transformer_layer/feedforward_dropout"),
])
def test_profile_xla_layer_names(op_name, layer):
    from benchmarks.profile_xla import layer_of

    assert layer_of(op_name) == layer


def test_sentence_split_holds_out_whole_sentences_and_their_phrases():
    from benchmarks import sst2_sentence_split

    rows = [("a good film about love and loss", "1"), ("a good film", "1"), ("love and loss", "1"),
            ("good", "1"), ("a dull script that wastes its cast", "0"), ("a dull script", "0"),
            ("its cast", "0"), ("film", "1"), ("wastes", "0")]
    train, held = sst2_sentence_split.split(rows, sentences=1, min_words=5, seed=0)
    assert len(held) == 1 and held[0] in (rows[0], rows[4])  # The two lines no other line contains.
    inside = [row for row in rows if f" {row[0]} " in f" {held[0][0]} "]
    assert not set(inside) & set(train)  # Neither the sentence nor any of its phrases is trained on.
    assert set(train) | set(inside) == set(rows)  # Nothing else is dropped.
    with pytest.raises(SystemExit, match="only 2 whole sentences"):
        sst2_sentence_split.split(rows, sentences=3, min_words=5, seed=0)


def test_student_speed_cuts_times_and_sizes_the_shapes_it_is_given(tmp_path, capsys):
    import os

    from benchmarks import distill_sst2, student_speed
    from tests.test_case import save_tiny_init

    if not os.path.exists(distill_sst2.DEV):
        pytest.skip(f"real data not found: {distill_sst2.DEV} (see ../shared/data/README.md)")
    init = keras_bert.load(save_tiny_init(tmp_path / "init", num_layers=2))
    teacher = keras_bert.save(keras_bert.BertClassifier(init, num_classes=2), tmp_path / "teacher",
                              vocab_file=str(tmp_path / "init" / "vocab.txt"))
    shapes = ["0,1", "1:8:1"]
    results = student_speed.main(["--teacher", teacher, "--work-dir", str(tmp_path / "work"), "--rounds", "1",
                                  "--students", *shapes])
    models = results["models"]
    assert list(models) == ["teacher", "blocks0-1", "blocks1_ffn8_heads1"]
    assert models["teacher"]["speedup"] == 1.0 and models["blocks0-1"]["encoder_flops_ratio"] == 1.0
    assert 0 < models["blocks1_ffn8_heads1"]["encoder_flops_ratio"] < 0.5
    assert all(m["sentences_per_second"] > 0 for m in models.values())
    pruned = keras_bert.load(str(tmp_path / "work" / "blocks1_ffn8_heads1")).encoder.config
    assert (pruned.num_layers, pruned.intermediate_size, pruned.num_heads) == (1, 8, 1)
    assert "blocks1_ffn8_heads1: " in capsys.readouterr().out
    with pytest.raises(SystemExit, match="blocks0_heads9: num_heads 9 must be in"):
        student_speed.main(["--teacher", teacher, "--work-dir", str(tmp_path / "work"), "--students", "0::9"])
