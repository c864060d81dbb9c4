"""The static website endpoint of the sandbox's storage accounts: GET/HEAD /{account}/{path}.

Azure serves https://<account>.z<n>.web.core.windows.net/<path> from the account's `$web` container
when static website hosting is enabled in the blob service properties. The sandbox has one host, so
the account is the first path segment (as for Azurite's path-style blob URLs); `primaryEndpoints.web`
of an account is `{web_url}{account}/`.

Rules (learn.microsoft.com/azure/storage/blobs/storage-blob-static-website):
- Static website is a data-plane setting (Set Blob Service Properties, `StaticWebsite`); the sandbox
  reads it from Azurite on every request, so a change through either plane shows at once.
- Content is served anonymously from `$web` whatever that container's own access level is, and
  whatever the account's allowBlobPublicAccess says ("Disabling public access on a storage account
  doesn't affect static websites that are hosted in that storage account").
- The index document answers requests for the root and for any subfolder; `defaultIndexDocumentPath`
  (an absolute path, exclusive with indexDocument) answers them instead when set.
- A missing file answers 404 with the error document when one is configured and exists, else with
  Azure's page "The requested content does not exist." (ErrorCode WebContentNotFound).
- Content-Type (and Cache-Control, Content-Encoding, Content-Language) come from the blob's
  content settings; ETag/Last-Modified are the blob's, and If-None-Match answers 304.
- Only GET and HEAD (the framework answers other methods with 405).
Assumed, not confirmed from a source: a request while static website is disabled answers 404 with
the same page and ErrorCode WebsiteDisabled.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from .http import Request, Response, Router

WEB_CONTAINER = "$web"


def _page(code: str, request_id: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return (f"<!DOCTYPE html><html><head><title>{code}</title></head><body><h1>The requested content does not "
            f"exist.</h1><p><ul><li>HttpStatusCode: 404</li><li>ErrorCode: {code}</li><li>RequestId : "
            f"{request_id}</li><li>TimeStamp : {stamp}</li></ul></p></body></html>")


def _not_found(code: str) -> Response:
    request_id = str(uuid.uuid4())
    return Response(404, _page(code, request_id), {"x-ms-request-id": request_id, "x-ms-error-code": code},
                    content_type="text/html")


def make_router(ctx) -> Router:
    from .arm import storage

    router = Router("web")

    def fetch(client, name: str):
        """(properties, content) of a blob in $web, or None when it does not exist."""
        from azure.core.exceptions import ResourceNotFoundError
        if not name or name.endswith("/"):
            return None
        try:
            downloader = client.get_blob_client(WEB_CONTAINER, name).download_blob()
            return downloader.properties, downloader.readall()
        except ResourceNotFoundError:
            return None

    def answer(request: Request, status: int, found) -> Response:
        props, content = found
        settings = props.content_settings
        headers = {"ETag": props.etag, "Last-Modified": props.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT")
                   if props.last_modified else None, "Cache-Control": settings.cache_control,
                   "Content-Encoding": settings.content_encoding, "Content-Language": settings.content_language}
        headers = {k: v for k, v in headers.items() if v}
        if status == 200 and props.etag and request.headers.get("If-None-Match") in (props.etag, "*"):
            return Response(304, None, headers)
        return Response(status, content, headers, content_type=settings.content_type or "application/octet-stream")

    def serve(request: Request) -> Response:
        from azure.core.exceptions import AzureError
        account = request.params["account"]
        rest = request.path[len(account) + 1:].lstrip("/")
        body = storage.find_account(ctx, account)
        if body is None or ctx.azurite is None or not ctx.azurite.has_account(body["name"]) or \
                "web" not in body["properties"].get("primaryEndpoints", {}):
            return _not_found("WebContentNotFound")
        account = body["name"]
        with ctx.azurite.using():
            client = ctx.azurite.client(account)
            try:
                website = client.get_service_properties().get("static_website")
                if website is None or not website.enabled:
                    return _not_found("WebsiteDisabled")
                index = website.index_document
                default_index = (getattr(website, "default_index_document_path", None) or "").lstrip("/")
                if rest == "" or rest.endswith("/"):
                    candidates = [default_index] if default_index else ([rest + index] if index else [])
                else:
                    candidates = [rest] + ([rest + "/" + index] if index and not default_index else [])
                for name in candidates:
                    found = fetch(client, name)
                    if found is not None:
                        return answer(request, 200, found)
                error_doc = (website.error_document404_path or "").lstrip("/")
                found = fetch(client, error_doc) if error_doc else None
                if found is not None:
                    return answer(request, 404, found)
                return _not_found("WebContentNotFound")
            except AzureError:
                return Response(503, "Service Unavailable", {"Retry-After": "1"}, content_type="text/plain")
            finally:
                client.close()

    # ---- the Arc-hosted OIDC issuers (sandbox/server/arm/arc.py): {web}arc-oidc/<tenant>/<uuid>/ --------
    # Storage account names cannot contain '-', so "arc-oidc" never shadows an account's website.
    from .arm import arc

    def arc_issuer(request: Request):
        """(cluster, uploaded JWKS) behind an Arc issuer URL, or None: nothing is served before the
        agents have uploaded the cluster's keys, nor once the issuer or its cluster is gone."""
        body = arc.find_by_issuer(ctx, request.params["tenant"], request.params["key"])
        jwks = arc.uploaded_jwks(ctx, body["id"]) if body is not None else None
        return (body, jwks) if jwks is not None else None

    def arc_not_found() -> Response:
        return Response(404, "The requested OIDC issuer document does not exist.", content_type="text/plain")

    def arc_discovery(request: Request) -> Response:
        found = arc_issuer(request)
        if found is None:
            return arc_not_found()
        issuer = found[0]["properties"]["oidcIssuerProfile"]["issuerUrl"]
        # the layout kube-apiserver and AKS's issuer use; issuer byte-equal to oidcIssuerProfile.issuerUrl
        return Response(200, {"issuer": issuer, "jwks_uri": issuer + "openid/v1/jwks",
                              "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                              "id_token_signing_alg_values_supported": ["RS256"]})

    def arc_jwks(request: Request) -> Response:
        found = arc_issuer(request)
        if found is None:
            return arc_not_found()
        return Response(200, found[1], content_type="application/jwk-set+json")

    router.add("GET", "/arc-oidc/{tenant}/{key}/.well-known/openid-configuration", arc_discovery)
    router.add("GET", "/arc-oidc/{tenant}/{key}/openid/v1/jwks", arc_jwks)

    router.add("GET", "/", lambda request: _not_found("WebContentNotFound"))
    router.add("GET", "/{account}", serve)
    router.add("GET", "/{account}{path:path}", serve)
    return router
