"""Build the sandbox's kind node images (see the package docstring for what goes in and why)."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FILES = HERE / "files"
GO_BUILD = REPO / "sandbox" / "go" / "build.py"
PROG = "python -m sandbox.nodeimage"
# Bump when the way images are made changes, so that cached images are rebuilt.
RECIPE_REVISION = 1
# where the images are tagged (a name no registry serves); ARCWI_NODEIMAGE_REPOSITORY moves them, e.g. to
# build and try a changed recipe beside the images other checkouts use
REPOSITORY = os.environ.get("ARCWI_NODEIMAGE_REPOSITORY", "arcwi-sandbox")
LABEL = "io.arcwi.sandbox"
SUITE = "bookworm"
# Debian in the node: the init system, the container runtime and what kubelet, kube-proxy and the CNI
# plugins call (iptables, conntrack, socat for port-forward, ethtool, mount, ip).
DEBIAN_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "iproute2", "iptables", "nftables", "ca-certificates",
    "containerd", "runc", "containernetworking-plugins", "conntrack", "socat", "ethtool", "jq",
    "kmod", "procps", "util-linux", "mount", "libseccomp2",
)


class NodeImageError(Exception):
    pass


@dataclass(frozen=True)
class NodeVersion:
    """One Kubernetes version of the node image and the sandbox/go tools that build its parts."""
    version: str
    kubernetes: str   # build.py tool: kubelet, kubeadm, kubectl, kube-proxy, the control plane
    etcd: str         # build.py tool: the etcd nearest to what this kubeadm expects
    coredns: str      # build.py tool: the CoreDNS this kubeadm expects

    @property
    def image(self) -> str:
        return f"{REPOSITORY}/node:{self.version}"

    @property
    def minor(self) -> int:
        return int(self.version.lstrip("v").split(".")[1])


# v1.37.2: kubeadm v1beta4 (list-form extraArgs), what kind v0.33 users get; v1.35.4: kubeadm v1beta3.
VERSIONS: Dict[str, NodeVersion] = {v.version: v for v in (
    NodeVersion("v1.37.2", "kubernetes-1.37", "etcd-3.7", "coredns"),
    NodeVersion("v1.35.4", "kubernetes", "etcd", "coredns-1.13"),
)}
DEFAULT_VERSION = "v1.37.2"
COMMON_TOOLS = ("cri-tools", "pause")


def log(msg: str) -> None:
    print(f"node-image: {msg}", flush=True)


# ---- commands -----------------------------------------------------------------------------------

def run(args: Sequence[str], *, input: Optional[bytes] = None, stdin=None, check: bool = True,
        timeout: Optional[float] = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(list(args), input=input, stdin=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
    except FileNotFoundError:
        raise NodeImageError(f"{args[0]} is not installed (run `make setup`)") from None
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stderr.decode(errors="replace").strip().splitlines()[-20:])
        raise NodeImageError(f"`{' '.join(args[:6])}{' ...' if len(args) > 6 else ''}` exited "
                             f"{proc.returncode}:\n{tail}")
    return proc


def docker(*args: str, **kwargs) -> subprocess.CompletedProcess:
    # the legacy builder: the Docker CLI may have no buildx plugin, and our builds are COPY + one RUN
    os.environ.setdefault("DOCKER_BUILDKIT", "0")
    return run(["docker", *args], **kwargs)


def docker_usable() -> None:
    proc = run(["docker", "version", "--format", "{{.Server.Version}}"], check=False, timeout=30)
    if proc.returncode != 0:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise NodeImageError(f"Docker at {where} does not answer: {proc.stderr.decode().strip()}; "
                             f"start the sandbox's daemon (`python -m sandbox docker up`) and export "
                             f"DOCKER_HOST (`eval \"$(python -m sandbox env)\"`)")


def image_labels(image: str) -> Optional[Dict[str, str]]:
    proc = docker("image", "inspect", "--format", "{{json .Config.Labels}}", image, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout or b"null") or {}


# ---- the Go parts -------------------------------------------------------------------------------

def go_tools(nv: NodeVersion) -> Tuple[str, ...]:
    return (nv.kubernetes, nv.etcd, nv.coredns, *COMMON_TOOLS, "webhook", "proof")


def build_go(tools: Sequence[str]) -> None:
    proc = subprocess.run([sys.executable, str(GO_BUILD), "build", *tools])
    if proc.returncode != 0:
        raise NodeImageError(f"sandbox/go/build.py could not build {', '.join(tools)} (see above)")


def go_binaries(tool: str) -> Tuple[Path, dict]:
    """The directory of a built tool and its build.json stamp."""
    out = run([sys.executable, str(GO_BUILD), "paths", "--json", tool]).stdout
    paths = json.loads(out)
    directory = Path(next(iter(paths.values()))).parent
    try:
        stamp = json.loads((directory / "build.json").read_text())
    except (OSError, ValueError):
        raise NodeImageError(f"{tool} is not built ({directory}); run `python3 {GO_BUILD} build {tool}`") from None
    return directory, stamp


# ---- the Debian root ----------------------------------------------------------------------------

def debian_mirror() -> str:
    """The machine's own Debian mirror (apt's sources), so debootstrap fetches from where apt does."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
        for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", text, re.M):
            return m.group(1)
    return "http://deb.debian.org/debian"


