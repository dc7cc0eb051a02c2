"""Why a model decided what it did: Integrated Gradients on the embedding output, word by word.

`integrated_gradients` attributes one scalar output of a keras_bert task model (a class probability, a
regression score, a tag probability, an answer start/end probability, or the cosine similarity of two
sentence embeddings) to the word pieces of its input, and sums them to words with their character offsets
in the input text. The integral from the baseline to the input is a composite Gauss-Legendre quadrature of
`steps` gradient points, with its segments placed where the output changes (a confident classifier's
probability often jumps within a small part of the path, which one rule of 50 points under-resolves); the
completeness delta (sum of attributions - (f(x) - f(baseline))) tells how well it converged.

Example (needs a fine-tuned text-in model, e.g. a `training.finetune` output directory):

    model = keras_bert.load("runs/sst2/model")
    result = keras_bert.explain.integrated_gradients(model, "a gorgeous, witty film")
    for word, score in zip(result["words"], result["word_attributions"]):
        print(f"{word:>12} {score:+.3f}")
"""

import keras
import numpy as np
import tensorflow as tf

BASELINES = ("pad", "mask", "zeros")
# Kinds and what their scalar target is (the other kinds have none).
TARGETS = {
    "classification": "the probability of a class (default: the predicted one)",
    "regression": "the score",
    "token_classification": "the probability of a tag at a token: target=(token index, tag)",
    "question_answering": "the probability of the answer's start or end token: target='start' or 'end'",
    "embedding": "the cosine similarity of the text's embedding to text_pair's",
}


class ExplainError(ValueError):
    """A request `integrated_gradients` cannot explain (bad target, empty text, a kind with no target)."""


# --------------------------------------------------------------------------- the model from its embedding output

def forward_from_embeddings(model):
    """`fn(inputs, embedded) -> outputs`: `model` run with its encoder's embedding output replaced by `embedded`.

    Replays the model's functional graph (and its encoder's, when the task model calls the encoder as a
    nested model) with the `BertEmbeddings` node swapped for `embedded`; every other layer is the model's
    own, in inference mode.

    Args:
        model: a keras_bert task model (functional, with `.encoder`).
    """
    encoder = model.encoder
    embeddings = encoder.embeddings

    def run(graph, inputs, embedded):
        def substitute(operation):
            if operation is embeddings:
                return lambda *args, **kwargs: embedded
            if operation is encoder and graph is not encoder:
                return lambda x, **kwargs: run(encoder, x, embedded)
            return operation

        flat = graph._standardize_inputs(inputs)
        outputs = graph._run_through_graph(flat, operation_fn=substitute)
        return outputs

    def forward(inputs, embedded):
        outputs = run(model, inputs, embedded)
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            outputs = outputs[0]
        return outputs

    return forward


def quadrature(steps):
    """Gauss-Legendre points `alphas` in (0, 1) and their weights (sum 1) for `steps` points."""
    if steps < 1:
        raise ExplainError(f"steps must be >= 1, got {steps}")
    nodes, weights = np.polynomial.legendre.leggauss(int(steps))
    return ((nodes + 1.0) / 2.0).astype(np.float32), (weights / 2.0).astype(np.float32)


METHODS = ("adaptive", "gausslegendre")
POINTS_PER_SEGMENT = 10  # Gauss-Legendre points in each segment of the adaptive rule.
PROBES = 16  # Forward-only evaluations that place the adaptive segments.


