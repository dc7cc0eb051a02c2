"""Explains a model's predictions as pictures: one self-contained HTML report, or TensorBoard projector files.

    python -m training.explain --model DIR --text "a gorgeous, witty film" [--target LABEL] [--out report.html]
    python -m training.explain --model DIR --text "Who wrote it?" --text-pair "Ann wrote it." --target end
    python -m training.explain --model DIR --file texts.txt --out DIR2          # DIR2/index.html + one page a text
    python -m training.explain --model DIR --projector --file texts.txt --out DIR3 && tensorboard --logdir DIR3

`--model` is a text-in model directory (`training.finetune` output, or `keras_bert.save` of a text-in model).
A report shows the prediction, the text coloured by Integrated Gradients attribution (`keras_bert.explain`;
diverging colours with a legend), the top word pieces and a grid of attention maps (one per layer and head,
inline SVG). It loads nothing from the network. `--file` takes one text a line (`text<TAB>pair` for pairs).
`--target` is a label (classification), `INDEX:TAG` or `INDEX` (token classification: token index in the
report's token list), `start` or `end` (question answering). With `--projector`, `--out DIR3` gets the
sentence embeddings (a checkpoint and `vectors.tsv`), `metadata.tsv` (text and prediction) and
`projector_config.pbtxt`.
"""

import dataclasses
import html
import json
import os
import typing

import numpy as np

from keras_bert.trainer import ConfigError, run
from keras_bert.trainer.config import JobArgumentParser, add_config_flags, load_config


@dataclasses.dataclass(frozen=True)
class ExplainConfig:
    """The explanation job's config.

    Args:
        model: str or None. A text-in model directory.
        text: str or None. The text to explain (question answering: the question).
        text_pair: str or None. Its second text (question answering: the context; embedding: the text compared).
        target: str or None. What to explain; None: the prediction (see the module docstring).
        file: str or None. Texts, one a line (`text<TAB>pair` for pairs).
        out: str or None. The report (a .html file for --text; a directory for --file and --projector).
        steps: int. Integrated Gradients quadrature points.
        baseline: str. The IG baseline.
        batch_size: int. Interpolation points per forward pass.
        max_attention_tokens: int. Attention maps show at most this many tokens.
    """

    choices = {"baseline": ("pad", "mask", "zeros")}

    model: typing.Optional[str] = None
    text: typing.Optional[str] = None
    text_pair: typing.Optional[str] = None
    target: typing.Optional[str] = None
    file: typing.Optional[str] = None
    out: typing.Optional[str] = None
    steps: int = 50
    baseline: str = "pad"
    batch_size: int = 16
    max_attention_tokens: int = 64


