"""Fine-tuning SQuAD v1.1 and HAREM NER with a tiny model on a few real examples, then training.evaluate.

Each job trains a handful of steps, writes metrics.json, predictions and TensorBoard validation scalars,
saves a model `keras_bert.load` reads (tags included for NER), and `training.evaluate` on that model gives
the same metrics as the job's final validation.
"""

import json
import os

import pytest

from keras_bert.trainer.tensorboard import read_scalars
from tests.training.conftest import REPO_ROOT, run_job

DATA = os.path.join(REPO_ROOT, "..", "shared", "data")
SQUAD = os.path.join(DATA, "squad", "dev-v1.1.json")
HAREM = os.path.join(DATA, "portuguese", "harem_bertimbau")
LOOP = ["--steps", "4", "--batch-size", "4", "--eval-batch-size", "8", "--log-every", "2", "--checkpoint-every",
        "4", "--warmup-steps", "1", "--learning-rate", "0.001"]


def _need(path):
    if not os.path.exists(path):
        pytest.skip(f"real data not found: {path}")


def _validation_scalars(output_dir):
    return read_scalars(os.path.join(str(output_dir), "logs", "validation"))


def test_squad_finetune_and_evaluate(tiny_init, tmp_path):
    _need(SQUAD)
    with open(SQUAD, encoding="utf-8") as f:
        article = json.load(f)["data"][0]
    paragraphs = [dict(p, qas=p["qas"][:4]) for p in article["paragraphs"][:2]]
    small = tmp_path / "squad_small.json"
    small.write_text(json.dumps({"version": "1.1", "data": [dict(article, paragraphs=paragraphs)]}))
    output = tmp_path / "out"
    run_job("training.finetune", "--config", os.path.join(REPO_ROOT, "training", "configs", "finetune_squad.yaml"),
            "--init", tiny_init, "--output-dir", output, "--train-file", small, "--validation-file", small,
            "--max-seq-length", 96, "--doc-stride", 48, "--max-query-length", 24, *LOOP)
    metrics = json.loads((output / "metrics.json").read_text())
    assert set(metrics) == {"exact_match", "f1", "step"} and metrics["step"] == 4
    assert 0.0 <= metrics["exact_match"] <= metrics["f1"] <= 100.0
    predictions = json.loads((output / "predictions.json").read_text())
    assert set(predictions) == {qa["id"] for p in paragraphs for qa in p["qas"]}
    assert all(isinstance(text, str) for text in predictions.values())
    scalars = _validation_scalars(output)
    assert [s for s, _ in scalars["exact_match"]] == [4] and abs(scalars["f1"][0][1] - metrics["f1"]) < 1e-3

    import keras_bert

    assert type(keras_bert.load(str(output))).__name__ == "BertQuestionAnswerer"
    evaluated = tmp_path / "eval"
    run_job("training.evaluate", "--config", os.path.join(REPO_ROOT, "training", "configs", "finetune_squad.yaml"),
            "--model", output, "--data", small, "--output-dir", evaluated,
            "--max-seq-length", 96, "--doc-stride", 48, "--max-query-length", 24)
    again = json.loads((evaluated / "metrics.json").read_text())
    assert abs(again["f1"] - metrics["f1"]) < 1e-6 and abs(again["exact_match"] - metrics["exact_match"]) < 1e-6
    assert json.loads((evaluated / "predictions.json").read_text()) == predictions


def _small_harem(path, target, characters=1200):
    """The first two documents of a HAREM file, cut to `characters` (entities inside kept)."""
    with open(path, encoding="utf-8") as f:
        documents = json.load(f)[:2]
    for doc in documents:
        doc["doc_text"] = doc["doc_text"][:characters]
        doc["entities"] = [e for e in doc.get("entities", []) if e["end_offset"] <= characters]
    target.write_text(json.dumps(documents, ensure_ascii=False), encoding="utf-8")


