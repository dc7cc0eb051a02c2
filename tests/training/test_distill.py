"""`training.distill` on real SST-2 sentences: a tiny fine-tuned teacher into a 2-block student that saves, loads,
evaluates, exports (loaded as TF Serving loads it) and resumes; bad teachers and students fail naming the key."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

import keras_bert
from tests.export.helpers import Tf1Model, decode
from tests.training.conftest import REPO_ROOT, run_job
from tests.training.test_finetune_tasks import DATA, LOOP, _need

RECIPE = os.path.join(REPO_ROOT, "training", "configs", "distill_sst2.yaml")
FINETUNE = os.path.join(REPO_ROOT, "training", "configs", "finetune_sst2.yaml")
SST2_DEV = os.path.join(DATA, "sst2", "dev.tsv")
ALICE = os.path.join(DATA, "english_books", "carroll-alice.txt")
# float32 (the recipe trains in mixed_bfloat16): the job's predictions then equal the float32 export's exactly.
SMALL = ["--max-train-examples", 64, "--max-eval-examples", 48, "--batch-size", 8, "--eval-batch-size", 16,
         "--mixed-precision", "float32"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A 3-block tiny classifier fine-tuned a few steps on SST-2 (the teacher of every test here)."""
    _need(SST2_DEV)
    from tests.test_case import save_tiny_init

    root = tmp_path_factory.mktemp("distill")
    init = save_tiny_init(root / "init", num_layers=3)
    run_job("training.finetune", "--config", FINETUNE, "--init", init, "--output-dir", root / "teacher", *SMALL,
            *LOOP)
    return str(root / "teacher")


def _distill(teacher, output_dir, *flags, steps=4, check=True):
    loop = [a if a != "4" else str(steps) for a in LOOP[:2]] + LOOP[2:]
    return run_job("training.distill", "--config", RECIPE, "--teacher", teacher, "--output-dir", output_dir,
                   "--student-layers", "0,2", *SMALL, *loop, *flags, check=check)


def test_student_saves_loads_evaluates_exports_and_resumes(teacher, tmp_path):
    _need(ALICE)
    out = tmp_path / "student"
    first = _distill(teacher, out, "--augment-copies", 1, "--unlabeled-files", ALICE, "--max-unlabeled-examples", 40)
    assert "168 transfer examples (64 labelled, 64 augmented, 40 unlabeled)" in first.stdout, first.stdout[-2000:]

    # A text-in classifier of the teacher's kind and labels, with 2 of its blocks.
    student = keras_bert.load(str(out))
    teacher_model = keras_bert.load(teacher)
    assert type(student) is keras_bert.BertClassifier and student.labels == teacher_model.labels == ["0", "1"]
    assert student.encoder.config.num_layers == 2 and teacher_model.encoder.config.num_layers == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 4 and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["student_parameters"] < metrics["teacher_parameters"] and metrics["student_teacher_flops"] < 1

    # TensorBoard: each loss term, the validation metric, sizes and speed.
    from keras_bert.trainer import read_scalars

    train, validation = read_scalars(str(out / "logs" / "train")), read_scalars(str(out / "logs" / "validation"))
    assert {"loss", "soft_loss", "hard_loss"} <= set(train), sorted(train)
    assert {"accuracy", "teacher_accuracy", "student_parameters", "teacher_parameters", "speedup",
            "student_examples_per_second"} <= set(validation), sorted(validation)

    # training.evaluate takes it unchanged, and gives the job's own dev accuracy.
    run_job("training.evaluate", "--config", RECIPE, "--model", out, "--output-dir", tmp_path / "eval",
            "--max-eval-examples", 48)
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(metrics["accuracy"])

    # The exported SavedModel, loaded as TF Serving loads it, gives the job's dev predictions.
    from keras_bert.export import export_model_dir

    rows = [r.split("\t") for r in (out / "predictions.tsv").read_text("utf-8").splitlines()[1:]]
    served = Tf1Model(export_model_dir(str(out), str(tmp_path / "export"), max_length=64, warmup=False,
                                       server_configs=False))
    outputs = served.run("serving_default", {"text": [r[0] for r in rows]})
    assert list(decode(outputs["label"])) == [r[2] for r in rows]
    assert np.allclose(outputs["probabilities"].sum(-1), 1.0, atol=1e-5)
    served.close()

    # Rerun with more steps: resumes at the checkpoint and reuses the cached teacher outputs.
    again = _distill(teacher, out, "--augment-copies", 1, "--unlabeled-files", ALICE, "--max-unlabeled-examples", 40,
                     steps=6)
    assert "resumed from" in again.stdout and "at step 4" in again.stdout, again.stdout[-2000:]
    assert "teacher outputs from" in again.stdout
    assert json.loads((out / "metrics.json").read_text())["step"] == 6


