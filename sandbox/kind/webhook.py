"""The azure-workload-identity mutating webhook (v1.6.0, built by sandbox/go/build.py as
`azure-wi-webhook`) for one stand-in cluster, run out of cluster on 127.0.0.1 the way the chart
`workload-identity-webhook` runs it in a real cluster:

- serving certificate for 127.0.0.1 signed by the cluster CA, in a cert dir as tls.crt/tls.key
  (`--webhook-cert-dir`, `--disable-cert-rotation`: the chart's rotator needs a Service DNS name);
- `AZURE_TENANT_ID` (the chart's `azureTenantID`), `POD_NAMESPACE`, and the cloud: by default
  `AZURE_ENVIRONMENT=AzureStackCloud` with `AZURE_ENVIRONMENT_FILEPATH` naming a JSON environment whose
  `activeDirectoryEndpoint` is the sandbox Entra emulator. The webhook reads AZURE_ENVIRONMENT with
  go-autorest's `azure.EnvironmentFromName`, which for "AzureStackCloud" loads the environment from that
  file; the injected AZURE_AUTHORITY_HOST is its activeDirectoryEndpoint. A named cloud
  (`cloud="AzurePublicCloud"`, ...) can be given instead;
- `--kubeconfig` = the cluster's admin kubeconfig; webhook, health and metrics on free 127.0.0.1 ports;
- the MutatingWebhookConfiguration `azure-wi-webhook-mutating-webhook-configuration` as the chart's
  template has it (rules, objectSelector, failurePolicy Fail, matchPolicy Equivalent, reinvocationPolicy
  IfNeeded, namespaceSelector {} = the chart default), except `clientConfig.url` instead of a Service and
  the cluster CA as caBundle.

start() returns once the webhook answers an AdmissionReview itself AND the apiserver calls it (a
dry-run labelled pod comes back mutated), so labelled pods created afterwards are mutated. The pid goes
into cluster.json's `extra_pids`, which `kind delete cluster` stops.

    python -m sandbox.kind.webhook start --name NAME --tenant-id TENANT [--authority-host URL | --cloud NAME]
    python -m sandbox.kind.webhook stop --name NAME
    python -m sandbox.kind.webhook status --name NAME
"""
from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from .. import config as sandbox_config
from . import cluster, pki

BINARY = "azure-wi-webhook"
PID_KEY = "azure-wi-webhook"  # key in cluster.json's extra_pids
CONFIG_NAME = "azure-wi-webhook-mutating-webhook-configuration"  # the chart's (and the rotator's) name
WEBHOOK_NAME = "mutation.azure-workload-identity.io"
DEFAULT_NAMESPACE = "azure-workload-identity-system"
MWC_PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
START_TIMEOUT = 60.0
HOST = "127.0.0.1"


class WebhookError(cluster.KindError):
    pass


def webhook_binary() -> str:
    build = sandbox_config.SANDBOX_DIR / "go" / "build.py"
    out = subprocess.run([sys.executable, str(build), "paths", "--json", "webhook"], capture_output=True, text=True)
    if out.returncode != 0:
        raise WebhookError(f"cannot locate the webhook binary: {out.stderr.strip() or out.stdout.strip()}")
    path = json.loads(out.stdout).get(BINARY, "")
    if not path or not os.access(path, os.X_OK):
        raise WebhookError(f"{BINARY} not built; run `python3 sandbox/go/build.py build webhook`")
    return path


def default_authority_host() -> str:
    """What `python -m sandbox env` prints as AZURE_AUTHORITY_HOST: the Entra emulator."""
    return sandbox_config.url("entra")


def _wdir(name: str) -> Path:
    return cluster.cluster_dir(name) / "webhook"


