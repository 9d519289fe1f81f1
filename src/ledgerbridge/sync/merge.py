"""Three-way, per-field merge of canonical entities, and per-field conflict resolution.

Rules, for each field of ``model.fields_of(entity)``:

- unchanged on both sides, or changed on both to the same value: keep it;
- changed on one side only: take that side's value;
- changed on both sides to different values: a conflict; the merged value
  stays the base value and the field is written to neither side.

Lines are one field, compared as a whole list: the two systems share no
per-line identity (QBO line ``Id``s are renumbered on every rewrite, the
internal system has none, and position shifts on insert), so a per-line merge
would have to guess which lines "are the same" and could silently combine two
edits into an invoice nobody wrote. Any line edit on both sides is a conflict.

Status (invoices): a side moving to void or deleted while the other side
changed anything since base is a conflict on ``status``: voiding would throw
the other side's edit away. Both sides moving to the same status is fine.
Whenever ``status`` is in conflict and either side's lines differ from base,
``lines`` is in conflict too: lines exist only on open invoices (void ones
carry none, see ``model``), so a line change cannot be taken on its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal, TypeVar

from ledgerbridge.sync import model

E = TypeVar("E", model.Invoice, model.Customer, model.Item)
Side = Literal["internal", "qbo"]

_ENDING_STATUSES = (model.Status.VOID, model.Status.DELETED)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FieldConflict:
    field: str
    base: Any
    internal: Any
    qbo: Any


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class MergeResult(typing.Generic[E]):
    """The outcome of a three-way merge.

    ``to_internal`` and ``to_qbo`` hold canonical field -> value to write to
    that side; they never hold a conflicting field. With any conflict the
    engine writes nothing at all.
    """

    merged: E
    conflicts: tuple[FieldConflict, ...]
    to_internal: dict[str, Any]
    to_qbo: dict[str, Any]

    @property
    def clean(self) -> bool:
        return not self.conflicts


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Value:
    """A typed value chosen by a person; wraps values that are also side names."""

    value: Any


def changed_fields(old: E, new: E) -> dict[str, Any]:
    """Return field -> value of ``new`` for every field where ``new`` differs from ``old``."""
    return {
        field: getattr(new, field)
        for field in model.fields_of(new)
        if getattr(new, field) != getattr(old, field)
    }


def merge(
    base: E | None,
    internal: E | None,
    qbo: E | None,
    *,
    source: Side | None = None,
) -> MergeResult[E]:
    """Merge ``internal`` and ``qbo`` against ``base``, field by field.

    With ``base`` None (first sync) there are no conflicts: ``source`` names the
    side that is the truth, and the other side (absent or adopted by doc
    number) receives whatever differs from it. With a base, both sides must be
    given (a deleted side is its last state marked deleted, see
    ``mapping.as_deleted``) and ``source`` is ignored.

    Symmetric: swapping ``internal`` and ``qbo`` swaps ``to_internal`` and
    ``to_qbo`` and the two values of each conflict, and nothing else.

    Raises:
        ValueError: a required side or ``source`` is missing.
    """
    if base is None:
        return _first_sync(internal, qbo, source)
    if internal is None or qbo is None:
        raise ValueError("with a base, both sides are required")

    merged_values: dict[str, Any] = {}
    conflicts: list[FieldConflict] = []
    for field in model.fields_of(base):
        b, i, q = (getattr(x, field) for x in (base, internal, qbo))
        if i == q or q == b:
            merged_values[field] = i
        elif i == b:
            merged_values[field] = q
        else:
            merged_values[field] = b
            conflicts.append(FieldConflict(field=field, base=b, internal=i, qbo=q))

    if (
        isinstance(base, model.Invoice)
        and isinstance(internal, model.Invoice)
        and isinstance(qbo, model.Invoice)
        and all(c.field != "status" for c in conflicts)
    ):
        status_conflict = _status_conflict(base, internal, qbo)
        if status_conflict:
            merged_values["status"] = base.status
            conflicts.append(status_conflict)
    if (
        isinstance(base, model.Invoice)
        and isinstance(internal, model.Invoice)
        and isinstance(qbo, model.Invoice)
    ):
        held_lines = _held_lines(base, internal, qbo, conflicts)
        if held_lines:
            merged_values["lines"] = base.lines
            conflicts.append(held_lines)

    merged = dataclasses.replace(base, **merged_values)
    held = {c.field for c in conflicts}
    return MergeResult(
        merged=merged,
        conflicts=tuple(conflicts),
        to_internal=_writes(merged, internal, held),
        to_qbo=_writes(merged, qbo, held),
    )


def _first_sync(
    internal: E | None, qbo: E | None, source: Side | None
) -> MergeResult[E]:
    truth = {"internal": internal, "qbo": qbo}.get(source or "")
    if truth is None:
        raise ValueError("first sync: source must name a side that is given")
    internal_writes = {} if source == "internal" else _all_or_changed(internal, truth)
    qbo_writes = {} if source == "qbo" else _all_or_changed(qbo, truth)
    return MergeResult(
        merged=truth, conflicts=(), to_internal=internal_writes, to_qbo=qbo_writes
    )


def _all_or_changed(side: E | None, truth: E) -> dict[str, Any]:
    if side is None:
        return {field: getattr(truth, field) for field in model.fields_of(truth)}
    return changed_fields(side, truth)


def _held_lines(
    base: model.Invoice,
    internal: model.Invoice,
    qbo: model.Invoice,
    conflicts: list[FieldConflict],
) -> FieldConflict | None:
    # Lines only exist on open invoices, so a line change cannot be taken
    # while the status it depends on is undecided: hold it with the status.
    fields = {c.field for c in conflicts}
    if "status" not in fields or "lines" in fields:
        return None
    if internal.lines == base.lines and qbo.lines == base.lines:
        return None
    return FieldConflict(
        field="lines", base=base.lines, internal=internal.lines, qbo=qbo.lines
    )


def _status_conflict(
    base: model.Invoice, internal: model.Invoice, qbo: model.Invoice
) -> FieldConflict | None:
    if internal.status == qbo.status:
        return None  # both deleted, both void, or neither moved: nothing to decide
    for ender, other in ((internal, qbo), (qbo, internal)):
        ended = ender.status != base.status and ender.status in _ENDING_STATUSES
        if ended and changed_fields(base, other):
            return FieldConflict(
                field="status",
                base=base.status,
                internal=internal.status,
                qbo=qbo.status,
            )
    return None


def _writes(merged: E, side: E, held: set[str]) -> dict[str, Any]:
    return {
        field: value
        for field, value in changed_fields(side, merged).items()
        if field not in held
    }


# Resolution --------------------------------------------------------------------


def resolve(
    base: E | None,
    internal: E | None,
    qbo: E | None,
    choices: Mapping[str, Any],
    *,
    source: Side | None = None,
) -> E:
    """Apply a person's per-field choices to the merge of the three states.

    Each choice is ``"internal"``, ``"qbo"``, or a typed value for the field
    (wrap it in ``Value`` when it is a string that reads "internal" or "qbo").
    Every conflicting field needs a choice; other fields may be overridden too.
    The engine then writes ``changed_fields(side, resolved)`` to each side.

    Raises:
        ValueError: a conflict has no choice, a choice names an unknown field,
            picks a side that is absent, or has the wrong type.
    """
    result = merge(base, internal, qbo, source=source)
    fields = model.fields_of(result.merged)
    unknown = set(choices) - set(fields)
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    unanswered = [c.field for c in result.conflicts if c.field not in choices]
    if unanswered:
        raise ValueError(f"conflicts without a choice: {unanswered}")

    hints = typing.get_type_hints(type(result.merged))
    values: dict[str, Any] = {}
    for field, choice in choices.items():
        if isinstance(choice, Value):
            value = choice.value
        elif choice in ("internal", "qbo"):
            side = internal if choice == "internal" else qbo
            if side is None:
                raise ValueError(f"{field}: side {choice!r} is absent")
            value = getattr(side, field)
        else:
            value = choice
        _check_type(field, value, hints[field])
        values[field] = value
    return dataclasses.replace(result.merged, **values)


def _check_type(field: str, value: Any, hint: Any) -> None:
    # A typed value from a form must not smuggle in a float or a bare string
    # where a Decimal, a date or lines belong.
    if _matches(value, hint):
        return
    raise ValueError(f"{field}: {value!r} is not a {hint}")


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(hint)
        return isinstance(value, tuple) and all(isinstance(v, item_type) for v in value)
    if hint is type(None):
        return value is None
    if hint is dt.date:
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if hint is Decimal:
        return isinstance(value, Decimal) and value.is_finite()
    return isinstance(value, hint) and not isinstance(value, bool)
