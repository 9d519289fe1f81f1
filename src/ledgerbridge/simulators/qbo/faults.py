"""QBO fault bodies, and the exception the company logic raises to produce them."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape


class QboFault(Exception):
    """One QBO error; rendered as the standard ``Fault`` envelope."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str,
        *,
        element: str = "",
        status: int = 400,
        fault_type: str = "ValidationFault",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = fault_type

    def fault(self) -> dict[str, Any]:
        error = {"Message": self.message, "Detail": self.detail, "code": self.code}
        error["element"] = self.element
        return {"Error": [error], "type": self.fault_type}

    def body(self, time: str) -> dict[str, Any]:
        return {"Fault": self.fault(), "time": time}


def object_not_found(detail: str, element: str = "") -> QboFault:
    return QboFault(
        "610", "Object Not Found", f"Object Not Found : {detail}", element=element
    )


DELETED_TXN = "Another user has deleted this transaction."
INACTIVE_REF = (
    "Something you're trying to use has been made inactive. Check the fields "
    "with accounts, customers, items, vendors or employees."
)


def required(name: str) -> QboFault:
    return QboFault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {name} is missing in the request",
        element=name,
    )


def invalid_reference(element: str) -> QboFault:
    return QboFault(
        "2500",
        "Invalid Reference Id",
        f"Invalid Reference Id : {element}",
        element=element,
    )


def invalid_property(element: str, detail: str) -> QboFault:
    return QboFault(
        "2010",
        "Request has invalid or unsupported property",
        f"Property Name:{detail} specified is unsupported or invalid",
        element=element,
    )


def string_length(element: str, maximum: int, supplied: int) -> QboFault:
    # QBO answers over-long strings with 2050 naming the field and the limit.
    return QboFault(
        "2050",
        "String length is either shorter or longer than supported by specification",
        "String length specified does not match the supported length. "
        f"Min:0 Max:{maximum} supplied:{supplied}",
        element=element,
    )


def business(detail: str, element: str = "") -> QboFault:
    return QboFault(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element=element,
    )


def unsupported(detail: str) -> QboFault:
    return QboFault("500", "Unsupported Operation", detail)


def stale(entity: str) -> QboFault:
    return QboFault(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and Sandbox User were working on this at the same "
        "time. Sandbox User finished before you did, so your work was not saved. "
        f"Entity={entity}",
    )


def query_parse(detail: str) -> QboFault:
    return QboFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def query_invalid(detail: str) -> QboFault:
    return QboFault("4001", "Invalid query", f"QueryValidationError: {detail}")


def system_fault(status: int) -> QboFault:
    return QboFault(
        "10000",
        "An application error has occurred while processing your request",
        f"System Failure Error: injected HTTP {status}",
        status=status,
        fault_type="SystemFault",
    )


def throttled() -> QboFault:
    return QboFault(
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.",
        status=429,
        fault_type="SERVICE",
    )


def throttle_xml(time: str) -> str:
    """The 429 body QBO sends as XML regardless of the client's Accept."""
    fault = throttled()
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{time}">'
        f'<Fault type="{fault.fault_type}"><Error code="{fault.code}">'
        f"<Message>{escape(fault.message)}</Message>"
        f"<Detail>{escape(fault.detail)}</Detail>"
        "</Error></Fault></IntuitResponse>"
    )


def authentication_body(detail: str, epoch_millis: int) -> dict[str, Any]:
    """The lower-case 401 shape QBO's gateway answers with (not ``Fault``)."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; "
                    "statusCode=401",
                    "detail": detail,
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": epoch_millis,
        "status": None,
        "cdcresponse": [],
    }


def forbidden() -> QboFault:
    return QboFault(
        "3100",
        "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
        "The application is not authorized for this company.",
        status=403,
        fault_type="AuthorizationFault",
    )
