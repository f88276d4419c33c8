"""`silence`: silence the alerts a run is about to cause (a restart, a failover) in Alertmanager.

The silence starts now and ends after `duration`, so a run that dies still lets it lapse; cleanup (run end
or rollback, also after a restart, from the journaled silence id) expires it early. Matcher names and values
are templates rendered once; the rendered value is sent as data in the JSON body, never as a template or a
query. With ``is_regex: true`` the value is a regular expression: a param rendered into it is regex source,
so its allowlist pattern should exclude regex metacharacters (``^[a-z0-9-]+$``) unless that is the point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from daemon.durations import PositiveDuration, format_duration
from daemon.runbook.actions.base import Action, ActionSpec, ActionUnavailable, Outcome, Renderer, StepContext
from daemon.runbook.render import RenderError
from integrations.alertmanager.client import AlertmanagerError
from integrations.alertmanager.silences import SilenceMatcher, check_matchers, rfc3339


class MatcherSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True


class SilenceSpec(ActionSpec):
    requires: ClassVar[tuple[str, ...]] = ("alertmanager",)
    matchers: tuple[MatcherSpec, ...] = Field(min_length=1)
    duration: PositiveDuration
    """How long the silence lasts if nothing expires it earlier; keep it near the step's expected length."""
    comment: str = "silenced by itsmd while a runbook works on it"

    def build(self, render: Renderer) -> SilenceAction:
        matchers: list[SilenceMatcher] = []
        for m in self.matchers:
            try:
                matchers.append(SilenceMatcher(render(m.name), render(m.value), m.is_regex, m.is_equal))
            except ValueError as exc:
                raise RenderError(f"silence matcher: {exc}") from None
        try:
            check_matchers(matchers)
        except ValueError as exc:
            raise RenderError(f"silence: {exc}") from None
        comment = render(self.comment).strip()
        if not comment:
            raise RenderError("silence: the comment renders to nothing (Alertmanager requires one)")
        return SilenceAction(tuple(matchers), self.duration, comment)


@dataclass(frozen=True)
class SilenceAction(Action):
    kind: ClassVar[str] = "silence"
    matchers: tuple[SilenceMatcher, ...]
    duration: float
    comment: str

    def plan(self) -> dict[str, Any]:
        return {
            "matchers": [str(m) for m in self.matchers],
            "duration": format_duration(self.duration),
            "comment": self.comment,
        }

    async def execute(self, ctx: StepContext) -> Outcome:
        alertmanager = ctx.alertmanager
        if alertmanager is None:
            return Outcome(False, "no alertmanager: section in the config; the silence step cannot run", started=False)
        starts_at = ctx.clock.now()
        ends_at = starts_at + self.duration
        shown = ", ".join(str(m) for m in self.matchers)
        try:
            silence_id = await alertmanager.create_silence(
                self.matchers,
                starts_at=starts_at,
                ends_at=ends_at,
                created_by=_created_by(ctx),
                comment=self._comment(ctx),
            )
        except AlertmanagerError as exc:
            again = "retryable" if exc.retryable else "not retryable"
            return Outcome(False, f"silence not created ({again}): {exc.message}", data={"retryable": exc.retryable})
        return Outcome(
            True,
            f"silence {silence_id} on {shown} until {rfc3339(ends_at)}",
            data={"silence_id": silence_id, "ends_at": ends_at},
        )

    def _comment(self, ctx: StepContext) -> str:
        # The run and step in the comment make the silence findable if its id is lost (see reclaim).
        return f"{self.comment} [itsmd run {ctx.run_id} step {ctx.step}]"

    def _is_ours(self, silence: Mapping[str, Any], ctx: StepContext) -> bool:
        state = silence.get("status", {}).get("state") if isinstance(silence.get("status"), dict) else None
        if state == "expired" or silence.get("createdBy") != _created_by(ctx):
            return False
        if silence.get("comment") != self._comment(ctx):
            return False
        theirs = {
            (m.get("name"), m.get("value"), bool(m.get("isRegex")), m.get("isEqual", True) is not False)
            for m in silence.get("matchers", [])
            if isinstance(m, dict)
        }
        return theirs == {(m.name, m.value, m.is_regex, m.is_equal) for m in self.matchers}

    async def reclaim(self, ctx: StepContext) -> list[str]:
        """A silence created by an attempt whose answer never arrived (timed out, or the daemon died) has no
        journaled id: find it by its matchers, createdBy and the run and step in its comment, and expire it."""
        alertmanager = ctx.alertmanager
        if alertmanager is None:
            return []
        found = [s for s in await alertmanager.list_silences() if self._is_ours(s, ctx)]
        for silence in found:
            await alertmanager.expire_silence(str(silence["id"]))
        return [f"expired silence {s['id']}" for s in found]

    async def cleanup(self, ctx: StepContext, data: Mapping[str, Any]) -> None:
        silence_id = data.get("silence_id")
        if not isinstance(silence_id, str):
            return  # execute failed: nothing was created
        if ctx.alertmanager is None:
            raise ActionUnavailable(
                f"cannot expire silence {silence_id}: no alertmanager: section in the config any more; "
                "it lapses on its own at its end time"
            )
        await ctx.alertmanager.expire_silence(silence_id)


def _created_by(ctx: StepContext) -> str:
    return f"itsmd run {ctx.run_id} ({ctx.runbook}/{ctx.step})"
