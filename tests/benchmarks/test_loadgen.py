"""The serving benchmark's load generator and target verdicts, against a real HTTP/1.1 server on loopback."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import pytest

from benchmarks.loadgen import LevelResult, Target, fetch, measure
from benchmarks.serving import TARGETS, Row, targets
from tests.loopback import QuietHandler


class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the servers measured

    def do_POST(self):
        body = self.body()
        if self.path == "/fail":
            self._answer(500, b'{"error": "boom"}')
        elif self.path == "/close":
            self._answer(200, body, close=True)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (body[:3], body[3:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._answer(200, body)

    def _answer(self, status: int, body: bytes, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/echo", "/chunked", "/close"])
def test_fetch_reads_each_body_framing(port, path):
    assert fetch(Target(port, path, b'{"instances": [1]}')) == (200, b'{"instances": [1]}')


def test_level_counts_answers_and_stops_at_max_requests(port):
    result = measure(Target(port, "/echo", b"{}"), concurrency=4, warmup=0.1, duration=5.0, max_requests=100)
    assert result.errors == 0
    assert 100 <= result.requests < 100 + 4  # clients finish the request in flight
    assert result.seconds < 5.0
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.rps == pytest.approx(result.requests / result.seconds, rel=1e-3)  # seconds are rounded to ms


def test_level_reconnects_when_the_server_closes(port):
    result = measure(Target(port, "/close", b"{}"), concurrency=2, warmup=0.0, duration=0.5, max_requests=50)
    assert result.errors == 0 and result.requests >= 50


def test_error_answers_are_errors_not_requests(port):
    result = measure(Target(port, "/fail", b"{}"), concurrency=2, warmup=0.0, duration=0.3, max_requests=1000)
    assert result.requests == 0 and result.errors > 0
    assert result.error_samples == ['HTTP 500: {"error": "boom"}']


def test_rows_per_second_counts_rows_of_each_request(port):
    result = measure(
        Target(port, "/echo", b"{}"), concurrency=1, warmup=0.0, duration=0.3, max_requests=20, rows_per_request=1000
    )
    assert result.rows_per_s == pytest.approx(1000 * result.rps)


def _level(concurrency: int, rps: float, p99: float = 30.0, errors: int = 0) -> LevelResult:
    return LevelResult(concurrency, 1000, errors, 10.0, rps, 10.0, p99)


def _ours(protocol: str, rps: float, batch_ratio: float, overhead: float = 1.0) -> Row:
    return Row(
        "ours", protocol, "", levels={32: _level(32, rps)}, paired_overhead_ms=overhead, paired_batch_ratio=batch_ratio
    )


def _verdicts(rows: list[Row]) -> dict[str, bool | None]:
    return {check["target"]: check["met"] for check in targets(rows)}


def test_targets_judge_each_figure_against_its_bound():
    rows = [
        _ours("V1", 1000.0, 0.69),
        _ours("V2", 900.0, 0.71),
        Row("mlserver-best", "V2", "", levels={32: _level(32, 450.0)}),
        Row("mlflow", "mlflow", "", levels={32: _level(32, 50.0)}),
    ]
    verdicts = _verdicts(rows)
    assert verdicts["c32 requests/s >= 2x MLServer best"] is True  # 900 / 450 = 2.0x
    assert verdicts["c32 requests/s >= 20x mlflow models serve"] is True  # 1000 / 50 = 20x
    assert verdicts["c32 p99 <= 150 ms and no errors"] is True
    assert verdicts["c1 p50 within 3 ms of in-process predict"] is True
    assert verdicts["1000-row requests >= 0.7x in-process rows/s (V1)"] is False
    assert verdicts["1000-row requests >= 0.7x in-process rows/s (V2)"] is True
    assert verdicts["1000-row requests >= 0.7x in-process rows/s (V1 columns)"] is None  # not measured

    rows[1].levels[32] = _level(32, 899.0)
    rows[0].levels[32] = _level(32, 1000.0, p99=TARGETS["c32_p99_ms"] + 1)
    rows[0].paired_overhead_ms = 3.01
    verdicts = _verdicts(rows)
    assert verdicts["c32 requests/s >= 2x MLServer best"] is False
    assert verdicts["c32 p99 <= 150 ms and no errors"] is False
    assert verdicts["c1 p50 within 3 ms of in-process predict"] is False


def test_errors_fail_the_latency_target_and_missing_systems_are_not_judged():
    rows = [Row("ours", "V1", "", levels={32: _level(32, 1000.0, errors=1)})]
    verdicts = _verdicts(rows)
    assert verdicts["c32 p99 <= 150 ms and no errors"] is False
    assert verdicts["c32 requests/s >= 2x MLServer best"] is None
    assert verdicts["c32 requests/s >= 20x mlflow models serve"] is None
