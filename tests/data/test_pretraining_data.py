"""Pretraining data: instance statistics on real text, whole-word masking, TFRecord round trip."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_bert.data import (
    PretrainingStats,
    create_pretraining_instances,
    dynamic_mask,
    pretraining_dataset,
    read_documents,
    shard_statistics,
    write_instances,
)
from keras_bert.tokenization import BertTokenizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO_ROOT, "..", "shared", "data")
UNCASED_VOCAB = os.path.join(DATA, "vocab", "bert-base-uncased", "vocab.txt")
BOOKS = [os.path.join(DATA, "english_books", name) for name in ("carroll-alice.txt", "blake-poems.txt")]


@pytest.fixture(scope="module")
def tokenizer():
    if not os.path.exists(UNCASED_VOCAB):
        pytest.skip(f"{UNCASED_VOCAB} not found (../shared/data is absent)")
    return BertTokenizer(UNCASED_VOCAB, lowercase=True)


@pytest.fixture(scope="module")
def documents(tokenizer, tmp_path_factory):
    for path in BOOKS:
        if not os.path.exists(path):
            pytest.skip(f"{path} not found (../shared/data is absent)")
    # The books are one sentence per line without blank lines: cut them into
    # documents of 40 lines (blank line between) in a temporary corpus file.
    corpus = tmp_path_factory.mktemp("corpus") / "books.txt"
    with open(corpus, "w", encoding="utf-8") as out:
        for path in BOOKS:
            with open(path, encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    out.write(line)
                    if number % 40 == 0:
                        out.write("\n")
            out.write("\n")
    stats = PretrainingStats()
    return read_documents([str(corpus)], tokenizer, stats), stats


def test_prepare_pretraining_statistics(tokenizer, documents, tmp_path):
    docs, stats = documents
    instances = create_pretraining_instances(
        docs, tokenizer, max_seq_length=128, dupe_factor=2, masked_lm_prob=0.15,
        max_predictions_per_seq=20, seed=7, stats=stats,
    )
    files = write_instances(
        instances, str(tmp_path), max_seq_length=128, max_predictions_per_seq=20,
        num_shards=2, compression="GZIP",
    )
    summary = shard_statistics(files, tokenizer.mask_token_id)
    print(stats.summary())
    print(summary)
    assert summary["instances"] == stats.instances == len(instances) > 500
    assert 0.45 < summary["random_next_share"] < 0.56
    assert 0.13 < summary["masked_share"] < 0.16
    assert 0.77 < summary["mask_share"] < 0.83
    assert 0.07 < summary["kept_share"] < 0.13
    assert 0.07 < summary["random_share"] < 0.13
    # Deterministic for a seed.
    again = create_pretraining_instances(
        docs, tokenizer, max_seq_length=128, dupe_factor=2, seed=7
    )
    assert [i.token_ids for i in again[:50]] == [i.token_ids for i in instances[:50]]

    x, y = next(iter(pretraining_dataset(files, 4, seed=1)))
    assert x["token_ids"].shape == (4, 128) and x["masked_positions"].shape == (4, 20)
    assert x["token_ids"].dtype == tf.int32 and y["mlm_weights"].dtype == tf.float32
    assert y["nsp_labels"].shape == (4,)
    assert np.all(x["token_ids"].numpy()[:, 0] == tokenizer.cls_token_id)


def test_whole_word_masking_masks_whole_words(tokenizer, documents):
    docs, _ = documents
    vocabulary = tokenizer.get_vocabulary()
    instances = create_pretraining_instances(
        docs[:60], tokenizer, max_seq_length=64, dupe_factor=1, whole_word_masking=True,
        max_predictions_per_seq=10, seed=3,
    )
    checked_multi_piece = 0
    for instance in instances:
        masked = set(instance.masked_lm_positions)
        original = list(instance.token_ids)
        for position, label in zip(instance.masked_lm_positions, instance.masked_lm_labels):
            original[position] = label
        # Group positions into words: a "##" piece belongs to the previous word.
        words, current = [], []
        for position, token_id in enumerate(original):
            after_special = position > 0 and original[position - 1] in (
                tokenizer.cls_token_id, tokenizer.sep_token_id)
            if vocabulary[token_id].startswith("##") and current and not after_special:
                current.append(position)
            else:
                if current:
                    words.append(current)
                current = [position]
        words.append(current)
        for word in words:
            inside = [p in masked for p in word]
            assert all(inside) or not any(inside), (word, [vocabulary[original[p]] for p in word])
            checked_multi_piece += len(word) > 1 and all(inside)
    assert checked_multi_piece > 0


def test_dynamic_masking_is_seeded_and_changes_each_epoch(tokenizer, documents, tmp_path):
    docs, _ = documents
    instances = create_pretraining_instances(
        docs[:20], tokenizer, max_seq_length=64, dupe_factor=1, mask=False, seed=1
    )
    files = write_instances(instances, str(tmp_path), max_seq_length=64, max_predictions_per_seq=10)

    def first_batches(seed):
        dataset = pretraining_dataset(
            files, 8, seed=seed, shuffle=False, repeat=True, dynamic_masking=True, tokenizer=tokenizer
        )
        return [b for b in dataset.take(len(instances) // 8 + 1)]

    first, second = first_batches(5), first_batches(5)
    x, y = first[0]
    np.testing.assert_array_equal(x["token_ids"], second[0][0]["token_ids"])
    real = x["padding_mask"].numpy().sum(1)
    predicted = y["mlm_weights"].numpy().sum(1)
    np.testing.assert_array_equal(predicted, np.minimum(10, np.maximum(1, np.round(real * 0.15))))
    positions = x["masked_positions"].numpy()
    labels = y["mlm_labels"].numpy()
    # Labels are the unmasked ids; [CLS]/[SEP]/[PAD] are never predicted.
    for row in range(8):
        for k in range(int(predicted[row])):
            assert labels[row, k] not in (tokenizer.cls_token_id, tokenizer.sep_token_id, 0)
    # The same instances get different masks in the next epoch.
    epoch_batches = len(instances) // 8
    if epoch_batches >= 1 and len(instances) % 8 == 0:
        assert not np.array_equal(first[epoch_batches][0]["masked_positions"], positions)


def test_dynamic_mask_whole_word():
    token_ids = tf.constant([[2, 10, 11, 12, 13, 3, 0, 0]])
    flags = [False] * 14
    flags[11] = flags[12] = True  # 10 ##11 ##12 is one word; 13 another
    for seed in range(10):
        _, positions, _, weights = dynamic_mask(
            token_ids, tf.cast(token_ids > 0, tf.int32), tf.constant([seed, 0]),
            vocabulary_size=14, mask_token_id=4, special_token_ids=[2, 3, 0],
            max_predictions_per_seq=4, masked_lm_prob=0.5, continuation_flags=flags,
        )
        chosen = set(positions.numpy()[0][weights.numpy()[0] > 0].tolist())
        assert chosen in ({1, 2, 3}, {4}, {1, 2, 3, 4}), chosen


def test_summary_warns_when_nsp_labels_are_skewed():
    from keras_bert.data import PretrainingStats

    balanced = PretrainingStats(instances=100, random_next=52)
    assert "warning" not in balanced.summary()
    skewed = PretrainingStats(instances=1045, random_next=774)
    assert "warning: 74% of NSP labels are 'random next'" in skewed.summary()
    assert "warning" not in PretrainingStats().summary()  # no instances yet: nothing to say
    one_document = PretrainingStats(documents=1, instances=100, random_next=50)
    assert "warning: one document" in one_document.summary()
    assert "warning" not in PretrainingStats(documents=2, instances=100, random_next=50).summary()
