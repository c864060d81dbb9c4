"""The per-cluster agent of a stand-in cluster: it plays the kubelet running the webhook chart's Deployment.

kwok runs no containers, so installing the `workload-identity-webhook` chart cannot start the webhook
pod. This agent, started by `kind create cluster` and stopped by `kind delete cluster` (its pid is in
cluster.json's `extra_pids`), watches the cluster for what the chart creates: the ConfigMap
`azure-wi-webhook-config` (label `azure-workload-identity.io/system=true`, any namespace). When it
appears, or its AZURE_TENANT_ID changes, the agent (re)starts the upstream webhook binary the way
sandbox/kind/webhook.py does (serving certificate for 127.0.0.1 signed by the cluster CA, the Entra
emulator as the cloud's authority host), on the port allocated at cluster create. When the ConfigMap
goes away (helm uninstall) the webhook is stopped. So the webhook runs because the chart was
installed, with the tenant the chart was given, as in a real install.

The agent never registers the MutatingWebhookConfiguration: the chart owns it. The chart needs the
webhook's URL and CA up front; cluster.json's `agent` entry holds them and

    python -m sandbox.kind.agent info --name NAME

prints them as JSON (`webhook_url`, `ca_bundle` = base64 of the cluster CA, the chart's
`sandbox.webhookURL` / `sandbox.caBundle`), with the agent's view of the webhook (`webhook`: tenant,
pid, ready) when it runs.

The same loop plays the Azure Arc agents for the chart sandbox/charts/azure-arc-k8sagents (heartbeat,
cluster metadata, JWKS upload for the Arc-hosted issuer): see sandbox/kind/arc_agent.py. `info` shows
its view under `arc` (resourceId, connected, lastReport, problem).

The agent is also the control-plane node's kubelet for static pods (sandbox/kind/kubelet.py, in a
thread of its own): it watches the manifests in the node's /etc/kubernetes/manifests and restarts
kube-apiserver, kube-controller-manager, kube-scheduler or etcd when one changes (`docker cp`, see
sandbox/bin/docker). `info` shows its view under `static_pods`.

The webhook child stays in the agent's process group, so stopping the agent's group (what
`kind delete cluster` does with `extra_pids`) stops both. Agent state: NAME/agent.json (written only by
the agent); log: NAME/logs/arcwi-agent.log.

    python -m sandbox.kind.agent run --name NAME     (what `kind create cluster` starts)
    python -m sandbox.kind.agent info --name NAME
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
from pathlib import Path

from .. import config as sandbox_config
from . import arc_agent, cluster, kubelet, webhook

PID_KEY = "arcwi-agent"  # key in cluster.json's extra_pids
CONFIGMAP = "azure-wi-webhook-config"
SELECTOR = "azure-workload-identity.io/system=true"
POLL = 0.5  # seconds between two looks at the cluster
LOG = "arcwi-agent.log"


# ---- launched by the stand-in -------------------------------------------------------------------------
def launch(cdir: Path, state: dict) -> dict:
    """Allocate the webhook port, start the agent for the cluster of STATE, record both in cluster.json."""
    name = state["name"]
    port = cluster.free_port()
    info = {"webhook_port": port, "webhook_url": f"https://{webhook.HOST}:{port}/mutate-v1-pod",
            "ca_file": str(cdir / "pki" / "ca.crt"), "log": str(cdir / "logs" / LOG)}
    state["agent"] = info
    state.setdefault("ports", {})["wi-webhook"] = port
    repo = sandbox_config.SANDBOX_DIR.parent
    env = cluster.labelled_env(cdir)  # the webhook and restarted static pods inherit the label
    env["PYTHONPATH"] = str(repo) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["ARCWI_SANDBOX_HOME"] = str(sandbox_config.home())
    with open(cdir / "logs" / LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sandbox.kind.agent", "run", "--name", name],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=str(repo))
    state.setdefault("extra_pids", {})[PID_KEY] = proc.pid
    cluster._save(cdir, state)
    return info


def info(name: str) -> dict:
    """The chart's sandbox values for cluster NAME, and what the agent runs."""
    state = cluster.load_state(name)
    agent = state.get("agent")
    if not agent:
        raise cluster.KindError(f'cluster "{name}" has no agent (created before the agent existed?)')
    cdir = cluster.cluster_dir(name)
    pid = (state.get("extra_pids") or {}).get(PID_KEY)
    running = bool(pid and cluster._alive(pid) and not cluster._zombie(pid))
    out = dict(agent, name=name, agent_pid=pid, agent_running=running,
               ca_bundle=base64.b64encode((cdir / "pki" / "ca.crt").read_bytes()).decode(),
               kubeconfig=str(cdir / "admin.kubeconfig"), webhook=None, arc=None, static_pods=None)
    path = cdir / "agent.json"
    if running and path.exists():
        try:
            written = json.loads(path.read_text())
            out["webhook"] = written.get("webhook")
            out["arc"] = written.get("arc")
            out["static_pods"] = written.get("static_pods")
        except ValueError:
            pass
    return out


