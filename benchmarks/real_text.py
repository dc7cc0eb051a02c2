"""Real-text workload: non-padding tokens/s of keras_bert's default pipeline vs keras-hub's default workflow.

    python -m benchmarks.real_text [--quick] [--preset bert_mini] [--json out.json]

SST-2: fine-tuning on the first `--sst2-examples` (default 2,000) sentences of
`../shared/data/sst2/train.tsv`, batch 32, sequence_length 128.
  ours: `read_text_examples` + `text_examples_dataset(bucket_boundaries=...)`
        (in-graph tokenizer, length buckets: each batch padded to its bucket's
        longest example) + `BertClassifier.compile()` defaults + `fit`.
  hub:  `BertTextClassifier` with `BertTextClassifierPreprocessor(sequence_length=128)`
        (pads every sentence to 128) + its default `compile()` + `fit` on raw strings.
Pretraining: `--pretrain-steps` steps (default 30) of batch 32 on two books of
`../shared/data/english_books` (carroll-alice, austen-persuasion).
  ours: `write_pretraining_data(max_seq_length=128, dupe_factor=1)` (read_documents,
        create_pretraining_instances, write_instances) + `pretraining_dataset` + `BertPretrainer` (MLM+NSP).
  hub:  `BertMaskedLM` with `BertMaskedLMPreprocessor(sequence_length=128)` on
        the raw lines (one sentence per line, its default workflow).
Both packages run two epochs (of the subset / of the step count); the second
epoch is timed (the first includes tracing and compilation, reported too).
Non-padding tokens are counted from the batches each package consumed.
"""

import argparse
import json
import os
import tempfile
import time

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
VOCAB = os.path.join(DATA, "vocab", "bert-base-uncased", "vocab.txt")
BOOKS = ("carroll-alice.txt", "austen-persuasion.txt")
BUCKETS = [16, 32, 48, 64, 96]


class EpochTimer:
    def __init__(self):
        import keras

        class _CB(keras.callbacks.Callback):
            def __init__(cb):
                super().__init__()
                cb.times = []

            def on_epoch_begin(cb, epoch, logs=None):
                cb.start = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                cb.times.append(time.perf_counter() - cb.start)

        self.callback = _CB()

    @property
    def times(self):
        return self.callback.times


def _hub_backbone(config):
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_layers, num_heads=config.num_heads,
        hidden_dim=config.hidden_size, intermediate_dim=config.intermediate_size,
        max_sequence_length=config.max_position_embeddings)


def sst2(config, n_examples, batch_size=32):
    import dataclasses

    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    import keras_bert
    from keras_bert.data.classification import read_text_examples, text_examples_dataset
    from keras_bert.tokenization import BertTokenizer

    examples = read_text_examples(os.path.join(DATA, "sst2", "train.tsv"))
    examples = dataclasses.replace(examples, texts_a=examples.texts_a[:n_examples],
                                   labels=examples.labels[:n_examples])
    result = {"description": f"first {len(examples)} sentences of SST-2 train, batch {batch_size}, "
                             f"{config.num_layers}L/{config.hidden_size}H, 1 epoch timed after a warm-up epoch"}
    # --- ours
    keras.utils.set_random_seed(0)
    tokenizer = BertTokenizer(VOCAB, lowercase=True)
    dataset = text_examples_dataset(examples, tokenizer, sequence_length=128, batch_size=batch_size,
                                    shuffle=True, seed=0, bucket_boundaries=BUCKETS)
    real = total = 0
    for x, _ in dataset:
        real += int(tf.reduce_sum(x["padding_mask"]))
        total += int(tf.size(x["padding_mask"]))
    model = keras_bert.BertClassifier(keras_bert.BertEncoder(config), num_classes=2)
    model.compile()
    timer = EpochTimer()
    model.fit(dataset, epochs=2, verbose=0, callbacks=[timer.callback])
    result["ours"] = dict(seconds=timer.times[-1], first_epoch_s=timer.times[0], real_tokens=real,
                          total_tokens=total, tokens_per_s=real / timer.times[-1])
    print(f"[sst2] ours {result['ours']}", flush=True)
    # --- keras-hub
    keras.utils.set_random_seed(0)
    hub_tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(hub_tokenizer, sequence_length=128)
    classifier = keras_hub.models.BertTextClassifier(_hub_backbone(config), num_classes=2,
                                                     preprocessor=preprocessor)
    classifier.compile()
    hub_data = tf.data.Dataset.from_tensor_slices(
        (np.array(examples.texts_a), np.array(examples.labels, "int32"))).shuffle(
        len(examples), seed=0).batch(batch_size)
    timer = EpochTimer()
    classifier.fit(hub_data, epochs=2, verbose=0, callbacks=[timer.callback])
    hub_total = len(examples) * 128
    result["hub"] = dict(seconds=timer.times[-1], first_epoch_s=timer.times[0], real_tokens=real,
                         total_tokens=hub_total, tokens_per_s=real / timer.times[-1])
    print(f"[sst2] hub {result['hub']}", flush=True)
    result["ratio"] = result["ours"]["tokens_per_s"] / result["hub"]["tokens_per_s"]
    return result


