"""Changing a stand-in cluster's control-plane flags in place, the way one does it with real kind.

With kind the control-plane node is a Docker container whose kubelet runs the static pods kubeadm
wrote to /etc/kubernetes/manifests; one copies kube-apiserver.yaml out with `docker cp`, edits the
container command's flags, copies it back, and the kubelet restarts the apiserver with them. The
stand-in writes the same manifests into the node's filesystem (sandbox/kind/node.py), the per-cluster
agent plays the kubelet (sandbox/kind/kubelet.py) and sandbox/bin/docker plays `docker ps/cp/exec`
(sandbox/kind/docker.py).

Sources: kubeadm's static pod manifests (kubernetes cmd/kubeadm/app/phases/controlplane/manifests.go,
flags sorted by name, container paths under /etc/kubernetes/pki); kubelet static pods (the
staticPodPath directory is re-read every fileCheckFrequency, default 20s, pkg/kubelet/apis/config/
v1beta1/defaults.go, plus an inotify watch, pkg/kubelet/config/file_linux.go; an unreadable manifest
is logged "Could not process manifest file" and its pod dropped, pkg/kubelet/config/file.go);
`docker cp` semantics (docs.docker.com/reference/cli/docker/container/cp/: a file to a missing DEST is
created there, the parent must exist, an existing file is overwritten); kube-apiserver verifying with
every --service-account-key-file and signing with --service-account-signing-key-file, the kid being
base64url(SHA-256(DER SubjectPublicKeyInfo)).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import REPO, binary_paths, needs_binaries

KIND = str(REPO / "sandbox" / "bin" / "kind")
DOCKER = str(REPO / "sandbox" / "bin" / "docker")
MANIFESTS = "/etc/kubernetes/manifests"

pytestmark = needs_binaries("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")


# ---- helpers ----------------------------------------------------------------------------------------------
def run(*args, check=True, timeout=60, input=None) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, input=input)
    if check:
        assert out.returncode == 0, f"{args} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def docker(*args, check=True) -> subprocess.CompletedProcess:
    return run(DOCKER, *args, check=check)


def kubectl(kubeconfig: str, *args, check=True, input=None) -> subprocess.CompletedProcess:
    return run(binary_paths()["kubectl"], "--kubeconfig", kubeconfig, *args, check=check, input=input)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """Poll PREDICATE until it returns something truthy (its value) or fail after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (subprocess.SubprocessError, OSError, ValueError, AssertionError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def discovery(kubeconfig: str) -> dict:
    return json.loads(kubectl(kubeconfig, "get", "--raw", "/.well-known/openid-configuration").stdout)


def jwks_kids(kubeconfig: str) -> list[str]:
    return sorted(k["kid"] for k in json.loads(kubectl(kubeconfig, "get", "--raw", "/openid/v1/jwks").stdout)["keys"])


def kid_of_pem(pem: bytes) -> str:
    try:
        public = serialization.load_pem_public_key(pem)
    except ValueError:
        public = serialization.load_pem_private_key(pem, None).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def token_kid(token: str) -> str:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def new_token(kubeconfig: str) -> str:
    return wait_until(lambda: kubectl(kubeconfig, "create", "token", "rotation", "-n", "default").stdout.strip(),
                      what="kubectl create token")


def authenticated(kubeconfig: str, token: str) -> bool:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    out = kubectl(kubeconfig, "create", "-o", "json", "-f", "-", input=json.dumps(review))
    return bool(json.loads(out.stdout)["status"].get("authenticated"))


def agent_info(name: str) -> dict:
    return json.loads(run(sys.executable, "-m", "sandbox.kind.agent", "info", "--name", name).stdout)


def pod_view(name: str, component: str) -> dict:
    return (agent_info(name).get("static_pods") or {}).get(component) or {}


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def state_of(name: str) -> dict:
    from sandbox.kind.cluster import load_state
    return load_state(name)


def read_manifest(node_name: str, component: str, tmp_path: Path) -> dict:
    local = tmp_path / f"{component}-{uuid.uuid4().hex[:6]}.yaml"
    docker("cp", f"{node_name}:{MANIFESTS}/{component}.yaml", local)
    return yaml.safe_load(local.read_text())


def edit_manifest(node_name: str, component: str, tmp_path: Path, change) -> None:
    """docker cp the manifest out, CHANGE(command) -> new command, docker cp it back (as with real kind)."""
    doc = read_manifest(node_name, component, tmp_path)
    container = doc["spec"]["containers"][0]
    container["command"] = change(list(container["command"]))
    local = tmp_path / f"{component}-edited.yaml"
    local.write_text(yaml.safe_dump(doc, sort_keys=False))
    docker("cp", local, f"{node_name}:{MANIFESTS}/{component}.yaml")


def set_flag(name: str, value: str):
    def change(command):
        return [a for a in command if not a.startswith(f"--{name}=")] + [f"--{name}={value}"]
    return change


def rsa_pair(directory: Path, stem: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / f"{stem}.key"
    public = directory / f"{stem}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    os.chmod(private, 0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture
def cluster(tmp_path):
    """`make(workers=0, mount_keys=False)` -> (name, kubeconfig, keys dir); every cluster is deleted after."""
    created = []

    def make(workers: int = 0, mount_keys: bool = False):
        name = "m" + uuid.uuid4().hex[:6]
        keys = tmp_path / f"keys-{name}"
        keys.mkdir()
        node = "- role: control-plane\n"
        if mount_keys:  # as roles/kind_cluster does: the signing key pair comes from the host
            rsa_pair(keys, "sa")
            node += (f"  extraMounts:\n  - hostPath: {keys / 'sa.key'}\n    containerPath: /etc/kubernetes/pki/sa.key\n"
                     f"  - hostPath: {keys / 'sa.pub'}\n    containerPath: /etc/kubernetes/pki/sa.pub\n")
        node += "- role: worker\n" * workers
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(f"kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n{node}")
        kubeconfig = tmp_path / f"{name}.kubeconfig"
        run(KIND, "create", "cluster", "--name", name, "--config", cfg, "--kubeconfig", kubeconfig, "--wait", "60s",
            timeout=300)
        created.append((name, kubeconfig))
        return name, str(kubeconfig), keys

    yield make
    for name, kubeconfig in created:
        run(KIND, "delete", "cluster", "--name", name, "--kubeconfig", kubeconfig, check=False, timeout=120)


# ---- tests --------------------------------------------------------------------------------------------------
def test_manifests_are_kubeadms_and_their_flags_are_the_running_processes(cluster, tmp_path):
    name, _, keys = cluster(mount_keys=True)
    node_name = f"{name}-control-plane"
    listed = docker("exec", node_name, "ls", MANIFESTS).stdout.split()
    assert listed == ["etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
    state = state_of(name)
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        doc = yaml.safe_load(docker("exec", node_name, "cat", f"{MANIFESTS}/{component}.yaml").stdout)
        assert (doc["apiVersion"], doc["kind"]) == ("v1", "Pod")
        assert doc["metadata"]["namespace"] == "kube-system" and doc["metadata"]["name"] == component
        assert doc["metadata"]["labels"] == {"component": component, "tier": "control-plane"}
        assert doc["spec"]["hostNetwork"] is True and doc["spec"]["priorityClassName"] == "system-node-critical"
        container = doc["spec"]["containers"][0]
        assert container["name"] == component and container["command"][0] == component
        flags = container["command"][1:]
        assert [f.split("=")[0] for f in flags] == sorted(f.split("=")[0] for f in flags), "kubeadm sorts flags"
        running = cmdline(state["pids"][component])
        assert os.path.basename(running[0]) == component
        assert len(running) == len(container["command"])
        for declared, actual in zip(flags, running[1:]):
            if declared == actual:
                continue
            # modulo path mapping: same flag, and the node path holds the very bytes of the host path
            dname, dvalue = declared.split("=", 1)
            aname, avalue = actual.split("=", 1)
            assert dname == aname and dvalue.startswith("/"), (declared, actual)
            if Path(avalue).is_file():
                assert docker("exec", node_name, "cat", dvalue).stdout == Path(avalue).read_text(), dvalue
            else:
                assert Path(avalue).is_dir(), (declared, actual)
    apiserver = yaml.safe_load(docker("exec", node_name, "cat", f"{MANIFESTS}/kube-apiserver.yaml").stdout)
    command = apiserver["spec"]["containers"][0]["command"]
    assert "--service-account-key-file=/etc/kubernetes/pki/sa.pub" in command
    # the extraMount: the process reads the host's key file
    assert f"--service-account-key-file={keys / 'sa.pub'}" in cmdline(state["pids"]["kube-apiserver"])


def test_docker_cp_round_trip_changes_the_served_issuer(cluster, tmp_path):
    name, kubeconfig, _ = cluster()
    node_name = f"{name}-control-plane"
    old_pid = state_of(name)["pids"]["kube-apiserver"]
    issuer = f"https://issuer.example.invalid/{name}/"
    started = time.monotonic()
    edit_manifest(node_name, "kube-apiserver", tmp_path, set_flag("service-account-issuer", issuer))
    wait_until(lambda: discovery(kubeconfig)["issuer"] == issuer, timeout=90, what="the new issuer")
    elapsed = time.monotonic() - started
    print(f"\n--service-account-issuer change served after {elapsed:.1f}s (docker cp -> discovery document)")
    assert gone(old_pid)
    view = wait_until(lambda: pod_view(name, "kube-apiserver").get("ready") and pod_view(name, "kube-apiserver"),
                      what="the agent's view")
    assert view["phase"] == "Running" and view["pid"] != old_pid and view["readyAfterSeconds"] is not None
    pid = state_of(name)["pids"]["kube-apiserver"]
    assert pid == view["pid"] and f"--service-account-issuer={issuer}" in cmdline(pid)
    assert discovery(kubeconfig)["jwks_uri"].endswith("/openid/v1/jwks")
    # the same manifest copied again is the same pod: no restart
    docker("cp", tmp_path / "kube-apiserver-edited.yaml", f"{node_name}:{MANIFESTS}/kube-apiserver.yaml")
    time.sleep(1.5)  # three of the kubelet's looks; nothing may happen
    assert state_of(name)["pids"]["kube-apiserver"] == pid and not gone(pid)


def test_a_second_service_account_key_file_is_published_and_old_tokens_still_verify(cluster, tmp_path):
    name, kubeconfig, keys = cluster(mount_keys=True)
    node_name = f"{name}-control-plane"
    kubectl(kubeconfig, "create", "serviceaccount", "rotation", "-n", "default")
    before = new_token(kubeconfig)
    old_kid = kid_of_pem((keys / "sa.pub").read_bytes())
    assert token_kid(before) == old_kid and jwks_kids(kubeconfig) == [old_kid]
    _, next_pub = rsa_pair(tmp_path, "sa-next")
    docker("cp", next_pub, f"{node_name}:/etc/kubernetes/pki/sa-next.pub")
    assert docker("exec", node_name, "cat", "/etc/kubernetes/pki/sa-next.pub").stdout == next_pub.read_text()
    new_kid = kid_of_pem(next_pub.read_bytes())
    edit_manifest(node_name, "kube-apiserver", tmp_path,
                  lambda c: c + ["--service-account-key-file=/etc/kubernetes/pki/sa-next.pub"])
    wait_until(lambda: jwks_kids(kubeconfig) == sorted([old_kid, new_kid]), timeout=90, what="both kids")
    assert authenticated(kubeconfig, before), "a token signed before the change must still verify"
    assert token_kid(new_token(kubeconfig)) == old_kid, "the signing key did not change"


def test_switching_the_signing_key_changes_the_kid_of_new_tokens(cluster, tmp_path):
    name, kubeconfig, keys = cluster(mount_keys=True)
    node_name = f"{name}-control-plane"
    kubectl(kubeconfig, "create", "serviceaccount", "rotation", "-n", "default")
    before = new_token(kubeconfig)
    next_key, next_pub = rsa_pair(tmp_path, "sa-next")
    for f in (next_key, next_pub):
        docker("cp", f, f"{node_name}:/etc/kubernetes/pki/{f.name}")
    old_kid, new_kid = kid_of_pem((keys / "sa.pub").read_bytes()), kid_of_pem(next_pub.read_bytes())
    # rotation: publish both keys, sign with the new one (kube-apiserver), and let the controller-manager
    # sign legacy tokens with it too (--service-account-private-key-file)
    edit_manifest(node_name, "kube-apiserver", tmp_path,
                  lambda c: set_flag("service-account-signing-key-file", "/etc/kubernetes/pki/sa-next.key")(c)
                  + ["--service-account-key-file=/etc/kubernetes/pki/sa-next.pub"])
    edit_manifest(node_name, "kube-controller-manager", tmp_path,
                  set_flag("service-account-private-key-file", "/etc/kubernetes/pki/sa-next.key"))
    wait_until(lambda: token_kid(new_token(kubeconfig)) == new_kid, timeout=90, what="tokens with the new kid")
    assert jwks_kids(kubeconfig) == sorted([old_kid, new_kid])
    assert authenticated(kubeconfig, before)
    cm = wait_until(lambda: pod_view(name, "kube-controller-manager").get("ready")
                    and pod_view(name, "kube-controller-manager"), what="the controller-manager back")
    assert any(a.endswith("/pki/sa-next.key") and a.startswith("--service-account-private-key-file=")
               for a in cmdline(cm["pid"]))


def test_a_broken_manifest_is_reported_and_a_fixed_one_recovers(cluster, tmp_path):
    name, kubeconfig, _ = cluster()
    node_name = f"{name}-control-plane"
    good = tmp_path / "good.yaml"
    docker("cp", f"{node_name}:{MANIFESTS}/kube-apiserver.yaml", good)
    old_pid = state_of(name)["pids"]["kube-apiserver"]
    # 1. not a pod at all: the kubelet cannot read it and drops the pod
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Pod\nspec: [this is: not a pod\n")
    docker("cp", broken, f"{node_name}:{MANIFESTS}/kube-apiserver.yaml")
    view = wait_until(lambda: pod_view(name, "kube-apiserver").get("phase") == "ManifestError"
                      and pod_view(name, "kube-apiserver"), what="ManifestError")
    assert "couldn't parse as pod" in view["lastError"]
    wait_until(lambda: gone(old_pid), what="the old apiserver stopped")
    log = Path(agent_info(name)["log"]).read_text()
    assert "Could not process manifest file" in log
    # 2. a pod whose flags the apiserver refuses: it crash-loops, visibly
    doc = yaml.safe_load(good.read_text())
    doc["spec"]["containers"][0]["command"].append("--no-such-flag=1")
    bad_flags = tmp_path / "bad-flags.yaml"
    bad_flags.write_text(yaml.safe_dump(doc, sort_keys=False))
    docker("cp", bad_flags, f"{node_name}:{MANIFESTS}/kube-apiserver.yaml")
    view = wait_until(lambda: (v := pod_view(name, "kube-apiserver")).get("restarts", 0) >= 1
                      and v["phase"] == "CrashLoopBackOff" and v, what="CrashLoopBackOff")
    assert "unknown flag: --no-such-flag" in view["lastError"] and view["lastExitCode"] not in (None, 0)
    assert kubectl(kubeconfig, "get", "--raw", "/readyz", check=False).returncode != 0
    # 3. the original manifest back: the apiserver runs again
    docker("cp", good, f"{node_name}:{MANIFESTS}/kube-apiserver.yaml")
    wait_until(lambda: discovery(kubeconfig)["issuer"] == "https://kubernetes.default.svc.cluster.local",
               timeout=90, what="recovery")
    view = wait_until(lambda: pod_view(name, "kube-apiserver").get("phase") == "Running"
                      and pod_view(name, "kube-apiserver"), what="Running")
    assert view["lastError"] is None


def test_docker_stand_in_lists_nodes_and_refuses_what_it_does_not_do(cluster, tmp_path):
    name, _, keys = cluster(workers=2, mount_keys=True)
    node_name = f"{name}-control-plane"
    names = docker("ps", "--format", "{{.Names}}", "--filter", f"label=io.x-k8s.kind.cluster={name}").stdout.split()
    assert names == [f"{name}-control-plane", f"{name}-worker", f"{name}-worker2"]
    roles = docker("ps", "--filter", f"label=io.x-k8s.kind.cluster={name}", "--format",
                   '{{.Names}} {{.Label "io.x-k8s.kind.role"}}').stdout.splitlines()
    assert roles[0] == f"{node_name} control-plane" and roles[1] == f"{name}-worker worker"
    assert docker("ps", "--filter", "label=io.x-k8s.kind.cluster=nope", "--format", "{{.Names}}").stdout == ""
    # unsupported subcommands: a clear error naming it, exit 1
    for args in (["run", "alpine"], ["inspect", node_name], ["rm", "-f", node_name]):
        out = docker(*args, check=False)
        assert out.returncode == 1 and f"'{args[0]}' is not supported" in out.stderr, out.stderr
    out = docker("exec", node_name, "sh", "-c", "id", check=False)
    assert out.returncode == 1 and "only `cat PATH` and `ls PATH`" in out.stderr
    # path escapes are refused, in both directions and in exec
    local = tmp_path / "x.txt"
    local.write_text("x\n")
    for args in (["cp", f"{node_name}:/etc/kubernetes/../../../../etc/passwd", tmp_path / "p"],
                 ["cp", local, f"{node_name}:/etc/kubernetes/manifests/../../../../../tmp/escaped"],
                 ["exec", node_name, "cat", "/../../etc/hostname"]):
        out = docker(*args, check=False)
        assert out.returncode == 1 and "escapes the node filesystem" in out.stderr, (args, out.stderr)
    assert not (tmp_path / "p").exists()
    from sandbox.kind.cluster import cluster_dir
    rootfs = cluster_dir(name) / "nodes" / node_name / "rootfs"
    os.symlink("/etc", rootfs / "tmp" / "out")
    out = docker("exec", node_name, "cat", "/tmp/out/hostname", check=False)
    assert out.returncode == 1 and "escapes the node filesystem" in out.stderr
    # docker cp rules: missing parent directory -> error; unknown container -> error
    out = docker("cp", local, f"{node_name}:/no/such/dir/x.txt", check=False)
    assert out.returncode == 1 and "no such directory" in out.stderr
    out = docker("cp", local, "nope-control-plane:/tmp/x.txt", check=False)
    assert out.returncode == 1 and "No such container: nope-control-plane" in out.stderr
    # into a directory: the source's base name; onto an extraMount: written through to the host path
    docker("cp", local, f"{name}-worker:/tmp/")
    assert docker("exec", f"{name}-worker", "cat", "/tmp/x.txt").stdout == "x\n"
    inode = (keys / "sa.pub").stat().st_ino
    replacement = tmp_path / "sa.pub"
    replacement.write_bytes((keys / "sa.pub").read_bytes() + b"\n")
    docker("cp", replacement, f"{node_name}:/etc/kubernetes/pki/sa.pub")
    assert (keys / "sa.pub").read_bytes() == replacement.read_bytes() and (keys / "sa.pub").stat().st_ino == inode
    assert "sa.pub" in docker("exec", node_name, "ls", "/etc/kubernetes/pki").stdout.split()


def test_several_clusters_and_delete_stops_what_the_kubelet_restarted(cluster, tmp_path):
    (a, kc_a, _), (b, kc_b, _) = cluster(), cluster()
    edit_manifest(f"{a}-control-plane", "kube-apiserver", tmp_path,
                  set_flag("service-account-issuer", "https://issuer.example.invalid/a/"))
    wait_until(lambda: discovery(kc_a)["issuer"] == "https://issuer.example.invalid/a/", timeout=90,
               what="cluster a's new issuer")
    assert discovery(kc_b)["issuer"] == "https://kubernetes.default.svc.cluster.local"
    b_before = state_of(b)["pids"]["kube-apiserver"]
    pids = [p for p in state_of(a)["pids"].values() if p] + [state_of(a)["extra_pids"]["arcwi-agent"]]
    run(KIND, "delete", "cluster", "--name", a, "--kubeconfig", kc_a, timeout=120)
    assert all(gone(p) for p in pids), [p for p in pids if not gone(p)]
    assert f"{a}-control-plane" not in docker("ps", "--format", "{{.Names}}").stdout.split()
    assert state_of(b)["pids"]["kube-apiserver"] == b_before and not gone(b_before)
    assert discovery(kc_b)["issuer"] == "https://kubernetes.default.svc.cluster.local"
