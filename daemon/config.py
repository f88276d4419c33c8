"""The daemon's configuration: one YAML file, validated where it is decoded.

Relative paths in the file are taken from the file's own folder, as Prometheus does for rule_files,
so `itsmd run --config /etc/itsmd/config.yaml` works from any working directory.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    IPvAnyNetwork,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.correlate.rules import CorrelationRules
from daemon.correlate.ruleset import RuleSet, check_rules
from daemon.credentials import EnvSecret, FileSecret, ReadableFile, Secret
from daemon.durations import Duration, PositiveDuration
from daemon.errors import ConfigError, ConfigProblem
from daemon.housekeeping.config import RetentionConfig
from daemon.notify.outbox.config import WebhookReceiver, unique_names
from daemon.notify.publish.config import PublishConfig
from daemon.runbook.config import RunbooksConfig
from daemon.scheduler.cron import cron_trigger
from daemon.yamlsource import Finding, load_yaml, raise_problems, validate_partial
from integrations.alertmanager.config import AlertmanagerConfig
from integrations.prometheus.config import PrometheusConfig

DEFAULT_LISTEN = "127.0.0.1:9797"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(_Strict):
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    """Larger request bodies are refused with 413 before they are read."""
    commit_timeout: PositiveDuration = 10.0
    """How long a request waits for its alerts to be committed before it answers 503 (the sender retries)."""
    max_alerts_per_request: int = Field(default=10_000, gt=0)
    max_labels_per_alert: int = Field(default=64, gt=0)
    max_label_value_bytes: int = Field(default=4096, gt=0)
    """Longest label value (UTF-8 bytes); label names are capped at 256 characters."""
    max_annotation_value_bytes: int = Field(default=65536, gt=0)
    """Longest annotation value (UTF-8 bytes): descriptions run longer than labels."""
    max_pending_changes: int = Field(default=100_000, gt=0)
    """Changed alerts waiting for a commit; past this (the store is stuck or slow) ingest answers 503 with
    Retry-After before applying anything, so memory stays bounded and the sender retries."""
    rate_limit: float = Field(default=0.0, ge=0)
    """Requests per second per client address on the ingest endpoints; 0 turns it off. Over it: 429 with
    Retry-After. Off by default: a limit set too low throttles your own Alertmanager."""
    rate_burst: int = Field(default=0, ge=0)
    """Requests a client may send at once above the rate; 0 means twice the rate."""


class AlertsConfig(_Strict):
    webhook_stale_after: PositiveDuration = 4 * 3600.0 + 15 * 60.0
    """Alertmanager hides endsAt and can lose a resolve (its deliveries failed while the alert resolved), so a
    webhook alert not re-sent for this long expires. Set it above your route's repeat_interval (default 4h)."""
    resolve_timeout: PositiveDuration = 300.0
    """A v2-API alert posted without endsAt is taken to end this long after it was last seen (as Alertmanager)."""
    resolved_retention: Duration = 3600.0
    """Resolved alerts stay in memory this long so that re-sent resolutions cost no disk write."""
    sweep_interval: PositiveDuration = 2.0
    """How often alerts are checked for expiry."""


