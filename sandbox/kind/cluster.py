"""Create, list and delete stand-in kind clusters: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok as local processes on 127.0.0.1, configured the way kind + kubeadm would.

State of cluster NAME: $ARCWI_SANDBOX_HOME/kind/NAME/ (cluster.json, pki/, etcd/, logs/, and
nodes/NODE/rootfs/, the nodes' filesystems with the control plane's static pod manifests in
/etc/kubernetes/manifests: sandbox/kind/node.py). The per-cluster agent restarts a component when its
manifest changes (sandbox/kind/kubelet.py); sandbox/bin/docker copies files in and out of the nodes.
Binaries: sandbox/go/build.py (built from the upstream Go modules, cached outside the repository).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from .. import config as sandbox_config
from . import config as kindconfig
from . import kubeadm, node, pki

KIND_VERSION = "v0.32.0"  # the kind release whose behaviour the stand-in follows (kubeadm v1beta4 from 1.36)
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
START_TIMEOUT = 120.0


class KindError(Exception):
    pass


def root() -> Path:
    return sandbox_config.home() / "kind"


def cluster_dir(name: str) -> Path:
    return root() / name


def binaries() -> dict[str, str]:
    """Paths of the built binaries (sandbox/go/build.py paths --json)."""
    build = sandbox_config.SANDBOX_DIR / "go" / "build.py"
    out = subprocess.run([sys.executable, str(build), "paths", "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise KindError(f"cannot locate the sandbox binaries: {out.stderr.strip() or out.stdout.strip()}")
    paths = json.loads(out.stdout)  # binary name -> path
    missing = [b for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")
               if not paths.get(b) or not os.path.exists(paths[b])]
    if missing:
        raise KindError(f"sandbox binaries not built: {', '.join(missing)}; run `make sandbox-k8s-build`")
    return paths


def kwok_stage_files(kwok_binary: str) -> list[str]:
    """kwok's own default stages (node-fast, node-heartbeat, pod-fast), read from the kwok module in the
    Go module cache the binary was built from: upstream files, used in place, never copied."""
    version = Path(kwok_binary).parent.name.split("-", 1)[-1]  # kwok-v0.8.0 -> v0.8.0
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True).stdout.strip()
    base = Path(modcache) / "sigs.k8s.io" / f"kwok@{version}" / "kustomize" / "stage"
    files = []
    for sub in ("node/fast", "node/heartbeat", "pod/fast"):
        files += sorted(str(p) for p in (base / sub).glob("*.yaml") if p.name != "kustomization.yaml")
    if not files:
        raise KindError(f"kwok's stage files are not in the Go module cache ({base}); run `make sandbox-k8s-build`")
    return files


# Ports for cluster components come from below the kernel's ephemeral range: a port the kernel hands out
# for bind(0) is also what it hands out as the source port of outbound connections, so a port found free
# that way can be taken by any client connection before the component binds it (seen in CI: the
# scheduler's "bind: address already in use"). Ports handed out are reserved for a while in a file under
# the kind root (with a lock), so concurrent `kind create` runs never pick the same one.
PORT_RANGE = (20000, 32000)
PORT_RESERVATION_SECONDS = 600


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _ports_dir() -> Path:
    """Where port reservations live: one place per user on the machine, not per sandbox, so that two
    sandboxes (two checkouts, a CI clone next to a developer's) never hand out the same port."""
    directory = Path(os.environ.get("ARCWI_KIND_PORTS_DIR") or
                     Path(tempfile.gettempdir()) / f"arcwi-kind-ports-{os.getuid()}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def free_port() -> int:
    low, high = PORT_RANGE
    eph_low, eph_high = _ephemeral_range()
    reservations = _ports_dir() / "ports"
    with open(_ports_dir() / "ports.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = time.time()
        held: dict[int, float] = {}
        if reservations.exists():
            for line in reservations.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    port, stamp = line.split()
                    if now - float(stamp) < PORT_RESERVATION_SECONDS:
                        held[int(port)] = float(stamp)
        candidates = [p for p in range(low, high) if not eph_low <= p <= eph_high and p not in held]
        random.shuffle(candidates)
        for port in candidates:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            held[port] = now
            reservations.write_text("".join(f"{p} {t}\n" for p, t in sorted(held.items())))
            return port
    raise KindError(f"no free port on 127.0.0.1 in {low}-{high}")


def list_clusters() -> list[str]:
    if not root().exists():
        return []
    return sorted(p.name for p in root().iterdir() if (p / "cluster.json").exists())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- flags ------------------------------------------------------------------------------------------
def host_path(value: str, mounts: list, pki_dir: Path) -> str:
    """A path inside the kind node -> where it is on this host (extraMounts, then the cluster's pki).
    The short form of sandbox/kind/node.py's NodeFS.host_path, which `create` and the kubelet use."""
    for m in sorted(mounts, key=lambda m: -len(m.container_path)):
        cp = m.container_path.rstrip("/")
        if value == cp:
            return m.host_path
        if value.startswith(cp + "/"):
            return m.host_path.rstrip("/") + value[len(cp):]
    if value.startswith("/etc/kubernetes/pki/"):
        return str(pki_dir / value[len("/etc/kubernetes/pki/"):])
    return value


PATH_FLAGS = {"service-account-key-file", "service-account-signing-key-file", "service-account-private-key-file",
              "tls-cert-file", "tls-private-key-file", "client-ca-file", "root-ca-file", "cluster-signing-cert-file",
              "cluster-signing-key-file", "kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig",
              "oidc-ca-file", "audit-policy-file", "audit-log-path", "encryption-provider-config",
              "authentication-config", "authorization-config", "admission-control-config-file"}


def render_flags(pairs, mounts, pki_dir: Path) -> list[str]:
    out = []
    for name, value in pairs:
        if name in PATH_FLAGS and value.startswith("/"):
            value = host_path(value, mounts, pki_dir)
        out.append(f"--{name}={value}")
    return out


def _kubeconfig(server: str, pki_dir: Path, user: str, context: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority-data":
                                                   _b64(pki_dir / "ca.crt")}}],
        "users": [{"name": context, "user": {"client-certificate-data": _b64(pki_dir / f"{user}.crt"),
                                             "client-key-data": _b64(pki_dir / f"{user}.key")}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context, "preferences": {},
    }


def _b64(path: Path) -> str:
    import base64
    return base64.b64encode(path.read_bytes()).decode()


# ---- create -----------------------------------------------------------------------------------------
def create(name: str | None, config_text: str, image: str | None, kubeconfig: str | None, wait: float,
           log=print, retain: bool = False) -> dict:
    cluster = kindconfig.load(config_text, name=name, image=image)
    name = cluster.name
    if name in list_clusters():
        raise KindError(f'node(s) already exist for a cluster with the name "{name}"')
    bins = binaries()
    cdir = cluster_dir(name)
    if cdir.exists():
        shutil.rmtree(cdir)
    (cdir / "logs").mkdir(parents=True)
    control = next(n for n in cluster.nodes if n.role == "control-plane")
    api_version = kubeadm.kubeadm_api_version(control.image)
    k8s_version = "v%d.%d.%d" % kubeadm.image_version(control.image)
    runtime = ",".join(f"{k}={v}" for k, v in sorted(cluster.runtime_config.items()))
    docs = kubeadm.default_documents(api_version, name, k8s_version, runtime)
    docs, notes = kubeadm.apply_patches(docs, cluster.kubeadm_config_patches + control.kubeadm_config_patches)
    cc = kubeadm.cluster_configuration(docs)
    pki_dir = cdir / "pki"
    pki.make(pki_dir, name, make_sa=not any(m.container_path.startswith("/etc/kubernetes/pki/sa")
                                            for m in control.extra_mounts))
    ports = {"etcd": free_port(), "etcd-peer": free_port(),
             "apiserver": int(cluster.networking.get("apiServerPort") or 0) or free_port(),
             "controller-manager": free_port(), "scheduler": free_port(), "kwok": free_port()}
    server = f"https://127.0.0.1:{ports['apiserver']}"
    for user in ("admin", "controller-manager", "scheduler"):
        (cdir / f"{user}.kubeconfig").write_text(yaml.safe_dump(_kubeconfig(server, pki_dir, user, f"kind-{name}")))
        os.chmod(cdir / f"{user}.kubeconfig", 0o600)

    apiserver_defaults = [
        ("advertise-address", "127.0.0.1"), ("bind-address", "127.0.0.1"), ("secure-port", str(ports["apiserver"])),
        ("allow-privileged", "true"), ("authorization-mode", "Node,RBAC"),
        ("client-ca-file", "/etc/kubernetes/pki/ca.crt"), ("enable-admission-plugins", "NodeRestriction"),
        ("enable-bootstrap-token-auth", "true"), ("etcd-servers", f"http://127.0.0.1:{ports['etcd']}"),
        # the kubernetes Service cannot point at 127.0.0.1 (loopback endpoints are invalid); nothing here
        # connects to service IPs anyway
        ("endpoint-reconciler-type", "none"),
        ("service-account-issuer", "https://kubernetes.default.svc.cluster.local"),
        ("service-account-key-file", "/etc/kubernetes/pki/sa.pub"),
        ("service-account-signing-key-file", "/etc/kubernetes/pki/sa.key"),
        ("service-cluster-ip-range", cc.get("networking", {}).get("serviceSubnet", "10.96.0.0/16")),
        ("tls-cert-file", "/etc/kubernetes/pki/apiserver.crt"),
        ("tls-private-key-file", "/etc/kubernetes/pki/apiserver.key"),
    ]
    cm_defaults = [
        ("allocate-node-cidrs", "true"), ("cluster-cidr", cc.get("networking", {}).get("podSubnet", "10.244.0.0/16")),
        ("authentication-kubeconfig", "/etc/kubernetes/controller-manager.conf"),
        ("authorization-kubeconfig", "/etc/kubernetes/controller-manager.conf"),
        ("kubeconfig", "/etc/kubernetes/controller-manager.conf"),
        ("bind-address", "127.0.0.1"), ("secure-port", str(ports["controller-manager"])),
        ("client-ca-file", "/etc/kubernetes/pki/ca.crt"), ("cluster-name", name),
        ("cluster-signing-cert-file", "/etc/kubernetes/pki/ca.crt"),
        ("cluster-signing-key-file", "/etc/kubernetes/pki/ca.key"),
        ("controllers", "*,bootstrapsigner,tokencleaner"), ("leader-elect", "false"),
        ("root-ca-file", "/etc/kubernetes/pki/ca.crt"),
        ("service-account-private-key-file", "/etc/kubernetes/pki/sa.key"),
        ("use-service-account-credentials", "true"),
    ]
    scheduler_defaults = [
        ("authentication-kubeconfig", "/etc/kubernetes/scheduler.conf"),
        ("authorization-kubeconfig", "/etc/kubernetes/scheduler.conf"),
        ("kubeconfig", "/etc/kubernetes/scheduler.conf"), ("bind-address", "127.0.0.1"),
        ("secure-port", str(ports["scheduler"])), ("leader-elect", "false"),
    ]
    # the control plane as kubeadm leaves it: static pod manifests in the control-plane node's
    # /etc/kubernetes/manifests (container paths); each process runs the manifest's command with the
    # node's paths mapped to this host (sandbox/kind/node.py), as the watcher in the agent does later
    nodes = _node_names(name, cluster.nodes)
    cp_fs = node.NodeFS(cdir, next(n for n in nodes if n["role"] == "control-plane"))
    for n in nodes:
        node.NodeFS(cdir, n).prepare()
    etcd_pairs = [("advertise-client-urls", f"http://127.0.0.1:{ports['etcd']}"), ("data-dir", "/var/lib/etcd"),
                  ("initial-advertise-peer-urls", f"http://127.0.0.1:{ports['etcd-peer']}"),
                  ("initial-cluster", f"{name}-control-plane=http://127.0.0.1:{ports['etcd-peer']}"),
                  ("listen-client-urls", f"http://127.0.0.1:{ports['etcd']}"),
                  ("listen-peer-urls", f"http://127.0.0.1:{ports['etcd-peer']}"), ("log-level", "warn"),
                  ("name", f"{name}-control-plane"), ("quota-backend-bytes", str(512 * 1024 * 1024))]
    def _command(binary, pairs):
        # kubeadm writes the flags sorted by name (a stable sort: repeated v1beta4 flags keep their order)
        return [binary] + [f"--{n}={v}" for n, v in sorted(pairs, key=lambda p: p[0])]

    container_commands = {
        "etcd": _command("etcd", etcd_pairs),
        "kube-apiserver": _command("kube-apiserver", kubeadm.merge_flags(
            apiserver_defaults, kubeadm.extra_args(cc, "apiServer"))),
        "kube-controller-manager": _command("kube-controller-manager", kubeadm.merge_flags(
            cm_defaults, kubeadm.extra_args(cc, "controllerManager"))),
        "kube-scheduler": _command("kube-scheduler", kubeadm.merge_flags(
            scheduler_defaults, kubeadm.extra_args(cc, "scheduler"))),
    }
    images = {c: f"registry.k8s.io/{c}:{k8s_version}" for c in ("kube-apiserver", "kube-controller-manager",
                                                                 "kube-scheduler")}
    images["etcd"] = "registry.k8s.io/etcd:%s-0" % Path(bins["etcd"]).parent.name.split("-v", 1)[-1]
    manifests = {c: node.manifest(c, container_commands[c], images[c], ports) for c in node.STATIC_PODS}
    static_bins = {c: bins[c] for c in node.STATIC_PODS}
    commands = {c: node.host_command(container_commands[c], static_bins, cp_fs) for c in node.STATIC_PODS}
    commands["kwok"] = (
        [bins["kwok"], "--kubeconfig", str(cdir / "admin.kubeconfig"),
         "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
         "--node-ip=127.0.0.1", f"--server-address=127.0.0.1:{ports['kwok']}"]
        + [f"--config={f}" for f in kwok_stage_files(bins["kwok"])])
    manifest_digests = node.write_manifests(cp_fs, manifests)
    state = {"name": name, "kind_version": KIND_VERSION, "image": control.image, "kubeadm_api_version": api_version,
             "ports": ports, "server": server, "notes": notes, "commands": commands,
             "nodes": nodes, "pids": {}, "created": time.time(), "binaries": static_bins,
             "static_pods": {c: {"manifest": f"{node.MANIFEST_DIR}/{c}.yaml", "digest": manifest_digests[c]}
                             for c in node.STATIC_PODS}}
    _save(cdir, state)
    started = time.monotonic()
    try:
        for component in COMPONENTS:
            _start(cdir, state, component, commands[component])
            _wait_ready(cdir, state, component, ports, started)
        _create_nodes(cdir, state, cluster)
        if wait:
            _wait_nodes_ready(cdir, state, min(wait, START_TIMEOUT))
        # the kubelet's part for the webhook chart: sandbox/kind/agent.py (pid in extra_pids)
        from . import agent
        agent.launch(cdir, state)
    except Exception:
        _stop_all(cdir, state)
        if not retain:
            shutil.rmtree(cdir, ignore_errors=True)
        raise
    state["ready_after_s"] = round(time.monotonic() - started, 2)
    with locked_state(name) as current:  # the agent runs by now
        current["ready_after_s"] = state["ready_after_s"]
    write_kubeconfig(name, kubeconfig)
    for note in notes:
        log(f" ! {note}")
    return state


def _node_names(name: str, nodes) -> list[dict]:
    out, cp, wk = [], 0, 0
    for n in nodes:
        if n.role == "control-plane":
            cp += 1
            node = f"{name}-control-plane" + ("" if cp == 1 else str(cp))
        else:
            wk += 1
            node = f"{name}-worker" + ("" if wk == 1 else str(wk))
        out.append({"name": node, "role": n.role, "labels": n.labels, "image": n.image,
                    "extraMounts": [{"containerPath": m.container_path, "hostPath": m.host_path,
                                     "readOnly": m.read_only} for m in n.extra_mounts]})
    return out


def _save(cdir: Path, state: dict) -> None:
    tmp = cdir / f"cluster.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(cdir / "cluster.json")


@contextlib.contextmanager
def locked_state(name: str):
    """Read-modify-write of cluster.json under a lock (the agent's kubelet updates pids while others read)."""
    cdir = cluster_dir(name)
    with open(cdir / "cluster.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads((cdir / "cluster.json").read_text())
            yield state
            _save(cdir, state)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_state(name: str) -> dict:
    path = cluster_dir(name) / "cluster.json"
    if not path.exists():
        raise KindError(f'unknown cluster "{name}"')
    return json.loads(path.read_text())


# The node "containers" of a cluster are processes labelled in their environment with the cluster's
# directory, as kind labels its node containers (io.x-k8s.kind.cluster=NAME) and `kind delete` removes
# what carries the label. A process whose pid never reached cluster.json (kind create killed between
# starting it and recording it) is still found and removed this way.
LABEL = "ARCWI_KIND_NODE_DIR"


def labelled_env(cdir: Path, base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    env[LABEL] = str(cdir)
    return env


def label_of(pid: int) -> str | None:
    """The cluster directory PID is labelled with, None for an unlabelled (or gone) process
    (/proc/PID/environ: the environment at exec, readable for this user's processes)."""
    prefix = f"{LABEL}=".encode()
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            items = fh.read().split(b"\0")
    except OSError:
        return None
    return next((item[len(prefix):].decode() for item in items if item.startswith(prefix)), None)


def labelled_pids(cdir: Path) -> list[int]:
    """The processes carrying the label of CDIR."""
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and int(e) != os.getpid() and label_of(int(e)) == str(cdir)]


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    return _alive(pid) and not _zombie(pid)


def _start(cdir: Path, state: dict, component: str, command: list[str]) -> None:
    log = open(cdir / "logs" / f"{component}.log", "ab")
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=str(cdir), env=labelled_env(cdir))
    state["pids"][component] = proc.pid
    _save(cdir, state)


def _ssl_context(cdir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cdir / "pki" / "ca.crt"))
    ctx.load_cert_chain(str(cdir / "pki" / "admin.crt"), str(cdir / "pki" / "admin.key"))
    return ctx


def api(state: dict, method: str, path: str, body=None):
    cdir = cluster_dir(state["name"])
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(state["server"] + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(req, context=_ssl_context(cdir), timeout=10) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def _probe(state: dict, component: str, ports: dict) -> bool:
    cdir = cluster_dir(state["name"])
    try:
        if component == "etcd":
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['etcd']}/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"
        if component == "kube-apiserver":
            req = urllib.request.Request(state["server"] + "/readyz")
            with urllib.request.urlopen(req, context=_ssl_context(cdir), timeout=3) as r:
                return r.status == 200 and r.read().strip() == b"ok"
        if component in ("kube-controller-manager", "kube-scheduler"):
            port = ports["controller-manager" if component == "kube-controller-manager" else "scheduler"]
            ctx = ssl._create_unverified_context()  # self-signed serving cert of the component, loopback only
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=2) as r:
                return r.status == 200
        if component == "kwok":
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['kwok']}/healthz", timeout=2) as r:
                return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return False


