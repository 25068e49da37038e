"""The clients file: one `client_id:secret` a line, each service's secret for its own token.

Identity reads it to check client-credentials grants; `commonroom up` writes it once, with a
secret per service, and hands each service its own secret alone.
"""

from __future__ import annotations

from pathlib import Path

from shared.config import ALL_SERVICE_NAMES, ConfigurationError, checked_secret, random_secret


def read_clients_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"COMMONROOM_CLIENTS_FILE {path} cannot be read: {exc}") from exc
    clients: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        client_id, sep, secret = line.strip().partition(":")
        if not sep or not client_id:
            raise ConfigurationError(
                f"COMMONROOM_CLIENTS_FILE {path} line {number}: expected client_id:secret"
            )
        clients[client_id] = checked_secret(f"the secret of client {client_id}", secret)
    return clients


def clients_file_text(secrets: dict[str, str]) -> str:
    return "".join(f"{client}:{secret}\n" for client, secret in secrets.items())


def new_client_secrets() -> dict[str, str]:
    """A secret for every service of the suite."""
    return {service: random_secret() for service in ALL_SERVICE_NAMES}
