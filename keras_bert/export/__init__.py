"""SavedModel export for TF Serving: raw text in, task predictions out (TensorFlow only).

Example (needs a fine-tuned model directory):

    from keras_bert.export import export_model_dir
    export_model_dir("runs/sst2", "/models/sst2")  # -> "/models/sst2/1", the model's own task
"""

from keras_bert.export.module import MASK_TEXT, TASKS, ServingModule, default_max_length, parse_tag, task_model
from keras_bert.export.precision import PRECISIONS, load_for_precision, uses_xla
from keras_bert.export.ops import ALLOWLIST_PATH, PYTHON_KERNEL_OPS, export_allowlist, saved_model_ops, unservable_ops
from keras_bert.export.writer import (BATCHING_PARAMETERS_FILE, MODELS_CONFIG_FILE, SIGNATURES, WARMUP_FILE, export,
                                      export_model_dir, next_version, version_dirs, version_numbers,
                                      write_batching_parameters,
                                      write_model_server_config, write_warmup_requests)

__all__ = [
    "ALLOWLIST_PATH", "BATCHING_PARAMETERS_FILE", "MASK_TEXT", "MODELS_CONFIG_FILE", "PRECISIONS", "SIGNATURES",
    "TASKS",
    "WARMUP_FILE", "ServingModule", "default_max_length", "export", "export_allowlist", "export_model_dir",
    "PYTHON_KERNEL_OPS", "load_for_precision", "next_version", "parse_tag", "saved_model_ops", "task_model",
    "unservable_ops", "uses_xla", "version_dirs",
    "version_numbers",
    "write_batching_parameters",
    "write_model_server_config", "write_warmup_requests",
]
