"""kind's `kind.x-k8s.io/v1alpha4` Cluster config, parsed strictly as kind does.

Source: kind pkg/apis/config/v1alpha4/types.go (fields), pkg/internal/apis/config/encoding/load.go
(strict decoding: unknown fields are an error, "json: unknown field"), site docs
"Configuration". Only the fields kind knows are accepted; the stand-in uses the ones that matter
for a control plane without containers (nodes, roles, images, extraMounts, extraPortMappings,
kubeadmConfigPatches, networking.apiServerPort).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

API_VERSION = "kind.x-k8s.io/v1alpha4"


class ConfigError(Exception):
    """Kind's own wording where it has one."""


CLUSTER_FIELDS = {"kind", "apiVersion", "name", "nodes", "networking", "featureGates", "runtimeConfig",
                  "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902", "containerdConfigPatches",
                  "containerdConfigPatchesJSON6902"}
NODE_FIELDS = {"role", "image", "labels", "extraMounts", "extraPortMappings", "kubeadmConfigPatches",
               "kubeadmConfigPatchesJSON6902"}
NETWORKING_FIELDS = {"ipFamily", "apiServerPort", "apiServerAddress", "podSubnet", "serviceSubnet",
                     "disableDefaultCNI", "kubeProxyMode", "dnsSearch"}
MOUNT_FIELDS = {"containerPath", "hostPath", "readOnly", "selinuxRelabel", "propagation"}
PORT_FIELDS = {"containerPort", "hostPort", "listenAddress", "protocol"}
PATCH6902_FIELDS = {"group", "version", "kind", "patch"}
ROLES = ("control-plane", "worker")
DEFAULT_IMAGE = "kindest/node:v1.35.0"


@dataclass
class Mount:
    container_path: str
    host_path: str
    read_only: bool = False


@dataclass
class Node:
    role: str
    image: str
    labels: dict = field(default_factory=dict)
    extra_mounts: list = field(default_factory=list)
    extra_port_mappings: list = field(default_factory=list)
    kubeadm_config_patches: list = field(default_factory=list)


@dataclass
class Cluster:
    name: str
    nodes: list
    networking: dict
    kubeadm_config_patches: list
    feature_gates: dict
    runtime_config: dict


def _strict(obj: Any, allowed: set, where: str) -> dict:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ConfigError(f"error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {type(obj).__name__} "
                          f"into Go value of type {where}")
    for key in obj:
        if key not in allowed:
            raise ConfigError(f"error unmarshaling JSON: while decoding JSON: json: unknown field \"{key}\"")
    return obj


def _patches(value, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{where}.kubeadmConfigPatches must be a list of strings (YAML documents)")
    return value


def load(text: str, name: str | None = None, image: str | None = None) -> Cluster:
    """Parse a kind config (the empty string means kind's default: one control-plane node)."""
    try:
        docs = [d for d in yaml.safe_load_all(text)] if text.strip() else [None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"error converting YAML to JSON: {exc}") from exc
    if len(docs) != 1:
        raise ConfigError("expected exactly one YAML document in the config")
    raw = docs[0] or {"kind": "Cluster", "apiVersion": API_VERSION}
    raw = _strict(raw, CLUSTER_FIELDS, "v1alpha4.Cluster")
    if raw.get("kind") != "Cluster" or raw.get("apiVersion") != API_VERSION:
        raise ConfigError(f"unknown apiVersion/kind: {raw.get('apiVersion')}, Kind={raw.get('kind')} "
                          f"(expected {API_VERSION}, Kind=Cluster)")
    networking = dict(_strict(raw.get("networking"), NETWORKING_FIELDS, "v1alpha4.Networking"))
    nodes = []
    for i, n in enumerate(raw.get("nodes") or [{"role": "control-plane"}]):
        n = _strict(n, NODE_FIELDS, "v1alpha4.Node")
        role = n.get("role", "control-plane")
        if role not in ROLES:
            raise ConfigError(f"nodes[{i}]: invalid role \"{role}\"; must be one of control-plane, worker")
        mounts = []
        for m in n.get("extraMounts") or []:
            m = _strict(m, MOUNT_FIELDS, "v1alpha4.Mount")
            if not m.get("hostPath") or not m.get("containerPath"):
                raise ConfigError(f"nodes[{i}].extraMounts: hostPath and containerPath are required")
            mounts.append(Mount(m["containerPath"], m["hostPath"], bool(m.get("readOnly", False))))
        ports = []
        for p in n.get("extraPortMappings") or []:
            ports.append(_strict(p, PORT_FIELDS, "v1alpha4.PortMapping"))
        for p in n.get("kubeadmConfigPatchesJSON6902") or []:
            _strict(p, PATCH6902_FIELDS, "v1alpha4.PatchJSON6902")
        nodes.append(Node(role=role, image=image or n.get("image") or DEFAULT_IMAGE,
                          labels=dict(n.get("labels") or {}), extra_mounts=mounts, extra_port_mappings=ports,
                          kubeadm_config_patches=_patches(n.get("kubeadmConfigPatches"), f"nodes[{i}]")))
    if not any(n.role == "control-plane" for n in nodes):
        raise ConfigError("must have at least one control-plane node")
    for p in raw.get("kubeadmConfigPatchesJSON6902") or []:
        _strict(p, PATCH6902_FIELDS, "v1alpha4.PatchJSON6902")
    return Cluster(name=name or raw.get("name") or "kind", nodes=nodes, networking=networking,
                   kubeadm_config_patches=_patches(raw.get("kubeadmConfigPatches"), "cluster"),
                   feature_gates=dict(raw.get("featureGates") or {}),
                   runtime_config=dict(raw.get("runtimeConfig") or {}))
