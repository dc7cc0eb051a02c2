"""Pretraining data: original BERT instance creation, TFRecord I/O, dynamic masking."""

import collections
import dataclasses
import gzip
import os
import random

import numpy as np
import tensorflow as tf

from keras_bert.data.errors import DataError, SkipCounter, decode_error

FEATURE_NAMES = (
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
)


@dataclasses.dataclass
class TrainingInstance:
    """One sentence-pair pretraining instance (word-piece ids, not padded).

    Args:
        token_ids: list[int], [CLS] A [SEP] B [SEP] after masking.
        segment_ids: list[int], 0 for [CLS] A [SEP], 1 for B [SEP].
        is_random_next: bool, True when B is a random segment (label 1).
        masked_lm_positions: list[int], positions of the predictions (sorted).
        masked_lm_labels: list[int], original ids at those positions.
    """

    token_ids: list
    segment_ids: list
    is_random_next: bool
    masked_lm_positions: list
    masked_lm_labels: list


@dataclasses.dataclass
class PretrainingStats:
    """Counts from instance creation, printed by the job summary.

    Args:
        documents: int, non-empty documents read.
        lines: int, non-empty lines (segments) tokenized.
        single_segment_documents: int, documents with one segment (B is always random).
        instances: int, instances created.
        random_next: int, instances whose B is random.
        tokens: int, real tokens in all instances (specials included).
        masked: int, masked-LM predictions.
        replaced_by_mask: int, predictions shown as [MASK].
        kept_original: int, predictions left unchanged.
        replaced_by_random: int, predictions replaced by a random token.
        truncated_instances: int, instances where truncation removed tokens.
        skipped: SkipCounter, lines skipped/repaired by reason.
        file_problems: dict[str, SkipCounter], the lines repaired and files skipped, per corpus file.
        group_size: int, documents per shuffle group (the Beam pipeline; 0: the whole corpus is one group).
        groups: int, shuffle groups built (the Beam pipeline).
        largest_group: int, documents in the largest shuffle group.
    """

    documents: int = 0
    lines: int = 0
    single_segment_documents: int = 0
    instances: int = 0
    random_next: int = 0
    tokens: int = 0
    masked: int = 0
    replaced_by_mask: int = 0
    kept_original: int = 0
    replaced_by_random: int = 0
    truncated_instances: int = 0
    skipped: SkipCounter = dataclasses.field(default_factory=SkipCounter)
    file_problems: dict = dataclasses.field(default_factory=dict)
    group_size: int = 0
    groups: int = 0
    largest_group: int = 0

    def merge(self, other):
        """Adds another part's counts (one shuffle group's) into these, in place.

        Args:
            other: PretrainingStats.

        Returns:
            PretrainingStats: self.
        """
        for field in dataclasses.fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if field.name == "skipped":
                mine.update(theirs)
            elif field.name == "file_problems":
                for path, counts in theirs.items():
                    mine.setdefault(path, SkipCounter()).update(counts)
            elif field.name == "group_size":
                self.group_size = self.group_size or theirs
            elif field.name == "largest_group":
                self.largest_group = max(mine, theirs)
            else:
                setattr(self, field.name, mine + theirs)
        return self

    def to_dict(self):
        """Returns the counts as a JSON-ready dict (`from_dict` reads it back)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values["skipped"] = dict(self.skipped)
        values["file_problems"] = {path: dict(counts) for path, counts in self.file_problems.items()}
        return values

    @classmethod
    def from_dict(cls, values):
        """Rebuilds statistics from `to_dict`'s output.

        Args:
            values: dict.

        Returns:
            PretrainingStats.
        """
        values = dict(values)
        values["skipped"] = SkipCounter(values.get("skipped", {}))
        values["file_problems"] = {k: SkipCounter(v) for k, v in values.get("file_problems", {}).items()}
        return cls(**values)

    def summary(self):
        """Returns a multi-line human readable summary.

        Returns:
            str: the statistics with shares.
        """
        masked = max(self.masked, 1)
        random_share = self.random_next / max(self.instances, 1)
        # Original BERT's sampler forces a random B when a chunk holds one segment (long lines, short
        # max_seq_length), which skews the NSP labels; NSP accuracy then starts at the majority share.
        data_warnings = []
        if self.instances and not 0.4 <= random_share <= 0.6:
            data_warnings.append(f"warning: {random_share:.0%} of NSP labels are 'random next' (expected about 50%): "
                                 f"chunks often hold a single segment; a longer max_seq_length or shorter segments "
                                 f"balance them")
        if self.documents == 1 and self.instances:
            data_warnings.append("warning: one document: 'random next' segments come from the same document, so "
                                 "NSP has little to learn; separate documents with blank lines")
        return "\n".join(
            [
                f"documents: {self.documents} (single-segment: {self.single_segment_documents}), "
                f"lines: {self.lines}",
                f"instances: {self.instances}, random next: {self.random_next} "
                f"({random_share:.2%}), truncated: {self.truncated_instances}",
                f"tokens: {self.tokens}, masked: {self.masked} ({self.masked / max(self.tokens, 1):.2%}); "
                f"[MASK] {self.replaced_by_mask / masked:.1%}, random {self.replaced_by_random / masked:.1%}, "
                f"kept {self.kept_original / masked:.1%}",
                self.skipped.summary(),
            ]
            + ([f"shuffle groups: {self.groups} of about {self.group_size} documents (largest "
                f"{self.largest_group}); 'random next' segments come from the same group"] if self.groups else [])
            + [f"  {path}: {counts.summary().replace('skipped/repaired: ', '')}"
               for path, counts in sorted(self.file_problems.items())]
            + data_warnings
        )


def read_documents(paths, tokenizer, stats=None, chunk_size=4096, invalid_utf8="error"):
    """Reads text files into documents of tokenized segments (one segment per line).

    Blank lines separate documents; a file end also ends a document. A leading UTF-8 BOM
    is dropped. A line with invalid UTF-8 or a NUL byte (binary data) is a DataError naming
    the file, line and byte, unless `invalid_utf8="replace"`: then it is decoded with
    replacement (NULs removed) and counted as `invalid_utf8_line`. Lines that produce no
    word pieces are skipped (counted as `no_tokens_line`). A file without any text is a
    DataError.

    Args:
        paths: list[str], text files.
        tokenizer: keras_bert.tokenization.BertTokenizer.
        stats: PretrainingStats or None, updated in place.
        chunk_size: int, lines tokenized per call of the tokenizer layer.
        invalid_utf8: "error" or "replace", what a line that is not UTF-8 text does.

    Returns:
        list[list[list[int]]]: documents -> segments -> word-piece ids.
    """
    if invalid_utf8 not in ("error", "replace"):
        raise ValueError(f"invalid_utf8 must be 'error' or 'replace', got {invalid_utf8!r}")
    stats = stats if stats is not None else PretrainingStats()
    raw_documents = []
    for path in paths:
        if not os.path.exists(path):
            raise DataError(f"{path}: corpus file not found")
        if os.path.isdir(path):
            raise DataError(f"{path}: is a directory, not a corpus file")
        current = []
        documents_before = len(raw_documents)
        offset = 0
        with open(path, "rb") as handle:
            for line_number, raw in enumerate(handle, start=1):
                if line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw, offset = raw[3:], 3
                text = decode_line(path, raw, line_number, offset, invalid_utf8, stats)
                offset += len(raw)
                text = text.strip()
                if not text:
                    if current:
                        raw_documents.append(current)
                    current = []
                    continue
                current.append(text)
        if current:
            raw_documents.append(current)
        if len(raw_documents) == documents_before:
            raise DataError(f"{path}: no examples (the corpus file holds no text)")
    return tokenize_documents(raw_documents, tokenizer, stats, chunk_size)


def decode_line(path, raw, line_number, offset, invalid_utf8, stats):
    """Decodes one corpus line: bad UTF-8 or a NUL byte is a DataError, or repaired and counted.

    Args:
        path: str, the corpus file (named in errors and in `stats.file_problems`).
        raw: bytes, the line.
        line_number: int or callable() -> int, its 1-based line (a callable is asked only on error).
        offset: int, byte offset of `raw` in the file.
        invalid_utf8: "error" or "replace".
        stats: PretrainingStats, counts `invalid_utf8_line` in `skipped` and per file.

    Returns:
        str: the decoded line.
    """
    try:
        text = raw.decode("utf-8")
        if "\x00" not in text:
            return text
        if invalid_utf8 == "error":
            line = line_number() if callable(line_number) else line_number
            nul = offset + raw.index(b"\x00")
            raise DataError(f"{path}:{line}: binary data (NUL byte at byte {nul}), not a text file")
    except UnicodeDecodeError as error:
        if invalid_utf8 == "error":
            line = line_number() if callable(line_number) else line_number
            raise decode_error(path, raw, error, offset=offset, line=line) from None
    stats.skipped["invalid_utf8_line"] += 1
    stats.file_problems.setdefault(path, SkipCounter())["invalid_utf8_line"] += 1
    return raw.decode("utf-8", errors="replace").replace("\x00", "")


def tokenize_documents(raw_documents, tokenizer, stats, chunk_size=4096):
    """Tokenizes documents of text lines with the in-graph tokenizer (the one tokenization of both data paths).

    Args:
        raw_documents: list[list[str]], documents -> stripped non-empty lines.
        tokenizer: keras_bert.tokenization.BertTokenizer.
        stats: PretrainingStats, updated in place (documents, lines, skips).
        chunk_size: int, lines tokenized per call of the tokenizer layer.

    Returns:
        list[list[list[int]]]: documents -> segments -> word-piece ids (documents without pieces dropped).
    """
    flat = [line for doc in raw_documents for line in doc]
    ids = []
    for start in range(0, len(flat), chunk_size):
        ids.extend(tokenizer(tf.constant(flat[start : start + chunk_size])).to_list())
    documents = []
    position = 0
    for doc in raw_documents:
        segments = []
        for segment in ids[position : position + len(doc)]:
            if segment:
                segments.append(segment)
            else:
                stats.skipped["no_tokens_line"] += 1
        position += len(doc)
        if segments:
            documents.append(segments)
            stats.lines += len(segments)
            if len(segments) == 1:
                stats.single_segment_documents += 1
        else:
            stats.skipped["empty_document"] += 1
    stats.documents += len(documents)
    return documents


def _truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Truncates a pair in place, randomly from the front or back of the longer one."""
    truncated = False
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        truncated = True
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()
    return truncated


