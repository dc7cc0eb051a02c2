"""`training.finetune` and `training.evaluate` with the ACLSum recipe on a tiny model and 4 real papers:
three aspects in one model, ROUGE, sentence and selection P/R/F1 in metrics.json and TensorBoard, the same metrics again
from `training.evaluate`, and a bad record as a one-line error naming file, line and field."""

import json
import os

import pytest

from keras_bert.tasks.summarization import read_documents
from keras_bert.trainer.tensorboard import read_scalars
from tests.training.conftest import REPO_ROOT, run_job

ACLSUM = os.path.join(REPO_ROOT, "..", "shared", "data", "aclsum")
RECIPE = os.path.join(REPO_ROOT, "training", "configs", "finetune_aclsum.yaml")
ASPECTS = ("challenge", "approach", "outcome")
# float32 (the recipe trains in bfloat16): training.evaluate runs the saved model in float32, and the tiny
# model's near-tied scores must select the same sentences in both jobs.
FLAGS = ["--max-seq-length", 64, "--max-train-examples", 4, "--max-eval-examples", 3, "--mixed-precision", "float32"]
LOOP = ["--steps", "4", "--batch-size", "2", "--eval-batch-size", "2", "--log-every", "2", "--checkpoint-every",
        "4", "--warmup-steps", "1", "--learning-rate", "0.001"]


def _need(path):
    if not os.path.exists(path):
        pytest.skip(f"real data not found: {path} (see ../shared/data/README.md)")


def test_aclsum_finetune_and_evaluate(tiny_init, tmp_path):
    _need(os.path.join(ACLSUM, "train.jsonl"))
    output = tmp_path / "out"
    run_job("training.finetune", "--config", RECIPE, "--init", tiny_init, "--output-dir", output, *FLAGS, *LOOP,
            timeout=1200)
    metrics = json.loads((output / "metrics.json").read_text())
    for aspect in ASPECTS:
        for name in ("rouge1", "rouge2", "rougeLsum", "sentence_precision", "sentence_recall", "sentence_f1",
                     "selection_precision", "selection_recall", "selection_f1"):
            assert 0.0 <= metrics[f"{aspect}_{name}"] <= 100.0
    assert metrics["rouge1"] > 0
    scalars = read_scalars(os.path.join(str(output), "logs", "validation"))
    for name in ("rouge1", "sentence_f1", "challenge_sentence_recall", "selection_f1"):
        assert abs(scalars[name][-1][1] - metrics[name]) < 1e-3, name
    rows = [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["challenge"]["indices"]) <= 3 for r in rows)
    # Sentence P/R/F1: every val sentence classified at the sigmoid's 0.5 (the job's decision threshold);
    # selection P/R/F1: the top-k summary's sentences. Both recounted here from the written predictions.
    documents = read_documents(os.path.join(ACLSUM, "val.jsonl"), list(ASPECTS), limit=3)
    for aspect in ASPECTS:
        assert metrics[f"{aspect}_sentence_threshold"] == 0.5
        pairs = [(s >= 0.5, label) for r, d in zip(rows, documents)
                 for s, label in zip(r[aspect]["scores"], d.labels[aspect])]
        picked = [d.labels[aspect][i] for r, d in zip(rows, documents) for i in r[aspect]["indices"]]
        gold = sum(label for _, label in pairs)
        for kind, hits, predicted in (("sentence", sum(p and label for p, label in pairs), sum(p for p, _ in pairs)),
                                      ("selection", sum(picked), len(picked))):
            precision = 100.0 * hits / predicted if predicted else 0.0
            recall = 100.0 * hits / gold if gold else 0.0
            f1 = 200.0 * hits / (predicted + gold) if hits else 0.0
            assert [metrics[f"{aspect}_{kind}_{n}"] for n in ("precision", "recall", "f1")] == pytest.approx(
                [precision, recall, f1]), (aspect, kind)

    import keras_bert

    model = keras_bert.load(str(output))
    assert model.aspects == ["challenge", "approach", "outcome"]
    run_job("training.evaluate", "--config", RECIPE, "--model", output, "--data",
            os.path.join(ACLSUM, "val.jsonl"), "--output-dir", tmp_path / "eval", "--max-seq-length", 64,
            "--max-eval-examples", 3, timeout=1200)
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key, value in metrics.items():
        if key != "step":
            assert evaluated[key] == pytest.approx(value, abs=1e-4), key


def test_bad_record_is_a_one_line_error(tiny_init, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"sentences": ["a", "b"], "labels": [1]}) + "\n")
    result = run_job("training.finetune", "--task", "summarization", "--init", tiny_init, "--output-dir",
                     tmp_path / "out", "--train-file", bad, "--validation-file", bad, check=False)
    assert result.returncode == 2
    assert f"error: {bad}:1: field 'labels' has 1 labels for 2 sentences" in result.stderr.strip().splitlines()[-1]


def test_unknown_model_option_is_a_one_line_error(tiny_init, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    text = open(RECIPE, encoding="utf-8").read()
    recipe.write_text(text.replace("  pooling: mean\n", "  pooling: mean\n  heads: 4\n"))
    result = run_job("training.finetune", "--config", recipe, "--init", tiny_init, "--output-dir", tmp_path / "out",
                     check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: model_options: unknown key(s) ['heads'] for task 'summarization'"), result.stderr