def adaptive_nodes(probe_values, steps):
    """Composite Gauss-Legendre nodes placed where the explained output changes, per example.

    The path [0, 1] is cut into `steps // POINTS_PER_SEGMENT` segments of equal share of a measure that is
    half the output's variation between the probes (`probe_values` at `PROBES + 1` evenly spaced alphas) and
    half plain length, so a sharp step in the output gets most of the points and no part of the path gets
    none. Each segment holds its share of the `steps` Gauss-Legendre points.

    Args:
        probe_values: float32 `[PROBES + 1, batch]`: the output at alphas `0, 1/PROBES, ..., 1`.
        steps: int. Gradient evaluations in all.

    Returns:
        tuple of float32 Tensors `(alphas, weights)`, each `[steps, batch]`; the weights of an example sum to 1.
    """
    probes = int(probe_values.shape[0]) - 1
    change = tf.abs(probe_values[1:] - probe_values[:-1])  # [probes, batch]
    total = tf.reduce_sum(change, axis=0, keepdims=True)
    share = tf.where(total > 0, change / tf.maximum(total, 1e-30), 1.0 / probes)
    measure = 0.5 * share + 0.5 / probes
    cumulative = tf.concat([tf.zeros_like(measure[:1]), tf.cumsum(measure, axis=0)], axis=0)
    cumulative = tf.transpose(cumulative / cumulative[-1:])  # [batch, probes + 1], from 0 to 1
    segments = max(1, int(steps) // POINTS_PER_SEGMENT)
    batch = tf.shape(probe_values)[1]
    cuts = tf.tile(tf.linspace(0.0, 1.0, segments + 1)[None], [batch, 1])  # [batch, segments + 1]
    # Invert the piecewise-linear cumulative measure at the cuts.
    index = tf.clip_by_value(tf.searchsorted(cumulative, cuts, side="right") - 1, 0, probes - 1)
    low, high = tf.gather(cumulative, index, batch_dims=1), tf.gather(cumulative, index + 1, batch_dims=1)
    fraction = (cuts - low) / tf.maximum(high - low, 1e-30)
    bounds = tf.transpose((tf.cast(index, tf.float32) + tf.clip_by_value(fraction, 0.0, 1.0)) / probes)
    alphas, weights = [], []
    for segment in range(segments):
        count = int(steps) // segments + (1 if segment < int(steps) % segments else 0)
        nodes, node_weights = quadrature(count)
        start, width = bounds[segment], bounds[segment + 1] - bounds[segment]  # [batch]
        alphas.append(start[None] + nodes[:, None] * width[None])
        weights.append(node_weights[:, None] * width[None])
    return tf.concat(alphas, axis=0), tf.concat(weights, axis=0)


def _baseline(tokenizer, inputs, baseline):
    """The `integrate` baseline for a baseline name: "zeros", or ids with [PAD] / [MASK] between the specials."""
    if baseline == "zeros":
        return "zeros"
    replacement = tokenizer.pad_token_id if baseline == "pad" else tokenizer.mask_token_id
    return baseline_ids(inputs["token_ids"], inputs["segment_ids"], inputs["padding_mask"],
                        (tokenizer.cls_token_id, tokenizer.sep_token_id), replacement)


def baseline_ids(token_ids, segment_ids, padding_mask, special_ids, replacement_id):
    """Token ids of the `[PAD]`/`[MASK]` baseline: every real non-special token replaced, specials kept."""
    token_ids = tf.convert_to_tensor(token_ids)
    keep = tf.zeros_like(token_ids, tf.bool)
    for special in special_ids:
        keep |= tf.equal(token_ids, special)
    keep |= tf.equal(tf.convert_to_tensor(padding_mask), 0)
    return tf.where(keep, token_ids, tf.fill(tf.shape(token_ids), tf.constant(replacement_id, token_ids.dtype)))


def integrate(model, inputs, baseline, target_fn, steps=50, batch_size=None, forward=None, method="adaptive"):
    """Integrated Gradients of `target_fn(outputs)` along the straight line from the baseline to the input.

    Works in a `tf.function` (the export's `explain` signature) as well as eagerly; with `batch_size`, the
    interpolation points are run `batch_size` at a time (a Python loop: eager use), else all at once.

    Args:
        model: a keras_bert task model.
        inputs: dict of int32 `[batch, seq]` `token_ids`, `segment_ids`, `padding_mask`.
        baseline: `"pad"`, `"mask"`, `"zeros"`, or int32 baseline token ids `[batch, seq]`.
        target_fn: `fn(outputs) -> [batch]` float32: the scalar explained, one per example.
        steps: int. Gradient evaluations (quadrature points).
        batch_size: int or None. Interpolation points per forward pass (None: all `steps`).
        forward: what `forward_from_embeddings(model)` returns (pass it to reuse it).
        method: `"adaptive"` (composite Gauss-Legendre placed by `PROBES` forward-only evaluations of the
            output along the path; see `adaptive_nodes`; below `2 * POINTS_PER_SEGMENT` steps it is one
            rule) or `"gausslegendre"` (one rule over the path, Captum's default). Both use `steps` gradient
            evaluations.

    Returns:
        dict of float32 Tensors: `attributions` `[batch, seq]`, `prediction` and `baseline_prediction` `[batch]`.
    """
    if method not in METHODS:
        raise ExplainError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if steps < 1:
        raise ExplainError(f"steps must be >= 1, got {steps}")
    forward = forward or forward_from_embeddings(model)
    inputs = {k: tf.cast(inputs[k], tf.int32) for k in ("token_ids", "segment_ids", "padding_mask")}
    embeddings = model.encoder.embeddings
    embedded = tf.cast(embeddings(inputs["token_ids"], inputs["segment_ids"], training=False), tf.float32)
    if isinstance(baseline, str) and baseline == "zeros":
        base = tf.zeros_like(embedded)
    else:
        base = tf.cast(embeddings(baseline, inputs["segment_ids"], training=False), tf.float32)
    difference = embedded - base
    dtype = embeddings.compute_dtype
    shape = tf.shape(embedded)
    batch = shape[0]

    def points(alphas):
        """The path at `alphas` `[n, batch]`, with the inputs tiled to match: `(path, tiled)`."""
        path = base[None] + alphas[:, :, None, None] * difference[None]
        n = tf.shape(alphas)[0]
        tiled = {k: tf.reshape(tf.tile(v[None], [n, 1, 1]), (-1, shape[1])) for k, v in inputs.items()}
        return path, tiled

    def values_at(path, tiled):
        n = tf.shape(path)[0]
        values = target_fn(forward(tiled, tf.cast(tf.reshape(path, (-1, shape[1], shape[2])), dtype)))
        return tf.reshape(tf.cast(values, tf.float32), (n, batch))

    def in_chunks(alphas, weights):
        size = int(batch_size) if batch_size else int(alphas.shape[0])
        return [(alphas[i:i + size], None if weights is None else weights[i:i + size])
                for i in range(0, int(alphas.shape[0]), size)]

    if method == "adaptive" and steps >= 2 * POINTS_PER_SEGMENT:
        # f along the path, forward only; its ends are f(baseline) and f(input).
        grid = tf.tile(tf.linspace(0.0, 1.0, PROBES + 1)[:, None], [1, batch])
        probe_values = tf.concat([values_at(*points(chunk)) for chunk, _ in in_chunks(grid, None)], axis=0)
        alphas, weights = adaptive_nodes(probe_values, steps)
        ends = tf.stack([probe_values[0], probe_values[-1]])
    else:
        nodes, node_weights = quadrature(steps)
        alphas = tf.tile(tf.constant(nodes)[:, None], [1, batch])
        weights = tf.tile(tf.constant(node_weights)[:, None], [1, batch])
        ends = values_at(*points(tf.tile(tf.constant([[0.0], [1.0]]), [1, batch])))
    total = tf.zeros_like(embedded)
    for chunk_alphas, chunk_weights in in_chunks(alphas, weights):
        with tf.GradientTape() as tape:
            path, tiled = points(chunk_alphas)
            tape.watch(path)
            values = values_at(path, tiled)
        gradients = tape.gradient(values, path)  # [n, batch, seq, hidden]
        total += tf.reduce_sum(chunk_weights[:, :, None, None] * gradients, axis=0)
    mask = tf.cast(inputs["padding_mask"], tf.float32)
    attributions = tf.reduce_sum(total * difference, axis=-1) * mask
    return {"attributions": attributions, "prediction": ends[1], "baseline_prediction": ends[0]}


# --------------------------------------------------------------------------- targets of each task kind

def _kind(model):
    from keras_bert import tasks

    try:
        kind = tasks.for_model(model).name
    except ValueError as error:
        raise ExplainError(str(error)) from None
    if kind not in TARGETS:
        raise ExplainError(f"a {kind} model ({type(model).__name__}) has no attribution target; "
                           f"Integrated Gradients explains {', '.join(TARGETS)} models")
    return kind


def _class_index(target, names, what):
    names = list(names)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if 0 <= int(target) < len(names):
            return int(target)
        raise ExplainError(f"target {target} is not a {what} id in [0, {len(names)})")
    if str(target) in names:
        return names.index(str(target))
    raise ExplainError(f"target {target!r} is not one of the model's {what}s {names}")


def class_names(model):
    """The class or tag names of a classification / token classification model (ids as names without labels)."""
    labels = getattr(model, "labels", None)
    return [str(label) for label in labels] if labels else [str(i) for i in range(int(model.num_classes))]


def resolve_target(model, outputs, target, kind=None, pair_embedding=None):
    """What to explain: `(target_fn, description)` for one packed example's `outputs` at the input.

    Args:
        model: the task model.
        outputs: the model's outputs at the input (batch of 1), numpy or Tensors.
        target: the caller's target (see `TARGETS`), or None for the default.
        kind: str or None. The model's task kind (None: looked up).
        pair_embedding: float32 `[hidden]` or None. The embedding kind's second text's embedding.

    Returns:
        tuple `(target_fn, info)`: `target_fn(outputs) -> [batch]`, and a dict describing the target
        (`target`: its name, plus `position` for token-level targets).
    """
    kind = kind or _kind(model)
    if kind == "classification":
        names = class_names(model)
        probabilities = _softmax(np.asarray(outputs, np.float64)[0])
        index = int(probabilities.argmax()) if target is None else _class_index(target, names, "label")
        return (lambda out: tf.nn.softmax(tf.cast(out, tf.float32), axis=-1)[:, index]), {
            "target": names[index], "target_index": index}
    if kind == "regression":
        if target not in (None, "score"):
            raise ExplainError(f"a regression model has one target, its score; got target {target!r}")
        return (lambda out: tf.reshape(tf.cast(out, tf.float32), (-1,))), {"target": "score"}
    if kind == "token_classification":
        names = class_names(model)
        probabilities = _softmax(np.asarray(outputs, np.float64)[0])  # [seq, tags]
        length = probabilities.shape[0]
        position, tag = (target if isinstance(target, (tuple, list)) else (None, target)) if target is not None \
            else (None, None)
        if position is None:
            # The most confident token that is not tagged "O" (else the first word piece).
            scores = np.where(np.array([n != "O" for n in names])[None, :], probabilities, 0.0)[1:-1].max(-1)
            position = int(scores.argmax()) + 1 if scores.size and scores.max() > 0 else 1
        if not (isinstance(position, (int, np.integer)) and 0 <= int(position) < length):
            raise ExplainError(f"target token {position!r} is not a token index in [0, {length})")
        position = int(position)
        index = int(probabilities[position].argmax()) if tag is None else _class_index(tag, names, "tag")
        return (lambda out: tf.nn.softmax(tf.cast(out, tf.float32), axis=-1)[:, position, index]), {
            "target": names[index], "target_index": index, "position": position}
    if kind == "question_answering":
        end = {None: "start", "start": "start", "end": "end"}.get(target)
        if end is None:
            raise ExplainError(f"a question answering model explains target 'start' or 'end', got {target!r}")
        key = f"{end}_logits"
        logits = np.asarray(outputs[key], np.float64)[0]
        position = int(logits.argmax())
        return (lambda out: tf.nn.softmax(tf.cast(out[key], tf.float32), axis=-1)[:, position]), {
            "target": end, "position": position}
    # embedding
    if pair_embedding is None:
        raise ExplainError("an embedding model explains the similarity of two texts: pass text_pair "
                           "(--text-pair) as the second text")
    if target is not None:
        raise ExplainError(f"an embedding model's target is the similarity to text_pair; got target {target!r}")
    other = tf.constant(np.asarray(pair_embedding, np.float32) / max(np.linalg.norm(pair_embedding), 1e-12))

    def cosine(out):
        out = tf.cast(out, tf.float32)
        return tf.reduce_sum(out * other[None], -1) / tf.maximum(tf.norm(out, axis=-1), 1e-12)

    return cosine, {"target": "cosine similarity to text_pair"}


def _softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- text, word pieces and words

def _preprocessor(model, tokenizer=None, sequence_length=None):
    preprocessor = getattr(model, "preprocessor", None)
    if tokenizer is None and preprocessor is None:
        raise ExplainError(f"{type(model).__name__} has no preprocessor: load a text-in model "
                           "(keras_bert.load of a training.finetune directory) or pass tokenizer=")
    tokenizer = tokenizer or preprocessor.tokenizer
    if sequence_length is None:
        sequence_length = preprocessor.sequence_length if preprocessor is not None else min(
            int(model.encoder.config.max_position_embeddings), 512)
    from keras_bert.tokenization import BertPacker

    return tokenizer, BertPacker.from_tokenizer(tokenizer, sequence_length=int(sequence_length), pad_to_longest=True)


def pack_with_offsets(tokenizer, packer, texts):
    """Packs one text (or a text pair) and returns the ids with each token's `(segment, start, end)` characters.

    Returns:
        tuple `(inputs, tokens, spans)`: numpy `[1, seq]` inputs; token strings; per token `(segment, start,
        end)` code-point offsets in its text, or None for `[CLS]`/`[SEP]`.
    """
    from keras_bert.tasks.question_answering import to_char_offsets
    from keras_bert.tokenization import keep_first

    pieces, spans = [], []
    for text in texts:
        ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant([text]))
        pieces.append((ids, to_char_offsets(tf.constant([text]), starts), to_char_offsets(tf.constant([text]), ends)))
    truncated = packer.truncate(tuple(tf.cast(p[0], tf.int32) for p in pieces))
    inputs = {k: np.asarray(v) for k, v in packer(truncated).items()}
    spans = [None]
    for segment, ((_, starts, ends), kept) in enumerate(zip(pieces, truncated)):
        n = int(kept.row_lengths()[0])
        starts = np.asarray(keep_first(starts, [n]).flat_values)
        ends = np.asarray(keep_first(ends, [n]).flat_values)
        spans += [(segment, int(s), int(e)) for s, e in zip(starts, ends)] + [None]
    vocabulary = tokenizer.get_vocabulary()
    tokens = [vocabulary[int(i)] for i in inputs["token_ids"][0]]
    assert len(tokens) == len(spans), (tokens, spans)
    return inputs, tokens, spans


