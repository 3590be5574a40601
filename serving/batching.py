"""Micro-batching: concurrent requests scored together, in one call to the store and the model.

A request (one /predict, or one /predict_batch's list) joins the queue and awaits its answers.
One scoring thread takes what is queued, up to `max_size` requests, and scores it in one call:
under load, the requests that arrive while a batch is being scored make the next batch, so the
store read, the model call and the thread hop are paid once per batch, not once per request.
Idle, a request is scored at once; `max_wait` (seconds, 0 by default) lets a batch that is not
full wait that much longer for company, a bound no request waits beyond.

A failure fails every request of its batch (validation happened before: what fails here is the
platform, e.g. the store). A request whose caller gave up (a timeout) is scored anyway and its
answer dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

Request = TypeVar("Request")
Answer = TypeVar("Answer")


class MicroBatcher(Generic[Request, Answer]):
    """`await batcher.submit(requests)` -> their answers, in order; `score(requests)` must
    return one answer per request, in order. Lives on one event loop (a server worker's)."""

    def __init__(
        self,
        score: Callable[[list[Request]], Sequence[Answer]],
        max_size: int,
        max_wait: float = 0.0,
    ) -> None:
        self.score = score
        self.max_size = max_size
        self.max_wait = max_wait
        self._queue: deque[tuple[list[Request], asyncio.Future[Sequence[Answer]], float]] = deque()
        self._queued = 0  # requests in the queue
        self._arrived: asyncio.Event | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="scoring")

    async def submit(self, requests: list[Request]) -> Sequence[Answer]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Sequence[Answer]] = loop.create_future()
        self._queue.append((requests, answer, time.monotonic()))
        self._queued += len(requests)
        if self._arrived is not None:
            self._arrived.set()
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await answer

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if self.max_wait and self._queued < self.max_size:
                await self._wait_for_company()
            batch = self._take()
            requests = [r for rs, _, _ in batch for r in rs]
            try:
                answers = await loop.run_in_executor(self._thread, self.score, requests)
            except Exception as err:
                for _, answer, _ in batch:
                    if not answer.done():
                        answer.set_exception(err)
                continue
            start = 0
            for rs, answer, _ in batch:
                if not answer.done():  # its caller may have timed out meanwhile
                    answer.set_result(answers[start : start + len(rs)])
                start += len(rs)

    async def _wait_for_company(self) -> None:
        """Until the batch is full or its oldest request has waited `max_wait`."""
        self._arrived = self._arrived or asyncio.Event()
        until = self._queue[0][2] + self.max_wait
        while self._queued < self.max_size and (left := until - time.monotonic()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def _take(self) -> list[tuple[list[Request], asyncio.Future[Sequence[Answer]], float]]:
        """Whole submissions, oldest first, up to `max_size` requests (at least one)."""
        batch = [self._queue.popleft()]
        size = len(batch[0][0])
        while self._queue and size + len(self._queue[0][0]) <= self.max_size:
            batch.append(self._queue.popleft())
            size += len(batch[-1][0])
        self._queued -= size
        return batch
