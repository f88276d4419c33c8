"""The `runbooks:` section of the config file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.credentials import EnvSecret, FileSecret, Secret
from daemon.durations import PositiveDuration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(_Strict):
    """A value runbooks may pass to a command (exec secret_env) or a request (secret_headers); it is
    redacted from every output, plan and journal row."""

    env: EnvSecret | None = None
    file: FileSecret | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("set env or file, exactly one")
        return self

    @property
    def secret(self) -> Secret:
        found = self.env or self.file
        if found is None:  # the validator makes this impossible
            raise RuntimeError("a secret source without a secret")
        return found


class RunbooksConfig(_Strict):
    dir: Path = Path("runbooks")
    """Folder of runbook files (*.yaml, *.yml); relative to the config file's folder."""
    change_suspect_window: PositiveDuration = 3600.0
    """An incident opened on a service this long after a change on it is linked to the change as a suspect."""
    max_output_bytes: int = Field(default=64 * 1024, gt=0)
    """Step output kept in the journal (after redaction); the full output is only digested."""
    durable_timeout: PositiveDuration = 10.0
    """How long a step waits for its journal entry to be committed before it gives up (store failing)."""
    history: int = Field(default=500, gt=0)
    """Finished runs kept in memory for the API, besides the active ones."""
    digest_key_file: Path | None = None
    """The key of the step output digests (made at first start, mode 0600). Default: digest.key in data_dir.
    Replicas (storage.backend postgres) must set it to one key all of them read."""
    secrets: dict[str, SecretSource] = Field(default_factory=dict)
    """Named secrets runbooks may use; their values never appear in output, plans or the journal."""

    def secret_values(self) -> dict[str, str]:
        """Name -> value, for Engine(secrets=...)."""
        return {name: secret_text(source.secret) for name, source in self.secrets.items()}


def secret_text(secret: Secret) -> str:
    """The secret's value as text, for handing to a command or request (never for logging)."""
    return secret._value.decode("utf-8", errors="replace")
