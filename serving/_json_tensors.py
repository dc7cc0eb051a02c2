"""TF Serving's REST JSON tensor format: request parsing and response encoding.

Follows `tensorflow_serving/util/json_tensor.cc`: the row format
(`instances`) and the columnar format (`inputs`), `{"b64": ...}` for binary
strings, and answers as `predictions` / `outputs` (unnamed for a single
output). Unlike TF Serving, the nesting depth of the body is checked before
parsing (CVE-2025-0649).
"""

import base64
import codecs
import json
import re

import numpy as np

from serving._errors import ServingError, invalid_argument

_JSON_STRUCTURE = re.compile(rb'["\\\[\]{}]')
# A `\uD800`-`\uDBFF` escape (after an even number of backslashes) not followed by a low one.
_LONE_HIGH_SURROGATE = re.compile(
    rb'(?<!\\)(?:\\\\)*(\\u[dD][89abAB][0-9a-fA-F]{2})(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})')


def _rapidjson_bytes(error):
    """Encodes lone surrogates as rapidjson stores them: raw body bytes back as they were
    (`surrogateescape`), a lone low-surrogate escape as its 3 UTF-8-style bytes (except U+DC80-U+DCFF,
    which read as raw bytes: the one case where the two cannot be told apart after decoding)."""
    pieces = []
    for char in error.object[error.start:error.end]:
        code = ord(char)
        pieces.append(bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF else char.encode("utf-8", "surrogatepass"))
    return b"".join(pieces), error.end


codecs.register_error("rapidjson", _rapidjson_bytes)


def check_json_depth(body, max_depth):
    """Raises INVALID_ARGUMENT if `body` nests arrays/objects deeper than `max_depth`.

    A linear scan that skips string contents, so a hostile body cannot make
    the (recursive) JSON parser overflow its stack.

    Args:
        body: bytes. The raw request body.
        max_depth: int. The deepest allowed nesting of `[` and `{`.
    """
    depth = 0
    in_string = False
    escaped_until = -1
    for match in _JSON_STRUCTURE.finditer(body):
        position = match.start()
        if position < escaped_until:
            continue
        char = body[position]
        if in_string:
            if char == 0x5C:  # backslash: the next character is escaped
                escaped_until = position + 2
            elif char == 0x22:
                in_string = False
            continue
        if char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                raise invalid_argument(
                    f"JSON Parse error: document nested deeper than the limit "
                    f"of {max_depth} levels"
                )
        elif char in (0x5D, 0x7D):
            depth -= 1


def parse_json_body(body, max_depth):
    """Parses a request body into a JSON object, with TF Serving's errors.

    Args:
        body: bytes. The raw request body.
        max_depth: int. The deepest allowed nesting.
    """
    if not body or not body.strip():
        raise invalid_argument("JSON Parse error: The document is empty")
    check_json_depth(body, max_depth)
    lone = _LONE_HIGH_SURROGATE.search(body)
    if lone is not None:  # rapidjson checks high surrogates only; a lone low one is kept as bytes
        raise invalid_argument(
            f"JSON Parse error: The surrogate pair in string is invalid. at offset: {lone.start(1)}"
        )
    try:
        # Bytes that are not UTF-8 reach the graph unchanged, as with rapidjson (no encoding validation).
        document = json.loads(body.decode("utf-8", "surrogateescape"))
    except json.JSONDecodeError as error:
        raise invalid_argument(
            f"JSON Parse error: Invalid value. {error.msg} at offset: {error.pos}"
        )
    except RecursionError:
        raise invalid_argument("JSON Parse error: document nested too deeply")
    if not isinstance(document, dict):
        raise invalid_argument(
            "JSON Value: request body must be a JSON object with an "
            "'instances' or 'inputs' key"
        )
    return document


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _type_error(value, dtype):
    text = json.dumps(value)[:100]
    return invalid_argument(f"JSON Value: {text} not of expected type: {dtype.name}")


def _convert_leaf(value, dtype):
    """Converts one JSON scalar to a Python value of `dtype` (a tf.DType)."""
    if dtype.is_floating:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    elif dtype.is_integer:
        if isinstance(value, int) and not isinstance(value, bool):
            if dtype.min <= value <= dtype.max:
                return value
            raise invalid_argument(
                f"JSON Value: {value} out of range for type: {dtype.name}"
            )
    elif dtype.is_bool:
        if isinstance(value, bool):
            return value
    elif dtype.name == "string":
        if isinstance(value, str):
            return value.encode("utf-8", "rapidjson")
        if _is_b64(value) and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError:
                raise invalid_argument(
                    f"JSON Value: {json.dumps(value)[:100]} is not valid base64"
                )
    else:
        raise invalid_argument(f"Unsupported input dtype: {dtype.name}")
    raise _type_error(value, dtype)


def _collect(value, dtype, leaves):
    """Appends the leaves of nested list `value` to `leaves`; returns its shape."""
    if isinstance(value, list):
        if not value:
            return (0,)
        first_shape = _collect(value[0], dtype, leaves)
        for item in value[1:]:
            shape = _collect(item, dtype, leaves)
            if shape != first_shape:
                raise invalid_argument(
                    f"Expecting shape {list(first_shape)} but got {list(shape)}: "
                    "all entries of a list must have the same shape"
                )
        return (len(value),) + first_shape
    if isinstance(value, dict) and not _is_b64(value):
        raise _type_error(value, dtype)
    leaves.append(_convert_leaf(value, dtype))
    return ()


