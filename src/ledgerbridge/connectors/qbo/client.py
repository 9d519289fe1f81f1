"""``QboClient``: the QBO Accounting API v3 for one realm, over httpx."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from ledgerbridge import errors
from ledgerbridge.connectors.base import JsonObject, QboEntity
from ledgerbridge.connectors.qbo import models, query
from ledgerbridge.connectors.qbo.errors import (
    LOGGER_NAME,
    Fault,
    error_for,
    faults_from_json,
    intuit_tid,
    map_qbo_errors,
    read_response,
)

if TYPE_CHECKING:
    from ledgerbridge.connectors.qbo.auth import TokenManager

logger = logging.getLogger(LOGGER_NAME)

DEFAULT_MINORVERSION = 75
DEFAULT_TIMEOUT_SECONDS = 30.0
# Intuit's batch page says 10 payloads, its limits page 30; stay with the safe one.
BATCH_MAX_ITEMS = 10
# QBO returns at most this many objects from one CDC call, across all entities.
CDC_MAX_OBJECTS = 1000


class TokenSource(Protocol):
    """Hands out a valid access token for one realm."""

    async def access_token(self) -> str:
        """A token that is not near expiry (refreshing it first if needed)."""
        ...

    async def refresh_access_token(self, rejected: str) -> str:
        """A token other than ``rejected``, which QBO just answered 401 to.

        Implementations reuse a token another worker already refreshed.
        """
        ...


class RateBudget(Protocol):
    """Takes one request from a realm's shared budget, waiting if it is spent."""

    async def acquire(self, realm_id: str) -> None: ...


