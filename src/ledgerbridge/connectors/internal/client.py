"""``InternalApi`` over HTTP: the internal system's contract, errors mapped at the edge.

Payloads are returned as the wire's raw dicts: amounts and quantities stay the
decimal *strings* the contract carries (mapping them to ``Decimal`` is the sync
engine's job), and any JSON number that does appear is parsed as ``Decimal``,
never float. Bodies sent may hold ``Decimal`` values; they go out as strings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import logging
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, NoReturn

import httpx

from ledgerbridge import errors
from ledgerbridge.connectors import base

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
PAGE_SIZE = 100
USER_AGENT = "ledgerbridge-internal-client/1"


def encode_json(body: Any) -> bytes:
    """Serialise a request body; ``Decimal`` becomes a plain decimal string."""

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        raise TypeError(f"cannot send {type(value).__name__} as JSON")

    return json.dumps(body, default=default, separators=(",", ":")).encode()


def decode_json(content: bytes) -> Any:
    return json.loads(content, parse_float=Decimal)


def format_since(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("updated_since must be timezone-aware")
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)


def _describe(response: httpx.Response) -> tuple[str | None, str]:
    """The contract's ``{"error": {"code", "message"}}``, or the raw text."""
    try:
        error = decode_json(response.content)["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return None, response.text[:200]


def _raise_for_status(exc: httpx.HTTPStatusError, entity_id: str | None) -> NoReturn:
    response = exc.response
    status = response.status_code
    code, detail = _describe(response)
    request = response.request
    message = (
        f"internal system answered {status} to "
        f"{request.method} {request.url.path}: {detail}"
    )
    context: dict[str, Any] = {
        "status_code": status,
        "entity_id": entity_id,
        "code": code,
    }

    if status == 410:
        raise errors.InternalGone(message, **context) from exc
    if status == 404:
        raise errors.InternalNotFound(message, **context) from exc
    if status == 412:
        raise errors.InternalVersionMismatch(message, **context) from exc
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise errors.InternalTransientError(
            message, retry_after_seconds=retry_after, **context
        ) from exc
    raise errors.InternalPermanentError(message, **context) from exc


@contextlib.contextmanager
def map_internal_errors(
    method: str, path: str, *, entity_id: str | None = None
) -> Iterator[None]:
    """Translate httpx failures and error statuses into ``ledgerbridge.errors``.

    The one place where foreign errors become ours: 410, 404 and 412 get their
    own classes, 429/5xx/timeouts/connection failures are transient (with
    ``retry_after_seconds`` from ``Retry-After``), every other 4xx is permanent.
    """
    context: dict[str, Any] = {"status_code": None, "entity_id": entity_id}
    try:
        yield
    except httpx.HTTPStatusError as exc:
        _raise_for_status(exc, entity_id)
    except httpx.TimeoutException as exc:
        raise errors.InternalTransientError(
            f"internal system did not answer {method} {path} in time", **context
        ) from exc
    except httpx.UnsupportedProtocol as exc:
        # A misconfigured base URL will not fix itself by waiting.
        raise errors.InternalPermanentError(
            f"cannot reach the internal system at {path}: {exc}", **context
        ) from exc
    except httpx.TransportError as exc:
        raise errors.InternalTransientError(
            f"could not talk to the internal system for {method} {path}: {exc!r}",
            **context,
        ) from exc
    except ValueError as exc:
        # A 2xx whose body is not JSON: most likely a proxy's page; try again.
        raise errors.InternalTransientError(
            f"internal system sent a body that is not JSON for {method} {path}",
            **context,
        ) from exc


class InternalClient:
    """The ``InternalApi`` Protocol over an ``httpx.AsyncClient``.

    Args:
        base_url: root of the internal system, e.g. ``http://127.0.0.1:8002``.
        api_token: sent as ``Authorization: Bearer``; never logged.
        http: a shared client; when omitted one is created and ``aclose`` closes it.
        timeout_seconds: per-request timeout, applied to every call.
        page_size: records asked for per listing page.
    """

    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient()
        self._timeout = httpx.Timeout(timeout_seconds)
        self._page_size = str(page_size)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> InternalClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # InternalApi

    async def get(self, entity: base.InternalEntity, entity_id: str) -> base.JsonObject:
        return await self._call(
            "GET", f"/api/{entity}/{entity_id}", entity_id=entity_id
        )

    async def list_changed(
        self,
        entity: base.InternalEntity,
        *,
        updated_since: dt.datetime | None,
        cursor: str | None = None,
    ) -> tuple[list[base.JsonObject], str | None]:
        """One page in change order; deleted invoices are included (status "deleted").

        Without ``updated_since`` the listing is every live record.
        """
        params = {"limit": self._page_size}
        if updated_since is not None:
            params["updated_since"] = format_since(updated_since)
        if cursor is not None:
            params["cursor"] = cursor
        page = await self._call("GET", f"/api/{entity}", params=params)
        return list(page["data"]), page["next_cursor"]

    async def find(
        self, entity: base.InternalEntity, **filters: str
    ) -> list[base.JsonObject]:
        """Every live record matching all exact ``filters``, across all pages."""
        found: list[base.JsonObject] = []
        cursor: str | None = None
        while True:
            params = {**filters, "limit": self._page_size}
            if cursor is not None:
                params["cursor"] = cursor
            page = await self._call("GET", f"/api/{entity}", params=params)
            found.extend(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    async def create(
        self,
        entity: base.InternalEntity,
        body: base.JsonObject,
        *,
        idempotency_key: str,
    ) -> base.JsonObject:
        """Create a record; a retry with the same key answers the first result."""
        return await self._call(
            "POST",
            f"/api/{entity}",
            body=body,
            headers={"Idempotency-Key": idempotency_key},
        )

    async def update(
        self,
        entity: base.InternalEntity,
        entity_id: str,
        fields: base.JsonObject,
        *,
        version: int,
    ) -> base.JsonObject:
        return await self._call(
            "PATCH",
            f"/api/{entity}/{entity_id}",
            body=fields,
            headers={"If-Match": str(version)},
            entity_id=entity_id,
        )

    async def void_invoice(self, invoice_id: str) -> base.JsonObject:
        """Void an invoice; voiding a void invoice is a no-op that answers 200."""
        return await self._call(
            "POST", f"/api/invoices/{invoice_id}/void", entity_id=invoice_id
        )

    async def delete(self, entity: base.InternalEntity, entity_id: str) -> None:
        """Delete a record; one that is already gone counts as deleted.

        A delete whose answer was lost (timeout after commit) is retried; the
        retry's 410 means the first attempt landed, so it is success, not an error.
        """
        with contextlib.suppress(errors.InternalGone):
            await self._call(
                "DELETE", f"/api/{entity}/{entity_id}", entity_id=entity_id
            )

    # Plumbing

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: base.JsonObject | None = None,
        headers: Mapping[str, str] | None = None,
        entity_id: str | None = None,
    ) -> base.JsonObject:
        request_headers = dict(self._headers)
        if headers:
            request_headers.update(headers)
        content = None
        if body is not None:
            content = encode_json(body)
            request_headers["Content-Type"] = "application/json"

        with map_internal_errors(method, path, entity_id=entity_id):
            response = await self._http.request(
                method,
                self.base_url + path,
                params=params,
                content=content,
                headers=request_headers,
                timeout=self._timeout,
            )
            logger.debug("%s %s -> %s", method, path, response.status_code)
            response.raise_for_status()
            payload = decode_json(response.content)
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
            return payload
