"""One place that turns Viewfinder errors into HTTP answers.

Every error body has one shape, ``{"error": {"type", "message", ...}}``; ``type`` is the
error's class name, ``column`` is added for filter syntax errors (1-based), and
``problems`` for imports that failed. Nothing else of the exception (paths on the server,
SQL, stack) is shown: an unexpected exception is logged and answered with a plain 500.

=====================================  ======
error                                  status
=====================================  ======
NotFound (dataset, ref, format, job)   404
InvalidInput, FilterSyntaxError        400
AuthenticationFailed                   401
RateLimited                            429 + ``Retry-After``
PermissionDenied                       403
AlreadyExists, ConflictError           409
MissingDependency                      501
ConfigError, StorageError, other       500
=====================================  ======
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from viewfinder.errors import (
    AlreadyExists,
    AuthenticationFailed,
    ConflictError,
    FilterSyntaxError,
    ImportFailed,
    InvalidInput,
    MissingDependency,
    NotFound,
    PermissionDenied,
    RateLimited,
    ViewfinderError,
)

log = logging.getLogger(__name__)

# most specific first: the first match wins
_STATUS: tuple[tuple[type[ViewfinderError], int], ...] = (
    (RateLimited, 429),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (InvalidInput, 400),
    (AlreadyExists, 409),
    (ConflictError, 409),
    (MissingDependency, 501),
)


def status_of(exc: ViewfinderError) -> int:
    """The HTTP status for a Viewfinder error."""
    return next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one error body shape."""
    return {"error": {"type": type_, "message": message, **extra}}


def viewfinder_error_response(exc: ViewfinderError) -> JSONResponse:
    """The JSON answer for ``exc`` (also used by the UI for its JSON endpoints)."""
    code = status_of(exc)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    message = exc.message
    if isinstance(exc, FilterSyntaxError):
        extra["column"] = exc.column
        extra["expression"] = exc.expression
    if isinstance(exc, ImportFailed):
        extra["problems"] = [p.to_dict() for p in exc.problems]
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, int(exc.retry_after)))
    if isinstance(exc, AuthenticationFailed) and not isinstance(exc, RateLimited):
        headers["WWW-Authenticate"] = 'Bearer realm="viewfinder"'
    if code == 500:
        log.error("server-side error: %s", exc)
        message = "the server could not complete the request; see the server log"
    elif exc.record and isinstance(exc, (NotFound, InvalidInput, ConflictError)):
        message = str(exc)  # names the record the user sent
    return JSONResponse(error_body(type(exc).__name__, message, **extra), status_code=code,
                        headers=headers)


async def _on_viewfinder_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ViewfinderError)
    return viewfinder_error_response(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [{"where": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
                for e in exc.errors()]
    first = problems[0] if problems else {"where": "", "message": "invalid request"}
    return JSONResponse(
        error_body("InvalidInput", f"{first['where']}: {first['message']}", problems=problems),
        status_code=400)


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {401: "AuthenticationFailed", 403: "PermissionDenied", 404: "NotFound",
            405: "MethodNotAllowed", 413: "PayloadTooLarge"}.get(exc.status_code, "HTTPError")
    return JSONResponse(error_body(kind, str(exc.detail)), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse(error_body("InternalError", "the server could not complete the "
                                   "request; see the server log"), status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(ViewfinderError, _on_viewfinder_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
