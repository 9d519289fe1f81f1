"""Tests for the three-way merge and conflict resolution."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sync_support import SETTINGS

from ledgerbridge.sync import merge, model

LINE_A = model.Line(
    item_key="itm_3",
    description="Consulting",
    quantity=Decimal(2),
    unit_price=Decimal(150),
    amount=Decimal("300.00"),
)
LINE_B = dataclasses.replace(LINE_A, description="Consulting, revised")
LINE_C = dataclasses.replace(LINE_A, quantity=Decimal(3), amount=Decimal("450.00"))

BASE = model.Invoice(
    doc_number="INV-1",
    customer_key="cus_12",
    currency="USD",
    issue_date=dt.date(2026, 12, 4),
    due_date=dt.date(2027, 1, 3),
    lines=(LINE_A,),
    memo="",
)


def _with(invoice=BASE, **changes):
    return dataclasses.replace(invoice, **changes)


def test_merge_takes_a_one_sided_change():
    result = merge.merge(BASE, _with(memo="Net 30"), BASE)
    assert result.clean
    assert result.merged == _with(memo="Net 30")
    assert result.to_qbo == {"memo": "Net 30"}
    assert result.to_internal == {}


def test_merge_takes_different_fields_from_each_side():
    result = merge.merge(BASE, _with(memo="Net 30"), _with(due_date=None))
    assert result.merged == _with(memo="Net 30", due_date=None)
    assert result.to_qbo == {"memo": "Net 30"}
    assert result.to_internal == {"due_date": None}


def test_merge_same_change_on_both_sides_is_not_a_conflict():
    result = merge.merge(BASE, _with(memo="x"), _with(memo="x"))
    assert result.clean
    assert result.to_internal == result.to_qbo == {}


def test_merge_different_changes_conflict_and_are_not_written():
    result = merge.merge(BASE, _with(memo="a", doc_number="INV-2"), _with(memo="b"))
    assert result.conflicts == (
        merge.FieldConflict(field="memo", base="", internal="a", qbo="b"),
    )
    assert result.merged.memo == ""
    assert "memo" not in result.to_internal and "memo" not in result.to_qbo
    assert result.to_qbo == {"doc_number": "INV-2"}


def test_merge_lines_are_one_field():
    # Different edits to the same list conflict even if a per-line merge could combine them.
    result = merge.merge(BASE, _with(lines=(LINE_B,)), _with(lines=(LINE_A, LINE_C)))
    assert [c.field for c in result.conflicts] == ["lines"]


def test_merge_equal_decimals_in_other_forms_are_no_change():
    same = dataclasses.replace(LINE_A, quantity=Decimal("2.000"), amount=Decimal("300"))
    result = merge.merge(BASE, _with(lines=(same,)), BASE)
    assert result.clean and result.to_qbo == {}


def test_merge_void_on_one_side_while_other_changed_is_a_status_conflict():
    voided = _with(status=model.Status.VOID)
    result = merge.merge(BASE, voided, _with(memo="Net 30"))
    # The void dropped the internal lines, so lines wait for the status decision.
    assert [c.field for c in result.conflicts] == ["status", "lines"]
    assert result.conflicts[0].internal is model.Status.VOID
    assert result.merged.status is model.Status.OPEN
    assert "status" not in result.to_qbo


def test_merge_void_alone_is_clean_and_reaches_the_other_side():
    result = merge.merge(BASE, BASE, _with(status=model.Status.VOID))
    assert result.clean
    assert result.to_internal == {"status": model.Status.VOID, "lines": ()}


def test_merge_delete_against_an_edit_is_a_conflict():
    result = merge.merge(
        BASE, _with(lines=(LINE_B,)), _with(status=model.Status.DELETED)
    )
    assert {c.field for c in result.conflicts} == {"status", "lines"}


def test_merge_both_deleted_is_fine():
    deleted = _with(status=model.Status.DELETED)
    result = merge.merge(BASE, deleted, deleted)
    assert result.clean
    assert result.to_internal == result.to_qbo == {}


def test_merge_first_sync_copies_the_source():
    result = merge.merge(None, BASE, None, source="internal")
    assert result.clean and result.merged == BASE
    assert result.to_internal == {}
    assert result.to_qbo == {f: getattr(BASE, f) for f in model.INVOICE_FIELDS}


def test_merge_first_sync_adoption_writes_differences_only():
    adopted = _with(memo="from QBO")
    result = merge.merge(None, BASE, adopted, source="qbo")
    assert result.clean and result.merged == adopted
    assert result.to_internal == {"memo": "from QBO"}
    assert result.to_qbo == {}


def test_merge_first_sync_needs_a_present_source():
    with pytest.raises(ValueError, match="source"):
        merge.merge(None, BASE, None, source="qbo")
    with pytest.raises(ValueError, match="both sides"):
        merge.merge(BASE, BASE, None)


def test_merge_works_for_customers_and_items():
    base = model.Customer(name="Amy", email="")
    result = merge.merge(base, model.Customer(name="Amy B", email=""), base)
    assert result.to_qbo == {"name": "Amy B"}
    item = model.Item(sku="S", name="Seed", unit_price=Decimal(1))
    result = merge.merge(
        item,
        dataclasses.replace(item, unit_price=Decimal(2)),
        dataclasses.replace(item, unit_price=Decimal(3)),
    )
    assert [c.field for c in result.conflicts] == ["unit_price"]


# Resolution --------------------------------------------------------------------


def test_resolve_applies_side_and_typed_choices():
    internal = _with(memo="a", due_date=None)
    qbo = _with(memo="b", due_date=dt.date(2027, 2, 1))
    resolved = merge.resolve(
        BASE, internal, qbo, {"memo": "qbo", "due_date": "internal"}
    )
    assert resolved == _with(memo="b", due_date=None)
    typed = merge.resolve(
        BASE, internal, qbo, {"memo": merge.Value(value="internal"), "due_date": None}
    )
    assert typed == _with(memo="internal", due_date=None)
    assert merge.changed_fields(internal, typed) == {"memo": "internal"}


def test_resolve_needs_a_choice_for_every_conflict():
    with pytest.raises(ValueError, match="without a choice"):
        merge.resolve(BASE, _with(memo="a"), _with(memo="b"), {})


@pytest.mark.parametrize(
    "choices",
    [{"memo": 3}, {"due_date": "2027-01-01"}, {"lines": [LINE_A]}, {"nope": "qbo"}],
)
def test_resolve_refuses_wrong_types_and_unknown_fields(choices):
    with pytest.raises(ValueError):
        merge.resolve(
            BASE, _with(memo="a"), _with(memo="b"), {"memo": "qbo", **choices}
        )


def test_resolve_refuses_a_float_for_money():
    item = model.Item(sku="S", name="Seed", unit_price=Decimal(1))
    with pytest.raises(ValueError, match="unit_price"):
        merge.resolve(item, item, item, {"unit_price": 1.5})


# Properties --------------------------------------------------------------------

# Small value pools, so that equal and different changes both happen often.
small_invoices = st.builds(
    model.Invoice,
    doc_number=st.sampled_from(["INV-1", "INV-2"]),
    customer_key=st.sampled_from(["cus_12", "cus_13"]),
    currency=st.just("USD"),
    issue_date=st.sampled_from([dt.date(2026, 12, 4), dt.date(2026, 12, 5)]),
    due_date=st.sampled_from([None, dt.date(2027, 1, 3)]),
    lines=st.sampled_from([(LINE_A,), (LINE_B,), (LINE_A, LINE_C)]),
    memo=st.sampled_from(["", "Net 30"]),
    status=st.sampled_from(list(model.Status)),
)
triples = st.tuples(small_invoices, small_invoices, small_invoices)


@SETTINGS
@given(triples)
def test_merge_never_drops_a_one_sided_change(triple):
    base, internal, qbo = triple
    result = merge.merge(base, internal, qbo)
    conflicted = {c.field for c in result.conflicts}
    for field in model.INVOICE_FIELDS:
        b, i, q = (getattr(x, field) for x in triple)
        if field in conflicted:
            continue
        if i != b and q == b:
            assert getattr(result.merged, field) == i
            assert result.to_qbo[field] == i
        if q != b and i == b:
            assert getattr(result.merged, field) == q
            assert result.to_internal[field] == q


@SETTINGS
@given(triples)
def test_merge_never_writes_a_field_in_conflict(triple):
    result = merge.merge(*triple)
    for conflict in result.conflicts:
        assert conflict.field not in result.to_internal
        assert conflict.field not in result.to_qbo
        assert getattr(result.merged, conflict.field) == conflict.base


@SETTINGS
@given(triples)
def test_merge_is_symmetric_in_internal_and_qbo(triple):
    base, internal, qbo = triple
    forward = merge.merge(base, internal, qbo)
    backward = merge.merge(base, qbo, internal)
    assert forward.merged == backward.merged
    assert forward.to_internal == backward.to_qbo
    assert forward.to_qbo == backward.to_internal
    assert forward.conflicts == tuple(
        dataclasses.replace(c, internal=c.qbo, qbo=c.internal)
        for c in backward.conflicts
    )


@SETTINGS
@given(triples)
def test_merge_clean_writes_bring_both_sides_to_merged(triple):
    result = merge.merge(*triple)
    if result.clean:
        _, internal, qbo = triple
        assert dataclasses.replace(internal, **result.to_internal) == result.merged
        assert dataclasses.replace(qbo, **result.to_qbo) == result.merged


@SETTINGS
@given(small_invoices, small_invoices)
def test_merge_first_sync_has_no_conflicts_and_is_symmetric(a, b):
    forward = merge.merge(None, a, b, source="internal")
    backward = merge.merge(None, b, a, source="qbo")
    assert forward.clean and forward.merged == a
    assert (forward.to_internal, forward.to_qbo) == (
        backward.to_qbo,
        backward.to_internal,
    )
