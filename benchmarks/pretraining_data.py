"""Pretraining data at corpus scale: the Beam pipeline against the single-process job, side by side.

    python -m benchmarks.pretraining_data --json out.json          # all targets (about 35 min on 2 quiet cores)
    python -m benchmarks.pretraining_data --sizes-mb 16 --skip-pretrain   # throughput and statistics at 16 MB only

Builds corpora in --work-dir (never in the checkout) from ../shared/data (english_books and Machado de
Assis, repeated with distinct documents), then runs `python -m training.prepare_pretraining` as separate
processes and measures, in one run:

- throughput (corpus MB / wall second, start-up included; the median of `--repeats` alternating rounds) of
  the single-process job, the pipeline with 1 worker and with 2 workers (DirectRunner multi_processing) on the last (largest) corpus size;
- the instance statistics of the 2-worker pipeline against the single-process job on the first size;
- peak RSS of every pipeline worker process and of the driver, for each corpus size;
- `training.pretrain` (the tiny config, the same steps and validation set) on the pipeline's shards and on
  the single-process shards of one small corpus: validation MLM and NSP accuracy;
- MB/s per worker and the workers that would build BrWaC (17 GB) at dupe factor 10 in under 2 hours.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO_ROOT, "..", "shared", "data")
BRWAC_MB = 17 * 1024


def source_documents(lines_per_document=40):
    """The source text: english_books and Machado de Assis, as lists of lines."""
    roots = [os.path.join(DATA, "english_books"), os.path.join(DATA, "portuguese", "machado_de_assis")]
    lines = []
    for root in roots:
        for directory, _, names in sorted(os.walk(root)):
            for name in sorted(names):
                if not name.endswith(".txt"):
                    continue
                with open(os.path.join(directory, name), "rb") as handle:
                    text = handle.read().decode("utf-8", errors="replace")
                lines.extend(line.strip() for line in text.splitlines() if line.strip())
    if not lines:
        raise SystemExit(f"error: no text under {roots} (../shared/data is absent)")
    return lines


def build_corpus(lines, directory, size_mb, file_mb=16):
    """Writes about `size_mb` MB of documents; each repetition cuts them differently and numbers them.

    Returns:
        list[str]: the corpus files.
    """
    os.makedirs(directory, exist_ok=True)
    files, written, repetition, out = [], 0, 0, None
    target = size_mb * 2**20
    while written < target:
        length = 30 + repetition % 17  # Other document boundaries in every repetition: distinct documents.
        start = (repetition * 11) % length
        for number, first in enumerate(range(start, len(lines), length)):
            if out is None or out.tell() >= file_mb * 2**20:
                if out is not None:
                    out.close()
                files.append(os.path.join(directory, f"part-{len(files):04d}.txt"))
                out = open(files[-1], "w", encoding="utf-8")
            block = f"Document {repetition}.{number}.\n" + "\n".join(lines[first : first + length]) + "\n\n"
            out.write(block)
            written += len(block.encode("utf-8"))
            if written >= target:
                break
        repetition += 1
    out.close()
    return files


def _descendants(pid):
    """Every descendant process (children of any thread: Beam starts its workers from a thread)."""
    children = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                direct = [int(p) for p in handle.read().split()]
        except OSError:
            continue
        for child in direct:
            children.append(child)
            children.extend(_descendants(child))
    return children


def _peak_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _is_worker(pid):
    """A Beam SDK worker: a Python process running sdk_worker_main (not the shell that starts it)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read()
        return b"sdk_worker_main" in command and "python" in os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return False


