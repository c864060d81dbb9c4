"""The Azure Arc agents of a stand-in cluster, as far as Azure can see them: part of the per-cluster agent
loop (sandbox/kind/agent.py).

kwok runs no containers, so the Deployments of the agent chart (sandbox/charts/azure-arc-k8sagents) only
become "available". This plays what the real agents then do for the connected cluster resource:

- While the release is installed - ConfigMap azure-arc/azure-clusterconfig exists and every Deployment in
  azure-arc is available - it sends a heartbeat every `arc_heartbeat_seconds` (a sandbox setting) for
  the resource named in the ConfigMap (AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_RESOURCE_NAME):
  kubernetesVersion (the apiserver's /version gitVersion without the leading "v", as Azure shows it, e.g.
  "1.32.3+k3s1"), totalNodeCount and totalCoreCount (the nodes), agentVersion (AZURE_ARC_AGENT_VERSION,
  the chart version) and the cluster's own /openid/v1/jwks, which the Arc-hosted issuer then publishes.
- The heartbeat goes to the sandbox's admin API (POST /arc/agent-report), not to ARM: the agents hold no
  ARM credentials. It is signed with the onboarding private key the chart keeps in the Secret
  azure-arc/azure-arc-connect-privatekey; the service checks it against the resource's
  agentPublicKeyCertificate, so a release installed with another key never connects.
- When the release goes (helm uninstall deletes the namespace), heartbeats stop and the service turns the
  resource Offline, later Expired, by the clock (sandbox/server/arm/arc.py).
Sources: Arc connectivity status and FAQ (learn.microsoft.com/azure/azure-arc/kubernetes/), az
connectedk8s (the ConfigMap keys it reads), the config agent's constants (ConfigMap and Secret names).
"""
from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request

from .. import config as sandbox_config
from ..pki import PKI
from . import cluster

NAMESPACE = "azure-arc"
CONFIGMAP = "azure-clusterconfig"
SECRET = "azure-arc-connect-privatekey"
SECRET_KEY = "privateKey"
RETRY = 1.0  # seconds between two looks while the release is absent or not yet available


_SUFFIXES = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def _cpu(value) -> int:
    """Whole cores of a Kubernetes quantity ("4", "500m", "1k" - kwok's fake nodes say 1k)."""
    text = str(value or "0")
    suffix = next((s for s in sorted(_SUFFIXES, key=len, reverse=True) if text.endswith(s)), "")
    try:
        return int(float(text[:len(text) - len(suffix)]) * _SUFFIXES.get(suffix, 1))
    except ValueError:
        return 0


class ArcAgents:
    def __init__(self, state: dict, say):
        self.state = state
        self.say = say
        self.next_at = 0.0
        self.heartbeat = RETRY
        self.last_problem: str | None = None
        self.info: dict = {"resourceId": None, "connected": False, "lastReport": None, "problem": None}

    def _problem(self, message: str | None) -> None:
        if message != self.last_problem and message:
            self.say(f"arc: {message}")
        self.last_problem = message
        self.info["problem"] = message
        if message:
            self.info["connected"] = False

    def _get(self, path: str):
        try:
            return cluster.api(self.state, "GET", path)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def _jwks(self) -> dict:
        """The apiserver's own /openid/v1/jwks (it answers 406 to Accept: application/json)."""
        req = urllib.request.Request(self.state["server"] + "/openid/v1/jwks",
                                     headers={"Accept": "application/jwk-set+json"})
        with urllib.request.urlopen(req, context=cluster._ssl_context(cluster.cluster_dir(self.state["name"])),
                                    timeout=10) as resp:
            return json.loads(resp.read())

    def _available(self) -> bool:
        deployments = (self._get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments") or {}).get("items") or []
        if not deployments:
            return False
        for d in deployments:
            want = d.get("spec", {}).get("replicas", 1)
            status = d.get("status") or {}
            if status.get("observedGeneration", 0) < d["metadata"].get("generation", 0) or \
                    status.get("availableReplicas", 0) < want:
                return False
        return True

    def step(self) -> None:
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + RETRY
        try:
            cm = self._get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{CONFIGMAP}")
            if cm is None:
                if self.info["resourceId"]:
                    self.say(f"arc: release gone (no {NAMESPACE}/{CONFIGMAP}); heartbeats stop")
                self.info.update(resourceId=None, connected=False)
                self.last_problem = None
                return
            data = cm.get("data") or {}
            rid = (f"/subscriptions/{data.get('AZURE_SUBSCRIPTION_ID')}/resourceGroups/"
                   f"{data.get('AZURE_RESOURCE_GROUP')}/providers/Microsoft.Kubernetes/connectedClusters/"
                   f"{data.get('AZURE_RESOURCE_NAME')}")
            self.info["resourceId"] = rid
            if not self._available():
                self._problem("waiting for the agent Deployments in azure-arc to be available")
                return
            secret = self._get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}")
            pem = base64.b64decode(((secret or {}).get("data") or {}).get(SECRET_KEY, ""))
            if not pem:
                self._problem(f"no onboarding private key in {NAMESPACE}/{SECRET}")
                return
            version = (self._get("/version") or {}).get("gitVersion", "")
            nodes = (self._get("/api/v1/nodes") or {}).get("items") or []
            jwks = self._jwks()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self._problem(f"cannot read the cluster: {exc}")
            return
        payload = json.dumps({
            "resourceId": rid, "timestamp": time.time(),
            "kubernetesVersion": version[1:] if version.startswith("v") else version,
            "totalNodeCount": len(nodes),
            "totalCoreCount": sum(_cpu((n.get("status") or {}).get("capacity", {}).get("cpu")) for n in nodes),
            "agentVersion": data.get("AZURE_ARC_AGENT_VERSION", ""),
            "jwks": jwks,
        }, sort_keys=True)
        try:
            signature = _sign(pem, payload.encode())
        except ValueError as exc:
            self._problem(f"the onboarding private key cannot sign: {exc}")
            return
        try:
            answer = _post_admin("/arc/agent-report", {"payload": payload, "signature": signature})
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            self._problem(f"heartbeat for {rid} refused: HTTP {exc.code} {detail}")
            return
        except (urllib.error.URLError, OSError) as exc:
            self._problem(f"the sandbox admin API does not answer: {exc}")
            return
        if not self.info["connected"]:
            self.say(f"arc: heartbeat accepted for {rid} (kubernetes {version}, {len(nodes)} node(s))")
        self._problem(None)
        self.heartbeat = float(answer.get("heartbeatSeconds") or RETRY)
        self.next_at = time.monotonic() + self.heartbeat
        self.info.update(connected=True, lastReport=answer.get("lastConnectivityTime"))


def _sign(pem: bytes, data: bytes) -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(pem, None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()


def _post_admin(path: str, body: dict) -> dict:
    context = ssl.create_default_context(cafile=str(PKI(sandbox_config.home()).bundle))
    req = urllib.request.Request(sandbox_config.url("admin", path), data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=context, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")
