"""The blob endpoint clients use: a pass-through proxy in front of Azurite.

Why a proxy: the fault injector and the request log sit in the sandbox's HTTP framework (http.py). With
clients talking to Azurite directly, data-plane calls (the OIDC documents, the container, the static
website settings) could be neither faulted nor counted. The proxy forwards every request unchanged
(method, path and query as sent, headers, body) to Azurite's own port and answers with Azurite's status,
headers and body, so Azurite still decides everything; SharedKey and bearer authorization are not
affected (neither signs the Host header).

While Azurite restarts (a new account means a restart, see azurite.py) a proxied request waits at the
restart gate instead of meeting a refused connection.

Faults on this endpoint answer in Azure Storage's shape (faults.py): Storage throttles with
503 ServerBusy, not 429.

One rule is the proxy's own, because Azurite has no account settings: an account whose
allowBlobPublicAccess (an ARM property) is false answers anonymous requests, and requests that would make
a container public, with 409 PublicAccessNotPermitted, as Azure does.
"""
from __future__ import annotations

import http.client
import ssl
import threading

from .http import Response, Router

# hop-by-hop headers (RFC 9110 section 7.6.1) and the ones the framework sets itself
_DROP_REQUEST = {"host", "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                 "upgrade", "content-length"}
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "trailer", "upgrade", "content-length",
                  "server", "date"}


def storage_error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    """An error as Azure Storage answers it: XML body, the code also in x-ms-error-code
    (learn.microsoft.com/rest/api/storageservices/status-and-error-codes2)."""
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>")
    return Response(status, body, {"x-ms-error-code": code, **(headers or {})},
                    content_type="application/xml")


def make_router(ctx) -> Router:
    router = Router("blob")
    local = threading.local()

    def connection() -> http.client.HTTPSConnection:
        azurite = ctx.azurite
        conn = getattr(local, "conn", None)
        if conn is None or getattr(local, "port", None) != azurite.port:
            context = ssl.create_default_context(cafile=str(azurite.ca_bundle))
            conn = http.client.HTTPSConnection(azurite.host, azurite.port, timeout=60, context=context)
            local.conn, local.port = conn, azurite.port
        return conn

    def public_access_refused(request) -> Response | None:
        """An account whose allowBlobPublicAccess is false rejects every anonymous request, and a request
        that would make a container public, with 409 PublicAccessNotPermitted (learn.microsoft.com
        anonymous-read-access-prevent: "Azure Storage rejects all anonymous requests to that account";
        "prevents users from subsequently configuring public access for containers")."""
        from .arm.storage import find_account
        segments = request.path.split("/")
        account = find_account(ctx, segments[1]) if len(segments) > 1 and segments[1] else None
        if account is None or account["properties"].get("allowBlobPublicAccess"):
            return None
        headers = {k.lower(): v for k, v in request.headers.items()}
        anonymous = "authorization" not in headers and not request.q("sig")
        raises = request.method == "PUT" and request.q("restype") == "container" and \
            headers.get("x-ms-blob-public-access", "").lower() in ("blob", "container")
        if anonymous or raises:
            return storage_error(409, "PublicAccessNotPermitted", "Public access is not permitted on this storage "
                                 "account.")
        return None

    def forward(request) -> Response:
        if ctx.azurite is None:  # the endpoints serve before Azurite has started
            return storage_error(503, "ServerBusy", "The server is currently unable to receive requests. "
                                 "Please retry your request.")
        refused = public_access_refused(request)
        if refused is not None:
            return refused
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
        headers["Host"] = f"{ctx.azurite.host}:{ctx.azurite.port}"
        headers["Content-Length"] = str(len(request.body))
        with ctx.azurite.using():
            for attempt in (1, 2):  # a kept-alive connection Azurite closed (or restarted) gets one fresh try
                conn = connection()
                try:
                    conn.request(request.method, request.target, body=request.body or None, headers=headers)
                    upstream = conn.getresponse()
                    data = upstream.read()
                    break
                except (http.client.HTTPException, OSError):
                    conn.close()
                    local.conn = None
                    if attempt == 2:  # Azurite is down: what Storage answers when it cannot serve
                        return storage_error(503, "ServerBusy", "The server is currently unable to receive "
                                             "requests. Please retry your request.")
        out = {k: v for k, v in upstream.getheaders() if k.lower() not in _DROP_RESPONSE}
        if request.method == "HEAD":  # the blob's length, not the (empty) body's
            length = upstream.getheader("Content-Length")
            if length is not None:
                out["Content-Length"] = length
        return Response(upstream.status, data, out)

    router.not_found = forward
    return router
