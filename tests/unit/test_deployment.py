"""The deployment files name only what the app has.

compose.yaml, deploy/k8s/ and deploy/Dockerfile are read, never run, here: every `commonroom`
command line must be one the CLI accepts, every port the service's default port, every variable one
`Settings.from_env` reads, every probe a health route, every image tag pinned. And each secret
reaches only whom it belongs to: identity's key and clients file identity alone, a service's client
secret and database URL that service alone (and the migration its URL), the link secret the
lecturers; browsers reach nothing of identity but its OpenID Connect paths.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from services import cli
from services.identity.domain.keys import KeyFileError, private_key_from_pem
from shared import config
from shared.config import (
    ALL_SERVICE_NAMES,
    DEFAULT_PORTS,
    SERVICES,
    ConfigurationError,
    Settings,
    checked_secret,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "deploy" / "k8s"
POSTGRES_INIT = ROOT / "deploy" / "postgres-init"

# Services whose URL is their public address, not the in-cluster one: links to them leave the
# suite (lecturers' feeds and the one-click links inside them are opened by calendar apps).
PUBLIC = ("lecturers",)
# The variables every container needs for the suite to work as one: without IDENTITY_URL a service
# cannot check a token or get its own; without REDIS_URL it falls back to localhost.
REQUIRED = ("REDIS_URL", "IDENTITY_URL")
HEALTH_READY = "/health/ready"
HEALTH_LIVE = "/health/live"
# The one service that signs tokens, and the files that let it: no other container may have them.
IDENTITY = "identity"
KEY_FILES = ("COMMONROOM_SIGNING_KEY_FILE", "COMMONROOM_CLIENTS_FILE")
CLIENT_SECRET = "COMMONROOM_CLIENT_SECRET"
LINK_SECRET = "COMMONROOM_LINK_SECRET"
# The pages: no database, no worker; the key of its session records is its alone.
WEB = "web"
WEB_SECRET = "COMMONROOM_WEB_SECRET"
# The only paths of identity a browser opens (the OpenID Connect login and callback).
OIDC_PREFIX = "/v1/oidc/"
OIDC = ("COMMONROOM_OIDC_ISSUER", "COMMONROOM_OIDC_CLIENT_ID", "COMMONROOM_OIDC_CLIENT_SECRET")
# A value each secret check accepts (long enough, not the placeholder).
FIT_SECRET = "a-secret-" + "x" * 32


# --- what the app really has -------------------------------------------------------------------


class _RecordingEnv(dict[str, str]):
    """An environment that remembers every name asked of it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def _names_the_app_reads() -> frozenset[str]:
    env = _RecordingEnv({LINK_SECRET: FIT_SECRET})  # so no link-secret file under var/ is read
    Settings.from_env(env)
    return frozenset(env.asked)


def database_var(service: str) -> str:
    return f"{service.upper()}_DATABASE_URL"


def url_var(service: str) -> str:
    return f"{service.upper()}_URL"


READS = _names_the_app_reads()
PER_SERVICE = frozenset(
    {database_var(service) for service in SERVICES} | {url_var(s) for s in ALL_SERVICE_NAMES}
)
FIXED = READS - PER_SERVICE


def _version() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version: str = project["version"]
    return version


IMAGE = f"commonroom:{_version()}"


def parse_command(argv: list[str], where: str) -> argparse.Namespace:
    """`argv` as the `commonroom` CLI parses it; a refusal fails the test, naming `where`."""
    assert all(isinstance(arg, str) for arg in argv), f"{where}: {argv!r} is not a list of strings"
    try:
        return cli._parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: the CLI refuses `commonroom {' '.join(argv)}`")


def assert_pinned(image: str, where: str) -> None:
    if "@sha256:" in image:
        return
    name, _, tag = image.rpartition(":")
    assert name, f"{where}: image {image!r} has no tag"
    assert "/" not in tag, f"{where}: image {image!r} has no tag"
    assert tag != "latest", f"{where}: image {image!r} is not pinned"


def served(args: argparse.Namespace) -> str | None:
    return args.service if args.command == "serve" else None


def service_of(args: argparse.Namespace) -> str | None:
    """The service whose API or worker this is; None for the migration, which serves all."""
    return args.service if args.command in {"serve", "worker"} else None


def databases_needed(args: argparse.Namespace) -> set[str]:
    """A container reads its own service's database; the migration reads every one; the web
    service has none."""
    service = service_of(args)
    if service is None:
        return {database_var(s) for s in cli.AVAILABLE}
    return {database_var(service)} if service in cli.AVAILABLE else set()


