"""QBO wire values: JSON with Decimal numbers, token sets and connection rows."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledgerbridge.connectors.base import JsonObject


def loads(content: str | bytes) -> Any:
    """Parse QBO JSON: fractions become ``Decimal``, integers stay ``int``.

    QBO answers amounts as JSON numbers (``150.0``); a float would turn
    ``0.1 + 0.2`` cents into drift, so no number ever passes through float.
    """
    return json.loads(content, parse_float=Decimal)


def dumps(value: Any) -> bytes:
    """Serialise to compact JSON, writing each ``Decimal`` as its own digits.

    ``json.dumps`` cannot emit a raw number for a custom type, so this walks the
    value itself. Floats are refused outright: money must never be a float.
    """
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts).encode("utf-8")


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send {value} to QBO")
        out.append(str(value))
    elif value is None or isinstance(value, bool | int | str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, float):
        raise TypeError("refusing to send a float to QBO; use Decimal")
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(
                    f"JSON object keys must be str, not {type(key).__name__}"
                )
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot send {type(value).__name__} to QBO")


def parse_qbo_time(value: Any) -> dt.datetime:
    """Read a QBO ``time``: ISO 8601 with an offset, or epoch milliseconds.

    Most responses carry ``"2015-07-29T09:29:56.229-07:00"``; the lower-case
    401 envelope carries ``1730024394085`` instead.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a QBO time: {value!r}")
    if isinstance(value, int | Decimal):
        return dt.datetime.fromtimestamp(float(value) / 1000, dt.UTC)
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError(f"QBO time without an offset: {value!r}")
        return parsed
    raise ValueError(f"not a QBO time: {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSet:
    """What Intuit's token endpoint answered, with lifetimes made absolute."""

    access_token: str
    refresh_token: str
    access_expires_at: dt.datetime
    refresh_expires_at: dt.datetime | None

    def __repr__(self) -> str:
        # Tokens never reach a log line, not even through a repr.
        return (
            f"TokenSet(access_expires_at={self.access_expires_at.isoformat()}, "
            f"refresh_expires_at={self.refresh_expires_at})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CdcResult:
    """Changed objects per entity, and the server time to poll from next."""

    changes: dict[str, list[JsonObject]]
    time: dt.datetime
