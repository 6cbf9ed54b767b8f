"""A cheap HTTP/1.1 load generator: asyncio streams, keep-alive, pre-encoded requests.

The client shares the machine's cores with the server it measures, so each request costs it a
write of ready bytes and a read of the status line, headers and body: no HTTP library, no JSON,
one connection per concurrent client. Every level is bounded by a time limit and a request count.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Target:
    """Where requests go; `body` is sent as is with every request."""

    port: int
    path: str
    body: bytes
    host: str = "127.0.0.1"

    def request_bytes(self) -> bytes:
        head = (
            f"POST {self.path} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            "\r\n"
        )
        return head.encode("ascii") + self.body


@dataclass
class LevelResult:
    concurrency: int
    requests: int  # completed with a 2xx inside the measured window
    errors: int  # non-2xx answers, broken connections and requests still open at the end
    seconds: float  # the measured window
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float = math.nan
    rows_per_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(
        cls, concurrency: int, latencies: list[float], errors: list[str], seconds: float, rows_per_request: int = 1
    ) -> LevelResult:
        """A level's figures from its answers' latencies (s), its errors and its measured window (s)."""
        latencies = sorted(latencies)
        return cls(
            concurrency=concurrency,
            requests=len(latencies),
            errors=len(errors),
            seconds=round(seconds, 3),
            rps=len(latencies) / seconds,
            p50_ms=_percentile(latencies, 0.50) * 1000,
            p99_ms=_percentile(latencies, 0.99) * 1000,
            mean_ms=sum(latencies) / len(latencies) * 1000 if latencies else math.nan,
            rows_per_s=len(latencies) * rows_per_request / seconds,
            error_samples=sorted(set(errors))[:3],
        )


class ClosedConnection(Exception):
    """The server closed the connection (or answered something that is not HTTP/1.1)."""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one HTTP/1.1 response; Content-Length or chunked bodies."""
    status_line = await reader.readline()
    if not status_line:
        raise ClosedConnection("connection closed before a response")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ClosedConnection(f"not an HTTP response: {status_line[:80]!r}")
    status = int(parts[1])
    length = None
    chunked = False
    keep_alive = True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = b"close" not in value.lower()
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readline()  # trailer end (no trailers expected)
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        return status, bytes(body), keep_alive
    if length is None:
        return status, await reader.read(), False
    return status, await reader.readexactly(length), keep_alive


async def request_once(target: Target, timeout: float = 60.0) -> tuple[int, bytes]:
    """One request on a fresh connection: the status and the body (for checking answers)."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(target.request_bytes())
        status, body, _ = await asyncio.wait_for(read_response(reader), timeout)
        return status, body
    finally:
        writer.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


async def run_level(
    target: Target,
    concurrency: int,
    warmup: float,
    duration: float,
    max_requests: int,
    grace: float = 10.0,
    rows_per_request: int = 1,
) -> LevelResult:
    """`concurrency` clients, each one keep-alive connection sending requests back to back.

    Answers that arrive in the first `warmup` seconds are not counted; after that, requests/s is
    the answers that arrive in the window over its length (a slow server's queue does not get
    lost), and latencies are theirs. Measuring stops after `duration` seconds or `max_requests`
    counted answers, whichever comes first; clients then finish the request they have in flight
    (up to `grace` seconds; later ones count as errors).
    """
    payload = target.request_bytes()
    clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
    start = clock()
    measure_from = start + warmup
    deadline = measure_from + duration
    latencies: list[float] = []
    errors: list[str] = []
    state = {"stop": False, "measured_until": None}

    def finish() -> None:
        if not state["stop"]:
            state["stop"] = True
            state["measured_until"] = clock()

    async def client() -> None:
        reader = writer = None
        try:
            while not state["stop"]:
                if clock() >= deadline:
                    finish()
                    break
                if writer is None:
                    try:
                        reader, writer = await asyncio.open_connection(target.host, target.port)
                    except OSError as exc:
                        if clock() >= measure_from:
                            errors.append(f"connect: {exc}")
                        await asyncio.sleep(0.05)
                        continue
                sent = clock()
                try:
                    writer.write(payload)
                    status, body, keep_alive = await read_response(reader)
                except (OSError, ClosedConnection, asyncio.IncompleteReadError, ValueError) as exc:
                    writer.close()
                    reader = writer = None
                    if clock() >= measure_from and not state["stop"]:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                done = clock()
                if not keep_alive:
                    writer.close()
                    reader = writer = None
                if done < measure_from or state["stop"]:
                    continue  # warm-up, or finished after the window closed
                if 200 <= status < 300:
                    latencies.append(done - sent)
                    if len(latencies) >= max_requests:
                        finish()
                else:
                    errors.append(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
        finally:
            if writer is not None:
                writer.close()

    tasks = [asyncio.create_task(client()) for _ in range(concurrency)]
    stopper = asyncio.create_task(_stop_at(deadline, clock, finish, lambda: state["stop"]))
    _, pending = await asyncio.wait(tasks, timeout=warmup + duration + grace)
    stopper.cancel()
    for task in pending:
        task.cancel()
        errors.append(f"no answer within {grace:.0f} s after the end of the level")
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    finish()
    seconds = max(state["measured_until"] - measure_from, 1e-9)
    return LevelResult.of(concurrency, latencies, errors, seconds, rows_per_request)


async def _stop_at(deadline: float, clock, finish, stopped) -> None:
    # Clients waiting on a slow server would otherwise only notice the deadline after their answer.
    while not stopped():
        remaining = deadline - clock()
        if remaining <= 0:
            finish()
            return
        await asyncio.sleep(remaining + 0.001)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (a cheaper client), else asyncio's own loop."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def measure(
    target: Target, concurrency: int, warmup: float, duration: float, max_requests: int, rows_per_request: int = 1
) -> LevelResult:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(
            run_level(target, concurrency, warmup, duration, max_requests, rows_per_request=rows_per_request)
        )
    finally:
        loop.close()


def fetch(target: Target, timeout: float = 60.0) -> tuple[int, bytes]:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(request_once(target, timeout))
    finally:
        loop.close()
