"""Named SQL blocks loaded from ``db/sql/*.sql``.

A block starts with a line ``-- name: <query_name>`` and runs to the next
such line; the Python function that runs a query shares its name.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString, cast

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _load() -> dict[str, LiteralString]:
    queries: dict[str, LiteralString] = {}
    for entry in sorted(
        resources.files("ledgerbridge.db").joinpath("sql").iterdir(),
        key=lambda e: e.name,
    ):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        parts = _NAME.split(text)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise RuntimeError(f"query {name} is defined twice")
            queries[name] = cast(LiteralString, body.strip())
    return queries


QUERIES = _load()