# ---- the agent ----------------------------------------------------------------------------------------
def _say(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


def _configmaps(state: dict) -> list[dict]:
    query = urllib.parse.urlencode({"labelSelector": SELECTOR, "fieldSelector": f"metadata.name={CONFIGMAP}"})
    items = cluster.api(state, "GET", f"/api/v1/configmaps?{query}").get("items") or []
    return sorted(items, key=lambda i: (i["metadata"].get("namespace", ""), i["metadata"]["name"]))


class Agent:
    def __init__(self, name: str):
        self.name = name
        self.cdir = cluster.cluster_dir(name)
        self.state = cluster.load_state(name)
        self.port = self.state["agent"]["webhook_port"]
        self.proc: subprocess.Popen | None = None
        self.wanted: dict | None = None
        self.current: dict | None = None
        self.failures = 0
        self.retry_at = 0.0
        self.stopping = False
        self.arc = arc_agent.ArcAgents(self.state, _say)
        self.kubelet = kubelet.Kubelet(name, _say) if self.state.get("static_pods") else None
        self.write_lock = threading.Lock()

    def _write(self) -> None:
        with self.write_lock:
            data = {"agent_pid": os.getpid(), "webhook": None, "arc": dict(self.arc.info),
                    "static_pods": self.kubelet.view() if self.kubelet else None}
            if self.proc and self.proc.poll() is None and self.current:
                data["webhook"] = dict(self.current, pid=self.proc.pid, port=self.port,
                                       url=self.state["agent"]["webhook_url"])
            tmp = self.cdir / "agent.json.tmp"
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(self.cdir / "agent.json")

    def run_kubelet(self) -> None:
        """The static pod loop (own thread: restarting the apiserver must not wait for the webhook loop)."""
        while not self.stopping:
            try:
                if self.kubelet.step():
                    self._write()
            except Exception as exc:  # noqa: BLE001 - keep watching; the error is in the log
                _say(f"kubelet: unexpected error: {exc!r}")
            deadline = time.monotonic() + kubelet.CHECK_INTERVAL
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop_webhook(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            _say(f"webhook (pid {self.proc.pid}) stopped")
        self.proc = None
        self.current = None
        self._write()

    def start_webhook(self, wanted: dict) -> None:
        """The webhook binary on the agent's port, as sandbox/kind/webhook.py starts it (no registration)."""
        binary = webhook.webhook_binary()
        wdir = self.cdir / "webhook"
        wdir.mkdir(parents=True, exist_ok=True)
        certs = webhook._serving_cert(wdir, self.cdir / "pki")
        env = webhook._environment(wdir, wanted["tenant_id"], wanted["namespace"], wanted["authority_host"], None)
        command = [binary, "--kubeconfig", str(self.cdir / "admin.kubeconfig"),
                   "--webhook-host", webhook.HOST, "--webhook-port", str(self.port),
                   "--webhook-cert-dir", str(certs), "--disable-cert-rotation",
                   "--health-addr", f"{webhook.HOST}:{cluster.free_port()}",
                   "--metrics-addr", f"{webhook.HOST}:{cluster.free_port()}"]
        logfile = self.cdir / "logs" / f"{webhook.BINARY}.log"
        with open(logfile, "ab") as log:
            # same process group as the agent: stopping the agent's group stops the webhook too
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, cwd=str(wdir))
        self.current = dict(wanted, ready=False, log=str(logfile))
        _say(f"webhook (pid {self.proc.pid}) started on port {self.port} for tenant {wanted['tenant_id']} "
             f"(ConfigMap {wanted['namespace']}/{CONFIGMAP})")
        self._write()

    def step(self) -> None:
        before = dict(self.arc.info)
        try:
            self.arc.step()
        except Exception as exc:  # noqa: BLE001 - the Arc part must never stop the webhook part
            _say(f"arc: unexpected error: {exc!r}")
        if self.arc.info != before:
            self._write()
        self.step_webhook()

    def step_webhook(self) -> None:
        try:
            items = _configmaps(self.state)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            _say(f"cannot read ConfigMaps: {exc}")
            return
        wanted = None
        if items:
            cm = items[0]
            data = cm.get("data") or {}
            if data.get("AZURE_TENANT_ID"):
                wanted = {"tenant_id": data["AZURE_TENANT_ID"], "namespace": cm["metadata"]["namespace"],
                          "chart_environment": data.get("AZURE_ENVIRONMENT", ""),
                          # the sandbox's cloud: the Entra emulator, whatever azureEnvironment says
                          "authority_host": webhook.default_authority_host()}
        if wanted != self.wanted:
            self.wanted = wanted
            self.failures = 0
            self.retry_at = 0.0
            self.stop_webhook()
        if self.wanted is None:
            return
        if self.proc is not None and self.proc.poll() is not None:
            _say(f"webhook exited ({self.proc.returncode}); see {self.current and self.current.get('log')}")
            self.failures += 1
            self.retry_at = time.monotonic() + min(30.0, 0.5 * 2 ** self.failures)
            self.proc = None
            self.current = None
            self._write()
        if self.proc is None and time.monotonic() >= self.retry_at:
            try:
                self.start_webhook(self.wanted)
            except cluster.KindError as exc:  # e.g. the webhook binary is not built
                _say(f"cannot start the webhook: {exc}")
                self.failures += 1
                self.retry_at = time.monotonic() + min(30.0, 0.5 * 2 ** self.failures)
        if self.proc is not None and self.current and not self.current["ready"]:
            if webhook._answers(self.port, self.cdir / "pki" / "ca.crt"):
                self.current["ready"] = True
                self.failures = 0
                _say("webhook answers AdmissionReviews")
                self._write()

    def run(self) -> int:
        def _term(signum, frame):
            self.stopping = True
        signal.signal(signal.SIGTERM, _term)
        signal.signal(signal.SIGINT, _term)
        _say(f"agent for cluster {self.name} (pid {os.getpid()}), webhook port {self.port}")
        self._write()
        watcher = None
        if self.kubelet is not None:
            watcher = threading.Thread(target=self.run_kubelet, name="kubelet", daemon=True)
            watcher.start()
        while not self.stopping:
            self.step()
            deadline = time.monotonic() + POLL
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.05)
        if watcher is not None:
            watcher.join(timeout=30)
            self.kubelet.shutdown()
        self.stop_webhook()
        _say("agent stopped")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kind.agent", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd in ("run", "info"):
        sub.add_parser(cmd).add_argument("--name", default="kind")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "run":
            return Agent(args.name).run()
        print(json.dumps(info(args.name), indent=2))
    except cluster.KindError as exc:
        print(f"agent: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
