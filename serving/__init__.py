"""The `serving` jobs, run as `python -m serving.<job>`."""

import training  # noqa: F401  (imports TensorFlow without its start-up lines)
