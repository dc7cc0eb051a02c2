"""Trains a tiny BERT classifier for a few steps under one strategy; used by test_strategies.py.

    python tests/training/strategy_check.py --strategy mirrored --logical-cpus 2 --output-dir DIR

Runs the real training path of the jobs: `create_strategy`, `check_batch_size`,
variables and `compile` inside `strategy.scope()`, a dataset batched by the global
batch size (distributed by `fit_resumable`), `fit_resumable` with `log_every=1`
so TensorBoard's train run holds the loss of every step, and the fine-tuning job's
validation (`keras_bert.tasks' predict`, every `--checkpoint-every` steps) so its
validation run holds the dev accuracy under the strategy. Dropout is off so that
replicas compute exactly what one device computes. The logical CPU devices are
configured before TensorFlow initialises, which is why this runs in its own process.
With `TF_CONFIG` set and `--strategy multi_worker`, each worker runs this script.
"""

import argparse
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--logical-cpus", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--checkpoint-every", type=int, default=3)
    parser.add_argument("--resume-at", type=int, default=None,
                        help="train to this step, then rebuild the model and resume from its checkpoint")
    args = parser.parse_args()

    import tensorflow as tf

    if args.logical_cpus > 1:  # Before anything initialises the TensorFlow runtime.
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

    import keras
    import numpy as np

    import keras_bert
    from keras_bert.optimization import WarmupDecaySchedule, create_optimizer
    from keras_bert.trainer import check_batch_size, create_strategy, fit_resumable
    from keras_bert import tasks

    strategy = create_strategy(args.strategy)
    check_batch_size(strategy, args.batch_size)
    keras.utils.set_random_seed(0)

    # Deterministic data: 64 examples of 16 tokens (lengths 4..16), batched by the global batch.
    rng = np.random.default_rng(0)
    count, length = 64, 16
    token_ids = rng.integers(5, 100, size=(count, length)).astype("int32")
    lengths = rng.integers(4, length + 1, size=count)
    mask = (np.arange(length)[None] < lengths[:, None]).astype("int32")
    token_ids *= mask
    labels = (token_ids[:, 1] % 2).astype("int32")
    x = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": mask}
    dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(args.batch_size, drop_remainder=True).repeat()
    # Validation as training.finetune runs it: predict_on_batch over in-order batches (a last partial one too).
    dev_count = 40
    dev = tasks.TaskData(tf.data.Dataset.from_tensor_slices(({k: v[:dev_count] for k, v in x.items()}, labels[:dev_count]))
                   .batch(16), dev_count, None)

    def validate(model):
        outputs = tasks.get("classification").predict(model, dev)
        assert outputs.shape == (dev_count, 2), outputs.shape
        return {"accuracy": float(np.mean(outputs.argmax(-1) == labels[:dev_count])),
                "mean_logit": float(outputs.mean())}

    def build():
        with strategy.scope():
            config = keras_bert.BertConfig.from_preset(
                "bert_tiny", vocab_size=100, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                max_position_embeddings=length, hidden_dropout=0.0, attention_dropout=0.0)
            model = keras_bert.BertClassifier(keras_bert.BertEncoder(config), num_classes=2, dropout=0.0)
            schedule = WarmupDecaySchedule(1e-2, 2, args.steps, 0.0, 1.0)
            model.compile(optimizer=create_optimizer("adamw", schedule, weight_decay=0.01, clipnorm=1.0))
        return model

    def train(model, steps):
        return fit_resumable(model, dataset, strategy=strategy, output_dir=args.output_dir, total_steps=steps,
                             log_every=1, checkpoint_every=args.checkpoint_every, global_batch_size=args.batch_size,
                             validate=validate, validate_every=args.checkpoint_every, verbose=0)

    if args.resume_at:
        train(build(), args.resume_at)
        keras.backend.clear_session()  # Same layer names as a fresh process, for the checkpoint's signature.
        keras.utils.set_random_seed(1)  # Different initial values: the checkpoint must restore them.
    result = train(build(), args.steps)
    print("RESULT " + json.dumps({"step": result["step"], "replicas": strategy.num_replicas_in_sync,
                                  "strategy": type(strategy).__name__}), flush=True)


if __name__ == "__main__":
    main()
