"""`python -m sandbox demo`: run playbooks/site.yml against the sandbox and print the proof.

What `make demo` runs after `make setup` and `make sandbox-up`, with the variables of
`python -m sandbox env` exported (they are set here too, so the command works on its own). It runs

    ansible-playbook -i inventories/sandbox playbooks/site.yml [extra arguments]

unchanged (its output is the playbook's), then prints:

- the play's result (changed count) and its wall time;
- the ARM requests the run made (reads, writes), from the sandbox admin API's request log between
  a mark taken before the run and one taken right after it;
- the facts the roles set: the identity's client ID and the issuer URL (`oidc_issuer_url`);
- the discovery document fetched anonymously over HTTPS (no credentials) from
  `<oidc_issuer_url>.well-known/openid-configuration`, its `issuer` compared byte for byte with the
  fact, and the kids served at its `jwks_uri` compared with the signing key's (`oidc_issuer_kids`).

The facts and the play's stats are collected by a small callback plugin (written to a temporary
directory and enabled only for this run) rather than by an extra play, so the run is site.yml alone.
Exit status: the playbook's when it fails, 1 when a proof check fails, else 0.
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from . import config

INVENTORY = "inventories/sandbox"
PLAYBOOK = "playbooks/site.yml"
WRITE_METHODS = ("PUT", "PATCH", "POST", "DELETE")

CALLBACK = '''\
"""Written by `python -m sandbox demo`: records the facts the play sets and its stats as JSON."""
import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "arcwi_demo_facts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._facts = {}

    def v2_runner_on_ok(self, result):
        facts = result._result.get("ansible_facts") or {}
        self._facts.setdefault(result._host.get_name(), {}).update(facts)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed)
        out = {"facts": self._facts, "stats": {host: stats.summarize(host) for host in hosts}}
        with open(os.environ["ARCWI_DEMO_FACTS_FILE"], "w") as stream:
            json.dump(out, stream, default=str)
'''


class Admin:
    """The sandbox admin API (request log)."""

    def __init__(self, base: str, context: ssl.SSLContext):
        self.base = base.rstrip("/")
        self.context = context

    def get(self, path: str):
        with urllib.request.urlopen(self.base + path, context=self.context, timeout=30) as resp:
            return json.loads(resp.read())

    def mark(self) -> int:
        return self.get("/requests/last")["last"]

    def requests(self, since: int, until: int, service: str) -> list[dict]:
        rows = self.get(f"/requests?since={since}&service={service}")["requests"]
        return [row for row in rows if row["seq"] <= until]


def _environment() -> dict[str, str]:
    """os.environ with this sandbox's variables (those of `python -m sandbox env`) on top.

    The sandbox is the one the ARCWI_SANDBOX_* variables select. A CA bundle exported for the system
    is replaced silently (the sandbox's bundle is what the modules must trust); any other variable that
    names something else (another sandbox's endpoints, a real Azure principal) is replaced with a note.
    """
    from .__main__ import env_lines

    env = dict(os.environ)
    for line in env_lines():
        key, _, value = line.partition("=")
        if env.get(key, value) != value and key not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            print(f"demo: {key} in the environment is not this sandbox's; using the sandbox's", file=sys.stderr)
        env[key] = value
    return env


def _fetch_json(url: str, context: ssl.SSLContext) -> tuple[dict, str]:
    """Anonymous HTTPS GET: no Authorization header, no cookies; -> (document, Content-Type)."""
    if not url.startswith("https://"):
        raise ValueError(f"not an HTTPS URL: {url}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, context=context, timeout=30) as resp:
        return json.loads(resp.read()), resp.headers.get("Content-Type", "")


def _count(rows: list[dict]) -> tuple[int, int, dict[str, int]]:
    by_method: dict[str, int] = {}
    for row in rows:
        by_method[row["method"]] = by_method.get(row["method"], 0) + 1
    writes = sum(n for method, n in by_method.items() if method in WRITE_METHODS)
    return len(rows) - writes, writes, by_method


def run(playbook_args: list[str]) -> int:
    env = _environment()
    context = ssl.create_default_context(cafile=env["REQUESTS_CA_BUNDLE"])
    admin = Admin(env["ARCWI_SANDBOX_ADMIN"], context)
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    cmd = [str(ansible_playbook if ansible_playbook.exists() else "ansible-playbook"),
           "-i", INVENTORY, PLAYBOOK, *playbook_args]

    with tempfile.TemporaryDirectory(prefix="arcwi-demo-") as tmp:
        (Path(tmp) / "arcwi_demo_facts.py").write_text(CALLBACK)
        facts_file = Path(tmp) / "facts.json"
        env.update({
            "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join(filter(None, [tmp, env.get("ANSIBLE_CALLBACK_PLUGINS")])),
            "ANSIBLE_CALLBACKS_ENABLED": ",".join(filter(None, [env.get("ANSIBLE_CALLBACKS_ENABLED"),
                                                                "arcwi_demo_facts"])),
            "ARCWI_DEMO_FACTS_FILE": str(facts_file),
        })
        print(f"demo: $ {' '.join(cmd)}    (in {config.REPO_ROOT})", flush=True)
        before = admin.mark()
        started = time.monotonic()
        rc = subprocess.run(cmd, cwd=config.REPO_ROOT, env=env).returncode
        wall = time.monotonic() - started
        after = admin.mark()
        recorded = json.loads(facts_file.read_text()) if facts_file.exists() else {"facts": {}, "stats": {}}

    reads, writes, by_method = _count(admin.requests(before, after, "arm"))
    stats = recorded["stats"]
    changed = sum(host.get("changed", 0) for host in stats.values())
    failed = sum(host.get("failures", 0) + host.get("unreachable", 0) for host in stats.values())
    methods = ", ".join(f"{method} {n}" for method, n in sorted(by_method.items()))
    print()
    print("== proof (sandbox) " + "=" * 60)
    print(f"site.yml            exit {rc}, changed={changed}, failed={failed}, wall time {wall:.1f}s")
    print(f"ARM requests        {reads} reads, {writes} writes ({methods or 'none'}); "
          f"request log seq {before}..{after}")
    if rc != 0:
        print(f"demo: the playbook failed (exit {rc}); no proof", file=sys.stderr)
        return rc

    facts = next(iter(recorded["facts"].values()), {})
    # the issuer the cluster signs with: the kind_cluster role's (the storage's, or Arc's in issuer_mode arc)
    issuer = facts.get("kind_cluster_issuer_url") or facts.get("oidc_issuer_url", "")
    kids = list(facts.get("oidc_issuer_kids") or [])
    print(f"identity            client id {facts.get('identity_client_id')} "
          f"(principal {facts.get('identity_principal_id')}, tenant {facts.get('identity_tenant_id')})")
    print(f"issuer URL (fact)   {issuer}{'  (Arc-hosted)' if '/arc-oidc/' in issuer else ''}")
    ok = True
    try:
        discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        discovery, ctype = _fetch_json(discovery_url, context)
        served_issuer = discovery.get("issuer")
        same = served_issuer == issuer
        ok &= same
        print(f"discovery document  anonymous HTTPS GET {discovery_url} -> {ctype}")
        print(f"  issuer            {served_issuer}  ({'equals the fact' if same else 'DIFFERS from the fact'})")
        jwks, ctype = _fetch_json(discovery["jwks_uri"], context)
        served = [key.get("kid") for key in jwks.get("keys", [])]
        missing = [kid for kid in kids if kid not in served]
        ok &= bool(kids) and not missing
        print(f"  jwks_uri          {discovery['jwks_uri']} -> {ctype}")
        print(f"  kids served       {', '.join(served) or 'none'}")
        verdict = "served" if kids and not missing else "NOT served: " + ", ".join(missing or ["no kid in the facts"])
        print(f"  signing key kid   {', '.join(kids) or 'none'}  ({verdict})")
    except (OSError, ValueError, KeyError) as exc:
        ok = False
        print(f"demo: the anonymous fetch failed: {exc}", file=sys.stderr)
    ok &= _arc_proof(facts)
    if changed == 0 and writes == 0:
        print("idempotence         changed=0 and no ARM write: nothing to do on this run")
    return 0 if ok else 1


def _arc_proof(facts: dict) -> bool:
    """The connected cluster as arc_connect read it back, against the cluster's own /version and nodes."""
    arc = facts.get("kind_cluster_arc")
    if not arc:
        print("Azure Arc           not enabled on this run (arc_enabled: false)")
        return True
    kubectl = json.loads(subprocess.run([sys.executable, str(config.REPO_ROOT / "sandbox" / "go" / "build.py"),
                                         "paths", "--json"], capture_output=True, text=True, check=True).stdout)["kubectl"]
    scope = ["--kubeconfig", facts.get("kind_cluster_kubeconfig_path", ""), "--context", facts.get("kind_cluster_context", "")]
    version = json.loads(subprocess.run([kubectl, *scope, "version", "-o", "json"], capture_output=True, text=True,
                                        check=True).stdout)["serverVersion"]["gitVersion"].lstrip("v")
    nodes = len(json.loads(subprocess.run([kubectl, *scope, "get", "nodes", "-o", "json"], capture_output=True,
                                          text=True, check=True).stdout)["items"])
    same = arc.get("kubernetes_version") == version and arc.get("total_node_count") == nodes
    print(f"Azure Arc           {arc.get('name')}: {arc.get('connectivity_status')}, Kubernetes "
          f"{arc.get('kubernetes_version')}, {arc.get('total_node_count')} node(s), agents {arc.get('agent_version')}, "
          f"distribution {arc.get('distribution')}  (cluster: {version}, {nodes} node(s): "
          f"{'equal' if same else 'DIFFERENT'})")
    return arc.get("connectivity_status") == "Connected" and same