def run_measured(command, log_path):
    """Runs a command, polling the peak RSS of it and its descendants.

    Returns:
        dict: wall_s, cpu_s (user + system seconds of it and its descendants), cores_used (cpu_s / wall_s),
        driver_peak_mb, worker_peak_mb (list).
    """
    peaks, kinds = {}, {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(["nice", "-n", "10"] + command, cwd=REPO_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
        done = threading.Event()

        def poll():
            while not done.is_set():
                for pid in [process.pid] + _descendants(process.pid):
                    peak = _peak_rss_mb(pid)
                    if peak is not None:
                        peaks[pid] = max(peaks.get(pid, 0), peak)
                        kinds.setdefault(pid, _is_worker(pid))
                time.sleep(0.2)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        returncode = process.wait()
        done.set()
        thread.join()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    workers = sorted((peaks[p] for p in peaks if kinds.get(p)), reverse=True)
    # The driver: the largest other process (`nice` becomes the job; the shells are tiny).
    drivers = [peaks[p] for p in peaks if not kinds.get(p)]
    if returncode:
        raise SystemExit(f"error: {' '.join(command)} failed with status {returncode}; see {log_path}")
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cores_used": round(cpu / wall, 2), "driver_peak_mb": round(max(drivers or [0]), 1),
            "worker_peak_mb": [round(w, 1) for w in workers]}


def prepare_command(files, vocab, out, *, workers=None, dupe_factor=1, extra=()):
    command = [sys.executable, "-m", "training.prepare_pretraining", "--corpus", *files, "--vocab", vocab,
               "--out", out, "--dupe-factor", str(dupe_factor), "--num-shards", "4", "--no-shard-check", *extra]
    if workers is not None:
        command += ["--runner", "DirectRunner", "--num-workers", str(workers),
                    "--direct_running_mode", "multi_processing"]
    return command


def summary_numbers(log_path):
    """Instances and shares from a job's printed summary."""
    text = open(log_path, encoding="utf-8", errors="replace").read()
    found = {}
    match = re.search(r"instances: (\d+), random next: \d+ \(([0-9.]+)%\)", text)
    if match:
        found.update(instances=int(match.group(1)), random_next_share=float(match.group(2)) / 100)
    match = re.search(r"masked: \d+ \(([0-9.]+)%\); \[MASK\] ([0-9.]+)%, random ([0-9.]+)%, kept ([0-9.]+)%", text)
    if match:
        found.update(masked_share=float(match.group(1)) / 100, mask_share=float(match.group(2)) / 100,
                     random_share=float(match.group(3)) / 100, kept_share=float(match.group(4)) / 100)
    groups = re.search(r"shuffle groups: .*", text)
    found["groups"] = groups.group(0) if groups else None
    return found


def pretrain(train_files, validation_files, vocab, out, steps, log_path, seed=1):
    command = [sys.executable, "-m", "training.pretrain", "--config", "training/configs/pretrain_tiny.yaml",
               "--seed", str(seed), "--batch-size", "64",
               "--vocab", vocab, "--train-files", *train_files, "--validation-files", *validation_files,
               "--output-dir", out, "--steps", str(steps), "--checkpoint-every", str(10 * max(steps // 30, 1)),
               "--validation-steps", "40", "--log-every", str(max(steps // 30, 1))]
    measured = run_measured(command, log_path)
    return {**validation_metrics(log_path), "wall_s": measured["wall_s"]}


def compare_pretraining(lines, args):
    """training.pretrain (the tiny config) on single-process and on pipeline shards of one small corpus.

    Each shard set trains with every seed of `--pretrain-seeds` and is validated on the same held-out shards;
    the seeds' spread is the noise the difference between the two shard sets is judged against.
    """
    from keras_bert.tokenization import learn_vocabulary_from_sample, write_vocabulary

    base = os.path.join(args.work_dir, "pretrain")
    shutil.rmtree(base, ignore_errors=True)
    files = build_corpus(lines, os.path.join(base, "corpus"), args.pretrain_mb, file_mb=1)
    held_out = build_corpus(lines[::-1], os.path.join(base, "held_out"), 0.5)
    vocab = os.path.join(base, "vocab.txt")
    write_vocabulary(learn_vocabulary_from_sample(files, 2000, 2**20), vocab)
    shape = ["--max-seq-length", "64", "--max-predictions-per-seq", "10"]
    validation = os.path.join(base, "validation")
    run_measured(prepare_command(held_out, vocab, validation, extra=shape), validation + ".log")
    validation_files = sorted(os.path.join(validation, f) for f in os.listdir(validation) if ".tfrecord" in f)
    report = {"steps": args.pretrain_steps, "corpus_mb": args.pretrain_mb, "seeds": args.pretrain_seeds}
    names = ("single_process", "pipeline_2_workers")
    for name, workers in zip(names, (None, 2)):
        shards = os.path.join(base, f"shards-{name}")
        run_measured(prepare_command(files, vocab, shards, workers=workers, dupe_factor=2, extra=shape),
                     shards + ".log")
        train_files = sorted(os.path.join(shards, f) for f in os.listdir(shards) if ".tfrecord" in f)
        report[name] = []
        for seed in args.pretrain_seeds:
            model_dir = os.path.join(base, f"model-{name}-seed{seed}")
            result = pretrain(train_files, validation_files, vocab, model_dir, args.pretrain_steps,
                              model_dir + ".log", seed=seed)
            report[name].append(dict(result, seed=seed))
            print(f"[pretrain] {name} seed {seed}: {result}", flush=True)
    for metric in ("mlm_accuracy", "nsp_accuracy"):
        values = {name: [r[metric] for r in report[name] if r[metric] is not None] for name in names}
        if all(values.values()):
            means = {name: float(np.mean(v)) for name, v in values.items()}
            noise = max(max(v) - min(v) for v in values.values())
            report[metric] = {"means": means, "difference": round(means[names[1]] - means[names[0]], 4),
                              "seed_spread": round(noise, 4),
                              "within_noise": abs(means[names[1]] - means[names[0]]) <= max(noise, 0.005)}
    return report


def validation_metrics(log_path):
    """The last `[validation] step N: ...` line of a training.pretrain log (Keras' progress bar shares its line)."""
    text = open(log_path, encoding="utf-8", errors="replace").read()
    lines = re.findall(r"\[validation\] step (\d+): ([^\r\n]*)", text)
    metrics = {"validation_step": int(lines[-1][0]) if lines else None}
    for name in ("mlm_accuracy", "nsp_accuracy"):
        found = re.findall(rf"\b{name}=([0-9.]+)", lines[-1][1]) if lines else []
        metrics[name] = float(found[-1]) if found else None
    return metrics


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="/tmp/pretraining_data_bench")
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[16, 200], help="corpus sizes; the first one "
                        "compares statistics with the single-process job, the last one also measures throughput "
                        "against the 1-worker pipeline and the single-process job")
    parser.add_argument("--vocab", default=os.path.join(DATA, "vocab", "bert-base-multilingual-cased", "vocab.txt"))
    parser.add_argument("--pretrain-mb", type=float, default=2, help="corpus of the training.pretrain comparison")
    parser.add_argument("--pretrain-steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds of the throughput runs")
    parser.add_argument("--pretrain-seeds", type=int, nargs="+", default=[1, 2],
                        help="training seeds of each training.pretrain run (their spread is the noise)")
    parser.add_argument("--skip-pretrain", action="store_true")
    parser.add_argument("--skip-sizes", action="store_true", help="only the training.pretrain comparison")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    lines = source_documents()
    results = {"sizes": {}, "machine": f"{os.cpu_count()} cores"}
    cased = ["--cased"] if os.path.basename(os.path.dirname(args.vocab)).endswith("-cased") else []
    for index, size in enumerate([] if args.skip_sizes else args.sizes_mb):
        corpus_dir = os.path.join(args.work_dir, f"corpus-{size:g}mb")
        shutil.rmtree(corpus_dir, ignore_errors=True)
        files = build_corpus(lines, corpus_dir, size)
        mb = sum(os.path.getsize(f) for f in files) / 2**20
        entry = {"corpus_mb": round(mb, 1), "files": len(files)}
        statistics, throughput = index == 0, index == len(args.sizes_mb) - 1
        runs = [("pipeline_2_workers", 2)]
        if statistics:
            runs.insert(0, ("single_process", None))
        if throughput:
            runs = [("single_process", None), ("pipeline_1_worker", 1), ("pipeline_2_workers", 2)]
        # The throughput runs alternate, `--repeats` rounds; each keeps its median-wall round.
        rounds = {name: [] for name, _ in runs}
        for round_index in range(args.repeats if throughput else 1):
            for name, workers in runs:
                out = os.path.join(args.work_dir, f"out-{size:g}mb-{name}")
                shutil.rmtree(out, ignore_errors=True)
                log = out + ".log"
                measured = run_measured(prepare_command(files, args.vocab, out, workers=workers, extra=cased), log)
                measured["mb_per_s"] = round(mb / measured["wall_s"], 3)
                measured.update(summary_numbers(log))
                rounds[name].append(measured)
                print(f"[{size:g} MB, round {round_index + 1}] {name}: {json.dumps(measured)}", flush=True)
        for name, measured in rounds.items():
            entry[name] = sorted(measured, key=lambda m: m["wall_s"])[len(measured) // 2]
            entry[name]["round_walls_s"] = [m["wall_s"] for m in measured]
        if statistics:
            single, pipeline = entry["single_process"], entry["pipeline_2_workers"]
            # Differences in percentage points (instances: percent of the single-process count).
            entry["stats_difference_points"] = {
                "instances": round(100 * (pipeline["instances"] / single["instances"] - 1), 2),
                **{key: round(100 * (pipeline[key] - single[key]), 2)
                   for key in ("random_next_share", "masked_share", "mask_share", "kept_share", "random_share")},
            }
        if throughput:
            entry["speedup_2_vs_1_worker"] = round(entry["pipeline_1_worker"]["wall_s"]
                                                   / entry["pipeline_2_workers"]["wall_s"], 2)
            entry["speedup_2_workers_vs_single"] = round(entry["single_process"]["wall_s"]
                                                         / entry["pipeline_2_workers"]["wall_s"], 2)
        results["sizes"][f"{size:g}"] = entry
        shutil.rmtree(corpus_dir, ignore_errors=True)
    sizes = list(results["sizes"].values())
    if sizes:
        first, last = sizes[0]["pipeline_2_workers"], sizes[-1]["pipeline_2_workers"]
        results["worker_peak_growth"] = round(max(last["worker_peak_mb"]) / max(first["worker_peak_mb"]) - 1, 3)
        results["driver_peak_growth"] = round(last["driver_peak_mb"] / first["driver_peak_mb"] - 1, 3)
        per_worker = last["mb_per_s"] / 2
        results["mb_per_s_per_worker"] = round(per_worker, 3)
        results["brwac_workers_dupe10_2h"] = int(-(-BRWAC_MB * 10 // (per_worker * 7200)))

    if not args.skip_pretrain:
        results["pretrain"] = compare_pretraining(lines, args)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
