#!/usr/bin/env python3
"""Build the sandbox's upstream Go components from the wrapper modules beside this file.

    python3 sandbox/go/build.py [build] [TOOL ...] [--force]  build what is missing (default: every tool)
    python3 sandbox/go/build.py paths [--json] [TOOL ...]    where the binaries are (built or not)
    python3 sandbox/go/build.py list                         tools, pinned versions, cache state
    python3 sandbox/go/build.py pin TOOL VERSION             move a wrapper module to another upstream
                                                             release (rewrites go.mod, tools.go, go.sum)

Each directory here (etcd, kubernetes, kwok, webhook, helm) is a Go module of its own whose go.mod
requires one upstream module at a pinned version and whose go.sum is committed. Nothing upstream is
committed: `go build -mod=readonly` fetches the sources through the Go module proxy into the ordinary
module cache and checks them against the committed go.sum, so a build uses exactly the pinned
dependency graph or fails.

Binaries go to ${ARCWI_SANDBOX_BIN_CACHE:-${XDG_CACHE_HOME:-~/.cache}/arcwi-sandbox/bin}/<tool>-<version>/,
written to a temporary directory first and renamed into place, with a build.json stamp. A directory
whose stamp matches the recipe (go.mod, go.sum, tools.go, flags, Go version) is reused without running
the Go compiler. GOMODCACHE and GOCACHE are left where Go puts them, so rebuilds are warm.
Standard library only (Python 3.9+).
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
# Bump when the way binaries are built changes (flags, ldflags) so cached builds are redone.
RECIPE_REVISION = 1
PROG = "sandbox/go/build.py"


class BuildError(Exception):
    pass


@dataclass(frozen=True)
class Upstream:
    """What `go mod download -json` and the wrapper's build list say about the pinned release."""
    version: str            # v1.35.4
    time: str               # release time from the proxy's .info, RFC 3339 UTC; used as build date
    commit: str             # full commit hash if the proxy reports the origin, else ""
    module_versions: Dict[str, str] = field(default_factory=dict)  # build-list lookups ldflags need


def _x(pkg: str, values: Dict[str, str]) -> List[str]:
    return [f"-X {pkg}.{k}={v}" for k, v in values.items()]


def kubernetes_ldflags(u: Upstream) -> List[str]:
    # hack/lib/version.sh sets the same variables in both packages: component-base/version backs the
    # servers' --version and /version, client-go/pkg/version backs `kubectl version --client`.
    major, minor = u.version.lstrip("v").split(".")[:2]
    values = {"gitVersion": u.version, "gitMajor": major, "gitMinor": minor,
              "gitTreeState": "clean", "buildDate": u.time}
    if u.commit:
        values["gitCommit"] = u.commit
    return (_x("k8s.io/component-base/version", values)
            + _x("k8s.io/client-go/pkg/version", values))


def etcd_ldflags(u: Upstream) -> List[str]:
    # etcd's ./build sets only GitSHA; the version itself is a constant in api/v3/version.
    return _x("go.etcd.io/etcd/api/v3/version", {"GitSHA": u.commit[:7]}) if u.commit else []


def kwok_ldflags(u: Upstream) -> List[str]:
    # hack/releases.sh: consts.Version (defaults to the release number already; set for clarity).
    return _x("sigs.k8s.io/kwok/pkg/consts", {"Version": u.version})


def webhook_ldflags(u: Upstream) -> List[str]:
    # the Makefile's LDFLAGS: pkg/version (--version, user agent) and the proxy sidecar image the
    # webhook injects when a pod asks for it.
    values = {"BuildVersion": u.version, "BuildTime": time.strftime(
        "%Y-%m-%d-%H:%M", time.strptime(u.time, "%Y-%m-%dT%H:%M:%SZ"))}
    if u.commit:
        values["Vcs"] = u.commit[:7]
    return (_x("github.com/Azure/azure-workload-identity/pkg/version", values)
            + _x("github.com/Azure/azure-workload-identity/pkg/webhook",
                 {"ProxyImageVersion": u.version,
                  "ProxyImageRegistry": "mcr.microsoft.com/oss/azure/workload-identity"}))


