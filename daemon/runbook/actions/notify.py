"""`notify`: POST a rendered JSON body to a webhook (chat, paging, a ticket system)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from daemon.runbook.actions.base import ActionSpec, Renderer
from daemon.runbook.actions.http import HttpAction, _checked_url, render_json


class NotifySpec(ActionSpec):
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default_factory=dict)
    """The JSON document posted; every string in it is a template."""
    expect_status: tuple[int, ...] = ()

    def build(self, render: Renderer) -> NotifyAction:
        return NotifyAction(
            method="POST",
            url=_checked_url(render(self.url)),
            headers={k: render(v) for k, v in self.headers.items()},
            secret_headers=dict(self.secret_headers),
            body=None,
            json_body=render_json(self.body, render),
            expect_status=self.expect_status,
            max_output_bytes=4096,
        )


class NotifyAction(HttpAction):
    kind: ClassVar[str] = "notify"
