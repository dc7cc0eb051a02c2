"""The exported SavedModel (loaded as TF Serving loads it) and `training.evaluate` agree on the same weights:
classification labels, question-answering answers and NER entities, on real dev data."""

import json
import os
import unicodedata

import numpy as np

from tests.export.helpers import Tf1Model, decode
from tests.training.conftest import REPO_ROOT, run_job
from tests.training.test_finetune_tasks import DATA, HAREM, LOOP, SQUAD, _need

CONFIGS = os.path.join(REPO_ROOT, "training", "configs")


def _export(model_dir, out):
    from keras_bert.export import export_model_dir

    return Tf1Model(export_model_dir(str(model_dir), str(out), max_length=128, warmup=False, server_configs=False))


def _short_squad(path, target, characters=250):
    """SQuAD questions whose context, cut to `characters`, still holds the answer: one window each."""
    with open(SQUAD, encoding="utf-8") as f:
        article = json.load(f)["data"][0]
    paragraphs = []
    for paragraph in article["paragraphs"][:6]:
        context = paragraph["context"][:characters]
        qas = [qa for qa in paragraph["qas"] if all(a["answer_start"] + len(a["text"]) <= characters
                                                    for a in qa["answers"])][:3]
        if qas:
            paragraphs.append({"context": context, "qas": qas})
    target.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return paragraphs


def test_question_answering_export_gives_the_evaluated_answers(tiny_init, tmp_path):
    _need(SQUAD)
    paragraphs = _short_squad(SQUAD, tmp_path / "squad.json")
    recipe = os.path.join(CONFIGS, "finetune_squad.yaml")
    flags = ["--max-seq-length", 128, "--doc-stride", 64, "--max-query-length", 32]
    run_job("training.finetune", "--config", recipe, "--init", tiny_init, "--output-dir", tmp_path / "out",
            "--train-file", tmp_path / "squad.json", "--validation-file", tmp_path / "squad.json", *flags, *LOOP)
    run_job("training.evaluate", "--config", recipe, "--model", tmp_path / "out", "--data", tmp_path / "squad.json",
            "--output-dir", tmp_path / "eval", *flags)
    evaluated = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    served = _export(tmp_path / "out", tmp_path / "export" / "qa")
    questions = [(qa["id"], qa["question"], p["context"]) for p in paragraphs for qa in p["qas"]]
    outputs = served.run("serving_default", {"question": [q for _, q, _ in questions],
                                             "context": [c for _, _, c in questions]})
    answers = list(decode(outputs["answer"]))
    assert len(questions) >= 6
    assert {qid: a for (qid, _, _), a in zip(questions, answers)} == evaluated
    for (_, _, context), answer, start, end in zip(questions, answers, outputs["start"], outputs["end"]):
        assert context[start:end] == answer
    served.close()


def _fold(text):
    """Uncased BERT's view of text (lower case, no accents, no spaces), to compare words with served spans."""
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn" and not c.isspace())


def test_token_classification_export_gives_the_evaluated_entities(tiny_init, tmp_path):
    _need(HAREM)
    with open(os.path.join(HAREM, "MiniHAREM-selective.json"), encoding="utf-8") as f:
        documents = json.load(f)[:6]
    for doc in documents:  # Short documents: one window each, as the export sees them.
        doc["doc_text"] = doc["doc_text"][:150]
        doc["entities"] = [e for e in doc.get("entities", []) if e["end_offset"] <= 150]
    data = tmp_path / "dev.json"
    data.write_text(json.dumps(documents, ensure_ascii=False), encoding="utf-8")
    recipe = os.path.join(CONFIGS, "finetune_harem.yaml")
    run_job("training.finetune", "--config", recipe, "--init", tiny_init, "--output-dir", tmp_path / "out",
            "--train-file", data, "--validation-file", data, "--max-seq-length", 128, *LOOP)
    run_job("training.evaluate", "--config", recipe, "--model", tmp_path / "out", "--data", data,
            "--output-dir", tmp_path / "eval", "--max-seq-length", 128)
    # Entities of the evaluated tags, with the task's one grouping.
    from keras_bert.tasks.token_classification import TagTable, entities

    import keras_bert

    labels = keras_bert.load(str(tmp_path / "out")).labels
    sequences = [block.splitlines()[(0 if i else 1):]
                 for i, block in enumerate((tmp_path / "eval" / "predictions.tsv").read_text("utf-8").split("\n\n"))]
    sequences = [[line.split("\t") for line in s if line] for s in sequences if any(s)]
    assert len(sequences) == len(documents)
    found = entities([[row[2] for row in s] for s in sequences], TagTable(labels))
    evaluated = sorted((r, kind, "".join(w[0] for w in sequences[r][first:last + 1])) for r, kind, first, last in found)
    served = _export(tmp_path / "out", tmp_path / "export" / "ner")
    outputs = served.run("serving_default", {"text": [doc["doc_text"] for doc in documents]})
    exported = sorted((r, decode(outputs["entity_labels"][r][e:e + 1])[0],
                       _fold(decode(outputs["entity_text"][r][e:e + 1])[0]))
                      for r in range(len(documents)) for e in range(int(outputs["num_entities"][r])))
    assert [(r, k, _fold(t)) for r, k, t in evaluated] == exported
    served.close()


def test_classification_export_gives_the_evaluated_labels(tiny_init, tmp_path):
    dev = os.path.join(DATA, "sst2", "dev.tsv")
    _need(dev)
    recipe = os.path.join(CONFIGS, "finetune_sst2.yaml")
    run_job("training.finetune", "--config", recipe, "--init", tiny_init, "--output-dir", tmp_path / "out",
            "--max-train-examples", 64, "--max-eval-examples", 60, *LOOP)
    rows = [r.split("\t") for r in (tmp_path / "out" / "predictions.tsv").read_text("utf-8").splitlines()[1:]]
    served = _export(tmp_path / "out", tmp_path / "export" / "sst2")
    outputs = served.run("serving_default", {"text": [r[0] for r in rows]})
    assert list(decode(outputs["label"])) == [r[2] for r in rows]
    assert np.allclose(outputs["probabilities"].sum(-1), 1.0, atol=1e-5)
    served.close()
