# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private module_utils of arcwi.workload_identity: private, may change without notice.
# Not for use outside this collection.
"""Talking to Azure: cloud endpoints, credential selection, client factory, retries, module base.

Layers, bottom up (each usable without the ones above it):

* ``CloudEndpoints`` / ``resolve_cloud()``: the ARM endpoint, the Entra authority and the ARM token
  audience of a named cloud, or discovered the Azure Stack way from ``{arm}/metadata/endpoints``.
  Nothing here hard-codes the public cloud's ARM audience: it always comes from the cloud.
* ``credential_spec()`` / ``build_credential()``: which azure-identity credential, with which kwargs.
* ``ArmRetryPolicy``: azure-core retry policy with a declarative set of retryable status and ARM
  error codes, Retry-After honoured, jittered backoff, bounded attempts and time.
* ``arm_client()`` / ``blob_service_client()`` and ``AzureSession``: SDK clients wired with the above.
* ``translate_errors()``: SDK exceptions -> typed ``_errors`` exceptions (declarative, per call).
* ``AzureModule``: AnsibleModule plus the shared Azure options, dependency checks and error edge.

The Azure SDK imports are guarded: this file imports without them (ansible-test's import sanity
test needs that), and ``AzureModule`` reports what is missing with ``missing_required_lib``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import random
import time
import traceback
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import (
    ArcwiError,
    AzureApiError,
    AzureAuthError,
    AzureConfigError,
)

try:
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
    from azure.core.pipeline import Pipeline, PipelineResponse
    from azure.core.pipeline.policies import RetryPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest
    import azure.identity as _identity
except ImportError:
    AZURE_IMPORT_ERROR = traceback.format_exc()
    RetryPolicy = object  # lets the policy class below be defined; it is never used without the SDK
else:
    AZURE_IMPORT_ERROR = None

# azure-mgmt-resource: resource groups and providers (several modules). 23.x has the client at the package
# root, later versions in the resources subpackage.
try:
    try:
        from azure.mgmt.resource.resources import ResourceManagementClient  # pylint: disable=unused-import  # re-exported for the modules
    except ImportError:
        from azure.mgmt.resource import ResourceManagementClient  # pylint: disable=unused-import
except ImportError:
    RESOURCE_IMPORT_ERROR = traceback.format_exc()
    ResourceManagementClient = None
else:
    RESOURCE_IMPORT_ERROR = None

# The packages AzureModule checks before anything else (pip name -> import error or None).
CORE_LIBRARIES = {"azure-core and azure-identity": AZURE_IMPORT_ERROR}

METADATA_API_VERSION = "2022-09-01"
METADATA_PATH = "/metadata/endpoints"
DEFAULT_CLOUD = "AzureCloud"

# --------------------------------------------------------------------------------------------------
# Cloud endpoints


@dataclass(frozen=True)
class CloudEndpoints:
    """What a client needs to know about one Azure cloud.

    ``resource_manager`` ends with a slash; ``authority_host`` is ``https://host`` without one;
    ``audiences`` are the ARM token audiences the cloud advertises, first one preferred.
    """

    name: str
    resource_manager: str
    authority_host: str
    audiences: tuple
    storage_suffix: str | None = None
    metadata_url: str | None = None

    @property
    def arm_scope(self) -> str:
        """OAuth scope for ARM tokens: the first audience + ``/.default`` (one slash between)."""
        return arm_scope(self.audiences[0])


def arm_scope(audience: str) -> str:
    return audience.rstrip("/") + "/.default"


def public_authority_hosts() -> frozenset:
    """Entra authority hosts of Azure's public and sovereign clouds (instance discovery works there)."""
    hosts = _identity.AzureAuthorityHosts
    return frozenset({hosts.AZURE_PUBLIC_CLOUD, hosts.AZURE_CHINA, hosts.AZURE_GOVERNMENT})