def create_masked_lm_predictions(
    token_ids,
    masked_lm_prob,
    max_predictions_per_seq,
    vocabulary_size,
    rng,
    mask_token_id,
    special_token_ids,
    is_continuation=None,
    stats=None,
):
    """Masks a token sequence as original BERT (80% [MASK], 10% random, 10% kept).

    Args:
        token_ids: list[int], the packed sequence.
        masked_lm_prob: float, share of tokens to predict.
        max_predictions_per_seq: int, cap on predictions.
        vocabulary_size: int, random replacements are drawn from [0, size).
        rng: random.Random.
        mask_token_id: int, id of [MASK].
        special_token_ids: set[int], ids never masked ([CLS], [SEP]).
        is_continuation: callable(int) -> bool or None; when given, whole-word
            masking: a "##" piece is masked together with the rest of its word.
        stats: PretrainingStats or None, updated in place.

    Returns:
        tuple (output_ids, positions, labels): masked ids, sorted masked positions,
        original ids at those positions.
    """
    cand_indexes = []
    for index, token in enumerate(token_ids):
        if token in special_token_ids:
            continue
        # A "##" piece joins the word right before it (not across [CLS]/[SEP]: a
        # segment truncated at its front may start with a "##" piece).
        if (
            is_continuation is not None
            and cand_indexes
            and cand_indexes[-1][-1] == index - 1
            and is_continuation(token)
        ):
            cand_indexes[-1].append(index)
        else:
            cand_indexes.append([index])
    rng.shuffle(cand_indexes)
    output = list(token_ids)
    num_to_predict = min(
        max_predictions_per_seq, max(1, int(round(len(token_ids) * masked_lm_prob)))
    )
    masked = []
    covered = set()
    for index_set in cand_indexes:
        if len(masked) >= num_to_predict:
            break
        if len(masked) + len(index_set) > num_to_predict:
            continue
        if any(index in covered for index in index_set):
            continue
        for index in index_set:
            covered.add(index)
            if rng.random() < 0.8:
                replacement = mask_token_id
                kind = "replaced_by_mask"
            elif rng.random() < 0.5:
                replacement = token_ids[index]
                kind = "kept_original"
            else:
                replacement = rng.randint(0, vocabulary_size - 1)
                kind = "replaced_by_random"
            if stats is not None:
                setattr(stats, kind, getattr(stats, kind) + 1)
            output[index] = replacement
            masked.append((index, token_ids[index]))
    masked.sort()
    return output, [m[0] for m in masked], [m[1] for m in masked]


