"""The dynamic batcher: lone cheap requests run inline, concurrent ones are batched in the thread."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from ml.batcher import DynamicBatcher, RequestGauge


class Recorder:
    """A forward that records batch sizes and the thread it ran on; logits = pixel sums."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.calls.append((len(images), threading.current_thread().name))
        return images.reshape(len(images), -1).sum(axis=1, keepdims=True).astype(np.float32)


def _image(value: int) -> np.ndarray:
    return np.full((1, 28, 28), value, dtype=np.uint8)


def _gauge(in_progress: list) -> RequestGauge:
    """A gauge following ``in_progress``, as the API's follows uvicorn's set of request tasks."""
    gauge = RequestGauge()
    gauge.follow(in_progress)
    return gauge


def test_lone_cheap_request_runs_on_the_loop_once_its_cost_is_known() -> None:
    forward = Recorder()
    # A generous threshold: the first forward's measured cost (on any machine) is below it.
    alone = _gauge(["this request"])
    batcher = DynamicBatcher(forward, inline_max_s=10.0, in_flight=alone)

    async def run() -> list[np.ndarray]:
        first = await batcher.submit(_image(1))  # cost unknown: through the inference thread
        second = await batcher.submit(_image(2))
        await batcher.aclose()
        return [first, second]

    first, second = asyncio.run(run())
    assert first[0, 0] == 784 and second[0, 0] == 2 * 784
    assert forward.calls[0][1].startswith("inference")
    assert forward.calls[1][1] == threading.main_thread().name
    assert batcher.inline_runs == 1


def test_expensive_forward_never_runs_inline() -> None:
    forward = Recorder()
    alone = _gauge(["this request"])
    batcher = DynamicBatcher(forward, inline_max_s=0.001, in_flight=alone)
    batcher.observe(1, 0.05)

    async def run() -> None:
        await batcher.submit(_image(1))
        await batcher.aclose()

    asyncio.run(run())
    assert batcher.inline_runs == 0
    assert forward.calls[0][1].startswith("inference")


def test_concurrent_requests_are_batched_and_each_gets_its_own_row() -> None:
    forward = Recorder()
    busy = _gauge(list(range(10)))
    batcher = DynamicBatcher(forward, max_batch=32, inline_max_s=1.0, in_flight=busy)
    batcher.observe(1, 0.0001)

    async def run() -> list[np.ndarray]:
        out = await asyncio.gather(*(batcher.submit(_image(i)) for i in range(10)))
        await batcher.aclose()
        return out

    results = asyncio.run(run())
    assert [int(r[0, 0]) for r in results] == [784 * i for i in range(10)]
    assert batcher.inline_runs == 0
    assert max(size for size, _ in forward.calls) > 1


def test_a_second_request_in_progress_sends_work_through_the_queue() -> None:
    forward = Recorder()
    in_progress = ["this request", "another"]
    batcher = DynamicBatcher(forward, inline_max_s=10.0, in_flight=_gauge(in_progress))
    batcher.observe(1, 0.0001)

    async def run() -> None:
        # Another request is being parsed: batch with it, do not block the loop.
        await batcher.submit(_image(1))
        in_progress.pop()
        await batcher.submit(_image(2))
        await batcher.aclose()

    asyncio.run(run())
    assert forward.calls[0][1].startswith("inference")
    assert forward.calls[1][1] == threading.main_thread().name
    assert batcher.inline_runs == 1


def test_nothing_runs_inline_where_requests_are_not_counted() -> None:
    forward = Recorder()
    batcher = DynamicBatcher(forward, inline_max_s=10.0, in_flight=RequestGauge())
    batcher.observe(1, 0.0001)

    async def run() -> None:
        for i in range(3):
            await batcher.submit(_image(i))
        await batcher.aclose()

    asyncio.run(run())
    assert batcher.inline_runs == 0
    assert all(thread.startswith("inference") for _, thread in forward.calls)


def test_requests_that_arrive_together_are_batched_not_run_inline_one_by_one() -> None:
    """Through a real uvicorn server, wired as ``python -m api`` wires it: a burst of requests
    (their tasks all created before the first runs) shares forwards; a lone one runs inline."""
    import httpx
    import uvicorn

    from api.server import uvicorn_server
    from cli.processes import free_port
    from ml.batcher import IN_FLIGHT

    forward = Recorder()
    batcher = DynamicBatcher(forward, max_batch=32, inline_max_s=10.0)  # reads IN_FLIGHT
    batcher.observe(1, 0.0001)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await batcher.submit(_image(1))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def run() -> list[int]:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn_server(config)
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            url = f"http://127.0.0.1:{port}/"
            # One connection per request, all opened first: the burst lands in one loop turn.
            clients = [httpx.AsyncClient() for _ in range(8)]
            streams = [c.build_request("GET", url) for c in clients]
            responses = await asyncio.gather(
                *(c.send(r) for c, r in zip(clients, streams, strict=True))
            )
            async with httpx.AsyncClient() as alone:
                responses.append(await alone.get(url))
            for client in clients:
                await client.aclose()
            return [r.status_code for r in responses]
        finally:
            server.should_exit = True
            await serving
            await batcher.aclose()

    try:
        statuses = asyncio.run(run())
    finally:
        IN_FLIGHT.follow(None)
    assert statuses == [200] * 9
    assert sum(size for size, _ in forward.calls) == 9
    assert max(size for size, _ in forward.calls) > 1  # the burst shared forwards
    assert forward.calls[-1] == (1, threading.main_thread().name)  # the lone one: inline
