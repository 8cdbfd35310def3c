"""RFC 9457 problem details: every error of `tally api` is one, never a bare 500 page."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from streams.errors import TallyError

log = logging.getLogger("tally.api")
PROBLEM_TYPE = "application/problem+json"


class Problem(BaseModel):
    """The body of every error response (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class ProblemError(TallyError):
    """Raised by a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.errors = status, detail, headers, errors


def problem_response(
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(orjson.dumps(body), status, headers, media_type=PROBLEM_TYPE)


def not_found(what: str) -> ProblemError:
    return ProblemError(404, f"no {what} with this id is visible to you")


def install(app: FastAPI) -> None:
    """Answer every error (raised, unmatched route, invalid parameters, defects) as a problem."""

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> Response:
        return problem_response(exc.status, exc.detail, exc.headers, exc.errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, detail, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return problem_response(400, "the request's parameters are invalid", errors=errors)

    @app.exception_handler(Exception)
    async def _defect(request: Request, exc: Exception) -> Response:
        log.error(
            "request failed",
            extra={"path": request.url.path, "error": f"{type(exc).__name__}"},
            exc_info=exc,
        )
        return problem_response(500, "the request failed inside tally api; see its log")
