"""Pretraining data at corpus scale: the original BERT recipe as an Apache Beam pipeline.

The pipeline builds the same instances as `write_pretraining_data` (the same `tokenize_documents` and
`generate_instances` code) without gathering the corpus in one process:

1. The driver splits each corpus file into byte ranges (`split_ranges`).
2. Workers scan their ranges for document boundaries (blank lines) and check every line's encoding
   (`scan_range`); a document travels on as a reference (file, start byte, end byte), never as text.
3. Each document is assigned by a hash of (seed, file, start byte) to a shuffle group of about
   `group_size` documents; the references are grouped by key.
4. A worker reads the documents of one group, tokenizes them with the in-graph `BertTokenizer`, builds
   their instances ("random next" segments come from the other documents of the group), shuffles them with
   the group's own seed and writes them round-robin into one temporary file per output shard.
5. One worker per output shard concatenates the group files in group order into
   `pretraining-SSSSS-of-NNNNN.tfrecord(.gz)` (the layout of `write_instances`), under a temporary name
   renamed when complete.

`count_corpus_words` is a second, smaller pipeline over the same documents: it counts their words with the
vocabulary learner's pre-tokenizer (`keras_bert.tokenization.count_words`) and sums the counts per word, so
a WordPiece vocabulary can be learned from the whole corpus (`learn_vocabulary_from_counts`).

Faults. Every file is written under a temporary name in `OUT/.beam-tmp` and renamed when complete, and
every name is a function of the group or shard, so a bundle the runner retries (Dataflow, Flink, Spark)
rewrites the same files with the same bytes: no duplicated or missing shards. A group's statistics are
written last (`group_done_file`), and mark it complete. The DirectRunner does not retry: when a worker
process dies it fails the whole pipeline ("Channel closed prematurely"); `run_pretraining_pipeline` then
runs it again (`retries`), and the new try skips the groups the failed one completed. A new run of the job
first removes what an interrupted one left in `OUT/.beam-tmp`. The output depends on the seed and the
corpus only (not on the number of workers, the runner or the tries).

`apache_beam` is imported when a pipeline is built, so `keras_bert` works without it (`pip install .[beam]`).

Example:

    from keras_bert.data.beam_pretraining import run_pretraining_pipeline
    paths, stats = run_pretraining_pipeline(["corpus.txt"], "vocab.txt", "/tmp/out", max_seq_length=128,
                                            runner="DirectRunner", num_workers=2)
    print(stats.summary())
"""

import hashlib
import json
import os
import random
import sys
import uuid

from keras_bert.data.errors import DataError, SkipCounter
from keras_bert.data.pretraining import PretrainingStats, decode_line

BOM = b"\xef\xbb\xbf"
TEMP_DIR = ".beam-tmp"
SUMMARY_FILE = "summary.json"


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def _open(path, mode="rb"):
    """Opens a local file with `open`, any other (gs://, hdfs://) with tf.io.gfile."""
    if "://" in path:
        return _gfile().GFile(path, mode)
    return open(path, mode)


def _line_number(path, offset):
    """The 1-based line number of the line starting at byte `offset` (asked only for an error message)."""
    count = 1
    with _open(path) as handle:
        remaining = offset
        while remaining > 0:
            block = handle.read(min(remaining, 1 << 20))
            if not block:
                break
            count += block.count(b"\n")
            remaining -= len(block)
    return count


def _is_blank(raw):
    """Whether a line is blank (a document boundary), decided as `read_documents` does (after decoding)."""
    return not raw.decode("utf-8", errors="replace").strip()


