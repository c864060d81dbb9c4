"""The Docker Engine the sandbox uses: the user's own when it works, else a daemon of the sandbox's own.

    python -m sandbox docker up|down|status|env     (or python -m sandbox.docker_engine ...)
    python -m sandbox.docker_engine install         what `make setup` runs: apt-get install docker.io
                                                    (and busybox-static for the tests) when needed

A user's own Docker is used as it is: when DOCKER_HOST is set, or /var/run/docker.sock exists, and
`docker version` answers within a few seconds. Otherwise the sandbox runs its own dockerd (Debian's
docker.io), one per user on the machine, shared by every sandbox home and checkout so that the big
node images are cached once. Its files live in ${ARCWI_DOCKER_ROOT:-${XDG_CACHE_HOME:-~/.cache}/
arcwi-sandbox/docker}: data/ (data-root), run/ (exec-root), daemon.json (written here), dockerd.pid,
docker.sock (clients: DOCKER_HOST=unix://ROOT/docker.sock), dockerd.log, runc-wrapper.

Measured on the sandbox's machines (2 cores, Debian 12, dockerd 20.10.24, containerd 1.6.20, runc
1.1.5, cgroup v1, ext4, PID 1 is not an init that reaps at once):
- the daemon answers `docker version` about 0.9 s after it is spawned (cold data-root: same);
  it stops in about 1 s with no containers;
- `"bridge": "none"` leaves no docker0; `docker run` without --network then gets only a loopback,
  a user-defined network (kind's "kind") is a bridge br-... whose gateway is the host;
- with `"iptables": false` nothing is added to the host's iptables, and with `"ip-forward": false`
  dockerd leaves net.ipv4.ip_forward as it is (0 here: containers have no route out through the
  host). The docker CLI then warns "IPv4 forwarding is disabled. Networking will not work." on
  every run: true for the outside world only, container <-> host and container <-> container on one
  network work;
- `"userland-proxy": true`: `docker run -p 127.0.0.1:PORT:PORT` on a user-defined network reaches a
  server in the container without iptables (docker-proxy listens on the host);
- `"dns": ["127.0.0.1"]`: a container without a network gets `nameserver 127.0.0.1` (its own
  loopback), one on a user-defined network docker's embedded 127.0.0.11, which forwards to the
  host's 127.0.0.1:53 where nothing answers; without it both are forwarded to the machine's resolver;
- overlay2 works on ext4 (checked with a test mount before the first start; when it does not,
  dockerd chooses its storage driver itself and we say so);
- the capability bounding set lacks CAP_SYS_RESOURCE (CapBnd 000001fffeffffff): `docker run
  --privileged` fails ("unable to apply caps: operation not permitted") unless the default runtime is
  sandbox/docker/runc-wrapper; with it, a privileged container runs and `docker exec` into it works;
- after SIGKILL of dockerd its containerd dies too (parent-death signal) but the shims and the
  containers live on; a new dockerd starts anyway, reaps them ("cleaning up after shim
  disconnected", about 10 s later) and marks the containers exited;
- dockerd bind-mounts its data-root onto itself and leaves that mount behind at shutdown; `stop`
  removes it.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "ARCWI_DOCKER_ROOT"
DEFAULT_SOCKET = Path("/var/run/docker.sock")
PROBE_TIMEOUT = 5.0  # a user's Docker must answer `docker version` within this
START_TIMEOUT = 90.0  # the daemon answers in about 1 s; restarting after a crash can take 10 s more
STOP_TIMEOUT = 60.0  # dockerd stops each running container first (SIGTERM, 15 s, then SIGKILL)
POLL = 0.1
SOCKET_LIMIT = 100  # sun_path holds 108 bytes; keep a margin
# the longest socket path dockerd and containerd make under the exec-root (measured: 20.10 / 1.6)
LONGEST_SOCKET = "containerd/containerd.sock.ttrpc"
CAP_SYS_RESOURCE = 24
RUNTIME = "arcwi-runc"
WRAPPER_SOURCE = Path(__file__).resolve().parent / "docker" / "runc-wrapper"
INSTALL_HINT = "run `make setup`, which installs Debian's docker.io"
SBIN_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
LOG_ROTATE_BYTES = 20 * 1024 * 1024
_STARTED: list[subprocess.Popen] = []  # daemons spawned by this process: kept, so that no Popen warns "still running"


class DockerEngineError(Exception):
    """The sandbox's Docker daemon cannot be used; the message names the cause and the fix."""


