# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private module_utils of arcwi.workload_identity: private, may change without notice.
# Not for use outside this collection.
"""The helm CLI, as arc_connect and helm_release_recover run it, and what a killed helm leaves behind.

A helm run that is killed (a crashed play, a cancelled CI job) leaves its release's newest revision
pending-install, pending-upgrade or pending-rollback. Helm then refuses every later upgrade ("another
operation (install/upgrade/rollback) is in progress", helm pkg/action/upgrade.go) and ``helm list``
hides the release. Helm's own ways out: uninstall a release that never finished its first install, roll
back one whose upgrade or rollback did not finish (rollback has no pending check: pkg/action/rollback.go).
"""

from __future__ import annotations

import json

from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import ArcwiError


class HelmError(ArcwiError):
    """helm failed, or printed what cannot be read."""


def recovery(status: str | None) -> str | None:
    """What recovers a release in STATUS: 'uninstall', 'rollback', or None when nothing is pending."""
    if status == "pending-install":
        return "uninstall"
    if status in ("pending-upgrade", "pending-rollback"):
        return "rollback"
    return None


class Helm:
    """helm with one kubeconfig and context; ``run_command`` is AnsibleModule.run_command."""

    def __init__(self, run_command, binary: str, kubeconfig: str | None = None, context: str | None = None):
        self.run_command, self.binary = run_command, binary
        self.scope = (["--kubeconfig", kubeconfig] if kubeconfig else []) + (["--kube-context", context] if context else [])

    def run(self, *args, check: bool = True):
        rc, out, err = self.run_command([self.binary, *args, *self.scope])
        if check and rc != 0:
            raise HelmError(f"helm {args[0]} failed (rc {rc}): {(err or out).strip()[-2000:]}")
        return rc, out, err

    def release(self, name: str, namespace: str) -> dict | None:
        """``helm status NAME -o json``: {status, revision}, None when there is no release."""
        rc, out, err = self.run("status", name, "--namespace", namespace, "--output", "json", check=False)
        if rc != 0:
            if "not found" in err:
                return None
            raise HelmError(f"helm status {name} failed (rc {rc}): {(err or out).strip()[-2000:]}")
        try:
            data = json.loads(out)
            status = data["info"]["status"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HelmError(f"helm status {name} printed no release status: {out.strip()[-500:]}") from exc
        return {"status": status, "revision": data.get("version")}

    def rollback(self, name: str, namespace: str, timeout: int) -> None:
        self.run("rollback", name, "--namespace", namespace, "--wait", "--timeout", f"{timeout}s")

    def uninstall(self, name: str, namespace: str, timeout: int) -> None:
        self.run("uninstall", name, "--namespace", namespace, "--wait", "--timeout", f"{timeout}s")