def split_ranges(files, chunk_bytes, on_bad_file="fail", stats=None):
    """Splits corpus files into byte ranges, the work items of `scan_range`.

    Args:
        files: list[str], corpus files.
        chunk_bytes: int, bytes per range.
        on_bad_file: "fail" (DataError naming the file) or "report" (counted in `stats.file_problems`, skipped)
            for a file that cannot be read or holds nothing.
        stats: PretrainingStats or None, receives the skipped files.

    Returns:
        list[tuple[str, int, int]]: (path, start byte, end byte).
    """
    stats = stats if stats is not None else PretrainingStats()
    ranges = []
    for path in files:
        problem = None
        try:
            if "://" in path:
                size = _gfile().stat(path).length
            else:
                if os.path.isdir(path):
                    raise IsADirectoryError(path)
                size = os.path.getsize(path)
                with open(path, "rb") as handle:
                    handle.read(1)
            if size == 0:
                problem, message = "empty_file", f"{path}: no examples (the corpus file holds no text)"
        except FileNotFoundError:
            problem, message = "unreadable_file", f"{path}: corpus file not found"
        except IsADirectoryError:
            problem, message = "unreadable_file", f"{path}: is a directory, not a corpus file"
        except OSError as error:
            problem, message = "unreadable_file", f"{path}: cannot read the corpus file ({error.strerror or error})"
        if problem:
            if on_bad_file == "fail":
                raise DataError(message)
            stats.skipped[problem] += 1
            stats.file_problems.setdefault(path, SkipCounter())[problem] += 1
            continue
        for start in range(0, size, chunk_bytes):
            ranges.append((path, start, min(start + chunk_bytes, size)))
    return ranges


def scan_range(path, start, end, invalid_utf8="error", stats=None):
    """Finds the documents owned by a byte range and checks the encoding of their lines.

    A range owns the documents that start after its first blank line (or at the file start) and before the
    first blank line that starts at or after `end`; it reads past `end` to finish its last document. So
    every document belongs to exactly one range, whatever the range size.

    Args:
        path: str, the corpus file.
        start: int, first byte of the range.
        end: int, end byte of the range (exclusive).
        invalid_utf8: "error" (DataError naming file, line and byte) or "replace" (counted per file).
        stats: PretrainingStats or None, counts the repaired lines.

    Yields:
        tuple[int, int]: (start byte, end byte) of each document.
    """
    stats = stats if stats is not None else PretrainingStats()
    with _open(path) as handle:
        if start == 0:
            position, owned = 0, True
        else:
            handle.seek(start - 1)
            position = start - 1 + len(handle.readline())  # The first line starting at or after `start`.
            owned = False
        document_start = None
        for raw in iter(handle.readline, b""):
            line_start = position
            position += len(raw)
            blank = _is_blank(raw[3:] if line_start == 0 and raw.startswith(BOM) else raw)
            if blank and line_start >= end:
                break  # The boundary: the next range owns what follows.
            if not owned:
                owned = blank
                continue
            body, offset = raw, line_start
            if line_start == 0 and raw.startswith(BOM):
                body, offset = raw[3:], 3
            decode_line(path, body, lambda: _line_number(path, line_start), offset, invalid_utf8, stats)
            if blank:
                if document_start is not None:
                    yield document_start, line_start
                document_start = None
            elif document_start is None:
                document_start = line_start
        if document_start is not None:
            yield document_start, position


def read_document(handle, start, end):
    """Reads one document's lines (decoded with replacement: `scan_range` already checked them).

    Args:
        handle: binary file object of the corpus file.
        start: int, first byte of the document.
        end: int, end byte.

    Returns:
        list[str]: its stripped non-empty lines.
    """
    handle.seek(start)
    data = handle.read(end - start)
    if start == 0 and data.startswith(BOM):
        data = data[3:]
    lines = (line.strip() for line in data.decode("utf-8", errors="replace").replace("\x00", "").split("\n"))
    return [line for line in lines if line]


def group_of(seed, path, start, num_groups):
    """The shuffle group of a document: a stable hash of (seed, file, start byte).

    Args:
        seed: int.
        path: str, the corpus file.
        start: int, the document's first byte.
        num_groups: int.

    Returns:
        int in [0, num_groups).
    """
    digest = hashlib.sha256(f"{seed}\0{path}\0{start}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") % num_groups


def group_file(temp_dir, group, shard):
    """The temporary file of one group's instances for one output shard."""
    return f"{temp_dir}/group-{group:08d}-shard-{shard:05d}.tfrecord"


