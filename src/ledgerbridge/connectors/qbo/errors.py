"""The one boundary where QBO faults and transport failures become our errors.

::

    errors.QboError
    ├── errors.QboTransientError   429 (QboThrottled), 5xx, timeouts, network,
    │   └── QboStaleObject         5010: the SyncToken moved; refetch and merge
    ├── errors.QboPermanentError   validation (2xxx, 6xxx), 4000 query parse, 403
    │   └── errors.QboNotFound     610
    └── errors.QboAuthError        401 that survived one refresh
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ledgerbridge import errors
from ledgerbridge.connectors.base import JsonObject
from ledgerbridge.connectors.qbo import models

LOGGER_NAME = "ledgerbridge.connectors.qbo"
logger = logging.getLogger(LOGGER_NAME)

# Intuit asks clients to wait a minute after a 429; Retry-After is not promised.
DEFAULT_RETRY_AFTER_SECONDS = 60.0

NOT_FOUND_CODE = "610"
STALE_OBJECT_CODE = "5010"
THROTTLE_CODE = "3001"
SYSTEM_FAILURE_CODE = "10000"


class QboStaleObject(errors.QboTransientError):
    """QBO refused a write with a stale SyncToken (fault 5010); refetch and merge."""


class QboThrottled(errors.QboTransientError, errors.RetryAfter):
    """QBO throttled this realm (429, fault 3001); wait before the next call."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One entry of a QBO fault, whatever shape it arrived in."""

    code: str | None
    message: str
    detail: str
    element: str | None
    type: str | None


class FaultResponse(Exception):
    """A QBO response that is an error; ``map_qbo_errors`` translates it."""

    def __init__(self, response: httpx.Response, faults: list[Fault]) -> None:
        super().__init__(f"QBO answered {response.status_code}")
        self.response = response
        self.faults = faults


def intuit_tid(response: httpx.Response | None) -> str | None:
    """Intuit's trace id for a response, the one thing support asks for."""
    if response is None:
        return None
    tid: str | None = response.headers.get("intuit_tid")
    return tid


def parse_faults(content: bytes, content_type: str = "") -> list[Fault]:
    """Read the faults out of a QBO error body; ``[]`` when it carries none.

    Three shapes occur: ``{"Fault": {"Error": [...]}}`` (most errors, and items
    inside a 200), the lower-case ``{"fault": {"error": [...]}}`` envelope of a
    401, and XML ``<Fault><Error code=...>`` which Intuit's throttler sends even
    to a client that asked for JSON.
    """
    text = content.strip()
    if not text:
        return []
    if text.startswith(b"<") or "xml" in content_type:
        return _parse_xml_faults(text)
    try:
        body = models.loads(text)
    except ValueError:
        return []
    return faults_from_json(body) if isinstance(body, dict) else []


def faults_from_json(body: JsonObject) -> list[Fault]:
    """The faults of a parsed JSON body, upper- or lower-case shape."""
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, dict):
        return []
    entries = fault.get("Error") or fault.get("error") or []
    fault_type = fault.get("type")
    found: list[Fault] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        code = entry.get("code")
        found.append(
            Fault(
                code=None if code is None else str(code),
                message=str(entry.get("Message") or entry.get("message") or ""),
                detail=str(entry.get("Detail") or entry.get("detail") or ""),
                element=entry.get("element") or None,
                type=None if fault_type is None else str(fault_type),
            )
        )
    return found or [
        Fault(code=None, message="", detail="", element=None, type=fault_type)
    ]


def _parse_xml_faults(content: bytes) -> list[Fault]:
    # Bodies come from Intuit over TLS; ElementTree resolves no external
    # entities and the bundled expat refuses entity-expansion bombs.
    try:
        root = ET.fromstring(content)  # noqa: S314 - see above
    except ET.ParseError:
        return []
    found: list[Fault] = []
    for fault in root.iter():
        if _local(fault.tag) != "Fault":
            continue
        for error in fault:
            if _local(error.tag) != "Error":
                continue
            texts = {_local(child.tag): (child.text or "") for child in error}
            found.append(
                Fault(
                    code=error.get("code"),
                    message=texts.get("Message", ""),
                    detail=texts.get("Detail", ""),
                    element=error.get("element") or None,
                    type=fault.get("type"),
                )
            )
    return found


def _local(tag: str) -> str:
    # Intuit namespaces its XML (http://schema.intuit.com/finance/v3).
    return tag.rsplit("}", 1)[-1]


