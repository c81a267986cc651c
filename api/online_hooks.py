"""The request path hooks: one call before (request id, routing) and one after (``after``) every
/predict and v2 infer, so traffic capture, the shadow mirror and the canary plug in there.

Both hooks cost a dict lookup when no model has a capture, shadow or canary policy: /predict's
throughput is measured (issue 26), so nothing here awaits I/O or touches Redis per request.
Subscribers take a ``Served`` with ``put_nowait`` into their own bounded queues and drop (and
count) when full; the work happens in their background tasks.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

REQUEST_ID_HEADER = "x-request-id"
ROUTING_KEY_HEADER = "x-routing-key"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def valid_request_id(value: str) -> bool:
    """1-64 characters of [A-Za-z0-9._:-]."""
    return REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh id: a uuid4's 32 hex digits."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class Served:
    """One answered image: what capture, shadow and canary need, built only when one wants it."""

    request_id: str
    model_name: str
    model_version: str  # the version that answered
    prod_version: str | None  # prod in this process when it answered
    input: np.ndarray  # uint8 [28,28] (or float32 [28,28] in [0,1] from v2 FP32)
    prediction: int
    scores: list[float]  # the logits row
    latency_ms: float
    trace_id: str | None = None
    routed: bool = False  # a canary router picked model_version
    keep: bool = False  # always capture (a canary's or a shadow's request), whatever the policy


class Subscriber(Protocol):
    """Something that follows answered requests (capture sampler, shadow mirror, canary pairing)."""

    def wants(self, model_name: str) -> bool:
        """Whether a Served for this model is worth building (a dict lookup)."""
        ...

    def after(self, served: Served) -> None:
        """Take the answer without awaiting: put_nowait into a bounded queue, drop when full."""
        ...


class Router(Protocol):
    """Picks the version for a request that named none (the canary)."""

    def route(self, model_name: str, request_id: str, routing_key: str | None) -> str | None:
        """The version to serve, or None for prod."""
        ...


class OnlineHooks:
    """The object on ``app.state.online``; built in bootstrap/api.py, subscribers added there."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.router: Router | None = None
        # Capture runs after every subscriber: the mirror and the canary set ``keep`` first.
        self.capture: Subscriber | None = None

    def subscribe(self, subscriber: Subscriber, *, first: bool = False) -> None:
        """Add a follower of answered requests (``first`` to run before those already added)."""
        if first:
            self.subscribers.insert(0, subscriber)
        else:
            self.subscribers.append(subscriber)

    def set_router(self, router: Router | None) -> None:
        """Install (or remove) the canary router."""
        self.router = router

    def request_id(self, request: Any) -> str:
        """The client's X-Request-Id when valid, else a new uuid4 hex."""
        given = request.headers.get(REQUEST_ID_HEADER)
        if given and REQUEST_ID.fullmatch(given):
            return given
        return uuid.uuid4().hex

    def route(self, model_name: str, request_id: str, routing_key: str | None) -> str | None:
        """The version to serve when the caller named none (None = prod)."""
        router = self.router
        if router is None:
            return None
        return router.route(model_name, request_id, routing_key)

    def wants(self, model_name: str, routed: bool = False) -> bool:
        """Whether anyone follows this model (skip building a Served otherwise)."""
        if routed:
            return True
        capture = self.capture
        if capture is not None and capture.wants(model_name):
            return True
        return any(subscriber.wants(model_name) for subscriber in self.subscribers)

    def after(self, served: Served) -> None:
        """Hand an answered request to every subscriber that follows its model, then to capture
        (which also takes any ``keep`` or routed request); never raises."""
        name = served.model_name
        for subscriber in self.subscribers:
            if subscriber.wants(name):
                _call(subscriber, served)
        capture = self.capture
        if capture is not None and (served.keep or served.routed or capture.wants(name)):
            _call(capture, served)

    def after_batch(
        self,
        request_id: str,
        model_name: str,
        model_version: str,
        prod_version: str | None,
        images: np.ndarray,
        logits: np.ndarray,
        latency_ms: float,
        routed: bool,
    ) -> None:
        """One Served per image of a v2 request; image i of several is "<request_id>.<i>"."""
        from observability.tracing import current_trace_id

        trace_id = current_trace_id()
        single = len(images) == 1
        for i, row in enumerate(logits):
            self.after(
                Served(
                    request_id=request_id if single else f"{request_id}.{i}",
                    model_name=model_name,
                    model_version=model_version,
                    prod_version=prod_version,
                    input=images[i],
                    prediction=int(row.argmax()),
                    scores=row.tolist(),
                    latency_ms=latency_ms,
                    trace_id=trace_id,
                    routed=routed,
                )
            )


def _call(subscriber: Subscriber, served: Served) -> None:
    try:
        subscriber.after(served)
    except Exception:  # a follower never fails a prod request
        from observability.metrics import instruments

        kind = type(subscriber).__name__
        instruments().online_hook_errors.add(1, {"subscriber": kind})
