# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the workload_identity_check module concludes from what it read: pure functions, no I/O.

Every finding is a dict ``{id, severity, message, evidence, fix}``; severity ``error`` means the token
exchange cannot work until it is fixed, ``warning`` that it works now but is fragile, ``info`` a fact.

The AADSTS prediction follows the order in which Entra reports a federated assertion that no FIC
admits (AZURE_FACTS.md, "Entra token exchange"): no FIC with the assertion's issuer -> AADSTS700211;
issuer matches but no subject -> AADSTS700213 (AADSTS7002138 when a subject differs only in case);
issuer and subject match but no audience -> AADSTS700212. All three are compared byte for byte.
"""
from __future__ import annotations

import base64
import json
import re

WEBHOOK_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
INJECTED_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
AADSTS_RE = re.compile(r"AADSTS(\d+)")


def finding(fid: str, severity: str, message: str, evidence=None, fix: str | None = None) -> dict:
    return {"id": fid, "severity": severity, "message": message, "evidence": evidence or {}, "fix": fix or ""}


def decode_jwt(token: str) -> tuple[dict, dict]:
    """Header and claims of a compact JWS (the signature is neither checked nor returned)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("the token is not a compact JWS (three dot-separated parts)")

    def part(segment: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))

    return part(parts[0]), part(parts[1])


def audiences_of(claims: dict) -> list:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else list(aud or [])


def aadsts_code(text: str) -> str | None:
    match = AADSTS_RE.search(text or "")
    return "AADSTS" + match.group(1) if match else None


def difference(actual: str, expected: str) -> str:
    """How two strings Entra compares byte for byte differ, in words a person acts on."""
    if actual == expected:
        return "equal"
    if actual.rstrip("/") == expected.rstrip("/"):
        with_slash = "the token's" if actual.endswith("/") else "the credential's"
        return f"they differ only by a trailing slash ({with_slash} has it)"
    if actual.lower() == expected.lower():
        return "they differ only in upper/lower case"
    if actual.strip() == expected.strip():
        return "they differ only in leading/trailing whitespace"
    common = 0
    for a, b in zip(actual, expected):
        if a != b:
            break
        common += 1
    return f"they differ from character {common + 1} on"


# --------------------------------------------------------------------------------------------------
# the pod and the ServiceAccount

def _env_of(pod: dict) -> dict:
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        return {}
    return {e.get("name"): e.get("value") for e in containers[0].get("env") or []}


def projected_audiences(pod: dict) -> list:
    """Audiences of the projected ServiceAccount token volumes of a pod."""
    out = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for source in ((volume.get("projected") or {}).get("sources") or []):
            token = source.get("serviceAccountToken")
            if token and token.get("audience"):
                out.append(token["audience"])
    return out


def pod_findings(pods: list, namespace: str, service_account: str) -> tuple[list, dict | None]:
    """Findings about the pods running as the ServiceAccount, and the injected env of a mutated one."""
    if not pods:
        return [finding("no_pod", "warning",
                        f"no pod in namespace {namespace} runs as ServiceAccount {service_account}",
                        {"namespace": namespace, "service_account": service_account},
                        "deploy the workload (the token exchange itself was checked without a pod)")], None
    out, injected = [], None
    for pod in pods:
        name = pod["metadata"]["name"]
        labels = pod["metadata"].get("labels") or {}
        env = _env_of(pod)
        missing = [k for k in INJECTED_ENV if k not in env]
        volume_ok = bool(projected_audiences(pod))  # kube-api-access has no audience; the webhook's has one
        if not missing and volume_ok:
            injected = injected or env
            continue
        evidence = {"pod": name, "labels": labels, "missing_env": missing,
                    "projected_audiences": projected_audiences(pod)}
        if labels.get(WEBHOOK_LABEL) != "true":
            out.append(finding(
                "pod_not_mutated", "error",
                f"pod {name} was not mutated by the webhook: it does not carry the label {WEBHOOK_LABEL}: \"true\" "
                f"(labels {labels}); the webhook only mutates pods whose own labels have it", evidence,
                f"put the label {WEBHOOK_LABEL}: \"true\" on the pod template (spec.template.metadata.labels), "
                "not only on the Deployment or the ServiceAccount, and roll the pods"))
        else:
            out.append(finding(
                "pod_not_mutated", "error",
                f"pod {name} is labelled {WEBHOOK_LABEL}=true but was not mutated by the webhook "
                f"(missing {', '.join(missing) or 'the projected token volume'})", evidence,
                "the pod was probably created before the webhook answered: check the webhook, then delete the pod"))
    return out, injected


