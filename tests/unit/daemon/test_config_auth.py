"""The auth: and tls: sections: secrets from environment variables and files, read once at load, never shown;
their problems named by file, line and key; and the rule `itsmd run` applies to non-loopback addresses."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import Config, load_config
from daemon.credentials import Secret
from daemon.errors import ConfigError
from tests.unit.daemon.configfiles import problems, write
from tests.unit.daemon.selfsigned import make_cert

INGEST_TOKEN = "ingest-s3cret-token-9f8e7d"  # noqa: S105
PASSWORD = "basic-pa55word-c0ffee"  # noqa: S105
READ_TOKEN = "read-t0ken-abcdef"  # noqa: S105
WRITE_TOKEN = "write-t0ken-123456"  # noqa: S105
SECRETS = (INGEST_TOKEN, PASSWORD, READ_TOKEN, WRITE_TOKEN)


@pytest.fixture
def full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with every kind of secret: env and file, relative and absolute."""
    monkeypatch.setenv("ITSMD_TEST_INGEST_TOKEN", INGEST_TOKEN)
    monkeypatch.setenv("ITSMD_TEST_READ", f"  {READ_TOKEN}\n")
    write(tmp_path / "etc" / "secrets" / "password", PASSWORD + "\n")
    write(tmp_path / "write.token", WRITE_TOKEN)
    return write(
        tmp_path / "etc" / "itsmd.yaml",
        f"""\
auth:
  ingest:
    token_env: ITSMD_TEST_INGEST_TOKEN
    username: alertmanager
    password_file: secrets/password
  api:
    read_tokens:
      - token_env: ITSMD_TEST_READ
    write_tokens:
      - token_file: {tmp_path / "write.token"}
""",
    )


def test_no_auth_and_no_tls_by_default() -> None:
    cfg = Config()
    assert not cfg.auth.ingest.enabled
    assert not cfg.auth.api.enabled
    assert not cfg.tls.enabled
    assert cfg.tls.server_context() is None


def test_secrets_from_env_and_files(full: Path, tmp_path: Path) -> None:
    auth = load_config(full).config.auth
    assert auth.ingest.enabled and auth.api.enabled
    assert auth.ingest.token is not None and auth.ingest.token.matches(INGEST_TOKEN.encode())
    assert auth.ingest.username == "alertmanager"
    # relative to the config file's folder, the trailing newline is not part of it
    assert auth.ingest.password is not None and auth.ingest.password.matches(PASSWORD.encode())
    assert not auth.ingest.password.matches((PASSWORD + "\n").encode())
    (read,) = auth.api.read_tokens
    assert read.secret.matches(READ_TOKEN.encode())  # surrounding whitespace stripped
    (write_token,) = auth.api.write_tokens
    assert write_token.secret.matches(WRITE_TOKEN.encode())
    assert write_token.secret.ref == str(tmp_path / "write.token")


def test_secrets_are_read_once_at_load(full: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = load_config(full).config.auth
    monkeypatch.setenv("ITSMD_TEST_INGEST_TOKEN", "changed")
    (tmp_path / "etc" / "secrets" / "password").unlink()
    assert auth.ingest.token is not None and auth.ingest.token.matches(INGEST_TOKEN.encode())
    assert auth.ingest.password is not None and auth.ingest.password.matches(PASSWORD.encode())


def test_the_config_never_shows_a_secret(full: Path) -> None:
    cfg = load_config(full).config
    auth = cfg.auth
    assert auth.ingest.token is not None and auth.ingest.password is not None
    shown = [
        repr(cfg),
        str(cfg),
        repr(auth),
        str(auth.ingest.token),
        repr(auth.ingest.token),
        repr(auth.ingest.password),
        f"{auth.ingest.password}",
        repr(cfg.model_dump()),
        cfg.model_dump_json(),
        repr(cfg.model_dump(mode="json")),
        repr(auth.api.read_tokens),
    ]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text, text
    # what is shown is where the secret came from
    dumped = cfg.model_dump(mode="json")["auth"]
    assert (dumped["ingest"]["token_env"], dumped["ingest"]["password_file"]) == (
        "ITSMD_TEST_INGEST_TOKEN",
        "secrets/password",
    )
    assert dumped["api"]["read_tokens"] == [{"token_env": "ITSMD_TEST_READ", "token_file": None}]
    assert str(auth.ingest.token) == "<secret from env ITSMD_TEST_INGEST_TOKEN>"


def test_missing_env_var_names_file_line_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ITSMD_TEST_NOT_SET", raising=False)
    path = write(tmp_path / "itsmd.yaml", "auth:\n  ingest:\n\n    token_env: ITSMD_TEST_NOT_SET\n")
    [(line, key, message)] = problems(path)
    assert (line, key) == (4, "auth.ingest.token_env")
    assert "environment variable ITSMD_TEST_NOT_SET is not set" in message


def test_missing_file_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "itsmd.yaml",
        "auth:\n  ingest:\n    username: am\n    password_file: nope/password\n",
    )
    [(line, key, message)] = problems(path)
    assert (line, key) == (4, "auth.ingest.password_file")
    assert f"cannot read {tmp_path / 'nope' / 'password'}" in message


