#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: workload_identity_check
short_description: Prove or diagnose Microsoft Entra Workload ID for a ServiceAccount of a cluster
version_added: 0.1.0
description:
  - Reads the cluster, the managed identity and the published issuer, mints a token for the
    ServiceAccount the way kubelet does (TokenRequest), and reports each problem as a finding with a
    severity, the evidence and the fix.
  - "Checks: the webhook is registered; the pods of the ServiceAccount carry the label
    C(azure.workload.identity/use: \"true\") and were mutated (four C(AZURE_*) variables and the projected
    token volume); the ServiceAccount's client-id annotation is the identity's; the token's issuer
    is the one the apiserver serves and the one the published discovery document names; its kid is in
    the published JWKS, which matches the apiserver's C(/openid/v1/jwks); the identity's federated
    credentials admit the token's issuer, subject and audience, or which AADSTS code Entra answers
    (700211, 700213, 7002138, 700212) with the differing strings, trailing-slash and case differences
    named as such."
  - With O(exchange=true) the token is exchanged with Entra by azure-identity's
    C(WorkloadIdentityCredential) from the variables the webhook injected (what the SDK in the pod does),
    retrying while a new federated credential propagates; Entra's AADSTS code is reported.
  - With O(probe_read=true) and O(probe_write=true) the resulting token lists resource groups and tries
    to create one (which must be refused for a read-only identity).
  - The token is never returned or logged; only its header and claims are.
author:
  - arcwi maintainers (!UNKNOWN)
