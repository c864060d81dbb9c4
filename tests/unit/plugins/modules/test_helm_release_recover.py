# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""helm_release_recover driven as Ansible runs it, against a fake helm that keeps a release's status in a
file and logs every call (argv), so each test sees exactly which helm commands ran.

Helm's behaviour stood in for: `helm status NAME -o json` prints the release with info.status and version,
or fails with "Error: release: not found"; rollback and uninstall of a pending release succeed (rollback has
no pending check, helm pkg/action/rollback.go)."""

from __future__ import annotations

import json
import sys

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.arcwi.workload_identity.plugins.modules import helm_release_recover

FAKE_HELM = r'''#!PYTHON
import json, sys, pathlib
here = pathlib.Path(__file__).parent
(here / "calls.log").open("a").write(json.dumps(sys.argv[1:]) + "\n")
state = here / "release.json"
if sys.argv[1] == "status":
    if not state.exists():
        sys.stderr.write("Error: release: not found\n"); sys.exit(1)
    release = json.loads(state.read_text())
    if release.get("broken"):
        sys.stderr.write("Error: Kubernetes cluster unreachable\n"); sys.exit(1)
    print(json.dumps({"name": sys.argv[2], "info": {"status": release["status"]}, "version": release["version"],
                      "chart": {"metadata": {"version": "1.6.0", "appVersion": "v1.6.0"}}}))
elif sys.argv[1] == "rollback":
    release = json.loads(state.read_text())
    state.write_text(json.dumps({"status": "deployed", "version": release["version"] + 1}))
elif sys.argv[1] == "uninstall":
    state.unlink()
'''


@pytest.fixture
def helm(tmp_path):
    path = tmp_path / "helm"
    path.write_text(FAKE_HELM.replace("PYTHON", sys.executable))
    path.chmod(0o755)
    return path


def calls(helm) -> list[list[str]]:
    log = helm.parent / "calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def leave(helm, status: str, version: int = 2, **more) -> None:
    (helm.parent / "release.json").write_text(json.dumps({"status": status, "version": version, **more}))


@pytest.fixture
def run(capsys, helm):
    def runner(check: bool = False, diff: bool = False, **args):
        module_args = dict({"name": "wi", "namespace": "wi-system", "binary_path": str(helm),
                            "kubeconfig": "/k/config", "context": "kind-a"}, **args,
                           _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(module_args), pytest.raises(SystemExit) as exited:
            helm_release_recover.main()
        return exited.value.code, json.loads(capsys.readouterr().out)

    return runner


SCOPE = ["--kubeconfig", "/k/config", "--kube-context", "kind-a"]


def test_no_release_and_a_deployed_one_are_left_alone(run, helm):
    rc, result = run()
    assert rc == 0 and result["changed"] is False
    assert (result["status"], result["revision"], result["action"]) == (None, None, "none")
    leave(helm, "deployed", 3)
    rc, result = run()
    assert rc == 0 and result["changed"] is False and result["status"] == "deployed" and result["revision"] == 3
    assert [c[0] for c in calls(helm)] == ["status", "status"]


def test_pending_upgrade_is_rolled_back_predicted_first_and_then_left_alone(run, helm):
    leave(helm, "pending-upgrade", 4)
    rc, predicted = run(check=True, diff=True)
    assert rc == 0 and predicted["changed"] is True and predicted["action"] == "rollback"
    assert predicted["diff"]["before"] == "wi: pending-upgrade\n"
    assert [c[0] for c in calls(helm)] == ["status"]  # check mode runs nothing else
    rc, done = run()
    assert rc == 0 and done["changed"] is True and done["action"] == "rollback" and done["status"] == "pending-upgrade"
    assert calls(helm)[-1] == ["rollback", "wi", "--namespace", "wi-system", "--wait", "--timeout", "300s", *SCOPE]
    rc, again = run()
    assert rc == 0 and again["changed"] is False and again["status"] == "deployed" and again["revision"] == 5


def test_pending_rollback_is_rolled_back(run, helm):
    leave(helm, "pending-rollback")
    rc, result = run(timeout=90)
    assert rc == 0 and result["action"] == "rollback"
    assert calls(helm)[-1][:7] == ["rollback", "wi", "--namespace", "wi-system", "--wait", "--timeout", "90s"]


def test_pending_install_is_uninstalled(run, helm):
    leave(helm, "pending-install", 1)
    rc, result = run()
    assert rc == 0 and result["changed"] is True and result["action"] == "uninstall"
    assert calls(helm)[-1] == ["uninstall", "wi", "--namespace", "wi-system", "--wait", "--timeout", "300s", *SCOPE]
    rc, again = run()
    assert rc == 0 and again["changed"] is False and again["status"] is None


def test_recover_false_fails_naming_the_helm_command_and_runs_nothing(run, helm):
    leave(helm, "pending-install", 1)
    rc, result = run(recover=False)
    assert rc == 1 and result["failed"]
    assert "is pending-install (revision 1)" in result["msg"]
    assert "helm uninstall wi -n wi-system" in result["msg"]
    assert "workload_identity_webhook_recover_pending" in result["msg"]
    assert [c[0] for c in calls(helm)] == ["status"]


def test_a_helm_that_cannot_read_the_release_fails_with_its_message(run, helm):
    leave(helm, "deployed", broken=True)
    rc, result = run()
    assert rc == 1 and "helm status wi failed (rc 1): Error: Kubernetes cluster unreachable" in result["msg"]


def test_without_kubeconfig_or_context_helm_uses_its_defaults(run, helm):
    leave(helm, "pending-upgrade")
    rc, _result = run(kubeconfig=None, context=None)
    assert rc == 0
    assert calls(helm)[0] == ["status", "wi", "--namespace", "wi-system", "--output", "json"]


def test_timeout_below_one_second_is_refused(run, helm):
    rc, result = run(timeout=0)
    assert rc == 1 and result["msg"] == "timeout must be 1 second or more"
    assert calls(helm) == []