# Known clouds: ARM endpoint and audiences as azure-cli's cloud registry and ARM's own
# /metadata/endpoints report them (audiences[0] is the classic management.core audience).
_KNOWN_CLOUDS = {
    "AzureCloud": ("AZURE_PUBLIC_CLOUD", "https://management.azure.com/",
                   ("https://management.core.windows.net/", "https://management.azure.com/"),
                   "core.windows.net"),
    "AzureChinaCloud": ("AZURE_CHINA", "https://management.chinacloudapi.cn/",
                        ("https://management.core.chinacloudapi.cn/", "https://management.chinacloudapi.cn/"),
                        "core.chinacloudapi.cn"),
    "AzureUSGovernment": ("AZURE_GOVERNMENT", "https://management.usgovcloudapi.net/",
                          ("https://management.core.usgovcloudapi.net/", "https://management.usgovcloudapi.net/"),
                          "core.usgovcloudapi.net"),
}
# Other spellings in use: go-autorest / AZURE_ENVIRONMENT (workload identity webhook), msrestazure.
_CLOUD_ALIASES = {
    "azurecloud": "AzureCloud",
    "azurepubliccloud": "AzureCloud",
    "public": "AzureCloud",
    "azurechinacloud": "AzureChinaCloud",
    "china": "AzureChinaCloud",
    "azureusgovernment": "AzureUSGovernment",
    "azureusgovernmentcloud": "AzureUSGovernment",
    "usgovernment": "AzureUSGovernment",
}


def known_cloud(name: str) -> CloudEndpoints:
    canonical = _CLOUD_ALIASES.get(name.strip().lower())
    if canonical is None:
        raise AzureConfigError(
            f"unknown cloud_environment {name!r}: use one of {', '.join(_KNOWN_CLOUDS)} "
            "or a cloud metadata URL (https://<arm>/metadata/endpoints?api-version=...)"
        )
    host_attr, arm, audiences, storage = _KNOWN_CLOUDS[canonical]
    authority = "https://" + getattr(_identity.AzureAuthorityHosts, host_attr)
    return CloudEndpoints(canonical, arm, authority, audiences, storage)


def is_url(value: str) -> bool:
    return value.strip().lower().startswith(("https://", "http://"))


