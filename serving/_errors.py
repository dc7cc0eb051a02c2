"""Status codes shared by the REST and gRPC front ends, as TF Serving maps them."""

import grpc

# TF Serving's http_server.cc maps canonical codes to HTTP statuses this way.
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PAYLOAD_TOO_LARGE": 413,  # not a canonical code: the REST body limit
    "RESOURCE_EXHAUSTED": 429,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "INTERNAL": 500,
    "UNKNOWN": 500,
}

GRPC_STATUS = {
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "OUT_OF_RANGE": grpc.StatusCode.OUT_OF_RANGE,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ALREADY_EXISTS": grpc.StatusCode.ALREADY_EXISTS,
    "PAYLOAD_TOO_LARGE": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "UNIMPLEMENTED": grpc.StatusCode.UNIMPLEMENTED,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
    "INTERNAL": grpc.StatusCode.INTERNAL,
    "UNKNOWN": grpc.StatusCode.UNKNOWN,
}


class ServingError(Exception):
    """A request failure with a TF Serving canonical error code.

    Args:
        code: str. A key of `HTTP_STATUS`, e.g. `"INVALID_ARGUMENT"`.
        message: str. The text sent back as `{"error": message}`.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        """The HTTP status TF Serving's REST API answers for this code."""
        return HTTP_STATUS.get(self.code, 500)

    @property
    def grpc_status(self):
        """The `grpc.StatusCode` for this code."""
        return GRPC_STATUS.get(self.code, grpc.StatusCode.UNKNOWN)


def invalid_argument(message):
    """Returns a `ServingError` with code INVALID_ARGUMENT."""
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message):
    """Returns a `ServingError` with code NOT_FOUND."""
    return ServingError("NOT_FOUND", message)


def failed_precondition(message):
    """Returns a `ServingError` with code FAILED_PRECONDITION."""
    return ServingError("FAILED_PRECONDITION", message)
