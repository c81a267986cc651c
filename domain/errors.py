"""Domain errors; entrypoints map them to HTTP statuses and CLI exit codes."""


class DomainError(Exception):
    """Base of every rule violation; the message is safe to show to users."""


class InvalidInput(DomainError):
    """The request is malformed (HTTP 400)."""


class NotFound(DomainError):
    """A named model, version or job does not exist (HTTP 404)."""


class Conflict(DomainError):
    """The request contradicts the current state (HTTP 409)."""


class ConcurrencyConflict(Conflict):
    """Another writer appended to the same stream first; retry with fresh state."""


class ServiceUnavailable(DomainError):
    """A backing service (PostgreSQL, Redis) cannot be reached (HTTP 503)."""


class IntegrityError(DomainError):
    """The event log's hash chain does not verify."""


class Forbidden(DomainError):
    """The caller's role may not do this, or the rule forbids this caller (HTTP 403)."""