def metadata_url(url: str) -> str:
    """The metadata endpoint for a metadata URL or a bare ARM endpoint (azure.azcollection accepts both)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https" or not parts.netloc:
        raise AzureConfigError(f"cloud metadata URL must be an https URL, got {url!r}")
    path = parts.path
    if not path.rstrip("/").endswith(METADATA_PATH):
        path = path.rstrip("/") + METADATA_PATH
    query = dict(parse_qsl(parts.query))
    query.setdefault("api-version", METADATA_API_VERSION)
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _normalise_arm(url: str) -> str:
    return url.rstrip("/") + "/"


def parse_cloud_metadata(document, url: str) -> CloudEndpoints:
    """Cloud endpoints from a ``/metadata/endpoints`` answer.

    Two shapes: api-version 2019-05-01 and later return a list of clouds (``name``,
    ``resourceManager``, ``authentication.loginEndpoint``, ``authentication.audiences``); Azure Stack
    Hub's 2015-01-01 / 1.0 form is one object with ``authentication`` only, served by ARM itself.
    From a list, the cloud whose ``resourceManager`` is the host that served the document wins.
    """
    served_by = _origin(url)
    if isinstance(document, list):
        clouds = [c for c in document if isinstance(c, dict)]
        matching = [c for c in clouds if _origin(str(c.get("resourceManager", ""))) == served_by]
        if len(matching) == 1 or (not matching and len(clouds) == 1):
            cloud = (matching or clouds)[0]
        else:
            names = ", ".join(str(c.get("name")) for c in clouds) or "none"
            raise AzureConfigError(
                f"cloud metadata from {url} lists {len(clouds)} clouds ({names}); "
                f"{'none has' if not matching else 'several have'} resourceManager {served_by}/"
            )
        resource_manager = cloud.get("resourceManager")
    elif isinstance(document, dict) and isinstance(document.get("authentication"), dict):
        cloud = document
        resource_manager = document.get("resourceManager") or served_by + "/"
    else:
        raise AzureConfigError(f"cloud metadata from {url} has neither a list of clouds nor an authentication object")

    auth = cloud.get("authentication") or {}
    login = auth.get("loginEndpoint")
    audiences = auth.get("audiences")
    if isinstance(audiences, str):
        audiences = [audiences]
    if not isinstance(login, str) or not is_url(login):
        raise AzureConfigError(f"cloud metadata from {url} has no authentication.loginEndpoint URL")
    if not audiences or not all(isinstance(a, str) and a for a in audiences):
        raise AzureConfigError(f"cloud metadata from {url} has no authentication.audiences")
    if not isinstance(resource_manager, str) or not is_url(resource_manager):
        raise AzureConfigError(f"cloud metadata from {url} has no resourceManager URL")
    suffixes = cloud.get("suffixes") if isinstance(cloud.get("suffixes"), dict) else {}
    return CloudEndpoints(
        name=str(cloud.get("name") or urlsplit(resource_manager).hostname),
        resource_manager=_normalise_arm(resource_manager),
        authority_host=_origin(login),
        audiences=tuple(audiences),
        storage_suffix=suffixes.get("storage"),
        metadata_url=url,
    )


def fetch_cloud_metadata(url: str, transport=None) -> CloudEndpoints:
    """GET the metadata endpoint (anonymous, retried like any ARM call) and parse it."""
    url = metadata_url(url)
    pipeline = Pipeline(transport=transport or RequestsTransport(), policies=[ArmRetryPolicy()])
    request = HttpRequest("GET", url, headers={"Accept": "application/json"})
    try:
        with pipeline:
            response = pipeline.run(request, connection_timeout=30, read_timeout=60).http_response
            status, body = response.status_code, response.text()
    except AzureError as exc:
        raise AzureApiError(getattr(exc, "message", None) or str(exc), operation=f"GET {url}") from exc
    if status != 200:
        code, message = arm_error(body)
        raise AzureApiError(message or body[:500] or "no body", status=status, code=code, operation=f"GET {url}")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise AzureConfigError(f"cloud metadata from {url} is not JSON: {body[:200]!r}") from exc
    return parse_cloud_metadata(document, url)


def resolve_cloud(cloud_environment: str | None = None, cloud_metadata_url: str | None = None,
                  env=None, transport=None) -> CloudEndpoints:
    """The cloud to talk to. Precedence: the ``cloud_metadata_url`` option, the ``cloud_environment``
    option (a name or a metadata URL), then the environment variables ARCWI_CLOUD_METADATA_URL and
    AZURE_CLOUD_ENVIRONMENT, then AzureCloud. Options set in the task beat the environment."""
    env = os.environ if env is None else env
    if cloud_metadata_url and cloud_environment:
        raise AzureConfigError("cloud_environment and cloud_metadata_url are mutually exclusive")
    value = (cloud_metadata_url or cloud_environment or env.get("ARCWI_CLOUD_METADATA_URL")
             or env.get("AZURE_CLOUD_ENVIRONMENT") or DEFAULT_CLOUD)
    if is_url(value):
        return fetch_cloud_metadata(value, transport=transport)
    return known_cloud(value)


# --------------------------------------------------------------------------------------------------
# Credentials

AUTH_SOURCES = ("auto", "env", "cli", "msi", "workload_identity")


def normalise_authority(value: str) -> str:
    value = value.strip()
    if "://" not in value:
        value = "https://" + value
    return _origin(value) if urlsplit(value).path.strip("/") == "" else value.rstrip("/")


def authority_for(cloud: CloudEndpoints, env=None) -> str:
    """AZURE_AUTHORITY_HOST when set (as every Azure SDK and the webhook-injected pods do), else the
    cloud's login endpoint."""
    env = os.environ if env is None else env
    override = env.get("AZURE_AUTHORITY_HOST")
    return normalise_authority(override) if override else cloud.authority_host


def is_public_authority(authority: str) -> bool:
    return (urlsplit(normalise_authority(authority)).hostname or "") in public_authority_hosts()


