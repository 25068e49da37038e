"""Settings read from the environment, with defaults for the embedded (single machine) mode.

The same variable names serve compose, Kubernetes, the tests and `commonroom up`. Settings are read
once, at start-up, and passed in: no module reads the environment at import time.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

ServiceName = Literal["registry", "booking", "lecturers", "identity", "notify", "web"]
# The services this build has, in the order `commonroom up` starts them: identity first, since
# every other service verifies tokens against its keys.
SERVICES: tuple[ServiceName, ...] = ("identity", "registry", "booking", "lecturers", "notify")
# Every name the suite gives a service (its client id at identity), built or still to come.
ALL_SERVICE_NAMES: tuple[ServiceName, ...] = (
    "registry",
    "booking",
    "lecturers",
    "identity",
    "notify",
    "web",
)
DEFAULT_PORTS: dict[ServiceName, int] = {
    "web": 8000,
    "registry": 8001,
    "booking": 8002,
    "lecturers": 8003,
    "identity": 8004,
    "notify": 8005,
}
# A secret shared by nobody else (a client secret, the link secret) has at least 256 bits.
SHORTEST_SECRET_BYTES = 32
# The value deploy/k8s/11-secret.yaml ships with, to be replaced before anything runs.
_PLACEHOLDER_SECRET = "CHANGE-ME"  # noqa: S105 (a value to refuse, not a password)


class ConfigurationError(ValueError):
    """The environment asks for something that must not run; the message says what to change."""


def checked_secret(name: str, secret: str) -> str:
    """`secret` if it is fit to use: not the shipped placeholder, and long enough."""
    if secret.startswith(_PLACEHOLDER_SECRET):
        raise ConfigurationError(f"{name} is still the placeholder: set a random value")
    if len(secret.encode()) < SHORTEST_SECRET_BYTES:
        raise ConfigurationError(
            f"{name} is too short to be safe: use at least {SHORTEST_SECRET_BYTES} bytes, "
            "e.g. `openssl rand -base64 48`"
        )
    return secret


def _secret(env: Mapping[str, str], name: str, file: Path) -> str | None:
    """A secret from the variable `name`, else from `file` (where `commonroom up` keeps the
    embedded mode's), else None: only the service that needs it refuses to start without it."""
    value = env.get(name)
    if value is None and file.exists():
        value = file.read_text().strip()
    return None if value is None else checked_secret(name, value)


def new_secret_file(path: Path, content: str) -> None:
    """Write a secret readable by its owner alone, unless the file is already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as out:
        out.write(content)


def random_secret() -> str:
    return secrets.token_urlsafe(48)


@dataclass(frozen=True)
class OidcSettings:
    """The city's OpenID Connect provider, as identity's relying party sees it."""

    issuer: str
    client_id: str
    client_secret: str


def _number(
    env: Mapping[str, str], name: str, default: float, *, positive: bool, whole: bool = False
) -> float:
    """A number from the environment, more than 0 (`positive`) or at least 0, and `whole` where
    asked; a variable that is no such number stops the start with its name, not a traceback."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {raw!r}") from None
    if not (value > 0 if positive else value >= 0):  # NaN fails both
        wanted = "more than 0" if positive else "at least 0"
        raise ConfigurationError(f"{name} must be {wanted}, not {raw!r}")
    if whole and not value.is_integer():
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a service or worker needs to know about its surroundings."""

    redis_url: str
    database_urls: dict[ServiceName, str]
    service_urls: dict[ServiceName, str]
    var_dir: Path = Path("var")
    offer_ttl_hours: float = 48.0
    max_body_bytes: int = 1_000_000
    http_timeout_seconds: float = 5.0
    # Connections each process keeps to its database (and as many again at a peak); with
    # replicas, their sum must stay under the server's max_connections.
    db_pool_size: int = 10
    # Fair use: bookings one token may create a minute, and hours of live bookings one
    # organisation may hold at a venue in a week; 0 switches either off.
    booking_rate_per_minute: int = 120
    fair_use_hours_per_week: float = 40.0
    # Identity: the first signing key (Ed25519, PKCS#8 PEM) and every client's secret; read by
    # identity alone (and by the operator's `commonroom token`), mounted into no other service.
    signing_key_file: Path = Path("var/signing-key.pem")
    clients_file: Path = Path("var/clients")
    # This process's own client secret, for its client-credentials grant at identity.
    client_secret: str | None = None
    # The lecturer service's key for one-click links: no token key, no other service's.
    link_secret: str | None = None
    # `iss` of every token; identity's URL unless set.
    issuer: str = ""
    # Where browsers reach identity's OpenID Connect paths (identity's URL unless set).
    identity_public_url: str = ""
    oidc: OidcSettings | None = None
    # The web service's own key for its session records in Redis (no other process has it).
    web_secret: str | None = None
    # How long the web service uses a user's access token before it refreshes it; 0: until a
    # minute before the token expires. Tests set a few seconds to make refreshes happen.
    web_token_seconds: float = 0.0
    # Verifiers keep identity's key set this long before asking again; identity publishes a new
    # key for longer than this before it signs with it.
    jwks_max_age_seconds: float = 300.0
    # How often a verifier re-reads the revoked logins and users that identity publishes.
    revocation_poll_seconds: float = 5.0
    # Notify: where mail goes (`smtp://`, `smtp+starttls://`, `smtps://`, with `user:pass@` where
    # the server asks a login); None writes each message as an .eml file under `var/mail/`.
    smtp_url: str | None = None
    mail_from: str = "Commonroom <no-reply@commonroom.example.org>"
    # Notify: how long before a confirmed booking or an accepted lecture its reminder goes.
    reminder_hours: float = 24.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        var_dir = Path(env.get("COMMONROOM_VAR_DIR", "var"))
        service_urls = {
            name: env.get(f"{name.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[name]}")
            for name in ALL_SERVICE_NAMES
        }
        identity_url = service_urls["identity"].rstrip("/")
        oidc_values = [
            env.get(f"COMMONROOM_OIDC_{part}") for part in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET")
        ]
        if any(oidc_values) and not all(oidc_values):
            raise ConfigurationError(
                "OpenID Connect needs all three of COMMONROOM_OIDC_ISSUER, "
                "COMMONROOM_OIDC_CLIENT_ID and COMMONROOM_OIDC_CLIENT_SECRET"
            )
        return cls(
            redis_url=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            database_urls={
                name: env.get(
                    f"{name.upper()}_DATABASE_URL",
                    f"sqlite+aiosqlite:///{(var_dir / f'{name}.db').as_posix()}",
                )
                for name in SERVICES
            },
            service_urls=service_urls,
            var_dir=var_dir,
            offer_ttl_hours=_number(env, "COMMONROOM_OFFER_TTL_HOURS", 48.0, positive=True),
            max_body_bytes=int(
                _number(env, "COMMONROOM_MAX_BODY_BYTES", 1_000_000, positive=True, whole=True)
            ),
            http_timeout_seconds=_number(env, "COMMONROOM_HTTP_TIMEOUT", 5.0, positive=True),
            db_pool_size=int(
                _number(env, "COMMONROOM_DB_POOL_SIZE", 10, positive=True, whole=True)
            ),
            booking_rate_per_minute=int(
                _number(env, "COMMONROOM_BOOKING_RATE_PER_MINUTE", 120, positive=False, whole=True)
            ),
            fair_use_hours_per_week=_number(
                env, "COMMONROOM_FAIR_USE_HOURS_PER_WEEK", 40.0, positive=False
            ),
            signing_key_file=Path(
                env.get("COMMONROOM_SIGNING_KEY_FILE") or var_dir / "signing-key.pem"
            ),
            clients_file=Path(env.get("COMMONROOM_CLIENTS_FILE") or var_dir / "clients"),
            client_secret=env.get("COMMONROOM_CLIENT_SECRET") or None,
            link_secret=_secret(env, "COMMONROOM_LINK_SECRET", var_dir / "link-secret"),
            web_secret=_secret(env, "COMMONROOM_WEB_SECRET", var_dir / "web-secret"),
            web_token_seconds=_number(env, "COMMONROOM_WEB_TOKEN_SECONDS", 0.0, positive=False),
            issuer=env.get("COMMONROOM_ISSUER") or identity_url,
            identity_public_url=(env.get("IDENTITY_PUBLIC_URL") or identity_url).rstrip("/"),
            oidc=(
                OidcSettings(*oidc_values)  # type: ignore[arg-type]
                if all(oidc_values)
                else None
            ),
            jwks_max_age_seconds=_number(env, "COMMONROOM_JWKS_MAX_AGE", 300.0, positive=True),
            revocation_poll_seconds=_number(
                env, "COMMONROOM_REVOCATION_POLL_SECONDS", 5.0, positive=True
            ),
            smtp_url=env.get("COMMONROOM_SMTP_URL") or None,
            mail_from=env.get("COMMONROOM_MAIL_FROM") or cls.mail_from,
            reminder_hours=_number(env, "COMMONROOM_REMINDER_HOURS", 24.0, positive=True),
        )

    def database_url(self, service: ServiceName) -> str:
        return self.database_urls[service]

    def service_url(self, service: ServiceName) -> str:
        return self.service_urls[service].rstrip("/")

    def with_database(self, service: ServiceName, url: str) -> Settings:
        return replace(self, database_urls={**self.database_urls, service: url})

    def with_service_url(self, service: ServiceName, url: str) -> Settings:
        return replace(self, service_urls={**self.service_urls, service: url})
