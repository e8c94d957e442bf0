"""The errors the store raises, each one a thing a caller can read and act on.

    StoreError                 base: every failure the store anticipated
    ├── InvalidInput           a field is malformed or breaks an invariant (names the field)
    ├── NotFound               the record asked for does not exist
    ├── Conflict               the write contradicts what is already stored (first write stands)
    └── StoreUnavailable       the database could not be reached or is locked past the timeout

The server turns these into tool errors in one place; anything else is a bug.
"""

from __future__ import annotations


class StoreError(Exception):
    """A failure the store anticipated; `str(err)` is a complete sentence for the caller."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class InvalidInput(StoreError):
    """A field is malformed or breaks one of the record's invariants."""

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}", hint=hint)


class NotFound(StoreError):
    """No record with that key exists."""

    def __init__(self, what: str, key: str, *, hint: str | None = None) -> None:
        self.what = what
        self.key = key
        super().__init__(f"no {what} with {key}", hint=hint)


class Conflict(StoreError):
    """The write contradicts a stored record; the stored record is kept unchanged."""

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}", hint=hint)


class StoreUnavailable(StoreError):
    """The database is unreachable, or another process held it past the busy timeout."""
