"""The predictor under hostile clients, against a real server process: bodies over the size limit
(413 on every route, declared or chunked), the memory a body at the limit costs, nesting too deep
(400), a full queue (503 with Retry-After), slow-drip connections (408 and closed) while a normal
client keeps getting answers."""

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import records, start_server, stop_server, v2_tensors

pytestmark = pytest.mark.pipeline

LIMIT = 4 * 1024 * 1024
MAX_ROWS = 2000  # about what 4 MB holds of Ames rows, as the defaults pair 20 MB with 10,000 rows
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def ames_folder(ames_model, tmp_path_factory) -> str:
    """The registered version's files as KServe's storage initializer lays them out (served with
    their digest, tests/serving/conftest.py)."""
    import mlflow.artifacts

    folder = tmp_path_factory.mktemp("mnt") / "models"
    mlflow.artifacts.download_artifacts(artifact_uri=ames_model.uri, dst_path=str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def guarded(ames_folder, tmp_path_factory):
    server = start_server(
        ames_folder,
        "ames",
        tmp_path_factory.mktemp("logs") / "guarded.log",
        "--max-body-bytes",
        str(LIMIT),
        "--body-timeout-seconds",
        "3",
        "--max-request-rows",
        str(MAX_ROWS),
    )
    yield server
    stop_server(server)


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def padded(body: dict, size: int) -> bytes:
    """`body` as JSON grown to `size` bytes with whitespace (which decodes to nothing)."""
    data = json.dumps(body).encode()
    return data[:-1] + b" " * (size - len(data)) + data[-1:]


PATHS = [
    "/v1/models/ames:predict",
    "/v2/models/ames/infer",
    "/v1/models/ames:explain",
    "/v2/models/other/infer",
]  # each reads its body


@pytest.mark.parametrize("path", PATHS)
def test_a_body_over_the_limit_is_413_on_every_route(guarded, path):
    body = padded({"instances": []}, LIMIT + 1)
    declared = httpx.post(guarded.url + path, content=body, headers=JSON, timeout=30)
    chunked = httpx.post(
        guarded.url + path, content=iter([body[: LIMIT // 2], body[LIMIT // 2 :]]), headers=JSON, timeout=30
    )
    for response in (declared, chunked):
        assert response.status_code == 413, (path, response.status_code, response.text[:300])
        error = response.json()
        assert error["field"] == "body" and error["problem"] == f"is larger than the limit of {LIMIT} bytes (4 MB)"
    assert (
        "transfer-encoding" not in declared.request.headers
        and chunked.request.headers["transfer-encoding"] == "chunked"
    )


def test_a_body_at_the_limit_is_still_served(guarded, ames_rows):
    body = padded({"instances": records(ames_rows.head(3))}, LIMIT)
    response = httpx.post(guarded.url + "/v1/models/ames:predict", content=body, headers=JSON, timeout=30)
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["predictions"]) == 3


def memory_bodies(ames_rows) -> dict[str, bytes]:
    """Bodies of 3.2-4 MB: valid ones scored; valid ones refused for their row count after
    decoding; ones only the general path decodes; and shapes that cost most once decoded (refused
    before decoding by their value count, or padded with whitespace to stay under it)."""
    rows = records(ames_rows)
    row_bytes = len(json.dumps(rows).encode()) / len(rows)
    most = (rows * 100)[:MAX_ROWS]
    over = (rows * 100)[: int(LIMIT * 0.97 / row_bytes)]
    tensors = json.dumps({"inputs": v2_tensors(ames_rows.iloc[[i % len(rows) for i in range(2000)]])}).encode()
    tensor_rows = int(2000 * LIMIT * 0.97 / len(tensors))
    allowed = 2 * MAX_ROWS * len(rows[0])  # values the count lets through to a decoder
    return {
        f"V1 rows ({MAX_ROWS}), scored": json.dumps({"instances": most}).encode(),
        f"V1 rows ({len(over)}), too many": json.dumps({"instances": over}).encode(),
        "V1 rows, unknown column (general path)": json.dumps({"instances": [dict(r, Bogus=1) for r in most]}).encode(),
        f"V2 tensors ({tensor_rows} rows), too many": json.dumps(
            {"inputs": v2_tensors(ames_rows.iloc[[i % len(rows) for i in range(tensor_rows)]])}
        ).encode(),
        "array of 1s": b'{"instances": [' + b"1," * (LIMIT // 2 - 100) + b"1]}",
        "array of empty arrays": b'{"instances": [' + b"[]," * (LIMIT // 3 - 100) + b"[]]}",
        "empty arrays under the count, padded": padded({"instances": [[]] * allowed}, LIMIT - 10),
        "1-letter strings under the count, padded": padded({"instances": ["a"] * allowed}, LIMIT - 10),
    }


def test_a_body_at_the_limit_raises_peak_memory_by_at_most_8x_its_size(ames_folder, ames_rows, tmp_path):
    """A fresh server; its peak RSS (VmHWM) over its RSS once warm, after each body in turn: the
    peak any one of them (or all of them together) reached."""
    server = start_server(
        ames_folder,
        "ames",
        tmp_path / "memory.log",
        "--max-body-bytes",
        str(LIMIT),
        "--max-request-rows",
        str(MAX_ROWS),
    )
    try:
        pid = server.predictor.process.pid
        for _ in range(3):
            assert server.predict_v1({"instances": records(ames_rows.head(50))}).status_code == 200
        baseline = status_kb(pid, "VmRSS") * 1024
        figures = {}
        for name, body in memory_bodies(ames_rows).items():
            assert LIMIT * 0.75 < len(body) <= LIMIT, (name, len(body))
            response = httpx.post(server.url + "/v1/models/ames:predict", content=body, headers=JSON, timeout=60)
            assert response.status_code < 500, (name, response.text[:300])
            figures[name] = ((status_kb(pid, "VmHWM") * 1024 - baseline) / LIMIT, response.status_code)
        print(
            f"\nbaseline RSS {baseline / 2**20:.0f} MB; "
            f"peak RSS growth over it in units of {LIMIT} bytes, after each body:"
        )
        for name, (growth, status) in figures.items():
            print(f"  {name:45s} {growth:5.2f}x  ({status})")
        assert all(growth <= 8 for growth, _ in figures.values()), figures
    finally:
        stop_server(server)


@pytest.mark.parametrize("where", ["ignored field", "value", "V2 tensor data"])
@pytest.mark.parametrize("depth", [1_100, 5_000])
def test_nesting_too_deep_anywhere_is_a_400(guarded, ames_rows, where, depth):
    nested = "[" * depth + "]" * depth
    row = records(ames_rows.head(1))[0]
    if where == "ignored field":
        v1 = json.dumps({"instances": [row]})[:-1] + f', "note": {nested}}}'
        v2 = json.dumps({"inputs": v2_tensors(ames_rows.head(1))})[:-1] + f', "note": {nested}}}'
    elif where == "value":
        v1 = json.dumps({"instances": [dict(row, Lot_Area="X")]}).replace('"X"', nested)
        v2 = json.dumps({"inputs": [dict(t, data=["X"]) for t in v2_tensors(ames_rows.head(1))]}).replace(
            '"X"', nested, 1
        )
    else:
        v1 = json.dumps({"inputs": {"Lot_Area": "X"}}).replace('"X"', nested)
        v2 = json.dumps({"inputs": [{"name": "Lot_Area", "shape": [1], "datatype": "FP64", "data": "X"}]}).replace(
            '"X"', nested
        )
    for path, body in (("/v1/models/ames:predict", v1), ("/v2/models/ames/infer", v2)):
        response = httpx.post(guarded.url + path, content=body.encode(), headers=JSON, timeout=30)
        assert response.status_code == 400, (path, response.text[:300])
        assert response.json()["field"] == "body" and "nested too deeply" in response.json()["problem"]


def test_a_full_queue_answers_503_with_retry_after(ames_folder, ames_rows, tmp_path):
    """Queue limit: one request of the most rows waiting. Of 16 such requests at once, those that
    find it full are refused at once (before their body is decoded), the rest are scored."""
    server = start_server(
        ames_folder, "ames", tmp_path / "queue.log", "--max-request-rows", "1000", "--max-queued-rows", "1000"
    )
    try:
        body = json.dumps({"instances": (records(ames_rows) * 5)[:1000]}).encode()

        async def flood():
            async with httpx.AsyncClient(
                base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=16)
            ) as client:
                return await asyncio.gather(
                    *(client.post("/v1/models/ames:predict", content=body, headers=JSON) for _ in range(16))
                )

        responses = asyncio.run(flood())
        codes = sorted(r.status_code for r in responses)
        assert set(codes) == {200, 503}, codes
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["retry-after"] == "1"
        assert (
            busy.json()["field"] == "queue"
            and "rows are waiting to be scored, and the limit is 1000" in busy.json()["problem"]
        )
        assert server.predict_v1({"instances": records(ames_rows.head(2))}).status_code == 200  # drained
    finally:
        stop_server(server)


def drip(port: int, body_first: bool, deadline: float) -> tuple[bytes, float]:
    """One slow client: a request's headers (or its body, after whole headers) one byte every 2 s,
    until the server answers or closes. Returns what the server sent and when it closed."""
    body = b'{"instances": []}' * 4
    head = (
        "POST /v1/models/ames:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
    received = b""
    try:
        if body_first:
            sock.sendall(head)
            to_send = body
        else:
            to_send = head + body
        for byte in to_send:
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue  # nothing yet: the 2 s between bytes
            except OSError:
                break
            received += chunk
            if not chunk:
                break
        return received, time.monotonic()
    finally:
        sock.close()


def test_slow_drip_connections_are_cut_off_with_408_while_a_normal_client_is_served(guarded, ames_rows):
    """60 connections send one byte every 2 s (30 in the headers, 30 in the body); the request
    deadline is 3 s here. Meanwhile a normal client's requests are all answered, quickly."""
    from concurrent.futures import ThreadPoolExecutor

    port = int(guarded.url.rsplit(":", 1)[1])
    body = {"instances": records(ames_rows.head(2))}
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=60) as pool:
        drippers = [pool.submit(drip, port, i % 2 == 0, start + 20) for i in range(60)]
        time.sleep(1)  # all 60 connected and dripping
        latencies = []
        with httpx.Client(timeout=10) as client:
            while time.monotonic() - start < 6:
                sent = time.monotonic()
                response = client.post(f"{guarded.url}/v1/models/ames:predict", json=body)
                latencies.append(time.monotonic() - sent)
                assert response.status_code == 200, response.text[:300]
        results = [d.result() for d in drippers]
    assert len(latencies) > 10 and max(latencies) < 2, latencies
    for received, closed in results:
        assert received.startswith(b"HTTP/1.1 408 "), received[:200]
        assert b'"field":"body","problem":"did not arrive within 3 s"' in received
        assert closed - start < 3 + 1 + 4, (
            closed - start
        )  # cut at the deadline (after one 2 s wait at most), not at 20 s
    assert "Traceback" not in guarded.output()
