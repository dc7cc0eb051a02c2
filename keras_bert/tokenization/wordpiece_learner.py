"""Learning a WordPiece vocabulary from text corpora (streaming, with tensorflow-text's learner).

Example (needs a corpus file):

    from keras_bert.tokenization import learn_vocabulary, write_vocabulary
    tokens = learn_vocabulary(["corpus.txt"], vocab_size=30000)
    write_vocabulary(tokens, "vocab.txt")
"""

from keras_bert.tokenization.vocabulary import RESERVED_TOKENS, validate_vocabulary


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
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as learner

    lines = tf.data.TextLineDataset(files).filter(lambda line: tf.strings.length(line) > 0)
    reserved = list(RESERVED_TOKENS) + [f"[unused{i}]" for i in range(unused_tokens)]
    vocabulary = learner.bert_vocab_from_dataset(
        lines.batch(1024).prefetch(2),
        vocab_size=vocab_size,
        reserved_tokens=reserved,
        bert_tokenizer_params={"lower_case": not cased},
        learn_params={},
    )
    # Drop accidental duplicates while keeping order (the learner may re-emit a reserved token).
    seen, unique = set(), []
    for token in vocabulary:
        if token not in seen and token.strip():
            seen.add(token)
            unique.append(token)
    validate_vocabulary(unique, source="learned vocabulary")
    return unique


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
                        out.write(line.decode("utf-8", errors="replace").replace("\x00", "").encode("utf-8"))
                        taken += len(line)
                out.write(b"\n")
        return learn_vocabulary([sample], vocab_size, cased=cased, unused_tokens=unused_tokens)
