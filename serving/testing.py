"""Tiny SavedModels and a server launcher, for the serving and export tests and the serving benchmark."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import tensorflow as tf

from keras_bert.export import write_warmup_requests

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _TinyModel(tf.Module):
    """A model with a text signature and an ids signature, cheap to run."""

    def __init__(self, version):
        super().__init__()
        self.version = tf.Variable(version, dtype=tf.int32, trainable=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(self, text):
        length = tf.cast(tf.strings.length(text, unit="UTF8_CHAR"), tf.float32)
        return {
            "length": length / 2.0,  # a float with a fractional part
            "label": tf.where(length > 5.0, "long", "short"),
            "version": tf.fill(tf.shape(text), self.version),
        }

    @tf.function(input_signature=[
        tf.TensorSpec([None, None], tf.int32, name="token_ids"),
        tf.TensorSpec([None, None], tf.int32, name="padding_mask"),
    ])
    def serve_ids(self, token_ids, padding_mask):
        return {
            "sum": tf.reduce_sum(token_ids * padding_mask, axis=1),
            "count": tf.reduce_sum(padding_mask, axis=1),
            # Shows the length a request was padded to when batched with others.
            "padded_length": tf.fill(tf.shape(token_ids)[:1], tf.shape(token_ids)[1]),
        }


def write_tiny_model(model_dir, version, warmup=True):
    """Saves the tiny model as `model_dir/<version>/`, atomically (temp dir + rename).

    Args:
        model_dir: str. `BASE/NAME`.
        version: int. The version number (also returned by the `version` output).
        warmup: bool. Whether to add warmup records.

    Returns:
        The version directory.
    """
    os.makedirs(model_dir, exist_ok=True)
    module = _TinyModel(version)
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir)
    os.chmod(staging, 0o755)  # mkdtemp makes it private; servers may run as another user
    tf.saved_model.save(module, staging, signatures={
        "serving_default": module.serve_text,
        "serve_ids": module.serve_ids,
    })
    if warmup:
        write_warmup_requests(staging, os.path.basename(model_dir), {"text": ["warm up"]})
    final = os.path.join(model_dir, str(version))
    os.rename(staging, final)
    return final


def free_port():
    """Returns a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """`python -m serving.server` in a subprocess on free loopback ports.

    Args:
        server_args: list of str. Flags besides `--port`/`--rest_api_port`.
        log_path: str. Where the server's output goes.
    """

    def __init__(self, server_args, log_path):
        self.grpc_port = free_port()
        self.rest_port = free_port()
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.log_path = log_path
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving.server",
             "--port", str(self.grpc_port), "--rest_api_port", str(self.rest_port),
             *server_args],
            cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_until_available(self, model_name, timeout=120.0):
        """Blocks until `model_name` has an AVAILABLE version.

        Args:
            model_name: str. The model to wait for.
            timeout: float. Seconds before giving up with the server log.
        """
        deadline = time.monotonic() + timeout
        url = f"{self.rest_url}/v1/models/{model_name}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    statuses = json.load(response)["model_version_status"]
                    if any(s["state"] == "AVAILABLE" for s in statuses):
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{model_name} not available after {timeout}s:\n{self.log()}")

    def log(self):
        """The server output so far."""
        self._log.flush()
        with open(self.log_path, "rb") as log_file:
            return log_file.read().decode("utf-8", "replace")[-5000:]

    def stop(self, timeout=20.0):
        """Sends SIGTERM and waits; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
