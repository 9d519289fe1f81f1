"""The QBO fault parsers and the one ``map_qbo_errors`` boundary."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from ledgerbridge import errors
from ledgerbridge.connectors.qbo import errors as qbo_errors
from ledgerbridge.connectors.qbo.errors import (
    QboStaleObject,
    QboThrottled,
    map_qbo_errors,
    parse_faults,
    read_response,
)

REALM = "9130355"
TID = "1-6762f1a4-5b0b3e5d3c8f1a2b"

STALE = {
    "Fault": {
        "Error": [
            {
                "Message": "Stale Object Error",
                "Detail": "Stale Object Error : You and Amy were working on this at "
                "the same time. Amy finished before you did, so your work was not "
                "saved.",
                "code": "5010",
                "element": "",
            }
        ],
        "type": "ValidationFault",
    },
    "time": "2017-09-29T09:17:31.892-07:00",
}
NOT_FOUND = {
    "Fault": {
        "Error": [
            {
                "Message": "Object Not Found",
                "Detail": "Object Not Found : Another user has deleted this "
                "transaction.",
                "code": "610",
                "element": "",
            }
        ],
        "type": "ValidationFault",
    },
    "time": "2017-09-29T09:17:31.892-07:00",
}
INVALID_REF = {
    "Fault": {
        "Error": [
            {
                "Message": "Invalid Reference Id",
                "Detail": "Invalid Reference Id : Line.SalesItemLineDetail.ItemRef",
                "code": "2500",
                "element": "Line.SalesItemLineDetail.ItemRef",
            }
        ],
        "type": "ValidationFault",
    }
}
QUERY_PARSE = {
    "Fault": {
        "Error": [
            {
                "Message": "Error parsing query",
                "Detail": 'QueryParserError: Encountered " <ID> "s "" at line 1',
                "code": "4000",
            }
        ],
        "type": "ValidationFault",
    }
}
THROTTLE_JSON = {
    "Fault": {
        "Error": [
            {
                "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                "Detail": "The request limit was reached.",
                "code": "3001",
            }
        ],
        "type": "SERVICE",
    },
    "time": "2026-12-04T09:00:00.000-08:00",
}
THROTTLE_XML = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2026-12-04T09:00:00.000-08:00">
  <Fault type="SERVICE">
    <Error code="3001">
      <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>
      <Detail>The request limit was reached.</Detail>
    </Error>
  </Fault>
</IntuitResponse>"""
AUTH_401 = {
    "warnings": None,
    "intuitObject": None,
    "fault": {
        "error": [
            {
                "message": "message=AuthenticationFailed; errorCode=003200; "
                "statusCode=401",
                "detail": "Token expired: AB01SECRETPREFIX",
                "code": "3200",
                "element": None,
            }
        ],
        "type": "AUTHENTICATION",
    },
    "report": None,
    "queryResponse": None,
    "batchItemResponse": [],
    "time": 1730024394085,
    "cdcresponse": [],
}
SYSTEM_FAILURE = {
    "Fault": {
        "Error": [
            {
                "Message": "An application error has occurred while processing "
                "your request",
                "Detail": "System Failure Error: something",
                "code": "10000",
            }
        ],
        "type": "SystemFault",
    }
}


def _response(status, body=None, *, content=None, headers=None, tid=TID):
    hdrs = {"intuit_tid": tid} if tid else {}
    hdrs.update(headers or {})
    if body is not None:
        content = json.dumps(body).encode()
        hdrs.setdefault("content-type", "application/json")
    return httpx.Response(status, content=content or b"", headers=hdrs)


def _mapped(response):
    with (
        pytest.raises(errors.QboError) as info,
        map_qbo_errors(realm_id=REALM, action="get_invoice"),
    ):
        read_response(response)
    assert isinstance(info.value.__cause__, qbo_errors.FaultResponse)
    return info.value


def test_parse_faults_reads_upper_case_json():
    [fault] = parse_faults(json.dumps(INVALID_REF).encode())
    assert fault.code == "2500"
    assert fault.element == "Line.SalesItemLineDetail.ItemRef"
    assert fault.type == "ValidationFault"
    assert fault.message == "Invalid Reference Id"


def test_parse_faults_reads_lower_case_401_shape():
    [fault] = parse_faults(json.dumps(AUTH_401).encode())
    assert fault.code == "3200"
    assert fault.type == "AUTHENTICATION"
    assert fault.element is None
    assert fault.detail.startswith("Token expired")


def test_parse_faults_reads_namespaced_xml():
    [fault] = parse_faults(THROTTLE_XML, "application/xml")
    assert fault.code == "3001"
    assert fault.type == "SERVICE"
    assert fault.detail == "The request limit was reached."


def test_parse_faults_returns_nothing_for_garbage():
    assert parse_faults(b"") == []
    assert parse_faults(b"<html><body>Bad gateway</body></html>") == []
    assert parse_faults(b"<not xml") == []
    assert parse_faults(b"{not json") == []
    assert parse_faults(b'{"Invoice": {}}') == []


def test_parse_faults_keeps_every_error():
    body = {
        "Fault": {
            "Error": [{"code": "2020", "Message": "a"}, {"code": "2500"}],
            "type": "ValidationFault",
        }
    }
    assert [f.code for f in parse_faults(json.dumps(body).encode())] == [
        "2020",
        "2500",
    ]


def test_read_response_returns_body_with_decimals():
    body = read_response(
        _response(200, content=b'{"Invoice": {"TotalAmt": 150.10}}', tid=None)
    )
    assert str(body["Invoice"]["TotalAmt"]) == "150.10"


