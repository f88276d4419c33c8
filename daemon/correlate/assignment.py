"""Incident assignment: who works an incident (a principal's name, or nobody) and which team has it.

The correlator owns the change (`Correlator.assign`); this module says what an assignment request means: the
words `me` (the caller) and `none` (nobody, in filters), the names nobody can be assigned under, the teams
there are (the catalogue's), and what changes. The same words filter the lists of the API and the console.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from daemon.catalogue.services import Catalogue
from daemon.config import RESERVED_PRINCIPALS
from daemon.errors import InvalidInput
from daemon.model import Incident
from daemon.storage.incidents import AssignmentFilter

ME = "me"
"""As an assignee or an assignee filter: the calling principal."""
NOBODY = "none"
"""As an assignee filter: incidents nobody is assigned to. (To unassign, the API takes null.)"""
MAX_NAME = 200
"""As long as a name the trusted proxy may give a user."""
RESERVED = frozenset({ME, NOBODY}) | RESERVED_PRINCIPALS
"""Names no one is assigned under by name: the filter words, and the daemon's own principals."""


class Keep(enum.Enum):
    KEEP = "keep"


KEEP = Keep.KEEP
"""Leave this field as it is."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """An accepted change: the incident's new assignee and team, and the timeline entry that records it."""

    kind: str
    """assigned | unassigned (the assignee went to nobody)."""
    assignee: str | None
    team: str | None
    detail: dict[str, object]


def _usable(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME and name.isprintable() and name == name.strip()


def assignee_named(raw: str, caller: str) -> str:
    """Whom an assign request names: `me` is the caller; any other name as given, if a principal could have it
    (itsmd cannot know every name a proxy may bring, so it does not check that one exists)."""
    if raw == ME:
        return caller
    if not _usable(raw):
        raise InvalidInput(
            "invalid_body",
            f'assignee: a principal\'s name (printable, no surrounding spaces, at most {MAX_NAME} characters), "me", '
            "or null to unassign",
        )
    if raw.lower() in RESERVED:
        raise InvalidInput(
            "invalid_body",
            f"assignee: {raw!r} is reserved ({', '.join(sorted(RESERVED))}); "
            'send "me" to take it yourself or null to unassign',
        )
    return raw


def requested(given: bool, raw: str | None, caller: str) -> str | Keep | None:
    """The assignee a request body asks for: KEEP when it names none, None (nobody) for null."""
    if not given:
        return KEEP
    return None if raw is None else assignee_named(raw, caller)


def teams(catalogue: Catalogue) -> list[str]:
    """The teams there are: every `team` a catalogue service has."""
    return sorted({catalogue.get(n).team for n in catalogue.names()} - {""})


def plan(incident: Incident, assignee: str | Keep | None, team: str | Keep, catalogue: Catalogue) -> Assignment | None:
    """What assigning `incident` changes; None when nothing does (nothing is then recorded). A new team must
    be one the catalogue has, so a typo does not hand the incident to a team nobody looks at."""
    new_assignee = incident.assignee if assignee is KEEP else assignee
    new_team = incident.team if team is KEEP else team
    if new_team != incident.team and new_team not in teams(catalogue):
        known = ", ".join(teams(catalogue)) or "none"
        raise InvalidInput("invalid_body", f"team: no service in the catalogue has team {new_team!r}; teams: {known}")
    if (new_assignee, new_team) == (incident.assignee, incident.team):
        return None
    kind = "unassigned" if new_assignee is None and incident.assignee is not None else "assigned"
    detail: dict[str, object] = {
        "assignee": new_assignee,
        "team": new_team,
        "was": {"assignee": incident.assignee, "team": incident.team},
    }
    return Assignment(kind, new_assignee, new_team, detail)


def list_filter(assignee: str, team: str, caller: str, catalogue: Catalogue) -> AssignmentFilter:
    """The filter of `?assignee=NAME|me|none&team=TEAM` (empty: any). An incident with no team recorded
    (opened before incidents had one) counts for the team its service has in the catalogue now.
    RequestError (invalid_query) for a value no principal or team could have."""
    if assignee and assignee not in (ME, NOBODY) and not _usable(assignee):
        raise InvalidInput("invalid_query", f"assignee must be a name (at most {MAX_NAME} characters), me or none")
    if team and not _usable(team):
        raise InvalidInput("invalid_query", f"team must be a team name (at most {MAX_NAME} characters)")
    return AssignmentFilter(
        assignee=None if assignee in ("", NOBODY) else caller if assignee == ME else assignee,
        unassigned=assignee == NOBODY,
        team=team or None,
        team_services=tuple(n for n in catalogue.names() if team and catalogue.get(n).team == team),
    )