def test_mixed_bfloat16_student_saves_at_float32(teacher, tmp_path):
    from training.distill import CACHE_FILE

    float32 = _distill(teacher, tmp_path / "float32", steps=2)
    assert "teacher outputs for 64 texts" in float32.stdout, float32.stdout[-2000:]
    # Under mixed_bfloat16 the teacher runs in bfloat16 too: its float32 outputs are not reused.
    (tmp_path / "mixed").mkdir()
    shutil.copy(tmp_path / "float32" / CACHE_FILE, tmp_path / "mixed" / CACHE_FILE)
    mixed = _distill(teacher, tmp_path / "mixed", "--mixed-precision", "mixed_bfloat16", steps=2)
    assert "teacher outputs for 64 texts" in mixed.stdout, mixed.stdout[-2000:]
    student = keras_bert.load(str(tmp_path / "mixed"))
    policies = {layer.dtype_policy.name for layer in student._flatten_layers()}
    assert "float32" in policies and not any("bfloat16" in name for name in policies), policies
    assert json.loads((tmp_path / "mixed" / "metrics.json").read_text())["step"] == 2


def _main_error(*argv):
    from keras_bert.trainer import ConfigError
    from training import distill

    with pytest.raises(ConfigError) as error:
        distill.main([str(a) for a in argv])
    return str(error.value)


def test_bad_teachers_and_students_name_the_key(teacher, tmp_path):
    from tests.test_case import save_tiny_init

    base = ["--config", RECIPE, "--output-dir", tmp_path / "out", *SMALL]
    init = save_tiny_init(tmp_path / "init", num_layers=2)
    regression = keras_bert.BertRegressor.from_pretrained(init, sequence_length=64)
    keras_bert.save(regression, str(tmp_path / "regression"))
    other_labels = keras_bert.BertClassifier.from_pretrained(init, sequence_length=64, num_classes=2,
                                                             labels=["negative", "positive"])
    keras_bert.save(other_labels, str(tmp_path / "other_labels"))

    message = _main_error(*base, "--teacher", tmp_path / "regression")
    assert message.startswith("task: ") and "regression" in message
    message = _main_error(*base, "--teacher", tmp_path / "other_labels")
    assert message.startswith("labels: ") and "['negative', 'positive']" in message
    wide = "{hidden_size: 32, num_heads: 2, intermediate_size: 64, num_layers: 1}"
    data = ["--train-file", os.path.join(DATA, "sst2", "train.tsv"), "--validation-file", SST2_DEV,
            "--text-column", "sentence", "--labels", "0,1", "--output-dir", tmp_path / "out", *SMALL]
    message = _main_error(*data, "--teacher", teacher, "--student-config", wide, "--hidden-weight", 1)
    assert message.startswith("student_config: ") and "wider" in message
    message = _main_error(*base, "--teacher", teacher, "--student-layers", "0,7")
    assert message.startswith("student_layers: ")
    message = _main_error(*base, "--teacher", teacher, "--student-layers", "0,1", "--student-intermediate-size", 0)
    assert message.startswith("student_intermediate_size: ") and "must be in [1, " in message
    message = _main_error(*data, "--teacher", teacher, "--student-preset", "bert_tiny",
                          "--student-intermediate-size", 4)
    assert message.startswith("student_intermediate_size: ") and "student_layers" in message
    message = _main_error(*base, "--teacher", teacher, "--student-layers", "0,1", "--student-num-heads", 99)
    assert message.startswith("student_num_heads: ") and "must be in [1, " in message
    message = _main_error(*data, "--teacher", teacher, "--student-preset", "bert_tiny", "--student-num-heads", 1)
    assert message.startswith("student_num_heads: ") and "student_layers" in message
    message = _main_error(*base, "--teacher", teacher, "--student-layers", "0,1", "--student-num-heads", 1,
                          "--attention-weight", 1)
    assert message.startswith("student_num_heads: ") and "head by head" in message
    message = _main_error(*base, "--teacher", teacher, "--student-layers", "0,1", "--hidden-weight", 1,
                          "--layer-map", "0,9")
    assert message.startswith("layer_map: ")
    # Through the CLI: one line on stderr, exit status 2.
    result = run_job("training.distill", *base, "--teacher", tmp_path / "regression", check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: task: ")


# --- The neighbour augmentation (TinyBERT-style, on the teacher's word-embedding matrix) ---

# Whole words, "##" continuations, punctuation and specials: "films" and "quickly" are two pieces, "unfun" is
# [UNK], "Good" is the single piece "good".
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "##s", "##ly", "the", "a", "film", "movie", "good",
         "great", "bad", "awful", "quick", "slow", "play", "fun", "dull", "plot"]
WORDS = ["the", "a", "film", "movie", "Good", "great", "bad", "awful", "quick", "slow", "play", "fun", "dull", "plot",
         ".", ",", "films", "quickly", "unfun"]
REPLACEABLE = {"the", "a", "film", "movie", "Good", "great", "bad", "awful", "quick", "slow", "play", "fun", "dull",
               "plot"}


