"""Installs the `keras_bert` library (distribution name: keras-bert-suite).

Only the `keras_bert` package is installed; the `training/` and `serving/`
jobs run from the checkout as `python -m training.<job>` / `python -m serving.<job>`.
"""

from setuptools import find_packages, setup

setup(
    name="keras-bert-suite",
    version="0.1.0",
    description="BERT for TensorFlow/Keras 3: pretraining, fine-tuning, checkpoint interop and TF Serving export.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["keras_bert", "keras_bert.*"]),
    install_requires=[
        "tensorflow==2.21.0",
        "tensorflow-text==2.21.1",
        "keras==3.15.1",
        "keras-hub==0.32.0",
        "tensorboard==2.21.0",
        "tensorflow-serving-api==2.21.0",
        "grpcio==1.85.1",
        "safetensors==0.8.0",
        "pyyaml==6.0.3",
        "rouge-score==0.1.2",  # Google's ROUGE, the summarization metrics (pulls nltk)
        "numpy>=1.26,<2.5",
    ],
    extras_require={
        "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "tokenizers==0.23.3", "apache-beam==2.77.0"],
        # `training.prepare_pretraining --runner ...` (keras_bert.data.beam_pretraining); it needs protobuf < 7,
        # which TensorFlow's protobuf >= 6.31.1 range allows.
        "beam": ["apache-beam==2.77.0"],
        # Optional peers of `benchmarks.compare` (`benchmarks/peers.py`): several GB with PyTorch's CUDA libraries.
        "peers": ["torch==2.14.1", "transformers==5.23.0", "onnxruntime==1.32.0", "onnx==1.23.2"],
        # `benchmarks.jax_compare` on a CPU (a GPU machine brings its own CUDA build of JAX).
        "jax": ["jax==0.10.2", "jaxlib==0.10.2"],
    },
)
