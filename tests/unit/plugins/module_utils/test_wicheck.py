"""The conclusions of workload_identity_check (module_utils/_wicheck.py), one rule per test.

Sources: AZURE_FACTS.md "Entra token exchange" (issuer -> 700211, subject -> 700213, subject equal
only case-insensitively -> 7002138, audience -> 700212; byte-for-byte comparison; 20 FICs per
identity) and "The webhook" (label on the pod, four injected variables, projected token volume).
"""
from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.arcwi.workload_identity.plugins.module_utils import _wicheck as wic

ISS = "https://stissuer.blob.core.windows.net/oidc/"
SUB = "system:serviceaccount:demo:workload"
AUD = ["api://AzureADTokenExchange"]


def fic(name="demo-workload", issuer=ISS, subject=SUB, audiences=None):
    return {"name": name, "issuer": issuer, "subject": subject, "audiences": audiences or list(AUD)}


def b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


class TestVerdict:
    def test_a_matching_credential_admits_the_token(self):
        code, findings = wic.fic_verdict([fic()], ISS, SUB, AUD)
        assert code is None
        assert [f["id"] for f in findings] == ["fic_match"]

    def test_no_credential_at_all_is_70021(self):
        code, findings = wic.fic_verdict([], ISS, SUB, AUD)
        assert code == "AADSTS70021" and findings[0]["severity"] == "error"

    def test_a_missing_trailing_slash_is_700211_and_named(self):
        code, findings = wic.fic_verdict([fic(issuer=ISS.rstrip("/"))], ISS, SUB, AUD)
        assert code == "AADSTS700211"
        message = findings[0]["message"]
        assert f"'{ISS}'" in message and f"'{ISS.rstrip('/')}'" in message
        assert "trailing slash (the token's has it)" in message
        assert findings[0]["evidence"] == {"token_issuer": ISS, "credential_issuers": {"demo-workload": ISS[:-1]}}

    def test_an_extra_trailing_slash_on_the_credential_is_named_too(self):
        findings = wic.fic_verdict([fic(issuer=ISS + "x/")], ISS + "x", SUB, AUD)[1]
        assert "the credential's has it" in findings[0]["message"]

    def test_another_service_account_is_700213_with_both_subjects(self):
        other = "system:serviceaccount:demo:other"
        code, findings = wic.fic_verdict([fic(subject=other)], ISS, SUB, AUD)
        assert code == "AADSTS700213"
        assert f"'{SUB}'" in findings[0]["message"] and f"'{other}'" in findings[0]["message"]
        assert findings[0]["fix"].endswith(f"{SUB!r} (system:serviceaccount:NAMESPACE:SERVICEACCOUNT)")

    def test_a_subject_equal_but_for_case_is_7002138(self):
        code, findings = wic.fic_verdict([fic(subject=SUB.replace("demo", "Demo"))], ISS, SUB, AUD)
        assert code == "AADSTS7002138"
        assert "upper/lower case" in findings[0]["message"]

    def test_the_issuer_is_judged_before_the_subject(self):
        code = wic.fic_verdict([fic(issuer=ISS.rstrip("/"), subject="system:serviceaccount:x:y")], ISS, SUB, AUD)[0]
        assert code == "AADSTS700211"

    def test_only_credentials_with_the_token_issuer_count_for_the_subject(self):
        fics = [fic(name="a", issuer="https://other/", subject=SUB), fic(name="b", subject="system:serviceaccount:demo:x")]
        code, findings = wic.fic_verdict(fics, ISS, SUB, AUD)
        assert code == "AADSTS700213"
        assert findings[0]["evidence"]["credential_subjects"] == {"b": "system:serviceaccount:demo:x"}

    def test_a_wrong_audience_is_700212(self):
        code, findings = wic.fic_verdict([fic(audiences=["api://other"])], ISS, SUB, AUD)
        assert code == "AADSTS700212"
        assert "api://other" in findings[0]["message"]

    def test_one_matching_credential_among_others_admits(self):
        code = wic.fic_verdict([fic(name="x", subject="system:serviceaccount:a:b"), fic()], ISS, SUB, AUD)[0]
        assert code is None


