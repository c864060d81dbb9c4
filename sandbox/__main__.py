"""Command line of the sandbox.

    python -m sandbox up        start in the background; returns when every endpoint answers (no-op if running)
    python -m sandbox down      stop (state is kept); --docker: stop the sandbox's Docker daemon too
    python -m sandbox reset     stop, wipe the state (the CA is kept), start again if it was running
    python -m sandbox status    what runs where
    python -m sandbox env       shell-sourceable KEY=VALUE lines for clients
    python -m sandbox ports     the ports and the variables that move them
    python -m sandbox serve     run in the foreground (what `up` starts)
    python -m sandbox demo      run playbooks/site.yml against the sandbox, print the proof (`make demo`)
    python -m sandbox docker up|down|status|env   the sandbox's Docker daemon (sandbox/docker_engine.py)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

from . import config, docker_engine, podnet
from .pki import PKI

START_TIMEOUT = 120.0


def _pid(name: str) -> int | None:
    path = config.home() / name
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _ssl() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(PKI(config.home()).bundle))


def _probe(url: str, context: ssl.SSLContext) -> int | None:
    """HTTP status of a GET, or None when nothing answers. Any HTTP status counts as answering."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=3) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return None


def endpoints() -> dict[str, str]:
    return {
        "arm": config.url("arm", "/metadata/endpoints?api-version=2022-09-01"),
        "entra": config.url("entra", "/common/v2.0/.well-known/openid-configuration"),
        "web": config.url("web", "/"),
        "arcdp": config.url("arcdp", "/v2/"),
        "admin": config.url("admin", "/health"),
        "blob": config.url("blob", "/"),
    }


def _all_answer() -> dict[str, int | None]:
    if not PKI(config.home()).bundle.exists():
        return {name: None for name in endpoints()}
    context = _ssl()
    result = {name: _probe(url, context) for name, url in endpoints().items()}
    if result.get("admin") == 503:  # admin answers 503 while Azurite is not ready
        result["admin"] = None
    return result


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((config.HOST, port))
        except OSError:
            return False
    return True


