"""Dynamic batching: concurrent requests share one model call, each gets its own rows back, and one
bad request does not fail the others."""

import asyncio
import threading

import pytest

from serving.batching import DynamicBatcher, QueueFull


class Recorder:
    """A run_batch that records the batch sizes it was called with; it can be held to let requests pile up."""

    def __init__(self, fail_on=None):
        self.calls: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_on = fail_on

    def __call__(self, columns, rows, sizes):
        self.gate.wait(5)
        self.calls.append(list(sizes))
        if self.fail_on is not None and self.fail_on in columns["x"]:
            raise ValueError(f"cannot score {self.fail_on}")
        assert len(columns["x"]) == rows == sum(sizes)
        out, start = [], 0
        for size in sizes:
            out.append([v * 10 for v in columns["x"][start : start + size]])
            start += size
        return out


async def submit_all(batcher, values, pause=0.0):
    async def one(v):
        return await batcher.submit({"x": v}, len(v))

    tasks = []
    for v in values:
        tasks.append(asyncio.ensure_future(one(v)))
        await asyncio.sleep(pause)
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_requests_waiting_while_the_model_is_busy_share_the_next_call():
    async def scenario():
        recorder = Recorder()
        batcher = DynamicBatcher(recorder, max_batch_rows=64)
        recorder.gate.clear()  # the first call blocks; the rest pile up behind it
        first = asyncio.ensure_future(batcher.submit({"x": [0]}, 1))
        await asyncio.sleep(0.05)
        rest = asyncio.ensure_future(submit_all(batcher, [[i] for i in range(1, 21)]))
        await asyncio.sleep(0.05)
        recorder.gate.set()
        results = [await first, *await rest]
        batcher.close()
        return recorder.calls, results

    calls, results = asyncio.run(scenario())
    assert calls == [[1], [1] * 20]
    assert results == [[i * 10] for i in range(21)]


def test_a_batch_never_exceeds_the_row_limit_but_a_large_request_goes_alone():
    async def scenario():
        recorder = Recorder()
        batcher = DynamicBatcher(recorder, max_batch_rows=5)
        recorder.gate.clear()
        blocker = asyncio.ensure_future(batcher.submit({"x": [0]}, 1))
        await asyncio.sleep(0.05)
        rest = asyncio.ensure_future(submit_all(batcher, [[1, 2], [3, 4], [5, 6], [7] * 9, [8]]))
        await asyncio.sleep(0.05)
        recorder.gate.set()
        await blocker
        results = await rest
        batcher.close()
        return recorder.calls, results

    calls, results = asyncio.run(scenario())
    assert calls == [[1], [2, 2], [2], [9], [1]]
    assert results == [[10, 20], [30, 40], [50, 60], [70] * 9, [80]]


def test_one_failing_request_fails_alone():
    async def scenario():
        recorder = Recorder(fail_on=13)
        batcher = DynamicBatcher(recorder, max_batch_rows=64)
        recorder.gate.clear()
        blocker = asyncio.ensure_future(batcher.submit({"x": [0]}, 1))
        await asyncio.sleep(0.05)
        rest = asyncio.ensure_future(submit_all(batcher, [[11], [12], [13], [14]]))
        await asyncio.sleep(0.05)
        recorder.gate.set()
        await blocker
        results = await rest
        batcher.close()
        return results

    results = asyncio.run(scenario())
    assert results[0] == [110] and results[1] == [120] and results[3] == [140]
    assert isinstance(results[2], ValueError) and "cannot score 13" in str(results[2])


def test_max_wait_holds_a_batch_open_for_requests_arriving_soon_after():
    async def scenario(max_wait):
        recorder = Recorder()
        batcher = DynamicBatcher(recorder, max_batch_rows=64, max_wait=max_wait)
        await submit_all(batcher, [[i] for i in range(4)], pause=0.01)
        batcher.close()
        return recorder.calls

    assert asyncio.run(scenario(max_wait=0.5)) == [[1, 1, 1, 1]]
    assert len(asyncio.run(scenario(max_wait=0.0))) > 1


def test_past_the_queue_limit_a_request_is_refused_at_once_and_the_queue_drains():
    async def scenario():
        recorder = Recorder()
        batcher = DynamicBatcher(recorder, max_batch_rows=2, max_queued_rows=5)
        recorder.gate.clear()
        blocker = asyncio.ensure_future(batcher.submit({"x": [0]}, 1))  # taken into a batch: not waiting
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(batcher.submit({"x": v}, len(v))) for v in ([1, 2], [3], [4, 5])]
        await asyncio.sleep(0)
        queued, full = batcher.queued_rows, batcher.full()
        with pytest.raises(QueueFull, match="5 rows are waiting to be scored, and the limit is 5"):
            await batcher.submit({"x": [6]}, 1)
        recorder.gate.set()
        results = [await blocker, *await asyncio.gather(*waiting)]
        after = batcher.queued_rows, batcher.full()
        last = await batcher.submit({"x": [6]}, 1)  # room again
        batcher.close()
        return queued, full, results, after, last

    queued, full, results, after, last = asyncio.run(scenario())
    assert (queued, full) == (5, True)
    assert results == [[0], [10, 20], [30], [40, 50]]
    assert after == (0, False) and last == [60]


def test_a_request_larger_than_the_queue_limit_is_taken_when_nothing_waits():
    async def scenario():
        batcher = DynamicBatcher(Recorder(), max_batch_rows=2, max_queued_rows=3)
        result = await batcher.submit({"x": [1, 2, 3, 4]}, 4)
        batcher.close()
        return result

    assert asyncio.run(scenario()) == [10, 20, 30, 40]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_batch_rows": 0}, "max_batch_rows must be at least 1"),
        ({"max_wait": -1}, "max_wait must not be negative"),
        ({"threads": 0}, "threads must be at least 1"),
        ({"max_queued_rows": 0}, "max_queued_rows must be at least 1"),
    ],
)
def test_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DynamicBatcher(lambda *a: [], **kwargs)
