"""Open-loop HTTP load generator: requests leave at fixed arrival times, whatever the answers do.

Latency is measured from each request's *scheduled* send time, so a server that falls behind
shows it in the tail instead of slowing the generator down (no coordinated omission). The client
is raw asyncio streams with keep-alive connections: a general-purpose client (httpx) costs about
a millisecond of CPU per request, which at 200+ requests/s on two shared cores would distort the
numbers it is meant to measure. Its own overhead is measured against a no-op route (`floor`).

    python -m evaluation.bench.load http://127.0.0.1:8000 --rate 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import numpy as np

__all__ = ["Step", "Target", "percentiles", "run_step"]


@dataclass(frozen=True)
class Target:
    """Where to send: host, port, method and path, and the JSON bodies to cycle through."""

    host: str
    port: int
    path: str
    bodies: tuple[bytes, ...] = ()

    @classmethod
    def parse(cls, url: str, bodies: tuple[bytes, ...] = ()) -> Target:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/", bodies)

    def requests(self) -> list[bytes]:
        """The raw HTTP/1.1 requests, built once so the send loop only writes bytes."""
        if not self.bodies:
            return [f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()]
        return [
            (
                f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
            for body in self.bodies
        ]


@dataclass
class Step:
    """One fixed-rate run: what was offered, what came back, and how long it took."""

    offered_rps: float
    seconds: float
    sent: int = 0
    achieved_rps: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    max_send_lag_ms: float = 0.0  # how late the generator itself was against the schedule

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "200")

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "errors": self.errors}


def percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    values = np.percentile(np.array(seconds) * 1000, [50, 95, 99, 100])
    return dict(
        zip(("p50", "p95", "p99", "max"), (round(float(v), 2) for v in values), strict=True)
    )


class _Pool:
    """Keep-alive connections, opened on demand up to `size`; beyond that requests wait (and
    the wait counts in their latency, as it would for a real client). A connection idle for
    longer than `IDLE_SECONDS` is closed rather than reused: servers close idle keep-alive
    connections (uvicorn after 5 s), and a request written into one of those would fail for
    the client's sake, not the server's."""

    IDLE_SECONDS = 2.0

    def __init__(self, target: Target, size: int) -> None:
        self.target = target
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.free = asyncio.Semaphore(size)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            reader, writer, since = self.idle.pop()
            if time.perf_counter() - since < self.IDLE_SECONDS and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.target.host, self.target.port)

    async def request(self, raw: bytes) -> str:
        async with self.free:
            reader, writer = await self._connection()
            try:
                writer.write(raw)
                status, keep = await _read_response(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.append((reader, writer, time.perf_counter()))
            else:
                writer.close()
            return status

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[str, bool]:
    """Status code and whether the connection stays open; the body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)[1]
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status, headers.get("connection", "").lower() != "close"


async def run_step(
    target: Target,
    rate: float,
    seconds: float,
    *,
    poisson: bool = False,
    timeout: float = 10.0,
    connections: int = 256,
    seed: int = 0,
) -> Step:
    """Send `rate` requests/s for `seconds` (constant or Poisson arrivals) and wait for all."""
    rng = random.Random(seed)
    raws = target.requests()
    count = max(1, round(rate * seconds))
    gaps = [rng.expovariate(rate) if poisson else 1 / rate for _ in range(count)]
    offsets = np.cumsum([0.0, *gaps[:-1]])
    pool = _Pool(target, connections)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    lag = 0.0
    last_done = 0.0

    async def one(raw: bytes, scheduled: float) -> None:
        nonlocal last_done
        try:
            status = await asyncio.wait_for(pool.request(raw), timeout)
        except TimeoutError:
            status = "timeout"
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            status = type(exc).__name__
        done = time.perf_counter()
        last_done = max(last_done, done)
        statuses[status] += 1
        if status == "200":
            latencies.append(done - scheduled)

    tasks = []
    start = time.perf_counter() + 0.05
    for i, offset in enumerate(offsets):
        scheduled = start + float(offset)
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag = max(lag, time.perf_counter() - scheduled)
        tasks.append(asyncio.create_task(one(raws[i % len(raws)], scheduled)))
    await asyncio.gather(*tasks)
    pool.close()
    elapsed = max(last_done - start, seconds)
    return Step(
        offered_rps=rate,
        seconds=seconds,
        sent=count,
        achieved_rps=round(statuses["200"] / elapsed, 1),
        statuses=dict(sorted(statuses.items())),
        latency_ms=percentiles(latencies),
        max_send_lag_ms=round(lag * 1000, 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="e.g. http://127.0.0.1:8000/v1/score (GET when no --body)")
    parser.add_argument("--body", action="append", default=[], help="JSON body (repeatable)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--poisson", action="store_true", help="Poisson instead of constant")
    args = parser.parse_args()
    target = Target.parse(args.url, tuple(b.encode() for b in args.body))
    step = asyncio.run(run_step(target, args.rate, args.seconds, poisson=args.poisson))
    print(json.dumps(step.as_dict(), indent=2))


if __name__ == "__main__":
    main()
