"""playbooks/rotate_keys.yml: the service-account signing-key rotation, under load, and resumed.

One site.yml run (its own cluster, identity, issuer and key directory; arc_enabled false) makes a
working chain. Then rotate_keys.yml runs while a background thread, every ~0.5 s, mints a token for the
workload's ServiceAccount (`kubectl create token --audience api://AzureADTokenExchange`, what kubelet
asks for) and exchanges it with the sandbox's Entra (azure-identity ClientAssertionCredential, a fresh
credential each time so nothing is cached), and also re-exchanges one token minted before the rotation.
Counted:
- a mint that fails (the apiserver restarts after each manifest change) is retried and counted as a
  mint retry, not as an exchange failure;
- every exchange of a freshly minted token must succeed (zero failures);
- the token minted before the rotation keeps exchanging while the old key is still published (every
  phase before old_dropped), and is refused once the JWKS serves only the new key (after the sandbox
  Entra's metadata cache of OIDC_CACHE_SECONDS);
- tokens minted after the switch carry the new kid.
Afterwards verify.yml passes, site.yml is changed=0 and rotate_keys.yml is changed=0 (check mode too).
The resume test stops the next rotation after trust_both and after signing_new (rotate_stop_after, a
simulated crash); the re-runs continue, and the resumed wait is only what is left of it.

Sources: AZURE_FACTS.md "kube-apiserver and kind" (--service-account-key-file repeats, the signing key
signs), sandbox/server/entra.py (metadata cache, kid lookup), sandbox/tests/test_kind_manifests.py.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import REPO, binary_paths, needs_binaries
from .test_verify_e2e import _run

pytestmark = needs_binaries("etcd", "kube-apiserver", "kube-controller-manager", "kwok", "kubectl",
                            "azure-wi-webhook", "helm")

AUDIENCE = "api://AzureADTokenExchange"
ORDER = ["start", "new_key", "published_both", "trust_both", "signing_new", "waited", "old_dropped", "done"]


def _kid(token: str) -> str:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def _kid_of_pub(path: Path) -> str:
    import hashlib
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_public_key(path.read_bytes())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def site(sandbox, tmp_path_factory):
    suffix = os.urandom(3).hex()
    base = tmp_path_factory.mktemp("rotate")
    variables = {
        "kind_cluster_name": f"rotate-{suffix}", "identity_resource_group": f"rg-rotate-{suffix}",
        "identity_name": f"id-rotate-{suffix}", "oidc_issuer_name": f"rotate{suffix}",
        "workload_identity_namespace": "rot", "workload_identity_service_account": "app",
        "kind_cluster_kubeconfig": str(base / "kubeconfig"), "oidc_issuer_key_dir": str(base / "keys"),
        "arc_enabled": False,
    }
    first = _run(sandbox, "site.yml", variables)
    assert first["rc"] == 0, first["text"]
    try:
        yield variables
    finally:
        subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "delete", "cluster", "--name",
                        variables["kind_cluster_name"], "--kubeconfig", variables["kind_cluster_kubeconfig"]],
                       capture_output=True, timeout=120, check=False)


class Workload:
    """Mints tokens for the workload's ServiceAccount and exchanges them with the sandbox's Entra."""

    def __init__(self, sandbox, site):
        self.sandbox, self.site = sandbox, site
        self.kubectl = [binary_paths()["kubectl"], "--kubeconfig", site["kind_cluster_kubeconfig"],
                        "--context", f"kind-{site['kind_cluster_name']}"]
        sa = json.loads(self._kubectl("get", "serviceaccount", "app", "-n", "rot", "-o", "json").stdout)
        self.client_id = sa["metadata"]["annotations"]["azure.workload.identity/client-id"]
        self.record = Path(site["oidc_issuer_key_dir"]) / "rotation.json"

    def _kubectl(self, *args):
        return subprocess.run([*self.kubectl, *args], capture_output=True, text=True, timeout=30, check=True)

    def phase(self) -> str:
        try:
            return json.loads(self.record.read_text())["phase"]
        except (OSError, ValueError):
            return "start"

    def mint(self) -> tuple[str, int]:
        """A token; retried while the apiserver restarts. -> (token, retries)."""
        retries, deadline = 0, time.monotonic() + 120
        while True:
            try:
                return self._kubectl("create", "token", "app", "-n", "rot", "--audience", AUDIENCE,
                                     "--duration", "1h").stdout.strip(), retries
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                retries += 1
                time.sleep(0.5)

    def exchange(self, token: str) -> str | None:
        """None when Entra issued an ARM token for it, else the error."""
        from azure.core.exceptions import ClientAuthenticationError
        from azure.identity import ClientAssertionCredential
        credential = ClientAssertionCredential(self.sandbox.tenant_id, self.client_id, lambda: token,
                                               authority=self.sandbox.authority, disable_instance_discovery=True)
        try:
            credential.get_token(self.sandbox.arm_scope)
            return None
        except ClientAuthenticationError as exc:
            return str(exc)[:300]


class Load(threading.Thread):
    def __init__(self, workload: Workload, before: str):
        super().__init__(daemon=True)
        self.w, self.before = workload, before
        self.stop = threading.Event()
        self.fresh: list[dict] = []    # freshly minted tokens
        self.old: list[dict] = []      # the token minted before the rotation
        self.mint_retries = 0
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stop.is_set():
                phase = self.w.phase()
                token, retries = self.w.mint()
                self.mint_retries += retries
                self.fresh.append({"phase": phase, "kid": _kid(token), "error": self.w.exchange(token),
                                   "at": time.monotonic()})
                phase = self.w.phase()
                self.old.append({"phase": phase, "error": self.w.exchange(self.before), "at": time.monotonic()})
                self.stop.wait(0.5)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _first_exchange(workload: Workload, timeout: float = 90):
    """The federated credential may still propagate (AADSTS70021): wait for the first success."""
    deadline = time.monotonic() + timeout
    while True:
        error = workload.exchange(workload.mint()[0])
        if error is None:
            return
        assert time.monotonic() < deadline, error
        time.sleep(1)


def _run_no_secrets(sandbox, playbook: str, variables: dict, keys: Path, *extra: str) -> dict:
    """_run, and the whole JSON output holds no private key (old or new), no token."""
    def bodies():
        return {"".join((keys / n).read_text().splitlines()[1:-1])[:64]
                for n in ("sa.key", "sa-next.key") if (keys / n).exists()}

    seen, real = {}, subprocess.run
    before = bodies()

    def capture(*args, **kwargs):
        out = real(*args, **kwargs)
        if str(args[0][0]).endswith("ansible-playbook"):
            seen["stdout"] = out.stdout
        return out

    subprocess.run = capture
    try:
        result = _run(sandbox, playbook, variables, *extra)
    finally:
        subprocess.run = real
    text = seen["stdout"].replace("\\n", "")
    assert "PRIVATE KEY" not in text and "eyJhbGciOi" not in text
    for body in before | bodies():
        assert body and body not in text
    return result


def _left_to_wait(result: dict) -> int | None:
    for r in result["results"]:
        facts = r.get("ansible_facts") or {}
        if "_rotate_left" in facts:
            return int(facts["_rotate_left"])
    return None


def test_rotation_under_load_loses_no_exchange(sandbox, site):
    keys = Path(site["oidc_issuer_key_dir"])
    old_kid = _kid_of_pub(keys / "sa.pub")
    workload = Workload(sandbox, site)
    _first_exchange(workload)
    before, _ = workload.mint()
    assert _kid(before) == old_kid
    load = Load(workload, before)
    load.start()
    started = time.monotonic()
    result = _run_no_secrets(sandbox, "rotate_keys.yml", dict(site, rotate_max_token_lifetime=5), keys)
    wall = time.monotonic() - started
    done_at = time.monotonic()
    # the sandbox Entra caches an issuer's JWKS for OIDC_CACHE_SECONDS (5 s): keep going past it
    time.sleep(8)
    load.stop.set()
    load.join(timeout=180)
    assert result["rc"] == 0, result["text"]
    assert load.error is None, repr(load.error)

    state = json.loads((keys / "rotation.json").read_text())
    new_kid = state["new_kid"]
    assert state["phase"] == "done" and state["old_kid"] == old_kid and new_kid != old_kid
    assert _kid_of_pub(keys / "sa.pub") == new_kid
    assert not (keys / "sa-next.key").exists() and not (keys / "sa-next.pub").exists()
    assert oct((keys / "sa.key").stat().st_mode & 0o777) == "0o600"

    failed = [e for e in load.fresh if e["error"]]
    before_switch = [e for e in load.old if ORDER.index(e["phase"]) < ORDER.index("old_dropped")]
    after_drop = [e for e in load.old if e["at"] > done_at + 6]
    print(f"\nrotation wall time {wall:.1f}s; fresh-token exchanges attempted {len(load.fresh)}, failed {len(failed)};"
          f" mint retries (apiserver restarts) {load.mint_retries}; pre-rotation token exchanged"
          f" {len(before_switch)}x before old_dropped ({sum(1 for e in before_switch if e['error'])} failed),"
          f" refused {sum(1 for e in after_drop if e['error'])}/{len(after_drop)} after the drop;"
          f" kids of fresh tokens by phase: "
          f"{sorted({(e['phase'], e['kid'] == new_kid) for e in load.fresh}, key=lambda p: ORDER.index(p[0]))}")
    assert not failed, failed[:3]
    assert len(load.fresh) >= 10
    assert before_switch and not [e for e in before_switch if e["error"]], before_switch
    # tokens minted once the switch was recorded carry the new kid
    assert all(e["kid"] == new_kid for e in load.fresh
               if ORDER.index(e["phase"]) >= ORDER.index("signing_new")), load.fresh
    assert any(e["kid"] == old_kid for e in load.fresh) and any(e["kid"] == new_kid for e in load.fresh)
    # the old key is really gone: the pre-rotation token (still within its lifetime) is refused
    assert after_drop and all(e["error"] for e in after_drop), after_drop
    assert "AADSTS7000272" in after_drop[-1]["error"] or "AADSTS700027" in after_drop[-1]["error"], after_drop[-1]

    verify = _run(sandbox, "verify.yml", site)
    assert verify["rc"] == 0, verify["text"]
    check = next(r for r in verify["results"] if "findings" in r)
    assert check["token"]["kid"] == new_kid and check["exchange"]["succeeded"]
    again = _run(sandbox, "site.yml", site)
    assert again["rc"] == 0 and again["changed"] == 0, again["text"]
    rerun = _run(sandbox, "rotate_keys.yml", dict(site, rotate_max_token_lifetime=5))
    assert rerun["rc"] == 0 and rerun["changed"] == 0, rerun["text"]
    checked = _run(sandbox, "rotate_keys.yml", site, "--check")
    assert checked["rc"] == 0 and checked["changed"] == 0, checked["text"]


def test_a_stopped_rotation_resumes_where_it_stopped(sandbox, site):
    keys = Path(site["oidc_issuer_key_dir"])
    record = keys / "rotation.json"
    old_kid = json.loads(record.read_text())["new_kid"]
    workload = Workload(sandbox, site)

    first = _run(sandbox, "rotate_keys.yml", dict(site, rotate_again=True, rotate_stop_after="trust_both"))
    assert first["rc"] == 0, first["text"]
    state = json.loads(record.read_text())
    assert state["phase"] == "trust_both" and state["old_kid"] == old_kid
    new_kid = state["new_kid"]
    assert (keys / "sa-next.key").exists()
    jwks = json.loads(subprocess.run([*workload.kubectl, "get", "--raw", "/openid/v1/jwks"], capture_output=True,
                                     text=True, check=True).stdout)
    assert sorted(k["kid"] for k in jwks["keys"]) == sorted([old_kid, new_kid])
    assert _kid(workload.mint()[0]) == old_kid

    # check mode in the middle predicts the rest and changes nothing
    snapshot = record.read_text()
    checked = _run(sandbox, "rotate_keys.yml", site, "--check")
    assert checked["rc"] == 0 and checked["changed"] > 0, checked["text"]
    assert record.read_text() == snapshot

    # resumed, stopped again after the switch; the wait resumed later is only what is left
    second = _run(sandbox, "rotate_keys.yml", dict(site, rotate_stop_after="signing_new"))
    assert second["rc"] == 0, second["text"]
    state = json.loads(record.read_text())
    assert state["phase"] == "signing_new" and state["new_kid"] == new_kid
    assert _kid(workload.mint()[0]) == new_kid
    time.sleep(8)
    third = _run(sandbox, "rotate_keys.yml", dict(site, rotate_max_token_lifetime=20))
    assert third["rc"] == 0, third["text"]
    left = _left_to_wait(third)
    print(f"\nresumed wait: {left}s of 20s left after an 8 s pause")
    assert left is not None and left <= 13
    state = json.loads(record.read_text())
    assert state["phase"] == "done" and _kid_of_pub(keys / "sa.pub") == new_kid
    assert _kid(workload.mint()[0]) == new_kid
    _first_exchange(workload, timeout=30)
    verify = _run(sandbox, "verify.yml", site)
    assert verify["rc"] == 0, verify["text"]
    again = _run(sandbox, "site.yml", site)
    assert again["rc"] == 0 and again["changed"] == 0, again["text"]
    rerun = _run(sandbox, "rotate_keys.yml", site)
    assert rerun["rc"] == 0 and rerun["changed"] == 0, rerun["text"]


def test_an_existing_cluster_gets_the_steps_and_only_checks(sandbox, site, tmp_path):
    """rotate_cluster_provider existing: the play prints the flags and steps of trust_both, signing_new and
    old_dropped, checks the cluster and stops until the operator has made the change; done here by hand as
    an operator would (docker cp of the keys and manifests, tests/test_kind_manifests.py's helpers)."""
    from .test_kind_manifests import docker, edit_manifest, set_flag

    keys = Path(site["oidc_issuer_key_dir"])
    record = keys / "rotation.json"
    node = f"{site['kind_cluster_name']}-control-plane"
    pki = "/etc/kubernetes/pki"
    old_kid = json.loads(record.read_text())["new_kid"]
    existing = dict(site, rotate_cluster_provider="existing", rotate_existing_retries=1, rotate_max_token_lifetime=2)

    def expect_steps(variables, phase, text):
        result = _run(sandbox, "rotate_keys.yml", variables)
        assert result["rc"] != 0, result["text"]
        assert json.loads(record.read_text())["phase"] == phase
        assert text in result["failed"]["msg"], result["failed"]["msg"]
        return result

    expect_steps(dict(existing, rotate_again=True), "published_both",
                 f"--service-account-key-file={pki}/sa-next.pub")
    docker("cp", keys / "sa-next.pub", f"{node}:{pki}/sa-next.pub")
    edit_manifest(node, "kube-apiserver", tmp_path, lambda c: c + [f"--service-account-key-file={pki}/sa-next.pub"])
    expect_steps(existing, "trust_both", f"--service-account-signing-key-file={pki}/sa-next.key")
    docker("cp", keys / "sa-next.key", f"{node}:{pki}/sa-next.key")
    edit_manifest(node, "kube-apiserver", tmp_path, set_flag("service-account-signing-key-file", f"{pki}/sa-next.key"))
    edit_manifest(node, "kube-controller-manager", tmp_path,
                  set_flag("service-account-private-key-file", f"{pki}/sa-next.key"))
    result = expect_steps(existing, "waited", f"--service-account-signing-key-file={pki}/sa.key")
    assert "kube-apiserver back to" in result["failed"]["msg"]
    new_kid = json.loads(record.read_text())["new_kid"]
    assert new_kid != old_kid
    # the host's sa.key/sa.pub hold the new key already (the kind node mounts them)
    docker("cp", keys / "sa.key", f"{node}:{pki}/sa.key")
    docker("cp", keys / "sa.pub", f"{node}:{pki}/sa.pub")
    edit_manifest(node, "kube-apiserver", tmp_path,
                  lambda c: [a for a in c if not a.startswith("--service-account-key-file=")
                             and not a.startswith("--service-account-signing-key-file=")]
                  + [f"--service-account-key-file={pki}/sa.pub", f"--service-account-signing-key-file={pki}/sa.key"])
    edit_manifest(node, "kube-controller-manager", tmp_path,
                  set_flag("service-account-private-key-file", f"{pki}/sa.key"))
    # no sleep: the play polls the served keys and a new token's kid (rotate_existing_retries x 5 s)
    last = _run(sandbox, "rotate_keys.yml", dict(existing, rotate_existing_retries=12))
    assert last["rc"] == 0, last["text"]
    state = json.loads(record.read_text())
    assert state["phase"] == "done" and _kid_of_pub(keys / "sa.pub") == new_kid
    # the kind-mode playbook agrees: nothing left to do, and site.yml finds the cluster as it wants it
    assert _run(sandbox, "rotate_keys.yml", site)["changed"] == 0
    again = _run(sandbox, "site.yml", site)
    assert again["rc"] == 0 and again["changed"] == 0, again["text"]
    verify = _run(sandbox, "verify.yml", site)
    assert verify["rc"] == 0, verify["text"]
