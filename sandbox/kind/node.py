"""The filesystem of a stand-in kind node, and the static pod manifests kubeadm writes into it.

A kind node is a Docker container. The stand-in runs no containers, so each node gets a directory
that plays the container's root filesystem, NAME/nodes/NODE/rootfs/, and a mount table that plays
its bind mounts:

- the node's `extraMounts` from the kind config (containerPath -> hostPath), exactly as Docker
  mounts them into the node container (a write to a mounted path lands on the host path);
- on a control-plane node, the files kubeadm keeps outside the manifests, which the stand-in keeps
  in the cluster directory: /etc/kubernetes/pki -> NAME/pki, /var/lib/etcd -> NAME/etcd and the
  component kubeconfigs /etc/kubernetes/{admin,controller-manager,scheduler}.conf ->
  NAME/{admin,controller-manager,scheduler}.kubeconfig.

The longest matching container path wins (an extraMount of /etc/kubernetes/pki/sa.key shadows the
node's /etc/kubernetes/pki, as a bind mount does); everything else is the node's rootfs directory.

Static pods. `kubeadm init` writes kube-apiserver.yaml, kube-controller-manager.yaml,
kube-scheduler.yaml and etcd.yaml into /etc/kubernetes/manifests, and the node's kubelet runs
them. `manifest()` renders the same shape as kubeadm (v1 Pod in kube-system, labels
component/tier=control-plane, one container named after the component whose `command` is the binary
name followed by `--flag=value` in container paths, probes, resources, hostNetwork, priority
system-node-critical, hostPath volumes). Sources: kubernetes cmd/kubeadm/app/phases/controlplane/
manifests.go and volumes.go, cmd/kubeadm/app/phases/etcd/local.go, cmd/kubeadm/app/util/staticpod/
utils.go (ComponentPod, LivenessProbe/ReadinessProbe/StartupProbe), and kubeadm-generated files on
real control planes. The stand-in's flags differ from kubeadm's where it runs differently (loopback
ports instead of 6443/10257/10259, etcd over http on 127.0.0.1, no front proxy): the manifest shows
the flags the process really runs with, which is the point.

`host_command()` turns a manifest's container command into the host command line: the binary name
becomes the built binary, and every path flag's value (an absolute container path) is mapped through
the mount table. Creation (sandbox/kind/cluster.py) and the kubelet-like watcher
(sandbox/kind/kubelet.py) both go through it, so a manifest and its process always agree.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path

import yaml

MANIFEST_DIR = "/etc/kubernetes/manifests"
STATIC_PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
KUBECONFIGS = {"admin": "admin.conf", "controller-manager": "controller-manager.conf", "scheduler": "scheduler.conf"}

# flags whose value is a file or directory inside the node (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd); any flag ending in -file, -dir, -path or kubeconfig counts too
PATH_FLAGS = {"service-account-key-file", "service-account-signing-key-file", "service-account-private-key-file",
              "tls-cert-file", "tls-private-key-file", "client-ca-file", "root-ca-file", "cluster-signing-cert-file",
              "cluster-signing-key-file", "kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig",
              "oidc-ca-file", "audit-policy-file", "audit-log-path", "encryption-provider-config",
              "authentication-config", "authorization-config", "admission-control-config-file", "config",
              "data-dir", "wal-dir", "cert-dir", "requestheader-client-ca-file", "etcd-cafile", "etcd-certfile",
              "etcd-keyfile", "kubelet-client-certificate", "kubelet-client-key", "proxy-client-cert-file",
              "proxy-client-key-file", "trusted-ca-file", "peer-trusted-ca-file", "cert-file", "key-file",
              "peer-cert-file", "peer-key-file"}


class NodeError(Exception):
    """A node path that cannot be used (escapes the node, unknown node)."""


def is_path_flag(name: str) -> bool:
    return name in PATH_FLAGS or name.endswith(("-file", "-dir", "-path", "kubeconfig"))


# ---- the node filesystem --------------------------------------------------------------------------------
class NodeFS:
    """The root filesystem and mount table of one node of a stand-in cluster."""

    def __init__(self, cdir: Path, node: dict):
        self.cdir = Path(cdir)
        self.name = node["name"]
        self.role = node["role"]
        self.rootfs = self.cdir / "nodes" / self.name / "rootfs"
        mounts = [(m["containerPath"], m["hostPath"], bool(m.get("readOnly")), "extraMount")
                  for m in node.get("extraMounts") or []]
        if self.role == "control-plane":
            mounts += [("/etc/kubernetes/pki", str(self.cdir / "pki"), False, "node"),
                       ("/var/lib/etcd", str(self.cdir / "etcd"), False, "node")]
            mounts += [(f"/etc/kubernetes/{conf}", str(self.cdir / f"{user}.kubeconfig"), False, "node")
                       for user, conf in KUBECONFIGS.items()]
        # longest container path first; an extraMount wins over the node's own directory of the same path
        self.mounts = sorted(mounts, key=lambda m: (-len(m[0].rstrip("/")), m[3] != "extraMount"))

    @staticmethod
    def clean(path: str) -> str:
        """An absolute, normalised node path; `..` is refused (docker resolves paths inside the container's
        root; the stand-in refuses instead of clamping, so a typo cannot reach the host)."""
        if not isinstance(path, str) or not path or "\x00" in path:
            raise NodeError(f"invalid path {path!r}")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise NodeError(f"path {path!r} escapes the node filesystem ('..' is refused)")
        return "/" + "/".join(parts)

    def mount_for(self, path: str):
        path = self.clean(path)
        for cpath, hpath, ro, kind in self.mounts:
            cp = self.clean(cpath)
            if path == cp or path.startswith(cp.rstrip("/") + "/"):
                return (cp, hpath, ro, kind)
        return None

    def host_path(self, path: str) -> Path:
        """Where node path PATH is on this host."""
        path = self.clean(path)
        mount = self.mount_for(path)
        if mount:
            cp, hpath, _, _ = mount
            rest = path[len(cp):].lstrip("/")
            base = Path(hpath)
            target = base / rest if rest else base
            check = base
        else:
            target = self.rootfs / path.lstrip("/") if path != "/" else self.rootfs
            check = self.rootfs
        # no symlink inside the node may lead out of it
        real = os.path.realpath(target)
        root = os.path.realpath(check)
        if real != root and not real.startswith(root.rstrip("/") + "/"):
            raise NodeError(f"path {path!r} escapes the node filesystem (symlink)")
        return target

    def is_mount_point(self, path: str) -> bool:
        path = self.clean(path)
        return any(self.clean(cp) == path for cp, _, _, _ in self.mounts)

    def read_only(self, path: str) -> bool:
        mount = self.mount_for(path)
        return bool(mount and mount[2])

    def mount_points_under(self, path: str) -> list[str]:
        """Names of mount points directly under directory PATH (what `ls` shows besides the rootfs)."""
        path = self.clean(path).rstrip("/") + "/"
        out = []
        for cp, _, _, _ in self.mounts:
            cp = self.clean(cp)
            if cp.startswith(path) and "/" not in cp[len(path):]:
                out.append(cp[len(path):])
        return out

    def prepare(self) -> None:
        """The rootfs with the directories the node image has and the mount points Docker creates."""
        for d in ("etc/kubernetes/manifests", "etc/kubernetes/pki", "var/lib/kubelet", "var/lib/etcd", "tmp",
                  "root", "kind"):
            (self.rootfs / d).mkdir(parents=True, exist_ok=True)
        for cp, hp, _, _ in self.mounts:
            placeholder = self.rootfs / self.clean(cp).lstrip("/")
            if Path(hp).is_dir():
                placeholder.mkdir(parents=True, exist_ok=True)
            else:
                placeholder.parent.mkdir(parents=True, exist_ok=True)
                if not placeholder.exists():
                    placeholder.touch()


def node_fs(cdir: Path, state: dict, node_name: str) -> NodeFS:
    for node in state["nodes"]:
        if node["name"] == node_name:
            return NodeFS(cdir, node)
    raise NodeError(f"No such container: {node_name}")


def control_plane(cdir: Path, state: dict) -> NodeFS:
    node = next(n for n in state["nodes"] if n["role"] == "control-plane")
    return NodeFS(cdir, node)


# ---- static pod manifests -----------------------------------------------------------------------------
_CA_VOLUMES = [("ca-certs", "/etc/ssl/certs"), ("etc-ca-certificates", "/etc/ca-certificates"),
               ("usr-local-share-ca-certificates", "/usr/local/share/ca-certificates"),
               ("usr-share-ca-certificates", "/usr/share/ca-certificates")]


def _probe(path: str, port: int, scheme: str, failure: int, initial: int | None, period: int = 10) -> dict:
    probe = {"failureThreshold": failure,
             "httpGet": {"host": "127.0.0.1", "path": path, "port": port, "scheme": scheme}}
    if initial is not None:
        probe["initialDelaySeconds"] = initial
    probe["periodSeconds"] = period
    probe["timeoutSeconds"] = 15
    return probe


def manifest(component: str, command: list[str], image: str, ports: dict) -> dict:
    """A static pod manifest in kubeadm's shape for COMPONENT running COMMAND (container paths) from IMAGE."""
    volumes: list[tuple[str, str, str, bool]] = []  # name, path, hostPath type, read-only
    annotations = {}
    if component == "kube-apiserver":
        port = ports["apiserver"]
        annotations["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"] = f"127.0.0.1:{port}"
        probes = {"livenessProbe": _probe("/livez", port, "HTTPS", 8, 10),
                  "readinessProbe": _probe("/readyz", port, "HTTPS", 3, None, 1),
                  "startupProbe": _probe("/livez", port, "HTTPS", 24, 10)}
        cpu = "250m"
        volumes = [(n, p, "DirectoryOrCreate", True) for n, p in _CA_VOLUMES[:2]]
        volumes += [("k8s-certs", "/etc/kubernetes/pki", "DirectoryOrCreate", True)]
        volumes += [(n, p, "DirectoryOrCreate", True) for n, p in _CA_VOLUMES[2:]]
    elif component == "kube-controller-manager":
        port = ports["controller-manager"]
        probes = {"livenessProbe": _probe("/healthz", port, "HTTPS", 8, 10),
                  "startupProbe": _probe("/healthz", port, "HTTPS", 24, 10)}
        cpu = "200m"
        volumes = [(n, p, "DirectoryOrCreate", True) for n, p in _CA_VOLUMES[:2]]
        volumes += [("flexvolume-dir", "/usr/libexec/kubernetes/kubelet-plugins/volume/exec", "DirectoryOrCreate",
                     False),
                    ("k8s-certs", "/etc/kubernetes/pki", "DirectoryOrCreate", True),
                    ("kubeconfig", "/etc/kubernetes/controller-manager.conf", "FileOrCreate", True)]
        volumes += [(n, p, "DirectoryOrCreate", True) for n, p in _CA_VOLUMES[2:]]
    elif component == "kube-scheduler":
        port = ports["scheduler"]
        probes = {"livenessProbe": _probe("/livez", port, "HTTPS", 8, 10),
                  "readinessProbe": _probe("/readyz", port, "HTTPS", 3, None, 1),
                  "startupProbe": _probe("/livez", port, "HTTPS", 24, 10)}
        cpu = "100m"
        volumes = [("kubeconfig", "/etc/kubernetes/scheduler.conf", "FileOrCreate", True)]
    elif component == "etcd":
        port = ports["etcd"]
        annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"] = f"http://127.0.0.1:{port}"
        probes = {"livenessProbe": _probe("/health?exclude=NOSPACE&serializable=true", port, "HTTP", 8, 10),
                  "startupProbe": _probe("/health?serializable=false", port, "HTTP", 24, 10)}
        cpu = "100m"
        volumes = [("etcd-data", "/var/lib/etcd", "DirectoryOrCreate", False)]
    else:
        raise ValueError(component)
    container = {"command": list(command), "image": image, "imagePullPolicy": "IfNotPresent", **probes,
                 "name": component}
    if component == "etcd":
        container["resources"] = {"requests": {"cpu": cpu, "memory": "100Mi"}}
    else:
        container["resources"] = {"requests": {"cpu": cpu}}
    container["volumeMounts"] = [dict({"mountPath": p, "name": n}, **({"readOnly": True} if ro else {}))
                                 for n, p, _, ro in volumes]
    metadata = {}
    if annotations:
        metadata["annotations"] = annotations
    metadata.update({"labels": {"component": component, "tier": "control-plane"}, "name": component,
                     "namespace": "kube-system"})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [container], "hostNetwork": True, "priority": 2000001000,
                     "priorityClassName": "system-node-critical",
                     "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                     "volumes": [{"hostPath": {"path": p, "type": t}, "name": n} for n, p, t, _ in volumes]},
            "status": {}}


def dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


class ManifestError(Exception):
    """A static pod manifest the kubelet could not use."""


def parse(text: str, source: str) -> tuple[str, list[str]]:
    """(pod name, container command + args) of a static pod manifest, or ManifestError with the reason."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: couldn't parse as pod: {exc}".replace("\n", " ")) from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: couldn't parse as pod: not a YAML/JSON object")
    if doc.get("kind") != "Pod" or doc.get("apiVersion") != "v1":
        raise ManifestError(f"{source}: invalid pod: expected apiVersion v1, kind Pod, got "
                            f"{doc.get('apiVersion')!r}, {doc.get('kind')!r}")
    name = (doc.get("metadata") or {}).get("name")
    if not name or not isinstance(name, str):
        raise ManifestError(f"{source}: invalid pod: metadata.name: Required value")
    containers = (doc.get("spec") or {}).get("containers")
    if not isinstance(containers, list) or len(containers) != 1 or not isinstance(containers[0], dict):
        raise ManifestError(f"{source}: invalid pod: spec.containers must hold exactly one container here")
    command = containers[0].get("command")
    args = containers[0].get("args") or []
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise ManifestError(f"{source}: invalid pod: spec.containers[0].command must be a list of strings "
                            "(the stand-in runs no images, so it needs the command)")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ManifestError(f"{source}: invalid pod: spec.containers[0].args must be a list of strings")
    return name, command + args


def host_command(command: list[str], binaries: dict, fs: NodeFS) -> list[str]:
    """The host command line for a container command: binary name -> built binary, path flags -> host paths."""
    exe = posixpath.basename(command[0])
    if exe not in binaries:
        raise ManifestError(f'exec: "{command[0]}": executable file not found in $PATH')
    out = [binaries[exe]]
    for arg in command[1:]:
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            if is_path_flag(name) and value.startswith("/"):
                value = str(fs.host_path(value))
            out.append(f"--{name}={value}")
        else:
            out.append(arg)
    return out


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def flags(command: list[str]) -> list[str]:
    """The flags of a command line (everything after the binary), for comparisons."""
    return list(command[1:])


def write_manifests(fs: NodeFS, manifests: dict[str, dict]) -> dict[str, str]:
    """Write the manifests into the node's /etc/kubernetes/manifests; returns component -> digest."""
    out = {}
    mdir = fs.host_path(MANIFEST_DIR)
    mdir.mkdir(parents=True, exist_ok=True)
    for component, doc in manifests.items():
        data = dump(doc).encode()
        path = mdir / f"{component}.yaml"
        tmp = mdir / f".{component}.yaml.tmp"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        out[component] = digest(data)
    return out


def describe(fs: NodeFS) -> dict:
    """The node's mount table, for `docker inspect`-like diagnostics."""
    return {"rootfs": str(fs.rootfs),
            "mounts": [{"containerPath": c, "hostPath": h, "readOnly": r, "source": k} for c, h, r, k in fs.mounts]}