def clients_placeholder_lines(text: str) -> dict[str, str]:
    """`client_id: secret` of a clients file, placeholders kept (read_clients_file refuses them)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return dict(line.split(":", 1) for line in lines if not line.startswith("#"))


def ignored_by(path: Path) -> set[str]:
    return {
        line.strip().strip("/")
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


# --- compose.yaml ---------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<word>[^}]*))?\}")


def resolve(value: str) -> str:
    """A compose value as `docker compose` makes it with no variables set (`:?`: a stand-in)."""

    def one(match: re.Match[str]) -> str:
        op = match["op"] or ""
        return match["word"] if op.endswith("-") else "set-by-the-operator"

    return _INTERPOLATION.sub(one, value)


def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


COMPOSE_FILE = load_compose()
COMPOSE_SERVICES: dict[str, dict[str, Any]] = COMPOSE_FILE["services"]
COMPOSE_APP = {
    name: spec
    for name, spec in COMPOSE_SERVICES.items()
    if str(spec.get("image", "")).startswith("commonroom:")
}


@functools.cache
def compose_args() -> dict[str, argparse.Namespace]:
    """Each Commonroom container of compose.yaml: its command, as the CLI parses it."""
    return {
        name: parse_command(spec.get("command", []), f"compose service {name}")
        for name, spec in COMPOSE_APP.items()
    }


def compose_environment(spec: Mapping[str, Any]) -> dict[str, str]:
    environment = spec.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(name): str(value) for name, value in environment.items()}


def compose_secret_targets(spec: Mapping[str, Any]) -> dict[str, str]:
    """The compose secrets a container gets: name -> the path it is mounted at."""
    targets = {}
    for entry in spec.get("secrets", []):
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        targets[source] = target if target.startswith("/") else f"/run/secrets/{target}"
    return targets


def compose_service_serving(service: str) -> str:
    names = [name for name, args in compose_args().items() if served(args) == service]
    assert len(names) == 1, f"compose: {service} is served by {names}, not by exactly one service"
    return names[0]


def compose_with_image(prefix: str) -> str:
    names = [name for name, spec in COMPOSE_SERVICES.items() if spec["image"].startswith(prefix)]
    assert len(names) == 1, f"compose: {names} run {prefix}*, expected one"
    return names[0]


def created_databases() -> set[str]:
    scripts = sorted(POSTGRES_INIT.glob("*.sql"))
    assert scripts, f"no SQL script under {POSTGRES_INIT}"
    found: set[str] = set()
    for script in scripts:
        found |= set(re.findall(r"(?im)^\s*CREATE\s+DATABASE\s+(\w+)\s*;", script.read_text()))
    return found


# --- deploy/k8s -----------------------------------------------------------------------------------


def load_k8s() -> list[dict[str, Any]]:
    files = sorted(K8S.glob("*.yaml"))
    assert files, f"no manifests under {K8S}"
    documents = []
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                assert "kind" in document, f"{path.name}: a document without a kind"
                documents.append(document)
    return documents


K8S_DOCS = load_k8s()


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in K8S_DOCS if doc["kind"] == kind]


def public_route(host: str) -> str:
    """The Service an Ingress sends `host`'s requests to (on its http port)."""
    backends = [
        path["backend"]["service"]
        for ingress in of_kind("Ingress")
        for rule in ingress["spec"]["rules"]
        if rule.get("host") == host
        for path in rule["http"]["paths"]
        if path["path"] == "/"
    ]
    assert len(backends) == 1, f"k8s: {host} is routed by {len(backends)} Ingress rules, not one"
    assert backends[0]["port"] == {"name": "http"}
    return str(backends[0]["name"])


