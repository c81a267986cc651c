"""Domain errors; entrypoints map them to HTTP statuses and CLI exit codes."""

from __future__ import annotations

from collections.abc import Iterable

from domain.suggest import unknown


class DomainError(Exception):
    """Base of every rule violation; the message is safe to show to users."""


class InvalidInput(DomainError):
    """The request is malformed (HTTP 400)."""


class NotFound(DomainError):
    """A named model, version or job does not exist (HTTP 404)."""


class UnknownModel(NotFound):
    """No model of this name is registered (HTTP 404).

    Where the registered names are not at hand (an aggregate's decision, a projection's query)
    it is raised with the name alone; the entrypoints then ``learn`` the names, so the user
    reads them and the closest one, as an unknown version's message lists the versions.
    """

    def __init__(self, model_name: str, known: Iterable[str] | None = None) -> None:
        self.model_name = model_name
        self.known: tuple[str, ...] | None = None
        super().__init__(f"unknown model {model_name!r}")
        if known is not None:
            self.learn(known)

    def learn(self, known: Iterable[str]) -> None:
        """Add the registered names to the message (once the entrypoint has read them)."""
        self.known = tuple(sorted(known))
        self.args = (unknown("model", self.model_name, self.known),)


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
