"""sqlite state of the emulators. Survives restarts; `reset` deletes the file.

Resources are kept generically by ARM id (looked up case-insensitively, stored with the casing of
their creation, as ARM does). Principals are Entra's service principals (the operator, test
principals and the ones behind managed identities).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    key TEXT PRIMARY KEY,          -- lower-cased ARM id
    id TEXT NOT NULL,              -- ARM id as created
    type TEXT NOT NULL,            -- lower-cased resource type, e.g. microsoft.managedidentity/userassignedidentities
    parent TEXT NOT NULL,          -- lower-cased parent scope (resource group, parent resource, ...)
    body TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_parent ON resources(parent, type);
CREATE INDEX IF NOT EXISTS resources_type ON resources(type);
CREATE TABLE IF NOT EXISTS principals (
    object_id TEXT PRIMARY KEY,
    app_id TEXT UNIQUE NOT NULL,
    tenant_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL,            -- 'application' or 'managedIdentity'
    secret_sha256 TEXT,            -- client secrets are stored hashed
    resource_id TEXT,              -- for managed identities: the ARM id of the identity
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    service TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    status INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    client TEXT,
    fault TEXT
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Store:
    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        # one writer at a time inside this process; sqlite's own locking covers other processes
        self.write_lock = threading.RLock()
        with self.write_lock:
            self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: callers read, check and write atomically inside it."""
        with self.write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def read(self) -> sqlite3.Connection:
        return self._conn()

    # ---- resources -------------------------------------------------------------------------
    def get(self, rid: str, db: sqlite3.Connection | None = None) -> dict | None:
        row = (db or self.read()).execute("SELECT body FROM resources WHERE key = ?", (rid.lower(),)).fetchone()
        return json.loads(row["body"]) if row else None

    def get_row(self, rid: str, db: sqlite3.Connection | None = None):
        return (db or self.read()).execute("SELECT * FROM resources WHERE key = ?", (rid.lower(),)).fetchone()

    def put(self, db: sqlite3.Connection, rid: str, rtype: str, parent: str, body: dict) -> None:
        now = time.time()
        db.execute(
            "INSERT INTO resources(key, id, type, parent, body, created, updated) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT(key) DO UPDATE SET body = excluded.body, updated = excluded.updated",
            (rid.lower(), rid, rtype.lower(), parent.lower(), json.dumps(body), now, now),
        )

    def delete(self, db: sqlite3.Connection, rid: str, recursive: bool = True) -> int:
        key = rid.lower()
        if recursive:
            cur = db.execute("DELETE FROM resources WHERE key = ? OR key LIKE ? ESCAPE '\\'",
                             (key, _like_prefix(key + "/")))
        else:
            cur = db.execute("DELETE FROM resources WHERE key = ?", (key,))
        return cur.rowcount

    def children(self, parent: str, rtype: str, db: sqlite3.Connection | None = None) -> list[dict]:
        rows = (db or self.read()).execute(
            "SELECT body FROM resources WHERE parent = ? AND type = ? ORDER BY created, key",
            (parent.lower(), rtype.lower())).fetchall()
        return [json.loads(r["body"]) for r in rows]

    def under(self, prefix: str, rtype: str, db: sqlite3.Connection | None = None) -> list[dict]:
        """Every resource of a type whose id starts with prefix (a scope), ordered by creation."""
        rows = (db or self.read()).execute(
            "SELECT body FROM resources WHERE type = ? AND (key = ? OR key LIKE ? ESCAPE '\\') ORDER BY created, key",
            (rtype.lower(), prefix.lower(), _like_prefix(prefix.lower().rstrip("/") + "/"))).fetchall()
        return [json.loads(r["body"]) for r in rows]

    def of_type(self, rtype: str, db: sqlite3.Connection | None = None) -> list[dict]:
        rows = (db or self.read()).execute(
            "SELECT body FROM resources WHERE type = ? ORDER BY created, key", (rtype.lower(),)).fetchall()
        return [json.loads(r["body"]) for r in rows]

    def exists_under(self, prefix: str, db: sqlite3.Connection | None = None) -> bool:
        row = (db or self.read()).execute(
            "SELECT 1 FROM resources WHERE key LIKE ? ESCAPE '\\' LIMIT 1",
            (_like_prefix(prefix.lower().rstrip("/") + "/"),)).fetchone()
        return row is not None

    # ---- key/value settings ----------------------------------------------------------------
    def kv_get(self, key: str, default=None):
        row = self.read().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def kv_set(self, key: str, value) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       (key, json.dumps(value)))

    # ---- principals ------------------------------------------------------------------------
    def principal_by_app(self, app_id: str):
        return self.read().execute("SELECT * FROM principals WHERE app_id = ?", (app_id.lower(),)).fetchone()

    def principal_by_object(self, object_id: str):
        return self.read().execute("SELECT * FROM principals WHERE object_id = ?", (object_id.lower(),)).fetchone()

    def add_principal(self, db, *, object_id, app_id, tenant_id, display_name, kind, secret_sha256=None,
                      resource_id=None) -> None:
        db.execute(
            "INSERT INTO principals(object_id, app_id, tenant_id, display_name, kind, secret_sha256, resource_id, created)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (object_id.lower(), app_id.lower(), tenant_id, display_name, kind, secret_sha256, resource_id, time.time()))

    # ---- request log -----------------------------------------------------------------------
    def log_request(self, service, method, path, query, status, duration_ms, client=None, fault=None) -> None:
        with self.write_lock:
            self._conn().execute(
                "INSERT INTO requests(ts, service, method, path, query, status, duration_ms, client, fault)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (time.time(), service, method, path, query, status, duration_ms, client, fault))


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
