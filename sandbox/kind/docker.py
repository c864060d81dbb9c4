"""A stand-in for the docker CLI, for the few things one does to kind's node containers.

The stand-in's kind nodes are not containers (sandbox/kind/node.py: a rootfs directory and a mount
table per node), so this answers only:

    docker ps [-a] [-q] [--no-trunc] [--format FORMAT] [--filter KEY=VALUE]...
    docker cp [-a] [-L] [-q] NODE:PATH LOCAL_PATH
    docker cp [-a] [-L] [-q] LOCAL_PATH NODE:PATH
    docker exec [-i] [-t] NODE cat PATH...
    docker exec [-i] [-t] NODE ls [-1] [-a] [PATH...]

`ps` lists every node of every stand-in cluster, named as kind names them (<cluster>-control-plane,
<cluster>-worker, <cluster>-worker2, ...) and labelled as kind labels them (io.x-k8s.kind.cluster,
io.x-k8s.kind.role). Filters: label=KEY, label=KEY=VALUE, name=SUBSTRING (docker's filters of the same
names; several filters must all match, two of the same key match either). FORMAT is a Go template
with the placeholders {{.Names}} {{.ID}} {{.Image}} {{.Status}} {{.State}} {{.Labels}}
{{.Label "KEY"}} {{.Ports}} {{.Command}} {{.CreatedAt}}, or `table ...`, or `json`.

`cp` follows docker's rules for a file (docs.docker.com/reference/cli/docker/container/cp/, "docker
cp" SRC_PATH/DEST_PATH table): DEST does not exist -> a file is created at DEST (its parent directory
must exist: docker does not create it, "no such directory"); DEST ends with / and does not exist ->
error; DEST is a file -> overwritten; DEST is a directory -> the file goes into it under SRC's base
name. Container paths are relative to the container's root (a leading / is optional). Permissions
are kept (cp -a). Writing onto a path under an extraMount writes through to the host path, as a bind
mount does (a file mount is rewritten in place, keeping its inode). Directories and `-` (tar
streams) are not supported by the stand-in: a clear error, exit 1.

Node paths never leave the node: `..` is refused, and so is a symlink that points out of it.

`exec` runs nothing: `cat` and `ls` are read-only conveniences answered from the node filesystem.
Any other subcommand (run, rm, inspect, ...) is an error naming it, exit 1.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

from . import cluster, node

SUPPORTED = ("ps", "cp", "exec")
LABEL_CLUSTER = "io.x-k8s.kind.cluster"
LABEL_ROLE = "io.x-k8s.kind.role"


class DockerError(Exception):
    """A docker-style error; the message is printed as docker prints it."""


# ---- the "containers" ---------------------------------------------------------------------------------
def containers() -> list[dict]:
    out = []
    for name in cluster.list_clusters():
        try:
            state = cluster.load_state(name)
        except (cluster.KindError, ValueError, OSError):
            continue
        for n in state.get("nodes") or []:
            cid = hashlib.sha256(f"{name}/{n['name']}/{state.get('created')}".encode()).hexdigest()
            ports = ""
            if n["role"] == "control-plane":
                ports = f"127.0.0.1:{state['ports']['apiserver']}->6443/tcp"
            out.append({"ID": cid, "Names": n["name"], "Image": n.get("image") or state.get("image", ""),
                        "Command": '"/usr/local/bin/entrypoint /sbin/init"',
                        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC",
                                                   time.gmtime(state.get("created") or 0)),
                        "Status": "Up " + _ago(time.time() - (state.get("created") or time.time())),
                        "State": "running", "Ports": ports,
                        "LabelMap": {LABEL_CLUSTER: name, LABEL_ROLE: n["role"],
                                     **{str(k): str(v) for k, v in (n.get("labels") or {}).items()}},
                        "cluster": name, "node": n})
    return out


def _ago(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return "Less than a minute" if seconds > 1 else "1 second"
    if seconds < 3600:
        m = seconds // 60
        return f"{m} minute{'s' if m != 1 else ''}"
    h = seconds // 3600
    return f"{h} hour{'s' if h != 1 else ''}"


def find(name: str) -> tuple[dict, node.NodeFS]:
    for c in containers():
        if c["Names"] == name or (len(name) >= 4 and c["ID"].startswith(name)):
            return c, node.NodeFS(cluster.cluster_dir(c["cluster"]), c["node"])
    raise DockerError(f"Error response from daemon: No such container: {name}")


# ---- ps -----------------------------------------------------------------------------------------------
def _matches(c: dict, filters: list[tuple[str, str]]) -> bool:
    by_key: dict[str, list[str]] = {}
    for k, v in filters:
        by_key.setdefault(k, []).append(v)
    for key, values in by_key.items():
        ok = False
        for v in values:
            if key == "label":
                lk, _, lv = v.partition("=")
                ok = ok or (lk in c["LabelMap"] and ("=" not in v or c["LabelMap"][lk] == lv))
            elif key == "name":
                ok = ok or v in c["Names"]
            elif key in ("status", "state"):
                ok = ok or v == "running"
            elif key == "id":
                ok = ok or c["ID"].startswith(v)
            else:
                raise DockerError(f"Error response from daemon: invalid filter '{key}'")
        if not ok:
            return False
    return True


def _field(c: dict, key: str, no_trunc: bool) -> str:
    if key == "ID":
        return c["ID"] if no_trunc else c["ID"][:12]
    if key == "Labels":
        return ",".join(f"{k}={v}" for k, v in sorted(c["LabelMap"].items()))
    return str(c.get(key, ""))


def _render(template: str, c: dict, no_trunc: bool) -> str:
    def sub(match):
        expr = match.group(1).strip()
        m = re.fullmatch(r'\.Label\s+"([^"]*)"', expr) or re.fullmatch(r'index\s+\.Labels\s+"([^"]*)"', expr)
        if m:
            return c["LabelMap"].get(m.group(1), "")
        m = re.fullmatch(r"\.(\w+)", expr)
        if m and m.group(1) in ("ID", "Names", "Image", "Status", "State", "Labels", "Ports", "Command",
                                "CreatedAt"):
            return _field(c, m.group(1), no_trunc)
        if expr == "json .":
            return json.dumps({k: _field(c, k, no_trunc) for k in ("Command", "CreatedAt", "ID", "Image", "Labels",
                                                                    "Names", "Ports", "State", "Status")})
        raise DockerError(f"template: :1: unsupported by the sandbox stand-in: {{{{{expr}}}}}")
    return re.sub(r"\{\{(.*?)\}\}", sub, template).replace("\\t", "\t")


def ps(args: list[str]) -> int:
    fmt, filters, quiet, no_trunc = None, [], False, False
    it = iter(args)
    for a in it:
        if a in ("-a", "--all"):
            continue  # every node "runs"
        elif a in ("-q", "--quiet"):
            quiet = True
        elif a == "--no-trunc":
            no_trunc = True
        elif a in ("--format", "-f", "--filter") or a.startswith(("--format=", "--filter=")):
            if "=" in a and a.startswith("--"):
                opt, value = a.split("=", 1)
            else:
                opt, value = a, next(it, None)
                if value is None:
                    raise DockerError(f"flag needs an argument: {a}")
            if opt == "--format":
                fmt = value
            else:
                key, sep, val = value.partition("=")
                if not sep:
                    raise DockerError(f"invalid argument \"{value}\" for \"{opt}\" flag: bad format of filter "
                                      "(expected name=value)")
                filters.append((key, val))
        else:
            raise DockerError(f"unknown flag: {a}\nSee 'docker ps --help'.")
    rows = [c for c in containers() if _matches(c, filters)]
    if quiet:
        for c in rows:
            print(_field(c, "ID", no_trunc))
        return 0
    if fmt == "json":
        fmt = "{{json .}}"
    if fmt is None or fmt.startswith("table"):
        template = (fmt[len("table"):].strip() if fmt else "") or (
            "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedAt}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}")
        header = _render(template, {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
                                    "CreatedAt": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
                                    "State": "STATE", "LabelMap": {}}, True) if "{{" in template else template
        table = [header.split("\t")] + [_render(template, c, no_trunc).split("\t") for c in rows]
        widths = [max(len(r[i]) if i < len(r) else 0 for r in table) for i in range(max(len(r) for r in table))]
        for r in table:
            print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
        return 0
    for c in rows:
        print(_render(fmt, c, no_trunc))
    return 0


# ---- cp -----------------------------------------------------------------------------------------------
def _split(arg: str):
    """(container, path) for CONTAINER:PATH, (None, arg) for a local path (docker: a local path with a
    colon must start with / or ./)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, path = arg.split(":", 1)
    return container, path