@dataclass(frozen=True)
class Engine:
    """The Docker Engine the sandbox uses.

    host: what clients put in DOCKER_HOST, or None for the docker CLI's own default (the user's
    /var/run/docker.sock or docker context, which DOCKER_HOST would override). own: the sandbox's daemon.
    """

    host: str | None
    own: bool


@dataclass(frozen=True)
class Layout:
    """Where one sandbox daemon keeps its files (ROOT: see the module docstring)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "run"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def config(self) -> Path:
        return self.root / "daemon.json"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def wrapper(self) -> Path:
        return self.root / "runc-wrapper"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def containerd_config(self) -> Path:
        return self.exec_root / "containerd" / "containerd.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.exec_root / "containerd" / "containerd.sock"


@dataclass(frozen=True)
class Status:
    """What `status()` finds: the daemon's pid (None: not running) and whether it answers."""

    pid: int | None
    answers: bool
    layout: Layout


def layout() -> Layout:
    """The daemon's files: $ARCWI_DOCKER_ROOT, else $XDG_CACHE_HOME or ~/.cache, /arcwi-sandbox/docker."""
    root = os.environ.get(ROOT_ENV)
    if not root:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(cache, "arcwi-sandbox", "docker")
    return Layout(Path(os.path.abspath(os.path.expanduser(root))))


# ---- the docker CLI -----------------------------------------------------------------------------
def docker_cli() -> str:
    """The docker CLI on PATH, passing over sandbox/bin/docker (the kind stand-in's, which has no
    `version`); "docker" when there is none (running it then fails as not installed)."""
    stand_in = (Path(__file__).resolve().parent / "bin").resolve()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "docker"
        if os.access(candidate, os.X_OK) and candidate.resolve().parent != stand_in:
            return str(candidate)
    return "docker"


def server_version(host: str | None, timeout: float = PROBE_TIMEOUT) -> str | None:
    """The server version `docker version` reports through HOST (None: the CLI's default), or None."""
    env = dict(os.environ)
    if host is None:
        env.pop("DOCKER_HOST", None)
    else:
        env["DOCKER_HOST"] = host
    try:
        out = subprocess.run([docker_cli(), "version", "--format", "{{.Server.Version}}"], env=env,
                             capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    version = out.stdout.strip()
    return version if out.returncode == 0 and version else None


def usable_docker() -> Engine | None:
    """The user's own Docker when present and answering, else None (then the sandbox's daemon is used).

    Present: DOCKER_HOST is set, or /var/run/docker.sock exists. A DOCKER_HOST that names the
    sandbox's own socket counts as the sandbox's daemon (own=True)."""
    host = os.environ.get("DOCKER_HOST") or None
    if host is None and not DEFAULT_SOCKET.exists():
        return None
    if server_version(host) is None:
        return None
    return Engine(host, own=host == layout().host)


def engine() -> Engine:
    """The Engine clients should use now: the user's own when usable, else the sandbox's (maybe not
    started yet)."""
    return usable_docker() or Engine(layout().host, own=True)


def ensure_engine() -> Engine:
    """The user's own Docker when usable, else the sandbox's daemon, started if needed."""
    user = usable_docker()
    if user is not None:
        return user
    if os.environ.get("DOCKER_HOST") and os.environ["DOCKER_HOST"] != layout().host:
        print(f"docker: DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer; using the sandbox's own daemon",
              file=sys.stderr)
    return Engine(ensure_running(), own=True)


# ---- the machine ------------------------------------------------------------------------------
def lacks_capability(bit: int = CAP_SYS_RESOURCE, status_text: str | None = None) -> bool:
    """True when this process's capability bounding set (CapBnd in /proc/self/status) lacks BIT."""
    if status_text is None:
        status_text = Path("/proc/self/status").read_text()
    for line in status_text.splitlines():
        if line.startswith("CapBnd:"):
            return not (int(line.split()[1], 16) >> bit) & 1
    return False


def _search_path() -> str:
    """PATH with the sbin directories added: dockerd, runc and docker-proxy live there."""
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    return os.pathsep.join(parts + [p for p in SBIN_PATH if p not in parts])


def _binary(name: str) -> str:
    found = shutil.which(name, path=_search_path())
    if found is None:
        raise DockerEngineError(f"{name} is not installed: {INSTALL_HINT}")
    return found


def _python3() -> str:
    """An interpreter for the wrapper that outlives any virtualenv (the daemon is shared)."""
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.realpath(sys.executable)


def _check_paths(lay: Layout) -> None:
    longest = max(len(str(lay.socket)), len(str(lay.exec_root / LONGEST_SOCKET)))
    if longest >= SOCKET_LIMIT:
        raise DockerEngineError(f"the Docker daemon's socket paths under {lay.root} would be {longest} characters "
                                f"(a unix socket path must stay under {SOCKET_LIMIT}): set {ROOT_ENV} to a "
                                "shorter directory")


def overlay_works(directory: Path) -> bool:
    """Whether an overlay filesystem can be mounted with its layers under DIRECTORY (what overlay2 needs)."""
    directory.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix="overlay-probe-", dir=directory))
    try:
        for name in ("lower", "upper", "work", "merged"):
            (probe / name).mkdir()
        (probe / "lower" / "file").write_text("lower")
        options = f"lowerdir={probe / 'lower'},upperdir={probe / 'upper'},workdir={probe / 'work'}"
        mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(probe / "merged")],
                                 capture_output=True).returncode == 0
        if not mounted:
            return False
        try:
            return (probe / "merged" / "file").read_text() == "lower"
        finally:
            subprocess.run(["umount", str(probe / "merged")], capture_output=True)
    except OSError:
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


