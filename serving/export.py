"""Export a keras_bert model directory as a TF Serving SavedModel: `python -m serving.export ...`.

Examples:

```
python -m serving.export --model runs/sst2/model --task classification --out /models/sst2
python -m serving.export --model runs/pretrain/model --task fill_mask --out /models/mlm --top-k 10
python -m serving.export --model runs/minilm --task embedding --pooling mean --out /models/embed --version 3
python -m serving.export --model runs/sst2/model --out /models/sst2_int8 --precision int8
```

Writes `OUT/<version>/` (temp dir + rename; version = next integer by default) with
the signatures `serving_default` (raw strings), `serve_ids` (int32 ids) and
`serve_examples` (serialized tf.Example), for classification/regression also TF Serving's
`classification` / `regression` signature (tf.Examples in `inputs`, served by `:classify` /
`:regress`), with `--explain` also `explain` (raw text in; tokens, word
attributions and the prediction out), warmup records in `assets.extra/`, and
`models.config` + `batching_parameters.txt` next to `OUT` (in BASE).
"""

import argparse
import os
import sys

from keras_bert.export.precision import PRECISIONS
from keras_bert.tasks import KINDS


def parse_args(argv=None):
    """Parses the command line.

    Args:
        argv: list of str or None. Arguments (None: `sys.argv[1:]`).
    """
    parser = argparse.ArgumentParser(prog="python -m serving.export", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a keras_bert model directory (keras_bert.load reads it)")
    parser.add_argument("--task", choices=KINDS, default=None, metavar="{" + ",".join(KINDS) + "}",
                        help="what the exported graph post-processes (default: the model's own task; "
                             "embedding for an encoder)")
    parser.add_argument("--out", required=True, help="BASE/NAME: versions go to BASE/NAME/<version>/")
    parser.add_argument("--version", type=int, default=None, help="version number (default: the next one)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="truncation length in word pieces (default: the model's maximum, at most 512)")
    parser.add_argument("--pooling", choices=("mean", "cls"), default=None,
                        help="embedding task: mean over real tokens (default) or the [CLS] state")
    parser.add_argument("--top-k", type=int, default=None,
                        help="fill_mask: number of predictions (default 5); summarization: sentences per aspect "
                             "(default 3)")
    parser.add_argument("--pair", action="store_true",
                        help="classification/regression: inputs `text` and `text_pair`")
    parser.add_argument("--max-answer-length", type=int, default=30, help="qa task: longest answer, in word pieces")
    parser.add_argument("--doc-stride", type=int, default=128,
                        help="token_classification: pieces between the overlapping windows over a text longer "
                             "than --max-length (at most half a window)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="float32; bfloat16 (bfloat16 weights and matmuls); int8 (int8 weights, per-token "
                             "dynamic activations, XLA-compiled model: TF Serving needs "
                             "--xla_cpu_compilation_enabled=true). Outputs stay float32")
    parser.add_argument("--explain", action="store_true",
                        help="classification/regression: add the `explain` signature (raw text in; tokens, word "
                             "attributions by Integrated Gradients and the prediction out)")
    parser.add_argument("--explain-steps", type=int, default=50, help="--explain: Integrated Gradients steps")
    parser.add_argument("--no-warmup", action="store_true", help="do not write TF Serving warmup records")
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the export and prints the version directory; returns the exit code.

    Args:
        argv: list of str or None. Arguments (None: `sys.argv[1:]`).
    """
    args = parse_args(argv)
    if not os.path.isdir(args.model):
        print(f"error: --model {args.model} is not a directory", file=sys.stderr)
        return 2
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from keras_bert.export import export_model_dir

    try:
        path = export_model_dir(args.model, args.out, args.task, version=args.version, max_length=args.max_length,
                                pooling=args.pooling, pair=args.pair, top_k=args.top_k,
                                max_answer_length=args.max_answer_length, warmup=not args.no_warmup,
                                doc_stride=args.doc_stride,
                                precision=args.precision,
                                explain_steps=args.explain_steps if args.explain else None)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
