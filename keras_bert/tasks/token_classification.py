"""The `token_classification` task (NER): CoNLL or character-offset JSON; the one entity grouping of eval and export."""

import os

import numpy as np
import tensorflow as tf

from keras_bert.data import (IGNORE_LABEL, DataError, align_word_labels, labels_from_tags, ner_examples_dataset,
                             read_conll, read_harem)
from keras_bert.models import BertTokenClassifier
from keras_bert.tasks import base
from keras_bert.tasks.question_answering import to_char_offsets
from keras_bert.trainer import metrics as task_metrics

FORMATS = ("conll", "offsets")
_BEGIN_PREFIXES = ("B-", "S-", "U-")
_END_PREFIXES = ("E-", "L-", "S-", "U-")
_PREFIXES = ("B-", "I-", "E-", "L-", "S-", "U-")


def parse_tag(tag):
    """Splits a tag into `(entity_type, begins, ends)`; `entity_type` is None for "O".

    Args:
        tag: str. IOB1/IOB2/BIOES/BILOU tags ("B-PER", "I-LOC", "E-ORG", "U-MISC", "O") or a bare type ("PER").
    """
    if tag in ("O", ""):
        return None, False, False
    kind = tag[2:] if tag.startswith(_PREFIXES) else tag
    return kind, tag.startswith(_BEGIN_PREFIXES), tag.startswith(_END_PREFIXES)


class TagTable:
    """Per-tag lookup arrays for `group_entities`.

    Args:
        tags: list of str. Tag names in id order.
    """

    def __init__(self, tags):
        parsed = [parse_tag(str(tag)) for tag in tags]
        self.tags = [str(tag) for tag in tags]
        self.entity_types = sorted({t for t, _, _ in parsed if t is not None})
        self.type_ids = np.array([-1 if t is None else self.entity_types.index(t) for t, _, _ in parsed], np.int64)
        self.begins = np.array([b for _, b, _ in parsed], bool)
        self.ends = np.array([e for _, _, e in parsed], bool)


def group_entities(word_tags, word_rows, table):
    """Groups word tags into entities (seqeval's default rules), in TF ops.

    A word with an entity type continues the previous word's entity when it does not begin one (not
    `B-`/`S-`/`U-`), it is in the same row, has the same type, and the previous word did not end its
    entity (`E-`/`L-`/`S-`/`U-`); any other typed word begins an entity (so `I-X` after `O` does).
    Used by `training.evaluate` and inside the exported SavedModel.

    Args:
        word_tags: int Tensor `[words]`, tag ids of the words of all rows, row after row.
        word_rows: int64 Tensor `[words]`, the row of each word (non-decreasing).
        table: `TagTable`.

    Returns:
        dict of Tensors: `entity_of_word` int64 `[words]` (-1 outside entities), and per entity `rows`,
        `types` (index into `table.entity_types`), `first_word` and `last_word` (word indices, inclusive).
    """
    word_tags = tf.cast(word_tags, tf.int64)
    word_rows = tf.cast(word_rows, tf.int64)
    word_type = tf.gather(tf.constant(table.type_ids), word_tags)
    begins_tag = tf.gather(tf.constant(table.begins), word_tags)
    ends_tag = tf.gather(tf.constant(table.ends), word_tags)
    previous_type = tf.concat([tf.constant([-1], tf.int64), word_type[:-1]], axis=0)
    previous_row = tf.concat([tf.constant([-1], tf.int64), word_rows[:-1]], axis=0)
    previous_ends = tf.concat([tf.constant([True]), ends_tag[:-1]], axis=0)
    in_entity = word_type >= 0
    continues = (in_entity & ~begins_tag & tf.equal(previous_row, word_rows) & tf.equal(previous_type, word_type)
                 & ~previous_ends)
    begins = in_entity & ~continues
    entity_of_word = tf.where(in_entity, tf.cumsum(tf.cast(begins, tf.int64)) - 1, tf.constant(-1, tf.int64))
    num_entities = tf.reduce_sum(tf.cast(begins, tf.int64))
    word_index = tf.range(tf.size(word_tags, out_type=tf.int64))
    return {
        "entity_of_word": entity_of_word,
        "rows": tf.boolean_mask(word_rows, begins),
        "types": tf.boolean_mask(word_type, begins),
        "first_word": tf.boolean_mask(word_index, begins),
        "last_word": tf.math.unsorted_segment_max(tf.boolean_mask(word_index, in_entity),
                                                  tf.boolean_mask(entity_of_word, in_entity), num_entities),
    }


