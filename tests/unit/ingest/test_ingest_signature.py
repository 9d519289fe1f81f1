"""Webhook signatures: both schemes, on raw bytes, with replay protection."""

from __future__ import annotations

import base64

import pytest

from ledgerbridge import errors
from ledgerbridge.ingest import signature

BODY = b'{"id":"evt_1","type":"invoice.updated","data":{"id":"inv_1","version":2}}'


def test_internal_signature_accepts_its_own_signature():
    header = signature.sign_internal("s3cret", 1_700_000_000, BODY)
    ts = signature.verify_internal(
        "s3cret", header, BODY, now=1_700_000_010, tolerance_seconds=300
    )
    assert ts == 1_700_000_000


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "no valid t="),
        ("t=notanumber,v1=abc", "no valid t="),
        ("t=1700000000,v1=" + "0" * 64, "does not match"),
    ],
)
def test_internal_signature_refuses_bad_headers(header, why):
    with pytest.raises(errors.BadSignature, match=why):
        signature.verify_internal(
            "s3cret", header, BODY, now=1_700_000_000, tolerance_seconds=300
        )


def test_internal_signature_refuses_a_changed_body():
    header = signature.sign_internal("s3cret", 1_700_000_000, BODY)
    with pytest.raises(errors.BadSignature, match="does not match"):
        signature.verify_internal(
            "s3cret", header, BODY + b" ", now=1_700_000_000, tolerance_seconds=300
        )


def test_internal_signature_refuses_a_stale_delivery():
    header = signature.sign_internal("s3cret", 1_700_000_000, BODY)
    with pytest.raises(errors.BadSignature, match="tolerance"):
        signature.verify_internal(
            "s3cret", header, BODY, now=1_700_000_301, tolerance_seconds=300
        )


def test_internal_signature_accepts_any_of_several_v1_values():
    good = signature.sign_internal("new", 1_700_000_000, BODY).split("v1=")[1]
    header = f"t=1700000000,v1={'f' * 64},v1={good}"
    signature.verify_internal(
        "new", header, BODY, now=1_700_000_000, tolerance_seconds=5
    )


def test_qbo_signature_round_trip_and_refusals():
    header = signature.sign_qbo("verifier", BODY)
    signature.verify_qbo("verifier", header, BODY)
    with pytest.raises(errors.BadSignature):
        signature.verify_qbo("other", header, BODY)
    with pytest.raises(errors.BadSignature, match="missing"):
        signature.verify_qbo("verifier", None, BODY)
    with pytest.raises(errors.BadSignature, match="base64"):
        signature.verify_qbo("verifier", "not base64!!", BODY)
    with pytest.raises(errors.BadSignature):
        signature.verify_qbo("verifier", base64.b64encode(b"x" * 32).decode(), BODY)
