"""Every operation of every service's own OpenAPI document, fuzzed by schemathesis.

The suite runs as it does in production (each service its own process on PostgreSQL, Redis
between them); schemathesis reads each service's `/schema/openapi.json` and sends each operation
a bounded number of generated requests as the office: inputs that fit the document, then inputs
that break it. Every answer must be no server error, a documented status code, a documented
content type and a body that matches the documented schema; an input that breaks the document
must be refused with a 4xx.

A share of the path ids name real entities made beforehand, so the handlers past the 404 run too.
Operations that delete run last, so they do not take those entities away from the others.

Identity is fuzzed as a real office person (an account signed in with the password grant just
before its turn), so `/v1/me` and the account writes run past "no such user". It is never signed
in again while the fuzzer runs: the password grant counts failures per username (10 in 15
minutes: 429), and the fuzzer's own wrong guesses (`PATCH /v1/me` with a `current_password`)
count against that account.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from services.identity.cli import add_user
from services.identity.domain.tokens import Membership
from shared.auth import Role
from shared.config import ServiceName
from shared.time import next_month
from tests.conftest import Tokens
from tests.suite.conftest import OPEN_ALL_YEAR, Suite, running_suite

POSITIVE_EXAMPLES = 50  # per operation: inputs that fit the document
NEGATIVE_EXAMPLES = 25  # per operation: inputs that break it
SLOWEST_ANSWER = 5.0  # seconds: nothing the fuzzer sends may keep a service busy longer

ALWAYS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
# A request that breaks the document must be refused. Only for generated negative cases: a
# positive case may still be refused by a rule the document cannot state (unknown ids, hours).
NEGATIVE = [*ALWAYS, schemathesis.checks.negative_data_rejection]


# The office person identity is fuzzed as, and the org and member its seeded ids name.
FUZZER_EMAIL, FUZZER_PASSWORD = "fuzzer@office.example.org", "fuzzer-password-0123"
MEMBERS_ORG = "centre-a"


@dataclass
class Seeded:
    """Ids of real entities, by the name of the path parameter that takes them."""

    ids: dict[str, str] = field(default_factory=dict)


def made(response: httpx.Response) -> str:
    assert response.status_code in (201, 202), response.text
    body: dict[str, Any] = response.json()
    return str(body.get("id") or body.get("run_id"))


async def seed(suite: Suite) -> Seeded:
    seeded = Seeded()
    area = made(await suite.registry.post("/v1/areas", json={"name": "城关镇"}))
    venue = made(
        await suite.registry.post(
            "/v1/venues",
            json={
                "name": "城关第一市民学校",
                "kind": "citizen_school",
                "area_id": area,
                "owner_org": "school-a",
            },
        )
    )
    hours = await suite.registry.put(f"/v1/venues/{venue}/opening-hours", json=OPEN_ALL_YEAR)
    assert hours.status_code == 200, hours.text
    resource = made(
        await suite.registry.post(
            f"/v1/venues/{venue}/resources",
            json={"name": "多功能教室", "type": "room", "capacity": 60},
        )
    )
    start = (datetime.now(UTC) + timedelta(days=3)).replace(
        hour=2, minute=0, second=0, microsecond=0
    )
    booking: dict[str, Any] = {}
    answer = None
    for _ in range(50):  # booking learns of the room and its hours through events
        answer = await suite.booking.post(
            "/v1/bookings",
            json={
                "resource_ids": [resource],
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
                "purpose": "开放日",
            },
        )
        if answer.status_code == 201:
            booking = answer.json()
            break
        await asyncio.sleep(0.2)
    assert booking, answer.text if answer else "no answer"
    month = f"{next_month(datetime.now(UTC).date()):%Y-%m}"
    lecturer = made(
        await suite.lecturers.post(
            "/v1/lecturers",
            json={
                "name": "王老师",
                "topics": ["law"],
                "area_id": area,
                "availability": [{"weekdays": [1, 2, 3], "start": "18:00", "end": "21:00"}],
            },
        )
    )
    request = made(
        await suite.lecturers.post(
            "/v1/requests",
            json={"venue_id": venue, "topic": "law", "programme": "citizen", "month": month},
        )
    )
    run = made(await suite.lecturers.post("/v1/matching/runs", json={"month": month}))
    await add_user(
        suite.settings,
        email=FUZZER_EMAIL,
        password=FUZZER_PASSWORD,
        membership=Membership(org="office", role=Role.OFFICE),
    )
    # A member whose membership `DELETE /v1/orgs/{org_id}/members/{user_id}` can end (and whom
    # `POST /v1/users/{user_id}/disable` disables): never the fuzzer itself.
    member = await add_user(
        suite.settings,
        email="member@centre-a.example.org",
        password=None,
        membership=Membership(org=MEMBERS_ORG, role=Role.COMMUNITY_MANAGER),
    )
    invitation = made(
        await suite.identity.post(
            "/v1/invitations",
            json={
                "email": "invitee@centre-a.example.org",
                "org": MEMBERS_ORG,
                "role": "community_manager",
            },
        )
    )
    seeded.ids.update(
        area_id=area,
        venue_id=venue,
        resource_id=resource,
        booking_id=booking["id"],
        lecturer_id=lecturer,
        request_id=request,
        run_id=run,
        org_id=MEMBERS_ORG,
        user_id=member,
        invitation_id=invitation,
    )
    return seeded


@pytest.fixture(scope="module")
async def fuzzed_suite(
    postgres_server_url: str, redis_url: str, tokens: Tokens
) -> AsyncIterator[tuple[Suite, Seeded]]:
    async with running_suite(postgres_server_url, redis_url, tokens) as suite:
        yield suite, await seed(suite)


@dataclass(frozen=True)
class Known:
    """A defect found here that the files it lies in wait to have fixed (see the xfail tests
    below, which fail until then): the fuzzer's finding of it is set aside, and nothing else."""

    service: ServiceName
    codes: frozenset[str]  # schemathesis failure codes (ST101 server error, ST103 ...)
    applies: Callable[[Any, int], bool]  # (case, status answered) -> whether it is that one
    reason: str


