"""Examples of the /log answers for the OpenAPI document (a real log's shapes, shortened)."""

from __future__ import annotations

from typing import Any

_ROOT = "aR0qf44efu6d/NzNy725zkXZww1XjTaVPyQvXIGw5yo="
_NOTE = (
    "inference-platform/event-log\n39\n" + _ROOT + "\n\n"
    "— inference-platform/event-log wC0SyJYMJLEj0w34LvGmUMCx9TlCYGyiUq6b1hkJ9RWCBKRjTRaEW505Qq"
    "um4gYsHJxNm+2bQaiHA6uN+43/Iy9FLQk=\n"
    "— witness-1 BCKr8gAAAABpMxJ0q1x9cT7ZQ3p8z0FhN0Yp2m1qkKcB6r9aWmZl2c1n7qQdS0e1R2x3W4v5U6t7"
    "s8r9q0p1o2n3m4l5k6j7i8h9g0f1e2d3c4b5a6A==\n"
)
_CHECKPOINT = {
    "origin": "inference-platform/event-log",
    "size": 39,
    "root_hash": _ROOT,
    "note": _NOTE,
    "created_at": "2026-12-05T19:14:27.272025Z",
    "cosigned_by": ["witness-1"],
    "public_key": "inference-platform/event-log+c02d12c8+AZBGe/l0K0DsUGmh4ziTtMqe3jmaNlV5HDkQl33gc4nx",
}
_HASH = "gC8sKvYF0M7zqj9nQ2H2M0r9o8d3y5M1b4hY7q0l2xk="
EXAMPLES: dict[tuple[str, str, str], Any] = {
    ("/log/checkpoint", "get", "200"): _CHECKPOINT,
    ("/log/checkpoint", "post", "201"): _CHECKPOINT,
    ("/log/checkpoints", "get", "200"): _CHECKPOINT,
    ("/log/proof/inclusion", "get", "200"): {
        "position": 42,
        "leaf_index": 41,
        "size": 100,
        "leaf_hash": _HASH,
        "proof": [_HASH, _ROOT],
        "root_hash": _ROOT,
    },
    ("/log/proof/consistency", "get", "200"): {"from": 39, "to": 100, "proof": [_HASH, _ROOT]},
    ("/log/entries", "get", "200"): {
        "entries": [{"index": 0, "position": 1, "leaf_data": "AAAAATEAAAANbW9kZWwtYXVkaXRlZA=="}],
        "next": 1,
    },
    ("/log/cosignatures", "post", "201"): {"size": 39, "witness": "witness-1"},
}


def add_examples(doc: dict[str, Any]) -> None:
    """Put each example on its operation's JSON response."""
    for (path, method, status), example in EXAMPLES.items():
        op = doc.get("paths", {}).get(path, {}).get(method)
        if op is None:
            continue
        content = op.get("responses", {}).get(status, {}).get("content", {})
        if "application/json" in content:
            content["application/json"]["example"] = example