def _instances_from_document(
    documents, document_index, max_seq_length, short_seq_prob, rng, cls_id, sep_id, stats
):
    """Yields (tokens_a, tokens_b, is_random_next) as original BERT's create_instances_from_document."""
    document = documents[document_index]
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)
    current_chunk = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a = []
                for j in range(a_end):
                    tokens_a.extend(current_chunk[j])
                tokens_b = []
                if len(current_chunk) == 1 or rng.random() < 0.5:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    i -= len(current_chunk) - a_end
                else:
                    is_random_next = False
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                if _truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
                    stats.truncated_instances += 1
                if tokens_a and tokens_b:
                    yield tokens_a, tokens_b, is_random_next
                else:
                    stats.skipped["empty_segment_after_truncation"] += 1
            current_chunk = []
            current_length = 0
        i += 1


def create_pretraining_instances(
    documents,
    tokenizer,
    *,
    max_seq_length=128,
    dupe_factor=10,
    short_seq_prob=0.1,
    masked_lm_prob=0.15,
    max_predictions_per_seq=20,
    whole_word_masking=False,
    mask=True,
    seed=12345,
    stats=None,
):
    """Creates NSP + MLM instances from tokenized documents (original BERT recipe).

    Args:
        documents: list of documents, each a list of segments (lists of ids), e.g.
            from `read_documents`.
        tokenizer: keras_bert.tokenization.BertTokenizer (special ids, vocabulary).
        max_seq_length: int, packed length including [CLS] and two [SEP].
        dupe_factor: int, passes over the data (different masks and pairs each).
        short_seq_prob: float, probability of a shorter target length.
        masked_lm_prob: float, share of tokens to predict.
        max_predictions_per_seq: int, cap on predictions per instance.
        whole_word_masking: bool, mask all pieces of a word together.
        mask: bool, False leaves instances unmasked (for dynamic masking).
        seed: int, seed of the `random.Random` driving every choice.
        stats: PretrainingStats or None, updated in place.

    Returns:
        list[TrainingInstance], shuffled deterministically.
    """
    rng = random.Random(seed)
    instances = list(generate_instances(
        documents, tokenizer, rng, max_seq_length=max_seq_length, dupe_factor=dupe_factor,
        short_seq_prob=short_seq_prob, masked_lm_prob=masked_lm_prob, max_predictions_per_seq=max_predictions_per_seq,
        whole_word_masking=whole_word_masking, mask=mask, stats=stats))
    rng.shuffle(instances)
    return instances


