# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private module_utils of arcwi.workload_identity: private, may change without notice.
# Not for use outside this collection.
"""Typed errors raised by the collection's module_utils.

module_utils raise these; only the module edge (AzureModule.fail_from) turns them into fail_json.
This file imports nothing from the Azure SDKs, so any layer can use it.
"""

from __future__ import annotations

import re

_AADSTS = re.compile(r"\b(AADSTS\d+)\b")


class ArcwiError(Exception):
    """Base class of every error the collection raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_result(self) -> dict:
        """Extra keys for the module's failure result (beside msg)."""
        return {}


class AzureConfigError(ArcwiError):
    """Options, environment or cloud metadata that cannot work (caught before any API call)."""


class AzureApiError(ArcwiError):
    """An Azure API call failed: HTTP status, ARM error code and Azure's message.

    ``status`` is None when no response came back (connection refused, TLS failure, timeout).
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None,
                 operation: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.operation = operation

    @property
    def not_found(self) -> bool:
        return self.status == 404

    def __str__(self) -> str:
        parts = []
        if self.operation:
            parts.append(f"{self.operation} failed:")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(f"{self.code}:")
        elif parts and self.status is not None:
            parts[-1] += ":"
        parts.append(self.message)
        return " ".join(parts)

    def to_result(self) -> dict:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


class AzureAuthError(AzureApiError):
    """Getting a token failed; ``code`` is the AADSTS code when Entra gave one."""

    @classmethod
    def from_message(cls, message: str, operation: str | None = None,
                     status: int | None = None) -> AzureAuthError:
        match = _AADSTS.search(message or "")
        return cls(message, status=status, code=match.group(1) if match else None, operation=operation)
