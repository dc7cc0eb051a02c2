"""TF Serving's Classify and Regress APIs: `tf.Example` inputs, classification/regression signatures.

Follows `servables/tensorflow/classifier.cc`, `regressor.cc` and `util/json_tensor.cc`:
a signature with `method_name` `tensorflow/serving/classify` has one string input
(serialized `tf.Example`s) and the outputs `classes` (string) and/or `scores` (float),
both `[batch, k]`; a `tensorflow/serving/regress` signature has one string input and
the float output `outputs` (`[batch]` or `[batch, 1]`). REST bodies are
`{"signature_name", "context", "examples"}`; answers are `{"results": ...}`.
"""

import base64

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, regression_pb2

from keras_bert.export.module import CLASSIFY_METHOD, REGRESS_METHOD
from serving import _json_tensors  # noqa: F401  (registers the "rapidjson" encode error handler)
from serving._errors import ServingError, invalid_argument

CLASSES, SCORES, OUTPUTS = "classes", "scores", "outputs"


def _feature_from_json(name, value):
    values = value if isinstance(value, list) else [value]
    feature = tf.train.Feature()
    kinds = set()
    for item in values:
        if isinstance(item, bool) or item is None or isinstance(item, list):
            raise invalid_argument(f"JSON Value: {item!r} of feature {name!r} is not a string, number or b64 object")
        if isinstance(item, str):
            kinds.add("bytes")
            feature.bytes_list.value.append(item.encode("utf-8", "rapidjson"))
        elif isinstance(item, dict):
            if set(item) != {"b64"} or not isinstance(item["b64"], str):
                raise invalid_argument(f"JSON Value: {item!r} not formatted correctly for base64 data")
            try:
                feature.bytes_list.value.append(base64.b64decode(item["b64"], validate=True))
            except ValueError:
                raise invalid_argument("Unable to base64 decode")
            kinds.add("bytes")
        elif isinstance(item, int):
            kinds.add("int64")
            feature.int64_list.value.append(item)
        else:
            kinds.add("float")
            feature.float_list.value.append(item)
    if len(kinds) > 1:
        raise invalid_argument(f"JSON Value: feature {name!r} mixes types {sorted(kinds)}")
    return feature


def _example_from_json(value, where):
    if not isinstance(value, dict):
        raise invalid_argument(f"JSON Value: {where} must be an object of feature name to value")
    example = tf.train.Example()
    for name, feature_value in value.items():
        example.features.feature[name].CopyFrom(_feature_from_json(name, feature_value))
    return example


def examples_from_json(document):
    """Returns the serialized `tf.Example`s of a REST `:classify` / `:regress` body.

    Args:
        document: dict. The parsed body (`examples`, optional `context`).
    """
    examples = document.get("examples")
    if not isinstance(examples, list):
        raise invalid_argument("JSON Value: 'examples' is missing or not an array")
    context = document.get("context")
    context = _example_from_json(context, "'context'") if context is not None else None
    serialized = []
    for index, value in enumerate(examples):
        example = _example_from_json(value, f"examples[{index}]")
        if context is not None:
            merged = tf.train.Example()
            merged.CopyFrom(context)
            for name, feature in example.features.feature.items():
                merged.features.feature[name].CopyFrom(feature)
            example = merged
        serialized.append(example.SerializeToString())
    return serialized


