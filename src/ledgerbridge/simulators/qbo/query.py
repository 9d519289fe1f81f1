"""QBO's SQL-like query language: a tokenizer, a recursive-descent parser, a filter."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import clock, faults, wire

MAX_RESULTS_LIMIT = 1000
DEFAULT_MAX_RESULTS = 100

# Characters QBO's lexer rejects outright (reported for curly quotes and en
# dashes pasted from word processors), even inside string literals.
FORBIDDEN_CHARS = frozenset("\u2018\u2019\u201c\u201d\u2013")
KEYWORDS = frozenset(
    {"select", "from", "where", "and", "orderby", "asc", "desc", "startposition"}
    | {"maxresults", "in", "like", "count"}
)
OPERATORS = ("<=", ">=", "!=", "=", "<", ">")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ident, keyword, string, number, op, punct, eof
    text: str
    value: Any
    column: int


@dataclass(slots=True)
class Condition:
    field: str
    op: str  # =, <, >, <=, >=, in, like
    values: list[Any]


@dataclass(slots=True)
class Query:
    entity: str
    count: bool = False
    conditions: list[Condition] = field(default_factory=list)
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (field, desc)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


def tokenize(text: str) -> list[Token]:
    """Split a statement into tokens; raise 4000 on a lexical error."""
    tokens: list[Token] = []
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        column = index + 1
        if char in FORBIDDEN_CHARS:
            raise faults.query_parse(
                f"Invalid content. Lexical error at line 1, column {column}.  "
                f'Encountered: "{char}" ({ord(char)}), after : ""'
            )
        if char.isspace():
            index += 1
        elif char == "'":
            value, index = _read_string(text, index)
            tokens.append(Token("string", text[column - 1 : index], value, column))
        elif char.isdigit() or (
            char == "-" and index + 1 < length and text[index + 1].isdigit()
        ):
            end = index + 1
            while end < length and (text[end].isdigit() or text[end] == "."):
                end += 1
            literal = text[index:end]
            number = wire.to_decimal(literal)
            if number is None:
                raise _encountered(literal, column)
            tokens.append(Token("number", literal, number, column))
            index = end
        elif char.isalpha() or char == "_":
            end = index + 1
            while end < length and (text[end].isalnum() or text[end] in "_."):
                end += 1
            word = text[index:end]
            kind = "keyword" if word.lower() in KEYWORDS else "ident"
            tokens.append(Token(kind, word, word.lower(), column))
            index = end
        elif char in "*,()":
            tokens.append(Token("punct", char, char, column))
            index += 1
        else:
            for op in OPERATORS:
                if text.startswith(op, index):
                    tokens.append(Token("op", op, op, column))
                    index += len(op)
                    break
            else:
                raise faults.query_parse(
                    f"Invalid content. Lexical error at line 1, column {column}.  "
                    f'Encountered: "{char}" ({ord(char)}), after : ""'
                )
    tokens.append(Token("eof", "<EOF>", None, length + 1))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Read a quoted literal from ``start`` (the quote); backslash escapes."""
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char in FORBIDDEN_CHARS:
            raise faults.query_parse(
                f"Invalid content. Lexical error at line 1, column {index + 1}.  "
                f'Encountered: "{char}" ({ord(char)}), after : "{"".join(chars)}"'
            )
        if char == "\\":
            if index + 1 >= len(text):
                break
            chars.append(text[index + 1])
            index += 2
            continue
        if char == "'":
            return "".join(chars), index + 1
        chars.append(char)
        index += 1
    # An unterminated literal (including one whose closing quote was eaten by
    # a trailing backslash) is a lexical error in QBO's parser.
    raise faults.query_parse(
        f"Invalid content. Lexical error at line 1, column {len(text) + 1}.  "
        f'Encountered: <EOF> after : "{text[start:]}"'
    )