def credential_spec(auth_source: str = "auto", authority: str | None = None, client_id: str | None = None,
                    secret: str | None = None, tenant: str | None = None, env=None) -> tuple:
    """Which azure-identity credential class (by name) and which kwargs, without constructing it.

    ``auto``: an explicit service principal (client_id + secret + tenant) -> ClientSecretCredential,
    otherwise DefaultAzureCredential. ``env`` EnvironmentCredential, ``cli`` AzureCliCredential,
    ``msi`` ManagedIdentityCredential, ``workload_identity`` WorkloadIdentityCredential.
    Off the public clouds (authority not one of AzureAuthorityHosts) instance discovery is disabled,
    since it asks login.microsoftonline.com about an authority it cannot know.
    """
    env = os.environ if env is None else env
    if auth_source not in AUTH_SOURCES:
        raise AzureConfigError(f"auth_source must be one of {', '.join(AUTH_SOURCES)}, got {auth_source!r}")
    directory = {}
    if authority:
        directory["authority"] = authority
        if not is_public_authority(authority):
            directory["disable_instance_discovery"] = True

    if auth_source == "auto" and secret:
        missing = [name for name, value in (("client_id", client_id), ("tenant", tenant)) if not value]
        if missing:
            raise AzureConfigError(
                f"a client secret needs {' and '.join(missing)} too "
                "(options client_id/tenant or AZURE_CLIENT_ID/AZURE_TENANT_ID)"
            )
        return "ClientSecretCredential", dict(tenant_id=tenant, client_id=client_id, client_secret=secret, **directory)
    if auth_source == "auto":
        kwargs = dict(directory)
        if client_id:
            kwargs["managed_identity_client_id"] = client_id
            kwargs["workload_identity_client_id"] = client_id
        if tenant:
            kwargs["workload_identity_tenant_id"] = tenant
        return "DefaultAzureCredential", kwargs
    if auth_source == "env":
        return "EnvironmentCredential", dict(directory)
    if auth_source == "cli":
        return "AzureCliCredential", ({"tenant_id": tenant} if tenant else {})
    if auth_source == "msi":
        return "ManagedIdentityCredential", ({"client_id": client_id} if client_id else {})
    # workload_identity: the federated token file comes from AZURE_FEDERATED_TOKEN_FILE
    kwargs = dict(directory)
    kwargs["tenant_id"] = tenant or env.get("AZURE_TENANT_ID")
    kwargs["client_id"] = client_id or env.get("AZURE_CLIENT_ID")
    kwargs["token_file_path"] = env.get("AZURE_FEDERATED_TOKEN_FILE")
    missing = [k for k in ("tenant_id", "client_id", "token_file_path") if not kwargs[k]]
    if missing:
        raise AzureConfigError(
            "auth_source=workload_identity needs tenant, client_id and AZURE_FEDERATED_TOKEN_FILE; missing: "
            + ", ".join(missing)
        )
    return "WorkloadIdentityCredential", kwargs


