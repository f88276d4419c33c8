"""The prometheus: and alertmanager: config sections: URL with prefix, timeout, a token never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import load_config
from tests.unit.daemon.configfiles import problems, write
from tests.unit.integrations.upstream import Upstream

TOKEN = "prom-t0ken-value"  # noqa: S105


def test_sections_with_tokens_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_TEST_PROM_TOKEN", TOKEN)
    write(tmp_path / "etc" / "am.token", "am-secret\n")
    path = write(
        tmp_path / "etc" / "itsmd.yaml",
        "prometheus:\n  url: https://prom.example.org/prom\n  timeout: 3s\n  bearer_token: ITSMD_TEST_PROM_TOKEN\n"
        "alertmanager:\n  url: http://am:9093\n  bearer_token_file: am.token\n",
    )
    config = load_config(path).config
    assert config.prometheus is not None and config.alertmanager is not None
    assert config.prometheus.timeout == 3.0
    assert config.prometheus.headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert config.alertmanager.headers() == {"Authorization": "Bearer am-secret"}
    shown = f"{config!r} {config.model_dump_json()}"
    assert TOKEN not in shown
    assert "am-secret" not in shown
    assert "ITSMD_TEST_PROM_TOKEN" in shown


def test_no_token_no_header(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "itsmd.yaml", "prometheus: {url: 'http://p:9090'}\n")).config
    assert config.prometheus is not None
    assert config.prometheus.headers() == {}
    assert config.alertmanager is None


@pytest.mark.parametrize(
    ("section", "line", "key", "fragment"),
    [
        ("prometheus:\n  url: ftp://p\n", 2, "prometheus.url", "URL scheme should be 'http' or 'https'"),
        ("prometheus:\n  url: http://p:9090/?x=1\n", 2, "prometheus.url", "no query string"),
        ("prometheus:\n  url: http://p\n  timeout: 0s\n", 3, "prometheus.timeout", "longer than 0s"),
        (
            "alertmanager:\n  url: http://a\n  bearer_token: NOT_SET_ANYWHERE_X\n",
            3,
            "alertmanager.bearer_token",
            "not set",
        ),
        ("alertmanager:\n  url: http://a\n  headers: {}\n", 3, "alertmanager.headers", "unknown key"),
    ],
)
def test_bad_sections_name_file_line_and_key(tmp_path: Path, section: str, line: int, key: str, fragment: str) -> None:
    found = problems(write(tmp_path / "itsmd.yaml", section))
    assert len(found) == 1, found
    assert found[0][:2] == (line, key)
    assert fragment in found[0][2]


def test_both_token_sources_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_TEST_PROM_TOKEN", TOKEN)
    write(tmp_path / "t", "x")
    found = problems(
        write(
            tmp_path / "itsmd.yaml",
            "prometheus:\n  url: http://p\n  bearer_token: ITSMD_TEST_PROM_TOKEN\n  bearer_token_file: t\n",
        )
    )
    assert [(key, "not both" in message) for _, key, message in found] == [("prometheus", True)]


async def test_client_from_config_sends_the_token_to_the_prefixed_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    monkeypatch.setenv("ITSMD_TEST_PROM_TOKEN", TOKEN)
    upstream.answer(
        "POST", "/prom/api/v1/query", body={"status": "success", "data": {"resultType": "vector", "result": []}}
    )
    path = write(
        tmp_path / "itsmd.yaml", f"prometheus:\n  url: {upstream.url('/prom')}\n  bearer_token: ITSMD_TEST_PROM_TOKEN\n"
    )
    config = load_config(path).config
    assert config.prometheus is not None
    await config.prometheus.client(upstream.session).query("up")
    assert upstream.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