def _serving_cert(wdir: Path, pki_dir: Path) -> Path:
    """tls.crt/tls.key for 127.0.0.1 (and localhost), signed by the cluster CA."""
    certs = wdir / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    os.chmod(certs, 0o700)
    ca = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), password=None)
    key = pki._key()
    cert = pki._cert(pki._name("azure-wi-webhook"), ca.subject, key.public_key(), ca_key,
                     sans=[x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")],
                     usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    pki._write(certs / "tls.key", pki._pem_key(key), 0o600)
    pki._write(certs / "tls.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return certs


def _environment(wdir: Path, tenant_id: str, namespace: str, authority_host: str | None, cloud: str | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AZURE_") and k not in ("KUBECONFIG", "POD_NAMESPACE")}
    env.update({"AZURE_TENANT_ID": tenant_id, "POD_NAMESPACE": namespace})
    if cloud:
        env["AZURE_ENVIRONMENT"] = cloud
    else:
        # go-autorest azure.EnvironmentFromName("AzureStackCloud") = EnvironmentFromFile($AZURE_ENVIRONMENT_FILEPATH)
        path = wdir / "environment.json"
        path.write_text(json.dumps({"name": "ArcwiSandboxCloud", "activeDirectoryEndpoint": authority_host}, indent=2))
        env["AZURE_ENVIRONMENT"] = "AzureStackCloud"
        env["AZURE_ENVIRONMENT_FILEPATH"] = str(path)
    return env


def _admission_review() -> tuple[str, bytes]:
    uid = str(uuid.uuid4())
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "arcwi-webhook-probe", "namespace": "default",
                        "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"serviceAccountName": "default",
                    "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]}}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                          "resource": {"group": "", "version": "v1", "resource": "pods"},
                          "namespace": "default", "operation": "CREATE", "object": pod,
                          "userInfo": {"username": "arcwi-sandbox-probe"}}}
    return uid, json.dumps(review).encode()


def _answers(port: int, cafile: Path) -> bool:
    """The webhook answers an AdmissionReview on /mutate-v1-pod (any verdict: it is upstream's handler)."""
    uid, body = _admission_review()
    req = urllib.request.Request(f"https://{HOST}:{port}/mutate-v1-pod", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(cafile)), timeout=3) as r:
            return (json.loads(r.read()).get("response") or {}).get("uid") == uid
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _apiserver_mutates(state: dict) -> tuple[bool, str]:
    """A dry-run labelled pod created through the apiserver comes back mutated."""
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "arcwi-webhook-probe-", "labels": {"azure.workload.identity/use": "true"}},
           "spec": {"containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]}}
    try:
        out = cluster.api(state, "POST", "/api/v1/namespaces/default/pods?dryRun=All", pod)
    except urllib.error.HTTPError as exc:  # e.g. the default ServiceAccount does not exist yet
        return False, f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, str(exc)
    env = {e["name"] for c in out["spec"]["containers"] for e in c.get("env") or []}
    if "AZURE_FEDERATED_TOKEN_FILE" in env:
        return True, ""
    return False, "a labelled dry-run pod came back unmutated (the apiserver does not call the webhook yet)"


def webhook_configuration(port: int, ca_pem: bytes) -> dict:
    """The chart's MutatingWebhookConfiguration (templates/azure-wi-webhook-mutating-webhook-configuration-
    mutatingwebhookconfiguration.yaml, v1.6.0, default values), registered by URL."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIG_NAME,
                     "labels": {"app": "workload-identity-webhook", "azure-workload-identity.io/system": "true",
                                "chart": "workload-identity-webhook", "app.kubernetes.io/managed-by": "arcwi-sandbox"}},
        "webhooks": [{
            "name": WEBHOOK_NAME,
            "admissionReviewVersions": ["v1", "v1beta1"],
            "clientConfig": {"url": f"https://{HOST}:{port}/mutate-v1-pod",
                             "caBundle": base64.b64encode(ca_pem).decode()},
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "namespaceSelector": {},
            "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
            "reinvocationPolicy": "IfNeeded",
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
            "sideEffects": "None",
        }],
    }


def _register(state: dict, body: dict) -> None:
    try:
        current = cluster.api(state, "GET", f"{MWC_PATH}/{CONFIG_NAME}")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        cluster.api(state, "POST", MWC_PATH, body)
        return
    body = dict(body, metadata=dict(body["metadata"], resourceVersion=current["metadata"]["resourceVersion"]))
    cluster.api(state, "PUT", f"{MWC_PATH}/{CONFIG_NAME}", body)


def _unregister(state: dict) -> None:
    try:
        cluster.api(state, "DELETE", f"{MWC_PATH}/{CONFIG_NAME}")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise


def _running(state: dict) -> int | None:
    pid = (state.get("extra_pids") or {}).get(PID_KEY)
    if pid and cluster._alive(pid) and not cluster._zombie(pid):
        return pid
    return None


def _kill(pid: int, timeout: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while cluster._alive(pid) and not cluster._zombie(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if cluster._alive(pid) and not cluster._zombie(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def status(name: str) -> dict | None:
    state = cluster.load_state(name)
    info = state.get("webhook")
    if not info or not _running(state):
        return None
    return info


def start(name: str, tenant_id: str, *, authority_host: str | None = None, cloud: str | None = None,
          namespace: str = DEFAULT_NAMESPACE, audience: str | None = None, timeout: float = START_TIMEOUT) -> dict:
    """Start (or keep, when already running with the same settings) the webhook of cluster NAME and
    register it. Returns its settings: pid, port, url, authority_host, changed."""
    if not tenant_id:
        raise WebhookError("a tenant id is required (the chart's azureTenantID)")
    if cloud and authority_host:
        raise WebhookError("give either a named cloud or an authority host, not both")
    if not cloud and not authority_host:
        authority_host = default_authority_host()
    state = cluster.load_state(name)
    cdir = cluster.cluster_dir(name)
    wanted = {"tenant_id": tenant_id, "cloud": cloud or "AzureStackCloud", "authority_host": authority_host,
              "namespace": namespace, "audience": audience or ""}
    current = state.get("webhook") or {}
    if _running(state) and all(current.get(k) == v for k, v in wanted.items()):
        return dict(current, changed=False)
    stop(name, unregister=False)
    state = cluster.load_state(name)

    binary = webhook_binary()
    wdir = _wdir(name)
    wdir.mkdir(parents=True, exist_ok=True)
    certs = _serving_cert(wdir, cdir / "pki")
    env = cluster.labelled_env(cdir, _environment(wdir, tenant_id, namespace, authority_host, cloud))
    ports = {"webhook": cluster.free_port(), "health": cluster.free_port(), "metrics": cluster.free_port()}
    command = [binary, "--kubeconfig", str(cdir / "admin.kubeconfig"),
               "--webhook-host", HOST, "--webhook-port", str(ports["webhook"]),
               "--webhook-cert-dir", str(certs), "--disable-cert-rotation",
               "--health-addr", f"{HOST}:{ports['health']}", "--metrics-addr", f"{HOST}:{ports['metrics']}"]
    if audience:
        command += ["--audience", audience]
    logfile = cdir / "logs" / f"{BINARY}.log"
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=str(wdir))
    info = dict(wanted, pid=proc.pid, ports=ports, url=f"https://{HOST}:{ports['webhook']}/mutate-v1-pod",
                cert_dir=str(certs), command=command, log=str(logfile))
    if not cloud:
        info["environment_file"] = env["AZURE_ENVIRONMENT_FILEPATH"]
    state.setdefault("extra_pids", {})[PID_KEY] = proc.pid
    state["webhook"] = info
    cluster._save(cdir, state)

    started = time.monotonic()
    deadline = started + timeout
    try:
        while not _answers(ports["webhook"], cdir / "pki" / "ca.crt"):
            _check_alive(proc, logfile)
            if time.monotonic() > deadline:
                raise WebhookError(f"the webhook did not answer within {timeout:.0f}s; see {logfile}")
            time.sleep(0.2)
        _register(state, webhook_configuration(ports["webhook"], (cdir / "pki" / "ca.crt").read_bytes()))
        while True:
            ok, why = _apiserver_mutates(state)
            if ok:
                break
            _check_alive(proc, logfile)
            if time.monotonic() > deadline:
                raise WebhookError(f"the apiserver does not call the webhook within {timeout:.0f}s ({why}); "
                                   f"see {logfile}")
            time.sleep(0.2)
    except BaseException:
        stop(name, unregister=True)
        raise
    info["ready_after_s"] = round(time.monotonic() - started, 2)
    state = cluster.load_state(name)
    state["webhook"] = info
    cluster._save(cdir, state)
    return dict(info, changed=True)


def _check_alive(proc: subprocess.Popen, logfile: Path) -> None:
    if proc.poll() is not None:
        tail = logfile.read_text(errors="replace").splitlines()[-15:]
        raise WebhookError(f"{BINARY} exited ({proc.returncode}) during start; last log lines:\n  " + "\n  ".join(tail))


def stop(name: str, unregister: bool = True) -> bool:
    """Stop the webhook of cluster NAME (and remove its MutatingWebhookConfiguration, so that labelled
    pods are not refused by failurePolicy Fail). Returns whether a process was stopped."""
    state = cluster.load_state(name)
    pid = _running(state)
    if unregister:
        try:
            _unregister(state)
        except (urllib.error.URLError, OSError):
            pass  # the apiserver is gone: nothing to unregister
    if pid:
        _kill(pid)
    state = cluster.load_state(name)
    (state.get("extra_pids") or {}).pop(PID_KEY, None)
    state.pop("webhook", None)
    cluster._save(cluster.cluster_dir(name), state)
    return pid is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kind.webhook", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start")
    p_start.add_argument("--name", default="kind")
    p_start.add_argument("--tenant-id", required=True)
    cloud = p_start.add_mutually_exclusive_group()
    cloud.add_argument("--authority-host", default=None, help="default: the sandbox Entra emulator")
    cloud.add_argument("--cloud", default=None, help="a named cloud (AZURE_ENVIRONMENT), e.g. AzurePublicCloud")
    p_start.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    p_start.add_argument("--audience", default=None)
    p_start.add_argument("--timeout", type=float, default=START_TIMEOUT)
    for cmd in ("stop", "status"):
        sub.add_parser(cmd).add_argument("--name", default="kind")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "start":
            info = start(args.name, args.tenant_id, authority_host=args.authority_host, cloud=args.cloud,
                         namespace=args.namespace, audience=args.audience, timeout=args.timeout)
            print(json.dumps(info, indent=2))
        elif args.cmd == "stop":
            print("stopped" if stop(args.name) else "not running")
        else:
            info = status(args.name)
            print(json.dumps(info, indent=2) if info else "not running")
            return 0 if info else 3
    except cluster.KindError as exc:
        print(f"webhook: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