def group_done_file(temp_dir, group):
    """The marker of a complete group: its statistics, written after all its shard files."""
    return f"{temp_dir}/group-{group:08d}.done.json"


def load_built_group(temp_dir, group):
    """The statistics of a group an earlier try of the same run completed, or None.

    Args:
        temp_dir: str, the run's temporary directory.
        group: int.

    Returns:
        PretrainingStats or None.
    """
    path = group_done_file(temp_dir, group)
    if not _gfile().exists(path):
        return None
    with _open(path, "r") as handle:
        return PretrainingStats.from_dict(json.load(handle))


def shard_path(output_dir, shard, num_shards, compression, prefix="pretraining"):
    """An output shard's name, as `write_instances` names it."""
    suffix = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    return os.path.join(output_dir, f"{prefix}-{shard:05d}-of-{num_shards:05d}{suffix}")


def _replace(temporary, final):
    """Renames a complete file to its final name (replacing what a failed earlier try left)."""
    if "://" in final:
        _gfile().rename(temporary, final, overwrite=True)
    else:
        os.replace(temporary, final)


def build_group(group, refs, tokenizer, temp_dir, *, seed, num_shards, group_size, chunk_size=4096,
                **instance_options):
    """Builds and writes one shuffle group's instances (one temporary file per output shard).

    The group's documents are sorted by (file, start byte), so the group's output does not depend on the
    order the runner delivers them in; the instances are those of `create_pretraining_instances` on the
    group's documents with the group's own seed.

    Args:
        group: int, the group number.
        refs: iterable of (path, start, end), the group's documents.
        tokenizer: keras_bert.tokenization.BertTokenizer.
        temp_dir: str, where the group files go.
        seed: int, the pipeline seed.
        num_shards: int, output shards.
        group_size: int, documents per group asked for (reported).
        chunk_size: int, lines per tokenizer call.
        **instance_options: `generate_instances` arguments (max_seq_length, dupe_factor, ...).

    Returns:
        PretrainingStats: the group's counts.
    """
    import tensorflow as tf

    from keras_bert.data.pretraining import generate_instances, instance_to_example, tokenize_documents

    stats = PretrainingStats(group_size=group_size, groups=1)
    refs = sorted(refs)
    stats.largest_group = len(refs)
    raw_documents, handle, current = [], None, None
    try:
        for path, start, end in refs:
            if path != current:
                if handle is not None:
                    handle.close()
                handle, current = _open(path), path
            raw_documents.append(read_document(handle, start, end))
    finally:
        if handle is not None:
            handle.close()
    documents = tokenize_documents(raw_documents, tokenizer, stats, chunk_size)
    rng = random.Random(f"{seed}:{group}")
    records = []
    if documents:
        max_seq_length = instance_options["max_seq_length"]
        max_predictions = instance_options["max_predictions_per_seq"]
        for instance in generate_instances(documents, tokenizer, rng, stats=stats, **instance_options):
            example = instance_to_example(instance, max_seq_length, max_predictions)
            records.append(example.SerializeToString(deterministic=True))  # The same bytes in every process.
        rng.shuffle(records)
    tag = uuid.uuid4().hex
    for shard in range(num_shards):
        final = group_file(temp_dir, group, shard)
        temporary = f"{final}.inprogress-{tag}"
        with tf.io.TFRecordWriter(temporary) as writer:
            # Round-robin from a group-dependent shard, so small groups still fill the shards evenly.
            for record in records[(shard - group) % num_shards :: num_shards]:
                writer.write(record)
        _replace(temporary, final)
    _write_json(stats.to_dict(), group_done_file(temp_dir, group))  # Last: the group is complete.
    return stats


def _write_json(value, final):
    """Writes a JSON file under a temporary name and renames it when complete."""
    temporary = f"{final}.inprogress-{uuid.uuid4().hex}"
    with _open(temporary, "w") as handle:
        json.dump(value, handle)
    _replace(temporary, final)