def generate_instances(
    documents,
    tokenizer,
    rng,
    *,
    max_seq_length=128,
    dupe_factor=10,
    short_seq_prob=0.1,
    masked_lm_prob=0.15,
    max_predictions_per_seq=20,
    whole_word_masking=False,
    mask=True,
    stats=None,
):
    """Yields the NSP + MLM instances of a set of documents, in creation order (before the final shuffle).

    The one instance builder of both data paths: `create_pretraining_instances` (the whole corpus) and the
    Beam pipeline (`keras_bert.data.beam_pretraining`, one shuffle group at a time). "Random next"
    segments come from the other documents given.

    Args:
        documents: list of documents, each a list of segments (lists of ids).
        tokenizer: keras_bert.tokenization.BertTokenizer (special ids, vocabulary).
        rng: random.Random, drives every choice (documents are shuffled with it first).
        max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob, max_predictions_per_seq,
            whole_word_masking, mask: as `create_pretraining_instances`.
        stats: PretrainingStats or None, updated in place.

    Yields:
        TrainingInstance.
    """
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length must be >= 5, got {max_seq_length}")
    stats = stats if stats is not None else PretrainingStats()
    documents = list(documents)
    if not documents:
        raise DataError("no non-empty documents in the corpus")
    rng.shuffle(documents)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    vocabulary = tokenizer.get_vocabulary()
    continuation = None
    if whole_word_masking:
        flags = [token.startswith("##") for token in vocabulary]
        continuation = flags.__getitem__
    for _ in range(dupe_factor):
        for document_index in range(len(documents)):
            for tokens_a, tokens_b, is_random_next in _instances_from_document(
                documents, document_index, max_seq_length, short_seq_prob, rng, cls_id, sep_id, stats
            ):
                token_ids = [cls_id] + tokens_a + [sep_id] + tokens_b + [sep_id]
                segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                positions, labels = [], []
                if mask:
                    token_ids, positions, labels = create_masked_lm_predictions(
                        token_ids,
                        masked_lm_prob,
                        max_predictions_per_seq,
                        len(vocabulary),
                        rng,
                        tokenizer.mask_token_id,
                        {cls_id, sep_id},
                        continuation,
                        stats,
                    )
                stats.instances += 1
                stats.random_next += int(is_random_next)
                stats.tokens += len(token_ids)
                stats.masked += len(positions)
                yield TrainingInstance(token_ids, segment_ids, is_random_next, positions, labels)