def test_problems_in_api_tokens_name_the_list_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_TEST_READ", READ_TOKEN)
    monkeypatch.delenv("ITSMD_TEST_GONE", raising=False)
    path = write(
        tmp_path / "itsmd.yaml",
        """\
auth:
  api:
    read_tokens:
      - token_env: ITSMD_TEST_READ
      - token_env: ITSMD_TEST_GONE
    write_tokens:
      - {}
""",
    )
    found = problems(path)
    assert [(line, key) for line, key, _ in found] == [
        (5, "auth.api.read_tokens[1].token_env"),
        (7, "auth.api.write_tokens[0]"),
    ]
    assert "set token_env or token_file" in found[1][2]


@pytest.mark.parametrize(
    "case",
    [
        ("auth:\n  ingest:\n    token: inline\n", 3, "auth.ingest.token", "unknown key"),
        (
            "auth:\n  api:\n    read_tokens:\n      - token: inline\n        token_file: t\n",
            4,
            "auth.api.read_tokens[0].token",
            "unknown key",
        ),
        ("auth:\n  ingest:\n    password: inline\n", 3, "auth.ingest.password", "unknown key"),
        ("auth:\n  ingest:\n    token_file: empty\n", 3, "auth.ingest.token_file", "is empty"),
        ("auth:\n  ingest:\n    token_env: ITSMD_TEST_EMPTY\n", 3, "auth.ingest.token_env", "is empty"),
        ("auth:\n  ingest:\n    token_env: not a name\n", 3, "auth.ingest.token_env", "name of an environment"),
        ("auth:\n  ingest:\n    token_env: 12\n", 3, "auth.ingest.token_env", "name of an environment"),
        ("auth:\n  ingest:\n    token_file: .\n", 3, "auth.ingest.token_file", "cannot read"),
        ("auth:\n  ingest:\n    token_env: ITSMD_TEST_SET\n    token_file: t\n", 2, "auth.ingest", "not both"),
        ("auth:\n  ingest:\n    username: am\n", 2, "auth.ingest", "username needs password_env or password_file"),
        ("auth:\n  ingest:\n    password_env: ITSMD_TEST_SET\n", 2, "auth.ingest", "a password needs a username"),
        ("auth:\n  ingest:\n    username: 'a:b'\n    password_env: ITSMD_TEST_SET\n", 3, "auth.ingest.username", ""),
        ("auth:\n  api:\n    write_tokens: x\n", 3, "auth.api.write_tokens", ""),
        ("auth:\n  tokens: []\n", 2, "auth.tokens", "unknown key"),
    ],
)
def test_auth_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: tuple[str, int, str, str]) -> None:
    text, line, key, message = case
    monkeypatch.setenv("ITSMD_TEST_EMPTY", "  \n")
    monkeypatch.setenv("ITSMD_TEST_SET", PASSWORD)
    write(tmp_path / "empty", "\n")
    write(tmp_path / "t", INGEST_TOKEN)
    [(got_line, got_key, got_message)] = problems(write(tmp_path / "itsmd.yaml", text))
    assert (got_line, got_key) == (line, key)
    assert message in got_message
    for secret in SECRETS:
        assert secret not in got_message


def test_a_problem_elsewhere_does_not_show_loaded_secrets(full: Path) -> None:
    text = full.read_text(encoding="utf-8") + "listen: nowhere\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(full, text))
    for secret in SECRETS:
        assert secret not in str(caught.value)


def test_secret_matching_is_exact() -> None:
    secret = Secret("env", "X", b"abc")
    assert secret.matches(b"abc")
    assert not secret.matches(b"ab")
    assert not secret.matches(b"abcd")
    assert not secret.matches(b"")
    assert "abc" not in repr(secret)


# -- tls ---------------------------------------------------------------------------------------------------------


def test_tls_from_files_relative_to_the_config(tmp_path: Path) -> None:
    make_cert(write(tmp_path / "etc" / "tls" / ".keep", "").parent)
    path = write(tmp_path / "etc" / "itsmd.yaml", "tls:\n  cert_file: tls/cert.pem\n  key_file: tls/key.pem\n")
    tls = load_config(path).config.tls
    assert tls.enabled
    assert tls.cert_file == tmp_path / "etc" / "tls" / "cert.pem"
    assert isinstance(tls.server_context(), ssl.SSLContext)


