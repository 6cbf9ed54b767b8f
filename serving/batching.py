"""Dynamic batching: concurrent requests share one model call, run off the event loop.

A call of the Ames pipeline costs about the same for 1 row as for 100, so the rows of every
request waiting when the predict thread frees up go into one frame and one `predict`. With
`max_wait` 0 the batcher never waits on purpose: under load, requests pile up while the previous
batch runs, and a lone request is not delayed. A positive `max_wait` holds a batch open up to
that long for more rows (useful when requests arrive just too far apart to overlap).
The rows waiting for a batch are bounded (`max_queued_rows`): past it `submit` refuses at once
(`QueueFull`), so an overloaded server answers quickly instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class _Item:
    columns: dict[str, list]
    rows: int
    future: asyncio.Future = field(repr=False)


class QueueFull(Exception):
    """More rows are waiting than the batcher may hold; the request was not queued."""

    def __init__(self, waiting: int, limit: int):
        super().__init__(f"{waiting} rows are waiting to be scored, and the limit is {limit}")
        self.waiting = waiting
        self.limit = limit


class DynamicBatcher:
    """`await submit(columns, rows)` returns what `run_batch` gives for those rows.

    `run_batch(columns, rows, sizes)` runs in a worker thread with the columns of all requests
    in the batch concatenated, and returns one result per request (in `sizes` order).
    """

    def __init__(
        self,
        run_batch: Callable[[dict[str, list], int, list[int]], list[Any]],
        max_batch_rows: int = 64,
        max_wait: float = 0.0,
        threads: int = 1,
        max_queued_rows: int | None = None,
    ):
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be at least 1, got {max_batch_rows}")
        if max_wait < 0:
            raise ValueError(f"max_wait must not be negative, got {max_wait}")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if max_queued_rows is not None and max_queued_rows < 1:
            raise ValueError(f"max_queued_rows must be at least 1, got {max_queued_rows}")
        self.max_queued_rows = max_queued_rows  # None: unbounded
        self.queued_rows = 0  # rows submitted and not yet taken into a batch
        self.run_batch = run_batch
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait
        self.threads = threads
        self._pending: deque[_Item] = deque()
        self._arrived: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    def _start(self) -> None:
        # Created lazily, on the loop that serves requests (uvicorn's, possibly in a worker process).
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(self.threads)
        self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="predict")
        self._task = asyncio.get_running_loop().create_task(self._gather_batches())

    def full(self) -> bool:
        """No more rows can be queued now (checked before decoding a request, to spare the work)."""
        return self.max_queued_rows is not None and self.queued_rows >= self.max_queued_rows

    async def submit(self, columns: dict[str, list], rows: int) -> Any:
        """Raises QueueFull when the waiting rows and these would pass `max_queued_rows` (a request
        that finds the queue empty is always taken, however large)."""
        limit = self.max_queued_rows
        if limit is not None and self.queued_rows and self.queued_rows + rows > limit:
            raise QueueFull(self.queued_rows, limit)
        if self._task is None or self._task.done():
            self._start()
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(columns, rows, future))
        self.queued_rows += rows
        self._arrived.set()
        return await future

    def _take(self, batch: list[_Item], rows: int) -> int:
        """Moves waiting requests into the batch while they fit (a first request always fits)."""
        pending = self._pending
        while pending:
            item = pending[0]
            if item.future.done():  # the client went away
                pending.popleft()
                self.queued_rows -= item.rows
                continue
            if batch and rows + item.rows > self.max_batch_rows:
                break
            batch.append(pending.popleft())
            self.queued_rows -= item.rows
            rows += item.rows
        return rows

    async def _gather_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            batch: list[_Item] = []
            rows = 0
            while not batch:
                if not self._pending:
                    self._arrived.clear()
                    await self._arrived.wait()
                rows = self._take(batch, rows)
            if self.max_wait > 0 and rows < self.max_batch_rows:
                deadline = loop.time() + self.max_wait
                while rows < self.max_batch_rows and not self._pending_blocked(rows):
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), remaining)
                    except TimeoutError:
                        break
                    rows = self._take(batch, rows)
            task = loop.create_task(self._execute(batch, rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _pending_blocked(self, rows: int) -> bool:
        """True when the next waiting request would not fit: waiting longer gains nothing."""
        return bool(self._pending) and rows + self._pending[0].rows > self.max_batch_rows

    async def _execute(self, batch: list[_Item], rows: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            try:
                results = await loop.run_in_executor(self._executor, self._run_merged, batch, rows)
            except Exception as exc:
                if len(batch) == 1:
                    results = [exc]
                else:
                    # One request's rows should not fail the others: score them one by one.
                    log.warning("batch of %d requests failed (%s); retrying them one by one", len(batch), exc)
                    results = await loop.run_in_executor(self._executor, self._run_each, batch)
            for item, result in zip(batch, results, strict=False):
                if item.future.done():
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
        finally:
            self._slots.release()

    def _run_merged(self, batch: list[_Item], rows: int) -> list[Any]:
        if len(batch) == 1:
            return self.run_batch(batch[0].columns, rows, [rows])
        names = batch[0].columns.keys()
        merged = {}
        for name in names:
            values: list = []
            for item in batch:
                values.extend(item.columns[name])
            merged[name] = values
        return self.run_batch(merged, rows, [item.rows for item in batch])

    def _run_each(self, batch: list[_Item]) -> list[Any]:
        results: list[Any] = []
        for item in batch:
            try:
                results.extend(self.run_batch(item.columns, item.rows, [item.rows]))
            except Exception as exc:
                results.append(exc)
        return results

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
