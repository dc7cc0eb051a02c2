"""Serving benchmark: p50/p99 latency and throughput, with and without batching.

Starts `python -m serving.server` on loopback for each model and batching
setting, and sends raw-text requests at concurrency 1 and 16 over REST and
gRPC. Not a test: it prints a table (and optionally writes JSON).

```
# A model directory written by `python -m serving.export --out BASE/NAME`
# (repeat --model_dir for e.g. a tiny and a base-size classifier):
python -m benchmarks.serving_benchmark --model_dir exports/tiny_clf \
    --model_dir exports/base_clf --requests 400
# Without an export: a tiny built-in SavedModel (string in, length/label out).
python -m benchmarks.serving_benchmark --requests 200
```

The numbers are for the development server, not `tensorflow_model_server`;
use them to compare settings on one machine.
"""

import argparse
import json
import os
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from serving import client  # noqa: E402
from serving.testing import ServerProcess, write_tiny_model  # noqa: E402

SAMPLE_TEXTS = [
    "a quiet, moving film with a great cast",
    "terrible",
    "I expected more from the director, but the last hour is worth it.",
    "",
]


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", action="append", default=[],
                        help="BASE/NAME with <version>/ SavedModels (repeatable).")
    parser.add_argument("--input_name", default="text")
    parser.add_argument("--signature", default=None)
    parser.add_argument("--batch", type=int, default=1, help="Texts per request.")
    parser.add_argument("--requests", type=int, default=200,
                        help="Requests per (model, batching, protocol, concurrency).")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--protocols", nargs="+", default=["rest", "grpc"],
                        choices=["rest", "grpc"])
    parser.add_argument("--max_batch_size", type=int, default=32)
    parser.add_argument("--batch_timeout_micros", type=int, default=2000)
    parser.add_argument("--num_batch_threads", type=int, default=2)
    parser.add_argument("--json_out", default=None, help="Also write results here.")
    return parser.parse_args()


def _sender(server, protocol, model_name, inputs, signature):
    if protocol == "rest":
        return lambda: client.rest_predict(server.rest_url, model_name, inputs=inputs,
                                           signature_name=signature)
    return lambda: client.grpc_predict(server.grpc_target, model_name, inputs, signature)


def main():
    """Runs every configuration and prints a markdown table."""
    args = _parse_args()
    workdir = tempfile.mkdtemp(prefix="serving-bench-")
    model_dirs = args.model_dir
    if not model_dirs:
        model_dirs = [os.path.join(workdir, "tiny_test_model")]
        write_tiny_model(model_dirs[0], 1, warmup=False)
    batching_file = os.path.join(workdir, "batching_parameters.txt")
    with open(batching_file, "w") as params:
        params.write(
            f"max_batch_size {{ value: {args.max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {args.batch_timeout_micros} }}\n"
            f"num_batch_threads {{ value: {args.num_batch_threads} }}\n"
            "max_enqueued_batches { value: 1000 }\n"
            "pad_variable_length_inputs: true\n"
        )
    texts = (SAMPLE_TEXTS * args.batch)[: args.batch]
    inputs = {args.input_name: texts}
    rows = []
    for model_dir in model_dirs:
        model_name = os.path.basename(os.path.normpath(model_dir))
        for batching in (False, True):
            flags = ["--model_name", model_name, "--model_base_path", model_dir,
                     "--file_system_poll_wait_seconds", "0"]
            if batching:
                flags += ["--enable_batching", "--batching_parameters_file", batching_file]
            log_path = os.path.join(workdir, f"{model_name}-{int(batching)}.log")
            server = ServerProcess(flags, log_path)
            try:
                server.wait_until_available(model_name)
                for protocol in args.protocols:
                    send = _sender(server, protocol, model_name, inputs, args.signature)
                    client.load_test(send, 20, 4)  # warm up connections and graphs
                    for concurrency in args.concurrency:
                        report = client.load_test(send, args.requests, concurrency)
                        report.update(model=model_name, batching=batching, protocol=protocol)
                        rows.append(report)
                        print(json.dumps(report), file=sys.stderr, flush=True)
            finally:
                server.stop()
    print("\n| model | batching | protocol | concurrency | p50 ms | p99 ms | req/s | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {'on' if row['batching'] else 'off'} | {row['protocol']} "
              f"| {row['concurrency']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
              f"| {row['throughput']:.1f} | {row['errors']} |")
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