def _encountered(text: str, column: int) -> faults.QboFault:
    return faults.query_parse(f'Encountered " "{text}" "" at line 1, column {column}.')


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> Token:
        return self.tokens[self.position]

    def take(self) -> Token:
        token = self.tokens[self.position]
        if token.kind != "eof":
            self.position += 1
        return token

    def fail(self, token: Token | None = None) -> faults.QboFault:
        token = token or self.peek()
        return _encountered(token.text, token.column)

    def expect_keyword(self, word: str) -> None:
        token = self.take()
        if token.kind != "keyword" or token.value != word:
            raise self.fail(token)

    def expect_punct(self, char: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.value != char:
            raise self.fail(token)

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "keyword" and token.value == word

    def parse(self) -> Query:
        self.expect_keyword("select")
        count = False
        if self.at_keyword("count"):
            self.take()
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        else:
            self.expect_punct("*")
            # ``select *, Sku from Item``: extra names only ask for optional
            # fields; every populated field is returned anyway.
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.take()
                if self.take().kind != "ident":
                    raise self.fail(self.tokens[self.position - 1])
        self.expect_keyword("from")
        entity = self.take()
        if entity.kind != "ident":
            raise self.fail(entity)
        query = Query(entity=entity.text, count=count)
        if self.at_keyword("where"):
            self.take()
            query.conditions.append(self.condition())
            while self.at_keyword("and"):
                self.take()
                query.conditions.append(self.condition())
        if self.at_keyword("orderby"):
            self.take()
            query.order_by.append(self.order_term())
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.take()
                query.order_by.append(self.order_term())
        seen: set[str] = set()
        while self.at_keyword("startposition") or self.at_keyword("maxresults"):
            word = self.take().value
            if word in seen:
                raise self.fail(self.tokens[self.position - 1])
            seen.add(word)
            number = self.take()
            if number.kind != "number" or number.value != number.value.to_integral():
                raise self.fail(number)
            if word == "startposition":
                query.start_position = max(1, int(number.value))
            else:
                query.max_results = min(MAX_RESULTS_LIMIT, max(0, int(number.value)))
        if self.peek().kind != "eof":
            raise self.fail()
        return query

    def order_term(self) -> tuple[str, bool]:
        name = self.take()
        if name.kind != "ident":
            raise self.fail(name)
        descending = False
        if self.at_keyword("asc") or self.at_keyword("desc"):
            descending = self.take().value == "desc"
        return name.text, descending

    def condition(self) -> Condition:
        name = self.take()
        if name.kind != "ident":
            raise self.fail(name)
        token = self.take()
        if token.kind == "op" and token.value in {"=", "<", ">", "<=", ">="}:
            return Condition(name.text, token.value, [self.literal()])
        if token.kind == "keyword" and token.value == "like":
            literal = self.take()
            if literal.kind != "string":
                raise self.fail(literal)
            return Condition(name.text, "like", [literal.value])
        if token.kind == "keyword" and token.value == "in":
            self.expect_punct("(")
            values = [self.literal()]
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.take()
                values.append(self.literal())
            self.expect_punct(")")
            return Condition(name.text, "in", values)
        raise self.fail(token)

    def literal(self) -> Any:
        token = self.take()
        if token.kind in {"string", "number"}:
            return token.value
        if token.kind == "ident" and token.value in {"true", "false"}:
            return token.value == "true"
        raise self.fail(token)


def parse(text: str) -> Query:
    """Parse one statement; raise a 4000 fault with QBO's parser wording."""
    return _Parser(tokenize(text)).parse()


# -- evaluation ---------------------------------------------------------------


def field_value(obj: dict[str, Any], path: str) -> Any:
    """Read ``path`` from an entity; refs compare by their ``value``."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = _get_ci(current, part)
    if isinstance(current, dict):
        for key in ("value", "Address"):
            if key in current:
                return current[key]
    return current


def _get_ci(obj: dict[str, Any], key: str) -> Any:
    if key in obj:
        return obj[key]
    lowered = key.lower()
    for name, value in obj.items():
        if name.lower() == lowered:
            return value
    return None


def _comparable(stored: Any, literal: Any) -> tuple[Any, Any] | None:
    """Bring a stored value and a literal to one comparable type, or None."""
    if stored is None:
        return None
    if isinstance(stored, bool):
        if isinstance(literal, str) and literal.lower() in {"true", "false"}:
            literal = literal.lower() == "true"
        return (stored, literal) if isinstance(literal, bool) else None
    number = wire.to_decimal(stored) if not isinstance(stored, str) else None
    if number is not None:
        other = wire.to_decimal(literal)
        return (number, other) if other is not None else None
    if isinstance(stored, str):
        if isinstance(literal, Decimal):
            literal = format(literal, "f")
        if not isinstance(literal, str):
            return None
        # Ids and refs are digit strings that QBO compares as numbers.
        if stored.isdigit() and literal.isdigit():
            return int(stored), int(literal)
        if _looks_like_instant(stored) and _looks_like_instant(literal):
            left, right = clock.parse_instant(stored), clock.parse_instant(literal)
            if left is not None and right is not None:
                if len(stored) == 10 and len(literal) == 10:
                    return stored, literal
                return left, right
        return stored, literal
    return None


_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}([T ].*)?$")


def _looks_like_instant(text: str) -> bool:
    return bool(_INSTANT.match(text))


def _compare(stored: Any, op: str, literal: Any) -> bool:
    pair = _comparable(stored, literal)
    if pair is None:
        return False
    left, right = pair
    try:
        if op == "=":
            return bool(left == right)
        if op == "<":
            return bool(left < right)
        if op == ">":
            return bool(left > right)
        if op == "<=":
            return bool(left <= right)
        if op == ">=":
            return bool(left >= right)
    except TypeError:
        return False
    return False


def matches(obj: dict[str, Any], condition: Condition) -> bool:
    stored = field_value(obj, condition.field)
    if condition.op == "in":
        return any(_compare(stored, "=", value) for value in condition.values)
    if condition.op == "like":
        if not isinstance(stored, str):
            return False
        pattern = "".join(
            ".*" if char == "%" else re.escape(char) for char in condition.values[0]
        )
        return (
            re.fullmatch(pattern, stored, flags=re.IGNORECASE | re.DOTALL) is not None
        )
    return _compare(stored, condition.op, condition.values[0])


def sort_key(obj: dict[str, Any], path: str) -> tuple[int, Any]:
    value = field_value(obj, path)
    if value is None:
        return (0, "")
    if isinstance(value, str) and value.isdigit():
        return (1, Decimal(value))
    number = wire.to_decimal(value) if not isinstance(value, str) else None
    if number is not None:
        return (1, number)
    if isinstance(value, str) and _looks_like_instant(value):
        instant = clock.parse_instant(value)
        if instant is not None:
            return (2, instant.astimezone(dt.UTC))
    return (3, str(value).lower())
