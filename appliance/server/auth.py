"""Who may call what: API keys at the door, roles on each route, foreign origins refused.

* `ApiKeyMiddleware` (Litestar's authentication middleware) reads the key from
  `Authorization: Bearer`, `X-API-Key` or HTTP Basic (the key as password, so a
  browser can open /docs), and sets `request.user` to its `KeyRecord`. A missing or
  wrong key is 401. It also refuses a state-changing request or a WebSocket
  handshake whose `Origin` is neither this server nor in `security.allowed_origins`
  (403): a web page a LAN user opens cannot post to the appliance.
* `role_guard` (on the app) reads the role each route declares in `opt["role"]`;
  the wrong role is 403. A route that declares none is refused to every key.
* Routes with `opt={"exclude_from_auth": True}` (`/healthz`, `/readyz`) skip both.
* Each key has a budget of requests (`security.rate_limit_per_minute`). Litestar's
  `RateLimitMiddleware` counts HTTP requests (429 with RateLimit-* headers) but not
  WebSocket scopes, and one socket carries any number of questions: `SocketBudget`
  counts each question of a socket, with the middleware's own bookkeeping, against the
  same budget (same store, same per-key entry). Over it, the question gets an error
  event with the status and code of the HTTP refusal, and the socket stays open.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    WebSocketException,
)
from litestar.handlers import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware

from appliance.domain.types import ErrorEvent
from appliance.security.keys import KeyRecord, Role, allows, key_id_of
from appliance.server.startup import running_services

if TYPE_CHECKING:
    from litestar import Request, WebSocket
    from litestar.types import Receive, Scope, Send

ANY_KEY = "any"  # opt["role"] of routes open to every valid key (/metrics, /docs)
SCRAPER = KeyRecord("scraper", "metrics scraper (security.metrics_scrapers)", Role.QUERY, "", 0)
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403
RATE_LIMITED = "rate_limit_exceeded"  # the code of a 429, whatever the transport


def presented_key(headers: Any) -> str | None:
    """The API key a request carries, if any."""
    scheme, _, value = str(headers.get("authorization", "")).partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            password = ""
        if password:
            return password
    if key := headers.get("x-api-key"):
        return str(key).strip() or None
    return None


def _origin_allowed(connection: ASGIConnection[Any, Any, Any, Any], allowed: list[str]) -> bool:
    origin = connection.headers.get("origin")
    if origin is None:  # not a browser's cross-site request
        return True
    if origin.rstrip("/") in allowed:
        return True
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc == connection.headers.get("host")


def _is_websocket(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return bool(connection.scope["type"] == ScopeType.WEBSOCKET)


def _audit(connection: ASGIConnection[Any, Any, Any, Any], event: str, **fields: Any) -> None:
    services = running_services(connection.app.state)
    client = connection.client.host if connection.client else None
    services.audit.record(
        event, method=connection.scope.get("method", "WS"), path=connection.url.path,
        client=client, **fields,
    )  # fmt: skip
    services.metrics.auth_failures.labels(event).inc()


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        services = running_services(connection.app.state)  # 503 `starting` until loaded
        security = services.settings.security
        method = connection.scope.get("method", "GET")
        if (_is_websocket(connection) or method in STATE_CHANGING) and not _origin_allowed(
            connection, security.allowed_origins
        ):
            origin = connection.headers.get("origin")
            _audit(connection, "origin_refused", origin=origin)
            detail = f"cross-origin request from {origin} refused (see security.allowed_origins)"
            if _is_websocket(connection):
                raise WebSocketException(detail=detail, code=WS_FORBIDDEN)
            raise PermissionDeniedException(detail)
        key = presented_key(connection.headers)
        if key is None:
            client = connection.client.host if connection.client else None
            if connection.url.path == "/metrics" and client in security.metrics_scrapers:
                return AuthenticationResult(user=SCRAPER, auth=None)
            self._refuse(
                connection, "no API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`"
            )
        assert key is not None
        record = services.keys.authenticate(key)
        if record is None:
            self._refuse(connection, "unknown or revoked API key", key_id=key_id_of(key))
        return AuthenticationResult(user=record, auth=record.id if record else None)

    @staticmethod
    def _refuse(
        connection: ASGIConnection[Any, Any, Any, Any], detail: str, key_id: str | None = None
    ) -> None:
        _audit(connection, "auth_failed", reason=detail, key_id=key_id)
        if _is_websocket(connection):
            raise WebSocketException(detail=detail, code=WS_UNAUTHORIZED)
        path = connection.url.path
        browser = path == "/openapi.json" or path == "/docs" or path.startswith("/docs/")
        challenge = 'Basic realm="appliance"' if browser else 'Bearer realm="appliance"'
        raise NotAuthorizedException(detail, headers={"WWW-Authenticate": challenge})


def role_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """403 unless the caller's key holds the role the route declares."""
    if handler.opt.get("exclude_from_auth"):
        return
    needed = handler.opt.get("role")
    user = connection.scope.get("user")
    if not isinstance(user, KeyRecord):  # the middleware did not run: refuse
        raise NotAuthorizedException("no API key")
    if needed == ANY_KEY:
        return
    if user is SCRAPER or needed is None or not allows(user.role, Role(needed)):
        what = f"the `{needed}` role" if needed else "a role this server does not grant"
        detail = f"this route needs {what}; key {user.id} has the `{user.role}` role"
        _audit(connection, "forbidden", key_id=user.id, role=user.role.value, needed=needed)
        if _is_websocket(connection):
            raise WebSocketException(detail=detail, code=WS_FORBIDDEN)
        raise PermissionDeniedException(detail)


def rate_limit_identity(request: Any) -> str:
    """Rate limits count per key (per client address for requests without a valid key)."""
    key = presented_key(request.headers)
    services = getattr(request.app.state, "services", None)
    record = services.keys.authenticate(key) if key and services is not None else None
    if record is not None:
        return f"key:{record.id}"
    return f"addr:{request.client.host if request.client else 'unknown'}"


def rate_limit_config(per_minute: int) -> RateLimitConfig:
    """The limit of the app's middleware, and of every socket's questions."""
    return RateLimitConfig(
        rate_limit=("minute", per_minute),
        exclude=["^/healthz$", "^/readyz$"],
        identifier_for_request=rate_limit_identity,
    )


async def _not_called(scope: Scope, receive: Receive, send: Send) -> None:
    """`SocketBudget` asks the middleware for its counting only."""


class SocketBudget:
    """Counts the questions of one socket against its key's budget (none if unlimited)."""

    def __init__(self, socket: WebSocket[Any, Any, Any], per_minute: int) -> None:
        self._socket = socket
        self._counter = (
            RateLimitMiddleware(_not_called, rate_limit_config(per_minute)) if per_minute else None
        )

    async def refusal(self) -> ErrorEvent | None:
        """Count one question; the event refusing it if the key's budget is spent."""
        counter = self._counter
        if counter is None:
            return None
        store = counter.config.get_store_from_app(self._socket.app)
        entry = counter.cache_key_from_request(cast("Request[Any, Any, Any]", self._socket))
        spent = await counter.retrieve_cached_history(entry, store)
        if len(spent.history) >= counter.max_requests:
            wait_s = max(1, spent.reset - int(time.time()))
            return ErrorEvent(
                f"too many requests for this key (security.rate_limit_per_minute = "
                f"{counter.max_requests}); retry in {wait_s} s",
                429,
                RATE_LIMITED,
            )
        await counter.set_cached_history(entry, spent, store)
        return None
