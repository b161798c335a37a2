"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams.

Low overhead on purpose: the figures should describe the server, not the client.
Each of C workers holds one connection and sends its share of N requests in turn:
closed loop (as fast as answers come back) or, with `rate`, open loop at a fixed
arrival rate, latency counted from each request's scheduled time (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    def percentile(self, p: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return float("nan")
        index = min(len(data) - 1, max(0, round(p / 100 * len(data) + 0.5) - 1))
        return data[index]

    def summary(self) -> dict:
        return {
            "requests": self.requests, "errors": self.errors,
            "requests_per_s": round(self.requests / self.seconds, 1),
            "p50_ms": round(self.percentile(50), 3), "p95_ms": round(self.percentile(95), 3),
            "p99_ms": round(self.percentile(99), 3),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 3) if self.latencies_ms else None,
        }


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    if not status_line:  # the server closed the connection (e.g. its worker was killed)
        raise ConnectionError("connection closed before an answer")
    status = int(status_line.split()[1])
    length = None
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def run_load(host: str, port: int, path: str, body: bytes, headers: dict[str, str],
                   total: int, concurrency: int, rate: float | None = None) -> LoadResult:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    request = head + body
    latencies: list[float] = []
    errors = 0
    next_index = 0
    started_at = 0.0

    async def worker() -> None:
        nonlocal next_index, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < total:
                index, next_index = next_index, next_index + 1
                started = time.perf_counter()
                if rate:
                    scheduled = started_at + index / rate
                    if scheduled > started:
                        await asyncio.sleep(scheduled - started)
                    started = scheduled
                writer.write(request)
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    started_at = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(total, errors, time.perf_counter() - started_at, latencies)