def test_harem_finetune_and_evaluate(tiny_init, tmp_path):
    _need(HAREM)
    data = tmp_path / "harem"
    data.mkdir()
    _small_harem(os.path.join(HAREM, "FirstHAREM-selective-train.json"), data / "train.json")
    _small_harem(os.path.join(HAREM, "MiniHAREM-selective.json"), data / "dev.json")
    (data / "classes-selective.txt").write_text(open(os.path.join(HAREM, "classes-selective.txt")).read())
    output = tmp_path / "out"
    run_job("training.finetune", "--config", os.path.join(REPO_ROOT, "training", "configs", "finetune_harem.yaml"),
            "--init", tiny_init, "--output-dir", output, "--train-file", data / "train.json",
            "--validation-file", data / "dev.json", "--max-seq-length", 64, *LOOP)
    metrics = json.loads((output / "metrics.json").read_text())
    assert {"entity_f1", "entity_precision", "entity_recall"} <= set(metrics)
    assert 0.0 <= metrics["entity_f1"] <= 1.0
    rows = (output / "predictions.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "word\tlabel\tprediction" and any(r.split("\t")[1].startswith("B-") for r in rows[1:] if r)
    assert "entity_f1" in _validation_scalars(output)
    assert "tokens_per_second" in read_scalars(os.path.join(str(output), "logs", "train"))

    import keras_bert

    model = keras_bert.load(str(output))
    assert type(model).__name__ == "BertTokenClassifier"
    classes = open(os.path.join(HAREM, "classes-selective.txt")).read().split()
    assert model.labels == ["O"] + [f"{p}-{c}" for c in classes for p in "BI"]
    evaluated = tmp_path / "eval"
    run_job("training.evaluate", "--config", os.path.join(REPO_ROOT, "training", "configs", "finetune_harem.yaml"),
            "--model", output, "--data", data / "dev.json",
            "--output-dir", evaluated, "--max-seq-length", 64)
    again = json.loads((evaluated / "metrics.json").read_text())
    assert abs(again["entity_f1"] - metrics["entity_f1"]) < 1e-6
    assert (evaluated / "predictions.tsv").read_text(encoding="utf-8") == "\n".join(rows) + "\n"


def test_sst2_bucketed_finetune_and_evaluate(tiny_init, tmp_path):
    train, dev = os.path.join(DATA, "sst2", "train.tsv"), os.path.join(DATA, "sst2", "dev.tsv")
    _need(train)
    output = tmp_path / "out"
    run_job("training.finetune", "--config", os.path.join(REPO_ROOT, "training", "configs", "finetune_sst2.yaml"),
            "--init", tiny_init, "--output-dir", output, "--max-train-examples", 64, "--max-eval-examples", 40,
            *LOOP)
    metrics = json.loads((output / "metrics.json").read_text())
    assert set(metrics) == {"accuracy", "f1", "step"} and metrics["step"] == 4
    assert abs(_validation_scalars(output)["accuracy"][-1][1] - metrics["accuracy"]) < 1e-6
    rows = (output / "predictions.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 41 and rows[0] == "text\tlabel\tprediction"
    evaluated = tmp_path / "eval"
    run_job("training.evaluate", "--config", os.path.join(REPO_ROOT, "training", "configs", "finetune_sst2.yaml"),
            "--model", output, "--data", dev, "--output-dir", evaluated,
            "--max-eval-examples", 40)
    assert json.loads((evaluated / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    assert (evaluated / "predictions.tsv").read_text(encoding="utf-8").splitlines() == rows


def test_classification_batches_are_length_bucketed(tiny_init):
    from keras_bert import tasks
    from keras_bert.tokenization import BertTokenizer
    from keras_bert.trainer import load_config
    from training.finetune import FinetuneConfig

    train = os.path.join(DATA, "sst2", "train.tsv")
    _need(train)
    config = load_config(FinetuneConfig, os.path.join(REPO_ROOT, "training", "configs", "finetune_sst2.yaml"),
                         {"max_train_examples": 8192})
    tokenizer = BertTokenizer(os.path.join(tiny_init, "vocab.txt"), lowercase=True)
    classification = tasks.get("classification")
    data = classification.read(train, config, tokenizer, batch_size=config.batch_size, training=True,
                               limit=config.max_train_examples)
    padded, real = 0, 0
    for x, y in data.dataset.take(16):
        assert x["token_ids"].shape[0] == config.batch_size
        padded += int(x["padding_mask"].shape[0] * x["padding_mask"].shape[1])
        real += int(x["padding_mask"].numpy().sum())
    assert real / padded > 0.8, (real, padded)  # Random batches padded to their longest: about a third.
    small = classification.read(train, config, tokenizer, batch_size=16, training=True, limit=40)
    assert sum(1 for _ in small.dataset) == 2  # Too few for buckets: random batches, not an empty set.
