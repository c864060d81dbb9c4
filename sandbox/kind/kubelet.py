"""The control-plane node's kubelet, as far as static pods go: part of the per-cluster agent
(sandbox/kind/agent.py).

On a kind node the kubelet runs the control plane from the static pod manifests kubeadm wrote into
/etc/kubernetes/manifests (its `staticPodPath`). Editing one of them - with real kind:
`docker cp <cluster>-control-plane:/etc/kubernetes/manifests/kube-apiserver.yaml .`, edit the
command's flags, `docker cp` it back - makes the kubelet stop the old container and start one with the
new command. This module does the same for the stand-in's processes (the node filesystem and the
path mapping are sandbox/kind/node.py; `docker cp` is sandbox/kind/docker.py):

- It looks at the manifest directory every CHECK_INTERVAL seconds and compares each file's SHA-256.
  The real kubelet re-lists the directory every `fileCheckFrequency` (default 20s: kubernetes
  pkg/kubelet/apis/config/v1beta1/defaults.go, `FileCheckFrequency = 20 * time.Second`) and also
  watches it with inotify (pkg/kubelet/config/file_linux.go), so in practice it reacts within about a
  second of a `docker cp`; the stand-in's 0.5 s poll plays that.
- A changed manifest that parses: the old process is stopped (SIGTERM to its process group, SIGKILL
  after STOP_GRACE s) and the manifest's command is started, its node paths mapped to host paths
  exactly as at `kind create cluster` (extraMounts, then the node's own files). The same content
  written again changes nothing (the kubelet compares the pod's hash, not the file's mtime).
- A manifest that does not parse as a Pod: the kubelet logs `Could not process manifest file` and, on
  its next full listing, drops the pod it can no longer read, so the old container is stopped too
  (pkg/kubelet/config/file.go extractFromDir skips the file, the SET update removes the pod). The
  stand-in stops the process at once and keeps reporting the error until the file is fixed.
- A deleted manifest stops its process (the static pod is removed).
- A process that exits is restarted with a doubling back-off (restartPolicy Always, CrashLoopBackOff).
  The kubelet's back-off starts at 10 s and is capped at 5 min (pkg/kubelet/kubelet.go backOffPeriod,
  MaxContainerBackOff); the stand-in uses BACKOFF_INITIAL..BACKOFF_MAX so tests stay short. A new
  manifest starts at once, without back-off (a new pod hash means a new container).

What it sees is in the agent's state (`python -m sandbox.kind.agent info --name N`, key
`static_pods`: phase Running / Starting / CrashLoopBackOff / ManifestError / Absent, pid, restarts,
lastError, readyAfterSeconds) and in the agent log; each component's output goes to
NAME/logs/<component>.log as before. The new pids go into cluster.json (`pids`), so
`kind delete cluster` stops the processes the kubelet started.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from . import cluster, node

CHECK_INTERVAL = 0.5  # seconds; the kubelet: inotify + fileCheckFrequency 20s (see the docstring)
BACKOFF_INITIAL = 1.0  # seconds; the kubelet: 10s
BACKOFF_MAX = 10.0  # seconds; the kubelet: 300s
# seconds between SIGTERM and SIGKILL. The kubelet waits the pod's terminationGracePeriodSeconds (30s by
# default; kubeadm's manifests do not set it). kube-apiserver 1.35 stops listening at once on SIGTERM but
# here its process lingered >10s afterwards (observed), so the stand-in kills it sooner.
STOP_GRACE = 3.0


class StaticPod:
    def __init__(self, component: str, file: str):
        self.component = component
        self.file = file
        self.digest: str | None = None
        self.command: list[str] | None = None  # container command of the running / wanted pod
        self.pid: int | None = None
        self.proc: subprocess.Popen | None = None  # when this kubelet started it
        self.phase = "Absent"
        self.ready = False
        self.restarts = 0
        self.failures = 0
        self.retry_at = 0.0
        self.last_error: str | None = None
        self.last_exit: int | None = None
        self.started_at: float | None = None
        self.changed_at: float | None = None
        self.ready_after: float | None = None

    def view(self) -> dict:
        return {"manifest": f"{node.MANIFEST_DIR}/{self.file}", "digest": self.digest, "phase": self.phase,
                "pid": self.pid, "ready": self.ready, "restarts": self.restarts, "lastError": self.last_error,
                "lastExitCode": self.last_exit, "readyAfterSeconds": self.ready_after}


class Kubelet:
    def __init__(self, name: str, say):
        self.name = name
        self.say = say
        self.cdir = cluster.cluster_dir(name)
        self.state = cluster.load_state(name)
        self.fs = node.control_plane(self.cdir, self.state)
        self.binaries = self.state.get("binaries") or {}
        self.pods: dict[str, StaticPod] = {}
        self.errors: dict[str, str] = {}  # manifest file -> why it is not used
        self.seen: dict[str, str] = {}  # manifest file -> digest last handled
        # adopt the processes `kind create cluster` started from the manifests it wrote
        for component, info in (self.state.get("static_pods") or {}).items():
            pod = StaticPod(component, Path(info["manifest"]).name)
            pod.digest = info["digest"]
            pod.pid = (self.state.get("pids") or {}).get(component)
            pod.phase, pod.ready = "Running", True
            self.pods[component] = pod
            self.seen[pod.file] = info["digest"]

    # ---- processes --------------------------------------------------------------------------------------
    def _running(self, pod: StaticPod) -> bool:
        if pod.proc is not None:
            return pod.proc.poll() is None
        return bool(pod.pid and cluster._alive(pod.pid) and not cluster._zombie(pod.pid))

    def _stop(self, pod: StaticPod) -> None:
        if pod.pid and self._running(pod):
            try:
                os.killpg(pod.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + STOP_GRACE
            while self._running(pod) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._running(pod):
                try:
                    os.killpg(pod.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                while self._running(pod):
                    time.sleep(0.05)
            self.say(f"kubelet: {pod.component} (pid {pod.pid}) stopped")
        if pod.proc is not None:
            pod.proc.poll()
        pod.proc, pod.pid, pod.ready = None, None, False
        self._record(pod.component, None, None)

    def _start(self, pod: StaticPod) -> None:
        try:
            command = node.host_command(pod.command, self.binaries, self.fs)
        except (node.ManifestError, node.NodeError) as exc:
            self._failed(pod, f"RunContainerError: {exc}", None)
            return
        with open(self.cdir / "logs" / f"{pod.component}.log", "ab") as log:
            log.write(f"\n--- kubelet (arcwi stand-in): starting {pod.component} from {pod.file} "
                      f"({time.strftime('%H:%M:%S')})\n".encode())
            log.flush()
            pod.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=str(self.cdir))
        pod.pid = pod.proc.pid
        pod.phase, pod.ready, pod.started_at = "Starting", False, time.monotonic()
        self._record(pod.component, pod.pid, command)
        self.say(f"kubelet: {pod.component} (pid {pod.pid}) started from {node.MANIFEST_DIR}/{pod.file}")

    def _failed(self, pod: StaticPod, error: str, code: int | None) -> None:
        pod.failures += 1
        pod.restarts += 1 if code is not None else 0
        pod.last_error, pod.last_exit = error, code
        pod.phase, pod.ready = "CrashLoopBackOff", False
        delay = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (pod.failures - 1))
        pod.retry_at = time.monotonic() + delay
        pod.proc, pod.pid = None, None
        self._record(pod.component, None, None)
        self.say(f"kubelet: {pod.component}: {error}; back-off {delay:.0f}s restarting failed container")

    def _record(self, component: str, pid: int | None, command: list[str] | None) -> None:
        with cluster.locked_state(self.name) as state:
            state.setdefault("pids", {})[component] = pid
            if command is not None:
                state.setdefault("commands", {})[component] = command
            pod = self.pods.get(component)
            if pod is not None:
                state.setdefault("static_pods", {})[component] = {"manifest": f"{node.MANIFEST_DIR}/{pod.file}",
                                                                  "digest": pod.digest}

    # ---- manifests --------------------------------------------------------------------------------------
    def _read(self) -> dict[str, bytes]:
        mdir = self.fs.host_path(node.MANIFEST_DIR)
        out = {}
        if mdir.is_dir():
            for entry in sorted(mdir.iterdir()):
                # the kubelet ignores hidden files (pkg/kubelet/config/file.go)
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                try:
                    out[entry.name] = entry.read_bytes()
                except OSError:
                    continue
        return out

    def step(self) -> bool:
        """One look at the manifests and the processes; True when something changed."""
        changed = False
        files = self._read()
        digests = {f: node.digest(data) for f, data in files.items()}
        # removed manifests: the static pod goes
        for pod in list(self.pods.values()):
            if pod.file not in files and pod.phase != "Absent":
                self.say(f"kubelet: {node.MANIFEST_DIR}/{pod.file} removed: stopping {pod.component}")
                self._stop(pod)
                pod.phase, pod.digest, pod.command, pod.last_error = "Absent", None, None, None
                self.seen.pop(pod.file, None)
                changed = True
        for f in list(self.errors):
            if f not in files:
                self.errors.pop(f)
                self.seen.pop(f, None)
                changed = True
        # new or changed manifests
        for f, data in files.items():
            if self.seen.get(f) == digests[f]:
                continue
            self.seen[f] = digests[f]
            changed = True
            now = time.monotonic()
            source = f"{node.MANIFEST_DIR}/{f}"
            try:
                _, command = node.parse(data.decode("utf-8", errors="replace"), source)
                component = os.path.basename(command[0])
                if component not in node.STATIC_PODS:
                    raise node.ManifestError(f"{source}: the stand-in runs only {', '.join(node.STATIC_PODS)} "
                                             f"as static pods, not {command[0]!r}")
                owner = self.pods.get(component)
                if owner is not None and owner.file != f and owner.file in files:
                    raise node.ManifestError(f"{source}: static pod {component} is already defined by "
                                             f"{node.MANIFEST_DIR}/{owner.file}")
            except node.ManifestError as exc:
                self.errors[f] = str(exc)
                self.say(f"kubelet: Could not process manifest file: {exc}")
                for pod in self.pods.values():
                    if pod.file == f and pod.phase != "ManifestError":
                        self._stop(pod)
                        pod.phase, pod.digest, pod.last_error = "ManifestError", digests[f], str(exc)
                        pod.changed_at = now
                continue
            self.errors.pop(f, None)
            pod = self.pods.get(component)
            if pod is None:
                pod = self.pods[component] = StaticPod(component, f)
            pod.file = f
            if pod.command == command and pod.phase in ("Running", "Starting"):
                pod.digest = digests[f]  # same pod (e.g. only a comment changed): the kubelet keeps it
                continue
            self.say(f"kubelet: {source} changed: restarting {component}")
            self._stop(pod)
            pod.digest, pod.command, pod.changed_at = digests[f], command, now
            pod.failures, pod.retry_at, pod.last_error, pod.ready_after = 0, 0.0, None, None
            self._start(pod)
        # supervise: crash loops, readiness
        for pod in self.pods.values():
            if pod.phase in ("Absent", "ManifestError"):
                continue
            if pod.command is None:
                # adopted from create: the command is the manifest's, read it once when needed
                data = files.get(pod.file)
                if data is not None:
                    try:
                        pod.command = node.parse(data.decode("utf-8", errors="replace"), pod.file)[1]
                    except node.ManifestError:
                        pass
            if pod.phase in ("Running", "Starting") and not self._running(pod):
                code = pod.proc.returncode if pod.proc is not None else None
                tail = _tail(self.cdir / "logs" / f"{pod.component}.log")
                self._failed(pod, f"{pod.component} exited ({'code %s' % code if code is not None else 'gone'})"
                                  + (f": {tail}" if tail else ""), code if code is not None else -1)
                changed = True
            elif pod.phase == "CrashLoopBackOff" and time.monotonic() >= pod.retry_at and pod.command:
                self._start(pod)
                changed = True
            elif pod.phase == "Starting" and cluster._probe(self.state, pod.component, self.state["ports"]):
                pod.phase, pod.ready, pod.failures = "Running", True, 0
                if pod.changed_at is not None:
                    pod.ready_after = round(time.monotonic() - pod.changed_at, 2)
                self.say(f"kubelet: {pod.component} (pid {pod.pid}) ready"
                         + (f", {pod.ready_after}s after the manifest changed" if pod.ready_after else ""))
                changed = True
        return changed

    def view(self) -> dict:
        out = {c: p.view() for c, p in sorted(self.pods.items())}
        for f, err in sorted(self.errors.items()):
            if not any(p.file == f for p in self.pods.values()):
                out[f"file:{f}"] = {"manifest": f"{node.MANIFEST_DIR}/{f}", "phase": "ManifestError",
                                    "lastError": err}
        return out

    def shutdown(self) -> None:
        """Reap the children this kubelet started (they keep running: `kind delete cluster` stops them)."""
        for pod in self.pods.values():
            if pod.proc is not None:
                pod.proc.poll()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip()[:300] for line in text[-lines:])
