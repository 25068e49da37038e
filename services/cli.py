"""`commonroom`: serve, work, migrate, mint tokens, or bring the whole suite up at once."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NoReturn, cast

from shared.auth import PERSON_ROLES, Role
from shared.config import DEFAULT_PORTS, SERVICES, ConfigurationError, ServiceName, Settings

# The services this build has; `up` and `migrate` without a name act on all of them.
AVAILABLE: tuple[ServiceName, ...] = SERVICES
# The services `serve` runs: those, and the web pages, which have no database and no worker.
SERVABLE: tuple[ServiceName, ...] = (*AVAILABLE, "web")


def _service_module(service: ServiceName, part: str) -> ModuleType:
    return importlib.import_module(f"services.{service}.{part}")


def service_package(service: ServiceName) -> Path:
    return Path(_service_module(service, "app").__file__ or "").parent


def migrate(settings: Settings, services: Sequence[ServiceName]) -> None:
    from shared.migrations import upgrade

    for service in services:
        upgrade(service_package(service), settings.database_url(service))


def _refuse(refused: ConfigurationError) -> NoReturn:
    """Stop as `main` does where the settings are refused: the message, no traceback."""
    print(f"commonroom: {refused}", file=sys.stderr)
    raise SystemExit(2)


def serve(settings: Settings, service: ServiceName, host: str, port: int) -> None:
    import uvicorn

    from shared.observability import configure_logging

    configure_logging(service)
    try:
        app = _service_module(service, "app").create_app(settings)
    except ConfigurationError as refused:
        _refuse(refused)
    # log_config=None: uvicorn's loggers then propagate to the JSON handler instead of getting
    # handlers of their own; the app logs each request itself, so uvicorn's access log stays off.
    # uvloop and httptools by name, not "auto": a build without them fails here rather than
    # quietly serving on the pure-Python stack at half the speed (bench/README.md § Server).
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="info",
        log_config=None,
        access_log=False,
    )


def work(settings: Settings, service: ServiceName) -> None:
    from shared.observability import configure_logging
    from shared.worker import run

    configure_logging(service)
    try:
        worker = _service_module(service, "worker").create_worker_settings(settings)
    except ConfigurationError as refused:
        _refuse(refused)
    run(worker)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="commonroom", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run one service's HTTP API")
    serve_cmd.add_argument("service", choices=SERVABLE)
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int)

    worker_cmd = commands.add_parser("worker", help="run one service's queue worker")
    worker_cmd.add_argument("service", choices=AVAILABLE)

    migrate_cmd = commands.add_parser("migrate", help="bring databases to the latest schema")
    migrate_cmd.add_argument("service", nargs="?", choices=AVAILABLE)

    token_cmd = commands.add_parser(
        "token",
        help="print a bearer token signed with identity's active key (needs its key file and "
        "database), or revoke one by its sid",
    )
    token_cmd.add_argument("--role", choices=[role.value for role in PERSON_ROLES])
    token_cmd.add_argument("--org")
    token_cmd.add_argument("--sub")
    token_cmd.add_argument("--lecturer-id")
    token_cmd.add_argument(
        "--hours", type=float, default=1.0, help="lifetime in hours (default 1, at most 720)"
    )
    token_cmd.add_argument("--revoke", metavar="SID", help="revoke the tokens of this sid")

    users_cmd = commands.add_parser("users", help="manage accounts at identity")
    users_sub = users_cmd.add_subparsers(dest="users_command", required=True)
    add_cmd = users_sub.add_parser(
        "add", help="create an account (password read from standard input) with a membership"
    )
    add_cmd.add_argument("--email", required=True)
    add_cmd.add_argument("--org", required=True)
    add_cmd.add_argument("--role", required=True, choices=[role.value for role in PERSON_ROLES])
    add_cmd.add_argument("--name", default="")
    add_cmd.add_argument("--org-name", help="the organisation's name, where it is new")
    add_cmd.add_argument("--lecturer-id")

    keys_cmd = commands.add_parser("keys", help="identity's signing keys")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser(
        "rotate", help="add a signing key: published now, signing once every verifier knows it"
    )

    up_cmd = commands.add_parser("up", help="run every service and worker in one go")
    up_cmd.add_argument("--host", default="127.0.0.1")
    up_cmd.add_argument(
        "--demo", action="store_true", help="load the demo city (鹭湖市) once the services are up"
    )
    return parser


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import timedelta

    from services.identity.cli import membership_of, operator_token, revoke_token
    from services.identity.domain.keys import LONGEST_TOKEN

    if args.revoke:
        if not revoke_token(settings, args.revoke):
            print(f"no login {args.revoke}, or revoked already", file=sys.stderr)
        return 0
    if not args.role or not args.org:
        print("a token needs --role and --org (or --revoke SID)", file=sys.stderr)
        return 2
    role = Role(args.role)
    if role is Role.LECTURER and not args.lecturer_id:
        print("a lecturer token needs --lecturer-id", file=sys.stderr)
        return 2
    ttl = timedelta(hours=args.hours)
    if not timedelta(0) < ttl <= LONGEST_TOKEN:
        print("--hours must be more than 0 and at most 720", file=sys.stderr)
        return 2
    made = operator_token(
        settings,
        membership_of(role.value, args.org, args.lecturer_id),
        args.sub or f"{role.value}@{args.org}",
        ttl=ttl,
    )
    print(made.token)
    print(f"sid {made.sid}, expires {made.expires_at.isoformat()}", file=sys.stderr)
    return 0


def _add_user(settings: Settings, args: argparse.Namespace) -> int:
    from services.identity.cli import add_user, membership_of
    from shared.errors import ServiceError

    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else None
    if password is None:
        import getpass

        password = getpass.getpass("password: ")
    try:
        user_id = asyncio.run(
            add_user(
                settings,
                email=args.email,
                password=password,
                membership=membership_of(args.role, args.org, args.lecturer_id),
                name=args.name,
                org_name=args.org_name,
            )
        )
    except ServiceError as refused:
        print(f"commonroom: {refused.detail}", file=sys.stderr)
        return 2
    print(user_id)
    return 0


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
        return _token(settings, args)
    elif args.command == "users":
        return _add_user(settings, args)
    elif args.command == "keys":
        from services.identity.cli import rotate_keys

        key = rotate_keys(settings)
        print(f"added key {key.kid}: published now, signing from {key.sign_from.isoformat()}")
    elif args.command == "up":
        from services.up import run_suite

        return run_suite(settings, AVAILABLE, host=args.host, demo=args.demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