def cmd_up(args) -> int:
    try:  # the user's own Docker when it works, else the sandbox's daemon (shared, left running by `down`)
        engine = docker_engine.ensure_engine()
        if engine.host:
            os.environ["DOCKER_HOST"] = engine.host
        # pods reach the emulators on the gateway of the Docker network kind's nodes join (sandbox/podnet.py)
        podnet.ensure()
    except (docker_engine.DockerEngineError, podnet.PodNetworkError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    if _pid("sandbox.pid"):
        status = _all_answer()
        if all(status.values()):
            print("sandbox: already running")
            return 0
        return _wait_ready(None, time.monotonic())
    leftover = _pid("azurite.pid")
    if leftover:  # an Azurite that outlived a killed emulator process holds the blob port
        os.kill(leftover, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(leftover, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    azurite = config.SANDBOX_DIR / "node_modules" / ".bin" / "azurite-blob"
    if not azurite.exists():
        print("sandbox: Azurite is not installed; run `make setup` (npm ci in sandbox/)", file=sys.stderr)
        return 1
    busy = [(name, config.port(name)) for name in config.PORTS if not _port_free(config.port(name))]
    if busy:
        for name, port in busy:
            env, _ = config.PORTS[name]
            print(f"sandbox: port {port} ({name}) is in use by another program; stop it or set {env} to a free port",
                  file=sys.stderr)
        return 1
    home = config.home()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    log = open(home / "logs" / "sandbox.log", "ab")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "serve"], cwd=str(config.REPO_ROOT),
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return _wait_ready(proc, started)


def _wait_ready(proc, started: float) -> int:
    deadline = started + START_TIMEOUT
    status: dict = {}
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            print(f"sandbox: the emulator process exited with {proc.returncode} during start; last log lines:",
                  file=sys.stderr)
            _tail(config.home() / "logs" / "sandbox.log")
            return 1
        status = _all_answer()
        if all(status.values()):
            print(f"sandbox: up in {time.monotonic() - started:.1f}s "
                  f"(ARM {config.url('arm')}, Entra {config.url('entra')}, blob {config.url('blob')})")
            return 0
        time.sleep(0.2)
    missing = ", ".join(name for name, code in status.items() if not code)
    print(f"sandbox: not every endpoint answered within {START_TIMEOUT:.0f}s (missing: {missing}); see "
          f"{config.home() / 'logs'}", file=sys.stderr)
    return 1


def _tail(path, lines: int = 30) -> None:
    try:
        content = path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return
    for line in content:
        print("  " + line, file=sys.stderr)


def cmd_down(args) -> int:
    pid = _pid("sandbox.pid")
    stopped = False
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _pid("sandbox.pid") == pid:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            if _pid("sandbox.pid") == pid:
                os.kill(pid, signal.SIGKILL)
        stopped = True
    # Azurite outlives a killed emulator process: stop it too
    apid = _pid("azurite.pid")
    if apid:
        os.kill(apid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(apid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        stopped = True
    for name in ("sandbox.pid", "azurite.pid"):
        try:
            (config.home() / name).unlink()
        except FileNotFoundError:
            pass
    print("sandbox: stopped" if stopped else "sandbox: not running")
    if getattr(args, "docker", False):  # the daemon is shared by every sandbox home: stopped only when asked
        docker_engine.cmd_down()
    return 0


def cmd_reset(args) -> int:
    was_running = bool(_pid("sandbox.pid"))
    cmd_down(args)
    home = config.home()
    if home.exists():
        for entry in home.iterdir():
            if entry.name == "pki":
                continue  # keep the CA: clients that trust it keep working
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    print(f"sandbox: state wiped in {home}")
    return cmd_up(args) if was_running or args.start else 0


def env_lines() -> list[str]:
    home = config.home()
    ident = config.Identity.load_or_create(home)
    bundle = PKI(home).bundle
    arm = config.url("arm")
    return [
        f"AZURE_TENANT_ID={ident.tenant_id}",
        f"AZURE_SUBSCRIPTION_ID={ident.subscription_id}",
        f"AZURE_CLIENT_ID={ident.operator_client_id}",
        f"AZURE_CLIENT_SECRET={ident.operator_secret}",
        f"AZURE_AUTHORITY_HOST={config.url('entra')}",
        f"ARCWI_ARM_ENDPOINT={arm}",
        f"ARCWI_CLOUD_METADATA_URL={arm}metadata/endpoints?api-version=2022-09-01",
        f"ARCWI_SANDBOX_ADMIN={config.url('admin')}",
        f"ARCWI_SANDBOX_BLOB={config.url('blob')}",
        # what a client uses instead of https://{location}.dp.kubernetesconfiguration.azure.com/ (Azure Arc)
        f"ARCWI_ARC_DATAPLANE_ENDPOINT={config.url('arcdp')}",
        f"ARCWI_SANDBOX_HOME={home}",
        # what pods use (the gateway of the sandbox's Docker network `kind`), when there is one
        *([f"ARCWI_SANDBOX_POD_HOST={podnet.recorded()}",
           f"ARCWI_SANDBOX_POD_ARM={podnet.url('arm')}",
           f"ARCWI_SANDBOX_POD_AUTHORITY_HOST={podnet.url('entra')}",
           f"ARCWI_SANDBOX_POD_ADMIN={podnet.url('admin')}"] if podnet.recorded() else []),
        f"REQUESTS_CA_BUNDLE={bundle}",
        f"SSL_CERT_FILE={bundle}",
    ] + _docker_env()


def _docker_env() -> list[str]:
    """DOCKER_HOST of the engine the sandbox uses (none for a user's Docker reached by the CLI's default)."""
    host = docker_engine.engine().host
    return [f"DOCKER_HOST={host}"] if host else []


def cmd_env(args) -> int:
    if not PKI(config.home()).bundle.exists():
        PKI(config.home()).ensure()
    for line in env_lines():
        key, _, value = line.partition("=")
        if args.json:
            continue
        print(f"{key}={_shell_quote(value)}")
    if args.json:
        print(json.dumps(dict(line.split("=", 1) for line in env_lines()), indent=2))
    return 0


def _shell_quote(value: str) -> str:
    import shlex
    quoted = shlex.quote(value)
    return value if quoted == value else quoted


def cmd_status(args) -> int:
    pid = _pid("sandbox.pid")
    print(f"sandbox: {'running, pid ' + str(pid) if pid else 'not running'}; state in {config.home()}")
    if pid:
        for name, code in _all_answer().items():
            print(f"  {name:6} {config.url(name):32} {'answers (' + str(code) + ')' if code else 'no answer'}")
    return 0 if pid else 3


def cmd_ports(args) -> int:
    for name, (env, default) in config.PORTS.items():
        print(f"{name:7} {config.port(name):6}  ({env}, default {default or 'the blob port + 1'})")
    return 0


def cmd_demo(args) -> int:
    from .demo import run
    extra = args.playbook_args[1:] if args.playbook_args[:1] == ["--"] else args.playbook_args
    return run(extra)


def cmd_serve(args) -> int:
    from .server import main
    main.run()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up").set_defaults(func=cmd_up)
    down = sub.add_parser("down")
    down.add_argument("--docker", action="store_true", help="stop the sandbox's Docker daemon too (shared by "
                                                            "every sandbox home)")
    down.set_defaults(func=cmd_down)
    reset = sub.add_parser("reset")
    reset.add_argument("--start", action="store_true", help="start the sandbox after the wipe")
    reset.set_defaults(func=cmd_reset)
    sub.add_parser("status").set_defaults(func=cmd_status)
    env = sub.add_parser("env")
    env.add_argument("--json", action="store_true")
    env.set_defaults(func=cmd_env)
    sub.add_parser("ports").set_defaults(func=cmd_ports)
    sub.add_parser("serve").set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="run playbooks/site.yml against the sandbox and print the proof")
    demo.add_argument("playbook_args", nargs=argparse.REMAINDER, help="more ansible-playbook arguments (after --)")
    demo.set_defaults(func=cmd_demo)
    docker = sub.add_parser("docker", help="the sandbox's Docker daemon")
    docker.add_argument("action", choices=["up", "down", "status", "env"])
    docker.set_defaults(func=lambda a: docker_engine.main([a.action]))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
