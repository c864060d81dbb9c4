"""The sandbox emulator process (`python -m sandbox serve`): wires state, tokens, Azurite and endpoints."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import sys
import threading

from .. import config
from .. import podnet
from ..pki import PKI
from . import admin, arcdp, blob, entra, web
from .arm import authorization, core, storage
from .azurite import Azurite
from .faults import Faults
from .http import App, make_ssl_context, serve
from .store import Store
from .tokens import TokenService


def bootstrap(ctx) -> None:
    """Seed what a new sandbox tenant has: the operator principal and its Owner + UAA assignments."""
    ident = ctx.ident
    if ctx.store.principal_by_app(ident.operator_client_id) is None:
        with ctx.store.tx() as db:
            ctx.store.add_principal(db, object_id=ident.operator_object_id, app_id=ident.operator_client_id,
                                    tenant_id=ident.tenant_id, display_name="arcwi-sandbox-operator",
                                    kind="application",
                                    secret_sha256=hashlib.sha256(ident.operator_secret.encode()).hexdigest())
            # created long ago: no replication delay for the operator
            db.execute("UPDATE principals SET created = 0 WHERE object_id = ?", (ident.operator_object_id.lower(),))
    authorization.seed(ctx)


def run() -> None:
    home = config.home()
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    # pods reach ARM, Entra and admin on the gateway of the sandbox's Docker network (sandbox/podnet.py)
    pod_host = podnet.recorded()
    if pod_host and not podnet.local(pod_host):
        print(f"sandbox: the pod network's gateway {pod_host} is not an address of this machine; serving "
              "loopback only", flush=True)
        pod_host = None
    pki = PKI(home)
    pki.ensure((pod_host,) if pod_host else ())
    ident = config.Identity.load_or_create(home)
    store = Store(home / "state.db")
    tokens = TokenService(home, ident.tenant_id)
    ctx = core.Context(store=store, ident=ident, tokens=tokens,
                       arm_url=config.url("arm"), entra_url=config.url("entra"), web_url=config.url("web"),
                       blob_url=config.url("blob"), arcdp_url=config.url("arcdp"), arm_audience=config.ARM_AUDIENCE)
    bootstrap(ctx)

    app = App()
    app.faults = Faults()

    def log(service, request, status, duration_ms):
        client = (request.principal or {}).get("oid")
        # a SAS in a blob URL is a credential: its signature never reaches the log
        query = re.sub(r"(?i)(^|&)(sig=)[^&]*", r"\1\2REDACTED", request.query_string)
        store.log_request(service, request.method, request.path, query, status, duration_ms,
                          client, request.fault)

    app.log = log
    tls = make_ssl_context(str(pki.server_cert), str(pki.server_key))
    routers = {
        "arm": core.make_router(ctx),
        "entra": entra.make_router(ctx),
        "web": web.make_router(ctx),
        "arcdp": arcdp.make_router(ctx),
        "admin": admin.make_router(ctx, app, bootstrap),
        "blob": blob.make_router(ctx),  # the proxy in front of Azurite (answers 503 until Azurite runs)
    }
    servers = [serve(router, app, config.HOST, config.port(name), tls) for name, router in routers.items()]
    if pod_host:
        servers += [serve(routers[name], app, pod_host, config.port(name), tls) for name in podnet.POD_ENDPOINTS]

    ctx.azurite = Azurite(home=home, port=config.port("azurite"), cert=pki.server_cert, key=pki.server_key,
                          log_path=home / "logs" / "azurite.log")
    ctx.azurite.start(storage.accounts(ctx))

    pidfile = home / "sandbox.pid"
    pidfile.write_text(str(os.getpid()))
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"sandbox: serving (pid {os.getpid()}), state in {home}", flush=True)
    stop.wait()
    print("sandbox: stopping", flush=True)
    for server in servers:
        server.shutdown()
        server.server_close()
    ctx.azurite.stop()
    try:
        if pidfile.read_text().strip() == str(os.getpid()):
            pidfile.unlink()
    except FileNotFoundError:
        pass
    sys.exit(0)
