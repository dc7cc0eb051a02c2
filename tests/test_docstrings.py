"""The `>>>` examples in the docstrings of keras_bert, training and serving run and print what they show.

Only modules whose source holds a `>>>` are imported (found by reading the files, so collection stays fast
and a module that needs an optional package or data files is never imported unless it has an example).
An example that needs data, a trained model or a server belongs in a plain code block, not in a `>>>`
example; the few that still need one are listed in `SKIPPED` with the reason.
"""

import doctest
import importlib
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_bert", "training", "serving")

# Module -> why its example cannot run in the test suite.
SKIPPED = {}


def _modules_with_examples():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>>" not in path.read_text(encoding="utf-8"):
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _params():
    for name in _modules_with_examples():
        marks = [pytest.mark.skip(reason=SKIPPED[name])] if name in SKIPPED else []
        yield pytest.param(name, id=name, marks=marks)


def test_examples_are_found():
    names = list(_modules_with_examples())
    assert "keras_bert.models.encoder" in names and "keras_bert.layers.attention" in names, names


@pytest.mark.parametrize("module_name", list(_params()))
def test_docstring_examples(module_name, monkeypatch):
    monkeypatch.chdir(ROOT)  # examples name repository files (training/configs/...) relative to the root
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] not in PACKAGES:
            pytest.skip(f"optional dependency {error.name} is not installed")
        raise
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    tests = [t for t in finder.find(module, module_name) if t.examples]
    assert tests, f"{module_name} has `>>>` in its source but no docstring example"
    for test in tests:
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