def read_response(response: httpx.Response) -> JsonObject:
    """Return the JSON object of a successful response, or raise ``FaultResponse``.

    A 2xx is not enough: QBO documents that a 200 may still carry a ``Fault``,
    and a body that does not parse is never taken for an empty answer.
    """
    if response.status_code >= 400:
        raise FaultResponse(
            response,
            parse_faults(response.content, response.headers.get("content-type", "")),
        )
    try:
        body = models.loads(response.content)
    except ValueError:
        # A 200 that is not JSON may still be an XML fault (throttling).
        raise FaultResponse(
            response,
            parse_faults(response.content, response.headers.get("content-type", ""))
            or [_unreadable],
        ) from None
    if not isinstance(body, dict):
        raise FaultResponse(response, [_unreadable])
    if "Fault" in body or "fault" in body:
        raise FaultResponse(response, faults_from_json(body))
    return body


_unreadable = Fault(
    code=None,
    message="unreadable response",
    detail="the body is not a JSON object",
    element=None,
    type=None,
)


def retry_after_seconds(response: httpx.Response) -> float:
    """``Retry-After`` (seconds or HTTP date) if present, else Intuit's 60 s."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return DEFAULT_RETRY_AFTER_SECONDS
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        sent = email.utils.parsedate_to_datetime(response.headers["date"])
    except (KeyError, TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    if when.tzinfo is None or sent.tzinfo is None:
        return DEFAULT_RETRY_AFTER_SECONDS
    return max(0.0, (when - sent) / dt.timedelta(seconds=1))


def error_for(
    status_code: int,
    faults: list[Fault],
    *,
    response: httpx.Response | None,
    realm_id: str,
    action: str,
) -> errors.QboError:
    """Choose the error class for a QBO answer; the most specific match wins."""
    first = faults[0] if faults else None
    code = first.code if first else None
    context: dict[str, Any] = {
        "status_code": status_code,
        "code": code,
        "element": first.element if first else None,
        "intuit_tid": intuit_tid(response),
        "realm_id": realm_id,
        "action": action,
    }
    if status_code == 401:
        # The 401 detail quotes the start of the rejected token; keep it out.
        return errors.QboAuthError(
            f"QBO {action}: credentials rejected ({code or 'no code'})", **context
        )

    message = f"QBO {action}: {status_code}"
    if first:
        message += f" fault {code}: {first.message}"
        if first.detail and first.detail != first.message:
            message += f" ({first.detail})"

    if status_code == 429 or code == THROTTLE_CODE:
        seconds = (
            retry_after_seconds(response)
            if response is not None
            else DEFAULT_RETRY_AFTER_SECONDS
        )
        return QboThrottled(message, seconds=seconds, **context)
    if code == STALE_OBJECT_CODE:
        return QboStaleObject(message, **context)
    if code == NOT_FOUND_CODE:
        return errors.QboNotFound(message, **context)
    if status_code >= 500 or code == SYSTEM_FAILURE_CODE or first is _unreadable:
        return errors.QboTransientError(message, **context)
    return errors.QboPermanentError(message, **context)


@contextlib.contextmanager
def map_qbo_errors(*, realm_id: str, action: str) -> Iterator[None]:
    """Translate whatever fails inside the block into ``ledgerbridge.errors``.

    Catches ``FaultResponse`` (from ``read_response``) and every httpx request
    error; timeouts and connection failures are transient, because the
    request may not have reached QBO (or may have: writes carry ``requestid``).
    """
    try:
        yield
    except FaultResponse as exc:
        error = error_for(
            exc.response.status_code,
            exc.faults,
            response=exc.response,
            realm_id=realm_id,
            action=action,
        )
        logger.info(
            "qbo %s failed: %s",
            action,
            type(error).__name__,
            extra={
                "action": action,
                "realm_id": realm_id,
                "intuit_tid": error.intuit_tid,
                "status_code": error.status_code,
                "code": error.code,
            },
        )
        raise error from exc
    except httpx.RequestError as exc:
        # Timed out or never reached QBO: either way the request may still
        # land (writes carry requestid), so it is worth another try.
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
        logger.info(
            "qbo %s %s",
            action,
            what,
            extra={"action": action, "realm_id": realm_id, "intuit_tid": None},
        )
        raise errors.QboTransientError(
            f"QBO {action}: {what} ({type(exc).__name__})",
            realm_id=realm_id,
            action=action,
            intuit_tid=None,
            status_code=None,
            code=None,
            element=None,
        ) from exc