def base_recipe() -> str:
    return hashlib.sha256(f"{RECIPE_REVISION} {SUITE} minbase {sorted(DEBIAN_PACKAGES)}".encode()).hexdigest()[:12]


def cache_dir() -> Path:
    explicit = os.environ.get("ARCWI_NODEIMAGE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "arcwi-sandbox" / "nodeimage"


def base_tarball() -> Path:
    """debootstrap's minbase bookworm with the node's packages, as a tar kept in the cache (so a wiped
    Docker data root costs an import, not another debootstrap)."""
    tarball = cache_dir() / f"node-base-{base_recipe()}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise NodeImageError("debootstrap is not installed (run `make setup`: apt-get install debootstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="arcwi-rootfs-", dir=tarball.parent))
    try:
        rootfs = work / "rootfs"
        mirror = debian_mirror()
        log(f"node-base: debootstrap --variant=minbase {SUITE} from {mirror}")
        run(["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}", SUITE,
             str(rootfs), mirror])
        # what a container gets from its runtime, and what a fresh node generates itself
        for rel in ("etc/resolv.conf", "etc/hostname", "etc/machine-id"):
            target = rootfs / rel
            if target.exists() or target.is_symlink():
                target.unlink()
        (rootfs / "etc" / "machine-id").write_text("")
        for rel in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / rel).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = work / "rootfs.tar"
        run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."])
        os.rename(partial, tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"node-base: root file system in {time.monotonic() - started:.0f}s ({tarball.stat().st_size / 2**20:.0f} MiB)")
    return tarball


def base_image() -> str:
    """arcwi-sandbox/node-base:<recipe>, imported from base_tarball()."""
    name = f"{REPOSITORY}/node-base:{base_recipe()}"
    if image_labels(name) is not None:
        log(f"{name}: present")
        return name
    with open(base_tarball(), "rb") as tar:
        docker("import", "--change", f"LABEL {LABEL}.recipe={base_recipe()}", "-", name, stdin=tar)
    log(f"{name}: imported")
    return name


# ---- the control-plane images -------------------------------------------------------------------

@dataclass(frozen=True)
class Component:
    ref: str            # the image reference, as kubeadm asks for it or as we tag the nearest build
    binary: Path
    path: str           # where the binary sits in the image
    on_debian: bool     # kube-proxy needs iptables: built on the node's Debian root, others on scratch
    user: str = ""      # the image's USER (the webhook's image runs as 65532, as upstream's does)


def kubeadm_images(kubeadm: Path, version: str) -> List[str]:
    # `kubeadm config images list` with an explicit version reads only kubeadm's own constants
    out = run([str(kubeadm), "config", "images", "list", "--kubernetes-version", version]).stdout.decode()
    return [line.strip() for line in out.splitlines() if line.strip()]


def components(nv: NodeVersion) -> Tuple[List[Component], List[str], Dict[str, str]]:
    """The images to preload, the kubeadm patches they need, and the expected->built tag changes."""
    k8s_dir, _ = go_binaries(nv.kubernetes)
    etcd_dir, etcd_stamp = go_binaries(nv.etcd)
    coredns_dir, coredns_stamp = go_binaries(nv.coredns)
    pause_dir, _ = go_binaries("pause")
    comps, cluster_config, substituted = [], {}, {}
    for ref in kubeadm_images(k8s_dir / "kubeadm", nv.version):
        repo, _, tag = ref.rpartition(":")
        name = repo.rsplit("/", 1)[-1]
        if name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
            comps.append(Component(ref, k8s_dir / name, f"/usr/local/bin/{name}", name == "kube-proxy"))
        elif name == "etcd":
            built = etcd_stamp["version"].lstrip("v") + "-0"   # kubeadm's etcd tags are <version>-0
            if built != tag:
                cluster_config.setdefault("etcd", {"local": {"imageTag": built}})
                substituted[ref] = f"{repo}:{built}"
            comps.append(Component(f"{repo}:{built}", etcd_dir / "etcd", "/usr/local/bin/etcd", False))
        elif name == "coredns":
            built = coredns_stamp["version"]
            if built != tag:
                cluster_config["dns"] = {"imageTag": built}
                substituted[ref] = f"{repo}:{built}"
            comps.append(Component(f"{repo}:{built}", coredns_dir / "coredns", "/coredns", False))
        elif name == "pause":
            # our own pause program (sandbox/go/pause) under the name containerd and kubeadm use
            comps.append(Component(ref, pause_dir / "pause", "/pause", False))
        else:
            raise NodeImageError(f"kubeadm {nv.version} asks for {ref}, which the node image builder does not know")
    comps += extra_components()
    patches = []
    if cluster_config:
        patches.append(json.dumps({"kind": "ClusterConfiguration", **cluster_config}))
    return comps, patches, substituted


# The upstream webhook chart's image (values.yaml: image.repository and image.release = the chart's
# appVersion), built from the same Go module as the chart (sandbox/go/webhook, upstream's cmd/webhook as
# `manager`), as upstream's docker/webhook.Dockerfile lays it out: /manager, user 65532.
WEBHOOK_REPOSITORY = "mcr.microsoft.com/oss/azure/workload-identity/webhook"
WEBHOOK_CHART = "workload-identity-webhook"


# The sandbox's demo workload (sandbox/go/proof), under a name no registry serves.
PROOF_IMAGE = "arcwi-sandbox/workload-proof"


def extra_components() -> List[Component]:
    webhook_dir, webhook_stamp = go_binaries("webhook")
    proof_dir, proof_stamp = go_binaries("proof")
    return [Component(f"{WEBHOOK_REPOSITORY}:{webhook_stamp['version']}", webhook_dir / "manager", "/manager",
                      False, user="65532:65532"),
            Component(f"{PROOF_IMAGE}:{proof_stamp['version']}", proof_dir / "workload-proof", "/workload-proof",
                      False, user="65532:65532")]


def webhook_chart() -> Path:
    """The upstream chart workload-identity-webhook, packaged by helm from the webhook module's own source
    in the Go module cache (manifest_staging/charts, the chart released with that version) into the cache.
    Never committed: the module cache is where the source lives."""
    _, stamp = go_binaries("webhook")
    version = stamp["version"].lstrip("v")
    target = cache_dir() / "charts" / f"{WEBHOOK_CHART}-{version}.tgz"
    if target.exists():
        return target
    info = json.loads(run(["go", "mod", "download", "-json", f"{stamp['module']}@{stamp['version']}"]).stdout)
    source = Path(info["Dir"]) / "manifest_staging" / "charts" / WEBHOOK_CHART
    chart = (source / "Chart.yaml").read_text()
    if f"\nversion: {version}\n" not in f"\n{chart}\n":
        raise NodeImageError(f"{source}/Chart.yaml is not version {version}")
    target.parent.mkdir(parents=True, exist_ok=True)
    helm = json.loads(run([sys.executable, str(GO_BUILD), "paths", "--json", "helm"]).stdout)["helm"]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        run([helm, "package", str(source), "--destination", tmp])
        os.rename(Path(tmp) / target.name, target)
    log(f"{WEBHOOK_CHART} {version}: packaged from {source} into {target}")
    return target


def build_component(comp: Component, base: str, work: Path) -> None:
    ctx = work / ("ctx-" + re.sub(r"[^a-z0-9]+", "-", comp.ref.lower()))
    ctx.mkdir()
    shutil.copy2(comp.binary, ctx / "binary")
    (ctx / "Dockerfile").write_text("\n".join([
        f"FROM {base if comp.on_debian else 'scratch'}",
        f"COPY binary {comp.path}",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f'ENTRYPOINT ["{comp.path}"]',
        *([f"USER {comp.user}"] if comp.user else []),
        f"LABEL {LABEL}.built-from=sandbox/go",
        "",
    ]))
    docker("build", "--quiet", "--network", "none", "--tag", comp.ref, str(ctx))


# ---- the node image -----------------------------------------------------------------------------

def recipe(nv: NodeVersion, base: str) -> str:
    h = hashlib.sha256(f"rev={RECIPE_REVISION} base={base} version={nv.version}\n".encode())
    for tool in go_tools(nv):
        _, stamp = go_binaries(tool)
        h.update(f"{tool}={stamp.get('recipe')}:{stamp.get('version')}\n".encode())
    for path in sorted(p for p in FILES.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(FILES)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def is_current(nv: NodeVersion) -> Tuple[bool, str]:
    labels = image_labels(nv.image)
    if labels is None:
        return False, "not built"
    if labels.get(f"{LABEL}.recipe") != recipe(nv, f"{REPOSITORY}/node-base:{base_recipe()}"):
        return False, "recipe changed"
    return True, "up to date"


def stage_rootfs(nv: NodeVersion, comps: List[Component], work: Path) -> Path:
    """The files the node image adds to the Debian root: ours, the node binaries, /kind/version."""
    k8s_dir, _ = go_binaries(nv.kubernetes)
    crictl_dir, _ = go_binaries("cri-tools")
    root = work / "node" / "rootfs"
    shutil.copytree(FILES, root, symlinks=True)
    template = root / "etc" / "containerd" / "config.toml.in"
    pause = next(c.ref for c in comps if c.ref.rpartition(":")[0].endswith("/pause"))
    (root / "etc" / "containerd" / "config.toml").write_text(template.read_text().replace("@PAUSE_IMAGE@", pause))
    template.unlink()
    (root / "usr" / "bin").mkdir(parents=True)
    for name in ("kubelet", "kubeadm", "kubectl"):
        shutil.copy2(k8s_dir / name, root / "usr" / "bin" / name)
    shutil.copy2(crictl_dir / "crictl", root / "usr" / "local" / "bin" / "crictl")
    (root / "kind" / "version").write_text(nv.version + "\n")   # kind reads the node's version here
    return root


def build_version(nv: NodeVersion, base: str) -> float:
    started = time.monotonic()
    comps, patches, substituted = components(nv)
    for expected, built in substituted.items():
        log(f"{nv.version}: kubeadm expects {expected}, which the Go module proxy does not serve; the image "
            f"carries {built} and the kubeadm patch that selects it (`{PROG} patches {nv.image}`)")
    work = Path(tempfile.mkdtemp(prefix="arcwi-nodeimage-"))
    container = f"arcwi-nodeimage-{nv.version}-{os.getpid()}"
    stage = f"{REPOSITORY}/node-stage:{nv.version}"
    try:
        for comp in comps:
            build_component(comp, base, work)
        archive = work / "images.tar"
        docker("save", "--output", str(archive), *[c.ref for c in comps])
        stage_rootfs(nv, comps, work)
        (work / "node" / "Dockerfile").write_text("\n".join([
            f"FROM {base}",
            "COPY rootfs/ /",
            # containerd and the kubelet start with systemd; nothing asks for a login prompt
            "RUN systemctl enable containerd.service kubelet.service"
            " && systemctl mask getty.target console-getty.service systemd-logind.service"
            " && systemctl set-default multi-user.target",
            "ENV container=docker",
            "STOPSIGNAL SIGRTMIN+3",
            'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
            "",
        ]))
        docker("build", "--quiet", "--network", "none", "--tag", stage, str(work / "node"))
        preload(nv, stage, container, archive, patches)
    finally:
        docker("rm", "--force", container, check=False)
        # only arcwi-sandbox/ names stay in Docker: the registry.k8s.io names live in the node's containerd,
        # and must not shadow published images in a Docker the user also pulls from
        docker("rmi", stage, *[c.ref for c in comps], check=False)
        shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    log(f"{nv.image}: built in {took:.0f}s")
    return took


def preload(nv: NodeVersion, stage: str, container: str, archive: Path, patches: List[str]) -> None:
    """Import the control-plane images into the node's containerd (k8s.io namespace), then commit.

    Imported without unpacking (the build container's /var/lib/containerd sits on the image's overlay,
    where containerd's overlay snapshotter cannot work); the node's CRI unpacks each image into the node's
    /var volume when a pod first uses it. Pinned, so that the kubelet's image GC never removes them.
    """
    docker("run", "--detach", "--name", container, "--network", "none",
           "--entrypoint", "/bin/sleep", "--volume", f"{archive}:/kind/images.tar:ro", stage, "infinity")
    docker("exec", "--detach", container, "containerd")
    deadline = time.monotonic() + 60
    while docker("exec", container, "ctr", "version", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise NodeImageError("containerd did not start in the build container within 60 s")
        time.sleep(0.5)
    docker("exec", container, "ctr", "--namespace=k8s.io", "images", "import", "--no-unpack", "--all-platforms",
           "--digests", "/kind/images.tar")
    listed = docker("exec", container, "ctr", "--namespace=k8s.io", "images", "list", "--quiet").stdout.decode()
    for ref in listed.split():
        if not ref.startswith("sha256:"):
            docker("exec", container, "ctr", "--namespace=k8s.io", "images", "label", ref,
                   "io.cri-containerd.pinned=pinned")
    docker("exec", container, "pkill", "-x", "containerd")
    deadline = time.monotonic() + 30
    while docker("exec", container, "pgrep", "-x", "containerd", check=False).returncode == 0:
        if time.monotonic() > deadline:
            raise NodeImageError("containerd did not stop in the build container within 30 s")
        time.sleep(0.2)
    docker("exec", container, "sh", "-c", "rm -rf /run/containerd /tmp/* /var/log/*.log")
    docker("stop", "--time", "1", container, check=False)
    changes = [
        'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]', "CMD []",
        f"LABEL {LABEL}.recipe={recipe(nv, f'{REPOSITORY}/node-base:{base_recipe()}')}",
        f"LABEL {LABEL}.kubernetes-version={nv.version}",
        f"LABEL {LABEL}.kubeadm-patches={json.dumps(json.dumps(patches))}",
    ]
    args = ["commit"]
    for change in changes:
        args += ["--change", change]
    before = docker("image", "inspect", "--format", "{{.Id}}", nv.image, check=False).stdout.decode().strip()
    docker(*args, container, nv.image)
    if before:  # the image this build replaces (a dangling <none> now): its 1.3 GB are not kept
        docker("rmi", before, check=False)


# ---- what a cluster of an image needs here --------------------------------------------------------

def host_patches(minor: int) -> List[str]:
    """Patches this Docker host needs: kubelet refuses cgroup v1 from 1.35 unless failCgroupV1 is false."""
    proc = docker("info", "--format", "{{.CgroupVersion}}", check=False)
    if proc.returncode == 0 and proc.stdout.decode().strip() == "1" and minor >= 35:
        return [json.dumps({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                            "failCgroupV1": False})]
    return []


def patches_for(image: str) -> List[str]:
    labels = image_labels(image)
    if labels is None:
        raise NodeImageError(f"node image {image} is not in Docker; build it with `{PROG} build`")
    version = labels.get(f"{LABEL}.kubernetes-version", "")
    minor = int(version.lstrip("v").split(".")[1]) if version.count(".") >= 1 else 0
    return json.loads(labels.get(f"{LABEL}.kubeadm-patches", "[]")) + host_patches(minor)


# ---- command line -------------------------------------------------------------------------------

def selected(names: Sequence[str]) -> List[NodeVersion]:
    unknown = [n for n in names if n not in VERSIONS]
    if unknown:
        raise NodeImageError(f"unknown version(s) {', '.join(unknown)}; known: {', '.join(VERSIONS)}")
    return [VERSIONS[n] for n in names] if names else list(VERSIONS.values())


def cmd_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    versions = selected(args.versions)
    build_go(sorted({t for nv in versions for t in go_tools(nv)}))
    docker_usable()
    todo = []
    for nv in versions:
        current, why = is_current(nv)
        if current and not args.force:
            log(f"{nv.image}: up to date")
        else:
            log(f"{nv.image}: building ({'forced' if args.force else why})")
            todo.append(nv)
    if todo:
        base = base_image()
        for nv in todo:
            build_version(nv, base)
    log(f"{'built ' + ', '.join(nv.image for nv in todo) if todo else 'nothing to build'} "
        f"in {time.monotonic() - started:.1f}s")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    docker_usable()
    for nv in VERSIONS.values():
        print(f"{nv.version:<9} {nv.image:<28} {is_current(nv)[1]}")
    return 0


def cmd_patches(args: argparse.Namespace) -> int:
    patches = patches_for(args.image)
    print(json.dumps(patches) if args.json else "\n---\n".join(patches))
    return 0


def cmd_chart(args: argparse.Namespace) -> int:
    build_go(["webhook", "helm"])
    print(webhook_chart())
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    print(selected([args.version or DEFAULT_VERSION])[0].image)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build the node images that are missing or out of date")
    p.add_argument("versions", nargs="*", metavar="VERSION")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_build)
    sub.add_parser("list", help="versions, names, cache state").set_defaults(func=cmd_list)
    p = sub.add_parser("patches", help="the kubeadm config patches a cluster of IMAGE needs on this host")
    p.add_argument("image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_patches)
    sub.add_parser("chart", help="the upstream webhook chart, packaged (path of the .tgz)").set_defaults(func=cmd_chart)
    p = sub.add_parser("image", help="the image name of VERSION")
    p.add_argument("version", nargs="?")
    p.set_defaults(func=cmd_image)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NodeImageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