def build_credential(spec: tuple):
    name, kwargs = spec
    try:
        return getattr(_identity, name)(**kwargs)
    except ValueError as exc:
        raise AzureConfigError(f"cannot create {name}: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# Retries

# Status codes retried for every call: throttling and transient server-side failures.
# 408 and all other 4xx (400, 401, 403, 404, 409, 412, ...) are never retried, even with Retry-After.
RETRYABLE_STATUS_CODES = frozenset({429, 500, 502, 503, 504})
# ARM error codes of HTTP 409 that mean "nothing happened, try again": opt in per client or per call.
FIC_CONCURRENT_WRITES = "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"
FIC_WRITE_CONFLICTS = frozenset({FIC_CONCURRENT_WRITES})


def arm_error(body) -> tuple:
    """(code, message) from ARM's error envelope ``{"error": {"code", "message"}}`` (or a bare one)."""
    try:
        document = json.loads(body) if isinstance(body, (str, bytes)) else body
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    error = document.get("error", document)
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (code if isinstance(code, str) else None), (message if isinstance(message, str) else None)


def _response_text(http_response) -> str | None:
    try:
        return http_response.text()
    except Exception:  # pylint: disable=broad-except  # a streamed, unread body: no code to read
        return None


class ArmRetryPolicy(RetryPolicy):
    """azure-core RetryPolicy for ARM with a declarative notion of what is retryable.

    * ``RETRYABLE_STATUS_CODES`` (429, 500, 502, 503, 504) and connection errors are retried; 429 for
      every method (the request was refused unprocessed), 5xx as azure-core allows per method.
    * HTTP 409 is retried only when its ARM error code is in ``retry_error_codes`` (empty by default):
      pass ``FIC_WRITE_CONFLICTS`` to the client factory, or per call as a keyword argument
      (``client.federated_identity_credentials.create_or_update(..., retry_error_codes=FIC_WRITE_CONFLICTS)``).
    * Every other 4xx, 400 included, fails at once, even when the answer carries Retry-After.
    * Delay: Retry-After (or retry-after-ms / x-ms-retry-after-ms) when the server sends one, else
      exponential backoff with equal jitter: ``b/2 + random(0, b/2)``, ``b = factor * 2**(n-1)``, capped.
    * Bounded: at most ``retry_total`` retries, and no retry whose wait would end after ``timeout``
      seconds from the first attempt; the last answer (with Azure's code and message) is returned.
    Per-call overrides: ``retry_total``, ``retry_error_codes``, ``timeout`` (azure-core's own names).
    """

    def __init__(self, retry_error_codes=frozenset(), retry_total: int = 6, retry_backoff_factor: float = 1.0,
                 retry_backoff_max: float = 60, timeout: float = 300, clock=time.monotonic, rng=random.random,
                 **kwargs) -> None:
        kwargs.setdefault("retry_status", retry_total)
        super().__init__(retry_total=retry_total, retry_backoff_factor=retry_backoff_factor,
                         retry_backoff_max=retry_backoff_max, timeout=timeout, **kwargs)
        self.retry_error_codes = frozenset(retry_error_codes)
        self._clock = clock
        self._rng = rng

    def configure_retries(self, options):
        if "retry_total" in options:  # a per-call total also bounds status retries, as in __init__
            options.setdefault("retry_status", options["retry_total"])
        settings = super().configure_retries(options)
        settings["error_codes"] = frozenset(options.pop("retry_error_codes", self.retry_error_codes))
        settings["deadline"] = self._clock() + settings["timeout"]
        return settings

    def is_retry(self, settings, response) -> bool:
        status = response.http_response.status_code
        if status < 400 or not settings["total"]:
            return False
        if status == 409:
            if not settings["error_codes"]:
                return False
            code = arm_error(_response_text(response.http_response))[0]
            return code in settings["error_codes"]
        if status not in RETRYABLE_STATUS_CODES:
            return False
        if status == 429:
            return True
        return self._is_method_retryable(settings, response.http_request, response=response.http_response)

    def delay(self, settings, response=None) -> float:
        """Seconds to wait before the next attempt."""
        if response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after is not None:
                return max(0.0, float(retry_after))
        attempt = max(1, len(settings["history"]))
        ceiling = min(settings["max_backoff"], settings["backoff"] * (2 ** (attempt - 1)))
        return ceiling / 2 + self._rng() * ceiling / 2

    def increment(self, settings, response=None, error=None) -> bool:
        if not super().increment(settings, response=response, error=error):
            return False
        wait = self.delay(settings, response if isinstance(response, PipelineResponse) else None)
        if self._clock() + wait > settings["deadline"]:
            return False
        settings["next_delay"] = wait
        return True

    def sleep(self, settings, transport, response=None) -> None:
        wait = settings.pop("next_delay", None)
        if wait is None:
            wait = self.delay(settings, response)
        if wait > 0:
            transport.sleep(wait)


# --------------------------------------------------------------------------------------------------
# Error translation

_RAISE = object()


def api_error(exc, operation: str | None = None) -> AzureApiError:
    """An azure-core exception as an AzureApiError (AzureAuthError for token failures)."""
    message = getattr(exc, "message", None) or str(exc)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError):
        return AzureAuthError.from_message(message, operation=operation, status=status)
    if isinstance(exc, HttpResponseError):
        code = message_text = None
        odata = getattr(exc, "error", None)
        if odata is not None:
            code, message_text = getattr(odata, "code", None), getattr(odata, "message", None)
        if not code and exc.response is not None:
            code, message_text = arm_error(_response_text(exc.response))
        return AzureApiError(message_text or message, status=status, code=code, operation=operation)
    return AzureApiError(message, operation=operation)


def translate_errors(operation: str, not_found=_RAISE):
    """Decorator: azure-core exceptions raised by the wrapped call become AzureApiError.

    ``not_found``: when given, a 404 returns this value instead of raising (describe-style calls).
    """

    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except AzureError as exc:
                error = api_error(exc, operation)
                if error.not_found and not_found is not _RAISE:
                    return not_found
                raise error from exc

        return wrapper

    return decorator


# --------------------------------------------------------------------------------------------------
# Clients