def _copy_bytes(src: Path, dest: Path, in_place: bool) -> None:
    mode = src.stat().st_mode & 0o7777
    data = src.read_bytes()
    if in_place and dest.exists():
        with open(dest, "r+b") as fh:  # a bind-mounted file: same inode, the host sees the new content
            fh.write(data)
            fh.truncate()
        os.chmod(dest, mode)
        return
    tmp = dest.parent / f".{dest.name}.docker-cp.{os.getpid()}"
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    tmp.replace(dest)


def cp(args: list[str]) -> int:
    paths = []
    quiet = False
    for a in args:
        if a in ("-a", "--archive", "-L", "--follow-link"):
            continue
        if a in ("-q", "--quiet"):
            quiet = True
            continue
        if a.startswith("-") and a != "-":
            raise DockerError(f"unknown flag: {a}\nSee 'docker cp --help'.")
        paths.append(a)
    if len(paths) != 2:
        raise DockerError('"docker cp" requires exactly 2 arguments.\nSee \'docker cp --help\'.\n\n'
                          "Usage:  docker cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
                          "        docker cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH")
    (sc, sp), (dc, dp) = _split(paths[0]), _split(paths[1])
    if (sc is None and sp == "-") or (dc is None and dp == "-"):
        raise DockerError("docker cp with '-' (tar streams) is not supported by the sandbox stand-in")
    if (sc is None) == (dc is None):
        raise DockerError("must specify at least one container source" if sc is None else
                          "copying between containers is not supported")
    if sc is not None:  # node -> local
        _, fs = find(sc)
        src = fs.host_path(sp)
        if not src.exists():
            raise DockerError(f"Error response from daemon: Could not find the file {node.NodeFS.clean(sp)} "
                              f"in container {sc}")
        if src.is_dir():
            raise DockerError("copying directories is not supported by the sandbox stand-in (files only)")
        dest = Path(dp)
        if dest.is_dir():
            dest = dest / Path(node.NodeFS.clean(sp)).name
        elif dp.endswith("/"):
            raise DockerError(f"destination directory {dp} must exist: no such directory")
        elif not dest.parent.is_dir():
            raise DockerError(f"invalid output path: directory {dest.parent} does not exist")
        _copy_bytes(src, dest, in_place=False)
        if not quiet:
            print(f"Successfully copied {src.stat().st_size}B to {dp}", file=sys.stderr)
        return 0
    # local -> node
    _, fs = find(dc)
    src = Path(sp)
    if not src.exists():
        raise DockerError(f"lstat {src.absolute()}: no such file or directory")
    if src.is_dir():
        raise DockerError("copying directories is not supported by the sandbox stand-in (files only)")
    target = node.NodeFS.clean(dp)
    dest = fs.host_path(target)
    if dest.is_dir():
        target = target.rstrip("/") + "/" + src.name
        dest = fs.host_path(target)
    elif dp.endswith("/"):
        raise DockerError(f"Error response from daemon: Could not find the file {target} in container {dc}: "
                          "no such directory")
    parent = fs.host_path(os.path.dirname(target) or "/")
    if not parent.is_dir():
        raise DockerError(f"Error response from daemon: Could not find the file {os.path.dirname(target)} in "
                          f"container {dc}: no such directory")
    if fs.read_only(target):
        raise DockerError(f"Error response from daemon: mounted volume is marked read-only: {target}")
    _copy_bytes(src, dest, in_place=fs.is_mount_point(target))
    if not quiet:
        print(f"Successfully copied {src.stat().st_size}B to {dc}:{target}", file=sys.stderr)
    return 0