def _wait_ready(cdir: Path, state: dict, component: str, ports: dict, started: float) -> None:
    pid = state["pids"][component]
    deadline = started + START_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid) or _zombie(pid):
            tail = (cdir / "logs" / f"{component}.log").read_text(errors="replace").splitlines()[-15:]
            raise KindError(f"{component} exited during start; last log lines:\n  " + "\n  ".join(tail))
        if _probe(state, component, ports):
            return
        time.sleep(0.2)
    raise KindError(f"{component} did not become ready within {START_TIMEOUT:.0f}s; see {cdir / 'logs'}")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def _create_nodes(cdir: Path, state: dict, cluster) -> None:
    for node in state["nodes"]:
        labels = {"kubernetes.io/hostname": node["name"], "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "type": "kwok", **{k: str(v) for k, v in (node["labels"] or {}).items()}}
        if node["role"] == "control-plane":
            labels["node-role.kubernetes.io/control-plane"] = ""
        api(state, "POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node["name"], "labels": labels,
                         "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"providerID": f"kind://docker/{state['name']}/{node['name']}"},
        })


def _wait_nodes_ready(cdir: Path, state: dict, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = api(state, "GET", "/api/v1/nodes").get("items", [])
        ready = [n for n in items if any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in n.get("status", {}).get("conditions", []))]
        if len(ready) >= len(state["nodes"]):
            return
        time.sleep(0.5)
    raise KindError(f"nodes not Ready within {timeout:.0f}s")


