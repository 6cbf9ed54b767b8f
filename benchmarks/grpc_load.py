"""Load over the Open Inference Protocol's gRPC service, measured as benchmarks.loadgen measures HTTP.

`concurrency` callers share one channel (one HTTP/2 connection, as a gRPC client keeps), each
sending the same pre-built `ModelInferRequest` back to back. Answers in the first `warmup` seconds
are not counted; the level ends after `duration` seconds or `max_requests` counted answers.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from benchmarks.loadgen import LevelResult


def infer_request(model_name: str, frame) -> pb.ModelInferRequest:
    """One tensor per column of `frame` as raw contents, the way Triton's gRPC client sends them."""
    from kserve import InferInput, InferRequest

    from lifecycle.contract.protocol import v2_datatype

    inputs = []
    for name in frame.columns:
        values = frame[name].to_numpy()
        datatype = v2_datatype(values)
        if datatype == "BYTES":
            values = values.astype(object)
        tensor = InferInput(name, [len(frame)], datatype)
        tensor.set_data_from_numpy(values, binary_data=True)
        inputs.append(tensor)
    return InferRequest(model_name, inputs, request_id="bench").to_grpc()


def predictions(response: pb.ModelInferResponse) -> list[float]:
    from kserve.protocol.infer_type import InferResponse

    return [float(v) for v in InferResponse.from_grpc(response).get_output_by_name("prediction").as_numpy()]


def infer_once(address: str, request: pb.ModelInferRequest, timeout: float = 60.0) -> list[float]:
    """The prediction of one call (for checking the answer before the load)."""

    async def call():
        async with grpc.aio.insecure_channel(address) as channel:
            return await GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=timeout)

    return predictions(asyncio.run(call()))


def measure(
    address: str, request: pb.ModelInferRequest, concurrency: int, warmup: float, duration: float, max_requests: int
) -> LevelResult:
    return asyncio.run(_level(address, request, concurrency, warmup, duration, max_requests))


async def _level(address, request, concurrency, warmup, duration, max_requests, grace: float = 10.0) -> LevelResult:
    clock = time.perf_counter
    latencies: list[float] = []
    errors: list[str] = []
    async with grpc.aio.insecure_channel(address) as channel:
        infer = GRPCInferenceServiceStub(channel).ModelInfer
        await channel.channel_ready()
        start = clock()
        measure_from, deadline = start + warmup, start + warmup + duration
        stop = asyncio.Event()

        stopped = [deadline]

        async def caller() -> None:
            while not stop.is_set() and clock() < deadline:
                sent = clock()
                try:
                    await infer(request, timeout=warmup + duration + grace)
                except grpc.aio.AioRpcError as exc:
                    if sent >= measure_from:
                        errors.append(f"{exc.code().name}: {exc.details()}")
                    continue
                done = clock()
                if done >= measure_from and not stop.is_set():
                    latencies.append(done - sent)
                    if len(latencies) >= max_requests:
                        stopped[0] = done
                        stop.set()

        await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(concurrency))), warmup + duration + grace)
        seconds = max(stopped[0] - measure_from, 1e-9)
    return LevelResult.of(concurrency, latencies, errors, seconds)