def the(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"k8s: expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def app_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, workload, container) for every container running the Commonroom image."""
    for workload in [*of_kind("Deployment"), *of_kind("Job")]:
        for container in pod_spec(workload)["containers"]:
            if container["image"].startswith("commonroom:"):
                where = f"{workload['kind']} {workload['metadata']['name']}/{container['name']}"
                yield where, workload, container


def container_argv(container: Mapping[str, Any], where: str) -> list[str]:
    """What the CLI receives: `command` replaces the image's ENTRYPOINT (`commonroom`)."""
    command = list(container.get("command", []))
    args = list(container.get("args", []))
    if command:
        assert command[0] in {"commonroom", "/opt/commonroom/bin/commonroom"}, where
        return [*command[1:], *args]
    return args


@functools.cache
def k8s_args() -> dict[str, argparse.Namespace]:
    """Each Commonroom container of deploy/k8s: its command line, as the CLI parses it."""
    return {
        where: parse_command(container_argv(container, where), where)
        for where, _, container in app_containers()
    }


def k8s_environment(container: Mapping[str, Any], where: str) -> set[str]:
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        assert "prefix" not in source, f"{where}: an envFrom prefix renames the variables"
        if "configMapRef" in source:
            names |= set(the("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            secret = the("Secret", source["secretRef"]["name"])
            names |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    return names


def secret_key_refs(container: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Each variable a container takes from a Secret by `secretKeyRef`: (Secret, key)."""
    refs = {}
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            refs[item["name"]] = (ref["name"], ref["key"])
    return refs


def mounted_secret_files(
    workload: Mapping[str, Any], container: Mapping[str, Any]
) -> dict[str, tuple[str, str]]:
    """Each file a container sees of a mounted Secret: its path -> (Secret, key)."""
    volumes = {volume["name"]: volume for volume in pod_spec(workload).get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert "projected" not in volume, "a projected volume: teach this test to read it"
        if "secret" not in volume:
            continue
        name = volume["secret"]["secretName"]
        items = volume["secret"].get("items")
        if items is None:
            secret = the("Secret", name)
            items = [
                {"key": key, "path": key}
                for key in [*secret.get("stringData", {}), *secret.get("data", {})]
            ]
        base = mount["mountPath"].rstrip("/")
        if "subPath" in mount:
            (item,) = [item for item in items if item["path"] == mount["subPath"]]
            files[base] = (name, item["key"])
        else:
            for item in items:
                files[f"{base}/{item['path']}"] = (name, item["key"])
    return files


def reachable_secret_keys(
    workload: Mapping[str, Any], container: Mapping[str, Any]
) -> set[tuple[str, str]]:
    """Every (Secret, key) a container can read: whole Secrets by envFrom, single keys by
    secretKeyRef, and mounted files."""
    reached = set(secret_key_refs(container).values())
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            secret = the("Secret", source["secretRef"]["name"])
            keys = [*secret.get("stringData", {}), *secret.get("data", {})]
            reached |= {(source["secretRef"]["name"], key) for key in keys}
    reached |= set(mounted_secret_files(workload, container).values())
    return reached


def secret_value(ref: tuple[str, str]) -> str:
    value: str = the("Secret", ref[0])["stringData"][ref[1]]
    return value


def resolve_port(container: Mapping[str, Any], port: int | str) -> int:
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared["containerPort"]):
            return int(declared["containerPort"])
    pytest.fail(f"port {port!r} is not one the container declares")


def k8s_api(service: str) -> tuple[dict[str, Any], dict[str, Any]]:
    found = [
        (workload, container)
        for where, workload, container in app_containers()
        if served(k8s_args()[where]) == service
    ]
    assert len(found) == 1, f"k8s: {service} is served by {len(found)} containers, expected one"
    return found[0]


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def service_url_target(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return (parts.hostname or "").split(".")[0], parts.port


# --- the app's own lists --------------------------------------------------------------------------


def test_the_suites_services_are_all_built() -> None:
    assert set(cli.AVAILABLE) == set(SERVICES)
    assert IDENTITY in SERVICES
    assert set(DEFAULT_PORTS) == set(ALL_SERVICE_NAMES)
    assert set(SERVICES) <= set(ALL_SERVICE_NAMES)


def test_the_names_the_app_reads_are_the_documented_ones_and_each_changes_the_settings() -> None:
    assert PER_SERVICE <= READS
    assert {*REQUIRED, *KEY_FILES, CLIENT_SECRET, LINK_SECRET, *OIDC} <= READS
    assert "COMMONROOM_SECRET" not in READS, "the shared HS256 secret is gone"
    source = inspect.getsource(config)
    for name in FIXED - set(OIDC):  # the OIDC names are spelled `COMMONROOM_OIDC_{part}`
        assert f'"{name}"' in source, f"{name} is not spelled out in shared/config.py"
    base = {LINK_SECRET: FIT_SECRET}
    for name in READS:
        # OpenID Connect is all three variables or none; a secret must be long enough.
        changes = dict.fromkeys(OIDC, "7") if name in OIDC else {name: "7" * 40}
        changed = Settings.from_env({**base, **changes})
        assert changed != Settings.from_env(base), f"setting {name} changes nothing"


def test_no_deployment_file_names_the_shared_secret_that_is_gone() -> None:
    for path in [COMPOSE, DOCKERFILE, *K8S.glob("*.yaml")]:
        assert "COMMONROOM_SECRET" not in path.read_text(), f"{path.name} names COMMONROOM_SECRET"


# --- Dockerfile -----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_dockerfile_builds_a_pinned_non_root_image_of_the_app_lock_only() -> None:
    instructions = dockerfile_instructions()
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert bases
    for base in bases:
        assert base.startswith("python:3.11"), base
        assert "slim" in base, base
        assert_pinned(base, "Dockerfile")
    final_stage = instructions[
        max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM") :
    ]
    users = [rest for keyword, rest in final_stage if keyword == "USER"]
    assert users, "the final stage runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a numeric USER, so that runAsNonRoot can check it"
    assert int(uid) != 0
    assert ("ENTRYPOINT", '["commonroom"]') in instructions

    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert any(
        "--require-hashes" in run and "-r requirements/app.txt" in run
        for run in runs
        if "pip install" in run
    ) or any("uv pip sync" in run and "requirements/app.txt" in run for run in runs)
    assert any("pip install" in run and "--no-deps" in run and run.endswith(" .") for run in runs)
    assert "dev.txt" not in DOCKERFILE.read_text()
    assert "dev.in" not in DOCKERFILE.read_text()


def test_the_dockerfile_copies_what_exists_and_the_context_leaves_out_local_state() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"} <= ignored
    copies = [
        rest.split()
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY" and "--from=" not in rest
    ]
    assert copies
    for *sources, _destination in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert source.split("/")[0] not in ignored, f"COPY {source}: .dockerignore drops it"
    # pyproject.toml names README.md as the readme: the build needs it.
    assert any("README.md" in sources for *sources, _ in copies)


def dockerfile_uid() -> int:
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    return int(users[-1].split(":")[0])


def dockerfile_gid() -> int:
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    uid, _, gid = users[-1].partition(":")
    return int(gid or uid)


# --- compose.yaml ---------------------------------------------------------------------------------


def test_compose_runs_an_api_and_a_worker_for_each_built_service_and_one_migration() -> None:
    commands = sorted(args.command for args in compose_args().values())
    assert commands.count("migrate") == 1
    for service in cli.AVAILABLE:
        compose_service_serving(service)
        workers = [
            n for n, a in compose_args().items() if a.command == "worker" and a.service == service
        ]
        assert len(workers) == 1, f"compose: {service} has {len(workers)} workers"
    compose_service_serving(WEB)
    for args in compose_args().values():
        assert args.command in {"serve", "worker", "migrate"}
        if args.command == "serve":
            assert args.service in cli.SERVABLE
        if args.command == "worker":
            assert args.service in cli.AVAILABLE
    migrate = next(a for a in compose_args().values() if a.command == "migrate")
    assert migrate.service is None, "one migration for every service, not one"


def test_compose_apis_listen_on_their_ports_and_report_ready() -> None:
    for service in cli.SERVABLE:
        name = compose_service_serving(service)
        args, spec = compose_args()[name], COMPOSE_APP[name]
        port = DEFAULT_PORTS[service]
        assert args.port == port
        assert args.host == "0.0.0.0", f"{name} must listen beyond its container"  # noqa: S104
        published = [str(mapping).rsplit(":", 1)[-1] for mapping in spec.get("ports", [])]
        assert published == [str(port)], f"{name} publishes {published}"
        probe = " ".join(spec["healthcheck"]["test"])
        targets = re.findall(r"https?://(?:127\.0\.0\.1|localhost):(\d+)(/[\w/]+)", probe)
        assert targets == [(str(port), HEALTH_READY)], f"{name} checks {targets}"


def test_compose_starts_apps_after_a_successful_migration_on_healthy_servers() -> None:
    migrate = next(n for n, a in compose_args().items() if a.command == "migrate")
    assert COMPOSE_APP[migrate].get("restart", "no") == "no", "a one-shot must not restart"
    postgres = compose_with_image("postgres:")
    redis = compose_with_image("redis:")
    assert COMPOSE_APP[migrate]["depends_on"][postgres] == {"condition": "service_healthy"}
    for name, args in compose_args().items():
        if args.command == "migrate":
            continue
        depends = COMPOSE_APP[name]["depends_on"]
        assert depends[migrate] == {"condition": "service_completed_successfully"}, name
        assert depends[postgres] == {"condition": "service_healthy"}, name
        assert depends[redis] == {"condition": "service_healthy"}, name
        for other in depends:
            assert other in COMPOSE_SERVICES, f"{name} depends on unknown {other}"
            if depends[other] == {"condition": "service_healthy"}:
                assert "healthcheck" in COMPOSE_SERVICES[other], f"{other} has no healthcheck"


def test_compose_sets_only_variables_the_app_reads_and_all_it_needs() -> None:
    for name, spec in COMPOSE_APP.items():
        environment = compose_environment(spec)
        unknown = set(environment) - READS
        assert not unknown, f"compose service {name} sets {unknown}, which the app never reads"
        args = compose_args()[name]
        needed = {*REQUIRED, *databases_needed(args), url_var("registry")}
        assert needed <= set(environment), f"{name} lacks {needed - set(environment)}"
        if served(args) == IDENTITY:
            assert set(KEY_FILES) <= set(environment), f"{name} lacks identity's files"


def test_compose_gives_each_container_its_own_database_alone() -> None:
    for name, spec in COMPOSE_APP.items():
        databases = {var for var in compose_environment(spec) if var.endswith("_DATABASE_URL")}
        wanted = databases_needed(compose_args()[name])
        assert databases == wanted, f"{name} gets {databases}, not {wanted}"


def test_compose_mounts_identitys_key_and_clients_file_into_identity_alone() -> None:
    declared: dict[str, dict[str, Any]] = COMPOSE_FILE.get("secrets", {})
    ignored = ignored_by(ROOT / ".gitignore") & ignored_by(DOCKERIGNORE)
    assert declared, "compose declares no secrets"
    for secret in declared.values():  # files the operator makes, kept out of git and the image
        assert Path(secret["file"]).parts[0] in ignored, f"{secret['file']} is not ignored"
    identity_api = compose_service_serving(IDENTITY)
    for name, spec in COMPOSE_APP.items():
        environment = compose_environment(spec)
        targets = compose_secret_targets(spec)
        if name == identity_api:
            paths = [environment[var] for var in KEY_FILES]
            assert sorted(paths) == sorted(targets.values()), f"{name}: {paths} vs {targets}"
            assert set(targets) <= set(declared)
        else:
            assert not targets, f"{name} gets the secrets {sorted(targets)}"
            assert not set(KEY_FILES) & set(environment), f"{name} names identity's files"


def test_compose_gives_each_service_its_own_client_secret_and_no_other() -> None:
    required = re.compile(r"\$\{(?P<var>\w+):\?[^}]+\}")
    services = "|".join(name.upper() for name in ALL_SERVICE_NAMES)
    client_var = re.compile(rf"\$\{{?((?:{services})_CLIENT_SECRET)\b")
    variables: dict[str, str] = {}
    for name, spec in COMPOSE_APP.items():
        environment = compose_environment(spec)
        service = service_of(compose_args()[name])
        mentioned = {var for value in environment.values() for var in client_var.findall(value)}
        if service is None or service == IDENTITY:
            assert CLIENT_SECRET not in environment, f"{name} has a client secret"
            assert not mentioned, f"{name} is given {mentioned}"
            continue
        # Required, never empty: a missing secret must stop `compose up`, not a service later.
        match = required.fullmatch(environment[CLIENT_SECRET])
        assert match, f"{name}: {CLIENT_SECRET} must be ${{VAR:?message}}"
        assert match["var"] == f"{service.upper()}_CLIENT_SECRET", name
        assert mentioned == {match["var"]}, f"{name} is given {mentioned}"
        variables.setdefault(service, match["var"])
        assert variables[service] == match["var"], f"{service}'s containers differ"
    assert set(variables) == set(cli.SERVABLE) - {IDENTITY}


def test_compose_gives_the_link_secret_to_the_lecturers_alone() -> None:
    for name, spec in COMPOSE_APP.items():
        environment = compose_environment(spec)
        mentions = [value for value in environment.values() if LINK_SECRET in value]
        if service_of(compose_args()[name]) == "lecturers":
            assert re.fullmatch(r"\$\{COMMONROOM_LINK_SECRET:\?[^}]+\}", environment[LINK_SECRET])
            assert len(mentions) == 1, name
        else:
            assert LINK_SECRET not in environment, f"{name} has the link secret"
            assert not mentions, f"{name} is given the link secret"


def test_compose_publishes_identity_on_this_machines_loopback_only() -> None:
    """No proxy in compose routes by path, so identity's API stays off the network."""
    spec = COMPOSE_APP[compose_service_serving(IDENTITY)]
    port = DEFAULT_PORTS[IDENTITY]
    assert [str(mapping) for mapping in spec["ports"]] == [f"127.0.0.1:{port}:{port}"]
    public = urlsplit(resolve(compose_environment(spec).get("IDENTITY_PUBLIC_URL", "")))
    assert (public.hostname, public.port) in {("localhost", port), ("127.0.0.1", port)}


def test_compose_urls_point_at_the_containers_that_serve_them() -> None:
    databases = created_databases()
    assert set(SERVICES) <= databases, "one database per service"
    postgres = compose_with_image("postgres:")
    redis = compose_with_image("redis:")
    for name, spec in COMPOSE_APP.items():
        environment = {key: resolve(value) for key, value in compose_environment(spec).items()}
        for service in SERVICES:
            if database_var(service) in environment:
                url = make_url(environment[database_var(service)])
                assert url.drivername == "postgresql+asyncpg", name
                assert url.host == postgres
                assert url.database == service
            if url_var(service) in environment:
                host, port = service_url_target(environment[url_var(service)])
                assert port == DEFAULT_PORTS[service]
                if service in PUBLIC:  # reached from this machine, on the published port
                    serving = COMPOSE_SERVICES[compose_service_serving(service)]
                    assert host == "localhost"
                    assert f"{port}:{port}" in serving["ports"]
                else:
                    assert host == compose_service_serving(service)
        redis_url = urlsplit(environment["REDIS_URL"])
        assert (redis_url.scheme, redis_url.hostname, redis_url.port) == ("redis", redis, 6379)


def test_compose_runs_pinned_images_with_health_checks_and_named_volumes() -> None:
    for name, spec in COMPOSE_SERVICES.items():
        assert_pinned(spec["image"], f"compose service {name}")
    for spec in COMPOSE_APP.values():
        assert spec["image"] == IMAGE
        assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / spec["build"]["context"] / spec["build"]["dockerfile"]).is_file()
    postgres = COMPOSE_SERVICES[compose_with_image("postgres:")]
    redis = COMPOSE_SERVICES[compose_with_image("redis:")]
    assert re.match(r"postgres:16\b", postgres["image"])
    assert re.match(r"redis:7\b", redis["image"])
    named = set(COMPOSE_FILE["volumes"])
    for server in (postgres, redis):
        assert "healthcheck" in server
        volumes = [volume.split(":")[0] for volume in server["volumes"]]
        assert any(volume in named for volume in volumes)
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in postgres["volumes"]}
    assert mounts["./deploy/postgres-init"] == "/docker-entrypoint-initdb.d"
    assert (ROOT / "deploy/postgres-init").is_dir()


# --- deploy/k8s -----------------------------------------------------------------------------------


def test_k8s_keeps_everything_in_its_namespace() -> None:
    (namespace,) = of_kind("Namespace")
    for document in K8S_DOCS:
        if document is not namespace:
            where = f"{document['kind']} {document['metadata']['name']}"
            assert document["metadata"].get("namespace") == namespace["metadata"]["name"], where


def test_k8s_runs_an_api_and_a_worker_for_each_built_service_and_a_migration_job() -> None:
    jobs = [where for where, args in k8s_args().items() if args.command == "migrate"]
    assert len(jobs) == 1
    assert jobs[0].startswith("Job ")
    assert k8s_args()[jobs[0]].service is None
    for service in cli.AVAILABLE:
        k8s_api(service)
        workers = [
            where
            for where, args in k8s_args().items()
            if args.command == "worker" and args.service == service
        ]
        assert len(workers) == 1, f"k8s: {service} has {workers}"
        assert workers[0].startswith("Deployment ")
    k8s_api(WEB)
    for where, args in k8s_args().items():
        assert args.command in {"serve", "worker", "migrate"}, where
        if args.command != "migrate":
            assert args.service in (cli.SERVABLE if args.command == "serve" else cli.AVAILABLE)
            assert where.startswith("Deployment "), where


def test_k8s_apis_listen_on_their_ports_and_are_probed_on_the_health_routes() -> None:
    for service in cli.SERVABLE:
        _, container = k8s_api(service)
        args = parse_command(container_argv(container, service), service)
        port = DEFAULT_PORTS[service]
        assert args.port == port
        assert args.host == "0.0.0.0", f"{service} must listen beyond its pod"  # noqa: S104
        assert [p["containerPort"] for p in container["ports"]] == [port]
        for probe, path in (("readinessProbe", HEALTH_READY), ("livenessProbe", HEALTH_LIVE)):
            check = container[probe]["httpGet"]
            assert check["path"] == path, f"{service} {probe}"
            assert resolve_port(container, check["port"]) == port, f"{service} {probe}"


def test_k8s_services_route_to_the_api_pods_only_on_the_service_port() -> None:
    for service in cli.SERVABLE:
        api, container = k8s_api(service)
        fronts = [
            front
            for front in of_kind("Service")
            if selects(front["spec"]["selector"], api["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(fronts) == 1, f"{service}: {len(fronts)} Services select its API pods"
        (front,) = fronts
        for workload in of_kind("Deployment") + of_kind("Job"):
            if workload is not api:
                labels = workload["spec"]["template"]["metadata"]["labels"]
                assert not selects(front["spec"]["selector"], labels), (
                    f"Service {front['metadata']['name']} also sends traffic to "
                    f"{workload['metadata']['name']}"
                )
        (port,) = front["spec"]["ports"]
        assert port["port"] == DEFAULT_PORTS[service]
        assert resolve_port(container, port.get("targetPort", port["port"])) == port["port"]


def test_k8s_deployments_select_their_own_pods() -> None:
    for deployment in of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(deployment["spec"]["selector"]["matchLabels"], labels)


def test_k8s_sets_only_variables_the_app_reads_and_all_it_needs() -> None:
    for where, _, container in app_containers():
        names = k8s_environment(container, where)
        assert not names - READS, f"{where} sets {names - READS}, which the app never reads"
        args = k8s_args()[where]
        needed = {*REQUIRED, *databases_needed(args)}
        if args.service == "booking":
            needed.add(url_var("registry"))
        if served(args) == IDENTITY:
            needed |= set(KEY_FILES)
        assert needed <= names, f"{where} lacks {needed - names}"


def test_k8s_database_urls_reach_their_own_service_and_the_migration_only() -> None:
    (migration,) = [where for where, args in k8s_args().items() if service_of(args) is None]
    job = next(container for where, _, container in app_containers() if where == migration)
    urls = secret_key_refs(job)
    for where, workload, container in app_containers():
        wanted = databases_needed(k8s_args()[where])
        names = {var for var in k8s_environment(container, where) if var.endswith("_DATABASE_URL")}
        assert names == wanted, f"{where} gets {names}, not {wanted}"
        reached = reachable_secret_keys(workload, container)
        for service in cli.AVAILABLE:
            if database_var(service) not in wanted:
                assert urls[database_var(service)] not in reached, f"{where} reads {service}'s"


def test_k8s_mounts_identitys_key_and_clients_file_into_identitys_api_alone() -> None:
    api, container = k8s_api(IDENTITY)
    values = {item["name"]: item.get("value") for item in container.get("env", [])}
    files = mounted_secret_files(api, container)
    key_refs = {files[values[var]] for var in KEY_FILES}  # a KeyError: not a mounted file
    assert len(key_refs) == len(KEY_FILES)
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    # Kubernetes makes a Secret's files root's: the image's user reads them as their group
    # (fsGroup) or as anyone.
    fs_group = pod_spec(api)["securityContext"].get("fsGroup")
    for volume in pod_spec(api)["volumes"]:
        if volume.get("secret", {}).get("secretName") in {secret for secret, _ in key_refs}:
            assert mounts[volume["name"]].get("readOnly") is True
            mode = volume["secret"].get("defaultMode", 0o644)
            readable = mode & 0o004 or (mode & 0o040 and fs_group == dockerfile_gid())
            assert readable, f"uid {dockerfile_uid()} cannot read identity's key file"
    for where, workload, other in app_containers():
        if other is container:
            continue
        reached = reachable_secret_keys(workload, other) & key_refs
        assert not reached, f"{where} can read {sorted(reached)}"
        assert not set(KEY_FILES) & k8s_environment(other, where), f"{where} names the files"


def test_k8s_gives_each_service_its_own_client_secret_and_no_other() -> None:
    own: dict[str, tuple[str, str]] = {}
    for where, _, container in app_containers():
        service = service_of(k8s_args()[where])
        refs = secret_key_refs(container)
        if service is None or service == IDENTITY:
            assert CLIENT_SECRET not in k8s_environment(container, where), where
            continue
        assert CLIENT_SECRET in refs, f"{where}: {CLIENT_SECRET} must come by secretKeyRef"
        assert own.setdefault(service, refs[CLIENT_SECRET]) == refs[CLIENT_SECRET], where
    assert set(own) == set(cli.SERVABLE) - {IDENTITY}
    assert len(set(own.values())) == len(own), "two services share a client secret"
    for where, workload, container in app_containers():
        service = service_of(k8s_args()[where])
        reached = reachable_secret_keys(workload, container) & set(own.values())
        expected = {own[service]} if service in own else set()
        assert reached == expected, f"{where} can read the client secrets {sorted(reached)}"
    # The clients file's placeholder has a line per service, matching that service's placeholder.
    api, container = k8s_api(IDENTITY)
    values = {item["name"]: item.get("value") for item in container.get("env", [])}
    clients_file = mounted_secret_files(api, container)[values["COMMONROOM_CLIENTS_FILE"]]
    lines = clients_placeholder_lines(secret_value(clients_file))
    assert lines == {service: secret_value(ref) for service, ref in own.items()}


def test_k8s_gives_the_link_secret_to_the_lecturers_alone() -> None:
    refs = {
        secret_key_refs(container).get(LINK_SECRET)
        for where, _, container in app_containers()
        if service_of(k8s_args()[where]) == "lecturers"
    }
    assert len(refs) == 1
    (link,) = refs
    assert link is not None, f"the lecturers take {LINK_SECRET} by secretKeyRef"
    for where, workload, container in app_containers():
        if service_of(k8s_args()[where]) != "lecturers":
            assert link not in reachable_secret_keys(workload, container), where
            assert LINK_SECRET not in k8s_environment(container, where), where


def test_k8s_exposes_only_the_oidc_paths_of_identity_to_browsers() -> None:
    api, _ = k8s_api(IDENTITY)
    labels = api["spec"]["template"]["metadata"]["labels"]
    fronts = {
        front["metadata"]["name"]
        for front in of_kind("Service")
        if selects(front["spec"]["selector"], labels)
    }
    for ingress in of_kind("Ingress"):
        default = ingress["spec"].get("defaultBackend", {}).get("service", {})
        assert default.get("name") not in fronts, "identity as an Ingress's default backend"
    routes = [
        (rule.get("host"), path)
        for ingress in of_kind("Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
        if path["backend"]["service"]["name"] in fronts
    ]
    assert len(routes) == 1, f"identity is routed by {len(routes)} Ingress paths, not one"
    ((host, path),) = routes
    assert (path["path"], path["pathType"]) == (OIDC_PREFIX, "Prefix")
    assert path["backend"]["service"]["port"] == {"name": "http"}
    (config_map,) = of_kind("ConfigMap")
    public = urlsplit(config_map["data"]["IDENTITY_PUBLIC_URL"])
    assert public.scheme == "https"
    assert public.path in {"", "/"}, "IDENTITY_PUBLIC_URL is an origin"
    assert host is not None
    assert public.hostname == host, "IDENTITY_PUBLIC_URL names the host the Ingress serves"


def test_k8s_service_urls_name_the_services_that_serve_them() -> None:
    for config_map in of_kind("ConfigMap"):
        for service in SERVICES:
            url = config_map["data"].get(url_var(service))
            if url is None:
                continue
            assert service in cli.AVAILABLE, f"{url_var(service)}: {service} is not built"
            host, port = service_url_target(url)
            api, _ = k8s_api(service)
            if service in PUBLIC:  # an Ingress takes its public host to the service
                host = public_route(urlsplit(url).hostname or "")
                port = DEFAULT_PORTS[service]
            front = the("Service", host)
            assert selects(front["spec"]["selector"], api["spec"]["template"]["metadata"]["labels"])
            assert port == DEFAULT_PORTS[service]
        assert urlsplit(config_map["data"]["REDIS_URL"]).scheme == "redis"


def test_k8s_secrets_hold_only_placeholders_the_services_refuse() -> None:
    database_urls: dict[str, str] = {}
    for secret in of_kind("Secret"):
        assert "data" not in secret, "no encoded values that a reader cannot see are placeholders"
        for key, value in secret["stringData"].items():
            assert "CHANGE-ME" in value, f"{secret['metadata']['name']}/{key} is not marked"
            if key.endswith("_DATABASE_URL"):
                assert key not in database_urls, f"{key} is in two Secrets"
                database_urls[key] = value
    for service in cli.AVAILABLE:
        url = make_url(database_urls[database_var(service)])
        assert url.drivername == "postgresql+asyncpg"
        assert url.database == service
    api, container = k8s_api(IDENTITY)
    env = {item["name"]: item.get("value") for item in container.get("env", [])}
    files = mounted_secret_files(api, container)
    with pytest.raises(KeyFileError):
        private_key_from_pem(secret_value(files[env["COMMONROOM_SIGNING_KEY_FILE"]]).encode())
    secrets = clients_placeholder_lines(secret_value(files[env["COMMONROOM_CLIENTS_FILE"]]))
    for where, _, other in app_containers():
        for var in (CLIENT_SECRET, LINK_SECRET):
            if var in secret_key_refs(other):
                secrets[f"{where} {var}"] = secret_value(secret_key_refs(other)[var])
    assert secrets
    for name, placeholder in secrets.items():
        with pytest.raises(ConfigurationError):
            checked_secret(name, placeholder)


def test_k8s_containers_are_pinned_bounded_and_non_root() -> None:
    uid = dockerfile_uid()
    for workload in [*of_kind("Deployment"), *of_kind("Job")]:
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == uid, name
        for container in spec["containers"]:
            assert_pinned(container["image"], name)
            if container["image"].startswith("commonroom:"):
                assert container["image"] == IMAGE, name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)


def test_k8s_scales_the_booking_api_on_cpu() -> None:
    (autoscaler,) = of_kind("HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    api, container = k8s_api("booking")
    assert target["name"] == api["metadata"]["name"]
    assert "replicas" not in api["spec"], "the autoscaler, not the manifest, owns the count"
    assert 1 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in container["resources"]["requests"], "CPU utilisation needs a CPU request"


def test_compose_gives_the_web_its_session_key_alone_and_publishes_its_pages() -> None:
    web = compose_service_serving(WEB)
    for name, spec in COMPOSE_APP.items():
        environment = compose_environment(spec)
        mentions = [value for value in environment.values() if WEB_SECRET in value]
        if name == web:
            assert re.fullmatch(r"\$\{COMMONROOM_WEB_SECRET:\?[^}]+\}", environment[WEB_SECRET])
            assert len(mentions) == 1
            assert urlsplit(resolve(environment["WEB_URL"])).port == DEFAULT_PORTS[WEB]
        else:
            assert WEB_SECRET not in environment, f"{name} has the web's session key"
            assert not mentions, f"{name} is given the web's session key"


def test_k8s_gives_the_web_its_session_key_alone_and_routes_browsers_to_it() -> None:
    api, container = k8s_api(WEB)
    key = secret_key_refs(container).get(WEB_SECRET)
    assert key is not None, f"the web takes {WEB_SECRET} by secretKeyRef"
    for where, workload, other in app_containers():
        if other is not container:
            assert key not in reachable_secret_keys(workload, other), where
            assert WEB_SECRET not in k8s_environment(other, where), where
    (config_map,) = of_kind("ConfigMap")
    host = urlsplit(config_map["data"]["WEB_URL"]).hostname or ""
    front = the("Service", public_route(host))
    assert selects(front["spec"]["selector"], api["spec"]["template"]["metadata"]["labels"])