def pretraining(config, steps, batch_size=32):
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    import keras_bert
    from keras_bert.data import pretraining_dataset, write_pretraining_data
    from keras_bert.tokenization import BertTokenizer

    paths = [os.path.join(DATA, "english_books", b) for b in BOOKS]
    result = {"description": f"{steps} steps of batch {batch_size} at sequence length 128 on {', '.join(BOOKS)}, "
                             f"{config.num_layers}L/{config.hidden_size}H, timed after {steps} warm-up steps"}
    # --- ours
    keras.utils.set_random_seed(0)
    tokenizer = BertTokenizer(VOCAB, lowercase=True)
    start = time.perf_counter()
    files, stats = write_pretraining_data(paths, tokenizer, tempfile.mkdtemp(prefix="bert_real_text_"),
                                          max_seq_length=128, max_predictions_per_seq=20, dupe_factor=1, seed=0)
    prepare_s = time.perf_counter() - start
    dataset = pretraining_dataset(files, batch_size, seed=0)
    real = total = 0
    for x, _ in dataset.take(2 * steps):
        real += int(tf.reduce_sum(x["padding_mask"]))
        total += int(tf.size(x["padding_mask"]))
    real, total = real // 2, total // 2  # one epoch of `steps` batches (average of the two)
    model = keras_bert.BertPretrainer(keras_bert.BertEncoder(config))
    model.compile()
    timer = EpochTimer()
    model.fit(dataset, steps_per_epoch=steps, epochs=2, verbose=0, callbacks=[timer.callback])
    result["ours"] = dict(seconds=timer.times[-1], first_epoch_s=timer.times[0], real_tokens=real,
                          total_tokens=total, tokens_per_s=real / timer.times[-1],
                          instance_preparation_s=prepare_s, instances=stats.instances)
    print(f"[pretraining] ours {result['ours']}", flush=True)
    # --- keras-hub
    keras.utils.set_random_seed(0)
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines.extend(line.strip() for line in f if line.strip())
    hub_tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True)
    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(hub_tokenizer, sequence_length=128)
    masked_lm = keras_hub.models.BertMaskedLM(_hub_backbone(config), preprocessor=preprocessor)
    masked_lm.compile()
    used = lines[: 2 * steps * batch_size]
    pieces = hub_tokenizer(tf.constant(used))
    counts = pieces.row_lengths().numpy() if hasattr(pieces, "row_lengths") else [len(p) for p in pieces]
    lengths = [min(int(n) + 2, 128) for n in counts]
    hub_real = sum(lengths) // 2
    hub_data = tf.data.Dataset.from_tensor_slices(np.array(lines)).batch(batch_size).repeat()
    timer = EpochTimer()
    masked_lm.fit(hub_data, steps_per_epoch=steps, epochs=2, verbose=0, callbacks=[timer.callback])
    result["hub"] = dict(seconds=timer.times[-1], first_epoch_s=timer.times[0], real_tokens=hub_real,
                         total_tokens=steps * batch_size * 128, tokens_per_s=hub_real / timer.times[-1])
    print(f"[pretraining] hub {result['hub']}", flush=True)
    result["ratio"] = result["ours"]["tokens_per_s"] / result["hub"]["tokens_per_s"]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 SST-2 sentences, 8 pretraining steps")
    parser.add_argument("--preset", default="bert_mini")
    parser.add_argument("--sst2-examples", type=int, default=2000)
    parser.add_argument("--pretrain-steps", type=int, default=30)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not os.path.isdir(DATA) or not os.path.exists(VOCAB):
        print(f"real-text workload skipped: {os.path.normpath(DATA)} (sst2, english_books, vocab) not found")
        return
    import keras_bert

    config = keras_bert.BertConfig.from_preset(args.preset, hidden_act="gelu_new")
    n_examples, steps = (500, 8) if args.quick else (args.sst2_examples, args.pretrain_steps)
    result = {"preset": args.preset, "sst2": sst2(config, n_examples),
              "pretraining": pretraining(config, steps)}
    for key in ("sst2", "pretraining"):
        print(f"[{key}] ours/hub non-padding tok/s: {result[key]['ratio']:.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