# ---- the daemon's configuration ---------------------------------------------------------------------
def daemon_config(lay: Layout, storage_driver: str | None, wrapper_runc: str | None,
                  proxy: str | None = None) -> dict:
    """daemon.json. WRAPPER_RUNC: the real runc when the wrapper must be the default runtime, else None."""
    config: dict = {
        "data-root": str(lay.data),
        "exec-root": str(lay.exec_root),
        "pidfile": str(lay.pidfile),
        "hosts": [lay.host],
        # nothing in the sandbox needs outside names; without this, containers' lookups are forwarded to
        # the machine's resolver
        "dns": ["127.0.0.1"],
        # nothing system-wide: no iptables rules, no NAT, net.ipv4.ip_forward left as it is, no docker0
        # (kind makes its own network); containers have no route out
        "iptables": False,
        "ip-masq": False,
        "ip-forward": False,
        "bridge": "none",
        # without iptables, published ports (-p 127.0.0.1:PORT:PORT) work only through docker-proxy
        "userland-proxy": True,
    }
    if proxy:
        config["userland-proxy-path"] = proxy
    if storage_driver:
        config["storage-driver"] = storage_driver
    if wrapper_runc:
        config["runtimes"] = {RUNTIME: {"path": str(lay.wrapper),
                                        "runtimeArgs": [f"--arcwi-real-runc={wrapper_runc}"]}}
        config["default-runtime"] = RUNTIME
    return config


def _storage_driver(lay: Layout) -> str | None:
    """overlay2, or None (dockerd chooses) when overlay mounts fail. Kept from an existing daemon.json:
    images stored with one driver are invisible to another."""
    try:
        previous = json.loads(lay.config.read_text())
    except (FileNotFoundError, ValueError):
        previous = {}
    if previous.get("storage-driver"):
        return previous["storage-driver"]
    if overlay_works(lay.data):
        return "overlay2"
    print(f"docker: overlay mounts do not work under {lay.data}: overlay2 is not used, dockerd chooses its "
          "storage driver itself (see `docker info`; vfs copies every layer: slow and big)", file=sys.stderr)
    return None


def _write_if_changed(path: Path, content: str, mode: int = 0o644) -> None:
    try:
        if path.read_text() == content and (path.stat().st_mode & 0o777) == mode:
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content)
    tmp.chmod(mode)
    os.replace(tmp, path)


def write_config(lay: Layout) -> dict:
    """Write daemon.json (and install the runc wrapper when this machine needs it); returns the config.

    The wrapper is copied into the daemon's root, not run from the checkout: the daemon is shared by
    every checkout and must not depend on one of them."""
    wrap = lacks_capability()
    runc = _binary("runc") if wrap else None
    if wrap:
        source = WRAPPER_SOURCE.read_text()
        body = source.split("\n", 1)[1] if source.startswith("#!") else source
        _write_if_changed(lay.wrapper, f"#!{_python3()}\n{body}", 0o755)
    proxy = shutil.which("docker-proxy", path=_search_path())
    config = daemon_config(lay, _storage_driver(lay), runc, proxy)
    _write_if_changed(lay.config, json.dumps(config, indent=2) + "\n")
    return config


