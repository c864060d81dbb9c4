"""kubeadm config as kind renders it, kind's kubeadmConfigPatches, and the component flags.

Sources:
- kind pkg/cluster/internal/kubeadm/config.go: the kubeadm API version follows the node image's
  Kubernetes version: kubeadm.k8s.io/v1beta4 for v1.36.0 and later, v1beta3 before (kind PR 4173,
  "adopt kubeadm v1beta4 API in 1.36.0+, update patch runtime to translate", issue 3847).
- kind pkg/internal/patch: a patch applies to the documents whose kind matches and, when the patch
  names an apiVersion, whose apiVersion matches; a versioned patch for another apiVersion is
  ignored without a word. Patches are JSON merge patches (RFC 7386: maps merge, lists replace,
  null removes). Since PR 4173, for a v1beta4 target, extraArgs/kubeletExtraArgs lists and
  certSANs are append-merged, and unversioned patches written in the v1beta3 map form of extraArgs
  are translated to the v1beta4 list form.
- kubeadm v1beta4 docs: extraArgs is a list of {name, value}; a name may repeat (repeated flags);
  extra args replace kubeadm's default arguments of the same name.
- kubeadm's static pod manifests (cmd/kubeadm/app/phases/controlplane/manifests.go): the default
  flags of kube-apiserver and kube-controller-manager, including
  --service-account-issuer=https://kubernetes.default.svc.cluster.local,
  --service-account-key-file=/etc/kubernetes/pki/sa.pub,
  --service-account-signing-key-file=/etc/kubernetes/pki/sa.key and
  --service-account-private-key-file=/etc/kubernetes/pki/sa.key.
"""
from __future__ import annotations

import copy
import re

import yaml

from .config import ConfigError

V1BETA3 = "kubeadm.k8s.io/v1beta3"
V1BETA4 = "kubeadm.k8s.io/v1beta4"
EXTRA_ARG_PATHS = (("apiServer", "extraArgs"), ("controllerManager", "extraArgs"), ("scheduler", "extraArgs"),
                   ("etcd", "local", "extraArgs"), ("nodeRegistration", "kubeletExtraArgs"))


