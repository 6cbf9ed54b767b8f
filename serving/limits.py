"""What one client may cost the predictor: body size, time to send a request, connections.

- `BodyLimit` wraps the whole ASGI app (every route, KServe's generic ones included) and answers
  413 before anything decodes a body over the limit: at once for a declared Content-Length, and
  while reading for a chunked body.
- `DeadlineProtocol` is uvicorn's HTTP protocol with one timer per request: a request whose
  headers and body have not all arrived `request_timeout` seconds after its first byte is answered
  408 and its connection closed, so slow-drip clients cannot hold connections.
- `bound_server` sets the protocol and uvicorn's connection cap on the server's config.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import orjson
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MB = 1 << 20


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int = 20 * MB
    body_timeout: float = 30.0  # seconds from a request's first byte to its last
    max_connections: int = 128


def error_body(field: str, problem: str, model_version: str | None = None) -> bytes:
    """The JSON error every refusal answers with (serving.errors.install_error_handler's shape)."""
    content = {"error": f"{field}: {problem}", "field": field, "problem": problem}
    if model_version is not None:
        content["model_version"] = model_version
    return orjson.dumps(content)


class BodyLimit:
    """Pure ASGI: requests with a declared Content-Length pass straight through after one header
    check (the HTTP parser delivers exactly that many bytes); only bodies without one (chunked) have
    `receive` wrapped and counted. Over the limit: 413 with the JSON error, and the app is told the
    client went away. The rest of an oversized body is read and dropped by the server, so the
    connection stays usable and the client reads the answer instead of a reset."""

    def __init__(self, app, max_body_bytes: int, model_version: str | None = None):
        self.app = app
        self.limit = max_body_bytes
        size = f" ({max_body_bytes / MB:g} MB)" if max_body_bytes >= MB else ""
        problem = f"is larger than the limit of {max_body_bytes} bytes{size}"
        self.response = error_body("body", problem, model_version)
        self.headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.response)).encode())]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
                break
        if declared is not None:
            try:
                too_large = int(declared) > self.limit
            except ValueError:
                too_large = False  # the HTTP parser refuses it before the app runs
            if too_large:
                return await self._refuse(send)
            try:
                return await self.app(scope, receive, send)
            except ClientDisconnect:  # gone before its body arrived, or cut off at the request deadline
                return None
        return await self._counted(scope, receive, send)

    async def _refuse(self, send) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.response})

    async def _counted(self, scope, receive, send) -> None:
        read = 0
        refused = False

        async def counting_receive():
            nonlocal read, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.limit:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:  # once refused, the app's own answer to the "disconnect" is dropped
                await send(message)

        with contextlib.suppress(ClientDisconnect):  # refused here, gone, or cut off at the deadline: no one to answer
            await self.app(scope, counting_receive, guarded_send)


class DeadlineProtocol(HttpToolsProtocol):
    """One timer per request, from its first byte until its body is complete (the app's own time
    is not limited). When it fires before the answer began: 408 with the JSON error, then the
    connection closes; after (the app answered early, e.g. 413), the connection just closes."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        # Set by bound_server; kept on the config, which server workers get pickled.
        self.request_timeout: float = config.request_timeout
        self.response: bytes = config.request_timeout_response
        self._deadline = None
        self._headers_done = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        # A new connection's first request is timed from the connection: one that sends nothing goes too.
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._headers_done = False
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._headers_done = True

    def on_message_complete(self) -> None:
        self._cancel_deadline()
        super().on_message_complete()

    def connection_lost(self, exc) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._headers_done:
            # This request's own cycle: answer unless the app has begun to, or it waits behind another.
            can_answer = not cycle.response_started and not any(c is cycle for c, _ in self.pipeline)
        else:
            can_answer = cycle is None or cycle.response_complete  # nothing else is being answered
        if can_answer:
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(self.response), self.response)
            )
        if self._headers_done and not cycle.response_complete:
            # What connection_lost does: the app's pending receive() sees the client gone, and
            # anything it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def bounded_model_server(
    limits: RequestLimits,
    model_version: str | None = None,
    grpc_port: int | None = None,
    model_name: str = "model",
    **options,
):
    """A kserve.ModelServer whose HTTP server has the request deadline and the connection cap, and
    with `grpc_port`, the protocol's gRPC service (serving.grpc_service) on it. KServe makes
    uvicorn's Config inside `start()` without these settings; they are set on it once it exists,
    just before the event loop starts (worker processes get the Config pickled)."""
    from kserve.model_server import ModelServer

    from serving.grpc_service import InferenceGRPCServer

    class BoundedModelServer(ModelServer):
        def setup_event_loop(self):
            rest = self._rest_server or self._rest_multiprocess_server._rest_server
            bound_server(rest.config, limits, model_version)
            if grpc_port is not None:
                self._grpc_server = InferenceGRPCServer(
                    grpc_port,
                    self.dataplane,
                    self.model_repository_extension,
                    model_name,
                    model_version,
                    limits.max_body_bytes,
                )
                self.servers.append(self._grpc_server.start(self.max_threads))
            super().setup_event_loop()

    return BoundedModelServer(enable_grpc=False, **options)


def bound_server(config, limits: RequestLimits, model_version: str | None = None) -> None:
    """Sets the request deadline and the connection cap on a uvicorn Config before it loads.
    Past the cap uvicorn answers new requests 503."""
    config.http = DeadlineProtocol
    config.request_timeout = limits.body_timeout
    config.request_timeout_response = error_body(
        "body", f"did not arrive within {limits.body_timeout:g} s", model_version
    )
    config.limit_concurrency = limits.max_connections
