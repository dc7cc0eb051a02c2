"""The layers and models use keras.ops only: no TensorFlow imports, no Lambda layers, no pickles."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2] / "keras_bert"
FORBIDDEN = re.compile(r"^\s*(import|from)\s+(tensorflow|tensorflow_text|tf_keras)\b|keras\.layers\.Lambda|\bpickle\b",
                       re.MULTILINE)


def test_layers_and_models_are_backend_agnostic():
    files = sorted((ROOT / "layers").glob("*.py")) + sorted((ROOT / "models").glob("*.py"))
    assert files
    offenders = [f"{p.name}: {m.group(0).strip()}" for p in files for m in FORBIDDEN.finditer(p.read_text())]
    assert not offenders, offenders
