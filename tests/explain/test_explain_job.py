"""`python -m training.explain`: the self-contained HTML report, the --file index, the projector files (read back
by a real TensorBoard server on 127.0.0.1) and one-line errors."""

import html.parser
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from training import explain as job

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Page(html.parser.HTMLParser):
    """Collects tags, attributes and the ids of the elements around them."""

    def __init__(self):
        super().__init__()
        self.tags, self.stack, self.words, self.svgs, self.links = [], [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "span" and attrs.get("class") == "w":
            self.words.append(attrs)
        if tag == "svg":
            self.svgs += 1
        if tag == "a":
            self.links.append(attrs.get("href"))


def _parse(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    page = _Page()
    page.feed(text)
    return text, page


def _assert_self_contained(text, page):
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", text), "the report references an external URL"
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}, tags
    for tag, attrs in page.tags:
        assert not {"src", "srcset"} & set(attrs), (tag, attrs)
        assert not str(attrs.get("href", "")).startswith(("http", "//")), (tag, attrs)
    assert "url(" not in text and "@import" not in text


def test_report_structure_and_no_external_url(saved_classifier, tiny_models, tmp_path):
    out = tmp_path / "report.html"
    job.main(["--model", saved_classifier, "--text", "The unbelievably good film, by Émile!", "--target", "pos",
              "--out", str(out), "--steps", "20"])
    text, page = _parse(out)
    _assert_self_contained(text, page)
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert {"prediction", "attribution", "top-tokens", "attention"} <= ids
    assert "predicted label" in text and "P(pos)" in text and "completeness delta" in text
    # One coloured span per word, in order, each titled with its attribution; a legend with the colour bar.
    titles = [w["title"] for w in page.words]
    assert [t.split(":")[0] for t in titles] == ["The", "unbelievably", "good", "film", ",", "by", "Émile", "!"]
    colours = {w["style"] for w in page.words}
    assert len(colours) > 1 and 'class="legend"' in text and 'class="bar"' in text
    # The attention grid: one SVG per layer and head (tiny model: 2 x 2).
    assert page.svgs == 2 * 2
    assert text.count("<figcaption>layer ") == 4
    # The numbers shown are the library's.
    from keras_bert import explain

    result = explain.integrated_gradients(tiny_models["classification"], "The unbelievably good film, by Émile!",
                                          target="pos", steps=20)
    assert [float(t.split(":")[1]) for t in titles] == pytest.approx(result["word_attributions"], abs=1e-4)


def test_file_gives_one_index_page(saved_classifier, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("the film is good\n\na dull plot\tnot great\nwitty !\n", encoding="utf-8")
    out = tmp_path / "reports"
    job.main(["--model", saved_classifier, "--file", str(texts), "--out", str(out), "--steps", "4"])
    text, page = _parse(out / "index.html")
    _assert_self_contained(text, page)
    assert page.links == ["text_00001.html", "text_00003.html", "text_00004.html"]
    for link in page.links:
        report, report_page = _parse(out / link)
        _assert_self_contained(report, report_page)
    _, pair = _parse(out / "text_00003.html")
    assert [w["title"].split(":")[0] for w in pair.words] == ["a", "dull", "plot", "not", "great"]


def test_projector_files_are_what_tensorboard_serves(saved_classifier, tiny_models, tmp_path):
    texts = ["the film is good", "a dull plot", "witty and great", "not a good movie"]
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "projector"
    job.main(["--model", saved_classifier, "--projector", "--file", str(path), "--out", str(out)])
    names = set(os.listdir(out))
    assert {"metadata.tsv", "projector_config.pbtxt", "vectors.tsv", "checkpoint"} <= names, names
    metadata = (out / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert metadata[0] == "text\tprediction" and [m.split("\t")[0] for m in metadata[1:]] == texts
    model = tiny_models["classification"]
    predicted = np.asarray(model.predict(texts, verbose=0)).argmax(-1)
    assert [m.split("\t")[1] for m in metadata[1:]] == [model.labels[i] for i in predicted]
    vectors = np.loadtxt(out / "vectors.tsv", delimiter="\t", ndmin=2)
    from keras_bert import tasks

    expected = np.asarray(tasks.get("embedding").check_model(model)(model.preprocessor(texts)))
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    config = (out / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "embedding/.ATTRIBUTES/VARIABLE_VALUE"' in config and 'metadata_path: "metadata.tsv"' in config

    # A real TensorBoard reads them back through its projector plugin.
    from serving.testing import free_port

    port = free_port()
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", str(out),
                               "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/data/plugin/projector"
        deadline, runs = time.time() + 120, None
        while time.time() < deadline:
            try:
                runs = json.load(urllib.request.urlopen(f"{base}/runs", timeout=5))
                if runs:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert runs, "TensorBoard's projector plugin lists no run"
        run = runs[0]
        info = json.load(urllib.request.urlopen(f"{base}/info?run={run}", timeout=30))
        assert info["embeddings"][0]["tensorShape"] == list(expected.shape)
        tensor = urllib.request.urlopen(
            f"{base}/tensor?run={run}&name=embedding/.ATTRIBUTES/VARIABLE_VALUE", timeout=30).read()
        np.testing.assert_allclose(np.frombuffer(tensor, "<f4").reshape(expected.shape), expected, atol=1e-5)
        served = urllib.request.urlopen(f"{base}/metadata?run={run}&name=embedding/.ATTRIBUTES/VARIABLE_VALUE",
                                        timeout=30).read().decode("utf-8")
        assert served.splitlines() == metadata
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_bad_target_is_one_line_and_exit_2(saved_classifier):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    result = subprocess.run([sys.executable, "-m", "training.explain", "--model", saved_classifier, "--text", "good",
                             "--target", "great"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: --target 'great' is not one of the model's labels ['neg', 'neu', 'pos']"], \
        result.stderr[-2000:]


@pytest.mark.parametrize("args,message", [
    (["--text", "  "], "text is empty: there is nothing to explain"),
    (["--text", "good", "--text-pair", ""], "text_pair is empty"),
    (["--text", "good", "--baseline", "noise"], "key 'baseline' must be one of pad, mask, zeros"),
    (["--projector", "--out", "x"], "--projector needs --file"),
])
def test_bad_input_is_a_config_error(saved_classifier, args, message):
    with pytest.raises(job.ConfigError, match=re.escape(message)) as error:
        job.main(["--model", saved_classifier, *args])
    assert "\n" not in str(error.value)


def test_file_errors_name_the_line_and_kind_errors(tiny_models, tmp_path):
    import keras_bert

    texts = tmp_path / "texts.txt"
    texts.write_text("good\n\t\tpair only\n", encoding="utf-8")
    with pytest.raises(job.ConfigError, match=r"texts.txt:2: the text before the tab is empty"):
        job.read_texts(str(texts))
    directory = str(tmp_path / "pretrainer")
    keras_bert.save(tiny_models["fill_mask"], directory)
    with pytest.raises(job.ConfigError, match=r"a fill_mask model \(BertPretrainer\) has no attribution target"):
        job.main(["--model", directory, "--text", "the film is [MASK]"])