def group_words(tokens, spans, values, texts):
    """Sums word-piece values to words (a piece and the `##` pieces after it), with each word's offsets.

    Returns:
        tuple `(words, word_values, word_spans)`: word strings (the text's own characters), summed values,
        `(segment, start, end)` code-point offsets.
    """
    words, word_values, word_spans = [], [], []
    for token, span, value in zip(tokens, spans, values):
        if span is None:
            continue
        segment, start, end = span
        if token.startswith("##") and word_spans and word_spans[-1][0] == segment:
            word_values[-1] += float(value)
            word_spans[-1] = (segment, word_spans[-1][1], end)
        else:
            word_values.append(float(value))
            word_spans.append((segment, start, end))
    words = [texts[segment][start:end] for segment, start, end in word_spans]
    return words, word_values, word_spans


# --------------------------------------------------------------------------- the library entry point

def integrated_gradients(model, text, text_pair=None, target=None, steps=50, baseline="pad", batch_size=16,
                         tokenizer=None, sequence_length=None, method="adaptive"):
    """Integrated Gradients of one prediction of a text-in task model, per word piece and per word.

    Args:
        model: keras_bert task model with a preprocessor (`keras_bert.load` of a `training.finetune` output),
            or any task model with `tokenizer`.
        text: str. The text (question answering: the question).
        text_pair: str or None. The second text of a pair (question answering: the context; embedding: the
            text whose embedding the similarity is to).
        target: what to explain (see `TARGETS`): a class name or id (classification, default the predicted
            class), `(token index, tag)` (token classification, default the most confident entity token),
            `"start"`/`"end"` (question answering), None (regression, embedding).
        steps: int. Gradient evaluations of the path integral.
        baseline: str. `"pad"` (`[PAD]` between the special tokens), `"mask"` (`[MASK]` there) or `"zeros"`
            (a zero embedding output).
        batch_size: int. Interpolation points per forward pass.
        tokenizer: `BertTokenizer` or None. For a model without a preprocessor.
        sequence_length: int or None. Truncation length (default: the preprocessor's).
        method: str. The quadrature: `"adaptive"` or `"gausslegendre"` (see `integrate`).

    Returns:
        dict: `kind`, `target` (name), `tokens`, `token_spans` (`(segment, start, end)` or None), `attributions`
        (per token, float), `words`, `word_attributions`, `word_spans` (`(segment, start, end)` code points of
        each word in its text: `(text, text_pair)[segment][start:end] == word`), `prediction` (the target output
        at the text), `baseline_prediction`, `completeness_delta` (sum of attributions - (prediction -
        baseline_prediction)), `inputs` (the packed ids), `outputs` (the model's outputs at the text), `steps`,
        `baseline`.

    Raises:
        ExplainError: an empty text, an unknown target or baseline, or a model kind with no target.
    """
    kind = _kind(model)
    if baseline not in BASELINES:
        raise ExplainError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    for name, value in (("text", text), ("text_pair", text_pair)):
        if value is not None and not str(value).strip():
            raise ExplainError(f"{name} is empty: there is nothing to explain")
    if text is None:
        raise ExplainError("text is empty: there is nothing to explain")
    tokenizer, packer = _preprocessor(model, tokenizer, sequence_length)
    pair_embedding = None
    if kind == "embedding":
        texts = (str(text),)
        if text_pair is not None:
            pair_inputs, _, _ = pack_with_offsets(tokenizer, packer, (str(text_pair),))
            pair_embedding = np.asarray(model(pair_inputs, training=False))[0]
    else:
        texts = (str(text),) if text_pair is None else (str(text), str(text_pair))
    inputs, tokens, spans = pack_with_offsets(tokenizer, packer, texts)
    if len(tokens) <= 2 + (len(texts) - 1):
        raise ExplainError("text has no word pieces (only spaces or control characters): nothing to explain")
    outputs = keras.tree.map_structure(np.asarray, model(inputs, training=False))
    target_fn, info = resolve_target(model, outputs, target, kind, pair_embedding)
    result = integrate(model, inputs, _baseline(tokenizer, inputs, baseline), target_fn, steps=steps,
                       batch_size=batch_size, method=method)
    attributions = np.asarray(result["attributions"])[0].astype(np.float64)
    prediction, baseline_prediction = float(result["prediction"][0]), float(result["baseline_prediction"][0])
    words, word_attributions, word_spans = group_words(tokens, spans, attributions, texts)
    return dict(
        info, kind=kind, tokens=tokens, token_spans=spans, attributions=attributions.tolist(), words=words,
        word_attributions=word_attributions, word_spans=word_spans, texts=list(texts), prediction=prediction,
        baseline_prediction=baseline_prediction,
        completeness_delta=float(attributions.sum() - (prediction - baseline_prediction)),
        inputs=inputs, outputs=outputs, steps=int(steps), baseline=baseline, method=method)


