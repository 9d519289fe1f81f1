"""Build QBO query statements with Intuit's backslash escaping."""

from __future__ import annotations

import re

# QBO's query language has no bind parameters. Inside a single-quoted literal a
# quote is escaped with a backslash (``'O\'Brien'``), so a backslash itself must
# be escaped first, or a value ending in ``\`` would swallow the closing quote
# (Intuit answers that with fault 4000 "QueryParserError").
_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'"})

# Entity and property names are spliced in unquoted; allow only what QBO names
# look like (``DocNumber``, ``MetaData.LastUpdatedTime``).
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$")

MAX_RESULTS = 1000


def quote(value: str) -> str:
    """Return ``value`` as a QBO string literal, quotes included."""
    return "'" + value.translate(_ESCAPES) + "'"


def _name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a QBO entity or property name: {name!r}")
    return name


def select_where_equals(entity: str, field: str, value: str) -> str:
    """``select * from <entity> where <field> = '<escaped value>'``."""
    return f"select * from {_name(entity)} where {_name(field)} = {quote(value)}"


_PAGING = re.compile(r"\b(startposition|maxresults)\b", re.IGNORECASE)


def has_paging(statement: str) -> bool:
    """Whether a statement already chooses its own page (outside literals)."""
    return bool(_PAGING.search(_strip_literals(statement)))


def page(statement: str, *, start_position: int, max_results: int = MAX_RESULTS) -> str:
    """Append QBO paging to a statement; positions are 1-based."""
    if start_position < 1 or not 1 <= max_results <= MAX_RESULTS:
        raise ValueError("QBO pages start at 1 and hold at most 1000 rows")
    return f"{statement} startposition {start_position} maxresults {max_results}"


_LITERAL = re.compile(r"'(?:\\.|[^'\\])*'")


def _strip_literals(statement: str) -> str:
    return _LITERAL.sub("''", statement)
