"""SST-2 distillation: the fine-tuned MiniLM teacher vs a 3-block and a quarter-FLOPs student, through SavedModels.

Not a test. One command, from the repository root:

    python -m benchmarks.distill_sst2 [--work-dir /tmp/distill_sst2] [--teacher DIR] [--rounds 3] [distill flags...]

1. The teacher: `--teacher` (default WORK/../sst2/finetune when it exists), else it is built by
   `python -m benchmarks.sst2_quality --work-dir WORK` (MiniLM-L6-H384 fine-tuned with finetune_sst2.yaml).
2. Distils it twice with `python -m training.distill --config training/configs/distill_sst2.yaml`: the recipe's
   3-block student (teacher blocks 0, 2, 5) into WORK/student3, and a 2-block student (blocks 0, 5), whose encoder
   FLOPs on the dev sentences are under a quarter of the teacher's (the last block of a sentence classifier runs at
   [CLS] only), into WORK/student2. The second run reuses the first's cached teacher outputs. Extra flags (e.g.
   `--steps 300` for a shorter run) go to both distillations.
3. Exports the three models (float32 SavedModels, `keras_bert.export.export_model_dir`), loads each as TF Serving
   does (TF1 session loader), and runs the 872 dev sentences through `serving_default` in batches of
   `--batch-size`, the three models in turn for `--rounds` rounds in this one process: dev accuracy and the median
   sentences/s of each. Prints the targets as PASS/MISS lines (3 blocks: >= 89.0% and >= 1.9x the teacher's
   throughput; <= 1/4 FLOPs: >= 88.0% and >= 3.5x) and each student against DistilBERT's trade-off (1.4 points
   lost for 1.6x), and writes WORK/distill_sst2.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(REPO_ROOT, "training", "configs", "distill_sst2.yaml")
DEV = os.path.join(REPO_ROOT, "..", "shared", "data", "sst2", "dev.tsv")
QUARTER_LAYERS = "0,5"
TARGETS = {"student3": (0.89, 1.9), "student2": (0.88, 3.5)}
DISTILBERT = (1.4, 1.6)  # Points of dev accuracy lost, speedup (BERT-base -> DistilBERT, SST-2 dev).


def _job(module, *args):
    started = time.perf_counter()
    command = [sys.executable, "-m", module, *map(str, args)]
    print("[distill_sst2] " + " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO_ROOT, check=True, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    return time.perf_counter() - started


def teacher_dir(args):
    if args.teacher:
        return args.teacher
    shared = os.path.join(os.path.dirname(os.path.abspath(args.work_dir)), "sst2", "finetune")
    for candidate in (shared, os.path.join(args.work_dir, "finetune")):
        if os.path.exists(os.path.join(candidate, "model.keras")):
            return candidate
    _job("benchmarks.sst2_quality", "--work-dir", args.work_dir)
    return os.path.join(args.work_dir, "finetune")


def distill(teacher, out, extra, layers=None, cache_from=None):
    """Runs training.distill from scratch into `out` (the teacher outputs cached in `cache_from` are reused)."""
    import shutil

    from training.distill import CACHE_FILE

    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    if cache_from and os.path.exists(os.path.join(cache_from, CACHE_FILE)):
        shutil.copy(os.path.join(cache_from, CACHE_FILE), os.path.join(out, CACHE_FILE))
    flags = ["--student-layers", layers] if layers else []
    seconds = _job("training.distill", "--config", RECIPE, "--teacher", teacher, "--output-dir", out, *flags, *extra)
    return seconds


def dev_sentences():
    from keras_bert.data import read_text_examples

    examples = read_text_examples(DEV, text_columns=("sentence",), label_column="label", label_list=["0", "1"],
                                  file_format="tsv")
    return list(examples.texts_a), [["0", "1"][i] for i in examples.labels]


def serve(models, texts, gold, batch_size, rounds):
    """Accuracy and median sentences/s of each exported model on `texts`, the models in turn each round."""
    from tests.export.helpers import Tf1Model, decode

    loaded = {name: Tf1Model(path) for name, path in models.items()}
    batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    speeds, accuracy = {name: [] for name in models}, {}
    for name, model in loaded.items():  # Warm-up and accuracy.
        labels = [label for batch in batches for label in decode(model.run("serving_default", {"text": batch})["label"])]
        accuracy[name] = sum(p == g for p, g in zip(labels, gold)) / len(gold)
    for _ in range(rounds):
        for name, model in loaded.items():
            started = time.perf_counter()
            for batch in batches:
                model.run("serving_default", {"text": batch})
            speeds[name].append(len(texts) / (time.perf_counter() - started))
    for model in loaded.values():
        model.close()
    return accuracy, {name: statistics.median(values) for name, values in speeds.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Unknown flags are passed to both training.distill runs.")
    parser.add_argument("--work-dir", default="/tmp/distill_sst2")
    parser.add_argument("--teacher", default=None, help="fine-tuned SST-2 teacher directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-distill", action="store_true", help="measure the students already in WORK")
    args, extra = parser.parse_known_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    teacher = teacher_dir(args)
    students = {"student3": os.path.join(args.work_dir, "student3"), "student2": os.path.join(args.work_dir, "student2")}
    wall = {}
    if not args.skip_distill:
        wall["student3"] = distill(teacher, students["student3"], extra)
        wall["student2"] = distill(teacher, students["student2"], extra, QUARTER_LAYERS, students["student3"])

    import keras_bert
    from keras_bert.export import export_model_dir
    from keras_bert.models.distiller import encoder_flops

    texts, gold = dev_sentences()
    tokenizer = keras_bert.load_tokenizer(teacher)
    mean_length = _mean_pieces(tokenizer, texts)
    configs = {"teacher": keras_bert.load(teacher).encoder.config}
    configs.update({name: keras_bert.load(path).encoder.config for name, path in students.items()})
    flops = {name: encoder_flops(config, mean_length) / encoder_flops(configs["teacher"], mean_length)
             for name, config in configs.items()}
    exports = {name: export_model_dir(path, os.path.join(args.work_dir, "export", name), max_length=64, warmup=False,
                                      server_configs=False)
               for name, path in {"teacher": teacher, **students}.items()}
    accuracy, speed = serve(exports, texts, gold, args.batch_size, args.rounds)

    print(f"[distill_sst2] {len(texts)} SST-2 dev sentences through the float32 SavedModels, batch {args.batch_size}, "
          f"median of {args.rounds} rounds; mean {mean_length:.1f} word pieces per sentence")
    results = {"teacher": teacher, "extra_flags": extra, "rounds": args.rounds, "batch_size": args.batch_size,
               "models": {}}
    for name in ("teacher", "student3", "student2"):
        ratio = speed[name] / speed["teacher"]
        results["models"][name] = {"accuracy": accuracy[name], "sentences_per_second": speed[name], "speedup": ratio,
                                   "encoder_flops_ratio": flops[name], "num_layers": configs[name].num_layers,
                                   "distill_seconds": wall.get(name)}
        print(f"[distill_sst2] {name}: {configs[name].num_layers} blocks, {flops[name]:.3f} of the teacher's encoder "
              f"FLOPs, dev accuracy {100 * accuracy[name]:.2f}%, {speed[name]:.1f} sentences/s ({ratio:.2f}x)"
              + (f", distilled in {wall[name] / 60:.1f} min" if name in wall else ""))
    for name, (target_accuracy, target_speedup) in TARGETS.items():
        got = results["models"][name]
        size_ok = name != "student2" or flops[name] <= 0.25
        ok = got["accuracy"] >= target_accuracy and got["speedup"] >= target_speedup and size_ok
        print(f"{'PASS' if ok else 'MISS'} {name}: {100 * got['accuracy']:.2f}% (target >= {100 * target_accuracy:.1f}%)"
              f", {got['speedup']:.2f}x (target >= {target_speedup}x)"
              + (f", {flops[name]:.3f} FLOPs (target <= 0.25)" if name == "student2" else ""))
        lost = 100 * (accuracy["teacher"] - got["accuracy"])
        beats = lost <= DISTILBERT[0] and got["speedup"] >= DISTILBERT[1]
        print(f"{'PASS' if beats else 'MISS'} {name} vs DistilBERT's trade-off (-{DISTILBERT[0]} points for "
              f"{DISTILBERT[1]}x): -{lost:.2f} points for {got['speedup']:.2f}x")
        got["beats_distilbert"] = beats
        got["meets_target"] = ok
    with open(os.path.join(args.work_dir, "distill_sst2.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    return results


def _mean_pieces(tokenizer, texts):
    """Mean packed length ([CLS] and [SEP] included, at most 64) of `texts`."""
    pieces = tokenizer(texts).row_lengths().numpy()
    return float(sum(min(int(n) + 2, 64) for n in pieces) / len(texts))


if __name__ == "__main__":
    main()