def finalize_shard(shard, groups, temp_dir, output_dir, num_shards, compression):
    """Concatenates the group files of one output shard, in group order, into its final file.

    TFRecord files concatenate byte for byte; a GZIP shard is one gzip stream over the records.

    Args:
        shard: int.
        groups: list[int], the groups built.
        temp_dir: str.
        output_dir: str.
        num_shards: int.
        compression: None or "GZIP".

    Returns:
        str: the shard's path.
    """
    import gzip

    final = shard_path(output_dir, shard, num_shards, compression)
    # The temporary lives in the temporary directory (the next run removes what a killed one left there).
    temporary = f"{temp_dir}/{os.path.basename(final)}.inprogress-{uuid.uuid4().hex}"
    with _open(temporary, "wb") as raw_out:
        out = gzip.GzipFile(filename="", fileobj=raw_out, mode="wb", compresslevel=6, mtime=0) if compression == "GZIP" \
            else raw_out
        try:
            for group in sorted(set(groups)):  # Once each, even if a runner reported a retried group twice.
                with _open(group_file(temp_dir, group, shard)) as part:
                    for block in iter(lambda: part.read(1 << 22), b""):
                        out.write(block)
        finally:
            if out is not raw_out:
                out.close()
    _replace(temporary, final)
    return final


