"""The Jinja environment shared by the dashboard pages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")

# What each outcome means, in words a finance-ops reader uses.
STATUS_LABELS = {
    "received": ("received", "Recorded, not yet queued"),
    "enqueued": ("queued", "Waiting for a worker"),
    "coalesced": (
        "merged into queued",
        "Another signal for this record was already queued",
    ),
    "applied": ("applied", "A change was written to the other system"),
    "echo": ("own change", "Our own write came back as a webhook; nothing to do"),
    "noop": ("no change", "Both systems already agree"),
    "conflict": ("conflict", "Both systems changed the same field; held for a person"),
    "held": ("held", "A conflict is open for this record; nothing was written"),
    "failed": ("retrying", "Failed for now; the worker will try again"),
    "dead_letter": ("dead letter", "Failed for good; fix the cause, then replay"),
}


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, (status, ""))[0]


def status_hint(status: str) -> str:
    return STATUS_LABELS.get(status, (status, ""))[1]


def when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def money(value: Any) -> str:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return f"{amount.quantize(Decimal('0.01')):,}"


templates.env.globals.update(status_label=status_label, status_hint=status_hint)
templates.env.filters.update(when=when, money=money)
