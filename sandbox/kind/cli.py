"""kind's command line, for what the collection uses (see sandbox/kind/cluster.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from . import cluster
from .config import ConfigError


def _err(msg: str) -> int:
    print(f"ERROR: {msg}", file=sys.stderr)
    return 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="kind", description="kind (arcwi sandbox stand-in: local processes, no containers)")
    sub = p.add_subparsers(dest="cmd", required=True)
    create = sub.add_parser("create").add_subparsers(dest="what", required=True).add_parser("cluster")
    create.add_argument("--name", default=None)
    create.add_argument("--config", default=None)
    create.add_argument("--image", default=None)
    create.add_argument("--kubeconfig", default=None)
    create.add_argument("--wait", default="0s")
    create.add_argument("--retain", action="store_true")
    get = sub.add_parser("get").add_subparsers(dest="what", required=True)
    get.add_parser("clusters")
    gk = get.add_parser("kubeconfig")
    gk.add_argument("--name", default="kind")
    gk.add_argument("--internal", action="store_true")
    get.add_parser("nodes").add_argument("--name", default="kind")
    export = sub.add_parser("export").add_subparsers(dest="what", required=True).add_parser("kubeconfig")
    export.add_argument("--name", default="kind")
    export.add_argument("--kubeconfig", default=None)
    delete = sub.add_parser("delete").add_subparsers(dest="what", required=True).add_parser("cluster")
    delete.add_argument("--name", default="kind")
    delete.add_argument("--kubeconfig", default=None)
    sub.add_parser("version")
    args = p.parse_args(argv)
    try:
        if args.cmd == "version":
            print(f"kind {cluster.KIND_VERSION} (arcwi sandbox stand-in) linux/amd64")
            return 0
        if args.cmd == "create":
            text = Path(args.config).read_text() if args.config else ""
            print(f"Creating cluster \"{args.name or _name_from(text)}\" ...", file=sys.stderr)
            state = cluster.create(args.name, text, args.image, args.kubeconfig, _duration(args.wait),
                                   log=lambda m: print(m, file=sys.stderr), retain=args.retain)
            print(f"Set kubectl context to \"kind-{state['name']}\"", file=sys.stderr)
            return 0
        if args.cmd == "get" and args.what == "clusters":
            names = cluster.list_clusters()
            if not names:
                print("No kind clusters found.", file=sys.stderr)
            for n in names:
                print(n)
            return 0
        if args.cmd == "get" and args.what == "kubeconfig":
            print(yaml.safe_dump(cluster.kubeconfig_for(args.name), sort_keys=False), end="")
            return 0
        if args.cmd == "get" and args.what == "nodes":
            for node in cluster.load_state(args.name)["nodes"]:
                print(node["name"])
            return 0
        if args.cmd == "export":
            path = cluster.write_kubeconfig(args.name, args.kubeconfig)
            print(f"Set kubectl context to \"kind-{args.name}\" in {path}", file=sys.stderr)
            return 0
        if args.cmd == "delete":
            print(f"Deleting cluster \"{args.name}\" ...", file=sys.stderr)
            cluster.delete(args.name, args.kubeconfig)
            return 0
    except ConfigError as exc:
        return _err(f"failed to create cluster: {exc}")
    except cluster.KindError as exc:
        return _err(f"failed to {args.cmd} cluster: {exc}")
    return 1


def _name_from(text: str) -> str:
    try:
        return (yaml.safe_load(text) or {}).get("name") or "kind"
    except yaml.YAMLError:
        return "kind"


def _duration(value: str) -> float:
    value = value.strip()
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if value.endswith(unit):
            return float(value[: -len(unit)] or 0) * units[unit]
    return float(value or 0)


if __name__ == "__main__":
    sys.exit(main())
