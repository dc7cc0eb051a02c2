"""Learning a WordPiece vocabulary from text corpora (streaming, with tensorflow-text's learner).

Words are counted with `count_words` and the vocabulary is learned from the counts with
`learn_vocabulary_from_counts`; `learn_vocabulary` does both on whole files, and the Beam pipeline
aggregates the counts over many workers.

Example (needs a corpus file):

    from keras_bert.tokenization import learn_vocabulary, write_vocabulary
    tokens = learn_vocabulary(["corpus.txt"], vocab_size=30000)
    write_vocabulary(tokens, "vocab.txt")
"""

from keras_bert.tokenization.vocabulary import RESERVED_TOKENS, VocabularyError, validate_vocabulary


def count_words(batches, cased=False):
    """Counts the words of text as the WordPiece learner splits them (tensorflow-text's `BasicTokenizer`).

    The one pre-tokenizer of vocabulary learning: `learn_vocabulary` counts a corpus with it and the Beam
    pipeline (`keras_bert.data.beam_pretraining.count_corpus_words`) counts each worker's documents with it.

    Args:
        batches: a tf.data.Dataset of string batches, or an iterable of lists of str (lines).
        cased: bool, keep case and accents; else lower-case and strip accents.

    Returns:
        collections.Counter: word (str) -> count.

    Example:

        >>> counts = count_words([["The cat sat.", "the dog"]])
        >>> counts["the"], counts["."], len(counts)
        (2, 1, 5)
    """
    import collections

    import tensorflow as tf
    from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer

    tokenizer = BasicTokenizer(lower_case=not cased)
    if isinstance(batches, tf.data.Dataset):
        word_batches = batches.map(tokenizer.tokenize)
    else:
        word_batches = (tokenizer.tokenize(tf.constant(list(batch), tf.string)) for batch in batches if len(batch))
    counts = collections.Counter()
    for words in word_batches:
        counts.update(words.flat_values.numpy().tolist())
    return collections.Counter({word.decode("utf-8"): count for word, count in counts.items()})


def learn_vocabulary_from_counts(word_counts, vocab_size, unused_tokens=0):
    """Learns a WordPiece vocabulary from word counts with tensorflow-text's learner.

    The counts are ordered by (count descending, word) first, so the vocabulary depends on the counts only,
    not on the order they were gathered in (one process or many workers).

    Args:
        word_counts: dict or Counter, word -> count (from `count_words`).
        vocab_size: int, maximum vocabulary size (reserved tokens included).
        unused_tokens: int, "[unusedN]" placeholders added after the reserved tokens.

    Returns:
        list[str]: tokens, [PAD] [UNK] [CLS] [SEP] [MASK] first.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    if not word_counts:
        raise VocabularyError("cannot learn a vocabulary: the corpus holds no words")
    reserved = list(RESERVED_TOKENS) + [f"[unused{i}]" for i in range(unused_tokens)]
    ordered = sorted(word_counts.items(), key=lambda item: (-item[1], item[0]))
    vocabulary = learner.learn(ordered, vocab_size, reserved)
    # Drop accidental duplicates while keeping order (the learner may re-emit a reserved token).
    seen, unique = set(), []
    for token in vocabulary:
        if token not in seen and token.strip():
            seen.add(token)
            unique.append(token)
    validate_vocabulary(unique, source="learned vocabulary")
    return unique


def learn_vocabulary(files, vocab_size, cased=False, unused_tokens=0):
    """Learns a WordPiece vocabulary with tensorflow-text's learner, streaming the corpus.

    Args:
        files: list[str], UTF-8 text files (read line by line with tf.data).
        vocab_size: int, maximum vocabulary size (reserved tokens included).
        cased: bool, keep case and accents (cased BERT); else lower-case and strip accents.
        unused_tokens: int, "[unusedN]" placeholders added after the reserved tokens.

    Returns:
        list[str]: tokens, [PAD] [UNK] [CLS] [SEP] [MASK] first.
    """
    import tensorflow as tf

    lines = tf.data.TextLineDataset(files).filter(lambda line: tf.strings.length(line) > 0)
    counts = count_words(lines.batch(1024).prefetch(2), cased=cased)
    return learn_vocabulary_from_counts(counts, vocab_size, unused_tokens=unused_tokens)


def learn_vocabulary_from_sample(files, vocab_size, sample_bytes, cased=False, unused_tokens=0):
    """Learns a WordPiece vocabulary from a sample of a large corpus (the head of every file, whole lines).

    Each file gives about `sample_bytes / len(files)` bytes; the sample goes through `learn_vocabulary`.

    Args:
        files: list[str], UTF-8 text files.
        vocab_size: int, maximum vocabulary size (reserved tokens included).
        sample_bytes: int, bytes of text sampled in all.
        cased: bool, keep case and accents.
        unused_tokens: int, "[unusedN]" placeholders.

    Returns:
        list[str]: tokens, as `learn_vocabulary`.
    """
    import os
    import tempfile

    per_file = max(1, sample_bytes // max(len(files), 1))
    with tempfile.TemporaryDirectory() as directory:
        sample = os.path.join(directory, "sample.txt")
        with open(sample, "wb") as out:
            for path in files:
                with open(path, "rb") as handle:
                    taken = 0
                    for line in handle:
                        if taken >= per_file:
                            break
                        if not taken and line.startswith(b"\xef\xbb\xbf"):
                            line = line[3:]  # A byte-order mark is not text (the pipeline's readers drop it too).
                        out.write(line.decode("utf-8", errors="replace").replace("\x00", "").encode("utf-8"))
                        taken += len(line)
                out.write(b"\n")
        return learn_vocabulary([sample], vocab_size, cased=cased, unused_tokens=unused_tokens)
