"""Request log and fault injection, as ASGI middleware around ``/api``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["status", "timeout_after_commit", "timeout_before_commit"]
DEFAULT_HOLD_SECONDS = 30.0
GATEWAY_TIMEOUT = 504
# The request log is for inspection; a long demo must not grow it forever.
MAX_LOG_ENTRIES = 10_000


class Fault:
    """One injected failure, matched by method and path, used ``times`` times."""

    def __init__(
        self,
        *,
        fault_id: int,
        kind: FaultKind,
        method: str | None,
        path_regex: str | None,
        status: int | None,
        times: int,
        hold_seconds: float | None,
        retry_after: str | None,
    ) -> None:
        self.fault_id = fault_id
        self.kind = kind
        self.method = method.upper() if method else None
        self.path_regex = path_regex
        self._pattern = re.compile(path_regex) if path_regex else None
        self.status = status
        self.remaining = times
        self.hold_seconds = (
            DEFAULT_HOLD_SECONDS if hold_seconds is None else hold_seconds
        )
        self.retry_after = retry_after

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self._pattern is None or self._pattern.search(path) is not None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.fault_id,
            "kind": self.kind,
            "method": self.method,
            "path_regex": self.path_regex,
            "status": self.status,
            "remaining": self.remaining,
            "hold_seconds": self.hold_seconds,
            "retry_after": self.retry_after,
        }


class FaultBook:
    """Armed faults and the log of every ``/api`` request, in arrival order."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self._fault_ids = itertools.count(1)
        self._request_seq = itertools.count(1)

    def arm(self, **options: Any) -> Fault:
        fault = Fault(fault_id=next(self._fault_ids), **options)
        self.faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this request, consuming one use."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def open_entry(self, scope: Scope) -> dict[str, Any]:
        method = scope["method"]
        path = scope["path"]
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key")
        entry = {
            "seq": next(self._request_seq),
            "method": method,
            "path": path,
            "query": scope["query_string"].decode("latin-1"),
            "status": None,
            "idempotency_key": key.decode("latin-1") if key is not None else None,
            "operation": classify(method, path),
        }
        self.requests.append(entry)
        if len(self.requests) > MAX_LOG_ENTRIES:
            del self.requests[: len(self.requests) - MAX_LOG_ENTRIES]
        return entry


def classify(method: str, path: str) -> str:
    """Name the operation, as in the control API's request log."""
    parts = [part for part in path.split("/") if part]
    # ["api", collection] or ["api", collection, id] or [..., id, "void"]
    if method == "GET":
        return "list" if len(parts) <= 2 else "read"
    if method == "POST":
        return "void" if parts[-1:] == ["void"] and len(parts) == 4 else "create"
    if method == "PATCH":
        return "update"
    if method == "DELETE":
        return "delete"
    return method.lower()


class FaultMiddleware:
    """Log every ``/api`` request and apply the first matching armed fault.

    ``timeout_before_commit`` holds the request without running it, then answers
    504; ``timeout_after_commit`` runs it (the change lands) and holds the answer.
    A hold ends early when the client hangs up, so a test's short client timeout
    never leaves the server waiting on a request nobody reads.
    """

    def __init__(self, app: ASGIApp, *, book: FaultBook) -> None:
        self.app = app
        self.book = book

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api"):
            await self.app(scope, receive, send)
            return

        entry = self.book.open_entry(scope)

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        fault = self.book.take(scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, logged_send)
        elif fault.kind == "status":
            await _send_fault(logged_send, fault, fault.status or 500)
        elif fault.kind == "timeout_before_commit":
            await _hold(receive, fault.hold_seconds)
            await _send_fault(logged_send, fault, GATEWAY_TIMEOUT)
        else:
            buffered: list[Message] = []

            async def buffer(message: Message) -> None:
                buffered.append(message)

            await self.app(scope, receive, buffer)
            await _hold(receive, fault.hold_seconds)
            for message in buffered:
                await logged_send(message)


async def _hold(receive: Receive, seconds: float) -> None:
    """Wait ``seconds`` or until the client disconnects, whichever is first."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until_disconnect(), timeout=seconds)


async def _send_fault(send: Send, fault: Fault, status: int) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "injected_fault",
                "message": f"fault {fault.fault_id} ({fault.kind}) answered {status}",
            }
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if fault.retry_after is not None:
        headers.append((b"retry-after", fault.retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
