"""Leave a Helm release as a helm killed in the middle leaves it (for tests of the recovery).

Helm records the new revision with a pending status before it applies anything and marks it deployed
at the end (helm pkg/action/upgrade.go, install.go), so a killed upgrade leaves revision N+1
`pending-upgrade` next to the deployed N, and a killed first install leaves revision 1
`pending-install`. The record is written as helm's Secrets driver writes it
(pkg/storage/driver/secrets.go and util.go: Secret `sh.helm.release.v1.NAME.vN`, labels
name/owner/status/version, type helm.sh/release.v1, data.release = base64(gzip(JSON))).

    python -m sandbox.helm_pending --kubectl K --kubeconfig F [--context C] -n NAMESPACE RELEASE STATUS
"""
from __future__ import annotations

import argparse
import base64
import gzip
import json
import subprocess
import sys

STATUSES = ("pending-install", "pending-upgrade", "pending-rollback")


def _kubectl(kubectl: str, kubeconfig: str, context: str | None, *args: str, stdin: str | None = None) -> str:
    argv = [kubectl, "--kubeconfig", kubeconfig] + (["--context", context] if context else []) + list(args)
    return subprocess.run(argv, input=stdin, text=True, capture_output=True, check=True, timeout=60).stdout


def statuses(kubectl: str, kubeconfig: str, namespace: str, release: str, context: str | None = None) -> list[str]:
    """Status of each stored revision of the release, oldest first."""
    items = json.loads(_kubectl(kubectl, kubeconfig, context, "-n", namespace, "get", "secrets", "-l",
                                f"owner=helm,name={release}", "-o", "json"))["items"]
    items.sort(key=lambda item: int(item["metadata"]["labels"]["version"]))
    return [item["metadata"]["labels"]["status"] for item in items]


def leave_pending(kubectl: str, kubeconfig: str, namespace: str, release: str, status: str,
                  context: str | None = None) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    items = json.loads(_kubectl(kubectl, kubeconfig, context, "-n", namespace, "get", "secrets", "-l",
                                f"owner=helm,name={release}", "-o", "json"))["items"]
    if not items:
        raise ValueError(f"release {release} has no revision in namespace {namespace}")
    latest = max(items, key=lambda item: int(item["metadata"]["labels"]["version"]))
    record = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(latest["data"]["release"]))))
    if status == "pending-install":
        version, description = 1, "Initial install underway"
        _kubectl(kubectl, kubeconfig, context, "-n", namespace, "delete", "secrets", "-l", f"owner=helm,name={release}")
    else:
        version = int(latest["metadata"]["labels"]["version"]) + 1
        description = "Preparing upgrade" if status == "pending-upgrade" else "Rollback in progress"
    record["version"] = version
    record["info"]["status"], record["info"]["description"] = status, description
    encoded = base64.b64encode(gzip.compress(json.dumps(record).encode())).decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
              "metadata": {"name": f"sh.helm.release.v1.{release}.v{version}", "namespace": namespace,
                           "labels": {"name": release, "owner": "helm", "status": status, "version": str(version)}},
              "data": {"release": base64.b64encode(encoded.encode()).decode()}}
    _kubectl(kubectl, kubeconfig, context, "create", "-f", "-", stdin=json.dumps(secret))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.helm_pending", description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--context")
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("release")
    parser.add_argument("status", choices=STATUSES)
    args = parser.parse_args(argv)
    leave_pending(args.kubectl, args.kubeconfig, args.namespace, args.release, args.status, args.context)
    print(" ".join(statuses(args.kubectl, args.kubeconfig, args.namespace, args.release, args.context)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