def kind_ldflags(u: Upstream) -> List[str]:
    # kind's Makefile: KIND_BUILD_LD_FLAGS sets only the commit (and commit count, empty for a release);
    # the version itself is the constant versionCore in pkg/cmd/kind/version.
    return _x("sigs.k8s.io/kind/pkg/cmd/kind/version", {"gitCommit": u.commit}) if u.commit else []


def crictl_ldflags(u: Upstream) -> List[str]:
    # cri-tools' Makefile: GO_LDFLAGS += -X $(PROJECT)/pkg/version.Version=$(VERSION)
    return _x("sigs.k8s.io/cri-tools/pkg/version", {"Version": u.version})


def coredns_ldflags(u: Upstream) -> List[str]:
    # CoreDNS's Makefile sets only coremain.GitCommit; the version is the constant coremain.CoreVersion.
    return _x("github.com/coredns/coredns/coremain", {"GitCommit": u.commit[:7]}) if u.commit else []


def no_ldflags(u: Upstream) -> List[str]:
    return []


def helm_ldflags(u: Upstream) -> List[str]:
    # helm's Makefile: version, empty metadata for a tag, commit, tree state, and the default
    # Kubernetes version for `helm template`/lint derived from the client-go in the build list.
    client_go = u.module_versions["k8s.io/client-go"].lstrip("v").split(".")
    k8s = {"k8sVersionMajor": str(int(client_go[0]) + 1), "k8sVersionMinor": client_go[1]}
    values = {"version": u.version, "metadata": "", "gitTreeState": "clean"}
    if u.commit:
        values["gitCommit"] = u.commit
    return (_x("helm.sh/helm/v3/internal/version", values)
            + _x("helm.sh/helm/v3/pkg/lint/rules", k8s) + _x("helm.sh/helm/v3/pkg/chartutil", k8s))


@dataclass(frozen=True)
class Tool:
    name: str                       # directory under sandbox/go/ and cache key prefix
    module: str                     # the upstream module whose version names the build
    binaries: Tuple[Tuple[str, str], ...]  # (binary name, main package), built in this order
    ldflags: Callable[[Upstream], List[str]]
    tags: Tuple[str, ...] = ()
    lookups: Tuple[str, ...] = ()   # modules whose build-list version the ldflags need
    staging_replaces: bool = False  # k8s.io/kubernetes: map its ./staging replaces to v0.x.y releases
    # modules the reachable module proxy does not serve, replaced by a stand-in directory committed
    # beside go.mod (see webhook/mlog/mlog.go); their files are part of the recipe hash
    local_replaces: Tuple[Tuple[str, str], ...] = ()
    # directories of the wrapper's own packages (e.g. a main.go of ours); part of the recipe hash
    local_sources: Tuple[str, ...] = ()
    # what tools.go imports (`pin`); default: the binaries' main packages
    tools_imports: Tuple[str, ...] = ()
    # listed by a plain `paths` (what the sandbox's roles and tests run); the node-image tools are
    # listed only when named, since their binary names repeat (kubectl of 1.35 and of 1.37)
    in_paths: bool = True
    # a program of ours with no upstream module (e.g. pause): its version is this string
    own_version: str = ""

    @property
    def dir(self) -> Path:
        return HERE / self.name


