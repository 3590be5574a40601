"""The micro-batcher, on a plain event loop: no server, no model."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serving.batching import MicroBatcher


async def scoring_started(scorer: Recorder) -> None:
    """Until the scorer holds its first batch, however long a busy machine takes."""
    while not scorer.entered.is_set():
        await asyncio.sleep(0.001)


class Recorder:
    """A scorer that records its batches; it can be held until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def __call__(self, requests: list[int]) -> list[int]:
        self.entered.set()
        self.release.wait(10)
        self.batches.append(list(requests))
        return [r * 10 for r in requests]


def test_requests_that_queue_while_a_batch_is_scored_are_scored_together():
    scorer = Recorder()
    batcher = MicroBatcher(scorer, max_size=100)

    async def main() -> list[object]:
        scorer.release.clear()
        first = asyncio.ensure_future(batcher.submit([1]))
        await scoring_started(scorer)  # 1 is being scored, held
        rest = [asyncio.ensure_future(batcher.submit([i])) for i in (2, 3)]
        batch = asyncio.ensure_future(batcher.submit([4, 5]))
        await asyncio.sleep(0.05)
        scorer.release.set()
        return await asyncio.gather(first, *rest, batch)

    answers = asyncio.run(main())
    batcher.close()
    assert answers == [[10], [20], [30], [40, 50]]
    assert scorer.batches == [[1], [2, 3, 4, 5]]


def test_a_batch_never_exceeds_max_size_and_keeps_a_submission_whole():
    scorer = Recorder()
    batcher = MicroBatcher(scorer, max_size=3)

    async def main() -> list[object]:
        scorer.release.clear()
        first = asyncio.ensure_future(batcher.submit([0]))
        await scoring_started(scorer)
        queued = [asyncio.ensure_future(batcher.submit(r)) for r in ([1, 2], [3, 4], [5])]
        await asyncio.sleep(0.05)
        scorer.release.set()
        return await asyncio.gather(first, *queued)

    answers = asyncio.run(main())
    batcher.close()
    assert answers == [[0], [10, 20], [30, 40], [50]]
    assert scorer.batches == [[0], [1, 2], [3, 4, 5]]


def test_the_wait_for_company_is_bounded():
    scorer = Recorder()
    # A wait far longer than the 0.05 s between the two: a busy machine's stalls stay inside it.
    batcher = MicroBatcher(scorer, max_size=100, max_wait=1.0)

    async def main() -> tuple[list[object], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.submit([2]))
        answers = await asyncio.gather(first, second)
        return answers, loop.time() - started

    answers, seconds = asyncio.run(main())
    batcher.close()
    assert answers == [[10], [20]]
    assert scorer.batches == [[1, 2]]  # 2 arrived within the first one's wait
    assert seconds >= 0.2  # the lower bound only: a busy machine may take longer


def test_a_failed_batch_fails_each_of_its_requests_and_the_next_batch_is_scored():
    calls: list[list[int]] = []

    def scorer(requests: list[int]) -> list[int]:
        calls.append(requests)
        if len(calls) == 1:
            raise RuntimeError("store down")
        return requests

    batcher = MicroBatcher(scorer, max_size=10)

    async def main() -> tuple[BaseException | None, list[int]]:
        with pytest.raises(RuntimeError, match="store down") as failed:
            await batcher.submit([1])
        return failed.value, list(await batcher.submit([2]))

    error, answer = asyncio.run(main())
    batcher.close()
    assert isinstance(error, RuntimeError) and answer == [2]


def test_a_caller_that_gave_up_does_not_stop_the_others():
    scorer = Recorder()
    batcher = MicroBatcher(scorer, max_size=10)

    async def main() -> list[object]:
        scorer.release.clear()
        first = asyncio.ensure_future(batcher.submit([1]))
        await scoring_started(scorer)
        impatient = asyncio.ensure_future(batcher.submit([2]))
        patient = asyncio.ensure_future(batcher.submit([3]))
        await asyncio.sleep(0.01)
        impatient.cancel()  # as a request timeout does
        scorer.release.set()
        return await asyncio.gather(first, patient)

    assert asyncio.run(main()) == [[10], [30]]
    batcher.close()
    assert scorer.batches == [[1], [2, 3]]
