"""Azurite, the real Azure Storage blob emulator (npm `azurite`), run as a child process.

How it runs (see `azurite-blob --help` of the pinned version):
- HTTPS with the sandbox certificate (`--cert/--key`), so clients verify it with the sandbox CA bundle;
  `--oauth basic` (accepts the Entra emulator's storage tokens; shared key and anonymous reads work as
  usual); path-style URLs only (`--disableProductStyleUrl`): https://127.0.0.1:<port>/<account>/...
- `--skipApiVersionCheck`: azure-storage-blob 12.31 sends a service version newer than Azurite 3.37
  knows; with the flag the SDK works unpinned.
- `--disableTelemetry`: the sandbox is offline.
- Accounts come from the AZURITE_ACCOUNTS environment variable ("name:key1:key2;name2:key1"), read at
  start (Azurite's AccountDataStore re-reads only its own process environment). A changed account
  list therefore means a restart; the data directory (`--location`) is kept, so blobs survive.
  With an empty list Azurite falls back to its well-known devstoreaccount1.

Thread safety: one lock serialises start/stop/restart; a gate lets the sandbox's own data-plane calls
(`with azurite.using():`) run in parallel with each other but never across a restart.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import config

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
POLL_INTERVAL = 0.05


class AzuriteError(RuntimeError):
    pass


class _Gate:
    """Many users or one restarter (a small readers-writer lock, writers preferred)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._users = 0
        self._restarting = False

    @contextmanager
    def use(self) -> Iterator[None]:
        with self._cond:
            while self._restarting:
                self._cond.wait()
            self._users += 1
        try:
            yield
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    @contextmanager
    def restart(self) -> Iterator[None]:
        with self._cond:
            while self._restarting:
                self._cond.wait()
            self._restarting = True
            while self._users:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._restarting = False
                self._cond.notify_all()


