"""The deployment files name only what the app has.

compose.yaml, deploy/k8s/ and deploy/Dockerfile are read, never run, here: every `commonroom`
command line must be one the CLI accepts, every port the service's default port, every variable one
`Settings.from_env` reads, every probe a health route, every image tag pinned.
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
from shared import config
from shared.config import DEFAULT_PORTS, SERVICES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "deploy" / "k8s"
POSTGRES_INIT = ROOT / "deploy" / "postgres-init"

# Services whose URL is their public address, not the in-cluster one: links to them leave the
# suite (lecturers' feeds and the one-click links inside them are opened by calendar apps).
PUBLIC = ("lecturers",)
# The variables a deployment must set for the suite to work as one: without COMMONROOM_SECRET each
# process signs with a key of its own; without the URLs it falls back to SQLite or localhost.
REQUIRED = ("COMMONROOM_SECRET", "REDIS_URL")
HEALTH_READY = "/health/ready"
HEALTH_LIVE = "/health/live"


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
    env = _RecordingEnv(
        {"COMMONROOM_SECRET": "a-secret-" + "x" * 32}
    )  # so no key file is made under var/
    Settings.from_env(env)
    return frozenset(env.asked)


def database_var(service: str) -> str:
    return f"{service.upper()}_DATABASE_URL"


def url_var(service: str) -> str:
    return f"{service.upper()}_URL"


READS = _names_the_app_reads()
PER_SERVICE = frozenset(
    name for service in SERVICES for name in (database_var(service), url_var(service))
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
    assert set(DEFAULT_PORTS) == set(SERVICES)


def test_the_names_the_app_reads_are_the_documented_ones_and_each_changes_the_settings() -> None:
    assert PER_SERVICE <= READS
    assert {"COMMONROOM_SECRET", "REDIS_URL"} <= FIXED
    source = inspect.getsource(config)
    for name in FIXED:
        assert f'"{name}"' in source, f"{name} is not spelled out in shared/config.py"
    base = {"COMMONROOM_SECRET": "a-secret-" + "x" * 32}
    for name in READS:
        value = "7" * 40 if name == "COMMONROOM_SECRET" else "7"  # a secret must be long enough
        changed = Settings.from_env({**base, name: value})
        assert changed != Settings.from_env(base), f"setting {name} changes nothing"


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
    for args in compose_args().values():
        assert args.command in {"serve", "worker", "migrate"}
        if args.command in {"serve", "worker"}:
            assert args.service in cli.AVAILABLE
    migrate = next(a for a in compose_args().values() if a.command == "migrate")
    assert migrate.service is None, "one migration for every service, not one"


def test_compose_apis_listen_on_their_ports_and_report_ready() -> None:
    for service in cli.AVAILABLE:
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
        needed = {*REQUIRED, *(database_var(s) for s in cli.AVAILABLE), url_var("registry")}
        assert needed <= set(environment), f"{name} lacks {needed - set(environment)}"
        # Required, never empty: an empty secret would make each container sign with its own key.
        assert re.fullmatch(r"\$\{COMMONROOM_SECRET:\?[^}]+\}", environment["COMMONROOM_SECRET"])


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
    for where, args in k8s_args().items():
        assert args.command in {"serve", "worker", "migrate"}, where
        if args.command != "migrate":
            assert args.service in cli.AVAILABLE, where
            assert where.startswith("Deployment "), where


def test_k8s_apis_listen_on_their_ports_and_are_probed_on_the_health_routes() -> None:
    for service in cli.AVAILABLE:
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
    for service in cli.AVAILABLE:
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
        needed = {*REQUIRED, *(database_var(s) for s in cli.AVAILABLE)}
        if k8s_args()[where].service == "booking":
            needed.add(url_var("registry"))
        assert needed <= names, f"{where} lacks {needed - names}"


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


def test_k8s_secret_holds_only_marked_placeholders_and_async_database_urls() -> None:
    (secret,) = of_kind("Secret")
    values: dict[str, str] = secret["stringData"]
    assert "data" not in secret, "no encoded values that a reader cannot see are placeholders"
    for name, value in values.items():
        assert "CHANGE-ME" in value, f"{name} is not marked as a placeholder"
    for service in cli.AVAILABLE:
        url = make_url(values[database_var(service)])
        assert url.drivername == "postgresql+asyncpg"
        assert url.database == service


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
