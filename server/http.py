"""The streamable-HTTP app that uvicorn serves: /mcp (both protocol eras), GET /healthz, and the guards.

Guards, outermost first:
* bearer token (when `settings.token` is set): every path but /healthz needs
  `Authorization: Bearer <token>`, else 401 with `WWW-Authenticate`. A 30-line ASGI middleware with
  `hmac.compare_digest` rather than the SDK's `AuthSettings`: that route is built for OAuth (issuer URL,
  protected-resource metadata) and would advertise an authorization server we do not have, sending
  clients into an OAuth discovery that cannot succeed;
* Host / Origin (DNS rebinding) checks on every bind, not only on loopback where the SDK turns them on by
  itself: bad Host -> 421, foreign Origin -> 403;
* request body: over `settings.max_request_bytes` -> 413 with a JSON-RPC error naming the setting;
  otherwise broken text in it (bytes that are not UTF-8, lone-surrogate escapes) is marked by
  server.wire_text, so the tool answers with an error naming the field instead of the whole body
  being a parse error.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from config import Settings
from server.app import TaskHistoryServer, build_server
from server.wire_text import mark_broken_text
from store.errors import StoreError

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
REALM = "task-history"


def host_header(host: str, port: int) -> str:
    """The Host header a client sends for `host:port` (IPv6 literals in brackets)."""
    try:
        is_v6 = ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        is_v6 = False
    return f"[{host.strip('[]')}]:{port}" if is_v6 else f"{host}:{port}"


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Loopback names on any port, the bound address, and whatever the operator added."""
    hosts = [f"{name}:*" for name in LOOPBACK_NAMES] + list(LOOPBACK_NAMES)
    hosts += [host_header(settings.host, settings.port), *settings.allowed_hosts]
    origins = [f"http://{name}:*" for name in LOOPBACK_NAMES] + [f"http://{name}" for name in LOOPBACK_NAMES]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[*origins, *settings.allowed_origins],
    )


class BearerTokenMiddleware:
    """Refuse HTTP requests without the configured bearer token (except the health check)."""

    def __init__(self, app: ASGIApp, token: str, open_paths: tuple[str, ...] = (HEALTH_PATH,)) -> None:
        self.app = app
        self._token = token.encode()
        self._open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self._open_paths:
            problem = self._problem(Request(scope).headers.get("authorization"))
            if problem is not None:
                await _unauthorized(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _problem(self, header: str | None) -> str | None:
        if not header:
            return "missing"
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            return "invalid"
        return None


def _unauthorized(problem: str) -> Response:
    challenge = f'Bearer realm="{REALM}"'
    if problem == "invalid":
        challenge += ', error="invalid_token", error_description="the bearer token is not the configured one"'
    body = {
        "error": "unauthorized",
        "detail": f"{problem} bearer token; send 'Authorization: Bearer <token>'",
    }
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})


class RequestBodyMiddleware:
    """Read a POST body under the size limit and mark broken text in it before the MCP app parses it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        body = mark_broken_text(body)
        await self.app(_with_length(scope, len(body)), _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest is never buffered)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _too_large(limit: int) -> Response:
    message = (
        f"the request body is over max_request_bytes ({limit:,} bytes); nothing was read or written. "
        "Send a smaller request, or raise max_request_bytes (TASK_HISTORY_MAX_REQUEST_BYTES) on the server."
    )
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
    return JSONResponse(body, status_code=413)


def _with_length(scope: Scope, length: int) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over `body` once, then waits on the real one (for the disconnect)."""
    sent = False

    async def replayed() -> dict[str, object]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replayed  # type: ignore[return-value]


def health_endpoint(server: TaskHistoryServer) -> Callable[[Request], Awaitable[Response]]:
    """GET /healthz: 200 {status, database} when a query answers, 503 otherwise. Never authenticated."""

    async def healthz(_request: Request) -> Response:
        store = server.live_store
        if store is None:
            return JSONResponse({"status": "unavailable", "database": "not open"}, status_code=503)
        try:
            await store.ping()
        except StoreError as error:
            return JSONResponse({"status": "unavailable", "database": str(error)}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", "read_only": server.config.read_only})

    return healthz


def build_http_app(settings: Settings, server: TaskHistoryServer | None = None) -> ASGIApp:
    """The ASGI app for uvicorn; `server` defaults to a fresh one built from `settings`."""
    server = server or build_server(settings)
    server.custom_route(HEALTH_PATH, methods=["GET"])(health_endpoint(server))
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(settings),
        # Enforced (with a better answer) by RequestBodyMiddleware; marking can grow a body up to 3x.
        max_request_body_size=3 * settings.max_request_bytes + 1,
        host=settings.host,
    )
    app = RequestBodyMiddleware(app, settings.max_request_bytes)
    return BearerTokenMiddleware(app, settings.token) if settings.token else app
