"""Served speed of pruned students before training them: each shape against its teacher, through SavedModels.

    python -m benchmarks.student_speed --teacher runs/sst2/finetune --work-dir /tmp/student_speed \
        --students 0,2,5:480:12 0,2,5:480:6 0,5

A student's speed does not depend on its weights, so the shapes of `training.distill --student-layers L
--student-intermediate-size F --student-num-heads H` can be timed before any distillation: each `--students`
entry is `LAYERS[:FEED_FORWARD[:HEADS]]` (omitted: all of the teacher's). Every student is cut from the teacher
(`student_from_layers`), exported at float32 like `benchmarks.distill_sst2` does (max length 64) and timed in
this one process beside the teacher on the 872 SST-2 dev sentences (TF1 loader, the models in turn each round).
Prints each shape's share of the teacher's encoder FLOPs and its speedup; writes WORK/student_speed.json.
"""

import argparse
import json
import os

from benchmarks.distill_sst2 import _mean_pieces, dev_sentences, serve


def parse_shape(text):
    """`"0,2,5:480:6"` -> (layers, intermediate_size or None, num_heads or None)."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LAYERS[:FEED_FORWARD[:HEADS]], e.g. 0,2,5:480:6")
    try:
        layers = [int(i) for i in parts[0].split(",")]
        sizes = [int(p) if p else None for p in parts[1:]] + [None] * (3 - len(parts))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: layers, feed-forward width and heads are integers") from None
    return layers, sizes[0], sizes[1]


def shape_name(layers, intermediate_size, num_heads):
    return "blocks" + "-".join(map(str, layers)) + (f"_ffn{intermediate_size}" if intermediate_size else "") + (
        f"_heads{num_heads}" if num_heads else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="a fine-tuned classification model directory")
    parser.add_argument("--work-dir", default="/tmp/student_speed")
    parser.add_argument("--students", nargs="+", type=parse_shape, required=True,
                        help="LAYERS[:FEED_FORWARD[:HEADS]] each, e.g. 0,2,5:480:6")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    import keras_bert
    from benchmarks.harness import machine_description
    from keras_bert.export import export_model_dir
    from keras_bert.models.distiller import encoder_flops, student_from_layers

    teacher = keras_bert.load(args.teacher)
    texts, gold = dev_sentences()
    mean_length = _mean_pieces(keras_bert.load_tokenizer(args.teacher), texts)
    teacher_flops = encoder_flops(teacher.encoder.config, mean_length)
    sources, flops = {"teacher": args.teacher}, {"teacher": 1.0}
    for layers, intermediate_size, num_heads in args.students:
        name = shape_name(layers, intermediate_size, num_heads)
        try:
            student = student_from_layers(teacher, layers, intermediate_size, num_heads)
        except ValueError as error:
            raise SystemExit(f"error: --students {name}: {error}") from None
        sources[name] = keras_bert.save(student, os.path.join(args.work_dir, name),
                                        vocab_file=os.path.join(args.teacher, "vocab.txt"))
        flops[name] = encoder_flops(student.encoder.config, mean_length) / teacher_flops
    exports = {name: export_model_dir(path, os.path.join(args.work_dir, "export", name), max_length=64,
                                      warmup=False, server_configs=False)
               for name, path in sources.items()}
    _, speed = serve(exports, texts, gold, args.batch_size, args.rounds)

    machine = f"{machine_description()}; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    print(f"[student_speed] {len(texts)} SST-2 dev sentences, batch {args.batch_size}, median of {args.rounds} "
          f"rounds, float32 SavedModels (untrained students); machine: {machine}")
    results = {"teacher": args.teacher, "machine": machine, "rounds": args.rounds, "batch_size": args.batch_size,
               "models": {}}
    for name in sources:
        ratio = speed[name] / speed["teacher"]
        results["models"][name] = {"encoder_flops_ratio": flops[name], "sentences_per_second": speed[name],
                                   "speedup": ratio}
        print(f"[student_speed] {name}: {flops[name]:.3f} of the teacher's encoder FLOPs, "
              f"{speed[name]:.1f} sentences/s ({ratio:.2f}x)")
    with open(os.path.join(args.work_dir, "student_speed.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
