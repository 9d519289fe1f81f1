"""Every error LedgerBridge raises, in one hierarchy.

::

    LedgerBridgeError
    ├── TransientError            retry later; the worker backs off and tries again
    │   ├── ConnectionWaiting     the QBO connection needs re-consent; the job waits
    │   └── RetryAfter            the other side asked us to wait (429, Retry-After)
    ├── PermanentError            retrying cannot help; the job becomes a dead letter
    ├── IngestError
    │   ├── BadSignature          401 at the webhook endpoint
    │   └── MalformedPayload      400 at the webhook endpoint
    ├── SyncError
    │   ├── MappingError          (permanent) the record cannot be mapped
    │   ├── ReferenceError_       (permanent) a customer or item cannot be resolved
    │   ├── MergeConflict         both sides changed a field differently
    │   └── StaleWrite            (transient) the other side moved under us
    └── ConnectorError            carries ``status_code``
        ├── QboError              carries ``code``, ``element``, ``intuit_tid``
        └── InternalApiError

Whether an error is retried depends only on whether it is a ``TransientError``
or a ``PermanentError``; subsystem classes mix one of the two in.
"""

from __future__ import annotations

from typing import Any


class LedgerBridgeError(Exception):
    """LedgerBridge failed."""

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)
        super().__init__(message or (self.__doc__ or "").strip())


class TransientError(LedgerBridgeError):
    """A temporary failure; the same work may succeed later."""

    retry_after_seconds: float | None = None


class PermanentError(LedgerBridgeError):
    """A failure that retrying will not fix; a person must act."""


class ConnectionWaiting(TransientError):
    """The QBO connection is disconnected; jobs wait until it is reconnected."""


class RetryAfter(TransientError):
    """The remote side asked us to slow down."""

    def __init__(self, message: str | None = None, *, seconds: float, **context: Any):
        super().__init__(message, **context)
        self.retry_after_seconds = seconds


class IngestError(LedgerBridgeError):
    """A webhook delivery was refused."""


class BadSignature(IngestError):
    """The webhook signature is missing or does not match."""


class MalformedPayload(IngestError):
    """The webhook body is not what the sender's format promises."""


class SyncError(LedgerBridgeError):
    """The sync engine could not finish a step."""


class MappingError(SyncError, PermanentError):
    """The record cannot be mapped to the canonical invoice."""


class ReferenceError_(SyncError, PermanentError):
    """A customer or item reference cannot be resolved."""


class MergeConflict(SyncError):
    """Both sides changed the same field to different values."""


class StaleWrite(SyncError, TransientError):
    """The record changed between our read and our write; refetch and merge again."""


class ConnectorError(LedgerBridgeError):
    """Talking to an outside system failed."""

    status_code: int | None = None


class QboError(ConnectorError):
    """QuickBooks Online answered with a fault."""

    code: str | None = None
    element: str | None = None
    intuit_tid: str | None = None


class QboTransientError(QboError, TransientError):
    """QuickBooks Online failed in a way that may pass (429, 5xx, timeout, 5010)."""


class QboPermanentError(QboError, PermanentError):
    """QuickBooks Online refused the request (validation, not found, auth)."""


class QboNotFound(QboPermanentError):
    """The QBO object does not exist or was deleted (fault 610)."""


class QboAuthError(QboError, TransientError):
    """QBO refused our credentials and a refresh did not help; the connection waits."""


class InternalApiError(ConnectorError):
    """The internal invoicing system answered with an error."""


class InternalTransientError(InternalApiError, TransientError):
    """The internal system failed in a way that may pass (5xx, timeout, 429)."""


class InternalPermanentError(InternalApiError, PermanentError):
    """The internal system refused the request."""


class InternalGone(InternalPermanentError):
    """The internal record was deleted (410)."""


class InternalNotFound(InternalPermanentError):
    """The internal record does not exist (404)."""


class InternalVersionMismatch(InternalApiError, TransientError):
    """The internal record's version moved (412); refetch and merge again."""