# ---- kubeconfig ---------------------------------------------------------------------------------------
def default_kubeconfig_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0])
    return Path.home() / ".kube" / "config"


def kubeconfig_for(name: str) -> dict:
    state = load_state(name)
    return _kubeconfig(state["server"], cluster_dir(name) / "pki", "admin", f"kind-{name}")


def write_kubeconfig(name: str, explicit: str | None) -> Path:
    """Merge context kind-NAME into the kubeconfig and make it current (kind does the same)."""
    path = default_kubeconfig_path(explicit)
    mine = kubeconfig_for(name)
    current = {}
    if path.exists():
        current = yaml.safe_load(path.read_text()) or {}
    merged = {"apiVersion": "v1", "kind": "Config", "preferences": current.get("preferences") or {}}
    for section in ("clusters", "users", "contexts"):
        keep = [e for e in current.get(section) or [] if e.get("name") != f"kind-{name}"]
        merged[section] = keep + mine[section]
    merged["current-context"] = f"kind-{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(merged, sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def remove_from_kubeconfig(name: str, explicit: str | None) -> None:
    path = default_kubeconfig_path(explicit)
    if not path.exists():
        return
    current = yaml.safe_load(path.read_text()) or {}
    for section in ("clusters", "users", "contexts"):
        current[section] = [e for e in current.get(section) or [] if e.get("name") != f"kind-{name}"]
    if current.get("current-context") == f"kind-{name}":
        current["current-context"] = ""
    path.write_text(yaml.safe_dump(current, sort_keys=False))


