"""tf.distribute without accelerators: MirroredStrategy over two logical CPUs and MultiWorkerMirroredStrategy
with two worker processes on 127.0.0.1 give the same per-step loss as one device for the same global batch.

Each run is `tests/training/strategy_check.py` in its own process (logical devices must be configured before
TensorFlow initialises; each worker is a process with its own `TF_CONFIG`). It trains through the jobs' path
(`create_strategy`, scope, compile, global batches, `fit_resumable`) and logs every step's loss to TensorBoard.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from keras_bert.trainer.tensorboard import read_scalars
from tests.training.conftest import REPO_ROOT

SCRIPT = os.path.join(REPO_ROOT, "tests", "training", "strategy_check.py")
STEPS = 6
TOLERANCE = 1e-5


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _start(output_dir, strategy, *extra, env=None):
    command = [sys.executable, SCRIPT, "--strategy", strategy, "--output-dir", str(output_dir),
               "--steps", str(STEPS), *extra]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env or _env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _join(processes, timeout=300):
    """Waits for every process (killing all on timeout); raises with their output when one failed.

    Returns:
        list of `(result, output)`: the RESULT line's dict and the process's output.
    """
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        details = "\n".join(f"--- process {i} ---\n{p.communicate()[0][-3000:]}" for i, p in enumerate(processes))
        raise AssertionError(f"strategy run timed out after {timeout}s:\n{details}") from None
    for index, (process, output) in enumerate(zip(processes, outputs)):
        if process.returncode != 0:
            raise AssertionError(f"process {index} failed ({process.returncode}):\n{output[-5000:]}")
    results = []
    for output in outputs:
        lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        assert lines, output[-3000:]
        results.append((json.loads(lines[-1][len("RESULT "):]), output))
    return results


def _losses(output_dir):
    return read_scalars(os.path.join(str(output_dir), "logs", "train"))["loss"]


def _validation(output_dir):
    return read_scalars(os.path.join(str(output_dir), "logs", "validation"))["mean_logit"]


def _assert_same_losses(expected, got):
    assert [s for s, _ in got] == [s for s, _ in expected] == list(range(1, STEPS + 1)), (expected, got)
    for (step, want), (_, value) in zip(expected, got):
        assert abs(want - value) <= TOLERANCE, (step, want, value)


def _assert_same_validation(output_dir, expected_dir):
    """The fine-tuning validation (every 3 steps) sees the same model outputs as on one device."""
    expected, got = _validation(expected_dir), _validation(output_dir)
    assert [s for s, _ in got] == [s for s, _ in expected] == [3, STEPS], (expected, got)
    for (step, want), (_, value) in zip(expected, got):
        assert abs(want - value) <= TOLERANCE, (step, want, value)


@pytest.fixture(scope="module")
def one_device_losses(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("one_device")
    ((result, _),) = _join([_start(output_dir, "one_device")])
    assert result["replicas"] == 1 and result["step"] == STEPS
    losses = _losses(output_dir)
    assert len({round(v, 6) for _, v in losses}) > 1  # The model trains: losses change step to step.
    return losses, output_dir


def test_mirrored_two_logical_cpus_matches_one_device(one_device_losses, tmp_path):
    # Trains 3 steps, rebuilds the model and resumes from the step-3 checkpoint to step 6 (distributed
    # iterators are not checkpointable: the data position comes from skipping the consumed batches).
    ((result, output),) = _join([_start(tmp_path, "mirrored", "--logical-cpus", "2", "--resume-at", "3")])
    assert "resumed from" in output and "at step 3" in output, output[-3000:]
    assert result == {"step": STEPS, "replicas": 2, "strategy": "MirroredStrategy"}
    _assert_same_losses(one_device_losses[0], _losses(tmp_path))
    _assert_same_validation(tmp_path, one_device_losses[1])


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_two_processes_matches_one_device(one_device_losses, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        # One shared output directory, as on a shared file system: worker 0 (chief) writes logs and checkpoints.
        # Each worker trains 3 steps, rebuilds its model and resumes from the chief's step-3 checkpoint.
        processes.append(_start(tmp_path, "multi_worker", "--resume-at", "3",
                                env=_env(TF_CONFIG=json.dumps(tf_config))))
    for result, output in _join(processes):
        assert result["replicas"] == 2 and result["step"] == STEPS, output[-3000:]
        assert "resumed from" in output and "at step 3" in output, output[-3000:]  # Both workers resume.
    _assert_same_losses(one_device_losses[0], _losses(tmp_path))
    _assert_same_validation(tmp_path, one_device_losses[1])
    checkpoints = sorted(os.listdir(tmp_path / "checkpoints"))
    assert "ckpt-6.index" in checkpoints and not [c for c in checkpoints if c.startswith(".worker")], checkpoints
