"""The one error a client's mistake becomes: a 400 (or 413, 422, 503...) with a JSON body naming the field
and the problem."""

from __future__ import annotations

import logging

from kserve.errors import InvalidInput, ModelNotFound
from starlette.requests import ClientDisconnect

log = logging.getLogger(__name__)

TOO_DEEP = "is nested too deeply: a request holds a few levels of arrays and objects, not hundreds"


class RequestError(InvalidInput):
    """A request the model cannot score; `field` says where (e.g. `instances[3].Lot_Area`)."""

    def __init__(self, field: str, problem: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.status = status
        self.headers = headers  # e.g. Retry-After with a 503


def not_served(model_name: str, version: str, served_name: str, served_version: str | None) -> RequestError | None:
    """A 404 naming what is served, for a model or a version this server does not serve (no version
    asked: the served one)."""
    if model_name != served_name:
        return RequestError("model_name", f"this server serves model {served_name}, not {model_name}", status=404)
    if version and version != served_version:
        serves = f"serves version {served_version}" if served_version else "was started without --model-version"
        return RequestError("model_version", f"model {served_name} {serves}, not version {version}", status=404)
    return None


class RouteNotOffered(NotImplementedError):
    """A KServe route the model does not serve (e.g. `:explain`); KServe answers it with 501."""


class ModelLoadError(RuntimeError):
    """The model cannot be served here; the message says why (the server does not start)."""


def install_error_handler(app, model_version: str | None = None) -> None:
    """Registers the handler on KServe's FastAPI app (more specific than KServe's InvalidInput one).
    The answer names the model version that refused, as V2 answers name the one that scored: during
    a rolling update the deploy step tells an old version's refusal from the new one's."""
    from fastapi.responses import JSONResponse

    async def request_error_handler(_request, exc: RequestError):
        log.debug("rejected request: %s", exc)
        content = {"error": str(exc), "field": exc.field, "problem": exc.problem}
        if model_version is not None:
            content["model_version"] = model_version
        return JSONResponse(status_code=exc.status, content=content, headers=exc.headers)

    if RequestError not in app.exception_handlers:
        app.add_exception_handler(RequestError, request_error_handler)


class ClientErrorFilter(logging.Filter):
    """Drops KServe's traceback for a client's mistake it answers itself (a body it cannot decode: 400;
    an unknown model name: 404; a route the model does not offer, such as `:explain`: 501) and for
    a client gone before its body arrived (or cut off at the request deadline): a client's mistake
    is not a server event."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.exc_info
            and isinstance(record.exc_info[1], (InvalidInput, ModelNotFound, RouteNotOffered, ClientDisconnect))
        )
