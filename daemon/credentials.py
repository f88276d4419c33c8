"""Secrets in the config file: named there (an environment variable or a file), never written there.

A secret is read while the config is validated (at start, and the auth section again at each reload), so a
missing variable or an unreadable file is a config problem with file, line and key (and `itsmd check` finds
it); a reload that meets one keeps the credentials in use. The value lives in a `Secret`, whose
repr, str and serialised form show only where it came from.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, PlainSerializer, PlainValidator, ValidationInfo

MAX_SECRET_FILE_BYTES = 64 * 1024
_ENV_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True)
class Secret:
    """A credential read at config load (or reload). Only `matches` ever looks at the value."""

    kind: Literal["env", "file"]
    ref: str
    """The variable's name or the file's path, as written in the config."""
    _value: bytes = field(repr=False)

    def matches(self, presented: bytes) -> bool:
        """Constant-time comparison (for equal lengths) of a presented credential with this one."""
        return hmac.compare_digest(self._value, presented)

    def __str__(self) -> str:
        return f"<secret from {self.kind} {self.ref}>"


def base_dir(info: ValidationInfo) -> Path:
    """The folder relative paths are taken from: the config file's, passed as validation context."""
    found = info.context.get("base_dir") if isinstance(info.context, dict) else None
    return found if isinstance(found, Path) else Path.cwd()


def _clean(raw: bytes, where: str) -> bytes:
    # Surrounding whitespace (the newline an editor or `echo` adds) is not part of the secret, as in
    # Prometheus' and Alertmanager's credentials_file.
    value = raw.strip()
    if not value:
        raise ValueError(f"{where} is empty")
    return value


def _from_env(value: Any, info: ValidationInfo) -> Secret:
    if not isinstance(value, str) or not value or not set(value) <= _ENV_NAME_CHARS:
        raise ValueError("must be the name of an environment variable, like ITSMD_INGEST_TOKEN")
    raw = os.environ.get(value)
    if raw is None:
        raise ValueError(f"environment variable {value} is not set")
    return Secret("env", value, _clean(os.fsencode(raw), f"environment variable {value}"))


def _from_file(value: Any, info: ValidationInfo) -> Secret:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a file path (relative paths are taken from the config file's folder)")
    path = base_dir(info) / value
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:  # an embedded NUL byte
        raise ValueError(f"{value!r} is not a usable file path") from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"{path} is over {MAX_SECRET_FILE_BYTES} bytes: not a credential file")
    return Secret("file", value, _clean(raw, str(path)))


def _ref(secret: Secret) -> str:
    return secret.ref


EnvSecret = Annotated[Secret, PlainValidator(_from_env), PlainSerializer(_ref, return_type=str)]
"""A config field naming an environment variable that holds a secret."""

FileSecret = Annotated[Secret, PlainValidator(_from_file), PlainSerializer(_ref, return_type=str)]
"""A config field naming a file that holds a secret (relative to the config file's folder)."""


def _readable_file(value: Path, info: ValidationInfo) -> Path:
    path = base_dir(info) / value
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ValueError(f"{str(value)!r} is not a usable file path") from None
    return path


ReadableFile = Annotated[Path, AfterValidator(_readable_file)]
"""A config field naming a file that must be readable at load; resolved against the config file's folder."""
