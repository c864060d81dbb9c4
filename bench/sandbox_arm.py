#!/usr/bin/env python3
"""Requests per second of the sandbox ARM emulator for identity GETs and FIC PUTs.

Prints figures; asserts nothing. Run with the sandbox up (`make bench` starts it):
    .venv/bin/python bench/sandbox_arm.py [--seconds 5] [--threads 4]

- GET: one user-assigned identity, read over keep-alive HTTPS connections with a bearer token
  (what every module does first); sequential through the real SDK, and raw with N threads.
- PUT: FIC create-or-update with write throttling and the simulated FIC write time switched off,
  spread over N identities (writes to one identity are serialised by design); then with the
  documented defaults on one identity, to show what a client really gets.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from sandbox.tests.conftest import Sandbox  # noqa: E402

API = "2024-11-30"


def run_for(seconds: float, threads: int, work) -> tuple[int, float, list[float]]:
    stop = time.monotonic() + seconds
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def loop(i):
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            work(i, counts[i])
            latencies[i].append(time.perf_counter() - t0)
            counts[i] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    return sum(counts), elapsed, [x for lat in latencies for x in lat]


def report(label: str, total: int, elapsed: float, lat: list[float]) -> None:
    lat.sort()
    p50 = statistics.median(lat) * 1000 if lat else 0
    p95 = lat[int(len(lat) * 0.95) - 1] * 1000 if lat else 0
    print(f"{label:58} {total / elapsed:8.1f} req/s   ({total} in {elapsed:.1f}s, p50 {p50:.1f} ms, p95 {p95:.1f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    box = Sandbox()
    os.environ["REQUESTS_CA_BUNDLE"] = box.bundle
    from azure.mgmt.msi import ManagedServiceIdentityClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    run = uuid.uuid4().hex[:6]
    rg = f"bench-{run}"
    box.client(ResourceManagementClient).resource_groups.create_or_update(rg, {"location": "westeurope"})
    msi = box.client(ManagedServiceIdentityClient)
    saved = box.admin("GET", "/settings")
    box.admin("PATCH", "/settings", {"throttle_enabled": False, "fic_write_seconds": 0.0})
    try:
        identities = [msi.user_assigned_identities.create_or_update(rg, f"bench-{i}", {"location": "westeurope"})
                      for i in range(args.threads)]
        token = box.token()
        sessions = [requests.Session() for _ in range(args.threads)]
        for s in sessions:
            s.headers["Authorization"] = f"Bearer {token}"
            s.verify = box.bundle
        base = box.arm_url.rstrip("/")
        print(f"sandbox ARM emulator, {os.cpu_count()} cores, {args.seconds:.0f}s per figure")

        def sdk_get(i, n):
            msi.user_assigned_identities.get(rg, identities[0].name)

        report("identity GET, azure-mgmt-msi, 1 thread", *run_for(args.seconds, 1, sdk_get))

        def raw_get(i, n):
            r = sessions[i].get(base + identities[0].id, params={"api-version": API})
            assert r.status_code == 200, r.text

        report("identity GET, keep-alive HTTPS, 1 thread", *run_for(args.seconds, 1, raw_get))
        report(f"identity GET, keep-alive HTTPS, {args.threads} threads", *run_for(args.seconds, args.threads, raw_get))

        def raw_put(i, n):
            body = {"properties": {"issuer": "https://bench.example.invalid/", "subject": f"s{n % 15}",
                                   "audiences": ["api://AzureADTokenExchange"]}}
            r = sessions[i].put(f"{base}{identities[i].id}/federatedIdentityCredentials/fic-{n % 15}", json=body,
                                params={"api-version": API})
            assert r.status_code in (200, 201), r.text

        report(f"FIC PUT, no throttling, {args.threads} identities in parallel",
               *run_for(args.seconds, args.threads, raw_put))
        report("FIC PUT, no throttling, 1 thread", *run_for(args.seconds, 1, raw_put))
        box.admin("PATCH", "/settings", {k: saved[k] for k in ("throttle_enabled", "fic_write_seconds")})
        codes: dict[int, int] = {}

        def throttled_put(i, n):
            body = {"properties": {"issuer": "https://bench.example.invalid/", "subject": "throttled",
                                   "audiences": ["api://AzureADTokenExchange"]}}
            r = sessions[0].put(f"{base}{identities[0].id}/federatedIdentityCredentials/throttled", json=body,
                                params={"api-version": API})
            codes[r.status_code] = codes.get(r.status_code, 0) + 1

        total, elapsed, lat = run_for(min(args.seconds, 4.0), 1, throttled_put)
        accepted = codes.get(200, 0) + codes.get(201, 0)
        print(f"{'FIC PUT, documented throttling + write time, 1 identity':58} {accepted / elapsed:8.2f} accepted/s "
              f"(answers: {dict(sorted(codes.items()))})")
    finally:
        box.admin("PATCH", "/settings", {k: saved[k] for k in ("throttle_enabled", "fic_write_seconds")})
        box.client(ResourceManagementClient).resource_groups.begin_delete(rg).result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
