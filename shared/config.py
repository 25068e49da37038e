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

ServiceName = Literal["registry", "booking", "lecturers"]
SERVICES: tuple[ServiceName, ...] = ("registry", "booking", "lecturers")
DEFAULT_PORTS: dict[ServiceName, int] = {"registry": 8001, "booking": 8002, "lecturers": 8003}
# RFC 7518 3.2: an HS256 key has at least as many bits as the hash, 256.
SHORTEST_SECRET_BYTES = 32
# The value deploy/k8s/11-secret.yaml ships with, to be replaced before anything runs.
_PLACEHOLDER_SECRET = "CHANGE-ME"  # noqa: S105 (a value to refuse, not a password)


class ConfigurationError(ValueError):
    """The environment asks for something that must not run; the message says what to change."""


def _checked_secret(secret: str) -> str:
    if secret.startswith(_PLACEHOLDER_SECRET):
        raise ConfigurationError("COMMONROOM_SECRET is still the placeholder: set a random value")
    if len(secret.encode()) < SHORTEST_SECRET_BYTES:
        raise ConfigurationError(
            f"COMMONROOM_SECRET is too short to sign tokens safely: use at least "
            f"{SHORTEST_SECRET_BYTES} bytes, e.g. `openssl rand -base64 48`"
        )
    return secret


def _secret_from_var_dir(var_dir: Path) -> str:
    """A per-installation signing key for the embedded mode, made once and kept under `var/`.

    Every process of one installation (services, workers, `commonroom token`) reads the same file,
    so their tokens agree without anyone choosing a secret; production sets COMMONROOM_SECRET.
    """
    path = var_dir / "secret"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


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

    secret: str
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        var_dir = Path(env.get("COMMONROOM_VAR_DIR", "var"))
        secret = _checked_secret(env.get("COMMONROOM_SECRET") or _secret_from_var_dir(var_dir))
        return cls(
            secret=secret,
            redis_url=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            database_urls={
                name: env.get(
                    f"{name.upper()}_DATABASE_URL",
                    f"sqlite+aiosqlite:///{(var_dir / f'{name}.db').as_posix()}",
                )
                for name in SERVICES
            },
            service_urls={
                name: env.get(f"{name.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[name]}")
                for name in SERVICES
            },
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
        )

    def database_url(self, service: ServiceName) -> str:
        return self.database_urls[service]

    def service_url(self, service: ServiceName) -> str:
        return self.service_urls[service].rstrip("/")

    def with_database(self, service: ServiceName, url: str) -> Settings:
        return replace(self, database_urls={**self.database_urls, service: url})

    def with_service_url(self, service: ServiceName, url: str) -> Settings:
        return replace(self, service_urls={**self.service_urls, service: url})