# ---- processes -------------------------------------------------------------------------------------
def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of PID from /proc, or None when it is gone."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    fields = raw.rsplit(b")", 1)[1].split()
    return fields[0].decode(), int(fields[1])


def alive(pid: int) -> bool:
    """Whether PID runs. A zombie does not: reaped here when it is our child (dockerd that we spawned),
    else it waits for an init that may reap late."""
    stat = _stat(pid)
    if stat is None:
        return False
    if stat[0] in ("Z", "X"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _argv(pid: int) -> list[str]:
    raw = _read(f"/proc/{pid}/cmdline") or b""
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _flag(argv: list[str], name: str) -> str | None:
    """The value of option NAME in ARGV (`NAME VALUE` or `NAME=VALUE`)."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _role(argv: list[str], lay: Layout) -> str | None:
    """dockerd, containerd or shim when ARGV is one of this daemon's processes (matched by its paths)."""
    if not argv:
        return None
    name = os.path.basename(argv[0])
    if name == "dockerd" and _flag(argv, "--config-file") == str(lay.config):
        return "dockerd"
    if name == "containerd" and _flag(argv, "--config") == str(lay.containerd_config):
        return "containerd"
    if name.startswith("containerd-shim") and _flag(argv, "-address") == str(lay.containerd_socket):
        return "shim"
    return None


def processes(lay: Layout | None = None) -> dict[str, list[int]]:
    """This daemon's running processes by role: dockerd, containerd, shim."""
    lay = lay or layout()
    found: dict[str, list[int]] = {"dockerd": [], "containerd": [], "shim": []}
    for pid in _pids():
        role = _role(_argv(pid), lay)
        if role and alive(pid):
            found[role].append(pid)
    return found


def _descendants(pids: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    out, todo = [], list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Poll until PIDS are gone or TIMEOUT passes; returns those still alive."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(POLL)
        left = [p for p in left if alive(p)]
    return left


def _kill_leftovers(lay: Layout) -> None:
    """Kill what a dead dockerd left running: containerd and the shims with their containers. A new
    dockerd would stop those containers itself, but with SIGTERM and a 10 s grace each (measured: a
    restart after SIGKILL took 11 s with one container left, 1 s once it is gone)."""
    _terminate(processes(lay)["containerd"], 10)
    shims = processes(lay)["shim"]
    tree = shims + _descendants(shims)
    _signal(tree, signal.SIGKILL)
    _wait_gone(tree, 10)


def _terminate(pids: list[int], timeout: float) -> None:
    """SIGTERM, wait up to TIMEOUT, SIGKILL what is left (and wait for it briefly)."""
    _signal(pids, signal.SIGTERM)
    left = _wait_gone(pids, timeout)
    if left:
        _signal(left, signal.SIGKILL)
        _wait_gone(left, 10)


# ---- mounts -----------------------------------------------------------------------------------------
def _mounts() -> list[tuple[str, str]]:
    """(root within its filesystem, mount point) of this namespace's mounts, in mount order."""
    def unescape(field: str) -> str:
        return field.encode().decode("unicode_escape") if "\\" in field else field
    out = []
    for line in (_read("/proc/self/mountinfo") or b"").decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) > 4:
            out.append((unescape(fields[3]), unescape(fields[4])))
    return out


def leftover_mounts(lay: Layout) -> list[str]:
    """Mounts the daemon made and left: anything below data/ or run/, and data/ bound onto itself."""
    found = []
    for fs_root, point in _mounts():
        below = any(point.startswith(f"{d}/") for d in (lay.data, lay.exec_root))
        self_bind = point == str(lay.data) and fs_root != "/"  # a filesystem mounted there has root /
        if below or self_bind:
            found.append(point)
    return found


def _unmount(lay: Layout) -> None:
    for point in sorted(set(leftover_mounts(lay)), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


# ---- lifecycle --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(lay: Layout):
    """One start or stop at a time per daemon (several sandbox homes may start it at once)."""
    lay.root.mkdir(parents=True, exist_ok=True)
    with open(lay.lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def status(lay: Layout | None = None) -> Status:
    """Whether the sandbox's daemon runs (its dockerd process) and answers `docker version`."""
    lay = lay or layout()
    daemons = processes(lay)["dockerd"]
    pid = daemons[0] if daemons else None
    return Status(pid, pid is not None and server_version(lay.host) is not None, lay)


def _clear_stale(lay: Layout) -> None:
    """What a killed daemon left that would stop, slow or mislead a new one: its containerd, shims and
    containers (_kill_leftovers), its pidfile (the pid may be reused, and dockerd refuses to start while
    a pidfile names a live process), its socket, and containerd's pidfile."""
    _kill_leftovers(lay)
    for path in (lay.pidfile, lay.socket):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with contextlib.suppress(FileNotFoundError):
        (lay.exec_root / "containerd" / "containerd.pid").unlink()


def _rotate(log: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(log, log.with_name(log.name + ".1"))


def _spawn(lay: Layout) -> tuple[subprocess.Popen, int]:
    """Start dockerd detached (its own session: it outlives the caller); returns it and the log
    offset where its output starts."""
    dockerd = _binary("dockerd")
    _binary("containerd")
    _rotate(lay.log)
    env = dict(os.environ, PATH=_search_path())
    for name in ("DOCKER_HOST", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"):
        env.pop(name, None)
    with open(lay.log, "ab") as log:
        offset = log.tell()
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} started by sandbox/docker_engine.py\n".encode())
        log.flush()
        proc = subprocess.Popen([dockerd, "--config-file", str(lay.config)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd="/", start_new_session=True)
    _STARTED.append(proc)
    return proc, offset


def _tail(log: Path, offset: int = 0, lines: int = 25) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return "  (no log)"
    return "\n".join("  " + line for line in text.splitlines()[-lines:])


def _wait_answer(lay: Layout, proc: subprocess.Popen | None, offset: int, timeout: float) -> None:
    """Poll `docker version` until the daemon answers; raise with the log's tail when it exits or
    TIMEOUT passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DockerEngineError(f"the sandbox's Docker daemon exited with code {proc.returncode} while "
                                    f"starting; last lines of {lay.log}:\n{_tail(lay.log, offset)}")
        if proc is None and not processes(lay)["dockerd"]:
            raise DockerEngineError(f"the sandbox's Docker daemon is gone; last lines of {lay.log}:\n"
                                    f"{_tail(lay.log, offset)}")
        if server_version(lay.host, timeout=max(1.0, min(PROBE_TIMEOUT, deadline - time.monotonic()))):
            return
        time.sleep(POLL)
    raise DockerEngineError(f"the sandbox's Docker daemon did not answer within {timeout:.0f}s; last lines of "
                            f"{lay.log}:\n{_tail(lay.log, offset)}")


def _check_can_run() -> None:
    _binary("dockerd")
    if shutil.which(docker_cli()) is None:
        raise DockerEngineError(f"the docker CLI is not installed: {INSTALL_HINT} (it has one)")
    if os.geteuid() != 0:
        raise DockerEngineError("the sandbox's Docker daemon needs root (dockerd is not run rootless here): run as "
                                "root, or give the sandbox your own Docker with DOCKER_HOST")


def ensure_running(lay: Layout | None = None, timeout: float = START_TIMEOUT) -> str:
    """Start the sandbox's daemon unless it runs and answers; returns its DOCKER_HOST. Idempotent."""
    lay = lay or layout()
    _check_can_run()
    _check_paths(lay)
    with _locked(lay):
        daemons = processes(lay)["dockerd"]
        if daemons:  # running: answering, or still starting (another caller's start)
            _wait_answer(lay, None, 0, timeout)
            return lay.host
        _clear_stale(lay)
        lay.data.mkdir(parents=True, exist_ok=True)
        lay.exec_root.mkdir(parents=True, exist_ok=True)
        write_config(lay)
        started = time.monotonic()
        proc, offset = _spawn(lay)
        try:
            _wait_answer(lay, proc, offset, timeout)
        except DockerEngineError:
            if proc.poll() is None:
                _terminate([proc.pid], 10)
            raise
        print(f"docker: the sandbox's Docker daemon answers after {time.monotonic() - started:.1f}s "
              f"(DOCKER_HOST={lay.host})")
    return lay.host


def stop(lay: Layout | None = None, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the sandbox's daemon: SIGTERM dockerd (it stops the containers and containerd), SIGKILL what
    is left after TIMEOUT; then make sure containerd, the shims (with their containers) and docker-proxy
    are gone, and remove the mounts it left. True when something was running."""
    lay = lay or layout()
    if not lay.root.exists():
        return False
    with _locked(lay):
        procs = processes(lay)
        daemons = procs["dockerd"]
        proxies = [p for p in _descendants(daemons) if os.path.basename((_argv(p) or [""])[0]) == "docker-proxy"]
        _terminate(daemons, timeout)
        _kill_leftovers(lay)
        _terminate([p for p in proxies if alive(p)], 5)
        for path in (lay.pidfile, lay.socket):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        _unmount(lay)
        return any(procs.values())


# ---- setup ------------------------------------------------------------------------------------------
def is_static(path: str) -> bool:
    """Whether PATH is an ELF executable without a program interpreter (a static binary)."""
    import struct
    raw = _read(path)
    if not raw or raw[:4] != b"\x7fELF" or raw[4] != 2:  # 64-bit ELF only
        return False
    endian = "<" if raw[5] == 1 else ">"
    phoff, = struct.unpack_from(endian + "Q", raw, 0x20)
    phentsize, phnum = struct.unpack_from(endian + "HH", raw, 0x36)
    pt_interp = 3
    return all(struct.unpack_from(endian + "I", raw, phoff + i * phentsize)[0] != pt_interp
               for i in range(phnum))


def missing_packages() -> list[str]:
    """Debian packages the sandbox's daemon and its tests need and this machine lacks."""
    packages = []
    if usable_docker() is None and shutil.which("dockerd", path=_search_path()) is None:
        packages.append("docker.io")
    if not is_static("/bin/busybox"):  # the tests' container image: one static busybox
        packages.append("busybox-static")
    if shutil.which("debootstrap", path=_search_path()) is None:  # the node images' Debian root (sandbox/nodeimage)
        packages.append("debootstrap")
    return packages


def install() -> int:
    """`make setup`: apt-get install what missing_packages() names, and say what was done."""
    packages = missing_packages()
    if not packages:
        user = usable_docker()
        where = (f"your own Docker ({user.host or 'the docker CLI default'})" if user is not None
                 else f"dockerd {shutil.which('dockerd', path=_search_path())}")
        print(f"setup: Docker Engine present: {where}; nothing to install")
        return 0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"setup: missing Debian packages {' '.join(packages)}: install them as root "
              f"(apt-get install {' '.join(packages)})", file=sys.stderr)
        return 1
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"setup: installing {' '.join(packages)} (apt-get update, apt-get install -y)")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        if subprocess.run(command, env=env).returncode != 0:
            print(f"setup: `{' '.join(command)}` failed", file=sys.stderr)
            return 1
    print(f"setup: installed {' '.join(packages)}")
    return 0


# ---- command line -----------------------------------------------------------------------------------
def cmd_up() -> int:
    user = usable_docker()
    if user is not None and not user.own:
        print(f"docker: using your own Docker ({user.host or 'the docker CLI default'}); the sandbox's daemon "
              "is not started")
        return 0
    host = ensure_running()
    print(f"DOCKER_HOST={host}")
    return 0


def cmd_down() -> int:
    print("docker: the sandbox's Docker daemon stopped" if stop() else "docker: the sandbox's daemon was not running")
    return 0


def cmd_status() -> int:
    current = status()
    lay = current.layout
    if current.pid is not None:
        print(f"docker: the sandbox's daemon runs, pid {current.pid}, "
              f"{'answers' if current.answers else 'does not answer'}; DOCKER_HOST={lay.host}; files in {lay.root}")
        return 0 if current.answers else 1
    user = usable_docker()
    if user is not None:
        print(f"docker: using your own Docker ({user.host or 'the docker CLI default'})")
        return 0
    print(f"docker: the sandbox's daemon is not running (files in {lay.root})")
    return 3


def cmd_env() -> int:
    current = engine()
    if current.host:
        print(f"DOCKER_HOST={current.host}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox docker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "status", "env", "install"])
    args = parser.parse_args(argv)
    try:
        return {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env, "install": install}[args.action]()
    except DockerEngineError as exc:
        print(f"docker: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
