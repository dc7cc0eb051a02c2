"""The PyTorch and ONNX Runtime peers of the benchmark harness (skipped where they are not installed).

PyTorch and TensorFlow crash when loaded into one process, so the peers run as the harness runs them:
`python -m benchmarks.peers` in a subprocess.
"""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_missing_modules_names_what_a_peer_needs():
    for peer, modules in harness.PEERS.items():
        assert set(harness.missing_modules(peer)) <= set(modules)


def test_peers_command_times_hf_and_ort_in_compare_rows(tmp_path):
    missing = harness.missing_modules("ort")  # a superset of what hf needs
    if missing:
        pytest.skip(f"the PyTorch/ONNX Runtime peers need {', '.join(missing)}")
    out = tmp_path / "peers.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.peers", "--config", "mini-128", "--dtypes", "float32", "--rounds", "1",
         "--steps", "1", "--infer-steps", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The exported ONNX model is checked against PyTorch before it is timed.
    error = float(proc.stdout.split("sequence output: ")[1].split()[0])
    assert error < 1e-3
    data = json.loads(out.read_text())
    got = {(r["package"], r["mode"]) for r in data["results"]}
    assert got == {("hf", "step"), ("hf", "infer"), ("ort", "infer")}
    config = harness.CONFIGS["mini-128"]
    for row in data["results"]:
        assert (row["preset"], row["seq"], row["batch"]) == config
        assert row["seq_per_s"] > 0 and len(row["seq_per_s_rounds"]) == 1
        assert row["tokens_per_s"] == pytest.approx(row["seq_per_s"] * 128)
