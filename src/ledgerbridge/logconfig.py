"""Logging set-up: structlog rendering for stdlib records, ``ledgerbridge`` as the knob."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

# Fields our records carry in ``extra`` that are worth showing.
EXTRA_KEYS = (
    "action",
    "connection_id",
    "realm_id",
    "entity",
    "job_id",
    "intuit_tid",
    "attempt",
    "source",
    "status",
)


def _add_extra(
    _: object, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    record = event.get("_record")
    if isinstance(record, logging.LogRecord):
        for key in EXTRA_KEYS:
            if hasattr(record, key):
                event[key] = getattr(record, key)
    return event


def configure(level: str = "INFO", *, json: bool = False) -> None:
    """Route every stdlib record through one structlog formatter."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False,
            # Plain tracebacks: rich ones print local variables, which may
            # hold tokens or whole payloads.
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_extra,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("ledgerbridge").setLevel(level.upper())
    # httpx logs every URL at INFO; URLs carry realm ids and query text.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