class PoolConfig(_Strict):
    """Reader connections to PostgreSQL (the writer has one of its own besides)."""

    min: int = Field(default=1, ge=0)
    max: int = Field(default=4, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> PoolConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class StorageConfig(_Strict):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    """sqlite: the embedded file data_dir/itsmd.db (no server). postgres: a PostgreSQL 15+ database named by
    dsn_env or dsn_file (a libpq connection string or postgresql:// URI, password included)."""
    dsn_env: EnvSecret | None = None
    dsn_file: FileSecret | None = None
    pool: PoolConfig = PoolConfig()
    connect_timeout: PositiveDuration = 5.0
    """postgres: how long connecting (at start, and again after the server went away) may take."""
    synchronous: Literal["normal", "full"] = "normal"
    """sqlite: normal survives a killed process (kill -9); full also survives power loss, at about half the speed.
    postgres: the server's synchronous_commit decides."""
    flush_interval: PositiveDuration = 1.0
    """Last-seen times and counters are written at most this long after they change."""

    @field_validator("dsn_env", "dsn_file")
    @classmethod
    def _dsn_only_with_postgres(cls, value: Secret | None, info: ValidationInfo) -> Secret | None:
        if value is not None and info.data.get("backend", "sqlite") != "postgres":
            raise ValueError("only for backend: postgres (the SQLite file needs no connection string)")
        return value

    @model_validator(mode="after")
    def _one_dsn(self) -> StorageConfig:
        dsn = _one_source(self.dsn_env, self.dsn_file, "dsn")
        if self.backend == "postgres" and dsn is None:
            raise ValueError("backend postgres needs dsn_env or dsn_file (where its connection string is)")
        return self

    @property
    def dsn(self) -> Secret | None:
        return self.dsn_env or self.dsn_file


def _one_source(env: Secret | None, file: Secret | None, name: str) -> Secret | None:
    if env is not None and file is not None:
        raise ValueError(f"set {name}_env or {name}_file, not both")
    return env or file


class TokenSource(_Strict):
    """One API token: token_env or token_file, exactly one."""

    token_env: EnvSecret | None = None
    token_file: FileSecret | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TokenSource:
        if _one_source(self.token_env, self.token_file, "token") is None:
            raise ValueError("set token_env or token_file")
        return self

    @property
    def secret(self) -> Secret:
        secret = self.token_env or self.token_file
        if secret is None:  # the validator makes this impossible
            raise RuntimeError("a token source without a token")
        return secret


RoleName = Literal["viewer", "responder", "approver", "admin"]
"""API roles, lowest first; each allows what the ones before it allow (daemon/api/principals.py)."""
PRINCIPAL_NAME_PATTERN = r"^[A-Za-z0-9_.@:+-]{1,64}$"
RESERVED_PRINCIPALS = frozenset({"itsmd", "anonymous", "scheduler"})
"""The daemon's own actor, the open API's caller and the drill scheduler: no token or user may be one of them."""
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"


def _not_reserved(name: str) -> str:
    if name.lower() in RESERVED_PRINCIPALS:
        raise ValueError(f"{name!r} is reserved (the names {', '.join(sorted(RESERVED_PRINCIPALS))} are the daemon's)")
    return name


INGEST_TOKEN_NAME = "ingest-token"  # noqa: S105 (a name, not a secret)
"""The credential name of the single `token_env`/`token_file` of auth.ingest (older configs)."""
INGEST_USER_NAME = "ingest-user"
"""The credential name of the single `username` of auth.ingest (older configs)."""
_USERNAME = r"^[^:\x00-\x1f\x7f]+$"
"""Basic-auth user names: no colon or control characters (RFC 7617)."""


class IngestToken(TokenSource):
    """One of several ingest bearer tokens, all valid at once (to rotate one with no gap)."""

    name: str = Field(pattern=PRINCIPAL_NAME_PATTERN)
    """What logs and itsmd_auth_credential_uses_total call it: never the value."""


class IngestUser(_Strict):
    """One of several basic-auth credentials; two may share a username while its password is rotated."""

    name: str = Field(pattern=PRINCIPAL_NAME_PATTERN)
    """What logs and itsmd_auth_credential_uses_total call it: never the value."""
    username: str = Field(min_length=1, pattern=_USERNAME)
    password_env: EnvSecret | None = None
    password_file: FileSecret | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> IngestUser:
        if _one_source(self.password_env, self.password_file, "password") is None:
            raise ValueError("set password_env or password_file")
        return self

    @property
    def password(self) -> Secret:
        secret = self.password_env or self.password_file
        if secret is None:  # the validator makes this impossible
            raise RuntimeError("a user without a password")
        return secret


class IngestAuth(_Strict):
    """Credentials the ingest endpoints accept: bearer tokens, HTTP basic auth, or both; every one listed is
    valid at once. The single `token_env`/`token_file` is the credential `ingest-token`, the single `username`
    `ingest-user`. None set: ingest is open (then `itsmd run` listens on loopback only, unless --insecure-listen).
    """

    token_env: EnvSecret | None = None
    token_file: FileSecret | None = None
    username: str | None = Field(default=None, min_length=1, pattern=_USERNAME)
    """Basic-auth user name; no colon or control characters (RFC 7617)."""
    password_env: EnvSecret | None = None
    password_file: FileSecret | None = None
    tokens: tuple[IngestToken, ...] = ()
    users: tuple[IngestUser, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> IngestAuth:
        _one_source(self.token_env, self.token_file, "token")
        password = _one_source(self.password_env, self.password_file, "password")
        if self.username is not None and password is None:
            raise ValueError("username needs password_env or password_file")
        if self.username is None and password is not None:
            raise ValueError("a password needs a username")
        seen: set[str] = set()
        for name in [name for name, _ in self.named_tokens()] + [name for name, _, _ in self.named_users()]:
            if name in seen:
                raise ValueError(f"two ingest credentials are named {name!r}; each has its own name")
            seen.add(name)
        return self

    @property
    def token(self) -> Secret | None:
        return self.token_env or self.token_file

    @property
    def password(self) -> Secret | None:
        return self.password_env or self.password_file

    def named_tokens(self) -> list[tuple[str, Secret]]:
        """(name, secret) of every ingest bearer token, the single older one as `ingest-token`."""
        out = [(INGEST_TOKEN_NAME, self.token)] if self.token is not None else []
        return out + [(t.name, t.secret) for t in self.tokens]

    def named_users(self) -> list[tuple[str, str, Secret]]:
        """(name, username, password) of every basic-auth credential, the single older one as `ingest-user`."""
        out = []
        if self.username is not None and self.password is not None:
            out.append((INGEST_USER_NAME, self.username, self.password))
        return out + [(u.name, u.username, u.password) for u in self.users]

    @property
    def enabled(self) -> bool:
        return bool(self.named_tokens() or self.named_users())


class NamedToken(TokenSource):
    """An API token of a named principal with a role."""

    name: str = Field(pattern=PRINCIPAL_NAME_PATTERN)
    """Recorded as the actor of everything done with this token."""
    role: RoleName

    @field_validator("name")
    @classmethod
    def _free_name(cls, value: str) -> str:
        return _not_reserved(value)


class ApiAuth(_Strict):
    """Bearer tokens of the REST API. `tokens` are named, each with a role. The older `read_tokens` and
    `write_tokens` still work: the n-th read token is the principal `read-token-<n>` with role viewer, the n-th
    write token `write-token-<n>` with role admin. No token at all (and no proxy): the API is open; once any is
    set, every /api/v1 request needs a principal with the route's role."""

    read_tokens: tuple[TokenSource, ...] = ()
    write_tokens: tuple[TokenSource, ...] = ()
    tokens: tuple[NamedToken, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> ApiAuth:
        seen: set[str] = set()
        for name, _, _ in self.principals():
            if name in seen:
                raise ValueError(f"two API tokens are named {name!r}; each principal has one name")
            seen.add(name)
        return self

    def principals(self) -> list[tuple[str, RoleName, Secret]]:
        """(name, role, secret) of every API token, the legacy ones mapped as documented above."""
        out: list[tuple[str, RoleName, Secret]] = []
        out += [(f"read-token-{n}", "viewer", t.secret) for n, t in enumerate(self.read_tokens, 1)]
        out += [(f"write-token-{n}", "admin", t.secret) for n, t in enumerate(self.write_tokens, 1)]
        out += [(t.name, t.role, t.secret) for t in self.tokens]
        return out

    @property
    def enabled(self) -> bool:
        return bool(self.read_tokens or self.write_tokens or self.tokens)


class ProxyAuth(_Strict):
    """A trusted reverse proxy (oauth2-proxy or any SSO proxy) that names the user in request headers. The
    headers count only on connections whose TCP peer address is in `trusted_cidrs` (X-Forwarded-For is never
    looked at); from any other peer a request carrying one of them is refused."""

    trusted_cidrs: tuple[IPvAnyNetwork, ...] = Field(min_length=1)
    user_header: str = Field(default="X-Forwarded-User", pattern=_HEADER_NAME)
    email_header: str = Field(default="X-Forwarded-Email", pattern=_HEADER_NAME)
    groups_header: str = Field(default="X-Forwarded-Groups", pattern=_HEADER_NAME)
    """Comma-separated group names, as oauth2-proxy sends them."""
    groups: dict[str, RoleName] = Field(default_factory=dict)
    """Group name -> role; a user gets the highest role among its groups."""
    default_role: RoleName | None = None
    """The role of a user in no mapped group; unset: such a user is refused (403)."""

    @model_validator(mode="after")
    def _distinct_headers(self) -> ProxyAuth:
        names = [h.lower() for h in (self.user_header, self.email_header, self.groups_header)]
        if len(set(names)) != len(names):
            raise ValueError("user_header, email_header and groups_header must be three different headers")
        if "authorization" in names:
            raise ValueError("the proxy's headers cannot be Authorization (that carries API tokens)")
        return self


class AuthConfig(_Strict):
    ingest: IngestAuth = IngestAuth()
    api: ApiAuth = ApiAuth()
    proxy: ProxyAuth | None = None
    """Users named by a trusted reverse proxy, for the API (ingest auth is separate)."""

    @property
    def api_enabled(self) -> bool:
        return self.api.enabled or self.proxy is not None


class TlsConfig(_Strict):
    """Serve HTTPS with this certificate (chain, PEM) and private key (PEM); both or neither."""

    cert_file: ReadableFile | None = None
    key_file: ReadableFile | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if self.cert_file is not None and self.key_file is None:
            raise_problems(
                [Finding(("key_file",), "is needed with cert_file: set both cert_file and key_file, or neither")]
            )
        if self.key_file is not None and self.cert_file is None:
            raise_problems(
                [Finding(("cert_file",), "is needed with key_file: set both cert_file and key_file, or neither")]
            )
        if self.enabled:
            try:
                self.server_context()
            except (ssl.SSLError, OSError) as exc:
                message = f"cannot use the certificate and key: {exc}"
                raise_problems([Finding(("cert_file",), message, uses=(("key_file",),))])
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None

    def server_context(self) -> ssl.SSLContext | None:
        """A TLS 1.2+ server context, or None without TLS. Raises ssl.SSLError or OSError."""
        if self.cert_file is None or self.key_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


class AvailabilityConfig(_Strict):
    windows: tuple[PositiveDuration, ...] = Field(default=(86400.0, 7 * 86400.0, 30 * 86400.0), min_length=1)
    """Trailing windows of itsmd_service_availability_ratio and ..._error_budget_remaining_ratio (label
    `window`, written like 1d, 7d, 30d). The longest also bounds how much outage history is kept as intervals."""

    @field_validator("windows")
    @classmethod
    def _distinct(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        found: list[Finding] = []
        for i, window in enumerate(value):
            if window < 60 or window % 60:
                found.append(Finding((i,), "windows are whole minutes, at least 1m"))
            elif window in value[:i]:
                found.append(Finding((i,), "is listed twice: each window once"))
        raise_problems(found)
        return value


REPORT_FORMATS = ("html", "md", "json")


class ReportsConfig(_Strict):
    """The monthly service report written to a folder; off while `dir` is unset."""

    dir: Path | None = None
    schedule: str = "0 6 1 * *"
    """Cron (5 fields) in `time_zone`; each run writes the previous calendar month."""
    time_zone: str = "UTC"
    formats: tuple[Literal["html", "md", "json"], ...] = Field(default=("html",), min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> ReportsConfig:
        found: list[Finding] = []
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"unknown time zone {self.time_zone!r}: use an IANA name such as Europe/Berlin"
            found.append(Finding(("time_zone",), message))
        try:
            cron_trigger(self.schedule, "UTC")
        except (ValueError, KeyError) as exc:
            found.append(Finding(("schedule",), f"{self.schedule!r} is not a valid cron schedule: {exc}"))
        raise_problems(found)
        return self


class ConsoleConfig(_Strict):
    """The web console at `/`."""

    idle_timeout: PositiveDuration = 3600.0
    """A console session ends after this long without a request (then the login page again)."""


class AuditConfig(_Strict):
    key_file: Path | None = None
    """The key of the audit chain (made at first start, mode 0600; the anchor audit.head goes beside it).
    Default: audit.key in data_dir. Keep it where the database's other writers cannot reach it."""


class ReplicaConfig(_Strict):
    """This process as one of several replicas on one PostgreSQL (storage.backend: postgres); unused with
    SQLite. One replica leads (holds the lease), the others follow (README: "Replicas")."""

    name: str | None = Field(default=None, pattern=PRINCIPAL_NAME_PATTERN)
    """How logs, the lease and itsmd_replica_info name this replica; default: host name and listen port."""
    advertise_url: HttpUrl | None = None
    """Where the other replicas reach this one (followers send the leader's requests there); default: the
    listen address. Required when listening on all addresses (0.0.0.0, ::)."""
    lease: PositiveDuration = 6.0
    """How long leadership lasts without a renew: a leader that dies is replaced after at most this long. Also
    how long the server lets the leader's store writer sit idle inside a transaction (docs/storage.md)."""
    renew: PositiveDuration = 2.0
    """How often the leader renews and the followers try to take over; less than half of lease."""

    @model_validator(mode="after")
    def _renew_within_lease(self) -> ReplicaConfig:
        if self.renew >= self.lease / 2:
            message = "must be less than half of lease, so that one failed renew does not end leadership"
            raise_problems([Finding(("renew",), message, uses=(("lease",),))])
        return self


class NotifyConfig(_Strict):
    """Where itsmd tells people: its states as alerts in Alertmanager (daemon/notify/publish/)."""

    external_url: HttpUrl | None = None
    """The console's address as people reach it (like Alertmanager's --web.external-url): links in
    notifications are this plus /incidents/<id> or /runs/<id>. Unset: the links are paths only."""
    alertmanagers: tuple[AlertmanagerConfig, ...] = ()
    """Each gets every published state (POST /api/v2/alerts); same fields as `alertmanager:`."""
    publish: PublishConfig = PublishConfig()

    webhooks: tuple[WebhookReceiver, ...] = ()
    """Receivers of signed webhooks (README: "Signed webhooks")."""

    @field_validator("webhooks")
    @classmethod
    def _unique_webhooks(cls, value: tuple[WebhookReceiver, ...]) -> tuple[WebhookReceiver, ...]:
        return unique_names(value)


class Config(_Strict):
    listen: str = DEFAULT_LISTEN
    data_dir: Path = Path("data")
    rules_dir: Path | None = None
    shutdown_timeout: PositiveDuration = 15.0
    ingest: IngestConfig = IngestConfig()
    alerts: AlertsConfig = AlertsConfig()
    storage: StorageConfig = StorageConfig()
    auth: AuthConfig = AuthConfig()
    tls: TlsConfig = TlsConfig()
    runbooks: RunbooksConfig = RunbooksConfig()
    availability: AvailabilityConfig = AvailabilityConfig()
    reports: ReportsConfig = ReportsConfig()
    console: ConsoleConfig = ConsoleConfig()
    audit: AuditConfig = AuditConfig()
    retention: RetentionConfig = RetentionConfig()
    notify: NotifyConfig = NotifyConfig()
    replica: ReplicaConfig = ReplicaConfig()
    prometheus: PrometheusConfig | None = None
    """Where runbook promql and wait_until steps query; without it such runbooks are refused at start."""
    alertmanager: AlertmanagerConfig | None = None
    """Where runbook silence steps create silences; without it such runbooks are refused at start."""

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _replicas_share_keys(self) -> Config:
        if self.storage.backend != "postgres":
            return self
        for section, key, what in (
            ("audit", self.audit.key_file, "the audit chain's"),
            ("runbooks", self.runbooks.digest_key_file, "the step output digests'"),
        ):
            if key is None:
                field = "key_file" if section == "audit" else "digest_key_file"
                raise_problems(
                    [
                        Finding(
                            (section, field),
                            f"is needed with storage.backend postgres: every replica writes with {what} key, so "
                            "all of them must read the same one (a file each replica mounts, same content), not "
                            "one each in their data_dir",
                            uses=(("storage",),),
                        )
                    ]
                )
        return self

    @model_validator(mode="after")
    def _replicas_reachable(self) -> Config:
        problem = unreachable_replica(self)
        if problem is not None:
            raise_problems([Finding(("replica", "advertise_url"), problem, uses=(("listen",), ("storage",)))])
        return self


def unreachable_replica(config: Config) -> str | None:
    """Why the other replicas could not reach this one at the URL it would advertise, or None."""
    if config.storage.backend != "postgres" or config.replica.advertise_url is not None:
        return None
    if is_wildcard(parse_listen(config.listen)[0]):
        return (
            f"is needed with storage.backend postgres when listening on {config.listen}: the other replicas "
            "send the leader's requests there, and a wildcard address names no machine"
        )
    return None


def parse_listen(value: str) -> tuple[str, int]:
    """Split HOST:PORT (IPv6 as [::1]:PORT); raises ValueError with the expected form."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT, like 127.0.0.1:9797")
    return host.strip("[]"), int(port)


def is_wildcard(host: str) -> bool:
    """All addresses of the machine (0.0.0.0, ::, or no host): no address another machine can use."""
    return host in ("", "0.0.0.0", "::")  # noqa: S104 (compared, not bound)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    config: Config
    rules: RuleSet

    @property
    def correlation(self) -> CorrelationRules:
        return self.rules.correlation

    @property
    def db_path(self) -> Path:
        return self.config.data_dir / "itsmd.db"

    @property
    def audit_key_file(self) -> Path:
        return self.config.audit.key_file or self.config.data_dir / "audit.key"

    @property
    def digest_key_file(self) -> Path:
        return self.config.runbooks.digest_key_file or self.config.data_dir / "digest.key"


def load_config(path: Path, *, listen: str | None = None, data_dir: Path | None = None) -> LoadedConfig:
    """Read, validate and resolve a config file and the rule files it points to; ConfigError lists the problems
    of the config and of its rule files together."""
    config, problems = check_config(path)
    if config is None:
        raise ConfigError(problems)
    updates: dict[str, object] = {}
    if listen is not None:
        parse_listen(listen)
        updates["listen"] = listen
    if data_dir is not None:
        updates["data_dir"] = data_dir.resolve()
    config = config.model_copy(update=updates)
    rules = RuleSet()
    if config.rules_dir is not None:
        found, rule_problems = check_rules(config.rules_dir)
        problems.extend(rule_problems)
        rules = found or rules
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(path=path, config=config, rules=rules)


def check_config(path: Path) -> tuple[Config | None, list[ConfigProblem]]:
    """The config file's own problems, and the config with its paths resolved from the file's folder. With
    problems, the config holds what was valid of it (None if nothing was): enough to find the rules and
    runbooks folders it names, and check them too."""
    doc = load_yaml(path)
    config, problems = validate_partial(doc, Config)
    if config is None:
        return None, problems
    base = path.resolve().parent
    updates: dict[str, object] = {"data_dir": base / config.data_dir}
    if config.rules_dir is not None:
        updates["rules_dir"] = base / config.rules_dir
    runbooks: dict[str, object] = {"dir": base / config.runbooks.dir}
    if config.runbooks.digest_key_file is not None:
        runbooks["digest_key_file"] = base / config.runbooks.digest_key_file
    updates["runbooks"] = config.runbooks.model_copy(update=runbooks)
    if config.reports.dir is not None:
        updates["reports"] = config.reports.model_copy(update={"dir": base / config.reports.dir})
    if config.audit.key_file is not None:
        updates["audit"] = config.audit.model_copy(update={"key_file": base / config.audit.key_file})
    return config.model_copy(update=updates), problems


class _AuthSection(BaseModel):
    """The config file read for its auth section only: what a reload may change without a restart."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    auth: AuthConfig = AuthConfig()


def load_auth(path: Path) -> AuthConfig:
    """The auth section of a config file with every secret read again (env and files); ConfigError
    (file:line: key: message) if any of it is wrong. The rest of the file is not looked at."""
    section, problems = validate_partial(load_yaml(path), _AuthSection)
    if problems or section is None:
        raise ConfigError(problems)
    return section.auth