def entities(tag_sequences, table):
    """The entities of tag sequences as a set of `(sequence, type, first_word, last_word)`.

    Args:
        tag_sequences: list of lists of tag names.
        table: `TagTable` covering every tag used.
    """
    index = {tag: i for i, tag in enumerate(table.tags)}
    flat = [index[tag] for tags in tag_sequences for tag in tags]
    rows = [row for row, tags in enumerate(tag_sequences) for _ in tags]
    if not flat:
        return set()
    grouped = {k: np.asarray(v) for k, v in group_entities(np.asarray(flat), np.asarray(rows), table).items()}
    starts = np.cumsum([0] + [len(tags) for tags in tag_sequences])
    return {(int(r), table.entity_types[int(t)], int(f - starts[r]), int(l - starts[r]))
            for r, t, f, l in zip(grouped["rows"], grouped["types"], grouped["first_word"], grouped["last_word"])}


def entity_scores(true_sequences, predicted_sequences, tags):
    """Micro precision, recall and F1 over exact entity matches, with `group_entities`' rules.

    Args:
        true_sequences: list of lists of tag names.
        predicted_sequences: list of lists of tag names (same lengths).
        tags: list of str. Every tag name used.
    """
    table = TagTable(tags)
    return task_metrics.entity_set_scores(entities(true_sequences, table), entities(predicted_sequences, table))