@pytest.mark.parametrize("count, warned", [(17, False), (18, True), (20, True)])
def test_headroom_warns_near_the_limit_of_20(count, warned):
    findings = wic.fic_headroom_findings([fic(name=str(i)) for i in range(count)])
    assert bool(findings) == warned
    if warned:
        assert findings[0]["severity"] == "warning" and f"{count} of 20" in findings[0]["message"]


def pod(name="workload-1", labels=None, env=True, volume=True):
    spec = {"serviceAccountName": "workload",
            "containers": [{"name": "c", "env": [{"name": k, "value": "v"} for k in wic.INJECTED_ENV] if env else []}],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}
    if volume:
        spec["volumes"].append({"name": "azure-identity-token", "projected": {"sources": [
            {"serviceAccountToken": {"path": "azure-identity-token", "audience": AUD[0]}}]}})
    return {"metadata": {"name": name, "labels": {wic.WEBHOOK_LABEL: "true"} if labels is None else labels},
            "spec": spec}


class TestPods:
    def test_a_mutated_pod_gives_its_env(self):
        findings, injected = wic.pod_findings([pod()], "demo", "workload")
        assert findings == [] and set(injected) == set(wic.INJECTED_ENV)

    def test_an_unlabelled_pod_is_not_mutated_and_the_fix_names_the_pod_template(self):
        findings, injected = wic.pod_findings([pod(labels={"app": "x"}, env=False, volume=False)], "demo", "workload")
        assert injected is None
        assert findings[0]["id"] == "pod_not_mutated" and findings[0]["severity"] == "error"
        assert "does not carry the label azure.workload.identity/use" in findings[0]["message"]
        assert "spec.template.metadata.labels" in findings[0]["fix"]

    def test_a_labelled_pod_without_mutation_points_at_the_webhook(self):
        findings = wic.pod_findings([pod(env=False, volume=False)], "demo", "workload")[0]
        assert "labelled azure.workload.identity/use=true but was not mutated" in findings[0]["message"]
        assert findings[0]["evidence"]["missing_env"] == list(wic.INJECTED_ENV)

    def test_the_service_account_token_volume_without_audience_is_not_the_webhooks(self):
        findings = wic.pod_findings([pod(volume=False)], "demo", "workload")[0]
        assert [f["id"] for f in findings] == ["pod_not_mutated"]

    def test_no_pod_is_a_warning_only(self):
        findings, injected = wic.pod_findings([], "demo", "workload")
        assert findings[0]["id"] == "no_pod" and findings[0]["severity"] == "warning" and injected is None

    def test_projected_audiences(self):
        assert wic.projected_audiences(pod()) == AUD


class TestServiceAccount:
    def sa(self, **annotations):
        return {"metadata": {"name": "workload", "annotations": annotations}}

    def test_annotated_with_the_identity(self):
        assert wic.service_account_findings(self.sa(**{wic.CLIENT_ID_ANNOTATION: "c1", wic.TENANT_ID_ANNOTATION: "t"}),
                                            "demo", "workload", "c1", "t") == []

    def test_missing(self):
        assert wic.service_account_findings(None, "demo", "workload", "c", "t")[0]["id"] == "service_account_missing"

    def test_without_client_id(self):
        out = wic.service_account_findings(self.sa(), "demo", "workload", "c1", "t")
        assert out[0]["id"] == "sa_client_id_missing" and "c1" in out[0]["fix"]

    def test_another_client_id(self):
        out = wic.service_account_findings(self.sa(**{wic.CLIENT_ID_ANNOTATION: "c2"}), "demo", "workload", "c1", "t")
        assert out[0]["id"] == "sa_client_id_mismatch" and "c2" in out[0]["message"] and "c1" in out[0]["message"]

    def test_another_tenant(self):
        out = wic.service_account_findings(self.sa(**{wic.CLIENT_ID_ANNOTATION: "c1", wic.TENANT_ID_ANNOTATION: "t2"}),
                                           "demo", "workload", "c1", "t1")
        assert [f["id"] for f in out] == ["sa_tenant_id_mismatch"]


