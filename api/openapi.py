"""The OpenAPI document says what the API does: every status with its error body, the key each
route needs, and the constraints that the handlers enforce (names, lengths, ranges, no unknown
fields), so generated clients and schemathesis agree with the server.

Litestar derives paths and bodies from the handlers; this module completes the generated
document once, at start-up, from the same sources of truth (the routes' roles, domain.names,
the request structs).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute

from api.access import PUBLIC, required_role
from api.v2_schemas import InferRequest
from domain.jobs.aggregate import MAX_BATCH, MIN_BATCH
from domain.keys.aggregate import RESERVED_NAMES
from domain.names import MAX_REASON, MAX_TAG_VALUE, MAX_TAGS
from events.codec import event_types

# domain.names and domain.keys.aggregate: 1-64 characters, and never ".." (names become paths).
MODEL = {"type": "string", "pattern": r"^(?!.*\.\.)[a-z0-9][a-z0-9_.-]{0,63}$", "maxLength": 64}
VERSION = {
    "type": "string",
    "pattern": r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$",
    "maxLength": 64,
}
KEY = {**MODEL, "not": {"enum": sorted(RESERVED_NAMES)}}
TEXT = {"type": "string", "pattern": r"^[^\u0000]*$"}  # PostgreSQL cannot store NUL
REASON = {**TEXT, "maxLength": MAX_REASON}
TAGS = {
    "type": "object",
    "maxProperties": MAX_TAGS,
    "propertyNames": {"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$"},
    "additionalProperties": {**TEXT, "maxLength": MAX_TAG_VALUE},
}
DATASET = {
    "type": "string",
    # A test set, the train split, or frozen traffic (traffic:<name>, docs/traffic.md).
    "pattern": r"^((mnist|fashion_mnist)_(train|test|[1-9][0-9]{0,3})"
    r"|traffic:[a-z0-9][a-z0-9_.-]{0,63})$",
}
PATH_PARAMS = {"name": MODEL, "version": VERSION, "key_name": KEY}
QUERY_PARAMS = {
    "model": MODEL,
    "model_name": MODEL,
    "at": {"type": "string", "format": "date-time"},
}
# Properties of request bodies, by component and property: what the handlers check.
PROPERTIES: dict[str, dict[str, dict[str, Any]]] = {
    "PredictRequest": {"model_name": MODEL, "model_version": VERSION},
    "RegisterVersionRequest": {
        "model_version": VERSION,
        "artifact_path": {**TEXT, "minLength": 1, "maxLength": 4096},
        "tags": TAGS,
        "reason": REASON,
    },
    "TagRequest": {"tags": TAGS, "reason": REASON},
    "ReasonRequest": {"reason": REASON},
    "CancelRequest": {"reason": REASON},
    "RevokeKeyRequest": {"reason": REASON},
    "CreateKeyRequest": {"key_name": KEY, "reason": REASON},
    "SubmitRequest": {"model_name": MODEL, "model_version": VERSION, "dataset_id": DATASET},
    "BatchConfig": {
        "batch_size": {"type": "integer", "minimum": MIN_BATCH, "maximum": MAX_BATCH},
        "shard_size": {"type": "integer", "minimum": 1, "maximum": 100_000},
    },
    "InferRequest": {"inputs": {"minItems": 1}},
    "InferInput": {
        "datatype": {"type": "string", "enum": ["FP32", "UINT8", "BYTES"]},
        "shape": {"minItems": 1, "maxItems": 4, "items": {"type": "integer", "minimum": 0}},
    },
    "RequestedOutput": {
        "name": {"type": "string", "enum": ["predictions", "probabilities", "logits"]}
    },
    "GateRequest": {
        "model_name": MODEL,
        "candidate_version": VERSION,
        "baseline_version": VERSION,
        "dataset_id": DATASET,
        "reason": REASON,
    },
}
ERROR = {
    "type": "object",
    "required": ["status_code", "detail"],
    "properties": {
        "status_code": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
DESCRIPTIONS = {
    400: "The request is malformed; `detail` names the problem",
    401: "No X-API-Key header, or one that names no active key",
    403: "The key's role is below the one this endpoint needs",
    404: "A named model, version, job, gate, key or checkpoint (or tree size) does not exist",
    409: "The request contradicts the current state",
    413: "The body is larger than MAX_BODY_BYTES",
    429: "The key is over its rate (RATE_LIMIT_PER_S); retry after Retry-After seconds",
    503: "A backing service is unavailable or the inference queue is full; retry after Retry-After",
}
RETRY_AFTER = {"schema": {"type": "integer"}, "required": True, "description": "seconds to wait"}
# Reads that never touch PostgreSQL, Redis or a model.
NO_BACKEND = {
    ("get", "/health"),
    ("get", "/v2"),
    ("get", "/v2/health/live"),
    ("get", "/asyncapi.json"),
}
# Reads that load a model (no prod version: 409).
LOADS_MODEL = re.compile(r"^/v2/models/.*/ready$")
# Reads that name what they want in the query (a tree size, a position): absent is a 404.
FINDS_BY_QUERY = re.compile(r"^/log/(checkpoints?|proof/\w+)$")


def route_roles(app: Litestar) -> dict[tuple[str, str], str]:
    """(method, OpenAPI path) -> the role the access check asks for."""
    roles = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method, (handler, _) in route.route_handler_map.items():
            roles[(method.lower(), path)] = required_role(handler, method, path)
    return roles


def _statuses(method: str, path: str, op: dict[str, Any], role: str) -> set[int]:
    params = op.get("parameters", [])
    has_body = "requestBody" in op
    codes = {400} if params or has_body else set()
    if role != PUBLIC:
        codes |= {401, 429} | ({403} if role != "reader" else set())
    if any(p["in"] == "path" for p in params) or has_body or FINDS_BY_QUERY.match(path):
        codes.add(404)
    if method != "get" or LOADS_MODEL.match(path):
        codes.add(409)
    if has_body:
        codes.add(413)
    if (method, path) not in NO_BACKEND:
        codes.add(503)
    return codes


# A body with ``force`` (promote, revoke a key): forcing is refused (400) without a reason.
FORCE_NEEDS_A_REASON = {
    "if": {"properties": {"force": {"const": True}}, "required": ["force"]},
    "then": {
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "pattern": r"\S"}},
    },
}


def complete(doc: dict[str, Any], roles: dict[tuple[str, str], str]) -> dict[str, Any]:
    """Add the error responses, security and constraints to a generated OpenAPI document."""
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR
    components["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    }
    _raw_bodies(doc)
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            role = roles.get((method, path), "operator")
            op["security"] = [] if role == PUBLIC else [{"ApiKey": []}]
            _optional_body(op)
            for p in op.get("parameters", []):
                extra = (PATH_PARAMS if p["in"] == "path" else QUERY_PARAMS).get(p["name"])
                if extra and p["in"] in ("path", "query"):
                    _constrain(p.setdefault("schema", {}), extra)
                if path == "/events" and p["name"] == "type":
                    p["schema"] = {"type": "string", "enum": sorted(event_types())}
            for code in sorted(_statuses(method, path, op, role)):
                response = {
                    "description": DESCRIPTIONS[code],
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                if code in (429, 503):
                    response["headers"] = {"Retry-After": RETRY_AFTER}
                op["responses"].setdefault(str(code), response)
    # A document served as bytes is still JSON.
    asyncapi = doc.get("paths", {}).get("/asyncapi.json", {}).get("get", {})
    for content in asyncapi.get("responses", {}).get("200", {}).get("content", {}).values():
        content["schema"] = {"type": "object"}
    for name, schema in components["schemas"].items():
        for prop, extra in PROPERTIES.get(name, {}).items():
            if prop in schema.get("properties", {}):
                _constrain(schema["properties"][prop], extra)
        if name in _strict_structs():
            schema["additionalProperties"] = False
        props = schema.get("properties", {})
        if props.get("force", {}).get("type") == "boolean" and "reason" in props:
            schema.update(FORCE_NEEDS_A_REASON)
    return doc


# Routes that read their body themselves (v2 infer: JSON, or JSON then binary tensor data).
RAW_BODIES = {
    ("post", "/v2/models/{name}/infer"): InferRequest,
    ("post", "/v2/models/{name}/versions/{version}/infer"): InferRequest,
}
BINARY_NOTE = (
    "JSON, or with the binary tensor data extension a JSON header of "
    "Inference-Header-Content-Length bytes followed by the inputs' binary data"
)


def _raw_bodies(doc: dict[str, Any]) -> None:
    """The JSON body of each route in ``RAW_BODIES``, with its structs as components."""
    schemas = doc["components"]["schemas"]
    for (method, path), body in RAW_BODIES.items():
        op = doc.get("paths", {}).get(path, {}).get(method)
        if op is None:
            continue
        (ref,), found = msgspec.json.schema_components(
            [body], ref_template="#/components/schemas/{name}"
        )
        for name, schema in found.items():
            schemas.setdefault(name, schema)
        op["requestBody"] = {
            "required": True,
            "description": BINARY_NOTE,
            "content": {"application/json": {"schema": ref}},
        }


def _optional_body(op: dict[str, Any]) -> None:
    """A body typed ``X | None`` (reason-only bodies) may be left out."""
    body = op.get("requestBody")
    if not body:
        return
    for content in body.get("content", {}).values():
        branches = content.get("schema", {}).get("oneOf", [])
        if any(b.get("type") == "null" for b in branches):
            body["required"] = False


def _constrain(schema: dict[str, Any], extra: dict[str, Any]) -> None:
    """Merge constraints into a property schema (also into the non-null branch of a oneOf)."""
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        for b in branches:
            if b.get("type") != "null" and "$ref" not in b:
                b.update({k: v for k, v in extra.items() if k != "type" or "type" not in b})
        return
    schema.update({k: v for k, v in extra.items() if k != "type" or "type" not in schema})


def _strict_structs() -> set[str]:
    """Names of request structs that refuse unknown fields (forbid_unknown_fields=True)."""
    found, todo = set(), [msgspec.Struct]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        config = getattr(cls, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields:
            found.add(cls.__name__)
    return found


def document(app: Litestar) -> None:
    """At start-up: complete the OpenAPI document in place (it is generated once and cached)."""
    from litestar._openapi.plugin import OpenAPIPlugin

    from api.allow_header import allowed_methods
    from api.log_examples import add_examples

    plugin = app.plugins.get(OpenAPIPlugin)
    doc = complete(plugin.provide_openapi_schema(), route_roles(app))
    add_examples(doc)
    app.state.allow = allowed_methods(app)