KUBERNETES_BINARIES = (
    ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
    ("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
    ("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
    # the node's own: kubelet and kubeadm in the node image, kube-proxy as its DaemonSet's image
    ("kubelet", "k8s.io/kubernetes/cmd/kubelet"),
    ("kubeadm", "k8s.io/kubernetes/cmd/kubeadm"),
    ("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy"),
)
KUBERNETES_TAGS = ("selinux", "notest", "grpcnotrace")

TOOLS: Dict[str, Tool] = {t.name: t for t in (
    Tool("etcd", "go.etcd.io/etcd/server/v3", (("etcd", "go.etcd.io/etcd/server/v3"),), etcd_ldflags),
    # kube-apiserver first: it compiles most of what the others share. The 1.35 line serves the sandbox
    # (kubectl) and the v1.35.4 node image (kubeadm v1beta3); the 1.37 line the v1.37.2 node image
    # (kubeadm v1beta4, what kind v0.33 users get).
    Tool("kubernetes", "k8s.io/kubernetes", KUBERNETES_BINARIES, kubernetes_ldflags,
         # hack/lib/golang.sh's tags for a non-debug build
         tags=KUBERNETES_TAGS, staging_replaces=True),
    Tool("kubernetes-1.37", "k8s.io/kubernetes", KUBERNETES_BINARIES, kubernetes_ldflags,
         tags=KUBERNETES_TAGS, staging_replaces=True, in_paths=False),
    # the kind CLI: creates clusters of node containers on Docker (sandbox/node_image builds the images)
    Tool("kind", "sigs.k8s.io/kind", (("kind", "sigs.k8s.io/kind"),), kind_ldflags),
    # what goes into the node images besides Kubernetes: crictl (kind load runs `crictl inspecti` in the
    # node), CoreDNS (kubeadm's DNS addon: v1.14.6 for 1.37, v1.13.1 for 1.35), etcd 3.7 (kubeadm 1.37's
    # default etcd), and our pause program
    Tool("cri-tools", "sigs.k8s.io/cri-tools", (("crictl", "sigs.k8s.io/cri-tools/cmd/crictl"),),
         crictl_ldflags, in_paths=False),
    Tool("coredns", "github.com/coredns/coredns", (("coredns", "github.com/coredns/coredns"),),
         coredns_ldflags, in_paths=False),
    Tool("coredns-1.13", "github.com/coredns/coredns", (("coredns", "github.com/coredns/coredns"),),
         coredns_ldflags, in_paths=False),
    Tool("etcd-3.7", "go.etcd.io/etcd/server/v3", (("etcd", "go.etcd.io/etcd/server/v3"),), etcd_ldflags,
         in_paths=False),
    Tool("pause", "", (("pause", "arcwi.local/sandbox/go/pause"),), no_ldflags, in_paths=False,
         local_sources=("main.go",), own_version="v1.0.0"),
    # the demo workload (sandbox/go/proof/main.go, ours, on azidentity): a pod's token exchange, an ARM read
    # and a refused write, one JSON line per round; an image of it is preloaded in the node images
    Tool("proof", "", (("workload-proof", "arcwi.local/sandbox/go/proof"),), no_ldflags,
         local_sources=("main.go",), own_version="v1.0.0"),
    Tool("kwok", "sigs.k8s.io/kwok", (("kwok", "sigs.k8s.io/kwok/cmd/kwok"),), kwok_ldflags),
    # our own main (webhook/cmd/azure-wi-webhook/main.go): upstream's cmd/webhook plus --webhook-host and
    # --webhook-port, loopback only (upstream always binds 0.0.0.0:9443); upstream's packages do the rest.
    # tools.go keeps naming upstream's main so the build list stays the one upstream's binary needs.
    # `manager` is upstream's cmd/webhook as it is, for the image the upstream chart runs in the node images
    Tool("webhook", "github.com/Azure/azure-workload-identity",
         (("azure-wi-webhook", "arcwi.local/sandbox/go/webhook/cmd/azure-wi-webhook"),
          ("manager", "github.com/Azure/azure-workload-identity/cmd/webhook")),
         webhook_ldflags, local_replaces=(("monis.app/mlog", "./mlog"),), local_sources=("cmd",),
         tools_imports=("github.com/Azure/azure-workload-identity/cmd/webhook",)),
    Tool("helm", "helm.sh/helm/v3", (("helm", "helm.sh/helm/v3/cmd/helm"),), helm_ldflags,
         lookups=("k8s.io/client-go",)),
)}

# Every build: static, stripped, no local paths or VCS stamps, exactly the committed module graph, the
# machine's own Go (a go.mod that needs a newer one fails instead of fetching a toolchain).
GO_FLAGS = ("-mod=readonly", "-trimpath", "-buildvcs=false")
BASE_LDFLAGS = ("-s", "-w")
GO_ENV = {"CGO_ENABLED": "0", "GOWORK": "off", "GOTOOLCHAIN": "local", "GOFLAGS": ""}


def log(msg: str) -> None:
    print(f"go-build: {msg}", flush=True)


def cache_root() -> Path:
    explicit = os.environ.get("ARCWI_SANDBOX_BIN_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "arcwi-sandbox" / "bin"


def go_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(GO_ENV)
    return env


def run_go(args: List[str], cwd: Path, capture: bool = True) -> str:
    go = shutil.which("go")
    if not go:
        raise BuildError("`go` is not on PATH (Go 1.26 is needed to build the sandbox components)")
    proc = subprocess.run([go, *args], cwd=cwd, env=go_env(), text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None)
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip() if capture else "(see the output above)"
        tail = "\n".join(detail.splitlines()[-30:])
        raise BuildError(f"`go {' '.join(args)}` in {cwd} exited {proc.returncode}:\n{tail}")
    return proc.stdout or ""


_GO_VERSION: Optional[str] = None


def go_version() -> str:
    global _GO_VERSION
    if _GO_VERSION is None:
        _GO_VERSION = run_go(["env", "GOVERSION"], HERE).strip()
    return _GO_VERSION


def pinned_version(tool: Tool) -> str:
    if tool.own_version:
        return tool.own_version
    gomod = tool.dir / "go.mod"
    try:
        text = gomod.read_text()
    except OSError as exc:
        raise BuildError(f"{gomod}: {exc.strerror}") from exc
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(tool.module)}\s+(v\S+)", text, re.M)
    if not m:
        raise BuildError(f"{gomod} does not require {tool.module}")
    return m.group(1)


def recipe_hash(tool: Tool) -> str:
    h = hashlib.sha256()
    h.update(f"rev={RECIPE_REVISION} go={go_version()} flags={GO_FLAGS} base_ldflags={BASE_LDFLAGS} "
             f"env={sorted(GO_ENV.items())} tags={tool.tags} bins={tool.binaries}\n".encode())
    files = [tool.dir / n for n in ("go.mod", "go.sum", "tools.go")]
    for directory in [d for _, d in tool.local_replaces] + list(tool.local_sources):
        path = tool.dir / directory
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for path in files:
        h.update(str(path.relative_to(tool.dir)).encode() + b"\0"
                 + (path.read_bytes() if path.exists() else b"") + b"\0")
    return h.hexdigest()[:16]


def out_dir(tool: Tool, version: str) -> Path:
    return cache_root() / f"{tool.name}-{version}"


def read_stamp(directory: Path) -> Optional[dict]:
    try:
        return json.loads((directory / "build.json").read_text())
    except (OSError, ValueError):
        return None


def is_current(tool: Tool, version: str) -> Tuple[bool, str]:
    directory = out_dir(tool, version)
    stamp = read_stamp(directory)
    if stamp is None:
        return False, "not built"
    if stamp.get("recipe") != recipe_hash(tool):
        return False, "recipe changed (go.mod/go.sum/flags/Go version)"
    missing = [b for b, _ in tool.binaries if not os.access(directory / b, os.X_OK)]
    if missing:
        return False, f"missing {', '.join(missing)}"
    return True, "up to date"


def upstream_info(tool: Tool, version: str) -> Upstream:
    if tool.own_version:  # a program of ours: nothing upstream to ask about
        return Upstream(version=version, time="", commit="")
    info = json.loads(run_go(["mod", "download", "-json", f"{tool.module}@{version}"], tool.dir))
    try:  # the proxy's .info: {"Version", "Time", "Origin": {"Hash", ...} (not always)}
        meta = json.loads(Path(info["Info"]).read_text())
    except (KeyError, OSError, ValueError) as exc:
        raise BuildError(f"no module info for {tool.module}@{version}: {exc}") from None
    commit = (meta.get("Origin") or {}).get("Hash", "")
    try:  # build date = the release's publication time, so rebuilds give the same binary
        released = time.strptime(meta["Time"][:19], "%Y-%m-%dT%H:%M:%S")
    except (KeyError, ValueError) as exc:
        raise BuildError(f"no release time for {tool.module}@{version} in {info['Info']}: {exc}") from None
    lookups = {}
    for mod in tool.lookups:
        lookups[mod] = run_go(["list", "-mod=readonly", "-m", "-f", "{{.Version}}", mod], tool.dir).strip()
    return Upstream(version=version, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", released),
                    commit=commit, module_versions=lookups)


def build_tool(tool: Tool, force: bool) -> List[Tuple[str, float]]:
    """Build one tool if needed; returns [(binary, seconds)] for what was built, [] if reused."""
    version = pinned_version(tool)
    final = out_dir(tool, version)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{tool.name}-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent build of the same tool waits, then reuses
        current, why = is_current(tool, version)
        if current and not force:
            log(f"{tool.name} {version}: up to date in {final}")
            return []
        log(f"{tool.name} {version}: building ({'forced' if force else why}) with {go_version()}")
        upstream = upstream_info(tool, version)
        ldflags = " ".join([*BASE_LDFLAGS, *tool.ldflags(upstream)])
        tmp = final.parent / f".tmp-{tool.name}-{version}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        timings = []
        try:
            for binary, package in tool.binaries:
                args = ["build", *GO_FLAGS, "-ldflags", ldflags, "-o", str(tmp / binary), package]
                if tool.tags:
                    args[1:1] = ["-tags", ",".join(tool.tags)]
                started = time.monotonic()
                try:
                    run_go(args, tool.dir, capture=True)
                except BuildError as exc:
                    raise BuildError(f"building {binary} ({tool.module} {version}) failed: {exc}") from None
                took = time.monotonic() - started
                size = (tmp / binary).stat().st_size / 2**20
                log(f"  built {binary} in {took:.0f}s ({size:.0f} MiB)")
                timings.append((binary, took))
            stamp = {"tool": tool.name, "module": tool.module, "version": version,
                     "recipe": recipe_hash(tool), "go": go_version(), "ldflags": ldflags,
                     "tags": list(tool.tags), "flags": list(GO_FLAGS),
                     "seconds": {b: round(s, 1) for b, s in timings},
                     "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            (tmp / "build.json").write_text(json.dumps(stamp, indent=2) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return timings


def selected(names: List[str]) -> List[Tool]:
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise BuildError(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    return [TOOLS[n] for n in names] if names else list(TOOLS.values())


def cmd_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    built, failed = [], []
    for tool in selected(args.tools):  # one after the other: each go build already uses every core
        tool_started = time.monotonic()
        try:
            timings = build_tool(tool, args.force)
        except BuildError as exc:  # go on with the others, fail at the end
            print(f"{PROG}: error: {tool.name}: {exc}", file=sys.stderr, flush=True)
            failed.append(tool.name)
            continue
        if timings:
            took = time.monotonic() - tool_started
            built.append(tool.name)
            log(f"{tool.name}: {len(timings)} binar{'y' if len(timings) == 1 else 'ies'} in {took:.0f}s")
    total = time.monotonic() - started
    if failed:
        raise BuildError(f"could not build {', '.join(failed)} (see above); "
                         f"{'built ' + ', '.join(built) if built else 'nothing built'} in {total:.0f}s")
    if built:
        log(f"built {', '.join(built)} in {total:.0f}s; binaries under {cache_root()}")
    else:
        log(f"nothing to build ({total:.1f}s); binaries under {cache_root()}")
    return 0


def binary_paths(tools: List[Tool]) -> Dict[str, str]:
    paths = {}
    for tool in tools:
        directory = out_dir(tool, pinned_version(tool))
        for binary, _ in tool.binaries:
            paths[binary] = str(directory / binary)
    return paths


def cmd_paths(args: argparse.Namespace) -> int:
    tools = selected(args.tools) if args.tools else [t for t in TOOLS.values() if t.in_paths]
    paths = binary_paths(tools)
    if args.json:
        print(json.dumps(paths, indent=2))
    else:
        for binary, path in paths.items():
            print(f"{binary}\t{path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for tool in TOOLS.values():
        version = pinned_version(tool)
        _, why = is_current(tool, version)
        print(f"{tool.name:<11} {tool.module + ' ' + version:<50} {why:<11} {out_dir(tool, version)}")
    return 0


# ---- pin: (re)generate a wrapper module for an upstream release --------------------------------

def _directive(text: str, name: str) -> List[str]:
    """Lines of a go.mod directive, single-line or block form."""
    lines = []
    for m in re.finditer(rf"^{name}\s*\(\n(.*?)^\)", text, re.M | re.S):
        lines += [ln.strip() for ln in m.group(1).splitlines() if ln.strip() and not ln.strip().startswith("//")]
    lines += [m.group(1).strip() for m in re.finditer(rf"^{name}\s+([^(\s].*)$", text, re.M)]
    return lines


def cmd_pin(args: argparse.Namespace) -> int:
    tool = selected([args.tool])[0]
    if tool.own_version:
        raise BuildError(f"{tool.name} is a program of ours (sandbox/go/{tool.name}); nothing upstream to pin")
    version = args.version
    info = json.loads(run_go(["mod", "download", "-json", f"{tool.module}@{version}"], HERE))
    if info.get("Error"):
        raise BuildError(f"{tool.module}@{version}: {info['Error']}")
    upstream_mod = Path(info["GoMod"]).read_text()
    go_line = _directive(upstream_mod, "go")[0]
    godebug = _directive(upstream_mod, "godebug")
    replaces = []
    if tool.staging_replaces:
        # k8s.io/kubernetes requires its ~30 staging modules at v0.0.0 and points them at
        # ./staging/src/... with replace directives, which do not apply to a module used as a
        # dependency. Each staging module is published as k8s.io/<name> v0.<minor>.<patch>.
        staging_version = "v0." + version.lstrip("v").split(".", 1)[1]
        for line in _directive(upstream_mod, "replace"):
            m = re.match(r"(\S+)\s+=>\s+\./staging/src/(\S+)$", line)
            if m:
                replaces.append(f"\t{m.group(1)} => {m.group(1)} {staging_version}")
        if not replaces:
            raise BuildError(f"{tool.module}@{version}: no ./staging replace directives found")
    for module, directory in tool.local_replaces:
        if not (tool.dir / directory / "go.mod").is_file():
            raise BuildError(f"{tool.dir / directory}/go.mod is missing (stand-in for {module})")
        replaces.append(f"\t{module} => {directory}")
    text = [f"// Wrapper module: builds {tool.module} {version} for the sandbox.",
            f"// Generated by `{PROG} pin {tool.name} {version}`; edit through that command.",
            f"module arcwi.local/sandbox/go/{tool.name}", "", f"go {go_line}", ""]
    for line in godebug:  # upstream's GODEBUG defaults apply only when set by the main module
        text.append(f"godebug {line}")
    if godebug:
        text.append("")
    text += [f"require {tool.module} {version}", ""]
    if replaces:
        text += ["replace (", *replaces, ")", ""]
    (tool.dir).mkdir(exist_ok=True)
    (tool.dir / "go.mod").write_text("\n".join(text))
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in (tool.tools_imports or [p for _, p in tool.binaries]))
    (tool.dir / "tools.go").write_text(
        "//go:build tools\n\n"
        f"// Package tools records the upstream main packages this wrapper module builds, so that\n"
        f"// `go mod tidy` keeps their dependencies in go.mod/go.sum. build.py runs `go build <package>`\n"
        f"// here; this file itself is never compiled.\n"
        f"package tools\n\nimport (\n{imports}\n)\n")
    (tool.dir / "go.sum").unlink(missing_ok=True)
    log(f"{tool.name}: go.mod written for {tool.module} {version}; running go mod tidy")
    run_go(["mod", "tidy"], tool.dir, capture=True)
    log(f"{tool.name}: pinned to {version} ({len((tool.dir / 'go.sum').read_text().splitlines())} go.sum lines)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    p_build = sub.add_parser("build", help="build what is missing (default command)")
    p_build.add_argument("tools", nargs="*", metavar="TOOL")
    p_build.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    p_paths = sub.add_parser("paths", help="print binary paths")
    p_paths.add_argument("tools", nargs="*", metavar="TOOL")
    p_paths.add_argument("--json", action="store_true")
    sub.add_parser("list", help="tools, pinned versions, cache state")
    p_pin = sub.add_parser("pin", help="regenerate a wrapper module for an upstream release")
    p_pin.add_argument("tool")
    p_pin.add_argument("version")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in {"build", "paths", "list", "pin", "-h", "--help"}:
        argv.insert(0, "build")
    args = parser.parse_args(argv)
    handlers = {"build": cmd_build, "paths": cmd_paths, "list": cmd_list, "pin": cmd_pin}
    try:
        return handlers[args.command](args)
    except BuildError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