def parse_args(argv=None):
    """`(ExplainConfig, projector flag)` from the command line."""
    parser = JobArgumentParser(prog="python -m training.explain", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file of ExplainConfig keys (flags override it)")
    add_config_flags(parser, ExplainConfig)
    for action in parser._actions:  # Free text stays the string given (YAML would read "  " as null, "1" as 1).
        if action.dest in ("text", "text_pair", "target"):
            action.type = str
    parser.add_argument("--projector", action="store_true",
                        help="write TensorBoard projector files of the --file texts' embeddings to --out")
    args = vars(parser.parse_args(argv))
    projector = args.pop("projector")
    return load_config(ExplainConfig, args.pop("config"), args), projector


# --------------------------------------------------------------------------- input

def read_texts(path):
    """`[(line number, text, pair or None)]` of a text file, one text a line; blank lines are skipped."""
    if not os.path.exists(path):
        raise ConfigError(f"--file: file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            text, _, pair = line.partition("\t")
            if not text.strip():
                raise ConfigError(f"{path}:{number}: the text before the tab is empty")
            rows.append((number, text, pair if pair.strip() else None))
    if not rows:
        raise ConfigError(f"{path}: no texts (one a line)")
    return rows


def parse_target(model, kind, target):
    """The `integrated_gradients` target for a `--target` string (None stays None)."""
    if target is None:
        return None
    if kind == "token_classification":
        index, _, tag = target.partition(":")
        if not index.strip().isdigit():
            raise ConfigError(f"--target {target!r}: token classification takes INDEX or INDEX:TAG")
        return (int(index), tag or None)
    if kind == "classification":
        from keras_bert.explain import class_names

        names = class_names(model)
        if target in names:
            return target
        if target.isdigit() and int(target) < len(names):
            return int(target)
        raise ConfigError(f"--target {target!r} is not one of the model's labels {names}")
    return target


def load_model(directory):
    """The text-in model of `directory`, or a `ConfigError` naming it."""
    import keras_bert

    if not directory:
        raise ConfigError("--model is required")
    if not os.path.isdir(directory):
        raise ConfigError(f"--model: not a directory: {directory}")
    model = keras_bert.load(directory)
    if getattr(model, "preprocessor", None) is None:
        raise ConfigError(f"--model {directory}: not a text-in model (no preprocessor); use a training.finetune "
                          "output directory")
    return model


# --------------------------------------------------------------------------- HTML

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table.kv td { padding: 2px 12px 2px 0; } table.top td, table.top th { padding: 2px 10px; text-align: left; }
.text { font-size: 20px; line-height: 2.1; max-width: 1100px; }
.text span.w { padding: 2px 1px; border-radius: 3px; }
.legend { display: flex; align-items: center; gap: 8px; font-size: 13px; margin: 8px 0; }
.bar { width: 240px; height: 14px; border: 1px solid #aaa;
       background: linear-gradient(to right, rgb(214,39,40), rgb(255,255,255), rgb(31,119,180)); }
.grid { display: grid; gap: 6px; } .grid figure { margin: 0; text-align: center; font-size: 11px; }
.note { color: #666; font-size: 13px; } .delta-bad { color: #b00; font-weight: bold; }
"""


def _colour(value, scale):
    """Diverging colour: red for negative, blue for positive attribution, white at zero."""
    t = 0.0 if scale <= 0 else max(-1.0, min(1.0, value / scale))
    low, high = (214, 39, 40), (31, 119, 180)
    end = high if t > 0 else low
    a = abs(t)
    rgb = tuple(int(round(255 + (c - 255) * a)) for c in end)
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def coloured_text(texts, words, values, spans):
    """The input text(s) as HTML, each word's background coloured by its attribution."""
    scale = max([abs(v) for v in values] + [0.0])
    parts = []
    for segment, text in enumerate(texts):
        cursor, out = 0, []
        for word, value, (seg, start, end) in zip(words, values, spans):
            if seg != segment:
                continue
            out.append(html.escape(text[cursor:start]))
            out.append(f'<span class="w" style="background:{_colour(value, scale)}" '
                       f'title="{html.escape(word)}: {value:+.4f}">{html.escape(text[start:end])}</span>')
            cursor = end
        out.append(html.escape(text[cursor:]))
        label = ("text", "text pair")[segment] if len(texts) > 1 else None
        parts.append((f'<div class="note">{label}</div>' if label else "") + f'<div class="text">{"".join(out)}</div>')
    legend = (f'<div class="legend"><span>{-scale:+.3g} (against)</span><span class="bar"></span>'
              f'<span>{scale:+.3g} (for the target)</span></div>')
    return legend + "".join(parts)


def attention_svg(probs, tokens, size=150):
    """One attention map `[seq, seq]` (rows: queries, columns: keys) as an inline SVG heat map."""
    n = probs.shape[0]
    cell = size / max(n, 1)
    rects = []
    for i in range(n):
        for j in range(n):
            v = float(probs[i, j])
            if v < 0.01:
                continue  # White background.
            shade = int(round(255 * (1.0 - min(v, 1.0))))
            rects.append(f'<rect x="{j * cell:.2f}" y="{i * cell:.2f}" width="{cell:.2f}" height="{cell:.2f}" '
                         f'fill="rgb({shade},{shade},255)"/>')
    return (f'<svg width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
            f'class="attention"><rect width="{size}" height="{size}" fill="white" stroke="#bbb"/>{"".join(rects)}'
            f'<title>{html.escape(" ".join(tokens))}</title></svg>')


def attention_grid(maps, tokens, max_tokens):
    """`[layers, heads, seq, seq]` maps as a grid of SVGs: a row per layer, a column per head."""
    layers, heads, n = maps.shape[0], maps.shape[1], maps.shape[-1]
    shown = min(n, max_tokens)
    size = max(60, min(150, 1100 // heads - 6))  # A row of heads fits a 1200 pixel window.
    cells = []
    for layer in range(layers):
        for head in range(heads):
            cells.append(f'<figure>{attention_svg(maps[layer, head, :shown, :shown], tokens[:shown], size)}'
                         f'<figcaption>layer {layer + 1}, head {head + 1}</figcaption></figure>')
    note = f" (first {shown} of {n} tokens)" if shown < n else ""
    return (f'<p class="note">Rows: the attending token (query); columns: the attended token (key); darker is more '
            f'attention{note}. Tokens: {html.escape(" ".join(tokens[:shown]))}</p>'
            f'<div class="grid" style="grid-template-columns: repeat({heads}, {size + 6}px)">{"".join(cells)}</div>')


def prediction_rows(model, result):
    """`[(name, value)]` describing the model's prediction at the text."""
    from keras_bert.explain import _softmax, class_names

    kind, outputs = result["kind"], result["outputs"]
    rows = []
    if kind == "classification":
        probabilities = _softmax(np.asarray(outputs, np.float64)[0])
        names = class_names(model)
        rows.append(("predicted label", names[int(probabilities.argmax())]))
        rows += [(f"P({name})", f"{p:.4f}") for name, p in zip(names, probabilities)]
    elif kind == "regression":
        rows.append(("score", f"{float(np.asarray(outputs).reshape(-1)[0]):.4f}"))
    elif kind == "token_classification":
        names = class_names(model)
        tags = np.asarray(outputs)[0].argmax(-1)
        rows.append(("tags", " ".join(f"{t}/{names[int(g)]}" for t, g in zip(result["tokens"], tags))))
    elif kind == "question_answering":
        rows.append(("answer token", f'{result["tokens"][result["position"]]} (token {result["position"]})'))
    return rows


def render_report(model, result, maps, model_dir, max_tokens=64):
    """One self-contained HTML page (inline CSS and SVG, no script, no external reference)."""
    delta = result["completeness_delta"]
    change = result["prediction"] - result["baseline_prediction"]
    relative = abs(delta) / max(abs(change), 1e-12)
    target = result["target"] + (f' at token {result["position"]} ({result["tokens"][result["position"]]})'
                                 if "position" in result else "")
    info = [("model", model_dir), ("task", result["kind"]), *prediction_rows(model, result),
            ("explained output", target), ("f(text)", f'{result["prediction"]:.6f}'),
            (f'f(baseline: {result["baseline"]})', f'{result["baseline_prediction"]:.6f}'),
            ("completeness delta", f'{delta:+.2e} ({100 * relative:.2f}% of |f(text) - f(baseline)|)'),
            ("Integrated Gradients steps", f'{result["steps"]} ({result["method"]} quadrature)')]
    bad = ' class="delta-bad"'
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td{bad if k == 'completeness delta' and relative > 0.05 else ''}>"
                   f"{html.escape(str(v))}</td></tr>" for k, v in info)
    order = sorted((i for i, s in enumerate(result["token_spans"]) if s is not None),
                   key=lambda i: -abs(result["attributions"][i]))[:10]
    top = "".join(f'<tr><td>{rank + 1}</td><td>{html.escape(result["tokens"][i])}</td><td>{i}</td>'
                  f'<td style="background:{_colour(result["attributions"][i], max(abs(result["attributions"][j]) for j in order))}">'
                  f'{result["attributions"][i]:+.4f}</td></tr>' for rank, i in enumerate(order))
    title = html.escape(result["texts"][0][:80])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Explanation: {title}</title><style>{STYLE}</style></head>
<body>
<h1>Why the model predicted this</h1>
<table class="kv" id="prediction">{rows}</table>
<h2>Attribution per word (Integrated Gradients)</h2>
<div id="attribution">{coloured_text(result["texts"], result["words"], result["word_attributions"], result["word_spans"])}</div>
<p class="note">A word's attribution is the sum over its word pieces of the gradient of the explained output along
the path from the baseline to the text, times the change of its embedding (completeness: the attributions add up to
f(text) - f(baseline)).</p>
<h2>Top word pieces</h2>
<table class="top" id="top-tokens"><tr><th>#</th><th>token</th><th>position</th><th>attribution</th></tr>{top}</table>
<h2>Attention maps (per layer and head)</h2>
<div id="attention">{attention_grid(maps[:, 0], result["tokens"], max_tokens)}</div>
</body></html>
"""


def render_index(entries):
    """The index page of a `--file` run: one row per text, linking its report."""
    rows = "".join(
        f'<tr><td>{number}</td><td><a href="{html.escape(page)}">{html.escape(text[:120])}</a></td>'
        f'<td>{html.escape(str(target))}</td><td>{prediction:.4f}</td><td>{delta:+.2e}</td></tr>'
        for number, page, text, target, prediction, delta in entries)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Explanations</title><style>{STYLE}</style></head>
<body><h1>Explanations ({len(entries)} texts)</h1>
<table class="top" id="index"><tr><th>line</th><th>text</th><th>explained output</th><th>f(text)</th>
<th>completeness delta</th></tr>{rows}</table></body></html>
"""


def explain_one(model, config, text, pair, target):
    """`(result, attention maps)` of one text, `ExplainError`s as `ConfigError`s."""
    from keras_bert import explain

    try:
        result = explain.integrated_gradients(model, text, text_pair=pair, target=target, steps=config.steps,
                                              baseline=config.baseline, batch_size=config.batch_size)
    except explain.ExplainError as error:
        raise ConfigError(str(error)) from None
    return result, explain.attention_maps(model, result["inputs"])


def _write(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# --------------------------------------------------------------------------- projector

def write_projector(model, rows, out, batch_size=32):
    """Sentence embeddings of `rows` for TensorBoard's projector: checkpoint, vectors.tsv, metadata.tsv, config.

    The embedding is the model's own for an embedding model, else the mean of its encoder's last hidden states
    over real tokens; `metadata.tsv` has the text and the model's prediction.
    """
    import tensorflow as tf
    from tensorboard.plugins import projector

    from keras_bert import tasks

    kind = tasks.for_model(model).name
    embedder = tasks.get("embedding").check_model(model)
    texts = [text for _, text, _ in rows]
    pairs = [pair for _, _, pair in rows]
    vectors, predictions = [], []
    for start in range(0, len(rows), batch_size):
        chunk = texts[start:start + batch_size]
        inputs = model.preprocessor(chunk)
        vectors.append(np.asarray(embedder(inputs, training=False), np.float32))
        if kind in ("classification", "regression"):
            if any(pairs[start:start + batch_size]):
                inputs = model.preprocessor((chunk, [p or "" for p in pairs[start:start + batch_size]]))
            outputs = np.asarray(model(inputs, training=False))
            if kind == "classification":
                from keras_bert.explain import class_names

                names = class_names(model)
                predictions += [names[int(i)] for i in outputs.argmax(-1)]
            else:
                predictions += [f"{float(v):.4f}" for v in outputs.reshape(-1)]
    vectors = np.concatenate(vectors)
    os.makedirs(out, exist_ok=True)
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(vectors, name="embedding"))
    checkpoint.save(os.path.join(out, "embedding.ckpt"))
    with open(os.path.join(out, "vectors.tsv"), "w", encoding="utf-8") as f:
        f.writelines("\t".join(f"{v:.6g}" for v in row) + "\n" for row in vectors)
    clean = [" ".join(t.split()) for t in texts]
    with open(os.path.join(out, "metadata.tsv"), "w", encoding="utf-8") as f:
        if predictions:
            f.write("text\tprediction\n")
            f.writelines(f"{t}\t{p}\n" for t, p in zip(clean, predictions))
        else:  # One column: no header line (TensorBoard's rule).
            f.writelines(f"{t}\n" for t in clean)
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(out, config)
    return vectors


# --------------------------------------------------------------------------- main

def main(argv=None):
    config, use_projector = parse_args(argv)
    model = load_model(config.model)
    from keras_bert import tasks

    kind = tasks.for_model(model).name
    if use_projector:
        if not config.file or not config.out:
            raise ConfigError("--projector needs --file (the texts) and --out (a directory)")
        rows = read_texts(config.file)
        vectors = write_projector(model, rows, config.out)
        print(f"[explain] {len(rows)} embeddings ({vectors.shape[1]} dims) for the projector in {config.out}: "
              f"tensorboard --logdir {config.out}")
        return config.out
    target = parse_target(model, kind, config.target)
    if config.file:
        if config.text is not None:
            raise ConfigError("give --text or --file, not both")
        out = config.out or "explanations"
        entries = []
        for number, text, pair in read_texts(config.file):
            try:
                result, maps = explain_one(model, config, text, pair, target)
            except ConfigError as error:
                raise ConfigError(f"{config.file}:{number}: {error}") from None
            page = f"text_{number:05d}.html"
            _write(os.path.join(out, page), render_report(model, result, maps, config.model, config.max_attention_tokens))
            entries.append((number, page, text, result["target"], result["prediction"], result["completeness_delta"]))
        _write(os.path.join(out, "index.html"), render_index(entries))
        print(f"[explain] {len(entries)} reports: {os.path.join(out, 'index.html')}")
        return os.path.join(out, "index.html")
    if config.text is None:
        raise ConfigError("--text (or --file) is required")
    result, maps = explain_one(model, config, config.text, config.text_pair, target)
    out = config.out or "report.html"
    _write(out, render_report(model, result, maps, config.model, config.max_attention_tokens))
    print(f"[explain] {result['kind']} {result['target']}: f={result['prediction']:.4f} "
          f"baseline={result['baseline_prediction']:.4f} delta={result['completeness_delta']:+.2e}; "
          + json.dumps(dict(zip(result["words"], np.round(result["word_attributions"], 4).tolist()))) + f" -> {out}")
    return out


if __name__ == "__main__":
    run(main)