class Azurite:
    def __init__(self, home, port: int, cert, key, log_path, host: str = config.HOST):
        self.home = Path(home)
        self.port = int(port)
        self.host = host
        self.cert = Path(cert)
        self.key = Path(key)
        self.log_path = Path(log_path)
        self.location = self.home / "azurite"
        self.pidfile = self.home / "azurite.pid"
        self.binary = config.SANDBOX_DIR / "node_modules" / ".bin" / "azurite-blob"
        bundle = self.cert.parent / "bundle.pem"
        self.ca_bundle = bundle if bundle.exists() else self.cert.parent / "ca.crt"
        self.accounts: dict[str, list[str]] = {}   # wanted
        self.served: dict[str, list[str]] = {}     # what the running process was started with
        self.proc: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._gate = _Gate()
        self.restarts = 0
        self.last_restart_seconds: float | None = None

    # ---- public API ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/"

    def start(self, accounts: dict[str, list[str]]) -> None:
        """Start with these accounts (name -> [key1, key2]); returns once Azurite answers."""
        with self._lock:
            self.accounts = {name: list(keys) for name, keys in accounts.items()}
            self._kill_stale()
            self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._terminate()

    def ready(self) -> bool:
        proc = self.proc
        return proc is not None and proc.poll() is None and self._answers(timeout=2.0)

    def has_account(self, name: str) -> bool:
        """True once the running Azurite serves the account (not merely when it is about to)."""
        proc = self.proc
        return name in self.served and proc is not None and proc.poll() is None

    def ensure_account(self, name: str, keys: list[str]) -> None:
        """Make Azurite serve this account with these keys (restart when the list changes)."""
        with self._lock:
            if self.served.get(name) == list(keys) and self.ready():
                return
            self.accounts[name] = list(keys)
            self._restart()

    def remove_account(self, name: str) -> None:
        self.remove_accounts([name])

    def remove_accounts(self, names) -> None:
        """Drop accounts (one restart): their containers and service properties go first, so that an
        account created later with the same name starts empty, as a new Azure account does."""
        with self._lock:
            names = [n for n in names if n in self.accounts]
            if not names:
                return
            if self.ready():
                for name in names:
                    if name in self.served:
                        self._purge(name, self.served[name][0])
            for name in names:
                del self.accounts[name]
            self._restart()

    def reset(self) -> None:
        """Stop, wipe the data directory and start with no accounts."""
        with self._lock, self._gate.restart():
            self._terminate()
            shutil.rmtree(self.location, ignore_errors=True)
            self.accounts = {}
            self._spawn()

    def restart(self) -> None:
        with self._lock:
            self._restart()

    @contextmanager
    def using(self) -> Iterator[None]:
        """Hold off restarts while the sandbox itself talks to Azurite."""
        with self._gate.use():
            yield

    def client(self, account: str, key: str | None = None):
        """A BlobServiceClient for the account with its key (for the sandbox's own data-plane work)."""
        from azure.storage.blob import BlobServiceClient, LinearRetry

        if key is None:
            keys = self.accounts.get(account)
            if not keys:
                raise AzuriteError(f"Azurite does not serve account '{account}'")
            key = keys[0]
        return BlobServiceClient(f"{self.url}{account}", credential={"account_name": account, "account_key": key},
                                 connection_verify=str(self.ca_bundle),
                                 retry_policy=LinearRetry(backoff=0.2, random_jitter_range=0, retry_total=3))

    # ---- internals ----------------------------------------------------------------------------
    def _restart(self) -> None:
        started = time.monotonic()
        with self._gate.restart():
            self._terminate()
            self._spawn()
        self.restarts += 1
        self.last_restart_seconds = time.monotonic() - started

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("AZURITE_ACCOUNTS", None)
        if self.accounts:
            env["AZURITE_ACCOUNTS"] = ";".join(f"{name}:{':'.join(keys[:2])}"
                                               for name, keys in sorted(self.accounts.items()))
        return env

    def _spawn(self) -> None:
        if not self.binary.exists():
            raise AzuriteError(f"Azurite is not installed ({self.binary}); run `make setup` (npm ci in sandbox/)")
        self.location.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [str(self.binary), "--blobHost", self.host, "--blobPort", str(self.port),
                "--location", str(self.location), "--cert", str(self.cert), "--key", str(self.key),
                "--oauth", "basic", "--skipApiVersionCheck", "--disableProductStyleUrl", "--disableTelemetry"]
        log = open(self.log_path, "ab")
        try:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting Azurite with "
                      f"{len(self.accounts)} account(s): {', '.join(sorted(self.accounts)) or '-'}\n".encode())
            log.flush()
            # own session: a Ctrl-C on the sandbox's terminal does not kill Azurite behind our back
            self.proc = subprocess.Popen(args, cwd=str(self.location), env=self._env(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise AzuriteError(f"Azurite exited with {code} during start; see {self.log_path}:\n"
                                   + self._tail())
            if self._answers(timeout=1.0):
                self.served = {name: list(keys) for name, keys in self.accounts.items()}
                return
            time.sleep(POLL_INTERVAL)
        self._terminate()
        raise AzuriteError(f"Azurite did not answer on {self.url} within {START_TIMEOUT:.0f}s; see {self.log_path}")

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        self.served = {}
        if proc is not None and proc.poll() is None:
            # SIGTERM: Azurite closes its server and saves its metadata database before exiting
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        try:
            if proc is not None and self.pidfile.read_text().strip() == str(proc.pid):
                self.pidfile.unlink()
        except FileNotFoundError:
            pass

    def _kill_stale(self) -> None:
        """An Azurite left behind by a sandbox that was killed holds the port and the data: stop it."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            cmdline = ""
        if "azurite" not in cmdline:
            self.pidfile.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(POLL_INTERVAL)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)

    def _answers(self, timeout: float) -> bool:
        """Any HTTP answer over TLS counts: the account list is loaded before the server listens."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return True
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _purge(self, name: str, key: str) -> None:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobAnalyticsLogging, Metrics, RetentionPolicy, StaticWebsite

        with self._gate.use():
            client = self.client(name, key)
            try:
                for container in client.list_containers():
                    client.delete_container(container.name)
                client.set_service_properties(
                    analytics_logging=BlobAnalyticsLogging(), hour_metrics=Metrics(), minute_metrics=Metrics(),
                    cors=[], delete_retention_policy=RetentionPolicy(enabled=False),
                    static_website=StaticWebsite(enabled=False))
            except AzureError:
                pass  # best effort: the account is going away anyway
            finally:
                client.close()

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