def _label(case: Any) -> str:
    return f"{case.method.upper()} {case.path}"


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.items() for text in _strings(list(item))]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def _sent_unprintable(case: Any) -> bool:
    path = [unquote(str(value)) for value in (case.path_parameters or {}).values()]
    sent = [path, case.query, case.body]
    return any(not text.isprintable() for text in _strings(sent))


def _repeats_a_query_parameter(case: Any, _: int) -> bool:
    return any(isinstance(value, list) for value in (case.query or {}).values())


def _adds_a_query_parameter(case: Any, _: int) -> bool:
    declared = {parameter.name for parameter in case.operation.query}
    return bool(set(case.query or {}) - declared)


def _admits_text(schema: Any) -> bool:
    """Whether a parameter's schema takes a string, alone or among alternatives."""
    if not isinstance(schema, dict):
        return False
    alternatives = [*schema.get("oneOf", []), *schema.get("anyOf", [])]
    return schema.get("type") == "string" or any(map(_admits_text, alternatives))


def _repeats_text(schema: Any) -> bool:
    """Whether a parameter's schema is a list of strings with nothing asked of each."""
    if not isinstance(schema, dict):
        return False
    alternatives = [*schema.get("oneOf", []), *schema.get("anyOf", [])]
    items = schema.get("items")
    plain = isinstance(items, dict) and set(items) <= {"type"} and items.get("type") == "string"
    return (schema.get("type") == "array" and plain) or any(map(_repeats_text, alternatives))


def _refused_as_too_large(_: Any, status: int) -> bool:
    return status == 413


def _sends_text_on_the_wire(case: Any, _: int) -> bool:
    """A query string is text: `?venue_id=7`, `?venue_id=true` and `?venue_id=abc` are each a
    list of one id, and `?cursor=7` is the text "7", whatever value the fuzzer meant to send."""
    schemas = {
        parameter.name: parameter.definition.get("schema") for parameter in case.operation.query
    }
    for name, value in (case.query or {}).items():
        schema = schemas.get(name)
        if isinstance(value, int | float) and (_admits_text(schema) or _repeats_text(schema)):
            return True
        if isinstance(value, str) and _repeats_text(schema):
            return True
    return False


FUZZED: tuple[ServiceName, ...] = ("registry", "booking", "lecturers", "identity", "notify")

# Not defects: what the fuzzer calls a schema-violating request that the services rightly accept.
LENIENT = [
    *(
        Known(
            service,
            frozenset({"ST201"}),
            _repeats_a_query_parameter,
            "a query parameter given twice: Litestar reads the last, as most servers do, and "
            "the document cannot say so",
        )
        for service in FUZZED
    ),
    *(
        Known(
            service,
            frozenset({"ST201"}),
            _adds_a_query_parameter,
            "a query parameter the operation does not have is ignored, as on most servers",
        )
        for service in FUZZED
    ),
    *(
        Known(
            service,
            frozenset({"ST201"}),
            _sends_text_on_the_wire,
            "a number, a boolean or one string where the document says text or a list of it: "
            "on the wire each is text, or a list of one (an id filter finds nothing by it)",
        )
        for service in FUZZED
    ),
    *(
        Known(
            service,
            frozenset({"ST201"}),
            _refused_as_too_large,
            "a body over COMMONROOM_MAX_BODY_BYTES is refused with 413 (payload_too_large) "
            "before it is read: a refusal, though not among the codes the check expects",
        )
        for service in FUZZED
    ),
]


