"""SST-2 distillation: the fine-tuned MiniLM teacher vs a 3-block and a quarter-FLOPs student, through SavedModels.

Not a test. One command, from the repository root:

    python -m benchmarks.distill_sst2 [--work-dir /tmp/distill_sst2] [--teacher DIR] [--rounds 3] \
        [--precisions bfloat16 int8] [--parallel] [distill flags...]

1. The teacher: `--teacher` (default WORK/../sst2/finetune when it exists), else it is built by
   `python -m benchmarks.sst2_quality --work-dir WORK` (MiniLM-L6-H384 fine-tuned with finetune_sst2.yaml).
2. Distils it twice with `python -m training.distill`: `training/configs/distill_sst2.yaml`'s 3-block student
   into WORK/student3, and `training/configs/distill_sst2_quarter.yaml`'s student (the same blocks with a pruned
   feed-forward width), whose encoder FLOPs on the dev sentences are under a quarter of the teacher's (the last
   block of a sentence classifier runs at [CLS] only), into WORK/quarter. Each run's teacher outputs are
   computed once and kept in WORK/<student>_teacher_outputs.npz for later runs on the same data (the second
   run starts from the first's when it has none, and uses them when the transfer sets agree); with `--parallel`
   the second distillation starts once the first has its teacher outputs and runs beside it. Extra flags (e.g.
   `--max-train-examples 20000` for a shorter run) go to both distillations.
3. Exports the teacher (float32) and each student at float32 and at every `--precisions` (`serving.export
   --precision`'s code, `keras_bert.export.export_model_dir`), loads each as TF Serving does (TF1 session
   loader), and runs the 872 dev sentences through `serving_default` in batches of `--batch-size`, every model in
   turn for `--rounds` rounds in this one process: dev accuracy and the median sentences/s of each. Prints the
   targets as PASS/MISS lines (3 blocks, float32: >= 89.0% and >= 1.9x the float32 teacher's throughput;
   <= 1/4 FLOPs, float32: >= 88.0% and >= 3.5x; the best student at a low precision: >= 88.5% and >= 5x), each
   model against DistilBERT's trade-off (1.4 points lost for 1.6x), and writes WORK/distill_sst2.json.
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
QUARTER_RECIPE = os.path.join(REPO_ROOT, "training", "configs", "distill_sst2_quarter.yaml")
RECIPES = {"student3": RECIPE, "quarter": QUARTER_RECIPE}
DEV = os.path.join(REPO_ROOT, "..", "shared", "data", "sst2", "dev.tsv")
TARGETS = {"student3": (0.89, 1.9), "quarter": (0.88, 3.5)}  # float32 exports: (dev accuracy, speedup) at least
LOW_PRECISION_TARGET = (0.885, 5.0)  # the best student at bfloat16 or int8 vs the float32 teacher
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


def distill(teacher, out, extra, caches, recipe):
    """Starts training.distill with `recipe` from scratch into `out`, with the first existing file of `caches`
    (cached teacher outputs: used when they are those of this run's transfer set, else computed again); returns
    the process and its start time."""
    import shutil

    from training.distill import CACHE_FILE

    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    for cache in caches:
        if os.path.exists(cache):
            shutil.copy(cache, os.path.join(out, CACHE_FILE))
            break
    command = [sys.executable, "-m", "training.distill", "--config", recipe, "--teacher", teacher, "--output-dir",
               out, *extra]
    print("[distill_sst2] " + " ".join(command), flush=True)
    return subprocess.Popen(command, cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=REPO_ROOT)), time.perf_counter()


def distill_both(teacher, students, extra, work_dir, parallel):
    """Distils the 3-block and the quarter-FLOPs student; returns their wall seconds.

    Each run's teacher outputs are kept in WORK/<student>_teacher_outputs.npz for later runs; a run without its
    own starts from the other student's (the same when the recipes share a transfer set). With `parallel` the
    second run starts once the first has its teacher outputs and trains.
    """
    import shutil

    from training.distill import CACHE_FILE

    caches = {name: os.path.join(work_dir, f"{name}_{CACHE_FILE}") for name in students}
    processes, started, wall = {}, {}, {}
    first = "student3"
    processes[first], started[first] = distill(teacher, students[first], extra,
                                               [caches[first], caches["quarter"]], RECIPES[first])
    if parallel:  # Its training (and logs/) starts once its teacher outputs are in its cache file.
        while processes[first].poll() is None and not os.path.exists(os.path.join(students[first], "logs")):
            time.sleep(5)
    else:
        if processes[first].wait():
            raise SystemExit(f"error: training.distill failed for {students[first]}")
        wall[first] = time.perf_counter() - started[first]
    if not os.path.exists(os.path.join(students[first], CACHE_FILE)):
        raise SystemExit(f"error: training.distill failed for {students[first]} (no teacher outputs)")
    shutil.copy(os.path.join(students[first], CACHE_FILE), caches[first])
    processes["quarter"], started["quarter"] = distill(teacher, students["quarter"], extra,
                                                         [caches["quarter"], caches[first]], RECIPES["quarter"])
    running = {name: process for name, process in processes.items() if name not in wall}
    while running:
        for name, process in list(running.items()):
            if process.poll() is not None:
                if process.returncode:
                    raise SystemExit(f"error: training.distill failed for {students[name]}")
                wall[name] = time.perf_counter() - started[name]
                del running[name]
        time.sleep(1)
    shutil.copy(os.path.join(students["quarter"], CACHE_FILE), caches["quarter"])
    return wall


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
    from keras_bert.export import PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Unknown flags are passed to both training.distill runs.")
    parser.add_argument("--work-dir", default="/tmp/distill_sst2")
    parser.add_argument("--teacher", default=None, help="fine-tuned SST-2 teacher directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precisions", nargs="*", default=["bfloat16", "int8"],
                        choices=[p for p in PRECISIONS if p != "float32"],
                        help="the students' low-precision exports, timed beside the float32 ones")
    parser.add_argument("--parallel", action="store_true",
                        help="run the second distillation beside the first once the teacher outputs are cached")
    parser.add_argument("--skip-distill", action="store_true", help="measure the students already in WORK")
    args, extra = parser.parse_known_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    teacher = teacher_dir(args)
    students = {"student3": os.path.join(args.work_dir, "student3"), "quarter": os.path.join(args.work_dir, "quarter")}
    wall = {} if args.skip_distill else distill_both(teacher, students, extra, args.work_dir, args.parallel)

    import keras_bert
    from benchmarks.harness import machine_description
    from keras_bert.export import export_model_dir
    from keras_bert.models.distiller import encoder_flops

    texts, gold = dev_sentences()
    tokenizer = keras_bert.load_tokenizer(teacher)
    mean_length = _mean_pieces(tokenizer, texts)
    configs = {"teacher": keras_bert.load(teacher).encoder.config}
    configs.update({name: keras_bert.load(path).encoder.config for name, path in students.items()})
    flops = {name: encoder_flops(config, mean_length) / encoder_flops(configs["teacher"], mean_length)
             for name, config in configs.items()}
    # (model name, source directory, student name, precision): the teacher at float32, each student at each.
    rows = [("teacher", teacher, "teacher", "float32")] + [
        (name if precision == "float32" else f"{name}_{precision}", students[name], name, precision)
        for precision in ["float32", *args.precisions] for name in students]
    exports = {row: export_model_dir(path, os.path.join(args.work_dir, "export", row), max_length=64,
                                     warmup=False, server_configs=False, precision=precision)
               for row, path, _, precision in rows}
    accuracy, speed = serve(exports, texts, gold, args.batch_size, args.rounds)

    machine = f"{machine_description()}; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    print(f"[distill_sst2] {len(texts)} SST-2 dev sentences through the SavedModels, batch {args.batch_size}, "
          f"median of {args.rounds} rounds; mean {mean_length:.1f} word pieces per sentence; machine: {machine}")
    results = {"teacher": teacher,
               "recipes": {name: os.path.relpath(path, REPO_ROOT) for name, path in RECIPES.items()},
               "extra_flags": extra,
               "rounds": args.rounds, "batch_size": args.batch_size, "machine": machine,
               "command": "python -m benchmarks.distill_sst2 " + " ".join(argv if argv is not None else sys.argv[1:]),
               "models": {}}
    for row, _, name, precision in rows:
        ratio = speed[row] / speed["teacher"]
        lost = 100 * (accuracy["teacher"] - accuracy[row])
        results["models"][row] = {
            "accuracy": accuracy[row], "sentences_per_second": speed[row], "speedup": ratio, "precision": precision,
            "encoder_flops_ratio": flops[name], "num_layers": configs[name].num_layers,
            "intermediate_size": configs[name].intermediate_size,
            "distill_seconds": wall.get(name), "points_lost": lost,
            "beats_distilbert": row != "teacher" and lost <= DISTILBERT[0] and ratio >= DISTILBERT[1]}
        print(f"[distill_sst2] {row}: {configs[name].num_layers} blocks x {configs[name].intermediate_size} "
              f"feed-forward neurons, {precision}, {flops[name]:.3f} of the "
              f"teacher's encoder FLOPs, dev accuracy {100 * accuracy[row]:.2f}%, {speed[row]:.1f} sentences/s "
              f"({ratio:.2f}x)" + (f", distilled in {wall[name] / 60:.1f} min" if name in wall and
                                    precision == "float32" else ""))
    for name, (target_accuracy, target_speedup) in TARGETS.items():
        got = results["models"][name]
        size_ok = name != "quarter" or flops[name] <= 0.25
        got["meets_target"] = got["accuracy"] >= target_accuracy and got["speedup"] >= target_speedup and size_ok
        print(f"{'PASS' if got['meets_target'] else 'MISS'} {name} (float32): {100 * got['accuracy']:.2f}% (target >= "
              f"{100 * target_accuracy:.1f}%), {got['speedup']:.2f}x (target >= {target_speedup}x)"
              + (f", {flops[name]:.3f} FLOPs (target <= 0.25)" if name == "quarter" else ""))
    low = [row for row, _, _, precision in rows if precision != "float32"]
    if low:
        target_accuracy, target_speedup = LOW_PRECISION_TARGET
        meets = [row for row in low if accuracy[row] >= target_accuracy and
                 speed[row] / speed["teacher"] >= target_speedup]
        accurate = [row for row in low if accuracy[row] >= target_accuracy]
        best = max(meets or accurate or low, key=lambda row: (speed[row] if meets or accurate else accuracy[row]))
        got = results["models"][best]
        results["best_low_precision"] = {"model": best, "meets_target": bool(meets)}
        print(f"{'PASS' if meets else 'MISS'} best low-precision student {best}: {100 * got['accuracy']:.2f}% (target "
              f">= {100 * target_accuracy:.1f}%), {got['speedup']:.2f}x the float32 teacher (target >= "
              f"{target_speedup}x)")
    for row, _, _, _ in rows[1:]:
        got = results["models"][row]
        print(f"{'PASS' if got['beats_distilbert'] else 'MISS'} {row} vs DistilBERT's trade-off (-{DISTILBERT[0]} "
              f"points for {DISTILBERT[1]}x): -{got['points_lost']:.2f} points for {got['speedup']:.2f}x")
    with open(os.path.join(args.work_dir, "distill_sst2.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    return results


def _mean_pieces(tokenizer, texts):
    """Mean packed length ([CLS] and [SEP] included, at most 64) of `texts`."""
    pieces = tokenizer(texts).row_lengths().numpy()
    return float(sum(min(int(n) + 2, 64) for n in pieces) / len(texts))


if __name__ == "__main__":
    main()