def service_account_findings(sa: dict | None, namespace: str, name: str, client_id: str | None,
                             tenant_id: str | None) -> list:
    if sa is None:
        return [finding("service_account_missing", "error", f"ServiceAccount {namespace}/{name} does not exist",
                        {"namespace": namespace, "service_account": name},
                        "create it (the workload_identity role does)")]
    annotations = (sa.get("metadata") or {}).get("annotations") or {}
    out = []
    annotated = annotations.get(CLIENT_ID_ANNOTATION)
    if not annotated:
        out.append(finding("sa_client_id_missing", "error",
                           f"ServiceAccount {namespace}/{name} has no {CLIENT_ID_ANNOTATION} annotation",
                           {"annotations": annotations},
                           f"annotate it with {CLIENT_ID_ANNOTATION}: {client_id}"))
    elif client_id and annotated != client_id:
        out.append(finding("sa_client_id_mismatch", "error",
                           f"ServiceAccount {namespace}/{name} is annotated with client id {annotated}, "
                           f"the identity's is {client_id}",
                           {"annotated": annotated, "identity": client_id},
                           f"set {CLIENT_ID_ANNOTATION} to {client_id} and roll the pods"))
    annotated_tenant = annotations.get(TENANT_ID_ANNOTATION)
    if annotated_tenant and tenant_id and annotated_tenant != tenant_id:
        out.append(finding("sa_tenant_id_mismatch", "error",
                           f"ServiceAccount {namespace}/{name} is annotated with tenant {annotated_tenant}, "
                           f"the identity's is {tenant_id}",
                           {"annotated": annotated_tenant, "identity": tenant_id},
                           f"set {TENANT_ID_ANNOTATION} to {tenant_id} (or remove it to use the webhook's tenant)"))
    return out


# --------------------------------------------------------------------------------------------------
# the token against the federated credentials

def fic_verdict(fics: list, iss: str, sub: str, auds: list) -> tuple[str | None, list]:
    """The AADSTS code Entra would answer for this assertion (None: a FIC admits it) and the findings."""
    def admits(f):
        return f["issuer"] == iss and f["subject"] == sub and any(a in auds for a in f["audiences"])

    admitting = [f for f in fics if admits(f)]
    if admitting:
        return None, [finding("fic_match", "info", f"federated credential {admitting[0]['name']} admits the token",
                              {"name": admitting[0]["name"], "issuer": iss, "subject": sub})]
    if not fics:
        return "AADSTS70021", [finding(
            "fic_none", "error", "AADSTS70021: the identity has no federated credential",
            {"issuer": iss, "subject": sub, "audiences": auds},
            f"create one with issuer {iss!r}, subject {sub!r}, audience {auds[0] if auds else DEFAULT_AUDIENCE!r}")]
    by_issuer = [f for f in fics if f["issuer"] == iss]
    if not by_issuer:
        details = "; ".join(f"credential {f['name']} has issuer {f['issuer']!r}: {difference(iss, f['issuer'])}"
                            for f in fics)
        return "AADSTS700211", [finding(
            "fic_issuer_mismatch", "error",
            f"AADSTS700211: no federated credential has the token's issuer {iss!r}; {details}",
            {"token_issuer": iss, "credential_issuers": {f["name"]: f["issuer"] for f in fics}},
            f"set the credential's issuer to exactly {iss!r} (the apiserver's --service-account-issuer)")]
    by_subject = [f for f in by_issuer if f["subject"] == sub]
    if not by_subject:
        details = "; ".join(f"credential {f['name']} has subject {f['subject']!r}: {difference(sub, f['subject'])}"
                            for f in by_issuer)
        code = ("AADSTS7002138" if any(f["subject"].lower() == sub.lower() for f in by_issuer)
                else "AADSTS700213")
        return code, [finding(
            "fic_subject_mismatch", "error",
            f"{code}: no federated credential with issuer {iss!r} has the token's subject {sub!r}; {details}",
            {"token_subject": sub, "credential_subjects": {f["name"]: f["subject"] for f in by_issuer}},
            f"set the credential's subject to exactly {sub!r} (system:serviceaccount:NAMESPACE:SERVICEACCOUNT)")]
    details = "; ".join(f"credential {f['name']} has audiences {f['audiences']}" for f in by_subject)
    return "AADSTS700212", [finding(
        "fic_audience_mismatch", "error",
        f"AADSTS700212: the token's audiences {auds} are in no federated credential with its issuer and subject; "
        f"{details}",
        {"token_audiences": auds, "credential_audiences": {f["name"]: f["audiences"] for f in by_subject}},
        f"use audience {DEFAULT_AUDIENCE} in both the credential and the pod's projected token")]


