"""The `training` jobs, run as `python -m training.<job>`.

Importing this package imports TensorFlow without its C++ start-up lines (CUDA probing, cpu_feature_guard,
oneDNN), which are not the jobs' progress; set TF_CPP_MIN_LOG_LEVEL (e.g. to 0) to see them.
"""

import os
import sys


def _import_tensorflow_quietly():
    ours = os.environ.get("KERAS_BERT_QUIET_TF") == "1"  # Set by a parent job, not by the user.
    if ("TF_CPP_MIN_LOG_LEVEL" in os.environ and not ours) or "tensorflow" in sys.modules:
        return  # The user asked for TensorFlow's own logging, or it is already loaded.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["KERAS_BERT_QUIET_TF"] = "1"
    stderr, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)  # The lines come from C++ before absl's log flags apply, so only the fd silences them.
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)
        os.close(devnull)


_import_tensorflow_quietly()
