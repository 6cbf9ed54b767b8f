"""The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`) beside REST.

KServe's servicer does the protocol: it decodes `InferTensorContents` and `raw_input_contents`
into an InferRequest and hands it to the same model, so a gRPC request goes through the same
signature checks and the same dynamic batcher as a REST one. What is ours: a client's mistake is
answered with the status its REST answer would map to (never INTERNAL), with the message the REST
error carries; a version other than the one served is NOT_FOUND; the largest message is the REST
body limit; and no log line per call.
"""

from __future__ import annotations

import logging
from concurrent import futures

from grpc import StatusCode, aio
from kserve.errors import InvalidInput
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer

from serving.errors import RequestError, not_served

log = logging.getLogger(__name__)

# The REST status of a client's mistake, as a gRPC status code.
STATUS_OF_HTTP = {
    404: StatusCode.NOT_FOUND,
    408: StatusCode.DEADLINE_EXCEEDED,
    413: StatusCode.RESOURCE_EXHAUSTED,
    503: StatusCode.UNAVAILABLE,
}


class ClientErrorsToStatus(ExceptionToStatusInterceptor):
    """RequestError by the status its REST answer has; everything else as KServe maps it."""

    async def handle_exception(self, ex, request_or_iterator, context, method_name):
        if isinstance(ex, RequestError):
            log.debug("rejected gRPC request: %s", ex)
            await context.abort(STATUS_OF_HTTP.get(ex.status, StatusCode.INVALID_ARGUMENT), ex.reason)
        await super().handle_exception(ex, request_or_iterator, context, method_name)


class ServedVersionServicer(InferenceServicer):
    """KServe's servicer, answering for the served model and version only and naming what a request got wrong
    before the model sees it (an unknown datatype, contents beside raw contents)."""

    def __init__(self, data_plane, model_repository_extension, model_name: str, model_version: str | None):
        super().__init__(data_plane, model_repository_extension)
        self.model_name = model_name
        self.model_version = model_version

    def _check_version(self, model_name: str, asked: str) -> None:
        refusal = not_served(model_name, asked, self.model_name, self.model_version)
        if refusal:
            raise refusal

    async def ModelReady(self, request, context):
        self._check_version(request.name, request.version)
        return await super().ModelReady(request, context)

    async def ModelMetadata(self, request, context):
        self._check_version(request.name, request.version)
        response = await super().ModelMetadata(request, context)
        if self.model_version:
            response.versions.append(self.model_version)
        return response

    async def ModelInfer(self, request, context):
        self._check_version(request.model_name, request.model_version)
        try:
            return await super().ModelInfer(request, context)
        except RequestError:
            raise
        except InvalidInput as exc:  # KServe's own checks of the message (raw and typed contents, datatypes)
            raise RequestError("inputs", exc.reason) from None


class InferenceGRPCServer(GRPCServer):
    """KServe's gRPC server with the servicer and error mapping above and `max_message_bytes` both ways."""

    def __init__(
        self, port: int, data_plane, model_repository_extension, model_name: str, model_version, max_message_bytes: int
    ):
        super().__init__(port, data_plane, model_repository_extension, kwargs={})
        self.model_name = model_name
        self.model_version = model_version
        self.max_message_bytes = max_message_bytes

    async def start(self, max_workers):
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(ClientErrorsToStatus(),),
            options=[
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.max_receive_message_length", self.max_message_bytes),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            ServedVersionServicer(
                self._data_plane, self._model_repository_extension, self.model_name, self.model_version
            ),
            self._server,
        )
        if self._server.add_insecure_port(f"[::]:{self._port}") == 0:
            raise OSError(f"gRPC: cannot listen on port {self._port}")
        log.info("gRPC (Open Inference Protocol) on port %d", self._port)
        await self._server.start()
        await self._server.wait_for_termination()
