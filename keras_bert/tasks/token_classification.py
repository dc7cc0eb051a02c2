"""The `token_classification` task (NER): CoNLL or character-offset JSON; the one entity grouping of eval and export."""

import os

import numpy as np
import tensorflow as tf

from keras_bert.data import (IGNORE_LABEL, DataError, align_word_labels, labels_from_tags, ner_examples_dataset,
                             read_conll, read_harem)
from keras_bert.models import BertTokenClassifier
from keras_bert.tasks import base
from keras_bert.tasks.question_answering import to_char_offsets
from keras_bert.tokenization import keep_first
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
        text = texts["text"]
        tokenizer, packer = module.tokenizer, module.packer
        ids, byte_starts, byte_ends = tokenizer.tokenize_with_offsets(text)
        (ids,) = packer.truncate((tf.cast(ids, tf.int32),))
        lengths = ids.row_lengths()
        byte_starts, byte_ends = keep_first(byte_starts, lengths), keep_first(byte_ends, lengths)
        char_starts, char_ends = to_char_offsets(text, byte_starts), to_char_offsets(text, byte_ends)
        probabilities = tf.nn.softmax(tf.cast(module.run_model(packer(ids)), tf.float32), axis=-1)
        rows = ids.value_rowids()
        index_in_row = tf.range(tf.size(ids.flat_values, out_type=tf.int64)) - tf.gather(ids.row_splits, rows)
        piece_probs = tf.gather_nd(probabilities, tf.stack([rows, index_in_row + 1], axis=1))  # skip [CLS]
        # A word starts at every piece that is not a "##" continuation (and at each row's first piece);
        # its tag is its first piece's tag, as in training.
        word_start = tf.logical_or(
            tf.logical_not(tf.gather(tf.constant(module.is_continuation), ids.flat_values)), index_in_row == 0)
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
