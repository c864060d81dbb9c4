#!/usr/bin/env python3
"""Real kind on this machine: how long a cluster takes and how much memory its node holds.

    .venv/bin/python bench/real_kind.py [--version v1.37.2] [--runs 1]

For each run: `kind create cluster` with the sandbox's node image (preloaded, nothing pulled), then the
upstream webhook chart (two pods) and one pod of the demo workload; prints the wall time of each step and
the node container's memory (`docker stats`: its cgroup's usage) after each, then deletes the cluster.
Needs `make setup` (kind, helm, the node images) and the sandbox's Docker (started if needed).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import docker_engine  # noqa: E402
from sandbox.nodeimage import build as nodeimage  # noqa: E402


def paths(tool: str) -> dict:
    out = subprocess.run([sys.executable, str(REPO / "sandbox" / "go" / "build.py"), "paths", "--json", tool],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def memory(node: str) -> str:
    return subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", node],
                          capture_output=True, text=True, check=True).stdout.strip().split(" / ")[0]


def timed(argv: list[str], **kwargs) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)
    return time.monotonic() - started


def one_run(version: str, work: Path) -> dict:
    nv = nodeimage.VERSIONS[version]
    kind = paths("kind")["kind"]
    kubectl = paths(nv.kubernetes)["kubectl"]
    helm = paths("helm")["helm"]
    name = "bench" + uuid.uuid4().hex[:6]
    kubeconfig = work / f"{name}.kubeconfig"
    config = work / f"{name}.yaml"
    patches = nodeimage.patches_for(nv.image)
    config.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
                      f"  image: {nv.image}\nkubeadmConfigPatches:\n"
                      + "".join(f"- |\n  {p}\n" for p in patches))
    node = f"{name}-control-plane"
    result = {"version": version}
    try:
        result["create_s"] = timed([kind, "create", "cluster", "--name", name, "--config", str(config),
                                    "--kubeconfig", str(kubeconfig), "--wait", "120s"], timeout=600)
        result["idle"] = memory(node)
        chart = subprocess.run([sys.executable, "-m", "sandbox.nodeimage", "chart"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.split()[-1]
        result["webhook_s"] = timed([helm, "install", "workload-identity-webhook", chart, "--kubeconfig",
                                     str(kubeconfig), "--namespace", "azure-workload-identity-system",
                                     "--create-namespace", "--set", f"azureTenantID={uuid.uuid4()}", "--wait",
                                     "--timeout", "180s"], timeout=300)
        result["with_webhook"] = memory(node)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "workload", "namespace": "default"},
               "spec": {"containers": [{"name": "proof", "image": f"{nodeimage.PROOF_IMAGE}:v1.0.0",
                                        "imagePullPolicy": "Never", "env": [{"name": "ARCWI_INTERVAL", "value": "0"}]}]}}
        subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "apply", "-f", "-"], input=json.dumps(pod),
                       capture_output=True, text=True, check=True)
        result["workload_s"] = timed([kubectl, "--kubeconfig", str(kubeconfig), "wait", "--for=condition=Ready",
                                      "pod/workload", "--timeout=120s"], timeout=180)
        result["with_workload"] = memory(node)
    finally:
        result["delete_s"] = timed([kind, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)],
                                   timeout=300)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version", default=nodeimage.DEFAULT_VERSION, choices=list(nodeimage.VERSIONS))
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    host = docker_engine.ensure_engine().host
    if host:
        os.environ["DOCKER_HOST"] = host
    work = REPO / ".cache" / "bench-real-kind"
    work.mkdir(parents=True, exist_ok=True)
    print(f"{'run':>3} {'version':8} {'create':>7} {'idle':>10} {'webhook':>8} {'+webhook':>10} {'workload':>9} "
          f"{'+workload':>10} {'delete':>7}")
    for run in range(1, args.runs + 1):
        r = one_run(args.version, work)
        print(f"{run:>3} {r['version']:8} {r['create_s']:6.1f}s {r['idle']:>10} {r['webhook_s']:7.1f}s "
              f"{r['with_webhook']:>10} {r['workload_s']:8.1f}s {r['with_workload']:>10} {r['delete_s']:6.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
