"""Bad input fails with a clear error before training starts, and no checkpoint is overwritten."""

import os

import pytest

from keras_bert.trainer import ConfigError, check_batch_size, create_strategy, load_config
from training.pretrain import PretrainConfig
from tests.training.conftest import REPO_ROOT, run_job

TINY = os.path.join(REPO_ROOT, "training", "configs", "pretrain_tiny.yaml")


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("preset: bert_tiny\nlerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*lerning_rate"):
        load_config(PretrainConfig, path)


def test_malformed_value_names_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("batch_size: sixteen\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'batch_size'"):
        load_config(PretrainConfig, path)


def test_not_yaml_and_missing_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(PretrainConfig, path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(PretrainConfig, tmp_path / "missing.yaml")


def test_extends_reads_the_base_file_first(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 5\nbatch_size: 4\nlog_every: 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("extends: ../base.yaml\nsteps: 9\n")
    config = load_config(PretrainConfig, tmp_path / "sub" / "child.yaml", {"batch_size": 2})
    assert (config.steps, config.batch_size, config.log_every) == (9, 2, 1)
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="loop.yaml: key 'extends' makes a cycle"):
        load_config(PretrainConfig, tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: gone.yaml\n")
    with pytest.raises(ConfigError, match=r"not found: .*gone.yaml \(extended by .*orphan.yaml\)"):
        load_config(PretrainConfig, tmp_path / "orphan.yaml")
    (tmp_path / "bad.yaml").write_text("extends: base.yaml\nlerning_rate: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*lerning_rate"):
        load_config(PretrainConfig, tmp_path / "bad.yaml")
    (tmp_path / "bad_base.yaml").write_text("lerning_rate: 1\n")
    (tmp_path / "child_of_bad.yaml").write_text("extends: bad_base.yaml\nsteps: 3\n")
    with pytest.raises(ConfigError, match=r"child_of_bad.yaml \(extends .*bad_base.yaml\).*lerning_rate"):
        load_config(PretrainConfig, tmp_path / "child_of_bad.yaml")


def test_flags_override_and_are_checked():
    config = load_config(PretrainConfig, TINY, {"steps": 7, "output_dir": 2024})
    assert config.steps == 7 and config.output_dir == "2024"
    with pytest.raises(ConfigError, match="checkpoint_every"):
        load_config(PretrainConfig, TINY, {"checkpoint_every": 15})


def test_unknown_strategy():
    with pytest.raises(ConfigError, match="strategy"):
        load_config(PretrainConfig, TINY, {"strategy": "horovod"})
    with pytest.raises(ConfigError, match="Unknown strategy"):
        create_strategy("horovod")


def test_batch_not_divisible_by_replicas():
    class TwoReplicas:
        num_replicas_in_sync = 2

    with pytest.raises(ConfigError, match="not divisible"):
        check_batch_size(TwoReplicas(), 15)
    assert check_batch_size(TwoReplicas(), 16) == 8


def test_empty_dataset_and_different_model_fail_before_training(corpus_slice, tmp_path):
    fast = ["--vocab-size", "600", "--max-seq-length", "32", "--max-predictions-per-seq", "5", "--batch-size", "8",
            "--dupe-factor", "1", "--log-every", "5", "--checkpoint-every", "10"]
    run_job("training.pretrain", "--config", TINY, "--corpus", corpus_slice, "--output-dir", tmp_path,
            "--steps", 10, *fast)
    checkpoints = tmp_path / "checkpoints"
    before = {p.name: p.stat().st_mtime_ns for p in checkpoints.iterdir()}
    other_model = tmp_path / "other_model.yaml"
    other_model.write_text(open(TINY).read().replace("hidden_size: 32", "hidden_size: 16"))
    different = run_job("training.pretrain", "--config", other_model, "--corpus", corpus_slice, "--output-dir", tmp_path,
                        "--steps", 20, *fast[:-4], "--log-every", "5", "--checkpoint-every", "10",
                        check=False)
    assert different.returncode != 0
    assert "different model" in different.stderr, different.stderr[-2000:]
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    result = run_job("training.pretrain", "--config", TINY, "--vocab", tmp_path / "data" / "vocab.txt",
                     "--train-files", empty, "--output-dir", tmp_path / "other", "--steps", 20, *fast, check=False)
    assert result.returncode != 0
    assert "empty" in (result.stderr + result.stdout).lower(), result.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in checkpoints.iterdir()} == before


def test_a_null_flag_overrides_the_files_value(tmp_path):
    from keras_bert.trainer.config import parse_job_config

    path = tmp_path / "bf16.yaml"
    path.write_text(open(TINY, encoding="utf-8").read() + "mixed_precision: mixed_bfloat16\n")
    assert parse_job_config(PretrainConfig, ["--config", str(path)]).mixed_precision == "mixed_bfloat16"
    assert parse_job_config(PretrainConfig, ["--config", str(path), "--mixed-precision", "null"]).mixed_precision is None
    # Flags not given leave the file's values alone.
    config = parse_job_config(PretrainConfig, ["--config", str(path), "--steps", "7"])
    assert (config.steps, config.mixed_precision) == (7, "mixed_bfloat16")
