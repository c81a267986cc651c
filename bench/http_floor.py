"""The HTTP floor for ``just bench-predict``: what this machine's HTTP stack costs with no work.

A raw ASGI app (no framework) that reads the whole request body and answers a fixed JSON, no
decode and no model, on uvicorn with uvloop and httptools (as the API runs) and one process per
core. Whatever a model server does per request costs at least this; bench-predict uses its
req/s at c=32 in the machine's limit and its p50 at c=1 in the latency limit.

    python -m bench.http_floor --port 8002 --workers 2
"""

from __future__ import annotations

import argparse
import os

BODY = b'{"prediction":0,"label":"T-shirt/top","model_version":"floor"}'
PID = str(os.getpid()).encode()


async def app(scope, receive, send) -> None:
    """Read the body, answer BODY (every path; /health as well, so the harness can wait on it)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # the body, as a server that used it would have to read it
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
                (b"x-server-pid", PID),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def serve(app_path: str, prog: str) -> None:
    """Serve the ASGI app at ``app_path`` on uvicorn with ``--workers`` processes."""
    import uvicorn

    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8002)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args()
    uvicorn.run(
        app_path,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
    )


def main() -> None:
    """Serve ``app``."""
    serve("bench.http_floor:app", "python -m bench.http_floor")


if __name__ == "__main__":
    main()