# Defects found and not yet fixed, each set aside with where it lies: none at the moment.
KNOWN: list[Known] = []


@dataclass
class Findings:
    """What the fuzzer found (the first case of each distinct failure, by operation), what it
    set aside as known, and how much it sent."""

    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    answered: Counter[int] = field(default_factory=Counter)
    calls: int = 0
    slowest: float = 0.0

    def add(self, service: ServiceName, case: Any, status: int, raised: BaseException) -> None:
        found = raised.exceptions if isinstance(raised, BaseExceptionGroup) else [raised]
        for failure in found:
            code = str(getattr(failure, "code", type(failure).__name__))
            known = [
                entry
                for entry in (*KNOWN, *LENIENT)
                if entry.service == service and code in entry.codes and entry.applies(case, status)
            ]
            if known:
                self.known.add(known[0].reason)
                continue
            self.failures.setdefault(_label(case), {}).setdefault(
                code, f"answered {status}: {failure}\n{case.as_curl_command()}"[:2000]
            )


def fuzz_operation(
    service: ServiceName,
    strategy: Any,
    *,
    checks: list[Any],
    examples: int,
    session: requests.Session,
    findings: Findings,
) -> None:
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run: CI is a gate, not a lottery
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report, don't minimise
        suppress_health_check=list(HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        started = time.perf_counter()
        try:
            response = case.call(session=session, timeout=30)
            findings.answered[response.status_code] += 1
            case.validate_response(response, checks=checks)
        except (AssertionError, FailureGroup) as raised:
            findings.add(service, case, response.status_code, raised)
        finally:
            elapsed = time.perf_counter() - started
            findings.calls += 1
            findings.slowest = max(findings.slowest, elapsed)
            if elapsed > SLOWEST_ANSWER:
                findings.failures.setdefault(_label(case), {})["slow"] = (
                    f"took {elapsed:.1f}s: {case.as_curl_command()}"[:2000]
                )

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # Nothing of the operation can be broken (no parameters, no body): nothing to send.
        if checks is not NEGATIVE:
            raise


def fuzz_service(
    suite: Suite, seeded: Seeded, service: ServiceName, headers: dict[str, str]
) -> Findings:
    base = suite.settings.service_url(service)
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json")
    schema.config.update(base_url=base)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    findings = Findings()
    with requests.Session() as session:
        for operation in operations:
            known = {
                parameter.name: seeded.ids[parameter.name]
                for parameter in operation.path_parameters
                if parameter.name in seeded.ids
            }
            # The office's token is given, so generation leaves the Authorization header alone.
            positive = operation.as_strategy(headers=headers)
            if known:
                positive = st.one_of(
                    positive, operation.as_strategy(headers=headers, path_parameters=known)
                )
            negative = operation.as_strategy(GenerationMode.NEGATIVE, headers=headers)
            for strategy, checks, examples in (
                (positive, ALWAYS, POSITIVE_EXAMPLES),
                (negative, NEGATIVE, NEGATIVE_EXAMPLES),
            ):
                fuzz_operation(
                    service,
                    strategy,
                    checks=checks,
                    examples=examples,
                    session=session,
                    findings=findings,
                )
    return findings


def report(findings: Findings) -> str:
    answered = dict(sorted(findings.answered.items()))
    lines = [f"{findings.calls} requests, slowest {findings.slowest:.2f}s, answered {answered}"]
    for label, failures in findings.failures.items():
        for code, first in failures.items():
            lines.append(f"== {label} [{code}], the first case:\n{first}")
    return "\n".join(lines)


Fuzz = Callable[[ServiceName], Findings]


def signed_in_fuzzer(suite: Suite) -> dict[str, str]:
    """The bearer header of the office person identity is fuzzed as, signed in now."""
    answer = httpx.post(
        f"{suite.settings.service_url('identity')}/v1/token",
        json={"grant_type": "password", "username": FUZZER_EMAIL, "password": FUZZER_PASSWORD},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture(scope="module")
def fuzz(fuzzed_suite: tuple[Suite, Seeded], tokens: Tokens) -> Fuzz:
    suite, seeded = fuzzed_suite

    def run(service: ServiceName) -> Findings:
        headers = signed_in_fuzzer(suite) if service == "identity" else tokens("office")
        return fuzz_service(suite, seeded, service, headers)

    return run


@pytest.mark.parametrize("service", FUZZED)
def test_every_operation_answers_as_its_document_says(fuzz: Fuzz, service: ServiceName) -> None:
    findings = fuzz(service)
    assert findings.calls > 0
    assert not findings.failures, report(findings)
    print(f"{service}: {report(findings)}; set aside as known: {sorted(findings.known)}")
