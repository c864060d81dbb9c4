"""Cloud endpoint discovery, the Azure Stack way: GET {arm}/metadata/endpoints.

Source: ARM serves /metadata/endpoints?api-version=2022-09-01 (a list of clouds, as used by
azure-cli's cloud registration and azure-sdk `get_cloud_from_metadata_endpoint`); Azure Stack Hub
serves the older single-object form for api-version 2015-01-01 / 1.0 (msrestazure).
"""
from __future__ import annotations

from ..http import ApiError, Response


def cloud(ctx) -> dict:
    body = {
        "name": "ArcwiSandbox",
        "portal": ctx.arm_url,
        "resourceManager": ctx.arm_url,
        "authentication": {
            "loginEndpoint": ctx.entra_url,
            "audiences": [ctx.arm_audience, ctx.arm_audience.rstrip("/")],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "graph": ctx.arm_url,
        "graphAudience": ctx.arm_url,
        "microsoftGraphResourceId": ctx.arm_url,
        "media": ctx.arm_url,
        "sqlManagement": ctx.arm_url,
        "batch": ctx.arm_url,
        "activeDirectoryDataLake": ctx.arm_url,
        "suffixes": {
            # Storage endpoints in the sandbox are path-style (https://127.0.0.1:<port>/<account>/);
            # clients must use primaryEndpoints from the storage account resource, never build URLs.
            "storage": "sandbox.arcwi.invalid",
            "storageSyncEndpointSuffix": "sandbox.arcwi.invalid",
            "keyVaultDns": "vault.sandbox.arcwi.invalid",
            "acrLoginServer": "azurecr.sandbox.arcwi.invalid",
        },
        "arcwiSandbox": {"blob": ctx.blob_url, "web": ctx.web_url},
    }
    if ctx.arcdp_url:
        # az connectedk8s (custom.py get_config_dp_endpoint) takes the Arc config data plane from
        # dataplaneEndpoints.arcConfigEndpoint of the 2022-09-01 metadata when present, else it builds
        # https://{location}.dp.kubernetesconfiguration.azure.com; no trailing slash (az appends "/...").
        body["dataplaneEndpoints"] = {"arcConfigEndpoint": ctx.arcdp_url.rstrip("/")}
    return body


def register(router, ctx) -> None:
    def endpoints(request):
        version = request.api_version
        if not version:
            raise ApiError(400, "MissingApiVersionParameter",
                           "The api-version query parameter (?api-version=) is required for all requests.")
        c = cloud(ctx)
        if version in ("1.0", "2015-01-01"):
            return Response(200, {
                "galleryEndpoint": ctx.arm_url,
                "graphEndpoint": ctx.arm_url,
                "portalEndpoint": ctx.arm_url,
                "authentication": {"loginEndpoint": ctx.entra_url, "audiences": c["authentication"]["audiences"]},
            })
        if version in ("2019-05-01", "2020-06-01", "2022-09-01"):
            return Response(200, [c])
        raise ApiError(400, "InvalidApiVersionParameter",
                       f"The api-version '{version}' is invalid. The supported versions are "
                       "'2022-09-01,2020-06-01,2019-05-01,2015-01-01,1.0'.")

    router.add("GET", "/metadata/endpoints", endpoints, anonymous=True)