def image_version(image: str) -> tuple[int, int, int]:
    m = re.search(r":v(\d+)\.(\d+)\.(\d+)", image or "")
    if not m:
        raise ConfigError(f"cannot tell the Kubernetes version of node image {image!r} (expected kindest/node:vX.Y.Z)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def kubeadm_api_version(image: str) -> str:
    return V1BETA4 if image_version(image) >= (1, 36, 0) else V1BETA3


def _args(api_version: str, mapping: dict) -> dict | list:
    if api_version == V1BETA4:
        return [{"name": k, "value": v} for k, v in mapping.items()]
    return dict(mapping)


def default_documents(api_version: str, cluster_name: str, k8s_version: str, runtime_config: str = "") -> list[dict]:
    """The documents kind renders (only what the stand-in uses; same shape and versions as kind)."""
    return [
        {"apiVersion": api_version, "kind": "ClusterConfiguration", "metadata": {"name": "config"},
         "kubernetesVersion": k8s_version, "clusterName": cluster_name,
         "controlPlaneEndpoint": f"{cluster_name}-control-plane:6443",
         "apiServer": {"certSANs": ["localhost", "127.0.0.1"],
                       "extraArgs": _args(api_version, {"runtime-config": runtime_config})},
         "controllerManager": {"extraArgs": _args(api_version, {"enable-hostpath-provisioner": "true"})},
         "scheduler": {"extraArgs": _args(api_version, {})},
         "networking": {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/16"}},
        {"apiVersion": api_version, "kind": "InitConfiguration", "metadata": {"name": "config"},
         "nodeRegistration": {"criSocket": "unix:///run/containerd/containerd.sock",
                              "kubeletExtraArgs": _args(api_version, {"node-ip": "127.0.0.1"})}},
        {"apiVersion": api_version, "kind": "JoinConfiguration", "metadata": {"name": "config"},
         "nodeRegistration": {"criSocket": "unix:///run/containerd/containerd.sock",
                              "kubeletExtraArgs": _args(api_version, {"node-ip": "127.0.0.1"})}},
        {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "metadata": {"name": "config"}},
        {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
         "metadata": {"name": "config"}},
    ]


def _merge(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _get_path(doc: dict, path: tuple):
    cur = doc
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _set_path(doc: dict, path: tuple, value) -> None:
    cur = doc
    for part in path[:-1]:
        cur = cur.setdefault(part, {})
    cur[path[-1]] = value


def _translate_unversioned(patch: dict) -> dict:
    """kind 4173: an unversioned patch's map-form extraArgs become the v1beta4 list form."""
    patch = copy.deepcopy(patch)
    for path in EXTRA_ARG_PATHS:
        value = _get_path(patch, path)
        if isinstance(value, dict):
            _set_path(patch, path, [{"name": k, "value": str(v)} for k, v in value.items()])
    return patch


def _apply_v1beta4(doc: dict, patch: dict) -> dict:
    """Merge patch, then append-merge the extraArgs lists and certSANs (kind 4173)."""
    appended = {}
    for path in EXTRA_ARG_PATHS + (("apiServer", "certSANs"),):
        before, extra = _get_path(doc, path), _get_path(patch, path)
        if isinstance(before, list) and isinstance(extra, list):
            appended[path] = before + [e for e in extra if e not in before]
    merged = _merge(doc, patch)
    for path, value in appended.items():
        _set_path(merged, path, value)
    return merged


def apply_patches(documents: list[dict], patches: list[str]) -> tuple[list[dict], list[str]]:
    """Apply kind's kubeadmConfigPatches; returns the documents and notes on ignored patches."""
    docs = copy.deepcopy(documents)
    notes = []
    for index, text in enumerate(patches):
        try:
            patch_docs = [p for p in yaml.safe_load_all(text) if p is not None]
        except yaml.YAMLError as exc:
            raise ConfigError(f"failed to parse kubeadmConfigPatches[{index}]: {exc}") from exc
        for patch in patch_docs:
            if not isinstance(patch, dict) or "kind" not in patch:
                raise ConfigError(f"kubeadmConfigPatches[{index}] must be a YAML object with a kind")
            version = patch.get("apiVersion")
            matched = False
            for i, doc in enumerate(docs):
                if doc.get("kind") != patch["kind"]:
                    continue
                if version and version != doc.get("apiVersion"):
                    continue
                matched = True
                body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
                if doc["apiVersion"] == V1BETA4:
                    if not version:
                        body = _translate_unversioned(body)
                    docs[i] = _apply_v1beta4(doc, body)
                else:
                    docs[i] = _merge(doc, body)
            if not matched:
                # kind says nothing about it either: the patch simply has no effect
                notes.append(f"kubeadmConfigPatches[{index}] ({version or 'unversioned'} {patch['kind']}) matched no "
                             "document and was ignored")
    return docs, notes


def extra_args(doc: dict, component: str) -> list[tuple[str, str]]:
    """(name, value) pairs of a component's extraArgs, in order; repeated names stay repeated."""
    value = (doc.get(component) or {}).get("extraArgs")
    if isinstance(value, dict):
        return [(str(k), "" if v is None else str(v)) for k, v in value.items()]
    if isinstance(value, list):
        out = []
        for item in value:
            if not isinstance(item, dict) or "name" not in item:
                raise ConfigError(f"{component}.extraArgs items must be {{name, value}} objects (kubeadm v1beta4)")
            out.append((str(item["name"]), "" if item.get("value") is None else str(item["value"])))
        return out
    if value is None:
        return []
    raise ConfigError(f"{component}.extraArgs must be a map (v1beta3) or a list of {{name, value}} (v1beta4)")


def merge_flags(defaults: list[tuple[str, str]], extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """kubeadm: extra args replace every default argument of the same name; others are kept."""
    names = {n for n, _ in extra}
    return [(n, v) for n, v in defaults if n not in names] + list(extra)


def cluster_configuration(docs: list[dict]) -> dict:
    for doc in docs:
        if doc.get("kind") == "ClusterConfiguration":
            return doc
    raise ConfigError("no ClusterConfiguration document")