def test_stale_object_is_transient_with_code():
    error = _mapped(_response(400, STALE))
    assert isinstance(error, QboStaleObject)
    assert isinstance(error, errors.QboTransientError)
    assert isinstance(error, errors.TransientError)
    assert error.code == "5010"
    assert error.status_code == 400
    assert error.intuit_tid == TID
    assert error.realm_id == REALM
    assert "Stale Object Error" in str(error)


def test_not_found_is_permanent():
    error = _mapped(_response(400, NOT_FOUND))
    assert type(error) is errors.QboNotFound
    assert isinstance(error, errors.PermanentError)
    assert error.code == "610"


@pytest.mark.parametrize(
    ("body", "code"), [(INVALID_REF, "2500"), (QUERY_PARSE, "4000")]
)
def test_validation_and_query_faults_are_permanent(body, code):
    error = _mapped(_response(400, body))
    assert type(error) is errors.QboPermanentError
    assert error.code == code


def test_validation_fault_keeps_element():
    error = _mapped(_response(400, INVALID_REF))
    assert error.element == "Line.SalesItemLineDetail.ItemRef"


def test_throttle_json_defaults_to_sixty_seconds():
    error = _mapped(_response(429, THROTTLE_JSON))
    assert isinstance(error, QboThrottled)
    assert isinstance(error, errors.RetryAfter)
    assert isinstance(error, errors.QboTransientError)
    assert error.retry_after_seconds == 60.0
    assert error.code == "3001"


def test_throttle_honours_retry_after_seconds():
    error = _mapped(_response(429, THROTTLE_JSON, headers={"Retry-After": "7"}))
    assert error.retry_after_seconds == 7.0


def test_throttle_honours_retry_after_date():
    headers = {
        "Retry-After": "Fri, 04 Dec 2026 16:00:30 GMT",
        "Date": "Fri, 04 Dec 2026 16:00:00 GMT",
    }
    error = _mapped(_response(429, THROTTLE_JSON, headers=headers))
    assert error.retry_after_seconds == 30.0


def test_throttle_xml_to_a_json_client_is_parsed():
    response = _response(
        429, content=THROTTLE_XML, headers={"content-type": "application/xml"}
    )
    error = _mapped(response)
    assert isinstance(error, QboThrottled)
    assert error.code == "3001"
    assert error.retry_after_seconds == 60.0


def test_xml_throttle_inside_a_200_is_still_throttling():
    response = _response(
        200, content=THROTTLE_XML, headers={"content-type": "text/xml"}
    )
    error = _mapped(response)
    assert isinstance(error, QboThrottled)


def test_fault_inside_a_200_is_raised():
    error = _mapped(_response(200, STALE))
    assert isinstance(error, QboStaleObject)
    assert error.status_code == 200


def test_unreadable_200_is_transient_not_empty():
    error = _mapped(_response(200, content=b"<html>maintenance</html>"))
    assert type(error) is errors.QboTransientError


def test_non_object_200_is_transient():
    error = _mapped(_response(200, content=b"[]"))
    assert type(error) is errors.QboTransientError


def test_401_is_auth_error_and_hides_token_detail():
    error = _mapped(_response(401, AUTH_401))
    assert type(error) is errors.QboAuthError
    assert isinstance(error, errors.TransientError)
    assert error.code == "3200"
    assert "SECRETPREFIX" not in str(error)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_transient_even_without_body(status):
    error = _mapped(_response(status, content=b"Service Unavailable"))
    assert type(error) is errors.QboTransientError
    assert error.status_code == status
    assert error.code is None


def test_system_failure_code_is_transient():
    error = _mapped(_response(500, SYSTEM_FAILURE))
    assert type(error) is errors.QboTransientError
    assert error.code == "10000"


def test_unknown_url_404_is_permanent():
    error = _mapped(_response(404, content=b"Not Found"))
    assert type(error) is errors.QboPermanentError


def test_403_application_authorization_is_permanent():
    body = {
        "Fault": {
            "Error": [
                {
                    "Message": "message=ApplicationAuthorizationFailed; "
                    "errorCode=003100; statusCode=403",
                    "code": "3100",
                }
            ],
            "type": "AuthorizationFault",
        }
    }
    error = _mapped(_response(403, body))
    assert type(error) is errors.QboPermanentError
    assert error.code == "3100"


async def _send_through(exc):
    def handler(request):
        raise exc

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with map_qbo_errors(realm_id=REALM, action="create_invoice"):
            await http.get("http://qbo.test/v3/company/1/invoice/1")


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.PoolTimeout("pool"),
    ],
)
async def test_timeouts_are_transient(exc):
    with pytest.raises(errors.QboTransientError, match="timed out") as info:
        await _send_through(exc)
    assert info.value.__cause__ is exc
    assert info.value.realm_id == REALM
    assert info.value.status_code is None


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("peer closed"),
        httpx.ReadError("reset"),
    ],
)
async def test_network_errors_are_transient(exc):
    with pytest.raises(errors.QboTransientError) as info:
        await _send_through(exc)
    assert info.value.__cause__ is exc


def test_mapped_fault_is_logged_with_tid_and_no_payload(caplog):
    caplog.set_level(logging.INFO, logger="ledgerbridge.connectors.qbo")
    _mapped(_response(401, AUTH_401))
    [record] = caplog.records
    assert record.action == "get_invoice"
    assert record.realm_id == REALM
    assert record.intuit_tid == TID
    assert "SECRETPREFIX" not in record.getMessage()


def test_errors_outside_the_boundary_pass_through():
    with pytest.raises(KeyError), map_qbo_errors(realm_id=REALM, action="x"):
        raise KeyError("not ours")