def test_tls_problems(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    write(tmp_path / "garbage.pem", "not a certificate\n")
    cases = [
        (f"tls:\n  cert_file: {cert}\n", 1, "tls.key_file", "is needed with cert_file: set both"),
        (f"tls:\n  key_file: {key}\n", 1, "tls.cert_file", "is needed with key_file: set both"),
        (f"tls:\n  cert_file: missing.pem\n  key_file: {key}\n", 2, "tls.cert_file", "cannot read"),
        (f"tls:\n  cert_file: garbage.pem\n  key_file: {key}\n", 2, "tls.cert_file", "cannot use the certificate"),
        (f"tls:\n  cert_file: {key}\n  key_file: {cert}\n", 2, "tls.cert_file", "cannot use the certificate"),
    ]
    for text, line, key_name, message in cases:
        [(got_line, got_key, got_message)] = problems(write(tmp_path / "itsmd.yaml", text))
        assert (got_line, got_key) == (line, key_name), text
        assert message in got_message, text


# -- itsmd check and itsmd run -------------------------------------------------------------------------------------


def test_check_reports_a_missing_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ITSMD_TEST_NOT_SET", raising=False)
    path = write(tmp_path / "itsmd.yaml", "auth:\n  api:\n    read_tokens:\n      - token_env: ITSMD_TEST_NOT_SET\n")
    assert main(["check", str(path)]) == 1
    assert f"{path}:4: auth.api.read_tokens[0].token_env: " in capsys.readouterr().err


@pytest.mark.usefixtures("process_state_restored")
def test_run_refuses_non_loopback_without_ingest_auth_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # API tokens alone do not protect ingest
    monkeypatch.setenv("ITSMD_TEST_READ", READ_TOKEN)
    path = write(tmp_path / "itsmd.yaml", "auth:\n  api:\n    read_tokens:\n      - token_env: ITSMD_TEST_READ\n")
    assert main(["run", "--config", str(path), "--listen", "0.0.0.0:9797", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0:9797: auth.ingest is not configured" in err
    assert "--insecure-listen" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.usefixtures("process_state_restored")
@pytest.mark.parametrize("extra", [[], ["--insecure-listen"]])
def test_run_allows_non_loopback_with_ingest_auth_or_insecure_listen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, extra: list[str]
) -> None:
    monkeypatch.setenv("ITSMD_TEST_INGEST_TOKEN", INGEST_TOKEN)
    text = "{}\n" if extra else "auth:\n  ingest:\n    token_env: ITSMD_TEST_INGEST_TOKEN\n"
    path = write(tmp_path / "itsmd.yaml", text)
    blocker = write(tmp_path / "not-a-dir", "x")
    # Past the listen rule it opens the store first, which fails here: exit 1 (not 2) before anything listens.
    argv = ["run", "--config", str(path), "--listen", "0.0.0.0:0", "--data-dir", str(blocker / "data"), *extra]
    assert main(argv) == 1
    assert "cannot start" in caplog.text
    assert "the REST API needs no token" in caplog.text
    assert ("travel in clear text" in caplog.text) == (not extra)
    assert INGEST_TOKEN not in caplog.text


def test_several_ingest_credentials_each_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_TEST_INGEST_TOKEN", INGEST_TOKEN)
    write(tmp_path / "new.token", READ_TOKEN)
    write(tmp_path / "pw", PASSWORD)
    path = write(
        tmp_path / "itsmd.yaml",
        """\
auth:
  ingest:
    token_env: ITSMD_TEST_INGEST_TOKEN
    tokens:
      - {name: am-2026-12, token_file: new.token}
    users:
      - {name: am-basic, username: alertmanager, password_file: pw}
      - {name: am-basic-next, username: alertmanager, password_env: ITSMD_TEST_INGEST_TOKEN}
""",
    )
    ingest = load_config(path).config.auth.ingest
    assert ingest.enabled
    assert [name for name, _ in ingest.named_tokens()] == ["ingest-token", "am-2026-12"]
    assert [(name, user) for name, user, _ in ingest.named_users()] == [
        ("am-basic", "alertmanager"),
        ("am-basic-next", "alertmanager"),
    ]
    assert ingest.named_tokens()[1][1].matches(READ_TOKEN.encode())
    shown = repr(ingest) + str(ingest.model_dump())
    assert all(secret not in shown for secret in SECRETS)


@pytest.mark.parametrize(
    ("ingest", "key", "message"),
    [
        ("tokens: [{token_file: t}]", "auth.ingest.tokens[0].name", "is required"),
        ("tokens: [{name: a}]", "auth.ingest.tokens[0]", "set token_env or token_file"),
        ("tokens: [{name: 'a b', token_file: t}]", "auth.ingest.tokens[0].name", "should match pattern"),
        ("users: [{name: u, username: am}]", "auth.ingest.users[0]", "set password_env or password_file"),
        ("users: [{name: u, username: 'a:b', password_file: t}]", "auth.ingest.users[0].username", "pattern"),
        ("{token_file: t, tokens: [{name: ingest-token, token_file: t}]}", "auth.ingest", "named 'ingest-token'"),
        (
            "{tokens: [{name: x, token_file: t}], users: [{name: x, username: am, password_file: t}]}",
            "auth.ingest",
            "named 'x'",
        ),
    ],
)
def test_ingest_credential_problems(tmp_path: Path, ingest: str, key: str, message: str) -> None:
    write(tmp_path / "t", "a-secret-value")
    [(_, got_key, got_message)] = problems(write(tmp_path / "itsmd.yaml", f"auth:\n  ingest:\n    {ingest}\n"))
    assert got_key == key
    assert message in got_message
