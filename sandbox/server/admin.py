"""The sandbox admin API: health, request log, fault injection, settings, test principals, reset.

Not an Azure API. Tests and benchmarks use it to count requests ("no write happened"), inject faults
and create extra principals (e.g. a Reader-only service principal).
"""
from __future__ import annotations

import hashlib
import secrets
import uuid

from .arm import core
from .http import ApiError, Response, Router

WRITE_METHODS = ("PUT", "PATCH", "POST", "DELETE")


def _row(r) -> dict:
    return {"seq": r["seq"], "ts": r["ts"], "service": r["service"], "method": r["method"], "path": r["path"],
            "query": r["query"], "status": r["status"], "duration_ms": round(r["duration_ms"], 3),
            "client": r["client"], "fault": r["fault"]}


def make_router(ctx, app, bootstrap) -> Router:
    router = Router("admin")

    def err(message: str) -> ApiError:
        return ApiError(400, "InvalidRequest", message)

    @router.route("GET", "/health")
    def health(request):
        blob = ctx.azurite.ready() if ctx.azurite else False
        return Response(200 if blob else 503, {"arm": True, "entra": True, "web": True, "admin": True, "arcdp": True,
                                               "blob": blob})

    @router.route("GET", "/identity")
    def identity(request):
        return Response(200, {"tenant_id": ctx.ident.tenant_id, "subscription_id": ctx.ident.subscription_id,
                              "operator_client_id": ctx.ident.operator_client_id,
                              "operator_object_id": ctx.ident.operator_object_id})

    @router.route("GET", "/requests")
    def requests(request):
        since = int(request.q("since", "0") or 0)
        service = request.q("service")
        sql = "SELECT * FROM requests WHERE seq > ?"
        args: list = [since]
        if service:
            sql += " AND service = ?"
            args.append(service)
        rows = ctx.store.read().execute(sql + " ORDER BY seq", args).fetchall()
        last = ctx.store.read().execute("SELECT COALESCE(MAX(seq), 0) AS m FROM requests").fetchone()["m"]
        return Response(200, {"requests": [_row(r) for r in rows], "last": last})

    @router.route("GET", "/requests/last")
    def last(request):
        value = ctx.store.read().execute("SELECT COALESCE(MAX(seq), 0) AS m FROM requests").fetchone()["m"]
        return Response(200, {"last": value})

    @router.route("GET", "/requests/summary")
    def summary(request):
        since = int(request.q("since", "0") or 0)
        rows = ctx.store.read().execute("SELECT service, method, status FROM requests WHERE seq > ?",
                                        (since,)).fetchall()
        out: dict = {}
        for r in rows:
            s = out.setdefault(r["service"], {"reads": 0, "writes": 0, "by_method": {}, "errors": 0})
            # the Entra token endpoint is a POST but not a write of state
            is_write = r["method"] in WRITE_METHODS and not (r["service"] == "entra")
            s["writes" if is_write else "reads"] += 1
            s["by_method"][r["method"]] = s["by_method"].get(r["method"], 0) + 1
            if r["status"] >= 400 or r["status"] == 0:
                s["errors"] += 1
        return Response(200, out)

    @router.route("GET", "/faults")
    def get_faults(request):
        return Response(200, {"rules": app.faults.describe()})

    @router.route("PUT", "/faults")
    def put_faults(request):
        body = request.json()
        try:
            rules = app.faults.configure(body.get("rules") or [], int(body.get("seed", 0)))
        except (ValueError, TypeError) as exc:
            raise err(str(exc))
        return Response(200, {"rules": rules})

    @router.route("DELETE", "/faults")
    def clear_faults(request):
        app.faults.clear()
        return Response(204)

    @router.route("GET", "/settings")
    def get_settings(request):
        return Response(200, {name: ctx.setting(name) for name in core.DEFAULT_SETTINGS})

    @router.route("PATCH", "/settings")
    def patch_settings(request):
        body = request.json()
        for name, value in body.items():
            if name not in core.DEFAULT_SETTINGS:
                raise err(f"unknown setting '{name}'; known: {', '.join(core.DEFAULT_SETTINGS)}")
            expected = type(core.DEFAULT_SETTINGS[name])
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
                raise err(f"setting '{name}' must be of type {expected.__name__}")
        for name, value in body.items():
            ctx.store.kv_set("setting:" + name, value)
        if "throttle_enabled" in body or any(k.startswith("msi_write") for k in body):
            core.BUCKETS.clear()
        return get_settings(request)

    @router.route("POST", "/principals")
    def add_principal(request):
        """Create an application service principal with a client secret (and optional role assignments)."""
        body = request.json()
        name = body.get("display_name") or "sandbox-test-principal"
        secret = secrets.token_urlsafe(30)
        object_id, app_id = str(uuid.uuid4()), str(uuid.uuid4())
        with ctx.store.tx() as db:
            ctx.store.add_principal(db, object_id=object_id, app_id=app_id, tenant_id=ctx.ident.tenant_id,
                                    display_name=name, kind="application",
                                    secret_sha256=hashlib.sha256(secret.encode()).hexdigest())
        from .arm import authorization
        for i, grant in enumerate(body.get("roles") or []):
            role = grant.get("role", "")
            matches = [d for d in authorization.all_role_definitions(ctx)
                       if d["properties"]["roleName"].lower() == role.lower() or d["name"].lower() == role.lower()]
            if not matches:
                raise err(f"roles[{i}].role '{role}' is not a known role")
            scope = (grant.get("scope") or ctx.sub_id).rstrip("/")
            rid = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
            with ctx.store.tx() as db:
                ctx.store.put(db, rid, authorization.RA, scope, {
                    "id": rid, "name": rid.rsplit("/", 1)[-1], "type": "Microsoft.Authorization/roleAssignments",
                    "properties": {"roleDefinitionId": f"{ctx.sub_id}/providers/Microsoft.Authorization/"
                                                       f"roleDefinitions/{matches[0]['name']}",
                                   "principalId": object_id, "principalType": "ServicePrincipal", "scope": scope}})
        return Response(201, {"client_id": app_id, "object_id": object_id, "secret": secret,
                              "tenant_id": ctx.ident.tenant_id})

    @router.route("GET", "/principals/{oid}/actions")
    def principal_actions(request):
        """The ARM actions this principal was granted and refused since the sandbox started."""
        seen = core.ACTIONS_SEEN.get(request.params["oid"], {"granted": set(), "refused": set()})
        return Response(200, {"granted": sorted(seen["granted"]), "refused": sorted(seen["refused"])})

    @router.route("POST", "/arc/agent-report")
    def arc_agent_report(request):
        """The Arc agents' heartbeat (sandbox/kind/agent.py): cluster metadata and the cluster's JWKS,
        signed with the onboarding private key; not the public ARM API (agents hold no ARM credentials)."""
        from .arm import arc
        return Response(200, arc.agent_report(ctx, request.json()))

    @router.route("POST", "/reset")
    def reset(request):
        with ctx.store.tx() as db:
            for table in ("resources", "principals", "requests", "kv"):
                db.execute(f"DELETE FROM {table}")
        core.BUCKETS.clear()
        core.ACTIONS_SEEN.clear()
        app.faults.clear()
        from . import entra
        entra.clear_caches()  # fetched issuer metadata (discovery documents, JWKS)
        if ctx.azurite:
            ctx.azurite.reset()
        bootstrap(ctx)
        return Response(204)

    return router
