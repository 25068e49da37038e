"""Identity's Litestar app: organisations, users, sign-in, and the only signing keys."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Litestar

from services.identity.api import ROUTES
from services.identity.api.deps import DEPENDENCIES, Identity
from services.identity.clients import OidcProvider
from services.identity.domain.passwords import Passwords
from services.identity.store import tables
from services.identity.store.keys import Keyring, read_key_file
from shared.clients_file import read_clients_file
from shared.config import Settings
from shared.web import ServiceState, create_service_app


def create_app(settings: Settings) -> Litestar:
    first_key = read_key_file(settings.signing_key_file)
    clients = read_clients_file(settings.clients_file)

    async def start(held: ServiceState) -> None:
        held.extras["identity"] = Identity(
            settings=settings,
            database=held.database,
            redis=held.redis,
            keyring=Keyring(first_key, held.database),
            passwords=Passwords(),
            clients=clients,
        )
        held.extras["oidc"] = (
            OidcProvider(settings.oidc, timeout=settings.http_timeout_seconds)
            if settings.oidc is not None
            else None
        )

    async def stop(held: ServiceState) -> None:
        held.extras["identity"].passwords.close()
        provider = held.extras.get("oidc")
        if provider is not None:
            await provider.aclose()

    async def own_keys(held: ServiceState) -> bytes:
        identity: Identity = held.extras["identity"]
        return await identity.keyring.jwks(datetime.now(UTC))

    return create_service_app(
        name="identity",
        settings=settings,
        tables=tables,
        route_handlers=ROUTES,
        dependencies=DEPENDENCIES,
        on_start=start,
        on_stop=stop,
        key_source=own_keys,
    )
