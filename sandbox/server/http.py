"""A small threaded HTTPS framework shared by the sandbox's endpoints.

Each endpoint (ARM, Entra, web, admin) is a Router served on its own port. Every request passes the
fault injector and lands in the request log, so tests can count requests and prove "no write".
"""
from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit


class ApiError(Exception):
    """An error answered to the client. `shape` picks the body format of the answering service."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 shape: str = "arm", extra: dict | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.shape = shape
        self.extra = extra or {}

    def body(self) -> Any:
        if self.shape == "arm":
            err = {"code": self.code, "message": self.message}
            err.update(self.extra)
            return {"error": err}
        if self.shape == "raw":
            return self.extra
        return {"error": self.code, "error_description": self.message, **self.extra}


class Request:
    def __init__(self, method: str, target: str, headers, body: bytes, service: str):
        self.method = method
        self.target = target
        parts = urlsplit(target)
        self.raw_path = parts.path
        # ARM tolerates empty path segments (an SDK with an empty parent_resource_path sends '//')
        self.path = re.sub(r"/{2,}", "/", unquote(parts.path))
        self.query_string = parts.query
        # ARM treats query parameter names case-insensitively
        self.query = {k.lower(): v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = headers
        self.body = body
        self.service = service
        self.params: dict[str, str] = {}
        self.principal: dict | None = None  # token claims, set by authentication
        self.fault: str | None = None  # set when the fault injector answered or delayed it
        self.started = time.monotonic()

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name.lower())
        return values[0] if values else default

    @property
    def api_version(self) -> str | None:
        return self.q("api-version")

    def json(self, shape: str = "arm") -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, "InvalidRequestContent",
                           f"The request content was invalid and could not be deserialized: '{exc}'.", shape=shape)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()}


class Response:
    def __init__(self, status: int = 200, body: Any = None, headers: dict | None = None,
                 content_type: str | None = None):
        self.status = status
        self.headers = dict(headers or {})
        if body is None:
            self.data = b""
        elif isinstance(body, (bytes, bytearray)):
            self.data = bytes(body)
        elif isinstance(body, str):
            self.data = body.encode()
        else:
            self.data = json.dumps(body).encode()
            content_type = content_type or "application/json; charset=utf-8"
        if content_type:
            self.headers.setdefault("Content-Type", content_type)


Handler = Callable[[Request], Response]


class Route:
    def __init__(self, method: str, pattern: str, handler: Handler, **options):
        self.method = method
        # {name} matches one path segment; ARM paths are case-insensitive
        regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>/.*?)", pattern)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self.regex = re.compile("^" + regex + "/?$", re.IGNORECASE)
        self.pattern = pattern
        self.handler = handler
        self.options = options


class Router:
    def __init__(self, name: str):
        self.name = name
        self.routes: list[Route] = []
        self.before: list[Callable[[Request, Route], None]] = []
        self.not_found: Callable[[Request], Response] | None = None

    def add(self, method: str, pattern: str, handler: Handler, **options) -> None:
        self.routes.append(Route(method, pattern, handler, **options))

    def route(self, method: str, pattern: str, **options):
        def deco(func):
            self.add(method, pattern, func, **options)
            return func
        return deco

    def dispatch(self, request: Request) -> Response:
        allowed = False
        for route in self.routes:
            match = route.regex.match(request.path)
            if not match:
                continue
            allowed = True
            if route.method != request.method and not (route.method == "GET" and request.method == "HEAD"):
                continue
            request.params = {k: unquote(v) for k, v in match.groupdict().items()}
            for hook in self.before:
                hook(request, route)
            return route.handler(request)
        if self.not_found:
            return self.not_found(request)
        if allowed:
            raise ApiError(405, "MethodNotAllowed",
                           f"The requested resource does not support http method '{request.method}'.")
        raise ApiError(404, "NotFound", f"The requested path '{request.path}' was not found.")


class App:
    """Cross-cutting parts: fault injection and request log (set by the process that serves)."""

    def __init__(self):
        self.faults = None   # object with .apply(request) -> Response | "drop" | None
        self.log = None      # callable(service, request, status, duration_ms)


def _handler_class(router: Router, app: App):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "arcwi-sandbox"
        sys_version = ""

        def log_message(self, format, *args):  # noqa: A002 - silence stderr access log
            pass

        def _handle(self):
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                body = self._read_chunked()
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path, self.headers, body, router.name)
            status = 500
            try:
                injected = app.faults.apply(request) if app.faults else None
                if injected == "drop":
                    status = 0
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    if app.log:  # in the request log too (status 0), as what a client saw
                        app.log(router.name, request, status, (time.monotonic() - request.started) * 1000.0)
                    return
                response = injected or router.dispatch(request)
            except ApiError as err:
                headers = dict(err.headers)
                response = Response(err.status, err.body(), headers)
            except Exception:  # pragma: no cover - a bug in the sandbox itself
                traceback.print_exc()
                response = Response(500, {"error": {"code": "InternalServerError",
                                                    "message": "The sandbox failed to process the request."}})
            status = response.status
            try:
                self.send_response(status)
                headers = dict(response.headers)
                headers.setdefault("x-ms-request-id", _request_id())
                for key, value in headers.items():
                    self.send_header(key, str(value))
                if not any(key.lower() == "content-length" for key in headers):  # a proxied HEAD brings its own
                    self.send_header("Content-Length", str(len(response.data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.data)
            finally:
                if app.log:
                    app.log(router.name, request, status, (time.monotonic() - request.started) * 1000.0)

        def _read_chunked(self) -> bytes:
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle

    return H


def _request_id() -> str:
    import uuid
    return str(uuid.uuid4())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, context: ssl.SSLContext):
        self.ssl_context = context
        super().__init__(address, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # headers and body go out in separate writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # the TLS handshake happens in the worker thread (do_handshake_on_connect), not the acceptor
        return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def make_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def serve(router: Router, app: App, host: str, port: int, context: ssl.SSLContext) -> _Server:
    """Bind now (so a port in use fails at start, clearly) and serve in a daemon thread."""
    try:
        server = _Server((host, port), _handler_class(router, app), context)
    except OSError as exc:
        raise SystemExit(f"sandbox: cannot listen on {host}:{port} for the {router.name} endpoint: "
                         f"{exc.strerror or exc}. Stop whatever uses the port or set another one "
                         f"(see `python -m sandbox ports`).") from exc
    thread = threading.Thread(target=server.serve_forever, name=f"serve-{router.name}", daemon=True)
    thread.start()
    return server
