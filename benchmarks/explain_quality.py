"""Integrated Gradients quality on a real fine-tuned classifier: completeness and a deletion test on SST-2 dev.

    python -m benchmarks.explain_quality [--model /work/artifacts/sst2/finetune] [--data ../shared/data/sst2/dev.tsv]
        [--sentences 100] [--steps 50] [--random-draws 10] [--json benchmarks/results/explain_quality.json]

For each of the first N dev sentences, `keras_bert.explain.integrated_gradients` explains the predicted
class's probability ([PAD] baseline). Completeness: |delta| / |f(x) - f(baseline)| per sentence (target: at
most 5% for every sentence). Deletion: every word piece of the top-2 attributed words is replaced by [MASK],
and the drop of the predicted class's probability is compared with that of masking 2 random words (the mean
over `--random-draws` draws per sentence); target: the top-2 drop is larger on average.
"""

import argparse
import csv
import json
import os
import time

import numpy as np


def word_of_token(spans, tokens):
    """Word index of each token (None for specials), grouping a piece with the `##` pieces after it."""
    index, out = -1, []
    previous_segment = None
    for token, span in zip(tokens, spans):
        if span is None:
            out.append(None)
            continue
        if not (token.startswith("##") and index >= 0 and span[0] == previous_segment):
            index += 1
        previous_segment = span[0]
        out.append(index)
    return out


def masked(inputs, words_of_tokens, chosen, mask_id):
    ids = inputs["token_ids"].copy()
    for position, word in enumerate(words_of_tokens):
        if word is not None and word in chosen:
            ids[0, position] = mask_id
    return ids


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain_quality", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/work/artifacts/sst2/finetune")
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "sst2", "dev.tsv"))
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--method", default="adaptive", help="the quadrature: adaptive or gausslegendre")
    parser.add_argument("--batch-size", type=int, default=25, help="interpolation points per forward pass")
    parser.add_argument("--random-draws", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import keras_bert
    from keras_bert import explain

    model = keras_bert.load(args.model)
    tokenizer = model.preprocessor.tokenizer
    with open(args.data, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:args.sentences]
    rng = np.random.default_rng(args.seed)
    records, start = [], time.time()
    for number, row in enumerate(rows):
        text = row["sentence"].strip()
        result = explain.integrated_gradients(model, text, steps=args.steps, batch_size=args.batch_size,
                                              method=args.method)
        change = result["prediction"] - result["baseline_prediction"]
        relative = abs(result["completeness_delta"]) / max(abs(change), 1e-12)
        words = word_of_token(result["token_spans"], result["tokens"])
        n = len(result["words"])
        top2 = set(np.argsort(-np.asarray(result["word_attributions"]))[:2].tolist())
        draws = [set(rng.choice(n, size=min(2, n), replace=False).tolist()) for _ in range(args.random_draws)]
        batch = [result["inputs"]["token_ids"], masked(result["inputs"], words, top2, tokenizer.mask_token_id)]
        batch += [masked(result["inputs"], words, d, tokenizer.mask_token_id) for d in draws]
        inputs = {k: np.repeat(v, len(batch), axis=0) for k, v in result["inputs"].items()}
        inputs["token_ids"] = np.concatenate(batch)
        logits = np.asarray(model(inputs, training=False), np.float64)
        probabilities = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        p = probabilities[:, result["target_index"]]
        records.append({
            "sentence": text, "label": row["label"], "predicted": result["target"], "words": n,
            "prediction": result["prediction"], "baseline_prediction": result["baseline_prediction"],
            "completeness_delta": result["completeness_delta"], "relative_delta": relative,
            "top2_words": [result["words"][i] for i in sorted(top2)],
            "top2_drop": float(p[0] - p[1]), "random2_drop": float(np.mean(p[0] - p[2:])),
            "top2_flips": bool(probabilities[1].argmax() != result["target_index"]),
            "random2_flip_rate": float(np.mean(probabilities[2:].argmax(-1) != result["target_index"])),
        })
        if (number + 1) % 10 == 0:
            print(f"[explain_quality] {number + 1}/{len(rows)} sentences, {time.time() - start:.0f} s", flush=True)
    relative = np.array([r["relative_delta"] for r in records])
    summary = {
        "model": args.model, "data": args.data, "sentences": len(records), "steps": args.steps, "method": args.method,
        "baseline": "pad",
        "max_relative_delta": float(relative.max()), "median_relative_delta": float(np.median(relative)),
        "sentences_within_5pct": int((relative <= 0.05).sum()),
        "max_abs_delta": float(max(abs(r["completeness_delta"]) for r in records)),
        "mean_top2_drop": float(np.mean([r["top2_drop"] for r in records])),
        "mean_random2_drop": float(np.mean([r["random2_drop"] for r in records])),
        "top2_flip_rate": float(np.mean([r["top2_flips"] for r in records])),
        "random2_flip_rate": float(np.mean([r["random2_flip_rate"] for r in records])),
        "sentences_top2_drop_larger": int(sum(r["top2_drop"] > r["random2_drop"] for r in records)),
        "wall_seconds": time.time() - start,
    }
    summary["completeness_target_met"] = summary["sentences_within_5pct"] == len(records)
    summary["deletion_target_met"] = summary["mean_top2_drop"] > summary["mean_random2_drop"]
    print("[explain_quality] " + json.dumps(summary))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"summary": summary, "sentences": records}, f, indent=1)
    return summary


if __name__ == "__main__":
    main()
