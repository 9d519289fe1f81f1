"""QBO query building: Intuit's backslash escaping and paging."""

from __future__ import annotations

import pytest

from ledgerbridge.connectors.qbo import query


def test_quote_escapes_apostrophe_with_backslash():
    assert query.quote("Amy's Bird Sanctuary") == "'Amy\\'s Bird Sanctuary'"


def test_quote_escapes_backslash_before_quote():
    # A trailing backslash would otherwise swallow the closing quote (fault 4000).
    assert query.quote("C:\\") == "'C:\\\\'"
    assert query.quote("a\\'b") == "'a\\\\\\'b'"


def test_quote_leaves_typographic_characters_alone():
    assert query.quote("O\u2019Brien \u2013 Ltd") == "'O\u2019Brien \u2013 Ltd'"


def test_select_where_equals_builds_statement():
    statement = query.select_where_equals("Customer", "DisplayName", "O'Brien")
    assert statement == "select * from Customer where DisplayName = 'O\\'Brien'"


def test_select_where_equals_accepts_dotted_property():
    statement = query.select_where_equals("Invoice", "MetaData.CreateTime", "x")
    assert statement.startswith("select * from Invoice where MetaData.CreateTime = ")


@pytest.mark.parametrize("name", ["Doc Number", "x;drop", "", "1abc", "a'b", "a.b."])
def test_select_where_equals_refuses_unsafe_names(name):
    with pytest.raises(ValueError, match="not a QBO"):
        query.select_where_equals("Invoice", name, "v")
    with pytest.raises(ValueError, match="not a QBO"):
        query.select_where_equals(name, "DocNumber", "v")


def test_page_appends_one_based_paging():
    assert (
        query.page("select * from Invoice", start_position=1001)
        == "select * from Invoice startposition 1001 maxresults 1000"
    )


@pytest.mark.parametrize(("start", "size"), [(0, 10), (1, 0), (1, 1001)])
def test_page_rejects_out_of_range(start, size):
    with pytest.raises(ValueError, match="QBO pages"):
        query.page("select * from Item", start_position=start, max_results=size)


def test_has_paging_ignores_words_inside_literals():
    assert query.has_paging("select * from Item MAXRESULTS 5")
    assert query.has_paging("select * from Item startPosition 3 maxResults 5")
    assert not query.has_paging("select * from Item where Name = 'maxresults 5'")
    assert not query.has_paging(
        "select * from Item where Name = 'it\\'s startposition'"
    )
