"""The simulator's error type, rendered as ``{"error": {code, message, details}}``."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the simulator refuses, with the HTTP status it answers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class Problems:
    """Collects every field error of one body, so a client sees them all at once."""

    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.details.append({"field": field, "message": message})

    def raise_if_any(self, status: int = 422, code: str = "validation_error") -> None:
        if not self.details:
            return
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in self.details)
        raise ApiError(status, code, summary, details=self.details)