class TokenClassification(base.TaskKind):
    """NER: entity-level precision/recall/F1 on the first piece of each word; exported entities with spans."""

    name = "token_classification"
    model_class = BertTokenClassifier
    output_name = "logits"

    def read(self, path, options, tokenizer, *, batch_size, training, labels=None, seed=0, limit=None):
        data_format = base.file_format(path, options.data_format, FORMATS)
        if data_format == "conll":
            sentences = read_conll(path, scheme=options.tag_scheme)  # At least one, or a DataError.
            tags = labels or options.labels or labels_from_tags(sentences)
            examples = align_word_labels(sentences, tokenizer, tags, options.max_seq_length, source=path)
        else:
            classes = options.entity_classes_file or options.entity_classes  # read_harem reads a file of them
            if labels is not None:  # The tags of the model being evaluated.
                classes = [tag[2:] for tag in labels if tag.startswith("B-")]
            examples = read_harem(path, tokenizer, classes=classes, sequence_length=options.max_seq_length,
                                  doc_stride=options.doc_stride)
            if labels is not None and list(examples.label_list) != list(labels):
                raise DataError(f"{path}: tags {examples.label_list} differ from the model's {list(labels)}")
        print(f"[data] {path}: {len(examples)} sequences, {examples.skipped.summary()}")
        if not len(examples):
            raise DataError(f"{path}: no examples")
        if limit:
            examples.select(limit)
        dataset = ner_examples_dataset(
            examples, sequence_length=options.max_seq_length, batch_size=batch_size, shuffle=training, seed=seed,
            pad_to_longest=True, pad_token_id=tokenizer.pad_token_id, drop_remainder=training)
        return base.TaskData(dataset, len(examples), examples, list(examples.label_list), path)

    def build_model(self, encoder, labels, dropout=None):
        return BertTokenClassifier(encoder, num_classes=len(labels), labels=list(labels), dropout=dropout)

    def predict(self, model, data):
        """Logits `[length, tags]` per sequence, padding removed."""
        rows = []
        for x, _ in data.dataset:
            batch = np.asarray(base.forward(model)(x))
            lengths = np.asarray(x["padding_mask"]).sum(axis=1)
            rows += [row[:n] for row, n in zip(batch, lengths)]
        return rows

    def evaluate(self, data, outputs, labels=None, options=None):
        """Entity scores over whole documents: each labelled piece once, from its max-context window.

        Returns `(metrics, rows)`, a row per document: `(document, pieces, true_tags, predicted_tags)`,
        `pieces` the `(window, position in window)` of each word, in document order.
        """
        examples, names = data.reference, labels or data.labels
        documents = {}
        for index, (gold, logits) in enumerate(zip(examples.labels, outputs)):
            gold = np.asarray(gold)
            chosen = gold != IGNORE_LABEL
            if examples.max_context is not None:
                chosen &= np.asarray(examples.max_context[index], bool)
            document = examples.documents[index] if examples.documents is not None else index
            words = documents.setdefault(document, [])
            for p in np.flatnonzero(chosen):
                where = examples.positions[index][p] if examples.positions is not None else p
                words.append((where, index, int(p), names[gold[p]], names[int(logits[p].argmax())]))
        true_sequences, predicted_sequences, rows = [], [], []
        for document in sorted(documents):
            words = sorted(documents[document])
            true_sequences.append([w[3] for w in words])
            predicted_sequences.append([w[4] for w in words])
            rows.append((document, [(w[1], w[2]) for w in words], true_sequences[-1], predicted_sequences[-1]))
        metrics = entity_scores(true_sequences, predicted_sequences, names)
        return {"entity_" + k: v for k, v in metrics.items()}, rows

    def write_predictions(self, output_dir, data, predictions, tokenizer=None):
        """`predictions.tsv`: one word a line (its pieces joined), a blank line between documents (sentences)."""
        vocabulary = tokenizer.get_vocabulary() if tokenizer is not None else None
        token_ids, labels = data.reference.token_ids, data.reference.labels
        with open(os.path.join(output_dir, "predictions.tsv"), "w", encoding="utf-8") as f:
            f.write("word\tlabel\tprediction\n")
            for _, pieces, true_tags, predicted_tags in predictions:
                for (window, p), gold, predicted in zip(pieces, true_tags, predicted_tags):
                    ids, end = token_ids[window], p + 1
                    while end < len(ids) - 1 and labels[window][end] == IGNORE_LABEL:
                        end += 1
                    word = ("".join(vocabulary[i].removeprefix("##") for i in ids[p:end]) if vocabulary
                            else str(ids[p]))
                    f.write(f"{word}\t{gold}\t{predicted}\n")
                f.write("\n")

    def postprocess(self, module, texts):
        """Entities of whole texts: texts longer than the window run as overlapping windows
        (`keras_bert.data.document_windows`), each piece's tag from its max-context window, as evaluation does."""
        text = texts["text"]
        ids, byte_starts, byte_ends = module.tokenizer.tokenize_with_offsets(text)
        ids = tf.cast(ids, tf.int32)
        char_starts, char_ends = to_char_offsets(text, byte_starts), to_char_offsets(text, byte_ends)
        rows = ids.value_rowids()
        index_in_row = tf.range(tf.size(ids.flat_values, out_type=tf.int64)) - tf.gather(ids.row_splits, rows)
        # A word starts at every piece that is not a "##" continuation (and at each row's first piece).
        word_start = tf.logical_or(
            tf.logical_not(tf.gather(tf.constant(module.is_continuation), ids.flat_values)), index_in_row == 0)
        piece_probs = max_context_probabilities(module, ids, word_start, module.max_length - 2, module.doc_stride)
        # A word's tag is its first piece's tag, as in training.
        word_index = tf.cumsum(tf.cast(word_start, tf.int64)) - 1
        num_words = tf.reduce_sum(tf.cast(word_start, tf.int64))
        word_tag = tf.boolean_mask(tf.argmax(piece_probs, axis=-1), word_start)
        word_score = tf.boolean_mask(tf.reduce_max(piece_probs, axis=-1), word_start)
        word_char_end = tf.math.unsorted_segment_max(char_ends.flat_values, word_index, num_words)
        word_byte_end = tf.math.unsorted_segment_max(byte_ends.flat_values, word_index, num_words)
        grouped = group_entities(word_tag, tf.boolean_mask(rows, word_start), module.tag_table)
        first, last = grouped["first_word"], grouped["last_word"]
        entity_byte_start = tf.gather(tf.boolean_mask(byte_starts.flat_values, word_start), first)
        entity_byte_end = tf.gather(word_byte_end, last)
        in_entity = grouped["entity_of_word"] >= 0
        values = {
            "entity_labels": tf.gather(tf.constant(module.tag_table.entity_types + [""]), grouped["types"]),
            "entity_starts": tf.cast(tf.gather(tf.boolean_mask(char_starts.flat_values, word_start), first), tf.int32),
            "entity_ends": tf.cast(tf.gather(word_char_end, last), tf.int32),
            "entity_text": tf.strings.substr(tf.gather(text, grouped["rows"]), entity_byte_start,
                                             entity_byte_end - entity_byte_start, unit="BYTE"),
            "entity_scores": tf.math.unsorted_segment_mean(
                tf.boolean_mask(word_score, in_entity), tf.boolean_mask(grouped["entity_of_word"], in_entity),
                tf.size(first, out_type=tf.int64)),
        }
        batch = tf.shape(text, out_type=tf.int64)[0]
        padding = {"entity_labels": "", "entity_starts": -1, "entity_ends": -1, "entity_text": "",
                   "entity_scores": 0.0}
        outputs = {}
        for name, flat in values.items():
            ragged = tf.RaggedTensor.from_value_rowids(flat, grouped["rows"], nrows=batch)
            outputs[name] = ragged.to_tensor(default_value=padding[name])
        outputs["num_entities"] = tf.cast(ragged.row_lengths(), tf.int32)
        return outputs

    # --- Text in, for `BertTokenClassifier.fit(words, tags)` ---
    def text_dataset(self, model, x, y=None, *, batch_size=32, shuffle=False, seed=None, labelled=True):
        from keras_bert.tasks import preprocessing

        examples = preprocessing.word_examples(model.preprocessor, x, y, model.labels)
        dataset = ner_examples_dataset(examples, sequence_length=model.preprocessor.sequence_length,
                                       batch_size=batch_size, shuffle=shuffle, seed=seed, pad_to_longest=True,
                                       pad_token_id=model.preprocessor.tokenizer.pad_token_id)
        return dataset if y is not None else dataset.map(lambda x, _: x)


