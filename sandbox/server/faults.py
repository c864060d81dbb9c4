"""Fault injection for the sandbox endpoints, driven by the admin API.

A rule: {"service": "arm"|"entra"|"web"|"blob"|"*", "method": regex, "path": regex, "rate": 0..1,
"kind": "429"|"500"|"503"|"drop"|"latency", "retry_after": seconds, "latency_ms": ms, "count": max hits,
"skip": matching requests let through before the rule applies (so "skip": 11, "count": 1 is the 12th)}.
On the blob endpoint (the proxy in front of Azurite) faults answer as Azure Storage does: XML error bodies,
500 OperationTimedOut and 503 ServerBusy; Storage throttles with 503 ServerBusy, never 429, so a 429 rule
for "blob" is refused and a "*" 429 rule skips blob requests
(learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes).
Decisions come from a seeded RNG, so a fault sequence is reproducible for a given seed and request order.
"""
from __future__ import annotations

import random
import re
import threading
import time

from .http import Response

KINDS = ("429", "500", "503", "drop", "latency")


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules: list[dict] = []
        self.rng = random.Random(0)
        self.hits = 0

    def configure(self, rules: list[dict], seed: int = 0) -> list[dict]:
        checked = []
        for i, rule in enumerate(rules):
            kind = str(rule.get("kind", ""))
            if kind not in KINDS:
                raise ValueError(f"rules[{i}].kind must be one of {', '.join(KINDS)}")
            if kind == "429" and rule.get("service") == "blob":
                raise ValueError(f"rules[{i}]: Azure Storage throttles with 503 ServerBusy, not 429; use kind 503")
            rate = float(rule.get("rate", 1.0))
            if not 0 <= rate <= 1:
                raise ValueError(f"rules[{i}].rate must be between 0 and 1")
            checked.append({
                "service": rule.get("service", "*"),
                "method": rule.get("method", ".*"),
                "path": rule.get("path", ".*"),
                "rate": rate,
                "kind": kind,
                "retry_after": int(rule.get("retry_after", 1)),
                "latency_ms": int(rule.get("latency_ms", 0)),
                "count": rule.get("count"),
                "skip": int(rule.get("skip", 0)),
                "_skipped": 0,
                "_method": re.compile(rule.get("method", ".*"), re.IGNORECASE),
                "_path": re.compile(rule.get("path", ".*"), re.IGNORECASE),
                "hits": 0,
            })
        with self.lock:
            self.rules = checked
            self.rng = random.Random(seed)
        return self.describe()

    def describe(self) -> list[dict]:
        return [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.rules]

    def clear(self) -> None:
        with self.lock:
            self.rules = []

    def decide(self, service: str, method: str, path: str) -> dict | None:
        with self.lock:
            for rule in self.rules:
                if rule["service"] not in ("*", service):
                    continue
                if service == "blob" and rule["kind"] == "429":  # Storage never answers 429 (see configure)
                    continue
                if not rule["_method"].fullmatch(method) or not rule["_path"].search(path):
                    continue
                if rule["count"] is not None and rule["hits"] >= int(rule["count"]):
                    continue
                if rule["_skipped"] < rule["skip"]:
                    rule["_skipped"] += 1
                    continue
                if self.rng.random() < rule["rate"]:
                    rule["hits"] += 1
                    return rule
        return None

    def apply(self, request):
        if request.service == "admin":
            return None
        rule = self.decide(request.service, request.method, request.path)
        if rule is None:
            return None
        request.fault = rule["kind"]
        kind = rule["kind"]
        if kind == "latency":
            time.sleep(rule["latency_ms"] / 1000.0)
            return None
        if kind == "drop":
            return "drop"
        if request.service == "blob":  # Azure Storage's shape: XML, and throttling is 503 ServerBusy
            from .blob import storage_error
            if kind == "500":
                return storage_error(500, "OperationTimedOut", "The operation could not be completed within the "
                                     "permitted time. (injected by the sandbox)")
            return storage_error(503, "ServerBusy", "The server is currently unable to receive requests. "
                                 "Please retry your request. (injected by the sandbox)")
        if kind == "429":
            return Response(429, {"error": {"code": "TooManyRequests", "message": "The request is being throttled "
                                            "(injected by the sandbox)."}},
                            {"Retry-After": str(rule["retry_after"])})
        return Response(int(kind), {"error": {"code": "InternalServerError" if kind == "500" else "ServiceUnavailable",
                                              "message": "Injected by the sandbox fault injector."}})
