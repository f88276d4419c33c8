"""The errors a run's callers see: refused at admission, unknown runbook, a transition its state does not allow."""

from __future__ import annotations

from daemon.errors import Conflict, NotFound, Unprocessable


class RunRefused(Unprocessable):
    """A run that cannot start: a param that does not match its pattern, a missing integration, a template
    that does not render; nothing is recorded."""


class UnknownRunbook(NotFound, RunRefused):
    """A run of a runbook the library does not have: NotFound comes first, so it answers 404."""


class InvalidRunTransition(Conflict):
    """approve/reject/cancel in a state that does not allow it; the message names what is allowed."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_transition", message)