def attention_maps(model, inputs):
    """Every layer's attention probabilities for packed `inputs`: numpy `[layers, batch, heads, seq, seq]`."""
    encoder = model.encoder if hasattr(model, "encoder") else model
    return np.stack([np.asarray(a) for a in encoder.attentions({k: tf.constant(v) for k, v in inputs.items()})])


# --------------------------------------------------------------------------- in the TF graph: the `explain` signature

SERVED_KINDS = ("classification", "regression")


def explain_texts(module, texts, steps=50, baseline="pad"):
    """Integrated Gradients of a batch of raw texts inside the TF graph: the export's `explain` signature.

    Explains the predicted class's probability (classification) or the score (regression), with the same
    tokenizer, baseline and quadrature as `integrated_gradients`, so the numbers agree with the library.

    Args:
        module: `keras_bert.export.ServingModule` (its tokenizer, packer, model, vocabulary).
        texts: dict of tf.string Tensors `[batch]` keyed by `module.text_inputs`.
        steps: int. Quadrature points (all run in one forward pass per request).
        baseline: str. `"pad"`, `"mask"` or `"zeros"`.

    Returns:
        dict of dense Tensors: `tokens` `[batch, seq]` (empty strings at padding), `token_attributions`
        `[batch, seq]`, `words` `[batch, words]` (the input's own characters; empty strings pad),
        `word_attributions`, `word_starts`, `word_ends` (code points, end exclusive; -1 pads), `word_segments`
        (0: text, 1: text_pair), `prediction` (the explained output), `baseline_prediction`,
        `completeness_delta` `[batch]`, and `label` (classification) `[batch]`.
    """
    from keras_bert.tasks.question_answering import to_char_offsets
    from keras_bert.tokenization import keep_first

    kind = module.task
    if kind not in SERVED_KINDS:
        raise ValueError(f"--explain applies to {', '.join(SERVED_KINDS)} exports, not {kind!r}")
    tokenizer, packer, model = module.tokenizer, module.packer, module.model
    strings = [texts[name] for name in module.text_inputs]
    pieces = [tokenizer.tokenize_with_offsets(s) for s in strings]
    segments = packer.truncate(tuple(tf.cast(ids, tf.int32) for ids, _, _ in pieces))
    inputs = packer(segments if len(segments) == 2 else segments[0])
    inputs = {k: tf.cast(v, tf.int32) for k, v in inputs.items()}
    length = tf.shape(inputs["token_ids"])[1]

    # Per packed position: segment, byte and character span (-1 at [CLS], [SEP] and padding), as the packer lays out.
    def packed(values_per_segment, fill):
        batch = tf.shape(inputs["token_ids"])[0]
        column = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(fill, tf.int64)))
        parts = [column]
        for values in values_per_segment:
            parts += [tf.cast(values, tf.int64), column]
        dense = tf.concat(parts, axis=1).to_tensor(default_value=fill)
        return dense[:, :length]

    kept = [tuple(keep_first(v, seg.row_lengths()) for v in (starts, ends)) for seg, (_, starts, ends)
            in zip(segments, pieces)]
    byte_starts = packed([s for s, _ in kept], -1)
    byte_ends = packed([e for _, e in kept], -1)
    char_starts = packed([to_char_offsets(text, s) for text, (s, _) in zip(strings, kept)], -1)
    char_ends = packed([to_char_offsets(text, e) for text, (_, e) in zip(strings, kept)], -1)
    real = byte_starts >= 0

    # The target: the predicted class's probability, or the score.
    outputs = tf.cast(model(inputs, training=False), tf.float32)
    if kind == "classification":
        index = tf.argmax(outputs, axis=-1, output_type=tf.int32)

        def target_fn(out):
            rows = tf.tile(index, [tf.shape(out)[0] // tf.shape(index)[0]])
            return tf.gather(tf.nn.softmax(tf.cast(out, tf.float32), axis=-1), rows, batch_dims=1)
    else:
        def target_fn(out):
            return tf.reshape(tf.cast(out, tf.float32), (-1,))

    result = integrate(model, inputs, _baseline(tokenizer, inputs, baseline), target_fn, steps=steps)
    attributions = result["attributions"]  # [CLS]/[SEP] keep theirs (zero unless the baseline is zeros).

    # Words: a piece that is not a "##" continuation starts one; sums, spans and text per word.
    continuation = tf.gather(tf.constant(module.is_continuation), inputs["token_ids"])
    starts_word = real & ~(continuation & tf.concat([tf.zeros_like(real[:, :1]), real[:, :-1]], axis=1))
    word_index = tf.cumsum(tf.cast(starts_word, tf.int32), axis=1) - 1
    num_words = tf.reduce_max(tf.concat([tf.reduce_sum(tf.cast(starts_word, tf.int32), axis=1), [0]], 0))
    batch = tf.shape(inputs["token_ids"])[0]
    flat = tf.where(real, word_index + tf.range(batch)[:, None] * length, batch * length)  # Non-real: a spare slot.
    slots = batch * length + 1

    def per_word(values, reduce, empty):
        dense = reduce(tf.reshape(values, (-1,)), tf.reshape(flat, (-1,)), slots)[:-1]
        dense = tf.reshape(dense, (batch, length))[:, :num_words]
        has = tf.range(num_words)[None, :] < tf.reduce_sum(tf.cast(starts_word, tf.int32), axis=1)[:, None]
        return tf.where(has, dense, tf.cast(empty, dense.dtype))

    word_attributions = per_word(attributions, tf.math.unsorted_segment_sum, 0.0)
    big = tf.constant(2 ** 62, tf.int64)
    word_byte_starts = per_word(tf.where(real, byte_starts, big), tf.math.unsorted_segment_min, -1)
    word_byte_ends = per_word(byte_ends, tf.math.unsorted_segment_max, -1)
    word_starts = per_word(tf.where(real, char_starts, big), tf.math.unsorted_segment_min, -1)
    word_ends = per_word(char_ends, tf.math.unsorted_segment_max, -1)
    segment_of_token = tf.where(real, inputs["segment_ids"], 0)
    word_segments = per_word(segment_of_token, tf.math.unsorted_segment_max, -1)
    has_word = word_starts >= 0
    words = tf.zeros_like(word_starts, tf.string)
    for segment, text in enumerate(strings):
        repeated = tf.repeat(text[:, None], tf.shape(word_starts)[1], axis=1)
        mine = has_word & tf.equal(word_segments, segment)
        piece = tf.strings.substr(repeated, tf.where(mine, word_byte_starts, 0),
                                  tf.where(mine, word_byte_ends - word_byte_starts, 0), unit="BYTE")
        words = tf.where(mine, piece, words)

    vocabulary = tf.constant(module.vocabulary)
    tokens = tf.where(tf.cast(inputs["padding_mask"], tf.bool), tf.gather(vocabulary, inputs["token_ids"]), "")
    served = {
        "tokens": tokens,
        "token_attributions": attributions,
        "words": words,
        "word_attributions": word_attributions,
        "word_starts": tf.cast(word_starts, tf.int32),
        "word_ends": tf.cast(word_ends, tf.int32),
        "word_segments": tf.cast(word_segments, tf.int32),
        "prediction": result["prediction"],
        "baseline_prediction": result["baseline_prediction"],
        "completeness_delta": tf.reduce_sum(attributions, axis=1) - (result["prediction"] - result["baseline_prediction"]),
    }
    if kind == "classification":
        served["label"] = tf.gather(tf.constant(module.class_names), index)
    return served