# ---- exec ---------------------------------------------------------------------------------------------
def exec_(args: list[str]) -> int:
    rest = list(args)
    while rest and rest[0].startswith("-"):
        opt = rest.pop(0)
        if opt in ("-i", "-t", "-it", "-ti", "--interactive", "--tty"):
            continue
        raise DockerError(f"docker exec option {opt} is not supported by the sandbox stand-in")
    if len(rest) < 2:
        raise DockerError('"docker exec" requires at least 2 arguments.\nSee \'docker exec --help\'.')
    container, command = rest[0], rest[1:]
    _, fs = find(container)
    if command[0] == "cat":
        code = 0
        for p in command[1:]:
            path = fs.host_path(p)
            if path.is_dir():
                print(f"cat: {p}: Is a directory", file=sys.stderr)
                code = 1
            elif not path.exists():
                print(f"cat: {p}: No such file or directory", file=sys.stderr)
                code = 1
            else:
                sys.stdout.buffer.write(path.read_bytes())
                sys.stdout.flush()
        return code
    if command[0] == "ls":
        show_all = False
        targets = []
        for a in command[1:]:
            if a.startswith("-") and len(a) > 1:
                if set(a[1:]) - {"1", "a", "A"}:
                    raise DockerError(f"ls option {a} is not supported by the sandbox stand-in (only -1, -a)")
                show_all = show_all or "a" in a or "A" in a
            else:
                targets.append(a)
        code = 0
        for p in targets or ["/"]:
            path = fs.host_path(p)
            if not path.exists():
                print(f"ls: cannot access '{p}': No such file or directory", file=sys.stderr)
                code = 2
                continue
            if not path.is_dir():
                print(p)
                continue
            names = set(e.name for e in path.iterdir()) | set(fs.mount_points_under(p))
            names = {n for n in names if show_all or not n.startswith(".")}
            if len(targets) > 1:
                print(f"{p}:")
            for n in sorted(names):
                print(n)
        return code
    raise DockerError(f"docker exec {command[0]}: the sandbox stand-in runs nothing in its nodes; "
                      "only `cat PATH` and `ls PATH` are answered")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.split("\n\n")[1] if argv else __doc__, file=sys.stderr if not argv else sys.stdout)
        return 0 if argv else 1
    sub, rest = argv[0], argv[1:]
    try:
        if sub == "ps":
            return ps(rest)
        if sub == "cp":
            return cp(rest)
        if sub == "exec":
            return exec_(rest)
        if sub == "image" and rest[:1] == ["inspect"]:
            # the stand-in has no images: every node runs from the stand-in's own processes
            print(f"Error: No such image: {rest[-1] if len(rest) > 1 else ''}", file=sys.stderr)
            return 1
        print(f"docker: '{sub}' is not supported by the arcwi sandbox stand-in (supported: "
              f"{', '.join(SUPPORTED)}; exec answers only cat and ls).\nSee 'docker --help'.", file=sys.stderr)
        return 1
    except (DockerError, node.NodeError) as exc:
        print(str(exc) if isinstance(exc, DockerError) else f"Error response from daemon: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
