"""An open-loop HTTP load generator: requests leave on a fixed schedule whether or not earlier
ones were answered, and each latency counts from the moment its request was due. A closed loop
(send, wait, send) slows down with the server and hides its queueing ("coordinated omission").

Plain asyncio over raw keep-alive HTTP/1.1 connections, so the generator itself stays cheap on
the two cores it shares with the server.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

REQUEST_TIMEOUT_SECONDS = 5.0
# asyncio rounds a sleep up to the next millisecond and a VM wakes late: on an idle 2-core VM a
# sleep to the due time woke 0.85 ms late at p50 and 3 ms at p99, all of it charged to the
# server. Waking this much early and counting from the earlier of "due" and "sent" takes the
# rounding out without hiding lateness: a request sent late still counts from when it was due.
EARLY_WAKE_SECONDS = 0.001
MAX_CONNECTIONS = 256
# A rate is held when nothing failed, (nearly) every request was answered, and no queue built
# up: p99 under this bound. Past its capacity a server's latency grows without limit.
HELD_P99_MS = 50.0


@dataclass(frozen=True)
class RateResult:
    rate: float
    seconds: float
    sent: int
    ok: int
    errors: int
    error_kinds: dict[str, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def held(self) -> bool:
        return self.errors == 0 and self.ok >= 0.99 * self.sent and self.p99_ms <= HELD_P99_MS

    def to_dict(self) -> dict:
        return {**asdict(self), "held": self.held}


class _Connections:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        return await self.new()

    async def new(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.open >= MAX_CONNECTIONS:
            raise ConnectionError("connection limit reached")
        self.open += 1
        return await asyncio.open_connection(self.host, self.port)

    def put(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.append(connection)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def _request(host: str, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(pool: _Connections, payload: bytes) -> int:
    connection = await pool.get()
    reader, writer = connection
    try:
        writer.write(payload)
        status_line = await reader.readline()
        if not status_line:  # the server closed an idle keep-alive connection: reconnect once
            writer.close()
            pool.open -= 1
            connection = await pool.new()  # not another idle one: it may be stale too
            reader, writer = connection
            writer.write(payload)
            status_line = await reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
    except Exception:
        writer.close()
        pool.open -= 1
        raise
    pool.put(connection)
    return status


async def _run(
    host: str, port: int, path: str, bodies: list[bytes], rate: float, seconds: float
) -> tuple[int, list[float], Counter[str]]:
    pool = _Connections(host, port)
    payloads = [_request(host, path, b) for b in bodies]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    loop = asyncio.get_running_loop()

    async def one(i: int, due: float) -> None:
        counted_from = min(due, loop.time())
        try:
            status = await asyncio.wait_for(
                _exchange(pool, payloads[i % len(payloads)]), REQUEST_TIMEOUT_SECONDS
            )
        except Exception as err:
            errors[type(err).__name__] += 1
            return
        if status == 200:
            latencies.append(loop.time() - counted_from)
        else:
            errors[f"HTTP {status}"] += 1

    count = int(rate * seconds)
    start = loop.time() + 0.05
    tasks = []
    for i in range(count):
        due = start + i / rate
        delay = due - loop.time() - EARLY_WAKE_SECONDS
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    pool.close()
    return count, latencies, errors


def open_loop(
    url: str, path: str, bodies: list[bytes], rate: float, seconds: float, warm_up: float = 5
) -> RateResult:
    """Offer `rate` requests/s for `seconds` after `warm_up` seconds at the same rate."""
    host, port = url.removeprefix("http://").split(":")
    if warm_up:
        asyncio.run(_run(host, int(port), path, bodies, rate, warm_up))
    # A collection pausing the generator would be charged to the server: every request due
    # meanwhile leaves late. The run's garbage is small; collect it afterwards.
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        sent, latencies, errors = asyncio.run(_run(host, int(port), path, bodies, rate, seconds))
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    ms = np.array(latencies or [np.nan]) * 1000
    return RateResult(
        rate=rate,
        seconds=round(elapsed, 1),
        sent=sent,
        ok=len(latencies),
        errors=sum(errors.values()),
        error_kinds=dict(errors),
        p50_ms=round(float(np.percentile(ms, 50)), 2),
        p95_ms=round(float(np.percentile(ms, 95)), 2),
        p99_ms=round(float(np.percentile(ms, 99)), 2),
        max_ms=round(float(np.max(ms)), 2),
    )
