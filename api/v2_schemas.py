"""Request and response bodies of the Open Inference Protocol v2 endpoints."""

from __future__ import annotations

from typing import Any

import msgspec


class TensorMetadata(msgspec.Struct, frozen=True):
    """Name, datatype and shape of a model input or output (-1: any size)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(msgspec.Struct, frozen=True):
    """GET /v2/models/{name}[/versions/{v}]."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class InferInput(msgspec.Struct, frozen=True):
    """One input tensor: data flat or nested, row-major, or binary (binary_data_size)."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class RequestedOutput(msgspec.Struct, frozen=True):
    """An output the client asks for by name."""

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct, frozen=True):
    """POST .../infer body."""

    inputs: list[InferInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


class InferOutput(msgspec.Struct, frozen=True, omit_defaults=True):
    """One output tensor, flattened row-major, or binary (parameters.binary_data_size)."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """POST .../infer answer; ``id`` echoes the request's."""

    model_name: str
    model_version: str
    outputs: list[InferOutput]
    id: str | None = None
    # The platform's id for POST /feedback (X-Request-Id); image i of several is "<id>.<i>".
    request_id: str | None = None


class Live(msgspec.Struct, frozen=True):
    """Liveness."""

    live: bool


class Ready(msgspec.Struct, frozen=True):
    """Readiness."""

    ready: bool


class ModelReady(msgspec.Struct, frozen=True):
    """Model readiness."""

    name: str
    ready: bool
    version: str | None = None


class ServerMetadata(msgspec.Struct, frozen=True):
    """GET /v2."""

    name: str
    version: str
    extensions: list[str]
