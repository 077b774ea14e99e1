"""HTTP plumbing shared by the handlers: JSON in and out, errors, bearer-token auth.

Every error is ``{"error": code, "message": text}`` (plus ``"field"`` when one
field of the body is at fault: ``"variables.ends"`` names one variable). Project input errors become 400, with the field
they concern; nothing is sent when a request fails. Where the project said why (a
:class:`~broadcaster.errors.Refusal`), ``"reason"`` carries it, with ``"params"`` (names and numbers)
when it has any: the console translates those, the message stays English. Unexpected exceptions become
a bare 500 whose details go to the server log only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import orjson
from aiohttp import web

from broadcaster.app.users import User, token_id_of
from broadcaster.errors import (
    BroadcasterError,
    ConfigError,
    Conflict,
    Forbidden,
    InputError,
    SelectionError,
    StoreError,
    StoreFull,
    TemplateError,
    VariableError,
)
from broadcaster.service.paths import private_roots, public_text
from broadcaster.service.state import SERVICE
from broadcaster.service.strict_json import BodyError, parse_body

log = logging.getLogger("broadcaster.service")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_USER: Final = web.RequestKey("user", User)  # aiohttp >= 3.13
# Paths under /api/ that need no token: the API description itself.
PUBLIC_API: Final = frozenset({"/api/openapi.json"})
METRICS_PATH: Final = "/metrics"


class ApiError(Exception):
    """An answer other than success, with the field of the body it concerns."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 headers: Mapping[str, str] | None = None, cause: BroadcasterError | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.reason = cause.refusal if cause is not None else None
        self.params = dict(cause.refusal_params or {}) if cause is not None else {}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                        headers=headers)


def error_response(error: ApiError) -> web.Response:
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    if error.field:
        body["field"] = error.field
    if error.reason is not None:
        body["reason"] = str(error.reason)
        if error.params:
            body["params"] = error.params
    return json_response(body, error.status, error.headers)


def field_of(exc: InputError) -> str | None:
    """The body field a project input error is about."""
    text = str(exc)
    if isinstance(exc, VariableError):
        return f"variables.{exc.variable}" if exc.variable else "variables"
    if isinstance(exc, TemplateError):
        return "template"
    if isinstance(exc, SelectionError):
        if "--area" in text:
            return "areas"
        return "mode" if text.startswith("mode") or "follow-up" in text else "channels"
    return None


def input_error(exc: InputError, *, field: str | None = None) -> ApiError:
    where = field or field_of(exc)
    message = f"{where}: {exc}" if where else str(exc)
    return ApiError(400, "invalid", message, field=where, cause=exc)


async def read_json(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, "invalid", "body: a JSON object is required", field="body")
    try:
        body = parse_body(raw)
    except BodyError as exc:
        raise ApiError(400, "invalid", str(exc), field=exc.field) from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid", "body: must be a JSON object", field="body")
    return body


def current_user(request: web.Request) -> User:
    user = request.get(_USER)
    if not isinstance(user, User):  # only reachable if a route skipped the auth middleware
        raise ApiError(401, "unauthorized", "an Authorization: Bearer token is required")
    return user


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _public(request, exc)
    except Forbidden as exc:
        return _public(request, ApiError(403, "forbidden", str(exc), cause=exc))
    except Conflict as exc:
        return _public(request, ApiError(409, "conflict", str(exc)))
    except StoreFull as exc:
        log.error("the database is full: %s", exc)
        return _public(request, ApiError(503, "database_full", "the database or its disk is full; nothing was "
                                       "changed: free some space on the database's disk",
                                       headers={"Retry-After": "30"}))
    except StoreError as exc:
        log.error("the database failed: %s", exc)
        return _public(request, ApiError(503, "unavailable", "the database is unavailable; nothing was changed",
                                       headers={"Retry-After": "2"}))
    except ConfigError as exc:
        log.error("service configuration problem: %s", exc)
        return _public(request, ApiError(503, "misconfigured", f"the service cannot do this: {exc}"))
    except InputError as exc:
        return _public(request, input_error(exc))
    except web.HTTPException as exc:
        if not request.path.startswith("/api/"):
            raise
        code = "not_found" if exc.status == 404 else "method_not_allowed" if exc.status == 405 else "http"
        return _public(request, ApiError(exc.status, code, f"{request.method} {request.path}: {exc.reason}"))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _public(request, ApiError(500, "internal", "internal error; the server log has the details"))


def _public(request: web.Request, error: ApiError) -> web.Response:
    """The error as the caller reads it: the configuration's folders taken off any path it names."""
    error.message = public_text(error.message, private_roots(request.app[SERVICE].config))
    return error_response(error)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /api/ path but the OpenAPI document, and /metrics, need ``Authorization: Bearer TOKEN``.

    /metrics names nodes (host:pid), channels and volumes: a scraper uses a viewer's token.
    """
    if not (request.path.startswith("/api/") or request.path == METRICS_PATH) or request.path in PUBLIC_API:
        return await handler(request)
    service = request.app[SERVICE]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        reason = "no bearer token"
        user = None
    else:
        user, reason = await service.users.verify(token)
    if user is None:
        # Counted, not written: one audit row per source per minute (never the token itself, only why and where).
        service.failed_logins.add(request.remote or "", reason, token_id=token_id_of(token), method=request.method,
                                  path=request.path)
        raise ApiError(401, "unauthorized", f"a valid Authorization: Bearer token is required ({reason})",
                       headers={"WWW-Authenticate": 'Bearer realm="broadcaster"'})
    request[_USER] = user
    return await handler(request)