options:
  kubeconfig:
    description: Path to the kubeconfig of the cluster. Defaults to C(~/.kube/config) (or E(KUBECONFIG)).
    type: path
  context:
    description: Context of the kubeconfig. Defaults to the current context.
    type: str
  namespace:
    description: Namespace of the ServiceAccount.
    type: str
    required: true
  service_account:
    description: Name of the ServiceAccount the workload runs as.
    type: str
    required: true
  resource_group:
    description: Resource group of the user-assigned managed identity.
    type: str
    required: true
  identity:
    description: Name of the user-assigned managed identity.
    type: str
    required: true
  audience:
    description:
      - Audience of the minted token. Defaults to the audience of the mutated pod's projected token
        volume, else V(api://AzureADTokenExchange).
    type: str
  exchange:
    description: Exchange the token with Entra (WorkloadIdentityCredential).
    type: bool
    default: true
  exchange_timeout:
    description:
      - Seconds to keep retrying the exchange while Entra does not know a federated credential that
        matches the token yet (propagation after it was written). 0 tries once.
    type: int
    default: 120
  check_other_issuers:
    description:
      - Fetch the discovery document of every other issuer the identity's federated credentials trust,
        anonymously, and report those that no longer resolve or serve it (V(dangling_issuer)); a
        deleted issuer's name can be registered again by someone else.
    type: bool
    default: true
  probe_read:
    description: With the exchanged token, list the subscription's resource groups (needs Reader).
    type: bool
    default: false
  probe_write:
    description:
      - With the exchanged token, try to create the resource group O(write_probe_resource_group). Azure
        must refuse it (403) for an identity that only reads; if Azure accepts it, the module deletes the
        group again and reports an error. Skipped in check mode.
    type: bool
    default: false
  write_probe_resource_group:
    description: Name of the resource group the write probe tries to create.
    type: str
    default: arcwi-verify-write-probe
  fail_on_error:
    description: Fail the task when a finding of severity C(error) exists (the findings are returned either way).
    type: bool
    default: true
extends_documentation_fragment:
  - arcwi.workload_identity.azure
  - arcwi.workload_identity.attributes
  - arcwi.workload_identity.attributes.ACTIONGROUP_AZURE
attributes:
  check_mode:
    support: full
    details:
      - Reads only; the write probe is skipped in check mode.
  diff_mode:
    support: N/A
    details:
      - Changes nothing.
  idempotent:
    support: full
requirements:
  - azure-identity >= 1.15.0
  - azure-mgmt-msi >= 7.0.0
  - azure-mgmt-resource >= 23.0.0
  - kubernetes >= 24.2.0
notes:
  - The Azure options (O(subscription_id), credentials, cloud) are the operator's, used to read the
    identity and its federated credentials; the exchange and the probes use the workload's own token.
"""

EXAMPLES = r"""
- name: Does the demo workload get Azure access, and can it only read?
  arcwi.workload_identity.workload_identity_check:
    kubeconfig: ~/.kube/config
    context: kind-arcwi-demo
    namespace: demo
    service_account: workload
    resource_group: rg-arcwi-demo
    identity: id-arcwi-workload
    probe_read: true
    probe_write: true
  register: wi

- name: Why does it not work? (findings, without failing the play)
  arcwi.workload_identity.workload_identity_check:
    context: kind-arcwi-demo
    namespace: demo
    service_account: workload
    resource_group: rg-arcwi-demo
    identity: id-arcwi-workload
    fail_on_error: false
  register: diagnosis

- name: Show the fixes
  ansible.builtin.debug:
    msg: "{{ diagnosis.findings | selectattr('severity', 'equalto', 'error') | map(attribute='fix') | list }}"
"""

RETURN = r"""
findings:
  description: What the checks found, errors first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: >-
        Stable identifier, for example V(pod_not_mutated), V(sa_client_id_mismatch), V(fic_issuer_mismatch),
        V(fic_subject_mismatch), V(fic_audience_mismatch), V(kid_not_published), V(issuer_unreachable),
        V(exchange_failed), V(write_allowed), V(dangling_issuer).
      type: str
    severity:
      description: V(error) (blocks the exchange or breaks the expected access), V(warning) or V(info).
      type: str
    message:
      description: What is wrong, with the differing values.
      type: str
    evidence:
      description: The values the finding is based on.
      type: dict
    fix:
      description: What to change.
      type: str
  sample:
    - id: fic_subject_mismatch
      severity: error
      message: >-
        AADSTS700213: no federated credential with issuer 'https://x.blob.core.windows.net/oidc/' has the token's
        subject 'system:serviceaccount:demo:workload'; credential kind-demo has subject
        'system:serviceaccount:demo:other': they differ from character 28 on
      evidence: {}
      fix: set the credential's subject to exactly 'system:serviceaccount:demo:workload'
summary:
  description: One line; the error messages when there are errors.
  returned: always
  type: str
  sample: workload identity OK
predicted_code:
  description: The AADSTS code Entra answers for the token given the identity's federated credentials, or null when one admits it.
  returned: when a token was minted
  type: str
  sample: AADSTS700213
token:
  description: Header and claims of the minted token (never the token itself).
  returned: when a token was minted
  type: dict
  contains:
    kid:
      description: Key ID of the signing key.
      type: str
    iss:
      description: Issuer.
      type: str
    sub:
      description: Subject.
      type: str
    aud:
      description: Audiences.
      type: list
      elements: str
    exp:
      description: Expiry (seconds since the epoch).
      type: int
  sample: {kid: 3tqvNg6c5Q, iss: "https://stissuer.blob.core.windows.net/oidc/", sub: "system:serviceaccount:demo:workload",
           aud: ["api://AzureADTokenExchange"], exp: 1795000000}
injected:
  description: The variables the webhook injected into the first mutated pod (empty when none).
  returned: always
  type: dict
  sample: {AZURE_CLIENT_ID: 00000000-0000-0000-0000-000000000000, AZURE_AUTHORITY_HOST: "https://login.microsoftonline.com/"}
exchange:
  description: The token exchange with Entra.
  returned: always
  type: dict
  contains:
    attempted:
      description: Whether it ran.
      type: bool
    succeeded:
      description: Whether Entra issued a token.
      type: bool
    code:
      description: Entra's AADSTS code when it refused.
      type: str
    message:
      description: Entra's message when it refused (without trace and correlation IDs).
      type: str
    attempts:
      description: How many times it was tried (propagation retries).
      type: int
  sample: {attempted: true, succeeded: true, code: null, message: null, attempts: 1}
access:
  description: Results of the probes made with the exchanged token.
  returned: always
  type: dict
  contains:
    read:
      description: V(allowed) with the number of resource groups, or V(refused) with Azure's code; null when not probed.
      type: dict
    write:
      description: V(refused) with Azure's code, or V(allowed); null when not probed.
      type: dict
  sample: {read: {result: allowed, resource_groups: 3}, write: {result: refused, status: 403, code: AuthorizationFailed}}
"""

import json
import os
import re
import shutil
import socket
import tempfile
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url
from ansible.module_utils.common.text.converters import to_text
from ansible_collections.arcwi.workload_identity.plugins.module_utils import _wicheck as wic
from ansible_collections.arcwi.workload_identity.plugins.module_utils import _k8s
from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import (
    RESOURCE_IMPORT_ERROR,
    AzureModule,
    ResourceManagementClient,
    arm_client,
    authority_for,
    credential_spec,
    build_credential,
)
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import ArcwiError
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    MAX_FICS,
    FederatedCredentialService,
    IdentityService,
    ValidationError,
    validate_identity_name,
    validate_resource_group_name,
)

try:
    from azure.mgmt.msi import ManagedServiceIdentityClient
except ImportError:
    import traceback

    MSI_IMPORT_ERROR = traceback.format_exc()
else:
    MSI_IMPORT_ERROR = None

try:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
except ImportError:
    pass  # AzureModule reports the missing azure-core

WEBHOOK_NAME = "mutation.azure-workload-identity.io"
# Entra's answers while a federated credential it does not know yet propagates
PROPAGATION_CODES = frozenset({"AADSTS70021", "AADSTS700211", "AADSTS700212", "AADSTS700213"})
POLL_SECONDS = 2.0


def validate(p: dict) -> None:
    if len(p["namespace"]) > 63 or not DNS1123_LABEL.match(p["namespace"]):
        raise ValidationError(f"namespace must be a DNS-1123 label (lower-case letters, digits and '-', at most 63, "
                              f"starting and ending alphanumeric), got {p['namespace']!r}")
    if len(p["service_account"]) > 253 or not DNS1123_SUBDOMAIN.match(p["service_account"]):
        raise ValidationError("service_account must be a DNS-1123 subdomain (lower-case letters, digits, '-' and "
                              f"'.', at most 253), got {p['service_account']!r}")
    validate_resource_group_name(p["resource_group"])
    validate_identity_name(p["identity"], "identity")
    if p["audience"] is not None and not p["audience"].strip():
        raise ValidationError("audience must not be empty")
    if not 0 <= p["exchange_timeout"] <= 3600:
        raise ValidationError(f"exchange_timeout must be between 0 and 3600 seconds, got {p['exchange_timeout']}")


class Cluster:
    """The reads and the TokenRequest, through the kubernetes client."""

    def __init__(self, kubeconfig: str | None, context: str | None):
        self.api = _k8s.api_client(kubeconfig, context)
        self.core = _k8s.k8s_client.CoreV1Api(self.api)

    def raw(self, path: str):
        return _k8s.raw_get(self.api, path)

    def webhook_registered(self) -> bool:
        configs = _k8s.k8s_client.AdmissionregistrationV1Api(self.api).list_mutating_webhook_configuration()
        return any(w.name == WEBHOOK_NAME for c in configs.items for w in (c.webhooks or []))

    def service_account(self, namespace: str, name: str):
        try:
            return self.api.sanitize_for_serialization(self.core.read_namespaced_service_account(name, namespace))
        except _k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self, namespace: str, service_account: str) -> list:
        pods = self.api.sanitize_for_serialization(self.core.list_namespaced_pod(namespace))["items"]
        return [p for p in pods if (p.get("spec") or {}).get("serviceAccountName") == service_account
                and not (p.get("metadata") or {}).get("deletionTimestamp")]

    def token(self, namespace: str, name: str, audience: str) -> str:
        body = _k8s.k8s_client.AuthenticationV1TokenRequest(
            spec=_k8s.k8s_client.V1TokenRequestSpec(audiences=[audience], expiration_seconds=3600))
        return self.core.create_namespaced_service_account_token(name, namespace, body).status.token


def fetch_json(url: str) -> dict:
    """Anonymous HTTPS GET, as Entra fetches the discovery document and the JWKS."""
    if not url.startswith("https://"):
        raise ValueError(f"{url} is not https")
    with open_url(url, method="GET", timeout=15, validate_certs=True, headers={"Accept": "application/json"}) as resp:
        return json.loads(to_text(resp.read()))


def probe_issuer(fic: dict) -> dict:
    """What fetching a FIC's discovery document anonymously gives: kind ok, unresolvable, gone, unreachable."""
    issuer = fic["issuer"]
    out = {"fic": fic["name"], "issuer": issuer, "kind": "ok", "error": None}
    try:
        fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    except HTTPError as exc:
        out.update(kind="gone" if 400 <= exc.code < 500 else "unreachable", error=f"HTTP {exc.code}")
    except URLError as exc:
        reason = exc.reason
        out.update(kind="unresolvable" if isinstance(reason, socket.gaierror) else "unreachable", error=str(reason))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        out.update(kind="unreachable", error=f"{type(exc).__name__}: {exc}")
    return out


def exchange(token: str, tenant: str, client_id: str, authority: str, scope: str, timeout: int, predicted_ok: bool):
    """WorkloadIdentityCredential on a 0600 token file; retries while a matching FIC propagates.
    Returns (credential or None, result dict)."""
    workdir = tempfile.mkdtemp(prefix="arcwi-wi-check-")
    path = os.path.join(workdir, "token")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    result = {"attempted": True, "succeeded": False, "code": None, "message": None, "attempts": 0}
    deadline = time.monotonic() + timeout
    try:
        while True:
            result["attempts"] += 1
            credential = build_credential(credential_spec("workload_identity", authority=authority,
                                                          client_id=client_id, tenant=tenant,
                                                          env={"AZURE_FEDERATED_TOKEN_FILE": path}))
            try:
                credential.get_token(scope)
            except ClientAuthenticationError as exc:
                text = to_text(getattr(exc, "message", None) or exc)
                result["code"] = wic.aadsts_code(text)
                result["message"] = clean_message(text)
                if predicted_ok and result["code"] in PROPAGATION_CODES and time.monotonic() < deadline:
                    time.sleep(POLL_SECONDS)
                    continue
                return None, result
            result.update(succeeded=True, code=None, message=None)
            # the credential caches the access token; the token file is no longer needed
            return credential, result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def clean_message(text: str) -> str:
    """Entra's error description without the trace/correlation IDs and timestamp."""
    match = re.search(r"(AADSTS\d+:.*?)(?:\s+Trace ID:|$)", text, re.S)
    return (match.group(1) if match else text).strip()


def probe(module, credential, cloud, subscription_id: str, write: bool) -> tuple[dict, dict | None, list]:
    findings = []
    client = arm_client(ResourceManagementClient, cloud, credential, subscription_id)
    read = None
    try:
        read = {"result": "allowed", "resource_groups": len(list(client.resource_groups.list()))}
    except HttpResponseError as exc:
        read = {"result": "refused", "status": exc.status_code, "code": getattr(exc.error, "code", None)}
        findings.append(wic.finding("read_refused", "error",
                                    f"the workload's token cannot list resource groups: HTTP {exc.status_code} "
                                    f"{read['code']}", read,
                                    "assign the identity a reading role (the identity role assigns Reader)"))
    if not write:
        return read, None, findings
    name = module.params["write_probe_resource_group"]
    location = "westeurope"
    try:
        client.resource_groups.create_or_update(name, {"location": location})
    except HttpResponseError as exc:
        code = getattr(exc.error, "code", None)
        return read, {"result": "refused", "status": exc.status_code, "code": code}, findings
    written = {"result": "allowed", "resource_group": name}
    try:
        client.resource_groups.begin_delete(name).result()
        written["cleaned_up"] = True
    except HttpResponseError:
        written["cleaned_up"] = False
    findings.append(wic.finding("write_allowed", "error",
                                f"the workload's token could create resource group {name}: the identity can write",
                                written, "narrow the identity's role assignments (Reader, or a narrower scope)"))
    return read, written, findings


def main() -> None:
    module = AzureModule(
        argument_spec=dict(
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
            namespace=dict(type="str", required=True),
            service_account=dict(type="str", required=True),
            resource_group=dict(type="str", required=True),
            identity=dict(type="str", required=True),
            audience=dict(type="str"),
            exchange=dict(type="bool", default=True),
            exchange_timeout=dict(type="int", default=120),
            check_other_issuers=dict(type="bool", default=True),
            probe_read=dict(type="bool", default=False),
            probe_write=dict(type="bool", default=False),
            write_probe_resource_group=dict(type="str", default="arcwi-verify-write-probe"),
            fail_on_error=dict(type="bool", default=True),
        ),
        libraries={"azure-mgmt-msi": MSI_IMPORT_ERROR, "azure-mgmt-resource": RESOURCE_IMPORT_ERROR,
                   "kubernetes": _k8s.K8S_IMPORT_ERROR},
        supports_check_mode=True,
    )
    p = module.params
    findings, result = [], {"injected": {}, "exchange": {"attempted": False, "succeeded": False, "code": None,
                                                         "message": None, "attempts": 0},
                            "access": {"read": None, "write": None}}
    try:
        validate(p)
        ns, sa = p["namespace"], p["service_account"]
        cluster = Cluster(p["kubeconfig"], p["context"])
        if not cluster.webhook_registered():
            findings.append(wic.finding("webhook_missing", "error",
                                        f"no mutating webhook {WEBHOOK_NAME} is registered in the cluster",
                                        {}, "install the workload identity webhook (the workload_identity role does)"))
        msi = module.client(ManagedServiceIdentityClient)
        identity = IdentityService(msi).get(p["resource_group"], p["identity"])
        if identity is None:
            findings.append(wic.finding("identity_missing", "error",
                                        f"managed identity {p['identity']} does not exist in {p['resource_group']}",
                                        {}, "create it (the identity role does)"))
            fics = []
        else:
            fics = FederatedCredentialService(msi).list(p["resource_group"], p["identity"])
            findings += wic.fic_headroom_findings(fics, MAX_FICS)
        client_id = (identity or {}).get("client_id")
        tenant_id = (identity or {}).get("tenant_id")
        findings += wic.service_account_findings(cluster.service_account(ns, sa), ns, sa, client_id, tenant_id)
        pods = cluster.pods(ns, sa)
        pod_findings, injected = wic.pod_findings(pods, ns, sa)
        findings += pod_findings
        result["injected"] = injected or {}
        # the audience kubelet requests for the mutated pods (the webhook's projected volume)
        audiences = [a for pod in pods for a in wic.projected_audiences(pod)]
        audience = p["audience"] or (audiences[0] if audiences else wic.DEFAULT_AUDIENCE)
        if any(f["id"] == "service_account_missing" for f in findings):
            return finish(module, findings, result)
        token = cluster.token(ns, sa, audience)
        header, claims = wic.decode_jwt(token)
        iss, sub, auds = claims.get("iss", ""), claims.get("sub", ""), wic.audiences_of(claims)
        result["token"] = {"kid": header.get("kid"), "alg": header.get("alg"), "iss": iss, "sub": sub,
                           "aud": auds, "exp": claims.get("exp")}
        code, fic_findings = wic.fic_verdict(fics, iss, sub, auds)
        findings += fic_findings
        result["predicted_code"] = code
        published, published_jwks, published_error = None, None, None
        try:
            published = fetch_json(iss.rstrip("/") + "/.well-known/openid-configuration")
            published_jwks = fetch_json(published.get("jwks_uri") or iss.rstrip("/") + "/openid/v1/jwks")
        except Exception as exc:  # pylint: disable=broad-exception-caught
            published_error = f"{type(exc).__name__}: {exc}"
        findings += wic.issuer_findings(iss, cluster.raw("/.well-known/openid-configuration"), published,
                                        published_error, published_jwks, cluster.raw("/openid/v1/jwks"),
                                        header.get("kid"))
        if p["check_other_issuers"]:
            others = [f for f in fics if f["issuer"] != iss]
            findings += wic.dangling_issuer_findings([probe_issuer(f) for f in others])
        if p["exchange"] and identity is not None:
            session = module.session
            env = injected or {}
            authority = (authority_for(session.cloud, {"AZURE_AUTHORITY_HOST": env["AZURE_AUTHORITY_HOST"]})
                         if env.get("AZURE_AUTHORITY_HOST") else authority_for(session.cloud))
            credential, result["exchange"] = exchange(
                token, env.get("AZURE_TENANT_ID") or tenant_id, env.get("AZURE_CLIENT_ID") or client_id, authority,
                session.cloud.arm_scope, p["exchange_timeout"], predicted_ok=code is None)
            if credential is None:
                ex = result["exchange"]
                findings.append(wic.finding("exchange_failed", "error",
                                            f"Entra refused the token: {ex['message']}",
                                            {"code": ex["code"], "predicted": code, "attempts": ex["attempts"]},
                                            "see the other findings" if code else
                                            "the credentials match: check the issuer's documents and keys"))
            elif p["probe_read"] or p["probe_write"]:
                read, write, probe_findings = probe(module, credential, session.cloud, session.subscription_id,
                                                    p["probe_write"] and not module.check_mode)
                result["access"] = {"read": read if p["probe_read"] else None, "write": write}
                findings += probe_findings
    except Exception as exc:  # pylint: disable=broad-exception-caught
        if isinstance(exc, ArcwiError):
            module.fail_from(exc, findings=findings)
        if isinstance(exc, _k8s.ApiException):
            module.fail_json(msg=_k8s.api_error_message(exc), findings=findings)
        module.fail_from(exc, findings=findings)
    finish(module, findings, result)


def finish(module, findings: list, result: dict) -> None:
    order = {"error": 0, "warning": 1, "info": 2}
    findings = sorted(findings, key=lambda f: order[f["severity"]])
    text = wic.summary(findings)
    errors = [f for f in findings if f["severity"] == "error"]
    if errors and module.params["fail_on_error"]:
        module.fail_json(msg=text, findings=findings, summary=text, **result)
    module.exit_json(changed=False, findings=findings, summary=text, **result)


if __name__ == "__main__":
    main()
