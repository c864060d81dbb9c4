#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: helm_release_recover
short_description: Recover a Helm release that an interrupted helm left pending
version_added: 0.1.0
description:
  - A helm run that is killed (a crashed play, a cancelled CI job) leaves the release's newest revision
    C(pending-install), C(pending-upgrade) or C(pending-rollback). Helm then refuses every later upgrade
    (C(another operation (install/upgrade/rollback\) is in progress)) and C(helm list) hides the release,
    so M(kubernetes.core.helm) would try a fresh install of a name still in use.
  - This module reads the release with C(helm status) and takes Helm's own way out - a release whose first
    install did not finish is uninstalled; one whose upgrade or rollback did not finish is rolled back to its
    previous revision.
  - A release that is not pending, or does not exist, is left alone (C(changed=false)).
  - Run it before M(kubernetes.core.helm). The workload_identity role does; M(arcwi.workload_identity.arc_connect)
    recovers its own C(azure-arc) release with the same code.
author:
  - arcwi maintainers (!UNKNOWN)
extends_documentation_fragment:
  - arcwi.workload_identity.attributes
attributes:
  check_mode:
    support: full
    details: Reads the release and predicts the uninstall or rollback without running it.
  diff_mode:
    support: full
    details: The release's status before and after.
  idempotent:
    support: full
options:
  name:
    description: The release's name.
    type: str
    required: true
  namespace:
    description: The release's namespace.
    type: str
    required: true
  binary_path:
    description: The helm binary.
    type: path
    default: helm
  kubeconfig:
    description: The kubeconfig helm uses; helm's default (C(KUBECONFIG), C(~/.kube/config)) when not set.
    type: path
  context:
    description: The kubeconfig context; its current context when not set.
    type: str
  timeout:
    description: Seconds the uninstall or rollback may take (C(helm --wait --timeout)).
    type: int
    default: 300
  recover:
    description:
      - V(false) fails on a pending release instead, naming the helm command that would recover it (for an
        operator who wants to look first, or when another helm may still be running).
    type: bool
    default: true
requirements:
  - helm 3
notes:
  - A pending release can also mean a helm that is still running. Do not run this module while another
    helm works on the same release.
seealso:
  - name: helm pkg/action/upgrade.go (the pending check)
    description: Why helm refuses to upgrade a pending release.
    link: https://github.com/helm/helm/blob/main/pkg/action/upgrade.go
"""

EXAMPLES = r"""
- name: Recover the webhook release if a killed helm left it pending
  arcwi.workload_identity.helm_release_recover:
    name: workload-identity-webhook
    namespace: azure-workload-identity-system
    kubeconfig: ~/.kube/config

- name: Fail instead, naming the helm command
  arcwi.workload_identity.helm_release_recover:
    name: workload-identity-webhook
    namespace: azure-workload-identity-system
    recover: false
"""

RETURN = r"""
status:
  description: The release's status before the task (V(null) when there is no release).
  returned: always
  type: str
  sample: pending-upgrade
revision:
  description: The release's newest revision before the task (V(null) when there is no release).
  returned: always
  type: int
  sample: 3
action:
  description: What recovered the release (predicted in check mode).
  returned: always
  type: str
  choices: [none, rollback, uninstall]
  sample: rollback
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.arcwi.workload_identity.plugins.module_utils._helm import Helm, HelmError, recovery


def run_module(module) -> dict:
    p = module.params
    helm = Helm(module.run_command, p["binary_path"], p["kubeconfig"], p["context"])
    release = helm.release(p["name"], p["namespace"])
    status = release["status"] if release else None
    action = recovery(status)
    result = {"changed": action is not None, "status": status, "revision": release["revision"] if release else None,
              "action": action or "none"}
    if action and not p["recover"]:
        raise HelmError(f"Helm release {p['name']} in {p['namespace']} is {status} (revision {result['revision']}): "
                        f"a helm run was interrupted, or one is still running. Allow recovery to {action} it (recover: "
                        "true; in the workload_identity role, workload_identity_webhook_recover_pending: true), or "
                        f"run helm {action} {p['name']} -n {p['namespace']} yourself.")
    if action and not module.check_mode:
        if action == "uninstall":
            helm.uninstall(p["name"], p["namespace"], p["timeout"])
        else:
            helm.rollback(p["name"], p["namespace"], p["timeout"])
    if module._diff and action:  # pylint: disable=protected-access
        after = "absent" if action == "uninstall" else "deployed (the previous revision)"
        result["diff"] = {"before": f"{p['name']}: {status}\n", "after": f"{p['name']}: {after}\n"}
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            binary_path=dict(type="path", default="helm"),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
            timeout=dict(type="int", default=300),
            recover=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    if module.params["timeout"] < 1:
        module.fail_json(msg="timeout must be 1 second or more")
    try:
        module.exit_json(**run_module(module))
    except HelmError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