def window_bounds(row_lengths, word_start, window, doc_stride):
    """`keras_bert.data.document_windows` for every row of a batch, in TF ops.

    Args:
        row_lengths: int64 Tensor `[batch]`, pieces per row.
        word_start: bool Tensor `[pieces]`, row after row: whether a piece starts a word (each row's first does).
        window: int, most pieces a window holds.
        doc_stride: int, pieces between window starts (at most half a window, as `document_windows`).

    Returns:
        `(rows, begins, ends)`, int64 Tensors `[windows]`: each window's row and `[begin, end)` in that row. An
        empty row gets one empty window.
    """
    stride = max(1, min(int(doc_stride), window // 2))
    row_lengths = tf.cast(row_lengths, tf.int64)
    splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(row_lengths)], axis=0)
    total = splits[-1]
    starts = tf.concat([tf.where(word_start)[:, 0], [total]], axis=0)  # word starts, then a sentinel

    def previous_start(i):  # the last word start <= i
        index = tf.searchsorted(starts, tf.reshape(i + 1, [1]), side="left", out_type=tf.int64)[0] - 1
        return tf.gather(starts, tf.maximum(index, 0))

    def next_start(i):  # the first word start >= i (or the end)
        index = tf.searchsorted(starts, tf.reshape(i, [1]), side="left", out_type=tf.int64)[0]
        return tf.gather(starts, tf.minimum(index, tf.size(starts, out_type=tf.int64) - 1))

    def body(row, begin, k, rows, begins, ends):
        count, offset = row_lengths[row], splits[row]
        candidate = previous_start(offset + begin + window) - offset  # do not split a word
        end = tf.where(begin + window >= count, count,
                       tf.where(candidate >= begin + 2, candidate, begin + 1))
        index = tf.cast(k, tf.int32)
        rows, begins, ends = rows.write(index, row), begins.write(index, begin), ends.write(index, end)
        following = previous_start(offset + tf.minimum(begin + stride, end)) - offset
        following = tf.where(following > begin, following, next_start(offset + begin + 1) - offset)
        done = tf.logical_or(end >= count, following >= count)
        return (tf.where(done, row + 1, row), tf.where(done, tf.constant(0, tf.int64), following), k + 1,
                rows, begins, ends)

    arrays = [tf.TensorArray(tf.int64, size=0, dynamic_size=True) for _ in range(3)]
    zero = tf.constant(0, tf.int64)
    _, _, _, rows, begins, ends = tf.while_loop(
        lambda row, *_: row < tf.size(row_lengths, out_type=tf.int64), body, [zero, zero, zero, *arrays])
    return rows.stack(), begins.stack(), ends.stack()


