"""The v2 infer body on the wire: JSON alone, or a JSON header and then binary tensor data.

The binary tensor data extension (Triton's, which KServe adopted): the request's
``Inference-Header-Content-Length`` header gives the JSON's length; the bytes after it are the
inputs with ``parameters.binary_data_size``, in the order of the inputs. Outputs asked for with
``parameters.binary_data`` (or all of them, by ``binary_data_output`` in the request's
parameters) come back the same way, with the header in the response.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from api.v2_schemas import InferOutput, InferRequest
from api.v2_tensors import binary_size
from domain.errors import InvalidInput
from ml.inference import softmax

HEADER = "inference-header-content-length"
OUTPUTS = ("predictions", "probabilities", "logits")
DEFAULT_OUTPUTS = ("predictions", "probabilities")
_decoder = msgspec.json.Decoder(InferRequest)


def read_request(body: bytes, header: str | None) -> tuple[InferRequest, list[memoryview | None]]:
    """Decode the JSON (header) and cut each binary input's bytes out of the rest of the body."""
    if header is None:
        json_part, rest = body, memoryview(b"")
    else:
        length = header.strip()
        if not (length.isascii() and length.isdigit()):
            raise InvalidInput(
                f"Inference-Header-Content-Length must be a byte count, got {header!r}"
            )
        n = int(length)
        if n > len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length is {n:,} but the body has {len(body):,} bytes"
            )
        json_part, rest = body[:n], memoryview(body)[n:]
    req = _decode(json_part, header is not None)
    if not req.inputs:
        raise InvalidInput("inputs is empty")
    sizes = [binary_size(inp) for inp in req.inputs]
    total = sum(s for s in sizes if s is not None)
    if header is None and any(s is not None for s in sizes):
        name = next(inp.name for inp, s in zip(req.inputs, sizes, strict=True) if s is not None)
        raise InvalidInput(
            f"input {name!r} has binary_data_size but the request has no "
            "Inference-Header-Content-Length header"
        )
    if total != len(rest):
        raise InvalidInput(
            f"the inputs' binary_data_size add up to {total:,} bytes but {len(rest):,} bytes "
            f"follow the {len(json_part):,}-byte JSON header (Inference-Header-Content-Length)"
        )
    parts: list[memoryview | None] = []
    pos = 0
    for size in sizes:
        parts.append(None if size is None else rest[pos : pos + size])
        pos += size or 0
    return req, parts


def _decode(json_part: bytes, has_header: bool) -> InferRequest:
    """The JSON object, typed; every failure a 400 that names it."""
    if not json_part.strip():
        raise InvalidInput("the body is empty: send an inference request (a JSON object)")
    try:
        return _decoder.decode(json_part)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"the inference request is invalid: {exc}") from None
    except msgspec.DecodeError as exc:
        hint = ""
        if not has_header and "trailing characters" in str(exc):
            hint = "; binary tensor data needs the Inference-Header-Content-Length header"
        raise InvalidInput(f"{exc}{hint}") from None
    except RecursionError:
        raise InvalidInput("request body is nested too deeply") from None


def _flag(params: dict[str, Any] | None, key: str, where: str) -> bool | None:
    value = (params or {}).get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{where}: {key} must be true or false, got {value!r}")
    return value


def wanted_outputs(req: InferRequest) -> list[tuple[str, bool]]:
    """(output name, whether it goes back as binary) for each output asked for, checked."""
    default = bool(_flag(req.parameters, "binary_data_output", "parameters"))
    if not req.outputs:
        return [(name, default) for name in DEFAULT_OUTPUTS]
    wanted = []
    for o in req.outputs:
        if o.name not in OUTPUTS:
            raise InvalidInput(f"unknown output {o.name!r}; this model has {', '.join(OUTPUTS)}")
        binary = _flag(o.parameters, "binary_data", f"output {o.name!r}")
        wanted.append((o.name, default if binary is None else binary))
    return wanted


def build_outputs(
    wanted: list[tuple[str, bool]], logits: np.ndarray
) -> tuple[list[InferOutput], list[bytes]]:
    """The output tensors, and the bytes of the binary ones in the same order."""
    outputs, blobs = [], []
    for name, binary in wanted:
        if name == "predictions":
            arr, datatype = logits.argmax(axis=1).astype("<i8"), "INT64"
        elif name == "probabilities":
            arr, datatype = softmax(logits.astype(np.float32, copy=True)), "FP32"
        else:
            arr, datatype = logits, "FP32"
        shape = list(arr.shape)
        if binary:
            raw = np.ascontiguousarray(arr, dtype="<f4" if datatype == "FP32" else "<i8")
            blobs.append(raw.tobytes())
            params = {"binary_data_size": len(blobs[-1])}
            outputs.append(InferOutput(name, shape, datatype, parameters=params))
        else:
            outputs.append(InferOutput(name, shape, datatype, arr.ravel().tolist()))
    return outputs, blobs