def fic_headroom_findings(fics: list, limit: int = 20) -> list:
    left = limit - len(fics)
    if left <= 2:
        return [finding("fic_headroom", "warning", f"the identity has {len(fics)} of {limit} federated credentials",
                        {"count": len(fics), "limit": limit},
                        "shard ServiceAccounts across identities or remove unused credentials")]
    return []


def dangling_issuer_findings(probes: list) -> list:
    """FICs whose issuer no longer serves its discovery document. probes: [{fic, issuer, kind, error}],
    kind one of unresolvable (the host name does not resolve), gone (the server answers 4xx) or
    unreachable (refused, timed out, 5xx). A deleted storage account's name can be registered again by
    anyone, who could then publish documents this identity trusts: the credential should go."""
    out = []
    what = {"unresolvable": "its host name does not resolve",
            "gone": "its discovery document is gone",
            "unreachable": "its discovery document cannot be fetched"}
    for probe in probes:
        if probe.get("kind") not in what:
            continue
        out.append(finding(
            "dangling_issuer", "warning",
            f"federated credential {probe['fic']} trusts issuer {probe['issuer']!r}, but {what[probe['kind']]} "
            f"({probe.get('error')}): whoever registers that name again (a deleted storage account's name is "
            "free for anyone) can publish keys this identity would trust",
            {"fic": probe["fic"], "issuer": probe["issuer"], "kind": probe["kind"], "error": probe.get("error")},
            "delete the federated credential if its cluster is gone, or publish the issuer again"))
    return out


# --------------------------------------------------------------------------------------------------
# the issuer

def issuer_findings(token_iss: str, apiserver_discovery: dict | None, published_discovery: dict | None,
                    published_error: str | None, published_jwks: dict | None, apiserver_jwks: dict | None,
                    kid: str | None) -> list:
    out = []
    api_iss = (apiserver_discovery or {}).get("issuer")
    if api_iss is not None and api_iss != token_iss:
        out.append(finding("apiserver_issuer_mismatch", "error",
                           f"the apiserver serves issuer {api_iss!r} but signs tokens with {token_iss!r}: "
                           f"{difference(token_iss, api_iss)}", {"apiserver": api_iss, "token": token_iss},
                           "set --service-account-issuer once, and restart the apiserver"))
    if published_error is not None:
        out.append(finding("issuer_unreachable", "error",
                           f"AADSTS90061: the discovery document of {token_iss!r} cannot be fetched anonymously "
                           f"over HTTPS: {published_error}", {"issuer": token_iss, "error": published_error},
                           "publish .well-known/openid-configuration and the JWKS with anonymous read access "
                           "(the oidc_issuer role does)"))
        return out
    pub_iss = (published_discovery or {}).get("issuer")
    if pub_iss != token_iss:
        out.append(finding("published_issuer_mismatch", "error",
                           f"the published discovery document names issuer {pub_iss!r}, the token {token_iss!r}: "
                           f"{difference(token_iss, str(pub_iss))}", {"published": pub_iss, "token": token_iss},
                           "publish the discovery document again with the token's issuer"))
    published_kids = [k.get("kid") for k in (published_jwks or {}).get("keys", [])]
    if kid not in published_kids:
        out.append(finding("kid_not_published", "error",
                           f"the token's signing key {kid!r} is not in the published JWKS {published_kids}",
                           {"kid": kid, "published": published_kids},
                           "publish the apiserver's current public key (jwks_generate, oidc_documents)"))
    if apiserver_jwks is not None:
        api_kids = [k.get("kid") for k in apiserver_jwks.get("keys", [])]
        missing = [k for k in api_kids if k not in published_kids]
        extra = [k for k in published_kids if k not in api_kids]
        if missing or extra:
            out.append(finding("jwks_drift", "warning" if kid in published_kids else "error",
                               f"published JWKS and the apiserver's /openid/v1/jwks differ: missing {missing}, "
                               f"extra {extra}", {"apiserver": api_kids, "published": published_kids},
                               "publish the apiserver's keys (extra keys are expected only during a rotation)"))
    return out


def summary(findings: list) -> str:
    errors = [f for f in findings if f["severity"] == "error"]
    warnings = [f for f in findings if f["severity"] == "warning"]
    if not errors:
        return "workload identity OK" + (f" ({len(warnings)} warning(s): "
                                         + "; ".join(w["message"] for w in warnings) + ")" if warnings else "")
    return f"{len(errors)} problem(s) block the token exchange: " + " | ".join(e["message"] for e in errors)