class TestIssuer:
    KEYS = {"keys": [{"kid": "k1"}]}

    def test_all_consistent(self):
        assert wic.issuer_findings(ISS, {"issuer": ISS}, {"issuer": ISS}, None, self.KEYS, self.KEYS, "k1") == []

    def test_unreachable_is_90061_and_stops_there(self):
        out = wic.issuer_findings(ISS, {"issuer": ISS}, None, "URLError: refused", None, self.KEYS, "k1")
        assert [f["id"] for f in out] == ["issuer_unreachable"] and "AADSTS90061" in out[0]["message"]

    def test_the_apiserver_serving_another_issuer(self):
        out = wic.issuer_findings(ISS, {"issuer": ISS[:-1]}, {"issuer": ISS}, None, self.KEYS, self.KEYS, "k1")
        assert out[0]["id"] == "apiserver_issuer_mismatch" and "trailing slash" in out[0]["message"]

    def test_the_published_document_naming_another_issuer(self):
        out = wic.issuer_findings(ISS, None, {"issuer": ISS.upper()}, None, self.KEYS, None, "k1")
        assert [f["id"] for f in out] == ["published_issuer_mismatch"] and "case" in out[0]["message"]

    def test_an_unpublished_kid_is_an_error_and_drift_too(self):
        out = wic.issuer_findings(ISS, None, {"issuer": ISS}, None, self.KEYS, {"keys": [{"kid": "k2"}]}, "k2")
        assert {f["id"]: f["severity"] for f in out} == {"kid_not_published": "error", "jwks_drift": "error"}

    def test_an_extra_published_key_during_rotation_is_a_warning(self):
        both = {"keys": [{"kid": "k1"}, {"kid": "k0"}]}
        out = wic.issuer_findings(ISS, None, {"issuer": ISS}, None, both, self.KEYS, "k1")
        assert [(f["id"], f["severity"]) for f in out] == [("jwks_drift", "warning")]
        assert "extra ['k0']" in out[0]["message"]


def test_decode_jwt_returns_header_and_claims_only():
    header, claims = wic.decode_jwt(f"{b64({'alg': 'RS256', 'kid': 'k'})}.{b64({'iss': ISS, 'aud': AUD[0]})}.c2ln")
    assert header == {"alg": "RS256", "kid": "k"} and claims["iss"] == ISS
    assert wic.audiences_of(claims) == AUD


def test_decode_jwt_refuses_what_is_not_a_jws():
    with pytest.raises(ValueError, match="three dot-separated parts"):
        wic.decode_jwt("abc.def")


@pytest.mark.parametrize("a, b, words", [
    ("x/", "x", "trailing slash (the token's has it)"),
    ("Abc", "abc", "upper/lower case"),
    ("abc", "abd", "from character 3 on"),
    ("same", "same", "equal"),
])
def test_difference_in_words(a, b, words):
    assert words in wic.difference(a, b)


def test_aadsts_code_and_summary():
    assert wic.aadsts_code("invalid_client: AADSTS700213: No matching ...") == "AADSTS700213"
    assert wic.aadsts_code("no code") is None
    ok = wic.summary([wic.finding("fic_match", "info", "fine")])
    assert ok == "workload identity OK"
    bad = wic.summary([wic.finding("a", "error", "first"), wic.finding("b", "warning", "w")])
    assert bad == "1 problem(s) block the token exchange: first"


# ---- dangling issuers ---------------------------------------------------------------------------------
def test_dangling_issuers_are_warnings_naming_the_credential_the_issuer_and_what_failed():
    probes = [
        {"fic": "live", "issuer": ISS, "kind": "ok", "error": None},
        {"fic": "old-cluster", "issuer": "https://stgone.blob.core.windows.net/oidc/", "kind": "unresolvable",
         "error": "[Errno -2] Name or service not known"},
        {"fic": "emptied", "issuer": "https://stempty.blob.core.windows.net/oidc/", "kind": "gone",
         "error": "HTTP 404"},
    ]
    found = wic.dangling_issuer_findings(probes)
    assert [(f["id"], f["severity"], f["evidence"]["fic"]) for f in found] == [
        ("dangling_issuer", "warning", "old-cluster"), ("dangling_issuer", "warning", "emptied")]
    assert "does not resolve" in found[0]["message"] and "stgone" in found[0]["message"]
    assert "discovery document is gone" in found[1]["message"]
    assert all("delete the federated credential" in f["fix"] for f in found)


def test_no_dangling_finding_when_every_other_issuer_serves_its_document():
    assert wic.dangling_issuer_findings([{"fic": "a", "issuer": ISS, "kind": "ok", "error": None}]) == []
    assert wic.dangling_issuer_findings([]) == []
