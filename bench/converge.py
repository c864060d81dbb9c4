#!/usr/bin/env python3
"""site.yml against the sandbox: the first converge and the no-op re-run.

Prints figures; asserts nothing. With the sandbox up and the binaries built (`make bench`):
    .venv/bin/python bench/converge.py [--arc] [--keep]

Both runs use names of their own (cluster, identity, issuer), so nothing a previous run made is
reused. For each run: wall time, ARM reads and writes (the sandbox's request log, which counts every
client: run it alone), module invocations (tasks that ran a module, loop items counted one by one;
set_fact, assert, debug, include and other controller-only actions are not), and the peak resident
memory of the controller (the largest process of the ansible-playbook tree, from getrusage). The cluster
is deleted afterwards unless --keep.
"""
from __future__ import annotations

import argparse
import json
import re
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.tests.conftest import Sandbox  # noqa: E402

WRITES = ("PUT", "PATCH", "POST", "DELETE")

CALLBACK = '''\
"""Written by bench/converge.py: counts module invocations and the play's stats."""
import json
import os

from ansible.plugins.callback import CallbackBase

CONTROLLER_ONLY = {"set_fact", "assert", "debug", "fail", "meta", "include_tasks", "include_role", "import_tasks",
                   "import_role", "include_vars", "validate_argument_spec", "pause", "add_host", "group_by"}


def short(action):
    return (action or "").rsplit(".", 1)[-1]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "arcwi_bench_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.modules = {}

    def _count(self, result, item=False):
        action = result._task.action
        if short(action) in CONTROLLER_ONLY:
            return
        if not item and result._result.get("results") is not None:
            return  # a loop: its items were counted
        self.modules[action] = self.modules.get(action, 0) + 1

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_runner_item_on_ok(self, result):
        self._count(result, item=True)

    def v2_runner_item_on_failed(self, result):
        self._count(result, item=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed)
        with open(os.environ["ARCWI_BENCH_COUNT_FILE"], "w") as stream:
            json.dump({"modules": self.modules, "stats": {h: stats.summarize(h) for h in hosts}}, stream)
'''


# runs the playbook as its child and writes the peak RSS (KiB) of its process tree (those waited for)
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(rc)\n")


def run_site(sandbox: Sandbox, variables: dict, workdir: Path, suffix: str) -> dict:
    count_file = workdir / f"count-{uuid.uuid4().hex[:6]}.json"
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_PLUGINS=str(workdir), ANSIBLE_CALLBACKS_ENABLED="arcwi_bench_count",
               ARCWI_BENCH_COUNT_FILE=str(count_file))
    binary = Path(sys.executable).with_name("ansible-playbook")
    rss_file = workdir / f"rss-{uuid.uuid4().hex[:6]}"
    mark = sandbox.mark()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, str(rss_file), str(binary), "-i", str(REPO / "inventories" / "sandbox"), "-e", json.dumps(variables),
                           str(REPO / "playbooks" / "site.yml")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800)
    wall = time.monotonic() - started
    # the request log counts every client: keep this run's resources and subscription-level calls
    logged = sandbox.requests_since(mark)  # one read of the log, both services
    rows = [r for r in logged if r["service"] == "arm"
            and (suffix in r["path"] or "/resourcegroups/" not in r["path"].lower())]
    # the blob data plane (the sandbox's proxy in front of Azurite): this run's storage account only
    accounts = {m.group(1) for r in rows for m in [re.search(r"/storageAccounts/([a-z0-9]+)", r["path"], re.I)] if m}
    blob = [r for r in logged if r["service"] == "blob" and r["path"].split("/")[1:2] and
            r["path"].split("/")[1] in accounts]
    counted = json.loads(count_file.read_text()) if count_file.exists() else {"modules": {}, "stats": {}}
    return {
        "rc": proc.returncode,
        "wall": wall,
        "reads": sum(1 for r in rows if r["method"] not in WRITES),
        "writes": sum(1 for r in rows if r["method"] in WRITES),
        "blob_reads": sum(1 for r in blob if r["method"] not in WRITES),
        "blob_writes": sum(1 for r in blob if r["method"] in WRITES),
        "modules": sum(counted["modules"].values()),
        "by_module": counted["modules"],
        "changed": sum(s.get("changed", 0) for s in counted["stats"].values()),
        "peak_mib": int(rss_file.read_text()) / 1024 if rss_file.exists() else None,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arc", action="store_true", help="connect the cluster to Azure Arc (arc_enabled)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster")
    args = parser.parse_args()
    sandbox = Sandbox()
    suffix = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="arcwi-converge-") as tmp:
        workdir = Path(tmp)
        (workdir / "arcwi_bench_count.py").write_text(CALLBACK)
        variables = {"kind_cluster_name": f"bench-{suffix}", "identity_resource_group": f"rg-bench-{suffix}",
                     "identity_name": f"id-bench-{suffix}", "oidc_issuer_name": f"bench{suffix}",
                     "kind_cluster_kubeconfig": str(workdir / "kubeconfig"), "arc_enabled": args.arc}
        try:
            runs = []
            for label in ("first converge", "no-op re-run"):
                figures = run_site(sandbox, variables, workdir, suffix)
                runs.append((label, figures))
                if figures["rc"]:
                    print(figures["stdout"][-4000:], figures["stderr"][-2000:], sep="\n", file=sys.stderr)
                    return 1
        finally:
            if not args.keep:
                subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "delete", "cluster", "--name",
                                variables["kind_cluster_name"], "--kubeconfig", str(workdir / "kubeconfig")],
                               capture_output=True, timeout=300, check=False)
    print(f"site.yml against the sandbox (arc_enabled={args.arc})")
    for label, f in runs:
        peak = f"{f['peak_mib']:.0f} MiB" if f["peak_mib"] else "unknown"
        print(f"  {label:16} {f['wall']:6.1f} s   ARM {f['reads']:3d} reads {f['writes']:3d} writes   "
              f"blob {f['blob_reads']:2d} reads {f['blob_writes']:2d} writes   "
              f"{f['modules']:3d} module invocations   changed={f['changed']}   controller peak RSS {peak}")
    top = sorted(runs[0][1]["by_module"].items(), key=lambda kv: -kv[1])[:6]
    print("  first run's modules: " + ", ".join(f"{k.split('.')[-1]} {v}" for k, v in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
