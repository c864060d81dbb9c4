"""The Azure Arc data plane the onboarding talks to, and the OCI registry that holds the agent chart.

One HTTPS endpoint on 127.0.0.1 (`ARCWI_SANDBOX_ARCDP_PORT`, printed by `python -m sandbox env` as
ARCWI_ARC_DATAPLANE_ENDPOINT) plays two hosts of the real world:

1. The Arc config data plane, https://{location}.dp.kubernetesconfiguration.azure.com/ (az connectedk8s
   _utils.get_helm_registry):
   POST /azure-arc-k8sagents/GetLatestHelmPackagePath?api-version=2019-11-01-preview&releaseTrain=stable
   with an ARM bearer token (az sends the cloud's ARM resource token through send_raw_request) answers
   {"repositoryPath": "<registry host>/<repository>:<chart version>"}, e.g. real:
   mcr.microsoft.com/azurearck8s/batch1/stable/azure-arc-k8sagents:1.24.4.
2. The registry (mcr.microsoft.com): an anonymous, read-only OCI distribution API (opencontainers
   distribution-spec: GET /v2/, GET|HEAD /v2/<name>/manifests/<tag|digest>, GET|HEAD
   /v2/<name>/blobs/<digest>, GET /v2/<name>/tags/list; errors {"errors": [{"code", "message"}]}) serving
   the fixture chart sandbox/charts/azure-arc-k8sagents packaged the way `helm push` stores a chart
   (config application/vnd.cncf.helm.config.v1+json, one layer application/vnd.cncf.helm.chart.content.
   v1.tar+gzip; helm.sh/docs/topics/registries).

az connectedk8s turns repositoryPath into a pull (_utils.pull_helm_chart): chart_url, version =
repositoryPath.split(":") and, on its current path, chart_url = dirname + "/v2/" + basename, then
`helm pull oci://<chart_url> --version <version>`. The sandbox serves the chart under both repository
names (with and without that "/v2/"). Its registry host has a port, so a client must split at the LAST
colon (rpartition), not at the first as az does.

Assumed, not confirmed from a source: the data plane's error bodies and codes (ARM-shaped here); that
release trains other than "stable" are refused (the sandbox hosts only "stable").
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import yaml

from .. import config
from .http import ApiError, Request, Response, Router

CHART_DIR = config.SANDBOX_DIR / "charts" / "azure-arc-k8sagents"
# the repository layout of the real registry (see the module docstring), without the registry host
REPOSITORY = "azurearck8s/batch1/stable/azure-arc-k8sagents"
REPOSITORIES = (REPOSITORY, "azurearck8s/batch1/stable/v2/azure-arc-k8sagents")
HELM_PACKAGE_PATH_API_VERSION = "2019-11-01-preview"
RELEASE_TRAINS = ("stable",)
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.cncf.helm.config.v1+json"
CHART_LAYER_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def package_chart(chart_dir: Path = CHART_DIR) -> tuple[dict, bytes]:
    """(Chart.yaml metadata, .tgz bytes) - deterministic, so digests are stable across restarts."""
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    top = meta["name"]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in chart_dir.rglob("*") if p.is_file()):
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{top}/{path.relative_to(chart_dir).as_posix()}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return meta, gzip.compress(raw.getvalue(), mtime=0)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ChartArtifact:
    """The packaged chart as OCI blobs and an image manifest."""

    def __init__(self, chart_dir: Path = CHART_DIR):
        meta, self.tgz = package_chart(chart_dir)
        self.version = str(meta["version"])
        self.name = meta["name"]
        config_doc = {k: meta[k] for k in ("name", "version", "description", "apiVersion", "appVersion", "type")
                      if k in meta}
        self.config = json.dumps(config_doc, separators=(",", ":")).encode()
        self.blobs = {_digest(self.config): self.config, _digest(self.tgz): self.tgz}
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": _digest(self.config), "size": len(self.config)},
            "layers": [{"mediaType": CHART_LAYER_TYPE, "digest": _digest(self.tgz), "size": len(self.tgz)}],
            "annotations": {"org.opencontainers.image.title": self.name,
                            "org.opencontainers.image.version": self.version,
                            "org.opencontainers.image.description": str(meta.get("description", "")).strip()},
        }
        self.manifest = json.dumps(manifest, separators=(",", ":")).encode()
        self.manifest_digest = _digest(self.manifest)


def repository_path(ctx, artifact: ChartArtifact) -> str:
    host = ctx.arcdp_url.split("://", 1)[1].rstrip("/")
    return f"{host}/{REPOSITORY}:{artifact.version}"


def _oci_error(status: int, code: str, message: str, detail=None) -> ApiError:
    body = {"errors": [{"code": code, "message": message, **({"detail": detail} if detail else {})}]}
    return ApiError(status, code, message, shape="raw", extra=body)


def make_router(ctx) -> Router:
    router = Router("arcdp")
    artifact = ChartArtifact()
    registry_headers = {"Docker-Distribution-API-Version": "registry/2.0"}

    # ---- the Arc config data plane -------------------------------------------------------------
    @router.route("POST", "/azure-arc-k8sagents/GetLatestHelmPackagePath")
    def latest_helm_package_path(request: Request) -> Response:
        # an ARM token, as az connectedk8s sends (resource = the cloud's ARM resource id)
        ctx.tokens.verify_arm(request.headers.get("Authorization"), [ctx.arm_audience, ctx.arm_audience.rstrip("/")])
        version = request.api_version
        if version != HELM_PACKAGE_PATH_API_VERSION:
            raise ApiError(400, "InvalidApiVersionParameter",
                           f"The api-version '{version}' is invalid. The supported versions are "
                           f"'{HELM_PACKAGE_PATH_API_VERSION}'.")
        train = request.q("releaseTrain") or "stable"
        if train.lower() not in RELEASE_TRAINS:
            raise ApiError(400, "InvalidReleaseTrain", f"The release train '{train}' is not valid; the sandbox "
                                                       f"hosts: {', '.join(RELEASE_TRAINS)}.")
        return Response(200, {"repositoryPath": repository_path(ctx, artifact)})

    # ---- the OCI registry ------------------------------------------------------------------------
    def repository(request: Request) -> str:
        name = request.params["name"].strip("/")
        if name not in REPOSITORIES:
            raise _oci_error(404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name})
        return name

    @router.route("GET", "/v2")
    def base(request: Request) -> Response:
        return Response(200, {}, registry_headers)

    def manifest(request: Request) -> Response:
        repository(request)
        ref = request.params["ref"]
        if ref not in (artifact.version, artifact.manifest_digest):
            raise _oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"tag": ref})
        return Response(200, artifact.manifest, dict(registry_headers, **{"Docker-Content-Digest":
                                                                          artifact.manifest_digest}),
                        content_type=MANIFEST_TYPE)

    def blob(request: Request) -> Response:
        repository(request)
        digest = request.params["digest"]
        data = artifact.blobs.get(digest)
        if data is None:
            raise _oci_error(404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest})
        return Response(200, data, dict(registry_headers, **{"Docker-Content-Digest": digest}),
                        content_type="application/octet-stream")

    def tags(request: Request) -> Response:
        return Response(200, {"name": repository(request), "tags": [artifact.version]}, registry_headers)

    router.add("GET", "/v2{name:path}/manifests/{ref}", manifest)
    router.add("GET", "/v2{name:path}/blobs/{digest}", blob)
    router.add("GET", "/v2{name:path}/tags/list", tags)

    def not_found(request: Request) -> Response:
        if request.path.startswith("/v2/"):
            if request.method not in ("GET", "HEAD"):
                # a read-only mirror of the vendor's registry: no pushes, no deletes
                raise _oci_error(405, "UNSUPPORTED", "The operation is unsupported.")
            raise _oci_error(404, "NAME_UNKNOWN", "repository name not known to registry")
        if any(route.regex.match(request.path) for route in router.routes):
            raise ApiError(405, "MethodNotAllowed",
                           f"The requested resource does not support http method '{request.method}'.")
        raise ApiError(404, "NotFound", f"The requested path '{request.path}' was not found.")

    router.not_found = not_found
    return router
