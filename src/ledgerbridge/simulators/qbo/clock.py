"""The simulator's one clock: wall time plus an offset, or frozen for tests."""

from __future__ import annotations

import datetime as dt
import zoneinfo

# QBO stamps MetaData and response times in the company's local time; sandbox
# companies default to US Pacific, so offsets flip between -08:00 and -07:00.
COMPANY_TZ = zoneinfo.ZoneInfo("America/Los_Angeles")


class SimClock:
    """Time for tokens, MetaData, CDC and throttling, movable by the control API."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("SimClock needs a timezone-aware start")
        self._start = start
        self._offset = dt.timedelta()

    @property
    def frozen(self) -> bool:
        return self._start is not None

    @property
    def offset_seconds(self) -> float:
        return self._offset.total_seconds()

    def now(self) -> dt.datetime:
        base = self._start if self._start is not None else dt.datetime.now(dt.UTC)
        return (base + self._offset).astimezone(dt.UTC)

    def timestamp(self) -> float:
        return self.now().timestamp()

    def advance(self, seconds: float) -> None:
        self._offset += dt.timedelta(seconds=seconds)

    def set_offset(self, seconds: float) -> None:
        self._offset = dt.timedelta(seconds=seconds)


def company_time(moment: dt.datetime) -> str:
    """MetaData style: company-local, whole seconds, with offset."""
    return moment.astimezone(COMPANY_TZ).replace(microsecond=0).isoformat()


def response_time(moment: dt.datetime) -> str:
    """Envelope ``time`` style: company-local with milliseconds."""
    return moment.astimezone(COMPANY_TZ).isoformat(timespec="milliseconds")


def company_date(moment: dt.datetime) -> str:
    return moment.astimezone(COMPANY_TZ).date().isoformat()


def utc_millis(moment: dt.datetime) -> str:
    """Legacy webhook ``lastUpdated`` style: UTC, milliseconds, ``Z``."""
    text = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def utc_micros(moment: dt.datetime) -> str:
    text = moment.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def parse_instant(text: str) -> dt.datetime | None:
    """Parse a QBO date or datetime; naive values are company-local."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime.combine(day, dt.time(), COMPANY_TZ)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=COMPANY_TZ)
    return moment
