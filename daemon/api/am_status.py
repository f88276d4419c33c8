"""GET /api/v2/status in Alertmanager's alertmanagerStatus shape, saying plainly that it is itsmd.

`config.original` is itsmd's effective config as YAML, without secrets. The config only names where secrets
come from (`*_env`, `*_file`, `env`, `file`), and those names stay; any other key that sounds like a
credential and holds a value (not a section) is left out whatever it holds, and URLs lose their password and
query string.
"""

from __future__ import annotations

import platform
import re
from typing import Any

import yaml

from daemon import __version__
from daemon.api.am_alerts import timestamp
from daemon.config import Config
from integrations.prometheus.httpjson import redact_url

Json = dict[str, Any]
_SECRET_KEY = re.compile(r"token|passw|secret|credential|api_?key|private|auth_?header|cookie", re.IGNORECASE)
_REFERENCE = re.compile(r"(^|_)(env|file)$")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _is_secret(key: object, value: object) -> bool:
    # A section (`read_tokens:`, `secrets:`) is looked into, not dropped: only values are secrets.
    if isinstance(value, dict | list) or not isinstance(key, str):
        return False
    return bool(_SECRET_KEY.search(key)) and not _REFERENCE.search(key)


def scrub(value: Any) -> Any:
    """A copy of a JSON-like document without secret-looking values and with URLs redacted."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not _is_secret(k, v)}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and _URL.match(value):
        try:
            return redact_url(value)
        except ValueError:
            return "<unparsable URL left out>"
    return value


def config_text(config: Config) -> str:
    """The effective config (defaults filled in) as YAML, scrubbed."""
    document = scrub(config.model_dump(mode="json"))
    text: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return "# itsmd's effective configuration; secrets left out\n" + text


def status_document(config: Config, started_at: float) -> Json:
    return {
        "cluster": {"name": "", "status": "disabled", "peers": []},
        "versionInfo": {
            "version": f"itsmd-{__version__}",
            "revision": "unknown",
            "branch": "unknown",
            "buildUser": "itsmd",
            "buildDate": "unknown",
            "goVersion": f"none (python {platform.python_version()})",
        },
        "config": {"original": config_text(config)},
        "uptime": timestamp(started_at),
    }