# ---- delete -------------------------------------------------------------------------------------------
def _stop_all(cdir: Path, state: dict) -> None:
    # processes attached to the cluster later (sandbox/kind/webhook.py: the webhook) go first
    for pid in (state.get("extra_pids") or {}).values():
        if pid and _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    extra_deadline = time.monotonic() + 10
    for pid in (state.get("extra_pids") or {}).values():
        while pid and _alive(pid) and not _zombie(pid) and time.monotonic() < extra_deadline:
            time.sleep(0.1)
        if pid and _alive(pid) and not _zombie(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # the agent's kubelet may have restarted static pods (new pids): read them now that it has stopped
    try:
        state = dict(state, pids=json.loads((cdir / "cluster.json").read_text()).get("pids") or {})
    except (OSError, ValueError):
        pass
    # The node's components are killed, not asked to stop: kind deletes a cluster with
    # `docker rm -f` (SIGKILL to the node container), and the cluster's state goes with it. A SIGTERM
    # made each delete wait ~10 s for the apiserver's graceful shutdown.
    for component in reversed(COMPONENTS):
        pid = state.get("pids", {}).get(component)
        if pid and _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
    # what carries the cluster's label without a recorded pid (see LABEL)
    for pid in labelled_pids(cdir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    for component in reversed(COMPONENTS):
        pid = state.get("pids", {}).get(component)
        while pid and _alive(pid) and not _zombie(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    while time.monotonic() < deadline and any(running(pid) for pid in labelled_pids(cdir)):
        time.sleep(0.05)


def delete(name: str, kubeconfig: str | None) -> bool:
    cdir = cluster_dir(name)
    if not (cdir / "cluster.json").exists():
        return False
    _stop_all(cdir, json.loads((cdir / "cluster.json").read_text()))
    shutil.rmtree(cdir)
    remove_from_kubeconfig(name, kubeconfig)
    return True