def max_context_probabilities(module, ids, word_start, window, doc_stride):
    """Tag probabilities of every piece, each from the window where it has the most context.

    Windows as `window_bounds`; the max-context rule of `keras_bert.data.read_harem` (SQuAD's): the highest
    `min(left, right context) + 0.01 * window length`, the first window on ties.

    Args:
        module: `ServingModule`. Runs the model (`packer`, `run_model`).
        ids: int32 RaggedTensor `[batch, (pieces)]`, untruncated.
        word_start: bool Tensor `[pieces]`, flat.
        window: int, pieces per window (the sequence length less [CLS] and [SEP]).
        doc_stride: int, pieces between window starts.

    Returns:
        float32 Tensor `[pieces, tags]`, flat in `ids` order.
    """
    rows, begins, ends = window_bounds(ids.row_lengths(), word_start, window, doc_stride)
    first = tf.gather(ids.row_splits, rows) + begins
    flat_index = tf.ragged.range(first, first + ends - begins)
    window_ids = tf.RaggedTensor.from_row_splits(tf.gather(ids.flat_values, flat_index.flat_values),
                                                 flat_index.row_splits)
    probabilities = tf.nn.softmax(tf.cast(module.run_model(module.packer(window_ids)), tf.float32), axis=-1)
    entry_window = flat_index.value_rowids()
    piece = flat_index.flat_values
    position = piece - tf.gather(first, entry_window)  # in the window
    left = tf.cast(position, tf.float64)
    length = tf.cast(tf.gather(ends - begins, entry_window), tf.float64)
    score = tf.minimum(left, length - 1.0 - left) + 0.01 * length  # float64: the reader's Python floats
    total = tf.size(ids.flat_values, out_type=tf.int64)
    is_best = tf.equal(score, tf.gather(tf.math.unsorted_segment_max(score, piece, total), piece))
    first_best = -tf.math.unsorted_segment_max(tf.where(is_best, -entry_window, tf.int64.min + 1), piece, total)
    chosen = tf.logical_and(is_best, tf.equal(entry_window, tf.gather(first_best, piece)))
    chosen_probabilities = tf.gather_nd(probabilities, tf.stack(
        [tf.boolean_mask(entry_window, chosen), tf.boolean_mask(position, chosen) + 1], axis=1))  # +1: [CLS]
    return tf.math.unsorted_segment_sum(chosen_probabilities, tf.boolean_mask(piece, chosen), total)


def predict_tags(model, x, batch_size=32):
    """A tag per word from a text-in `BertTokenClassifier`.

    Args:
        model: `BertTokenClassifier` with a preprocessor (see `from_pretrained`).
        x: list of texts (split at whitespace into words) or list of word lists.
        batch_size: int.

    Returns:
        list of lists of `(word, tag)`; words cut off by the sequence length get no tag and are left out.
    """
    from keras_bert.tasks import preprocessing

    examples = preprocessing.word_examples(model.preprocessor, x, None, model.labels)
    data = base.TaskData(ner_examples_dataset(examples, sequence_length=model.preprocessor.sequence_length,
                                              batch_size=batch_size, pad_to_longest=True,
                                              pad_token_id=model.preprocessor.tokenizer.pad_token_id),
                         len(examples), examples, list(model.labels))
    outputs = TokenClassification().predict(model, data)
    words = preprocessing.as_words(x)
    result = []
    for row, logits in enumerate(outputs):
        positions = np.flatnonzero(np.asarray(examples.labels[row]) != IGNORE_LABEL)
        result.append([(word, model.labels[int(logits[p].argmax())]) for word, p in zip(words[row], positions)])
    return result
