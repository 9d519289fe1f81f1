"""Render an API answer as QBO's XML, the format it uses unless JSON is asked for."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape, quoteattr

NAMESPACE = "http://schema.intuit.com/finance/v3"
# Keys QBO writes as XML attributes of their parent element, not children.
ATTRIBUTES = frozenset(
    {"domain", "sparse", "status", "startPosition", "maxResults", "totalCount", "bId"}
    | {"code", "element", "type"}
)


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _element(name: str, value: Any, out: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            _element(name, item, out)
        return
    if not isinstance(value, dict):
        out.append(f"<{name}>{escape(_text(value))}</{name}>")
        return
    attrs = "".join(
        f" {key}={quoteattr(_text(item))}"
        for key, item in value.items()
        if key in ATTRIBUTES and not isinstance(item, dict | list)
    )
    out.append(f"<{name}{attrs}>")
    for key, item in value.items():
        if key in ATTRIBUTES and not isinstance(item, dict | list):
            continue
        _element(key, item, out)
    out.append(f"</{name}>")


def render(body: dict[str, Any]) -> str:
    """``{"Invoice": {...}, "time": t}`` -> ``<IntuitResponse time=t><Invoice>...``."""
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n']
    time = body.get("time")
    time_attr = f" time={quoteattr(str(time))}" if time is not None else ""
    out.append(f'<IntuitResponse xmlns="{NAMESPACE}"{time_attr}>')
    for key, value in body.items():
        if key != "time":
            _element(key, value, out)
    out.append("</IntuitResponse>")
    return "".join(out)
