"""api/queue_drain.py: batches fill within the linger, full ones go at once, stop flushes the rest."""

from __future__ import annotations

import asyncio

from api.queue_drain import drain, take_batch


def test_a_batch_takes_what_arrives_within_the_linger_and_no_more_than_its_size() -> None:
    async def scenario():
        q: asyncio.Queue[int] = asyncio.Queue()
        for i in range(3):
            q.put_nowait(i)

        async def late():
            await asyncio.sleep(0.05)
            q.put_nowait(3)
            await asyncio.sleep(2.0)  # past the linger: the next batch's
            q.put_nowait(4)

        task = asyncio.create_task(late())
        first = await take_batch(q, 10, 1.0)
        second: list[int] = []
        while not second:  # an idle take gives [] every half second
            second = await take_batch(q, 10, 0.0)
        await task
        for i in range(5, 12):
            q.put_nowait(i)
        full = await take_batch(q, 4, 5.0)  # full: does not wait out the linger
        return first, second, full

    first, second, full = asyncio.run(scenario())
    assert first == [0, 1, 2, 3]
    assert second == [4]
    assert full == [5, 6, 7, 8]


def test_an_empty_queue_gives_no_batch_and_stop_flushes_what_is_left() -> None:
    async def scenario():
        q: asyncio.Queue[int] = asyncio.Queue()
        empty = await take_batch(q, 4, 0.1)
        flushed: list[list[int]] = []
        stop = asyncio.Event()

        async def flush(batch):
            flushed.append(batch)
            stop.set()  # the first flush stops the writer; the rest is flushed on the way out

        for i in range(7):
            q.put_nowait(i)
        await drain(q, stop, flush, size=3, linger_s=0.0)
        return empty, flushed

    empty, flushed = asyncio.run(scenario())
    assert empty == []
    assert flushed == [[0, 1, 2], [3, 4, 5], [6]]
