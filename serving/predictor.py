"""The KServe predictor for a registered sklearn pipeline: V1 and V2 in, batched predict, labels and
probabilities out."""

from __future__ import annotations

import gc
import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import orjson
from kserve import Model
from kserve.protocol.infer_type import InferRequest, InferResponse
from threadpoolctl import ThreadpoolController

from lifecycle.contract.protocol import V2_DATATYPE_OF_KIND, v1_request, v2_datatype, v2_output
from serving.batching import DynamicBatcher, QueueFull
from serving.body import Body
from serving.checks import check_value_count, request_id, rows_from_v1, rows_from_v2
from serving.columns import InputSchema, category_values
from serving.decoding import TypedDecoders, rows_from_v1_typed, rows_from_v2_typed
from serving.errors import TOO_DEEP, ModelLoadError, RequestError, RouteNotOffered
from serving.frames import FrameLayout, frame_from_columns, numeric_block
from serving.limits import RequestLimits
from serving.loading import LoadedModel, load_model
from serving.quality import InputQuality, QualityChecks, input_ranges
from serving.routes import install_routes
from serving.rows import Rows
from serving.tensors import PLAIN, AnswerForm, answer_form, infer_response, request_form, v2_body

log = logging.getLogger(__name__)
_ANY_JSON = msgspec.json.Decoder()


@dataclass(frozen=True)
class BatchSettings:
    max_batch_size: int = 64  # rows per model call
    max_wait_ms: float = 0.0  # how long a batch may wait for more rows (0: never wait on purpose)
    max_request_rows: int = 10_000  # a larger request is refused
    predict_threads: int = 1  # model calls that may run at once
    parallel_rows: int = 256  # model calls of at least this many rows use every core (OpenMP)
    max_queued_rows: int | None = None  # rows that may wait for a model call; past it 503 (None: 4x max_request_rows)

    @property
    def queue_limit(self) -> int:
        return self.max_queued_rows or 4 * self.max_request_rows


@dataclass
class _Parsed:
    rows: Rows
    protocol: str  # "v1" or "v2"
    request_id: str | None = None
    form: AnswerForm = PLAIN  # a V2 answer's outputs, and whether as binary data or gRPC


@dataclass
class Scored:
    values: np.ndarray  # predictions (labels or numbers)
    proba: np.ndarray | None  # [rows, classes] for a classifier


def settle_heap() -> None:
    """Moves everything loaded so far (libraries, the model: some 400k objects) out of the garbage
    collector's reach. A full collection over them pauses the event loop and the predict thread for
    about 200 ms, which was the whole p99 tail under load."""
    gc.collect()
    gc.freeze()


