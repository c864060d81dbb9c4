"""Where pods reach the sandbox: the gateway of the sandbox's own Docker network `kind`.

kind puts every node container on the Docker network named `kind` (creating it when absent, reusing it
when present). Its IPv4 gateway is an address of this machine on that network's bridge: a node, and a pod
masqueraded behind its node, reach the sandbox there, and nothing outside the machine is ever addressed
(the sandbox's daemon has no NAT and no forwarding to the outside). `python -m sandbox up` makes sure the
network exists (created as kind creates it, IPv4 only), records its gateway in the sandbox's home
(pod_network.json) and the emulators listen there too (ARM, Entra and the admin API, with the gateway
in the server certificate's subjectAltName). `python -m sandbox env` prints the pod-side URLs
(ARCWI_SANDBOX_POD_*).
"""
from __future__ import annotations

import ipaddress
import json
import subprocess

from . import config

NETWORK = "kind"  # kind's network (sigs.k8s.io/kind pkg/cluster/internal/providers/docker/network.go)
RECORD = "pod_network.json"
# the endpoints pods use: the token endpoint and ARM for the workload, admin for the Arc agents' reports
POD_ENDPOINTS = ("arm", "entra", "admin")


class PodNetworkError(Exception):
    pass


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


def gateway_of(network: str = NETWORK) -> str | None:
    """The IPv4 gateway of a Docker network, or None when it does not exist."""
    proc = _docker("network", "inspect", network, "--format", "{{json .IPAM.Config}}")
    if proc.returncode != 0:
        return None
    for entry in json.loads(proc.stdout or "[]") or []:
        gateway = entry.get("Gateway", "")
        try:
            if gateway and ipaddress.ip_address(gateway).version == 4:
                return gateway
        except ValueError:
            continue
    return None


def ensure(network: str = NETWORK) -> str:
    """Create the network if absent (bridge, as kind creates it), record and return its IPv4 gateway."""
    gateway = gateway_of(network)
    if gateway is None:
        proc = _docker("network", "create", "--driver", "bridge",
                       "--opt", "com.docker.network.bridge.enable_ip_masquerade=true", network)
        if proc.returncode != 0 and "already exists" not in proc.stderr:
            raise PodNetworkError(f"docker network create {network} failed: {proc.stderr.strip()}")
        gateway = gateway_of(network)
    if gateway is None:
        raise PodNetworkError(f"the Docker network {network} has no IPv4 gateway")
    path = config.home() / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"network": network, "gateway": gateway}) + "\n")
    return gateway


def recorded() -> str | None:
    """The gateway `sandbox up` recorded, or None (no Docker network: the sandbox serves loopback only)."""
    try:
        return json.loads((config.home() / RECORD).read_text())["gateway"]
    except (OSError, ValueError, KeyError):
        return None


def local(address: str) -> bool:
    """Whether the address is one of this machine's (a listener can bind it)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


def url(name: str, path: str = "/") -> str | None:
    gateway = recorded()
    return f"https://{gateway}:{config.port(name)}{path}" if gateway else None