class QboClient:
    """One QBO company (realm) reached with tokens from a ``TokenSource``.

    Every request asks for JSON at a pinned ``minorversion``; every write
    carries ``requestid`` so QBO replays rather than repeats it; every failure
    is raised as a ``ledgerbridge.errors.QboError`` carrying ``intuit_tid``.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        realm_id: str,
        tokens: TokenSource,
        minorversion: int = DEFAULT_MINORVERSION,
        rate_limiter: RateBudget | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.realm_id = realm_id
        self._http = http
        self._company_url = f"{base_url.rstrip('/')}/v3/company/{realm_id}"
        self._tokens = tokens
        self._minorversion = minorversion
        self._rate_limiter = rate_limiter
        self._timeout = timeout

    # -- the QboApi protocol ---------------------------------------------------

    async def get(self, entity: QboEntity, entity_id: str) -> JsonObject:
        """Read one object. Raises ``QboNotFound`` for fault 610."""
        body = await self._request(
            "GET", f"/{entity.lower()}/{entity_id}", action=f"get_{entity.lower()}"
        )
        return _unwrap(body, entity, self.realm_id)

    async def create(
        self, entity: QboEntity, body: JsonObject, *, request_id: str
    ) -> JsonObject:
        """Create an object; the same ``request_id`` never creates twice."""
        answer = await self._request(
            "POST",
            f"/{entity.lower()}",
            action=f"create_{entity.lower()}",
            json_body=body,
            request_id=request_id,
        )
        return _unwrap(answer, entity, self.realm_id)

    async def update(
        self, entity: QboEntity, body: JsonObject, *, request_id: str
    ) -> JsonObject:
        """Sparse update: ``body`` carries ``Id``, ``SyncToken`` and changed fields.

        Raises ``QboStaleObject`` (a ``QboTransientError``, code ``5010``) when
        the SyncToken is stale.
        """
        if "Id" not in body or "SyncToken" not in body:
            raise ValueError("a QBO update needs Id and SyncToken")
        # Without sparse=true QBO nulls every writable field left out.
        answer = await self._request(
            "POST",
            f"/{entity.lower()}",
            action=f"update_{entity.lower()}",
            json_body={**body, "sparse": True},
            request_id=request_id,
        )
        return _unwrap(answer, entity, self.realm_id)

    async def void_invoice(
        self, invoice_id: str, sync_token: str, *, request_id: str
    ) -> JsonObject:
        """Void an invoice: QBO keeps it with zero amounts and bumps SyncToken."""
        answer = await self._request(
            "POST",
            "/invoice",
            action="void_invoice",
            params={"operation": "void"},
            json_body={"Id": invoice_id, "SyncToken": sync_token},
            request_id=request_id,
        )
        return _unwrap(answer, "Invoice", self.realm_id)

    async def delete(
        self, entity: QboEntity, entity_id: str, sync_token: str, *, request_id: str
    ) -> None:
        """Delete an object for good (transactions only; name lists deactivate)."""
        answer = await self._request(
            "POST",
            f"/{entity.lower()}",
            action=f"delete_{entity.lower()}",
            params={"operation": "delete"},
            json_body={"Id": entity_id, "SyncToken": sync_token},
            request_id=request_id,
        )
        _unwrap(answer, entity, self.realm_id)

    async def query(self, statement: str) -> list[JsonObject]:
        """Run a QBO query, following pages of 1000.

        A statement that already names ``startposition``/``maxresults`` is run
        once as written. Fault 4000 raises ``QboPermanentError``; a response
        without ``QueryResponse`` raises rather than reading as "no rows".
        """
        if query.has_paging(statement):
            return _query_rows(await self._run_query(statement), self.realm_id)
        rows: list[JsonObject] = []
        start = 1
        while True:
            body = await self._run_query(query.page(statement, start_position=start))
            found = _query_rows(body, self.realm_id)
            rows.extend(found)
            if len(found) < query.MAX_RESULTS:
                return rows
            start += len(found)

    async def find_by(
        self, entity: QboEntity, field: str, value: str
    ) -> list[JsonObject]:
        """``select * from <entity> where <field> = '<escaped value>'``."""
        return await self.query(query.select_where_equals(entity, field, value))

    async def cdc(
        self, entities: list[QboEntity], changed_since: dt.datetime
    ) -> tuple[dict[str, list[JsonObject]], dt.datetime]:
        """Changed objects per entity since a time, and the server's ``time``.

        Deleted objects come back as stubs with ``"status": "Deleted"``; pass
        the returned time as the next ``changed_since`` (with some overlap).
        """
        result = await self.changes_since(entities, changed_since)
        return result.changes, result.time

    # -- beyond the protocol ---------------------------------------------------

    async def changes_since(
        self, entities: list[QboEntity], changed_since: dt.datetime
    ) -> models.CdcResult:
        """``cdc`` as a ``CdcResult``."""
        if changed_since.tzinfo is None:
            raise ValueError("changed_since must be timezone-aware")
        body = await self._request(
            "GET",
            "/cdc",
            action="cdc",
            params={
                "entities": ",".join(entities),
                "changedSince": changed_since.isoformat(),
            },
        )
        return _parse_cdc(body, entities, self.realm_id)

    async def batch(
        self, items: list[JsonObject], *, request_id: str
    ) -> list[JsonObject | errors.QboError]:
        """Run up to ten ``BatchItemRequest`` items; answers come back in order.

        Each item is ``{"bId": ..., "operation": ..., "<Entity>": {...}}`` or
        ``{"bId": ..., "Query": "..."}``. The call fails as a whole only for
        transport or envelope faults; an item's own fault is returned in its
        place as the error it would have raised alone.
        """
        if not 1 <= len(items) <= BATCH_MAX_ITEMS:
            raise ValueError(f"a QBO batch holds 1 to {BATCH_MAX_ITEMS} items")
        ids = [str(item.get("bId", "")) for item in items]
        if "" in ids or len(set(ids)) != len(ids):
            raise ValueError("every batch item needs a distinct bId")
        body = await self._request(
            "POST",
            "/batch",
            action="batch",
            json_body={"BatchItemRequest": items},
            request_id=request_id,
        )
        answers = body.get("BatchItemResponse")
        if not isinstance(answers, list):
            raise _malformed(self.realm_id, "batch", "no BatchItemResponse")
        by_id = {str(a.get("bId")): a for a in answers if isinstance(a, dict)}
        results: list[JsonObject | errors.QboError] = []
        for bid in ids:
            answer = by_id.get(bid)
            if answer is None:
                raise _malformed(self.realm_id, "batch", f"no answer for bId {bid}")
            faults = faults_from_json(answer)
            if faults:
                results.append(
                    error_for(
                        200,
                        faults,
                        response=None,
                        realm_id=self.realm_id,
                        action=f"batch_{bid}",
                    )
                )
            else:
                results.append(answer)
        return results

    # -- plumbing --------------------------------------------------------------

    async def _run_query(self, statement: str) -> JsonObject:
        # GET with the statement URL-encoded is Intuit's documented form.
        return await self._request(
            "GET", "/query", action="query", params={"query": statement}
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        params: Mapping[str, str] | None = None,
        json_body: JsonObject | None = None,
        request_id: str | None = None,
    ) -> JsonObject:
        query_params = {**(params or {}), "minorversion": str(self._minorversion)}
        if request_id is not None:
            query_params["requestid"] = request_id
        headers = {"Accept": "application/json"}
        content: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            content = models.dumps(json_body)

        token = await self._tokens.access_token()
        # One 401 earns one refresh and one retry: an access token can expire
        # (or be revoked) between our expiry check and QBO's.
        for attempt in (1, 2):
            if self._rate_limiter is not None:
                await self._rate_limiter.acquire(self.realm_id)
            try:
                with map_qbo_errors(realm_id=self.realm_id, action=action):
                    response = await self._http.request(
                        method,
                        self._company_url + path,
                        params=query_params,
                        headers={**headers, "Authorization": f"Bearer {token}"},
                        content=content,
                        timeout=self._timeout,
                    )
                    logger.debug(
                        "qbo %s answered %s",
                        action,
                        response.status_code,
                        extra=self._extra(action, intuit_tid(response)),
                    )
                    return read_response(response)
            except errors.QboAuthError as exc:
                if attempt == 2:
                    raise
                logger.warning(
                    "qbo %s got 401, refreshing the access token",
                    action,
                    extra=self._extra(action, exc.intuit_tid),
                )
                token = await self._tokens.refresh_access_token(token)
        raise AssertionError("unreachable")  # pragma: no cover

    def _extra(self, action: str, tid: str | None) -> dict[str, Any]:
        return {"action": action, "realm_id": self.realm_id, "intuit_tid": tid}


def _malformed(realm_id: str, action: str, why: str) -> errors.QboTransientError:
    # An answer we cannot read is retried, never mistaken for "nothing there".
    return errors.QboTransientError(
        f"QBO {action}: unexpected response ({why})",
        realm_id=realm_id,
        action=action,
        status_code=200,
        code=None,
        element=None,
        intuit_tid=None,
    )


def _unwrap(body: JsonObject, entity: str, realm_id: str) -> JsonObject:
    obj = body.get(entity)
    if not isinstance(obj, dict):
        raise _malformed(realm_id, entity.lower(), f"no {entity} object")
    return obj


def _query_rows(body: JsonObject, realm_id: str) -> list[JsonObject]:
    response = body.get("QueryResponse")
    if not isinstance(response, dict):
        raise _malformed(realm_id, "query", "no QueryResponse")
    # No matches is {"QueryResponse": {}}: the entity key is simply absent.
    for key, value in response.items():
        if key not in ("startPosition", "maxResults", "totalCount") and isinstance(
            value, list
        ):
            return value
    return []


def _parse_cdc(
    body: JsonObject, entities: list[QboEntity], realm_id: str
) -> models.CdcResult:
    changes: dict[str, list[JsonObject]] = {entity: [] for entity in entities}
    responses = body.get("CDCResponse")
    if not isinstance(responses, list) or "time" not in body:
        raise _malformed(realm_id, "cdc", "no CDCResponse or time")
    for cdc in responses:
        for query_response in (cdc or {}).get("QueryResponse") or []:
            if not isinstance(query_response, dict):
                continue
            faults = faults_from_json(query_response)
            if faults:
                raise _cdc_fault(faults, realm_id)
            for key, value in query_response.items():
                if isinstance(value, list):
                    changes.setdefault(key, []).extend(value)
    try:
        time = models.parse_qbo_time(body["time"])
    except ValueError as exc:
        raise _malformed(realm_id, "cdc", "unreadable time") from exc
    total = sum(len(rows) for rows in changes.values())
    if total >= CDC_MAX_OBJECTS:
        # QBO silently caps a CDC answer; the caller must poll a shorter window.
        logger.warning(
            "qbo cdc answered %s objects, the most it sends; poll shorter windows",
            total,
            extra={"action": "cdc_truncated", "realm_id": realm_id, "intuit_tid": None},
        )
    return models.CdcResult(changes=changes, time=time)


def _cdc_fault(faults: list[Fault], realm_id: str) -> errors.QboError:
    return error_for(200, faults, response=None, realm_id=realm_id, action="cdc")


async def client_for_connection(
    http: httpx.AsyncClient,
    tokens: TokenManager,
    connection_id: int,
    *,
    base_url: str,
    minorversion: int = DEFAULT_MINORVERSION,
    rate_limiter: RateBudget | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> QboClient:
    """A ``QboClient`` for a stored connection, its tokens from ``tokens``."""
    return QboClient(
        http,
        base_url=base_url,
        realm_id=await tokens.realm_id(connection_id),
        tokens=tokens.token_source(connection_id),
        minorversion=minorversion,
        rate_limiter=rate_limiter,
        timeout=timeout,
    )
