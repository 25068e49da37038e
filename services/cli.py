"""`commonroom`: serve, work, migrate, mint tokens, or bring the whole suite up at once."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import cast

from shared.auth import Role, issue_token
from shared.config import DEFAULT_PORTS, ConfigurationError, ServiceName, Settings

# The services this build has; `up` and `migrate` without a name act on all of them.
AVAILABLE: tuple[ServiceName, ...] = ("registry", "booking", "lecturers")


def _service_module(service: ServiceName, part: str) -> ModuleType:
    return importlib.import_module(f"services.{service}.{part}")


def service_package(service: ServiceName) -> Path:
    return Path(_service_module(service, "app").__file__ or "").parent


def migrate(settings: Settings, services: Sequence[ServiceName]) -> None:
    from shared.migrations import upgrade

    for service in services:
        upgrade(service_package(service), settings.database_url(service))


def serve(settings: Settings, service: ServiceName, host: str, port: int) -> None:
    import uvicorn

    from shared.observability import configure_logging

    configure_logging(service)
    app = _service_module(service, "app").create_app(settings)
    # log_config=None: uvicorn's loggers then propagate to the JSON handler instead of getting
    # handlers of their own; the app logs each request itself, so uvicorn's access log stays off.
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=None, access_log=False)


def work(settings: Settings, service: ServiceName) -> None:
    from shared.observability import configure_logging
    from shared.worker import run

    configure_logging(service)
    run(_service_module(service, "worker").create_worker_settings(settings))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="commonroom", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run one service's HTTP API")
    serve_cmd.add_argument("service", choices=AVAILABLE)
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int)

    worker_cmd = commands.add_parser("worker", help="run one service's queue worker")
    worker_cmd.add_argument("service", choices=AVAILABLE)

    migrate_cmd = commands.add_parser("migrate", help="bring databases to the latest schema")
    migrate_cmd.add_argument("service", nargs="?", choices=AVAILABLE)

    token_cmd = commands.add_parser("token", help="print a bearer token")
    token_cmd.add_argument("--role", required=True, choices=[role.value for role in Role])
    token_cmd.add_argument("--org", required=True)
    token_cmd.add_argument("--sub")
    token_cmd.add_argument("--lecturer-id")
    token_cmd.add_argument("--days", type=int, default=30, help="lifetime in days")

    up_cmd = commands.add_parser("up", help="run every service and worker in one go")
    up_cmd.add_argument("--host", default="127.0.0.1")
    up_cmd.add_argument(
        "--demo", action="store_true", help="load the demo city (鹭湖市) once the services are up"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigurationError as refused:
        print(f"commonroom: {refused}", file=sys.stderr)
        return 2
    if args.command == "serve":
        service = cast(ServiceName, args.service)
        serve(settings, service, args.host, args.port or DEFAULT_PORTS[service])
    elif args.command == "worker":
        work(settings, cast(ServiceName, args.service))
    elif args.command == "migrate":
        migrate(settings, [args.service] if args.service else AVAILABLE)
    elif args.command == "token":
        from datetime import timedelta

        role = Role(args.role)
        if role is Role.LECTURER and not args.lecturer_id:
            print("a lecturer token needs --lecturer-id", file=sys.stderr)
            return 2
        print(
            issue_token(
                settings.secret,
                role=role,
                org=args.org,
                sub=args.sub or f"{role.value}@{args.org}",
                lecturer_id=args.lecturer_id,
                ttl=timedelta(days=args.days),
            )
        )
    elif args.command == "up":
        from services.up import run_suite

        return run_suite(settings, AVAILABLE, host=args.host, demo=args.demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