def _augmenter(embeddings, **kwargs):
    from keras_bert.tokenization.tokenizer import BertTokenizer
    from training.distill import NeighbourAugmenter

    return NeighbourAugmenter(embeddings, BertTokenizer(VOCAB, lowercase=True), **kwargs)


def _reference_neighbours(embeddings, word, k):
    """The k whole-word entries nearest to `word`'s row by cosine similarity, by brute force."""
    def cosine(i, j):
        a, b = embeddings[i], embeddings[j]
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    own = VOCAB.index(word.lower())
    others = [j for j, token in enumerate(VOCAB) if token.isalpha() and j != own]
    return [VOCAB[j] for j in sorted(others, key=lambda j: -cosine(own, j))[:k]]


def _texts(count, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(count)]


def test_neighbour_candidates_come_from_the_embedding_matrix():
    embeddings = np.random.default_rng(0).normal(size=(len(VOCAB), 6)).astype("float32")
    augmenter = _augmenter(embeddings, candidates=3).fit(_texts(50))
    # Only whole single-piece words get candidates: no continuation, punctuation, [UNK] or two-piece word.
    assert set(augmenter.neighbours) == REPLACEABLE
    for word, candidates in augmenter.neighbours.items():
        assert candidates == _reference_neighbours(embeddings, word, 3), word
    # Other embeddings, other candidates: "good" takes the row of "plot".
    moved = embeddings.copy()
    moved[VOCAB.index("good")] = embeddings[VOCAB.index("plot")] + 0.01
    again = _augmenter(moved, candidates=3).fit(["Good plot"])
    assert again.neighbours["Good"] == _reference_neighbours(moved, "good", 3)
    assert again.neighbours["Good"][0] == "plot" and again.neighbours["plot"][0] == "good"


def test_neighbour_augmentation_is_seeded_and_replaces_only_single_piece_words():
    import random

    embeddings = np.random.default_rng(1).normal(size=(len(VOCAB), 6)).astype("float32")
    texts = _texts(200, seed=1)
    augmenter = _augmenter(embeddings, candidates=2, replace_prob=0.3).fit(texts)

    def copies(augmenter, seed):  # One generator for all the texts, as training.distill draws them.
        rng = random.Random(seed)
        return [augmenter(t, rng) for t in texts]

    first = copies(augmenter, 7)
    assert first == copies(augmenter, 7) and first != copies(augmenter, 8)
    replaced = total = 0
    for text, copy in zip(texts, first):
        words, new = text.split(), copy.split()
        assert len(words) == len(new)
        for old, word in zip(words, new):
            total += 1
            if word != old:
                replaced += 1
                assert old in REPLACEABLE and word in augmenter.neighbours[old], (old, word)
    assert 0.15 < replaced / total < 0.3  # 0.3 of the replaceable words (14 of the 19 drawn ones).
    assert copies(_augmenter(embeddings, replace_prob=0.0).fit(texts), 7) == [" ".join(t.split()) for t in texts]


def test_neighbour_augmentation_through_the_job(teacher, tmp_path):
    result = _distill(teacher, tmp_path / "out", "--augment-copies", 2, "--augmentation", "neighbours",
                      "--augment-candidates", 4, "--augment-replace-prob", 0.5, steps=2)
    assert "192 transfer examples (64 labelled, 128 augmented, 0 unlabeled)" in result.stdout, result.stdout[-2000:]
    assert "teacher outputs for 192 texts" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "neighbour augmentation:" in line)
    replaceable, words = map(int, line.split("augmentation: ")[1].split(" distinct")[0].split(" of "))
    assert 0 < replaceable < words, line
    message = _main_error("--config", RECIPE, "--teacher", teacher, "--output-dir", tmp_path / "bad", *SMALL,
                          "--student-layers", "0,2", "--augment-copies", 1, "--augmentation", "neighbours",
                          "--augment-candidates", 0)
    assert message.startswith("augment_candidates: "), message


def test_quarter_recipe_is_the_recipe_pruned_with_fresh_copies():
    """The two SST-2 recipes differ only in the student's feed-forward width, its steps and the augmented copies,
    so their benchmark rows compare like with like (the same data, blocks, sequence length, precision, losses
    and seed)."""
    from keras_bert.trainer import parse_job_config
    from training.distill import DistillConfig

    def load(name):
        path = os.path.join(REPO_ROOT, "training", "configs", name)
        return parse_job_config(DistillConfig, ["--config", path, "--teacher", "t", "--output-dir", "o"])

    recipe = dataclasses.asdict(load("distill_sst2.yaml"))
    quarter = dataclasses.asdict(load("distill_sst2_quarter.yaml"))
    differing = {key for key in recipe if recipe[key] != quarter[key]}
    assert differing == {"student_intermediate_size", "steps", "augment_copies", "augmentation"}
    assert recipe["student_intermediate_size"] is None and quarter["student_intermediate_size"] > 0
    assert recipe["augment_copies"] == 0 and quarter["augment_copies"] > 0