def arm_client(cls, cloud: CloudEndpoints, credential, subscription_id: str | None = None,
               retry_error_codes=frozenset(), **kwargs):
    """An azure-mgmt-* client for ``cloud``: its ARM endpoint and scope, our retry policy.

    ``subscription_id`` is passed to clients that take one (SubscriptionClient does not).
    Extra kwargs go to the client (``api_version``, ``polling_interval``, ``transport``, ...).
    """
    kwargs.setdefault("base_url", cloud.resource_manager)
    kwargs.setdefault("credential_scopes", [cloud.arm_scope])
    kwargs.setdefault("retry_policy", ArmRetryPolicy(retry_error_codes=retry_error_codes))
    if "subscription_id" in inspect.signature(cls.__init__).parameters:
        if not subscription_id:
            raise AzureConfigError(
                f"{cls.__name__} needs a subscription: set subscription_id or AZURE_SUBSCRIPTION_ID"
            )
        kwargs["subscription_id"] = subscription_id
    return cls(credential, **kwargs)


def blob_service_client(account_url: str, credential=None, **kwargs):
    """azure-storage-blob BlobServiceClient; ``credential`` None means anonymous.

    Storage keeps its own retry policy (azure-storage's ExponentialRetry knows about storage's
    secondary endpoints); ``api_version`` and other kwargs pass through.
    """
    try:
        from azure.storage.blob import BlobServiceClient
    except ImportError as exc:
        raise AzureConfigError(missing_required_lib("azure-storage-blob")) from exc
    return BlobServiceClient(account_url, credential=credential, **kwargs)


class AzureSession:
    """A resolved cloud + credential + subscription; hands out clients. Holds no Ansible state."""

    def __init__(self, cloud: CloudEndpoints, credential, subscription_id: str | None = None,
                 warnings=()) -> None:
        self.cloud = cloud
        self.credential = credential
        self.subscription_id = subscription_id
        self.warnings = list(warnings)

    @classmethod
    def from_params(cls, params: dict, env=None, transport=None) -> AzureSession:
        """Resolve the shared Azure options (see azure_argument_spec) into a session."""
        env = os.environ if env is None else env
        cloud = resolve_cloud(params.get("cloud_environment"), params.get("cloud_metadata_url"),
                              env=env, transport=transport)
        authority = authority_for(cloud, env)
        warnings = []
        if authority != cloud.authority_host:
            warnings.append(f"AZURE_AUTHORITY_HOST ({authority}) overrides the login endpoint of cloud "
                            f"{cloud.name} ({cloud.authority_host})")
        spec = credential_spec(params.get("auth_source") or "auto", authority=authority,
                               client_id=params.get("client_id"), secret=params.get("secret"),
                               tenant=params.get("tenant"), env=env)
        return cls(cloud, build_credential(spec), params.get("subscription_id"), warnings)

    def client(self, cls, **kwargs):
        return arm_client(cls, self.cloud, self.credential, self.subscription_id, **kwargs)

    def blob_service_client(self, account_url: str, **kwargs):
        kwargs.setdefault("credential", self.credential)
        return blob_service_client(account_url, **kwargs)


# --------------------------------------------------------------------------------------------------
# Module base


def azure_argument_spec() -> dict:
    """The shared Azure connection options (documented in the ``azure`` doc fragment).

    Names follow azure.azcollection where they overlap. The cloud options read their environment
    variables in resolve_cloud(), so that a task's cloud_environment beats ARCWI_CLOUD_METADATA_URL.
    """
    return dict(
        subscription_id=dict(type="str", fallback=(env_fallback, ["AZURE_SUBSCRIPTION_ID"])),
        client_id=dict(type="str", fallback=(env_fallback, ["AZURE_CLIENT_ID"])),
        secret=dict(type="str", no_log=True, fallback=(env_fallback, ["AZURE_SECRET", "AZURE_CLIENT_SECRET"])),
        tenant=dict(type="str", fallback=(env_fallback, ["AZURE_TENANT", "AZURE_TENANT_ID"])),
        cloud_environment=dict(type="str"),
        cloud_metadata_url=dict(type="str"),
        auth_source=dict(type="str", choices=list(AUTH_SOURCES), default="auto",
                         fallback=(env_fallback, ["ANSIBLE_AZURE_AUTH_SOURCE"])),
    )


