"""`http`: one HTTP request with a rendered URL, headers and body, and the statuses that count as success."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, model_validator

from daemon.runbook.actions.base import Action, ActionSpec, Outcome, Renderer, StepContext
from daemon.runbook.digest import OutputDigest
from daemon.runbook.render import RenderError

JsonValue = Any
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"})
"""Headers whose rendered values are treated as secrets: redacted from plans, output and the journal."""


class HttpSpec(ActionSpec):
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: dict[str, str] = Field(default_factory=dict)
    """Plain: header -> name of a secret in runbooks.secrets (for example Authorization: deploy_token)."""
    body: str | None = None
    json_body: JsonValue = Field(default=None, alias="json")
    """A JSON document; every string in it is a template."""
    expect_status: tuple[int, ...] = ()
    """Statuses that count as success; empty means any 2xx."""
    max_output_bytes: int = Field(default=64 * 1024, gt=0)

    @model_validator(mode="after")
    def _one_body(self) -> HttpSpec:
        if self.body is not None and self.json_body is not None:
            raise ValueError("set body or json, not both")
        return self

    def build(self, render: Renderer) -> HttpAction:
        return HttpAction(
            method=self.method,
            url=_checked_url(render(self.url)),
            headers={k: render(v) for k, v in self.headers.items()},
            secret_headers=dict(self.secret_headers),
            body=render(self.body) if self.body is not None else None,
            json_body=render_json(self.json_body, render),
            expect_status=self.expect_status,
            max_output_bytes=self.max_output_bytes,
        )


def render_json(value: JsonValue, render: Renderer) -> JsonValue:
    if isinstance(value, str):
        return render(value)
    if isinstance(value, list):
        return [render_json(v, render) for v in value]
    if isinstance(value, dict):
        return {str(k): render_json(v, render) for k, v in value.items()}
    return value


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RenderError(f"{url!r} is not an http:// or https:// URL")
    return url


@dataclass(frozen=True)
class HttpAction(Action):
    kind: ClassVar[str] = "http"
    method: str
    url: str
    headers: Mapping[str, str]
    secret_headers: Mapping[str, str]
    body: str | None
    json_body: JsonValue
    expect_status: tuple[int, ...]
    max_output_bytes: int

    def sensitive_values(self) -> list[str]:
        return [v for k, v in self.headers.items() if k.lower() in SENSITIVE_HEADERS]

    def plan(self) -> dict[str, Any]:
        headers = {k: ("<redacted>" if k.lower() in SENSITIVE_HEADERS else v) for k, v in self.headers.items()}
        headers.update({k: f"<secret {v}>" for k, v in self.secret_headers.items()})
        out: dict[str, Any] = {"method": self.method, "url": self.url, "headers": headers}
        if self.body is not None:
            out["body"] = self.body
        if self.json_body is not None:
            out["json"] = self.json_body
        out["expect_status"] = list(self.expect_status) or "2xx"
        return out

    async def execute(self, ctx: StepContext) -> Outcome:
        headers = dict(self.headers)
        for header, name in self.secret_headers.items():
            if name not in ctx.secrets:
                return Outcome(False, f"secret {name!r} is not configured (runbooks.secrets)", started=False)
            headers[header] = ctx.secrets[name]
        data: bytes | None = None
        if self.json_body is not None:
            data = json.dumps(self.json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif self.body is not None:
            data = self.body.encode()
        remaining = max(ctx.deadline - ctx.clock.now(), 0.001)
        try:
            async with ctx.http.request(
                self.method,
                self.url,
                headers=headers,
                data=data,
                timeout=aiohttp.ClientTimeout(total=remaining),
                allow_redirects=False,
            ) as resp:
                kept = bytearray()
                total = 0
                digest = OutputDigest(ctx.digest_key)
                async for chunk in resp.content.iter_chunked(65536):
                    total += len(chunk)
                    digest.update(chunk)
                    if len(kept) < self.max_output_bytes:
                        kept += chunk[: self.max_output_bytes - len(kept)]
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome(False, f"{self.method} {self.url} failed: {exc!r}")
        output = kept.decode("utf-8", errors="replace")
        if total > len(kept):
            output += f"\n[body truncated: {total} bytes, {len(kept)} kept]"
        result = {"status": status, "output_bytes": total, "output_digest": digest.hexdigest()}
        ok = status in self.expect_status if self.expect_status else 200 <= status < 300
        expected = ", ".join(map(str, self.expect_status)) or "2xx"
        summary = f"{self.method} {self.url} -> {status}" + ("" if ok else f", expected {expected}")
        return Outcome(ok, summary, output, result)