def json_to_array(value, dtype, input_name):
    """Converts a JSON (nested list) value into a numpy array for `dtype`.

    Args:
        value: the parsed JSON value.
        dtype: tf.DType. The signature's dtype for this input.
        input_name: str. Used in error messages.
    """
    leaves = []
    try:
        shape = _collect(value, dtype, leaves)
    except ServingError as error:
        raise invalid_argument(f"Input '{input_name}': {error.message}")
    if dtype.name == "string":
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
        return array.reshape(shape)
    return np.asarray(leaves, dtype=dtype.as_numpy_dtype).reshape(shape)


def _signature_mismatch(sent, required):
    extra = sorted(set(sent) - set(required))
    missing = sorted(set(required) - set(sent))
    return invalid_argument(
        f"input size does not match signature: {len(sent)}!={len(required)} "
        f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(required))}}}). "
        f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
    )


def request_to_arrays(document, input_dtypes):
    """Reads the tensors of a `:predict` body.

    Args:
        document: dict. The parsed body.
        input_dtypes: dict of str to tf.DType. The signature's inputs.

    Returns:
        A tuple `(arrays, row_format)`: a dict of input name to numpy array,
        and whether the body used the row (`instances`) format.
    """
    has_instances = "instances" in document
    has_inputs = "inputs" in document
    if has_instances and has_inputs:
        raise invalid_argument(
            "JSON Value: request must contain either 'instances' or 'inputs', "
            "not both"
        )
    if not has_instances and not has_inputs:
        raise invalid_argument(
            "JSON Value: request is missing 'instances' or 'inputs' key"
        )
    names = sorted(input_dtypes)
    if has_instances:
        return _rows_to_arrays(document["instances"], input_dtypes, names), True
    columns = document["inputs"]
    if isinstance(columns, dict) and not _is_b64(columns):
        if set(columns) != set(names):
            raise _signature_mismatch(columns, names)
        named = columns
    elif len(names) == 1:
        named = {names[0]: columns}
    else:
        raise _signature_mismatch([], names)
    return {
        name: json_to_array(named[name], input_dtypes[name], name) for name in names
    }, False


def _rows_to_arrays(instances, input_dtypes, names):
    if not isinstance(instances, list):
        raise invalid_argument("JSON Value: 'instances' must be a list")
    if not instances:
        raise invalid_argument("JSON Value: 'instances' is an empty list")
    named = [isinstance(row, dict) and not _is_b64(row) for row in instances]
    if any(named) and not all(named):
        raise invalid_argument(
            "JSON Value: either all or none of the 'instances' must be objects"
        )
    if not named[0]:
        if len(names) != 1:
            raise _signature_mismatch([], names)
        name = names[0]
        return {name: json_to_array(instances, input_dtypes[name], name)}
    keys = set(instances[0])
    for row in instances[1:]:
        if set(row) != keys:
            raise invalid_argument(
                f"JSON Value: the keys of every instance must be equal to "
                f"{{{','.join(sorted(keys))}}}, got {{{','.join(sorted(row))}}}"
            )
    if keys != set(names):
        raise _signature_mismatch(keys, names)
    return {
        name: json_to_array([row[name] for row in instances], input_dtypes[name], name)
        for name in names
    }


def _string_leaf(value, binary):
    if not binary:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(value).decode("ascii")}


def array_to_json(array, name):
    """Converts an output array into JSON values like TF Serving does.

    Floats keep their shortest float32 representation; strings are returned
    as text, or as `{"b64": ...}` when binary or when the output name ends
    with `_bytes`.

    Args:
        array: np.ndarray. The output tensor.
        name: str. The output name.
    """
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "SU":
        binary = name.endswith("_bytes")
        convert = np.frompyfunc(
            lambda item: _string_leaf(
                item if isinstance(item, bytes) else str(item).encode(), binary
            ),
            1,
            1,
        )
        result = convert(array)
        return result.tolist() if isinstance(result, np.ndarray) else result
    if array.dtype in (np.float32, np.float16):
        # numpy's text of a float32 is its shortest round-trip form (0.1,
        # not 0.10000000149011612), as TF Serving prints it.
        result = np.frompyfunc(float, 1, 1)(array.astype(str))
        return result.tolist() if isinstance(result, np.ndarray) else result
    return array.tolist()


def arrays_to_response(outputs, row_format):
    """Builds the `predictions` (row) or `outputs` (columnar) response body.

    Args:
        outputs: dict of str to np.ndarray. The signature's outputs.
        row_format: bool. Whether the request used `instances`.
    """
    names = sorted(outputs)
    if not row_format:
        if len(names) == 1:
            return {"outputs": array_to_json(outputs[names[0]], names[0])}
        return {"outputs": {name: array_to_json(outputs[name], name) for name in names}}
    batch_size = None
    for name in names:
        shape = np.shape(outputs[name])
        size = shape[0] if shape else None
        if batch_size is None:
            batch_size = size
        if size is None or size != batch_size:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {size} "
                f"expecting: {batch_size}"
            )
    columns = {name: array_to_json(outputs[name], name) for name in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    return {
        "predictions": [
            {name: columns[name][row] for name in names} for row in range(batch_size)
        ]
    }