def _int_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float_feature(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def instance_to_example(instance, max_seq_length, max_predictions_per_seq):
    """Serializes one instance with the original BERT feature names and padding.

    Args:
        instance: TrainingInstance.
        max_seq_length: int, padded sequence length.
        max_predictions_per_seq: int, padded number of predictions.

    Returns:
        tf.train.Example.
    """
    n = len(instance.token_ids)
    if n > max_seq_length:
        raise ValueError(f"instance of length {n} exceeds max_seq_length {max_seq_length}")
    pad = max_seq_length - n
    m = len(instance.masked_lm_positions)
    pad_m = max_predictions_per_seq - m
    features = {
        "input_ids": _int_feature(list(instance.token_ids) + [0] * pad),
        "input_mask": _int_feature([1] * n + [0] * pad),
        "segment_ids": _int_feature(list(instance.segment_ids) + [0] * pad),
        "masked_lm_positions": _int_feature(list(instance.masked_lm_positions) + [0] * pad_m),
        "masked_lm_ids": _int_feature(list(instance.masked_lm_labels) + [0] * pad_m),
        "masked_lm_weights": _float_feature([1.0] * m + [0.0] * pad_m),
        "next_sentence_labels": _int_feature([1 if instance.is_random_next else 0]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features))


def write_instances(
    instances, output_dir, *, max_seq_length, max_predictions_per_seq, num_shards=1,
    compression=None, prefix="pretraining",
):
    """Writes instances round-robin into sharded TFRecord files (deterministic).

    Args:
        instances: list[TrainingInstance].
        output_dir: str, created if missing.
        max_seq_length: int, padded sequence length.
        max_predictions_per_seq: int, padded number of predictions.
        num_shards: int, number of files.
        compression: None or "GZIP".
        prefix: str, file name prefix.

    Returns:
        list[str]: the written file paths, e.g. pretraining-00000-of-00004.tfrecord(.gz).
    """
    os.makedirs(output_dir, exist_ok=True)
    suffix = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    paths = [
        os.path.join(output_dir, f"{prefix}-{i:05d}-of-{num_shards:05d}{suffix}")
        for i in range(num_shards)
    ]
    options = tf.io.TFRecordOptions(compression_type=compression or "")
    writers = [tf.io.TFRecordWriter(p, options) for p in paths]
    try:
        for index, instance in enumerate(instances):
            example = instance_to_example(instance, max_seq_length, max_predictions_per_seq)
            # Deterministic: the features map is written in key order, the same bytes in every process.
            writers[index % num_shards].write(example.SerializeToString(deterministic=True))
    finally:
        for writer in writers:
            writer.close()
    return paths


def write_pretraining_data(corpus, tokenizer, output_dir, *, max_seq_length, max_predictions_per_seq,
                           num_shards=1, compression=None, invalid_utf8="error", **instance_options):
    """Raw text files -> sharded pretraining TFRecords (`read_documents`, then `create_pretraining_instances`,
    then `write_instances`), the one path of `training.pretrain` and `training.prepare_pretraining`.

    Args:
        corpus: list[str], text files (one segment a line, blank line between documents).
        tokenizer: keras_bert.tokenization.BertTokenizer.
        output_dir: str, created if missing.
        max_seq_length: int, packed and padded sequence length.
        max_predictions_per_seq: int, cap on (and padded number of) predictions.
        num_shards: int, number of files.
        compression: None or "GZIP".
        invalid_utf8: str, "error" or "replace", passed to `read_documents`.
        **instance_options: other `create_pretraining_instances` arguments (dupe_factor, seed, ...).

    Returns:
        (list[str], PretrainingStats): the written shard paths and the corpus/instance statistics.
    """
    stats = PretrainingStats()
    documents = read_documents(corpus, tokenizer, stats, invalid_utf8=invalid_utf8)
    instances = create_pretraining_instances(documents, tokenizer, max_seq_length=max_seq_length,
                                             max_predictions_per_seq=max_predictions_per_seq, stats=stats,
                                             **instance_options)
    paths = write_instances(instances, output_dir, max_seq_length=max_seq_length,
                            max_predictions_per_seq=max_predictions_per_seq, num_shards=num_shards,
                            compression=compression)
    return paths, stats


def detect_compression(path):
    """Returns "GZIP" if a file starts with the gzip magic bytes, else "".

    Args:
        path: str, a TFRecord file.

    Returns:
        str: "GZIP" or "".
    """
    with tf.io.gfile.GFile(path, "rb") as handle:
        return "GZIP" if handle.read(2) == b"\x1f\x8b" else ""


def infer_shapes(path, compression=None):
    """Reads the first record of a file to find sequence length and predictions count.

    Args:
        path: str, a pretraining TFRecord file.
        compression: None (auto), "" or "GZIP".

    Returns:
        tuple (max_seq_length, max_predictions_per_seq).
    """
    if compression is None:
        compression = detect_compression(path)
    for record in tf.data.TFRecordDataset(path, compression_type=compression).take(1):
        example = tf.train.Example.FromString(record.numpy())
        feature = example.features.feature
        missing = [name for name in FEATURE_NAMES if name not in feature]
        if missing:
            raise DataError(f"{path}:1: record lacks BERT feature(s) {missing}")
        return (
            len(feature["input_ids"].int64_list.value),
            len(feature["masked_lm_positions"].int64_list.value),
        )
    raise DataError(f"{path}: no records")


def parse_pretraining_example(serialized, max_seq_length, max_predictions_per_seq):
    """Parses serialized BERT pretraining Examples into the pretrainer's (x, y).

    Args:
        serialized: tf.string Tensor [batch] of serialized tf.train.Example.
        max_seq_length: int.
        max_predictions_per_seq: int.

    Returns:
        tuple (x, y) of dicts, see `pretraining_dataset`.
    """
    spec = {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }
    features = tf.io.parse_example(serialized, spec)
    x = {
        "token_ids": tf.cast(features["input_ids"], tf.int32),
        "segment_ids": tf.cast(features["segment_ids"], tf.int32),
        "padding_mask": tf.cast(features["input_mask"], tf.int32),
        "masked_positions": tf.cast(features["masked_lm_positions"], tf.int32),
    }
    y = {
        "mlm_labels": tf.cast(features["masked_lm_ids"], tf.int32),
        "mlm_weights": features["masked_lm_weights"],
        "nsp_labels": tf.cast(features["next_sentence_labels"][:, 0], tf.int32),
    }
    return x, y


def dynamic_mask(
    token_ids,
    padding_mask,
    seed,
    *,
    vocabulary_size,
    mask_token_id,
    special_token_ids,
    max_predictions_per_seq,
    masked_lm_prob=0.15,
    continuation_flags=None,
):
    """Masks a batch in-graph (80/10/10), deterministically for a given seed.

    Args:
        token_ids: int32 Tensor [B, S], unmasked packed ids.
        padding_mask: int32 Tensor [B, S], 1 for real tokens.
        seed: int32/int64 Tensor [2], stateless random seed.
        vocabulary_size: int, random replacements are drawn from [0, size).
        mask_token_id: int, id of [MASK].
        special_token_ids: list[int], ids never masked ([CLS], [SEP], [PAD]).
        max_predictions_per_seq: int, P.
        masked_lm_prob: float, share of tokens to predict (of real tokens).
        continuation_flags: bool list/array [vocabulary_size] or None; when given,
            whole-word masking ("##" pieces masked with their word).

    Returns:
        tuple (masked_token_ids [B,S], masked_positions [B,P], mlm_labels [B,P],
        mlm_weights float32 [B,P]).
    """
    token_ids = tf.cast(token_ids, tf.int32)
    seq_len = tf.shape(token_ids)[1]
    batch = tf.shape(token_ids)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    is_candidate = tf.cast(padding_mask, tf.bool)
    for special in special_token_ids:
        is_candidate &= tf.not_equal(token_ids, special)
    if continuation_flags is not None:
        table = tf.constant(np.asarray(continuation_flags, dtype=bool))
        is_continuation = tf.gather(table, token_ids) & is_candidate
    else:
        is_continuation = tf.zeros_like(is_candidate)
    word_start = is_candidate & ~is_continuation
    word_id = tf.cumsum(tf.cast(word_start, tf.int32), axis=1) - 1
    # Continuation pieces directly after a special token (no word start yet) stay unmasked.
    is_candidate &= word_id >= 0
    num_words = tf.reduce_max(tf.maximum(word_id + 1, 0)) + 0
    num_words = tf.maximum(num_words, 1)
    safe_word_id = tf.maximum(word_id, 0)
    global_word = safe_word_id + tf.expand_dims(tf.range(batch) * num_words, 1)
    word_length = tf.math.unsorted_segment_sum(
        tf.reshape(tf.cast(is_candidate, tf.int32), [-1]),
        tf.reshape(global_word, [-1]),
        batch * num_words,
    )
    word_length = tf.reshape(word_length, [batch, num_words])
    word_score = tf.random.stateless_uniform([batch, num_words], seeds[0])
    word_score = tf.where(word_length > 0, word_score, -1.0)
    order = tf.argsort(word_score, axis=1, direction="DESCENDING", stable=True)
    sorted_length = tf.gather(word_length, order, batch_dims=1)
    real_tokens = tf.reduce_sum(tf.cast(padding_mask, tf.float32), axis=1)
    num_to_predict = tf.minimum(
        max_predictions_per_seq,
        tf.maximum(1, tf.cast(tf.round(real_tokens * masked_lm_prob), tf.int32)),
    )
    selected_sorted = (tf.cumsum(sorted_length, axis=1) <= tf.expand_dims(num_to_predict, 1)) & (
        sorted_length > 0
    )
    inverse = tf.argsort(order, axis=1, stable=True)
    selected_word = tf.gather(selected_sorted, inverse, batch_dims=1)
    selected = is_candidate & tf.gather(selected_word, safe_word_id, batch_dims=1)
    # Positions in ascending order, padded to P.
    key = tf.where(selected, seq_len - tf.range(seq_len)[tf.newaxis, :], 0)
    pad_width = tf.maximum(max_predictions_per_seq - seq_len, 0)
    key = tf.pad(key, [[0, 0], [0, pad_width]])
    values, _ = tf.math.top_k(key, k=max_predictions_per_seq, sorted=True)
    valid = values > 0
    positions = tf.where(valid, seq_len - values, 0)
    labels = tf.where(valid, tf.gather(token_ids, positions, batch_dims=1), 0)
    weights = tf.cast(valid, tf.float32)
    draw = tf.random.stateless_uniform(tf.shape(positions), seeds[1])
    random_ids = tf.random.stateless_uniform(
        tf.shape(positions), seeds[2], minval=0, maxval=vocabulary_size, dtype=tf.int32
    )
    replacement = tf.where(draw < 0.8, mask_token_id, tf.where(draw < 0.9, labels, random_ids))
    row = tf.broadcast_to(tf.range(batch)[:, tf.newaxis], tf.shape(positions))
    indices = tf.stack([tf.boolean_mask(row, valid), tf.boolean_mask(positions, valid)], axis=1)
    masked_ids = tf.tensor_scatter_nd_update(
        token_ids, indices, tf.boolean_mask(tf.cast(replacement, tf.int32), valid)
    )
    return masked_ids, positions, labels, weights


def pretraining_dataset(
    files,
    batch_size,
    *,
    seed=None,
    shuffle=True,
    repeat=True,
    dynamic_masking=False,
    tokenizer=None,
    masked_lm_prob=0.15,
    max_predictions_per_seq=None,
    whole_word_masking=False,
    compression=None,
    shuffle_buffer_size=10000,
    drop_remainder=True,
):
    """Reads BERT pretraining TFRecords (ours or Google's) into pretrainer batches.

    Args:
        files: str glob or list[str] of TFRecord files.
        batch_size: int.
        seed: int or None, seeds file order, shuffling and dynamic masks.
        shuffle: bool, shuffle files and records.
        repeat: bool, repeat forever.
        dynamic_masking: bool, ignore stored masks and mask on the fly (fresh masks
            every epoch, deterministic for a seed); needs `tokenizer`.
        tokenizer: keras_bert.tokenization.BertTokenizer, for dynamic masking ids.
        masked_lm_prob: float, dynamic masking share.
        max_predictions_per_seq: int or None (None = as stored in the files).
        whole_word_masking: bool, whole-word dynamic masking.
        compression: None (auto-detect from the first file), "" or "GZIP".
        shuffle_buffer_size: int, records in the shuffle buffer.
        drop_remainder: bool, drop the last partial batch.

    Returns:
        tf.data.Dataset of (x, y): x = {"token_ids", "segment_ids", "padding_mask",
        "masked_positions"} int32, y = {"mlm_labels" int32 [B,P], "mlm_weights"
        float32 [B,P], "nsp_labels" int32 [B]}.
    """
    if isinstance(files, (str, os.PathLike)):
        pattern = os.fspath(files)
        files = sorted(tf.io.gfile.glob(pattern)) or [pattern]
    files = [os.fspath(f) for f in files]
    if not files or not all(tf.io.gfile.exists(f) for f in files):
        raise DataError(f"pretraining files not found: {files}")
    if compression is None:
        compression = detect_compression(files[0])
    max_seq_length, stored_predictions = infer_shapes(files[0], compression)
    predictions = max_predictions_per_seq or stored_predictions
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
        cycle_length=min(len(files), 8),
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        lambda s: parse_pretraining_example(s, max_seq_length, stored_predictions),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if dynamic_masking:
        if tokenizer is None:
            raise ValueError("dynamic_masking=True needs the tokenizer (special ids, vocabulary)")
        vocabulary = tokenizer.get_vocabulary()
        flags = [t.startswith("##") for t in vocabulary] if whole_word_masking else None
        base_seed = 0 if seed is None else int(seed)

        def remask(index, features):
            x, y = features
            masked, positions, labels, weights = dynamic_mask(
                x["token_ids"],
                x["padding_mask"],
                tf.stack([tf.constant(base_seed, tf.int64), index]),
                vocabulary_size=len(vocabulary),
                mask_token_id=tokenizer.mask_token_id,
                special_token_ids=[tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id],
                max_predictions_per_seq=predictions,
                masked_lm_prob=masked_lm_prob,
                continuation_flags=flags,
            )
            x = dict(x, token_ids=masked, masked_positions=positions)
            y = dict(y, mlm_labels=labels, mlm_weights=weights)
            return x, y

        dataset = dataset.enumerate().map(remask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def shard_statistics(files, mask_token_id, compression=None):
    """Computes statistics of written pretraining shards (job summary, tests).

    Args:
        files: list[str], pretraining TFRecord files.
        mask_token_id: int, id of [MASK].
        compression: None (auto-detect per file), "" or "GZIP".

    Returns:
        dict: "instances", "random_next_share" (label 1), "masked_share" (predictions
        per real token), and among predictions "mask_share" (shown as [MASK]),
        "kept_share" (shown unchanged), "random_share" (shown as another token).
    """
    counts = collections.Counter()
    for path in files:
        comp = detect_compression(path) if compression is None else compression
        for record in tf.data.TFRecordDataset(path, compression_type=comp):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            ids = feature["input_ids"].int64_list.value
            positions = feature["masked_lm_positions"].int64_list.value
            labels = feature["masked_lm_ids"].int64_list.value
            weights = feature["masked_lm_weights"].float_list.value
            counts["instances"] += 1
            counts["random_next"] += feature["next_sentence_labels"].int64_list.value[0]
            counts["tokens"] += sum(feature["input_mask"].int64_list.value)
            for position, label, weight in zip(positions, labels, weights):
                if weight > 0:
                    counts["masked"] += 1
                    if ids[position] == mask_token_id:
                        counts["shown_mask"] += 1
                    elif ids[position] == label:
                        counts["shown_kept"] += 1
                    else:
                        counts["shown_random"] += 1
    masked = max(counts["masked"], 1)
    return {
        "instances": counts["instances"],
        "random_next_share": counts["random_next"] / max(counts["instances"], 1),
        "masked_share": counts["masked"] / max(counts["tokens"], 1),
        "mask_share": counts["shown_mask"] / masked,
        "kept_share": counts["shown_kept"] / masked,
        "random_share": counts["shown_random"] / masked,
    }
