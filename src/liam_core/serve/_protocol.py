"""The Open Inference Protocol (KServe v2) REST messages: infer requests in, responses out.

Both encodings of a tensor are read and written: JSON (``"data"``: a flat or nested list in
row-major order) and Triton's binary tensor extension, which ``tritonclient.http`` uses by
default: the body is the JSON header (its length in the ``Inference-Header-Content-Length``
HTTP header) followed by the raw little-endian bytes of every tensor whose
``parameters.binary_data_size`` says how many bytes it takes, in the order of the inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

try:  # the serve extra; run_server says what to install
    import orjson
except ImportError:  # pragma: no cover
    orjson = None

from .._checks import quote

HEADER_LENGTH = "inference-header-content-length"
INPUT_NAME = "x"

_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NUMERIC_INPUTS = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                   "FP16", "FP32", "FP64"}  # fmt: skip
_DATATYPE_OF = {dtype: name for name, dtype in _DTYPES.items()}


class RequestError(Exception):
    """A malformed request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class InferRequest:
    """A parsed infer request: the rows, which outputs, and how to encode them."""

    rows: np.ndarray  # [batch, features], the client's dtype (checked later)
    outputs: tuple[str, ...] | None  # None: every output of forward
    binary: Mapping[str, bool]  # output name -> send it binary
    binary_default: bool
    id: str | None


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RequestError(f"{what} must be a JSON object, got {quote(value)}")
    return value


def _parameters(value: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    parameters = value.get("parameters", {})
    if parameters is None:
        return {}
    return _object(parameters, f"{what}.parameters")


def parse_infer(body: bytes, header_length: str | None, n_features: int) -> InferRequest:
    """Parse an infer request body (JSON, or JSON + binary tensors).

    Raises:
        RequestError: malformed JSON, a missing or unknown input, a wrong datatype or
            shape, data of the wrong length, truncated or extra binary data; the message
            names the field.
    """
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise RequestError(
                f"the Inference-Header-Content-Length header must be an integer, got "
                f"{quote(header_length)}"
            ) from None
        if not 0 < length <= len(body):
            raise RequestError(
                f"the Inference-Header-Content-Length header must be between 1 and the body's "
                f"{len(body)} bytes, got {length}"
            )
        header, binary = body[:length], memoryview(body)[length:]
    else:
        header, binary = body, memoryview(b"")
    try:
        request = orjson.loads(header)
    except orjson.JSONDecodeError as error:
        raise RequestError(f"the request body must be JSON: {error}") from None
    request = _object(request, "the request")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f"`id` must be a string, got {quote(request_id)}")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(f"`inputs` must be a non-empty list of tensors, got {quote(inputs)}")
    offset = 0
    rows = None
    for index, tensor in enumerate(inputs):
        tensor = _object(tensor, f"inputs[{index}]")
        name = tensor.get("name")
        if name != INPUT_NAME:
            raise RequestError(
                f"inputs[{index}].name must be {INPUT_NAME!r} (the model's only input: rows of "
                f"{n_features} features), got {quote(name)}"
            )
        if rows is not None:
            raise RequestError(f"inputs[{index}]: the input {INPUT_NAME!r} is given twice")
        rows, offset = _tensor(tensor, f"inputs[{index}]", binary, offset, n_features)
    if offset != len(binary):
        raise RequestError(
            f"the body has {len(binary) - offset} bytes of binary data after the tensors "
            "(their parameters.binary_data_size do not add up)"
        )
    parameters = _parameters(request, "the request")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise RequestError(
            f"parameters.binary_data_output must be true or false, got {quote(binary_default)}"
        )
    outputs = request.get("outputs")
    names, binary_of = None, {}
    if outputs is not None:
        if not isinstance(outputs, list):
            raise RequestError(f"`outputs` must be a list, got {quote(outputs)}")
        names = []
        for index, output in enumerate(outputs):
            output = _object(output, f"outputs[{index}]")
            name = output.get("name")
            if not isinstance(name, str):
                raise RequestError(f"outputs[{index}].name must be a string, got {quote(name)}")
            wants = _parameters(output, f"outputs[{index}]").get("binary_data", binary_default)
            if not isinstance(wants, bool):
                raise RequestError(
                    f"outputs[{index}].parameters.binary_data must be true or false, got {quote(wants)}"
                )
            names.append(name)
            binary_of[name] = wants
    return InferRequest(rows, None if names is None else tuple(names), binary_of, binary_default,
                        request_id)  # fmt: skip


def _tensor(
    tensor: Mapping[str, Any], what: str, binary: memoryview, offset: int, n_features: int
) -> tuple[np.ndarray, int]:
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in _NUMERIC_INPUTS:
        raise RequestError(
            f"{what}.datatype must be a numeric datatype such as FP32, got {quote(datatype)}"
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise RequestError(f"{what}.shape must be [batch, {n_features}], got {quote(shape)}")
    if shape[1] != n_features:
        raise RequestError(
            f"{what}.shape must be [batch, {n_features}] (the model's features), got {shape}"
        )
    if shape[0] == 0:
        raise RequestError(f"{what}.shape has no rows; expected at least one")
    dtype = _DTYPES[datatype]
    count = shape[0] * shape[1]
    size = _parameters(tensor, what).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RequestError(
                f"{what}.parameters.binary_data_size must be a byte count, got {quote(size)}"
            )
        if "data" in tensor:
            raise RequestError(f"{what} has both `data` and parameters.binary_data_size")
        if size != count * dtype.itemsize:
            raise RequestError(
                f"{what}.parameters.binary_data_size must be {count * dtype.itemsize} for "
                f"{datatype} of shape {shape}, got {size}"
            )
        if offset + size > len(binary):
            raise RequestError(
                f"{what}: the body holds {len(binary) - offset} bytes of binary data for it, "
                f"expected {size} (truncated?)"
            )
        array = np.frombuffer(binary[offset : offset + size], dtype=dtype.newbyteorder("<"))
        return array.reshape(shape), offset + size
    data = tensor.get("data")
    if not isinstance(data, list):
        raise RequestError(f"{what}.data must be a list of numbers, got {quote(data)}")
    try:
        array = np.asarray(data, dtype=np.float64 if dtype.kind == "f" else np.int64)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(
            f"{what}.data must hold {datatype} numbers in a flat or nested list, got {quote(data)}"
        ) from None
    if array.size != count:
        raise RequestError(f"{what}.data holds {array.size} numbers, shape {shape} needs {count}")
    return array.reshape(shape), offset


def encode_response(
    model: str,
    version: int,
    outputs: Mapping[str, np.ndarray],
    request: InferRequest,
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary tensors follow it."""
    entries, blobs = [], []
    for name, array in outputs.items():
        entry: dict[str, Any] = {
            "name": name,
            "datatype": _DATATYPE_OF[array.dtype],
            "shape": list(array.shape),
        }
        if request.binary.get(name, request.binary_default):
            blob = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.ravel().tolist()
        entries.append(entry)
    response: dict[str, Any] = {
        "model_name": model,
        "model_version": str(version),
        "outputs": entries,
    }
    if request.id is not None:
        response["id"] = request.id
    header = orjson.dumps(response)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def tensor_metadata(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Inputs or outputs of a manifest as the protocol's tensor metadata."""
    return [
        {"name": e["name"], "datatype": e["datatype"], "shape": list(e["shape"])} for e in entries
    ]
