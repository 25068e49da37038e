"""The web service's Litestar app: pages rendered from the other services' APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Litestar, get
from litestar.config.csrf import CSRFConfig
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from redis.asyncio import Redis

from services.web.clients import (
    CatalogueClient,
    IdentityClient,
    OffersClient,
    OfficeClient,
    VenueDeskClient,
)
from services.web.i18n import Translator
from services.web.pages import ROUTES
from services.web.pages.errors import EXCEPTION_HANDLERS
from services.web.pages.views import DEPENDENCIES, runtime_of
from services.web.runtime import PageMiddleware, WebRuntime
from services.web.store import LoginThrottle, Sessions, derived_key
from shared.config import ConfigurationError, Settings
from shared.errors import ServiceUnavailable
from shared.observability import RequestLog, RequestObservability, ServiceMetrics

HERE = Path(__file__).parent


class Health(msgspec.Struct):
    status: str


@get("/health/live", include_in_schema=False)
async def live() -> Health:
    return Health(status="ok")


@get("/health/ready", include_in_schema=False)
async def ready(state: State) -> Health:
    """Ready when Redis, where the sessions are, answers (the web has no database)."""
    try:
        await runtime_of(state).sessions.redis.ping()
    except Exception as exc:
        raise ServiceUnavailable("redis does not answer", code="not_ready") from exc
    return Health(status="ok")


def template_config(translator: Translator) -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
    )
    translator.install(environment)
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment))


def create_app(settings: Settings) -> Litestar:
    if settings.web_secret is None:
        raise ConfigurationError(
            "the web service needs COMMONROOM_WEB_SECRET (or a web-secret file under the var "
            "directory, which `commonroom up` makes)"
        )
    secret = settings.web_secret
    translator = Translator()
    secure = settings.service_url("web").startswith("https://")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        redis: Redis = Redis.from_url(settings.redis_url)
        identity = IdentityClient(settings)
        catalogue = CatalogueClient(settings)
        offers = OffersClient(settings)
        office = OfficeClient(settings)
        desk = VenueDeskClient(settings)
        app.state["web"] = WebRuntime(
            settings=settings,
            sessions=Sessions(redis, secret),
            throttle=LoginThrottle(redis),
            identity=identity,
            catalogue=catalogue,
            translator=translator,
            secure_cookies=secure,
            offers=offers,
            office=office,
            desk=desk,
        )
        try:
            yield
        finally:
            await identity.aclose()
            await catalogue.aclose()
            await offers.aclose()
            await office.aclose()
            await desk.aclose()
            await redis.aclose()

    app = Litestar(
        route_handlers=[
            live,
            ready,
            *ROUTES,
            create_static_files_router(
                path="/static", directories=[HERE / "static"], cache_control=None
            ),
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        template_config=template_config(translator),
        csrf_config=CSRFConfig(
            secret=derived_key(secret, b"web-csrf").hex(),
            cookie_name="csrftoken",
            cookie_secure=secure,
            cookie_httponly=True,
            cookie_samesite="lax",
        ),
        logging_config=None,
        openapi_config=None,
        request_max_body_size=settings.max_body_bytes,
    )

    def runtime_in(scope: Any) -> WebRuntime:
        return runtime_of(scope["app"].state)

    app.asgi_handler = RequestObservability(
        PageMiddleware(app.asgi_handler, runtime_in), ServiceMetrics(), RequestLog("web")
    )
    return app