def _num_groups(count, group_size):
    return max(1, -(-count // group_size))


def _pipeline_options(runner, num_workers, pipeline_args):
    from apache_beam.options.pipeline_options import PipelineOptions

    args = ["--runner", runner] + list(pipeline_args or [])
    if runner in ("DirectRunner", "direct"):
        args += ["--direct_num_workers", str(num_workers)]
        if not any(a.startswith("--default_sdk_harness_log_level") for a in args):
            args += ["--default_sdk_harness_log_level", "WARNING"]
        if not any(a.startswith("--direct_running_mode") for a in args):
            args += ["--direct_running_mode", "multi_processing" if num_workers > 1 else "in_memory"]
    elif num_workers and not any(a.startswith("--num_workers") for a in args):
        args += ["--num_workers", str(num_workers)]
    return PipelineOptions(args)


def build_pipeline(pipeline, files, vocabulary, output_dir, *, lowercase=True, max_seq_length=128,
                   max_predictions_per_seq=20, num_shards=1, compression=None, dupe_factor=10,
                   short_seq_prob=0.1, masked_lm_prob=0.15, whole_word_masking=False, mask=True, seed=12345,
                   group_size=1000, chunk_bytes=8 << 20, on_bad_file="fail", driver_stats=None):
    """Adds the pretraining-data transforms to a Beam pipeline (see the module docstring).

    Args:
        pipeline: apache_beam.Pipeline.
        files: list[str], corpus files.
        vocabulary: list[str], WordPiece tokens (sent to the workers with the transforms).
        output_dir: str.
        lowercase: bool, uncased tokenizer.
        max_seq_length, max_predictions_per_seq, num_shards, compression, dupe_factor, short_seq_prob,
            masked_lm_prob, whole_word_masking, mask, seed: as `write_pretraining_data`.
        group_size: int, documents per shuffle group ("random next" segments come from the same group).
        chunk_bytes: int, bytes per scanned range.
        on_bad_file: "fail" or "report" (bad lines repaired and counted per file, unreadable files skipped).
        driver_stats: PretrainingStats or None, what the driver already counted (skipped files).

    Returns:
        apache_beam.PCollection: the written shard paths.
    """
    import apache_beam as beam

    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (a document needs others for 'random next'), got {group_size}")
    invalid_utf8 = "error" if on_bad_file == "fail" else "replace"
    temp_dir = f"{output_dir}/{TEMP_DIR}"
    ranges = split_ranges(files, chunk_bytes, on_bad_file, driver_stats)
    if not ranges:
        raise DataError(f"no readable corpus file among {len(files)} given")
    options = dict(max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
                   dupe_factor=dupe_factor, short_seq_prob=short_seq_prob, masked_lm_prob=masked_lm_prob,
                   whole_word_masking=whole_word_masking, mask=mask)

    scanned = _scan_documents(pipeline, ranges, invalid_utf8)
    refs = scanned.refs
    num_groups = (
        refs
        | "CountDocuments" >> beam.combiners.Count.Globally()
        | "NumGroups" >> beam.Map(_num_groups, group_size)
    )
    built = (
        refs
        | "AssignGroup" >> beam.Map(lambda ref, n: (group_of(seed, ref[0], ref[1], n), ref),
                                    n=beam.pvalue.AsSingleton(num_groups))
        | "GroupDocuments" >> beam.GroupByKey()
        | "BuildGroup" >> beam.ParDo(_BuildGroup(vocabulary, lowercase, temp_dir, seed, num_shards, group_size,
                                                 options))
    )
    shards = (
        pipeline
        | "Shards" >> beam.Create(list(range(num_shards)))
        | "SpreadShards" >> beam.Reshuffle()
        | "Finalize" >> beam.Map(lambda shard, done: finalize_shard(
            shard, [group for group, _ in done], temp_dir, output_dir, num_shards, compression),
            done=beam.pvalue.AsList(built))
    )
    summary = driver_stats.to_dict() if driver_stats is not None else PretrainingStats().to_dict()
    (
        pipeline
        | "SummaryStart" >> beam.Create([None])
        | "Summary" >> beam.Map(_write_summary, summary, temp_dir, beam.pvalue.AsList(scanned.stats),
                                beam.pvalue.AsList(built), beam.pvalue.AsList(shards))
    )
    return shards


def _scan_documents(pipeline, ranges, invalid_utf8):
    """The document references of the ranges (main output "refs") and the scan's per-file problems ("stats")."""
    import apache_beam as beam

    return (
        pipeline
        | "Ranges" >> beam.Create(ranges)
        | "SpreadRanges" >> beam.Reshuffle()
        | "Scan" >> beam.ParDo(_ScanRange(invalid_utf8)).with_outputs("stats", main="refs")
    )


def _write_summary(_, driver_stats, temp_dir, scan_stats, built, shards):
    """Merges every part's statistics into one JSON file in the temporary directory (read by the driver)."""
    stats = PretrainingStats.from_dict(driver_stats)
    for part in scan_stats:
        stats.merge(part)
    for _, part in sorted(dict(built).items()):  # Once per group.
        stats.merge(part)
    _write_json({"stats": stats.to_dict(), "shards": sorted(shards)}, f"{temp_dir}/{SUMMARY_FILE}")


class _ScanRange:
    """Beam DoFn factory: scans ranges (see `scan_range`); defined as a class for pickling by reference."""

    def __new__(cls, invalid_utf8):
        import apache_beam as beam

        class ScanRange(beam.DoFn):
            def process(self, item):
                path, start, end = item
                stats = PretrainingStats()
                for document_start, document_end in scan_range(path, start, end, invalid_utf8, stats):
                    yield (path, document_start, document_end)
                if stats.file_problems:
                    yield beam.pvalue.TaggedOutput("stats", stats)

        return ScanRange()


class _BuildGroup:
    """Beam DoFn factory: builds one group's instances with a tokenizer made once per worker."""

    def __new__(cls, vocabulary, lowercase, temp_dir, seed, num_shards, group_size, options):
        import apache_beam as beam

        class BuildGroup(beam.DoFn):
            def setup(self):
                from keras_bert.tokenization import BertTokenizer

                self.tokenizer = BertTokenizer(vocabulary, lowercase=lowercase)

            def process(self, item):
                group, refs = item
                stats = load_built_group(temp_dir, group)  # Complete in an earlier try of this run.
                if stats is None:
                    stats = build_group(group, refs, self.tokenizer, temp_dir, seed=seed, num_shards=num_shards,
                                        group_size=group_size, **options)
                yield group, stats

        return BuildGroup()


def run_pretraining_pipeline(files, vocabulary, output_dir, *, runner="DirectRunner", num_workers=1,
                             pipeline_args=None, lowercase=True, retries=2, **options):
    """Runs the pretraining-data pipeline and waits for it; the Beam counterpart of `write_pretraining_data`.

    Args:
        files: list[str], corpus files (blank line between documents).
        vocabulary: str (a vocab.txt) or list[str], WordPiece tokens.
        output_dir: str, gets `pretraining-SSSSS-of-NNNNN.tfrecord(.gz)`.
        runner: str, a Beam runner name (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...).
        num_workers: int, DirectRunner processes (other runners: `--num_workers`).
        pipeline_args: list[str] or None, more Beam pipeline options (e.g. `--project`, `--region`).
        lowercase: bool, uncased tokenizer.
        retries: int, how many times a failed run (not bad input: e.g. a killed worker, which the DirectRunner
            does not retry) is run again; a new try reuses the groups an earlier try completed.
        **options: `build_pipeline` arguments (max_seq_length, group_size, on_bad_file, seed, ...).

    Returns:
        (list[str], PretrainingStats): the shard paths and the statistics of the whole corpus.

    Raises:
        DataError: bad input in "fail" mode, naming the file (and line).
    """
    import apache_beam as beam

    from keras_bert.tokenization import load_vocabulary

    tokens = load_vocabulary(vocabulary) if isinstance(vocabulary, (str, os.PathLike)) else list(vocabulary)
    temp_dir = _fresh_temp_dir(output_dir)

    def make_pipeline():
        driver_stats = PretrainingStats()
        pipeline = beam.Pipeline(options=_pipeline_options(runner, num_workers, pipeline_args))
        build_pipeline(pipeline, list(files), tokens, output_dir, lowercase=lowercase, driver_stats=driver_stats,
                       **options)
        return pipeline

    _run(make_pipeline, retries)
    with _gfile().GFile(f"{temp_dir}/{SUMMARY_FILE}") as handle:
        summary = json.load(handle)
    _gfile().rmtree(temp_dir)
    return summary["shards"], PretrainingStats.from_dict(summary["stats"])


def count_corpus_words(files, work_dir, *, runner="DirectRunner", num_workers=1, pipeline_args=None, cased=False,
                       chunk_bytes=8 << 20, on_bad_file="fail", lines_per_call=1024, retries=2):
    """Counts the words of a whole corpus with a Beam pipeline, for `learn_vocabulary_from_counts`.

    The documents are found as `build_pipeline` finds them (byte ranges, then `scan_range`); every worker
    counts the words of its documents with `keras_bert.tokenization.count_words` (the pre-tokenizer of
    `learn_vocabulary`) and the counts are summed per word (`CombinePerKey`). Lines outside documents are
    blank, so the counts are those of `count_words` over every line of the corpus.

    Args:
        files: list[str], corpus files.
        work_dir: str, the job's output directory (the counts pass through `work_dir/.beam-tmp`, removed after).
        runner: str, a Beam runner name.
        num_workers: int, DirectRunner processes (other runners: `--num_workers`).
        pipeline_args: list[str] or None, more Beam pipeline options.
        cased: bool, keep case and accents.
        chunk_bytes: int, bytes per scanned range.
        on_bad_file: "fail" (DataError naming the file and line) or "report" (broken lines counted with U+FFFD,
            unreadable files skipped).
        lines_per_call: int, lines per pre-tokenizer call in a worker.
        retries: int, how many times a failed run (not bad input) is run again.

    Returns:
        collections.Counter: word -> count over the corpus.

    Example:

        from keras_bert.tokenization import learn_vocabulary_from_counts
        counts = count_corpus_words(["corpus.txt"], "/tmp/out", runner="DirectRunner", num_workers=2)
        tokens = learn_vocabulary_from_counts(counts, vocab_size=30000)
    """
    import collections

    import apache_beam as beam

    temp_dir = _fresh_temp_dir(work_dir)
    ranges = split_ranges(list(files), chunk_bytes, on_bad_file)
    if not ranges:
        raise DataError(f"no readable corpus file among {len(files)} given")
    invalid_utf8 = "error" if on_bad_file == "fail" else "replace"
    prefix = f"{temp_dir}/word-counts"

    def make_pipeline():
        for path in _gfile().glob(f"{prefix}*"):  # What a failed try wrote (the counts are not resumed).
            _gfile().remove(path)
        pipeline = beam.Pipeline(options=_pipeline_options(runner, num_workers, pipeline_args))
        (
            _scan_documents(pipeline, ranges, invalid_utf8).refs
            | "SpreadDocuments" >> beam.Reshuffle()
            | "CountWords" >> beam.ParDo(_CountWords(cased, lines_per_call))
            | "SumPerWord" >> beam.CombinePerKey(sum)
            | "AsJson" >> beam.Map(lambda item: json.dumps(item, ensure_ascii=False))
            | "WriteCounts" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
        )
        return pipeline

    _run(make_pipeline, retries)
    counts = collections.Counter()
    for path in sorted(_gfile().glob(f"{temp_dir}/word-counts*.jsonl")):
        with _gfile().GFile(path) as handle:
            for line in handle:
                word, count = json.loads(line)
                counts[word] += count
    _gfile().rmtree(temp_dir)
    return counts


class _CountWords:
    """Beam DoFn factory: counts the words of documents, `lines_per_call` lines per pre-tokenizer call."""

    def __new__(cls, cased, lines_per_call):
        import apache_beam as beam
        from apache_beam.transforms.window import GlobalWindows

        from keras_bert.tokenization import count_words

        class CountWords(beam.DoFn):
            def start_bundle(self):
                self.lines, self.handle, self.path = [], None, None

            def _counts(self):
                counts, self.lines = count_words([self.lines], cased=cased), []
                return counts.items()

            def process(self, ref):
                path, start, end = ref
                if path != self.path:
                    if self.handle is not None:
                        self.handle.close()
                    self.handle, self.path = _open(path), path
                self.lines.extend(read_document(self.handle, start, end))
                if len(self.lines) >= lines_per_call:
                    yield from self._counts()

            def finish_bundle(self):
                if self.handle is not None:
                    self.handle.close()
                    self.handle, self.path = None, None
                for item in self._counts():
                    yield GlobalWindows.windowed_value(item)

        return CountWords()


def _fresh_temp_dir(output_dir):
    """Creates `output_dir/.beam-tmp`, first removing what an interrupted earlier run left there."""
    gfile = _gfile()
    temp_dir = f"{output_dir}/{TEMP_DIR}"
    if gfile.exists(temp_dir):
        gfile.rmtree(temp_dir)
    gfile.makedirs(temp_dir)
    return temp_dir


def _run(make_pipeline, retries):
    """Runs a pipeline and waits, again after a failure that is not bad input (up to `retries` times).

    A worker's DataError comes back as one DataError with its message, and is not retried.

    Args:
        make_pipeline: callable returning a new apache_beam.Pipeline (one per try).
        retries: int.
    """
    for attempt in range(retries + 1):
        try:
            make_pipeline().run().wait_until_finish()
            return
        except Exception as error:  # The runner wraps a worker's DataError (often as text): surface its one line.
            message = _data_error_message(error) or data_error_in_text(str(error))
            if message:
                raise DataError(message) from None
            if attempt == retries:
                raise
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            print(f"pipeline failed ({type(error).__name__}: {first_line[:200]}); retry {attempt + 1} of {retries}",
                  file=sys.stderr, flush=True)


def _data_error_message(error):
    """The message of a DataError raised in a worker, from the runner's exception (or None)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DataError):
            return str(error).split(" [while running ", 1)[0]
        error = error.__cause__ or error.__context__
    return None


def data_error_in_text(text):
    """Finds "DataError: message" in a runner's error text (a remote worker's traceback).

    Args:
        text: str.

    Returns:
        str or None: the message.
    """
    marker = "DataError: "
    index = text.rfind(marker)
    if index < 0:
        return None
    message = text[index + len(marker):].split("\n", 1)[0]
    return message.split(" [while running ", 1)[0].strip() or None
