"""The kind stand-in's config and kubeadm patch handling (no processes started).

Sources: kind pkg/apis/config/v1alpha4 (strict decoding), kind PR 4173 (kubeadm v1beta4 from
Kubernetes 1.36.0, versioned patches only target their apiVersion, unversioned map-form extraArgs
translated, append-merge of extraArgs lists), kind issue 3847.
"""
from __future__ import annotations

import pytest

from sandbox.kind import config, kubeadm
from sandbox.kind.cluster import host_path, render_flags

MAP_PATCH = """
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
apiServer:
  extraArgs:
    service-account-issuer: https://issuer.example/
controllerManager:
  extraArgs:
    service-account-private-key-file: /etc/kubernetes/pki/sa.key
"""
LIST_PATCH = """
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
apiServer:
  extraArgs:
  - name: service-account-issuer
    value: https://issuer.example/
"""
UNVERSIONED = """
kind: ClusterConfiguration
apiServer:
  extraArgs:
    service-account-issuer: https://issuer.example/
"""


def cluster_with(patches, image):
    body = "\n".join("  - |\n" + "\n".join("    " + line for line in p.strip().splitlines()) for p in patches)
    return config.load(f"kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
                       f"  image: {image}\n  kubeadmConfigPatches:\n{body}\n")


def issuer_args(cluster):
    node = cluster.nodes[0]
    version = kubeadm.kubeadm_api_version(node.image)
    docs, notes = kubeadm.apply_patches(kubeadm.default_documents(version, "kind", "v1.35.0"),
                                        node.kubeadm_config_patches)
    args = kubeadm.extra_args(kubeadm.cluster_configuration(docs), "apiServer")
    return [v for n, v in args if n == "service-account-issuer"], notes


@pytest.mark.parametrize("image,expected", [("kindest/node:v1.35.4", kubeadm.V1BETA3),
                                            ("kindest/node:v1.36.0", kubeadm.V1BETA4),
                                            ("kindest/node:v1.37.1@sha256:abc", kubeadm.V1BETA4)])
def test_kubeadm_version_follows_the_node_image(image, expected):
    assert kubeadm.kubeadm_api_version(image) == expected


def test_map_form_v1beta3_patch_is_ignored_under_v1beta4():
    # the seed's patch: the apiserver would start without the issuer flag, as real kind does
    values, notes = issuer_args(cluster_with([MAP_PATCH], "kindest/node:v1.36.1"))
    assert values == []
    assert notes and "ignored" in notes[0]


def test_map_form_patch_applies_under_v1beta3():
    values, notes = issuer_args(cluster_with([MAP_PATCH], "kindest/node:v1.35.4"))
    assert values == ["https://issuer.example/"] and notes == []


@pytest.mark.parametrize("image", ["kindest/node:v1.35.4", "kindest/node:v1.36.1"])
def test_both_forms_work_on_both_sides_of_the_line(image):
    values, _ = issuer_args(cluster_with([MAP_PATCH, LIST_PATCH], image))
    assert values == ["https://issuer.example/"]


def test_unversioned_map_patch_is_translated_for_v1beta4():
    values, notes = issuer_args(cluster_with([UNVERSIONED], "kindest/node:v1.36.1"))
    assert values == ["https://issuer.example/"] and notes == []


def test_v1beta4_allows_repeated_flags_and_they_replace_defaults():
    patch = LIST_PATCH + "  - name: service-account-issuer\n    value: https://old.example/\n"
    node = cluster_with([patch], "kindest/node:v1.36.1").nodes[0]
    docs, _ = kubeadm.apply_patches(kubeadm.default_documents(kubeadm.V1BETA4, "kind", "v1.36.1"),
                                    node.kubeadm_config_patches)
    flags = kubeadm.merge_flags([("service-account-issuer", "https://kubernetes.default.svc.cluster.local"),
                                 ("secure-port", "6443")],
                                kubeadm.extra_args(kubeadm.cluster_configuration(docs), "apiServer"))
    assert [v for n, v in flags if n == "service-account-issuer"] == ["https://issuer.example/",
                                                                       "https://old.example/"]
    assert ("secure-port", "6443") in flags


def test_unknown_fields_are_an_error_as_in_kind():
    with pytest.raises(config.ConfigError, match='unknown field "extraMount"'):
        config.load("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
                    "  extraMount: []\n")
    with pytest.raises(config.ConfigError, match="apiVersion"):
        config.load("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n")
    with pytest.raises(config.ConfigError, match="invalid role"):
        config.load("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: master\n")


def test_extra_mounts_map_container_paths_to_host_paths(tmp_path):
    cluster = config.load("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
                          "  extraMounts:\n  - hostPath: /home/me/keys/sa.pub\n    containerPath: /etc/kubernetes/pki/sa.pub\n"
                          "  - hostPath: /home/me/keys\n    containerPath: /keys\n")
    mounts = cluster.nodes[0].extra_mounts
    assert host_path("/etc/kubernetes/pki/sa.pub", mounts, tmp_path) == "/home/me/keys/sa.pub"
    assert host_path("/etc/kubernetes/pki/ca.crt", mounts, tmp_path) == str(tmp_path / "ca.crt")
    assert host_path("/keys/sa.key", mounts, tmp_path) == "/home/me/keys/sa.key"
    assert render_flags([("service-account-key-file", "/keys/sa.pub"), ("secure-port", "6443")], mounts,
                        tmp_path) == ["--service-account-key-file=/home/me/keys/sa.pub", "--secure-port=6443"]


# ---- ports for the components -----------------------------------------------------------------------------
def test_component_ports_avoid_the_ephemeral_range_and_are_never_handed_out_twice(tmp_path, monkeypatch):
    """A port found by bind(0) comes from the kernel's ephemeral range, the same range outbound
    connections take their source port from: CI once saw the scheduler fail with "bind: address already
    in use" on such a port. Ports come from below that range and are reserved across processes and
across sandboxes of the same user (one reservation file per machine)."""
    from sandbox.kind import cluster as kind_cluster

    monkeypatch.setenv("ARCWI_SANDBOX_HOME", str(tmp_path / "one"))
    monkeypatch.setenv("ARCWI_KIND_PORTS_DIR", str(tmp_path / "ports"))
    low, high = kind_cluster._ephemeral_range()
    ports = [kind_cluster.free_port() for _ in range(100)]
    # a second sandbox on the same machine (another checkout, a CI clone) shares the reservations
    monkeypatch.setenv("ARCWI_SANDBOX_HOME", str(tmp_path / "two"))
    ports += [kind_cluster.free_port() for _ in range(100)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= p <= high for p in ports)
    assert all(kind_cluster.PORT_RANGE[0] <= p < kind_cluster.PORT_RANGE[1] for p in ports)
    reserved = {int(line.split()[0]) for line in (tmp_path / "ports" / "ports").read_text().splitlines()}
    assert set(ports) <= reserved
    # by default the reservations do not live in the sandbox's home
    monkeypatch.delenv("ARCWI_KIND_PORTS_DIR")
    default = kind_cluster._ports_dir()
    monkeypatch.setenv("ARCWI_SANDBOX_HOME", str(tmp_path / "one"))
    assert kind_cluster._ports_dir() == default and tmp_path not in default.parents
