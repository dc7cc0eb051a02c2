"""The fine-tuning job on the user's own files: named columns, string labels, one-line errors, --help."""

import csv
import json
import os

import pytest

from tests.training.conftest import REPO_ROOT, run_job
from tests.training.test_finetune_tasks import LOOP

SST2 = os.path.join(REPO_ROOT, "..", "shared", "data", "sst2")
RECIPE = os.path.join(REPO_ROOT, "training", "configs", "finetune_sst2.yaml")
NAMES = {"0": "bad", "1": "good"}


def _sst2_as_csv(split, path, count):
    """An SST-2 slice rewritten as a user's CSV: columns `review,stars`, labels `bad`/`good`."""
    source = os.path.join(SST2, f"{split}.tsv")
    if not os.path.exists(source):
        pytest.skip(f"real data not found: {source}")
    with open(source, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:count + 1]
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "stars"])
        writer.writerows([text, NAMES[label]] for text, label in rows)
    return path


def test_csv_with_named_columns_matches_the_sst2_recipe(tiny_init, tmp_path):
    train, dev = _sst2_as_csv("train", tmp_path / "train.csv", 64), _sst2_as_csv("dev", tmp_path / "dev.csv", 40)
    run_job("training.finetune", "--config", RECIPE, "--init", tiny_init, "--output-dir", tmp_path / "recipe",
            "--max-train-examples", 64, "--max-eval-examples", 40, *LOOP)
    run_job("training.finetune", "--config", RECIPE, "--init", tiny_init, "--output-dir", tmp_path / "csv",
            "--train-file", train, "--validation-file", dev, "--text-column", "review", "--label-column", "stars",
            "--labels", "bad,good", *LOOP)
    recipe = json.loads((tmp_path / "recipe" / "metrics.json").read_text())
    own = json.loads((tmp_path / "csv" / "metrics.json").read_text())
    assert own["accuracy"] == pytest.approx(recipe["accuracy"], abs=1e-6)
    rows = (tmp_path / "csv" / "predictions.tsv").read_text(encoding="utf-8").splitlines()
    assert {row.split("\t")[-1] for row in rows[1:]} <= {"bad", "good"}

    import keras_bert

    model = keras_bert.load(str(tmp_path / "csv"))  # The job's model is text in, with the names.
    assert model.labels == ["bad", "good"]
    with open(dev, encoding="utf-8") as f:
        texts = [row["review"] for row in csv.DictReader(f)]
    predicted = model.predict(texts, verbose=0).argmax(-1)
    written = [row.split("\t")[-1] for row in rows[1:]]
    assert [model.labels[p] for p in predicted] == written


def test_labels_come_from_the_training_file(tiny_init, tmp_path):
    train = _sst2_as_csv("train", tmp_path / "train.csv", 64)
    run_job("training.finetune", "--init", tiny_init, "--output-dir", tmp_path / "out", "--train-file", train,
            "--validation-file", train, "--text-column", "review", "--label-column", "stars", *LOOP)
    import keras_bert

    assert keras_bert.load(str(tmp_path / "out")).labels == ["bad", "good"]


@pytest.mark.parametrize("problem", ["dev_label", "column", "task", "flag", "missing_file"])
def test_bad_input_is_one_line_with_exit_status_2(tiny_init, tmp_path, problem):
    train = _sst2_as_csv("train", tmp_path / "train.csv", 64)
    dev = tmp_path / "dev.csv"
    dev.write_text("review,stars\nfine film,good\nodd one,mehh\n", encoding="utf-8")
    args = {"--init": tiny_init, "--output-dir": tmp_path / "out", "--train-file": train, "--validation-file": dev,
            "--text-column": "review", "--label-column": "stars", "--labels": "bad,good", "--task": "classification"}
    expected = {"dev_label": f"{dev}:3: label 'mehh' is not in the label set ['bad', 'good']",
                "column": "missing column 'text'", "task": "key 'task' must be one of",
                "flag": "unrecognized arguments: --batchsize", "missing_file": "data file not found: nowhere.csv"}
    if problem == "column":
        args["--text-column"] = "text"
    if problem == "task":
        args["--task"] = "sentiment"
    if problem == "missing_file":
        args["--train-file"] = "nowhere.csv"
    flat = [str(v) for item in args.items() for v in item] + (["--batchsize", "4"] if problem == "flag" else [])
    result = run_job("training.finetune", *flat, *LOOP, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected[problem] in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_every_flag_has_help_with_its_default():
    result = run_job("training.finetune", "--help")
    import re

    flags = re.findall(r"^  (--[a-z-]+)", result.stdout, flags=re.M)
    assert {"--task", "--text-column", "--text-pair-column", "--label-column", "--labels", "--init"} <= set(flags)
    blocks = re.split(r"^  (?=--)", result.stdout, flags=re.M)[1:]
    for block in blocks:
        if block.startswith("--config"):
            continue
        assert "Default:" in block, block
    task = next(b for b in blocks if b.startswith("--task"))
    assert "classification, regression, token_classification, question_answering" in " ".join(task.split())
