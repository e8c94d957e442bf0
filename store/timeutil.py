"""Time as the store keeps it: timezone-aware UTC datetimes outside, integer microseconds
since the epoch inside (sortable, exact, and the same in SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def now_utc() -> datetime:
    return datetime.now(UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; `moment` must be timezone-aware."""
    return (moment - _EPOCH) // _MICROSECOND


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def iso_z(moment: datetime, *, seconds: bool = False) -> str:
    """ISO 8601 in UTC with a `Z` suffix (`2025-11-04T18:29:12.123456Z`)."""
    utc = moment.astimezone(UTC)
    if not seconds:
        return f"{utc.isoformat(timespec='microseconds')[:26]}Z"
    if utc.year < 1000:  # strftime's %Y does not pad the year to four digits; isoformat does
        return f"{utc.strftime('%Y-%m-%dT%H:%M:%S')}Z"
    # isoformat rather than strftime: a third cheaper, and session ids are made on every start.
    return f"{utc.replace(tzinfo=None).isoformat(timespec='seconds')}Z"


def duration_ms(started_us: int, ended_us: int) -> int:
    return max((ended_us - started_us) // 1000, 0)