@contextmanager
def collector_paused():
    """No cyclic garbage collection inside the block. Decoding a large batch allocates a container or
    two per row (a dict, or a struct and a tuple), and every 700 allocations start a collection that
    walks all of them again while the body is still being read. Decoded JSON is a tree, with no
    cycles to collect: its containers are freed by reference counting."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def label_key(label: Any) -> str:
    """A class label as a JSON object key: text as it is, any other label as its JSON text (`1`, `true`)."""
    return label if isinstance(label, str) else orjson.dumps(label).decode()


class TabularModel(Model):
    """Serves one MLflow sklearn model; refuses to start if it cannot load or predict it."""

    def __init__(
        self,
        name: str,
        model_uri: str,
        settings: BatchSettings | None = None,
        model_version: str | None = None,
        model_sha256: str | None = None,
        limits: RequestLimits | None = None,
        input_quality: bool = True,
    ):
        super().__init__(name)
        self.input_quality = input_quality  # count blanks, unseen categories, out-of-range numbers (/metrics)
        self.model_uri = model_uri
        self.settings = settings or BatchSettings()
        self.model_version = model_version  # V2 answers carry it, so a client sees which version answered
        self.model_sha256 = model_sha256  # the serialized model's expected digest, checked before it loads
        self.limits = limits or RequestLimits()  # serving.routes puts them in front of every route
        self.loaded: LoadedModel | None = None
        self.class_keys: list[str] = []
        self.output_names: list[str] = []  # the V2 answer's tensors, in order
        self.schema: InputSchema | None = None
        self.decoders: TypedDecoders | None = None  # made at load: a signature they cannot express stops the start
        self.layout: FrameLayout | None = None
        self.input_ranges: dict[str, tuple[float, float]] = {}  # from MLmodel's metadata, checked at load
        self.quality: InputQuality | None = None  # the data-quality counters (serving.quality)
        self.batcher: DynamicBatcher | None = None
        self._threads: ThreadpoolController | None = None

    def load(self) -> bool:
        self.loaded = load_model(self.model_uri, expected_sha256=self.model_sha256)
        self.schema = InputSchema.from_signature(self.loaded.signature, category_values(self.loaded.model))
        self.decoders = TypedDecoders(self.schema)
        self.layout = FrameLayout.of(self.schema)
        self.input_ranges = input_ranges(self.loaded.metadata, self.schema, self.name)
        self.class_keys = [label_key(label) for label in self.loaded.classes or []]
        self.output_names = ["prediction"] + [f"probability_{key}" for key in self.class_keys]
        self._start_serving()
        self._warm_up()
        settle_heap()
        self.ready = True
        return self.ready

    def _start_serving(self) -> None:
        """What a process needs beside the loaded model: the batcher, the native thread pools' handle
        and the data-quality counters."""
        if self.input_quality:
            self.quality = InputQuality(self.name, QualityChecks.of(self.schema, self.layout, self.input_ranges))
        s = self.settings
        self.batcher = DynamicBatcher(
            self._score,
            max_batch_rows=s.max_batch_size,
            max_wait=s.max_wait_ms / 1000,
            threads=s.predict_threads,
            max_queued_rows=s.queue_limit,
        )
        self._threads = ThreadpoolController()

    def _warm_up(self) -> None:
        """Scores the model's input example through the request path and encodes both protocols'
        answers; a failure stops the server."""
        example = self.loaded.input_example
        if example is None:
            raise ModelLoadError(
                f"{self.model_uri} has no input example to warm up on (log the model with input_example=)"
            )
        import pandas as pd

        if not isinstance(example, pd.DataFrame):
            example = pd.DataFrame(example)
        try:
            parsed = self.parse(Body("v1", orjson.dumps(v1_request(example))), max(len(example), 1))
            (scored,) = self._score(parsed.rows.columns, parsed.rows.count, [parsed.rows.count], counted=False)
            for protocol in ("v1", "v2"):
                orjson.dumps(self._response(scored, protocol, None))
        except Exception as exc:
            raise ModelLoadError(
                f"the warm-up prediction on the model's input example failed: {type(exc).__name__}: {exc}"
            ) from exc
        log.info("warm-up prediction on %d example rows: %s", parsed.rows.count, scored.values[:3].tolist())

    # Runs in the predict thread: one frame and one model call for the whole batch. The batch's
    # data-quality counts are taken on the numeric block the frame is built from, before the model
    # sees it, and added once the model has scored the batch (a batch that fails is scored again
    # request by request, and counted then).
    def _score(self, columns: dict[str, list], rows: int, sizes: list[int], counted: bool = True) -> list[Scored]:
        numbers = numeric_block(columns, self.layout)
        frame = frame_from_columns(columns, self.layout, numbers)
        counts = self.quality.count(columns, numbers, rows) if self.quality else None
        if rows >= self.settings.parallel_rows:
            # Small batches run on one OpenMP thread (serving/__main__.py); a large one is worth all cores.
            with self._threads.limit(limits=os.cpu_count(), user_api="openmp"):
                scored = self._predict(frame, sizes)
        else:
            scored = self._predict(frame, sizes)
        if counted and self.quality:
            self.quality.record(counts)
        return scored

    def _predict(self, frame, sizes: list[int]) -> list[Scored]:
        model = self.loaded.model
        values = np.asarray(model.predict(frame))
        proba = np.asarray(model.predict_proba(frame)) if self.loaded.classes is not None else None
        out = []
        start = 0
        for size in sizes:
            end = start + size
            out.append(Scored(values[start:end], None if proba is None else proba[start:end]))
            start = end
        return out

    def __getstate__(self) -> dict[str, Any]:
        # With --workers > 1 KServe pickles the model into spawned processes; the batcher
        # (threads, an event loop task) is made anew there.
        state = self.__dict__.copy()
        state["batcher"] = None
        state["_threads"] = None  # holds handles of loaded native libraries
        state["quality"] = None  # holds locks; its counters belong to each process's own registry
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.loaded is not None:
            self._start_serving()
            settle_heap()
        from kserve.model_server import app  # parses the command line when first imported

        install_routes(app, self)

    def get_input_types(self) -> list[dict]:
        # The natural datatype per column; requests may also send narrower numeric types.
        return [{"name": c.name, "datatype": V2_DATATYPE_OF_KIND[c.kind], "shape": [-1]} for c in self.schema.columns]

    def get_output_types(self) -> list[dict]:
        classes = self.loaded.classes
        outputs = [
            {"name": "prediction", "datatype": v2_datatype(np.asarray(classes)) if classes else "FP64", "shape": [-1]}
        ]
        for name in self.output_names[1:]:
            outputs.append({"name": name, "datatype": "FP64", "shape": [-1]})
        return outputs

    def parse(self, payload: Body, max_rows: int) -> _Parsed:
        """Decodes and checks a request body; RequestError names what is wrong."""
        with collector_paused():
            return self._parse(payload, max_rows)  # the decoded body is freed before the collector resumes

    def _parse(self, payload: Body, max_rows: int) -> _Parsed:
        check_value_count(payload.data, self.schema, max_rows)
        if payload.protocol == "v1":
            rows = rows_from_v1_typed(payload.data, self.decoders, max_rows)
            if rows is not None:
                return _Parsed(rows, "v1")
        else:
            typed = rows_from_v2_typed(payload.data, self.decoders, max_rows)
            if typed is not None:
                rows, body = typed
                return _Parsed(rows, "v2", body.id, answer_form(body.parameters, body.outputs, self.output_names))
        # Anything the typed decoding did not take: decoded as it is, and what is wrong named. By
        # msgspec, not orjson: orjson first parses into a tree of its own, which tripled the peak.
        try:
            body = _ANY_JSON.decode(payload.data)
        except msgspec.DecodeError as exc:
            raise RequestError("body", f"is not valid JSON: {exc}") from None
        except RecursionError:
            raise RequestError("body", TOO_DEEP) from None
        try:
            if payload.protocol == "v2":
                rows = rows_from_v2(body, self.schema, max_rows)
                form = answer_form(body.get("parameters"), body.get("outputs"), self.output_names)
                return _Parsed(rows, "v2", request_id(body), form)
            return _Parsed(rows_from_v1(body, self.schema, max_rows), "v1")
        except RecursionError:  # naming a deeply nested value (its repr) can recurse too far
            raise RequestError("body", TOO_DEEP) from None

    def parse_tensors(self, request: InferRequest, max_rows: int) -> _Parsed:
        """Checks a request that arrived as tensors (REST binary data, gRPC) as its JSON body would be."""
        body = v2_body(request)
        rows = rows_from_v2(body, self.schema, max_rows)
        return _Parsed(rows, "v2", request.id or None, request_form(request, self.output_names))

    async def preprocess(self, payload: Body | InferRequest, headers: dict[str, str] | None = None) -> _Parsed:
        if not isinstance(payload, (Body, InferRequest)):
            # Only KServe's generic routes hand the model anything else: `:explain`, which it does not offer.
            raise RouteNotOffered(
                f"model {self.name} answers /v1/models/{self.name}:predict and /v2/models/{self.name}/infer only"
            )
        if self.batcher.full():  # refused before the body is decoded: an overloaded server spends nothing on it
            raise _overloaded(QueueFull(self.batcher.queued_rows, self.batcher.max_queued_rows))
        if isinstance(payload, InferRequest):  # REST binary data or gRPC, decoded by KServe
            return self.parse_tensors(payload, self.settings.max_request_rows)
        return self.parse(payload, self.settings.max_request_rows)

    async def predict(self, payload: _Parsed, headers: dict[str, str] | None = None) -> dict | InferResponse:
        try:
            scored: Scored = await self.batcher.submit(payload.rows.columns, payload.rows.count)
        except QueueFull as exc:
            raise _overloaded(exc) from None
        except ValueError as exc:
            # Values the signature allows that the model still refuses (e.g. sums of huge numbers
            # overflowing to infinity in a derived feature); the model scored its input example.
            log.warning("the model refused a request's values: %s", exc)
            raise RequestError(payload.rows.field, f"the model cannot score these values: {exc}", status=422) from None
        return self._response(scored, payload.protocol, payload.request_id, payload.form)

    def _response(
        self, scored: Scored, protocol: str, request_id: str | None, form: AnswerForm = PLAIN
    ) -> dict | InferResponse:
        if not form.plain:
            outputs = {"prediction": scored.values}
            if scored.proba is not None:
                outputs |= {name: scored.proba[:, i] for i, name in enumerate(self.output_names[1:])}
            return infer_response(outputs, form, self.name, self.model_version, request_id or str(uuid.uuid4()))
        if protocol == "v2":
            return self._v2_response(scored, request_id)
        response: dict[str, Any] = {"predictions": scored.values.tolist()}
        if scored.proba is not None:
            response["probabilities"] = [dict(zip(self.class_keys, row, strict=False)) for row in scored.proba.tolist()]
        return response

    def _v2_response(self, scored: Scored, request_id: str | None) -> dict:
        """An Open Inference Protocol response: the prediction tensor, then one probability tensor per class."""
        outputs = [v2_output("prediction", scored.values)]
        if scored.proba is not None:
            outputs += [v2_output(f"probability_{key}", scored.proba[:, i]) for i, key in enumerate(self.class_keys)]
        return {
            "model_name": self.name,
            "model_version": self.model_version,
            "id": request_id or str(uuid.uuid4()),
            "parameters": None,
            "outputs": outputs,
        }


RETRY_AFTER_SECONDS = "1"  # a full queue (4 requests of the most rows, by default) drains in about a second


def _overloaded(exc: QueueFull) -> RequestError:
    log.debug("refused a request: %s", exc)
    return RequestError(
        "queue", f"the server is busy: {exc}; retry later", status=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )
