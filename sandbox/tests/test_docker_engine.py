"""The sandbox's own Docker daemon (sandbox/docker_engine.py) and its runc wrapper (sandbox/docker/runc-wrapper).

Unit tests read the wrapper's argument parsing and OCI spec rewriting. Integration tests start real
daemons (Debian's docker.io) in temporary roots under /tmp (short: unix socket paths), independent of
the shared daemon, with an image imported from a tar holding one static busybox (busybox-static).
They fail, not skip, when dockerd or the static busybox is missing: `make setup` installs both.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from .conftest import REPO

from sandbox import docker_engine

WRAPPER = REPO / "sandbox" / "docker" / "runc-wrapper"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "cat", "echo", "grep", "sleep", "mkdir", "httpd", "true")
ALL_CAPS = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN"]
GLOBALS = ["--root", "/run/containerd/runc/moby", "--log", "/b/log.json", "--log-format", "json"]


def load_wrapper():
    loader = importlib.machinery.SourceFileLoader("runc_wrapper", str(WRAPPER))
    spec = importlib.util.spec_from_loader("runc_wrapper", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


wrapper = load_wrapper()


# ---- the wrapper: which file it rewrites ---------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    (GLOBALS + ["create", "--bundle", "/b", "--pid-file", "/b/init.pid", "ctr"], "/b/config.json"),
    (GLOBALS + ["create", "-b", "/b", "ctr"], "/b/config.json"),
    (["--root=/r", "--log=/l", "--log-format=json", "create", "--bundle=/b", "ctr"], "/b/config.json"),
    (["--root", "/r", "create", "-b=/b", "ctr"], "/b/config.json"),
    (["-root", "/r", "--systemd-cgroup", "--debug", "create", "--console-socket", "/s", "--bundle", "/b", "c"],
     "/b/config.json"),
    (["--rootless", "false", "--criu", "/usr/sbin/criu", "run", "--detach", "-b", "/b", "ctr"], "/b/config.json"),
    (GLOBALS + ["exec", "--process", "/tmp/runc-process1", "--detach", "--pid-file", "/p", "ctr"],
     "/tmp/runc-process1"),
    (GLOBALS + ["exec", "-p", "/tmp/p.json", "ctr"], "/tmp/p.json"),
    (GLOBALS + ["exec", "--pid-file", "/p", "--process=/tmp/p.json", "-d", "ctr"], "/tmp/p.json"),
])
def test_spec_file(args, expected):
    assert wrapper.spec_file(args) == expected


def test_spec_file_defaults_to_the_bundle_in_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert wrapper.spec_file(GLOBALS + ["create", "--pid-file", "/p", "ctr"]) == str(tmp_path / "config.json")
    assert wrapper.spec_file(["run", "ctr"]) == str(tmp_path / "config.json")


@pytest.mark.parametrize("args", [
    GLOBALS + ["start", "ctr"],
    GLOBALS + ["delete", "--force", "ctr"],
    GLOBALS + ["state", "ctr"],
    GLOBALS + ["kill", "ctr", "9"],
    GLOBALS + ["exec", "ctr", "sh"],  # no --process: runc takes the process from config.json (rewritten at create)
    ["--root", "create", "state", "ctr"],  # "create" is the value of --root here, not the command
    ["--version"],
    ["features"],
    [],
])
def test_other_calls_rewrite_nothing(args):
    assert wrapper.spec_file(args) is None


# ---- the wrapper: capability removal --------------------------------------------------------------
def bundle_spec() -> dict:
    caps = {name: list(ALL_CAPS) for name in wrapper.CAPABILITY_SETS}
    return {"ociVersion": "1.0.2", "process": {"args": ["sh"], "capabilities": caps}, "root": {"path": "rootfs"}}


def test_strip_removes_the_capability_from_every_set():
    spec = bundle_spec()
    assert wrapper.strip_capability(spec)
    for name in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        assert spec["process"]["capabilities"][name] == ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"]
    assert spec["root"] == {"path": "rootfs"} and spec["process"]["args"] == ["sh"]
    assert not wrapper.strip_capability(spec)  # nothing left to remove


def test_strip_reads_an_exec_process_and_partial_sets():
    process = {"args": ["sh"], "capabilities": {"bounding": list(ALL_CAPS), "effective": None,
                                                "permitted": ["CAP_SYS_RESOURCE"]}}
    assert wrapper.strip_capability(process)
    assert process["capabilities"] == {"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"],
                                       "effective": None, "permitted": []}


@pytest.mark.parametrize("spec", [
    {"ociVersion": "1.0.2", "process": {"args": ["sh"]}},
    {"ociVersion": "1.0.2", "process": {"args": ["sh"], "capabilities": None}},
    {"ociVersion": "1.0.2", "process": None},
    {"ociVersion": "1.0.2"},
    {"args": ["sh"], "cwd": "/"},
])
def test_strip_leaves_a_spec_without_capabilities_alone(spec):
    before = json.dumps(spec)
    assert not wrapper.strip_capability(spec)
    assert json.dumps(spec) == before


def test_rewrite_keeps_the_file_mode_and_everything_else(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(bundle_spec()))
    path.chmod(0o600)
    assert wrapper.rewrite(str(path))
    spec = json.loads(path.read_text())
    assert all("CAP_SYS_RESOURCE" not in v for v in spec["process"]["capabilities"].values())
    assert (path.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def run_main(monkeypatch, argv: list[str]) -> list:
    calls = []
    monkeypatch.setattr(wrapper.os, "execv", lambda path, args: calls.append((path, args)))
    wrapper.main(["runc-wrapper", *argv])
    return calls


def test_main_rewrites_the_bundle_then_execs_runc(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps(bundle_spec()))
    args = GLOBALS + ["create", "--bundle", str(tmp_path), "ctr"]
    calls = run_main(monkeypatch, ["--arcwi-real-runc=/opt/runc", *args])
    assert calls == [("/opt/runc", ["/opt/runc", *args])]
    caps = json.loads((tmp_path / "config.json").read_text())["process"]["capabilities"]
    assert all("CAP_SYS_RESOURCE" not in v for v in caps.values())


def test_main_rewrites_the_exec_process(tmp_path, monkeypatch):
    process = tmp_path / "runc-process"
    process.write_text(json.dumps({"args": ["sh"], "capabilities": {"bounding": list(ALL_CAPS)}}))
    run_main(monkeypatch, ["--arcwi-real-runc=/opt/runc", *GLOBALS, "exec", "--process", str(process), "ctr"])
    assert "CAP_SYS_RESOURCE" not in json.loads(process.read_text())["capabilities"]["bounding"]


@pytest.mark.parametrize("args", [GLOBALS + ["state", "ctr"], ["--version"], GLOBALS + ["delete", "ctr"]])
def test_main_passes_other_calls_through_unchanged(monkeypatch, args):
    assert run_main(monkeypatch, ["--arcwi-real-runc=/opt/runc", *args]) == [("/opt/runc", ["/opt/runc", *args])]


def test_main_finds_runc_without_the_argument(monkeypatch):
    monkeypatch.setattr(wrapper, "DEFAULT_RUNC", "/nonexistent/runc")
    monkeypatch.setattr(wrapper.shutil, "which", lambda name: "/somewhere/runc")
    assert run_main(monkeypatch, ["state", "ctr"]) == [("/somewhere/runc", ["/somewhere/runc", "state", "ctr"])]


def test_main_lets_runc_report_a_missing_bundle(tmp_path, monkeypatch, capsys):
    calls = run_main(monkeypatch, ["--arcwi-real-runc=/opt/runc", "create", "-b", str(tmp_path / "gone"), "c"])
    assert calls and "cannot rewrite" in capsys.readouterr().err


# ---- docker_engine: configuration ---------------------------------------------------------------------
def test_capability_bit_is_read_from_capbnd():
    assert docker_engine.lacks_capability(24, "Name:\tx\nCapBnd:\t000001fffeffffff\n")
    assert not docker_engine.lacks_capability(24, "CapBnd:\t000001ffffffffff\n")
    assert not docker_engine.lacks_capability(24, "Name:\tx\n")


def test_layout_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(docker_engine.ROOT_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lay = docker_engine.layout()
    assert lay.root == tmp_path / "arcwi-sandbox" / "docker"
    assert lay.data == lay.root / "data" and lay.host == f"unix://{lay.root}/docker.sock"
    monkeypatch.setenv(docker_engine.ROOT_ENV, "/tmp/x")
    assert docker_engine.layout().root == Path("/tmp/x")


def test_daemon_config():
    lay = docker_engine.Layout(Path("/tmp/x"))
    plain = docker_engine.daemon_config(lay, "overlay2", None)
    assert plain["dns"] == ["127.0.0.1"] and plain["bridge"] == "none" and plain["userland-proxy"] is True
    assert plain["iptables"] is False and plain["ip-masq"] is False and plain["ip-forward"] is False
    assert plain["hosts"] == ["unix:///tmp/x/docker.sock"] and plain["storage-driver"] == "overlay2"
    assert "runtimes" not in plain and "default-runtime" not in plain
    wrapped = docker_engine.daemon_config(lay, None, "/usr/sbin/runc")
    assert "storage-driver" not in wrapped
    assert wrapped["default-runtime"] == docker_engine.RUNTIME
    assert wrapped["runtimes"][docker_engine.RUNTIME] == {"path": "/tmp/x/runc-wrapper",
                                                          "runtimeArgs": ["--arcwi-real-runc=/usr/sbin/runc"]}


def test_long_roots_are_refused(monkeypatch):
    monkeypatch.setenv(docker_engine.ROOT_ENV, "/tmp/" + "x" * 80)
    with pytest.raises(docker_engine.DockerEngineError, match="ARCWI_DOCKER_ROOT"):
        docker_engine.ensure_running()


def test_missing_dockerd_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(docker_engine, "SBIN_PATH", ())
    with pytest.raises(docker_engine.DockerEngineError, match=r"dockerd is not installed: run `make setup`"):
        docker_engine.ensure_running(docker_engine.Layout(tmp_path))


def test_no_user_docker_without_docker_host_or_socket(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_engine, "DEFAULT_SOCKET", tmp_path / "docker.sock")
    monkeypatch.setattr(docker_engine, "server_version", lambda *a, **k: pytest.fail("nothing to probe"))
    assert docker_engine.usable_docker() is None


def test_static_binaries_are_told_apart():
    assert docker_engine.is_static(BUSYBOX), "`make setup` installs busybox-static"
    assert not docker_engine.is_static("/bin/ls")  # dynamically linked
    assert not docker_engine.is_static(str(WRAPPER))


def test_a_silent_docker_host_is_not_usable(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    assert docker_engine.usable_docker() is None
    monkeypatch.setenv(docker_engine.ROOT_ENV, str(tmp_path))
    assert docker_engine.engine() == docker_engine.Engine(f"unix://{tmp_path}/docker.sock", own=True)


# ---- the daemon, for real --------------------------------------------------------------------------
def docker(lay, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_HOST=lay.host)
    result = subprocess.run([docker_engine.docker_cli(), *args], env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def busybox_tar() -> bytes:
    """A root filesystem with one static busybox and its applets as symlinks."""
    if not docker_engine.is_static(BUSYBOX):
        pytest.fail(f"{BUSYBOX} is missing or not static: `make setup` installs Debian's busybox-static")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name in ("bin", "etc", "tmp", "www"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        page = b"hello from the container\n"
        info = tarfile.TarInfo("www/index.html")
        info.size = len(page)
        tar.addfile(info, io.BytesIO(page))
    return out.getvalue()


def import_busybox(lay, tag: str = "arcwi-test/busybox:1") -> str:
    env = dict(os.environ, DOCKER_HOST=lay.host)
    result = subprocess.run([docker_engine.docker_cli(), "import", "-c", 'CMD ["/bin/sh"]', "-", tag],
                            input=busybox_tar(), env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return tag


def leftovers(text: str) -> list[str]:
    """Live processes whose command line holds TEXT (a root: dockerd, containerd, shims)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and docker_engine.alive(int(entry)):
            found.append(f"{entry}: {cmdline}")
    return found


def assert_stopped(lay, marker: str | None = None) -> None:
    assert leftovers(str(lay.root)) == []
    assert docker_engine.processes(lay) == {"dockerd": [], "containerd": [], "shim": []}
    assert docker_engine.leftover_mounts(lay) == []
    assert not lay.socket.exists() and not lay.pidfile.exists()
    if marker:
        assert leftovers(marker) == [], "a container's process outlived the daemon"


def new_root() -> docker_engine.Layout:
    return docker_engine.Layout(Path(tempfile.mkdtemp(prefix="arcwi-dk-", dir="/tmp")))


def remove_root(lay) -> None:
    docker_engine.stop(lay)
    shutil.rmtree(lay.root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_nameservers() -> set[str]:
    text = Path("/etc/resolv.conf").read_text()
    return {line.split()[1] for line in text.splitlines() if line.startswith("nameserver ") and len(line.split()) > 1}


@pytest.fixture(scope="module")
def daemon():
    """A daemon of the sandbox's kind in its own root, with the busybox image imported."""
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    links = set(os.listdir("/sys/class/net"))
    lay = new_root()
    try:
        started = time.monotonic()
        assert docker_engine.ensure_running(lay) == lay.host
        print(f"daemon answered after {time.monotonic() - started:.1f}s")
        import_busybox(lay)
        yield lay
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forward, "ip_forward changed"
        assert not {"docker0"} & (set(os.listdir("/sys/class/net")) - links), "a docker0 appeared"
        docker_engine.stop(lay)
        assert_stopped(lay)
    finally:
        remove_root(lay)


def test_ensure_running_is_idempotent(daemon):
    pid = docker_engine.status(daemon).pid
    assert pid and docker_engine.status(daemon).answers
    assert docker_engine.ensure_running(daemon) == daemon.host
    assert docker_engine.status(daemon).pid == pid


def test_storage_driver_and_runtime(daemon):
    info = json.loads(docker(daemon, "info", "--format", "{{json .}}").stdout)
    assert info["Driver"] == json.loads(daemon.config.read_text()).get("storage-driver", info["Driver"])
    if docker_engine.lacks_capability():
        assert info["DefaultRuntime"] == docker_engine.RUNTIME


def test_privileged_container_and_exec(daemon):
    name = f"priv-{uuid.uuid4().hex[:8]}"
    docker(daemon, "run", "-d", "--name", name, "--privileged", "arcwi-test/busybox:1", "sleep", "600")
    try:
        assert docker(daemon, "exec", name, "echo", "exec works").stdout.strip() == "exec works"
        assert docker(daemon, "exec", "--privileged", name, "echo", "again").stdout.strip() == "again"
        status = docker(daemon, "exec", name, "cat", "/proc/self/status").stdout
        effective = int(next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1], 16)
        assert effective >> 21 & 1, "a privileged container has CAP_SYS_ADMIN"
    finally:
        docker(daemon, "rm", "-f", name)


def test_containers_do_not_use_the_machines_resolver(daemon):
    network = f"net-{uuid.uuid4().hex[:8]}"
    docker(daemon, "network", "create", network)
    try:
        for args in ([], ["--network", network]):
            conf = docker(daemon, "run", "--rm", *args, "arcwi-test/busybox:1", "cat", "/etc/resolv.conf").stdout
            servers = {line.split()[1] for line in conf.splitlines() if line.startswith("nameserver ")}
            assert servers and servers <= {"127.0.0.1", "127.0.0.11"}, conf
            assert not servers & (host_nameservers() - {"127.0.0.1"}), conf
    finally:
        docker(daemon, "network", "rm", network)


def test_published_port_on_a_user_defined_network(daemon):
    network, name, port = f"net-{uuid.uuid4().hex[:8]}", f"web-{uuid.uuid4().hex[:8]}", free_port()
    docker(daemon, "network", "create", network)
    try:
        docker(daemon, "run", "-d", "--name", name, "--network", network, "-p", f"127.0.0.1:{port}:8080",
               "arcwi-test/busybox:1", "httpd", "-f", "-p", "8080", "-h", "/www")
        deadline, body = time.monotonic() + 30, None
        while body is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=3) as resp:
                    body = resp.read()
            except OSError:
                time.sleep(0.1)
        assert body == b"hello from the container\n"
    finally:
        docker(daemon, "rm", "-f", name, check=False)
        docker(daemon, "network", "rm", network)


def sandbox_docker(lay, action: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ARCWI_DOCKER_ROOT=str(lay.root))
    env.pop("DOCKER_HOST", None)
    return subprocess.run([sys.executable, "-m", "sandbox", "docker", action], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_users_docker_is_used_as_it_is(daemon, monkeypatch):
    """A working DOCKER_HOST (here: the test daemon, standing in for the user's) is used; the sandbox's
    own daemon is not started."""
    other = docker_engine.Layout(Path(tempfile.mkdtemp(prefix="arcwi-dk-", dir="/tmp")))
    try:
        monkeypatch.setenv("DOCKER_HOST", daemon.host)
        monkeypatch.setenv(docker_engine.ROOT_ENV, str(other.root))
        assert docker_engine.usable_docker() == docker_engine.Engine(daemon.host, own=False)
        assert docker_engine.ensure_engine() == docker_engine.Engine(daemon.host, own=False)
        up = subprocess.run([sys.executable, "-m", "sandbox", "docker", "up"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
        assert up.returncode == 0 and "using your own Docker" in up.stdout, up.stdout + up.stderr
        env = subprocess.run([sys.executable, "-m", "sandbox", "docker", "env"], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
        assert env.stdout.strip() == f"DOCKER_HOST={daemon.host}"
        assert docker_engine.processes(other)["dockerd"] == [] and not other.config.exists()
    finally:
        shutil.rmtree(other.root, ignore_errors=True)


def test_cli_restart_after_sigkill_and_stop():
    """`python -m sandbox docker up` leaves a detached daemon; after SIGKILL (and a pidfile naming
    another live process) `up` starts it again; `down` leaves no process, socket or mount behind."""
    lay = new_root()
    marker = str(86400 + int(uuid.uuid4().int % 10000))  # the container's `sleep` argument
    try:
        up = sandbox_docker(lay, "up")
        assert up.returncode == 0, up.stderr
        assert f"DOCKER_HOST={lay.host}" in up.stdout
        assert sandbox_docker(lay, "env").stdout.strip() == f"DOCKER_HOST={lay.host}"
        assert sandbox_docker(lay, "status").returncode == 0
        import_busybox(lay)
        docker(lay, "run", "-d", "--privileged", "arcwi-test/busybox:1", "sleep", marker)

        pid = docker_engine.status(lay).pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while docker_engine.processes(lay)["dockerd"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert docker_engine.status(lay).pid is None
        assert sandbox_docker(lay, "status").returncode == 3
        lay.pidfile.write_text(f"{os.getpid()}\n")  # a reused pid: dockerd would refuse to start

        started = time.monotonic()
        again = sandbox_docker(lay, "up")
        assert again.returncode == 0, again.stderr + docker_engine._tail(lay.log)
        print(f"restart after SIGKILL answered after {time.monotonic() - started:.1f}s")
        assert docker(lay, "run", "--rm", "--privileged", "arcwi-test/busybox:1", "echo", "ok").stdout.strip() == "ok"

        down = sandbox_docker(lay, "down")
        assert down.returncode == 0 and "stopped" in down.stdout
        assert_stopped(lay, marker=f"sleep {marker}")
        assert sandbox_docker(lay, "down").stdout.strip() == "docker: the sandbox's daemon was not running"
    finally:
        remove_root(lay)