def examples_from_input(input_proto):
    """Returns the serialized `tf.Example`s of a gRPC `tensorflow.serving.Input`.

    Args:
        input_proto: tensorflow.serving.Input. `example_list` or `example_list_with_context`.
    """
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [example.SerializeToString() for example in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        with_context = input_proto.example_list_with_context
        serialized = []
        for example in with_context.examples:
            merged = tf.train.Example()
            merged.CopyFrom(with_context.context)
            for name, feature in example.features.feature.items():
                merged.features.feature[name].CopyFrom(feature)
            serialized.append(merged.SerializeToString())
        return serialized
    raise invalid_argument("Input is empty")


def _checked_signature(servable, signature_name, method):
    signature = servable.signature_def(signature_name)
    if signature.method_name != method:
        what = "classification" if method == CLASSIFY_METHOD else "regression"
        raise invalid_argument(
            f"Expected {what} signature method_name to be {method}. Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    return signature


def classify(run, servable, signature_name, serialized):
    """Runs a classification signature on serialized Examples.

    Args:
        run: callable `(servable, signature_name, arrays, output_filter)` (the predictor's run).
        servable: Servable. The model version.
        signature_name: str. The signature (empty: `serving_default`).
        serialized: list of bytes. `tf.Example`s.

    Returns:
        list (one per example) of lists of `(label or None, score or None)`.
    """
    signature = _checked_signature(servable, signature_name, CLASSIFY_METHOD)
    wanted = [name for name in (CLASSES, SCORES) if name in signature.outputs]
    if not wanted:
        raise invalid_argument(f"Expected classification signature outputs to contain {CLASSES} or {SCORES}")
    (input_name,) = signature.inputs
    outputs = run(servable, signature_name, {input_name: np.array(serialized, dtype=object)}, tuple(wanted))
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    for name, value in ((CLASSES, classes), (SCORES, scores)):
        if value is None:
            continue
        if value.ndim != 2:
            raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {list(value.shape)}")
        if value.shape[0] != len(serialized):
            raise invalid_argument(f"Input batch size did not match output batch size: "
                                   f"{len(serialized)} vs. {value.shape[0]}")
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise invalid_argument(f"Tensors class and score should match in shape: {list(classes.shape)} "
                               f"vs. {list(scores.shape)}")
    width = (classes if classes is not None else scores).shape[1]
    return [[(classes[row, column] if classes is not None else None,
              float(scores[row, column]) if scores is not None else None) for column in range(width)]
            for row in range(len(serialized))]


def regress(run, servable, signature_name, serialized):
    """Runs a regression signature on serialized Examples; returns one float per example.

    Args:
        run: callable `(servable, signature_name, arrays, output_filter)`.
        servable: Servable. The model version.
        signature_name: str. The signature (empty: `serving_default`).
        serialized: list of bytes. `tf.Example`s.
    """
    signature = _checked_signature(servable, signature_name, REGRESS_METHOD)
    if OUTPUTS not in signature.outputs:
        raise invalid_argument(f"No regression outputs found in signature: expected '{OUTPUTS}'")
    (input_name,) = signature.inputs
    values = run(servable, signature_name, {input_name: np.array(serialized, dtype=object)}, (OUTPUTS,))[OUTPUTS]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument("Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
                               f"but got {list(values.shape)}")
    if values.shape[0] != len(serialized):
        raise invalid_argument(f"Input batch size did not match output batch size: "
                               f"{len(serialized)} vs. {values.shape[0]}")
    return [float(value) for value in values.reshape(-1)]


def classification_json(results):
    """The REST answer: `{"results": [[[label, score], ...], ...]}`.

    Args:
        results: what `classify` returned.
    """
    return {"results": [[[_text(label) if label is not None else "", score if score is not None else 0.0]
                         for label, score in row] for row in results]}


def _text(label):
    return label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)


def classification_result(results):
    """The gRPC `ClassificationResult` of `classify`'s results.

    Args:
        results: what `classify` returned.
    """
    proto = classification_pb2.ClassificationResult()
    for row in results:
        classifications = proto.classifications.add()
        for label, score in row:
            entry = classifications.classes.add()
            if label is not None:
                entry.label = _text(label)
            if score is not None:
                entry.score = score
    return proto


def regression_result(values):
    """The gRPC `RegressionResult` of `regress`'s values.

    Args:
        values: list of float.
    """
    proto = regression_pb2.RegressionResult()
    for value in values:
        proto.regressions.add().value = value
    return proto


def method_of(task_method):
    """Checks a MultiInference task's method name; returns it.

    Args:
        task_method: str. `InferenceTask.method_name`.
    """
    if task_method not in (CLASSIFY_METHOD, REGRESS_METHOD):
        raise ServingError("UNIMPLEMENTED", f"Unsupported signature method_name: {task_method}")
    return task_method