def state_spec() -> dict:
    """The ``state`` option of the resource modules."""
    return dict(state=dict(type="str", choices=["present", "absent"], default="present"))


def tags_spec() -> dict:
    """``tags`` and ``purge_tags`` (tags left alone when ``tags`` is not set)."""
    return dict(tags=dict(type="dict"), purge_tags=dict(type="bool", default=True))


class AzureModule:
    """AnsibleModule with the shared Azure options, dependency checks and one error edge.

    ``libraries`` maps pip names to an import traceback (None when the import worked), for the
    per-module SDK imports, e.g. ``{"azure-mgmt-msi": MSI_IMPORT_ERROR}``.
    """

    def __init__(self, argument_spec=None, libraries=None, mutually_exclusive=None, **kwargs) -> None:
        spec = azure_argument_spec()
        spec.update(argument_spec or {})
        exclusive = list(mutually_exclusive or []) + [("cloud_environment", "cloud_metadata_url")]
        self._module = AnsibleModule(argument_spec=spec, mutually_exclusive=exclusive, **kwargs)
        self._session = None
        missing = {name: error for name, error in {**CORE_LIBRARIES, **(libraries or {})}.items() if error}
        if missing:
            self._module.fail_json(msg=missing_required_lib(" and ".join(missing)),
                                   exception=next(iter(missing.values())))

    # AnsibleModule surface the modules use
    @property
    def params(self) -> dict:
        return self._module.params

    @property
    def check_mode(self) -> bool:
        return self._module.check_mode

    @property
    def diff_mode(self) -> bool:
        return self._module._diff  # pylint: disable=protected-access

    def exit_json(self, **kwargs):
        self._module.exit_json(**kwargs)

    def fail_json(self, msg: str, **kwargs):
        self._module.fail_json(msg=msg, **kwargs)

    def warn(self, warning: str) -> None:
        self._module.warn(warning)

    def run_command(self, args, **kwargs):
        return self._module.run_command(args, **kwargs)

    # Azure
    @property
    def session(self) -> AzureSession:
        """Resolved on first use (a metadata URL is fetched then); raises ArcwiError subclasses."""
        if self._session is None:
            self._session = AzureSession.from_params(self.params)
            for warning in self._session.warnings:
                self.warn(warning)
        return self._session

    def client(self, cls, **kwargs):
        return self.session.client(cls, **kwargs)

    def blob_service_client(self, account_url: str, **kwargs):
        return self.session.blob_service_client(account_url, **kwargs)

    def exit_with_state(self, changed: bool, key: str, before, after, **extra):
        """The common end of a resource module: ``key`` holds the state after the task (the predicted one
        in check mode, ``{}`` when absent); the diff is returned only in diff mode."""
        result = {"changed": changed, key: after or {}, **extra}
        if self.diff_mode:
            result["diff"] = {"before": before or {}, "after": after or {}}
        self._module.exit_json(**result)

    def fail_from(self, exc: Exception, **result):
        """The error edge: fail with Azure's code and message (and the traceback for unexpected errors)."""
        if isinstance(exc, ArcwiError):
            result.update(exc.to_result())
            self._module.fail_json(msg=str(exc), **result)
        self._module.fail_json(msg=f"{type(exc).__name__}: {exc}", exception=traceback.format_exc(), **result)


def as_rest(obj):
    """An SDK model (either generation) or a dict as its REST (wire) JSON shape, or None.

    azure-mgmt-* packages generated from TypeSpec (e.g. azure-mgmt-storage 24+) have Mapping models
    whose attributes nest under ``properties``; older msrest models flatten them. Reading the wire
    shape works with both, so normalisers do not depend on the SDK generation.
    """
    if obj is None or isinstance(obj, dict):
        return obj
    as_dict = getattr(obj, "as_dict", None)
    serialize = getattr(obj, "serialize", None)
    try:
        from collections.abc import Mapping
    except ImportError:  # pragma: no cover
        Mapping = dict
    if isinstance(obj, Mapping) and as_dict is not None:
        return as_dict()
    if serialize is not None:
        return serialize(keep_readonly=True)
    raise TypeError(f"cannot read {type(obj).__name__} as REST JSON")
