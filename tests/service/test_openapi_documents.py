"""Each service's OpenAPI document tells the truth about its answers: what its creates return,
that every error is a problem document, and which routes need no token. Schemathesis
(tests/suite/test_schemathesis.py) holds the services to these documents."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

Client = AsyncTestClient  # type: ignore[type-arg]
PROBLEM = "application/problem+json"
# What any operation may answer besides its success (shared.problems.PROBLEM_RESPONSES).
ERRORS = {"400", "401", "403", "404", "409", "413", "422", "500", "503"}


async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def operations(doc: dict[str, Any], prefix: str = "/v1/") -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in doc["paths"].items()
        if path.startswith(prefix)
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }


def undocumented_problems(doc: dict[str, Any]) -> dict[str, set[str]]:
    missing: dict[str, set[str]] = {}
    for label, operation in operations(doc).items():
        responses = operation["responses"]
        lacking = {
            status
            for status in ERRORS
            if PROBLEM not in (responses.get(status, {}).get("content") or {})
        }
        if lacking:
            missing[label] = lacking
    return missing


def success_schema(doc: dict[str, Any], label: str, status: str) -> dict[str, Any]:
    content = operations(doc)[label]["responses"][status]["content"]
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


async def test_registry_documents_its_problems_and_what_it_creates(registry: Client) -> None:
    doc = await document(registry)
    assert undocumented_problems(doc) == {}
    for label, made in (
        ("POST /v1/areas", "Area"),
        ("POST /v1/venues", "Venue"),
        ("POST /v1/venues/{venue_id}/resources", "Resource"),
    ):
        assert success_schema(doc, label, "201") == {"$ref": f"#/components/schemas/{made}"}


async def test_lecturers_document_their_problems_and_what_they_create(lecturers: Client) -> None:
    doc = await document(lecturers)
    assert undocumented_problems(doc) == {}
    assert success_schema(doc, "POST /v1/lecturers", "201")["$ref"].endswith("/Lecturer")
    assert success_schema(doc, "POST /v1/requests", "201")["$ref"].endswith("/LectureRequest")
    runs = operations(doc)["POST /v1/matching/runs"]["responses"]
    assert "201" not in runs  # a run is queued: 202, as the API says
    assert success_schema(doc, "POST /v1/matching/runs", "202")["$ref"].endswith("/RunAccepted")


async def test_booking_documents_its_problems_and_what_it_creates(booking: Client) -> None:
    doc = await document(booking)
    assert undocumented_problems(doc) == {}
    assert success_schema(doc, "POST /v1/bookings", "201").get("type") != "string"


async def test_identity_documents_the_grants_its_token_endpoint_takes_and_its_lockouts(
    identity: Client,
) -> None:
    """The token endpoint reads its grant itself (JSON or form-encoded): its document still says
    which grants it takes, and that a locked account is 429 there and at `PATCH /v1/me`."""
    doc = await document(identity)
    assert undocumented_problems(doc) == {}
    taken = operations(doc)["POST /v1/token"]["requestBody"]["content"]
    grants = {
        media: {grant["properties"]["grant_type"]["enum"][0] for grant in body["schema"]["anyOf"]}
        for media, body in taken.items()
    }
    every = {"password", "refresh_token", "client_credentials", "authorization_code"}
    assert grants == {"application/json": every, "application/x-www-form-urlencoded": every}
    # A form cannot send null: an optional field of a form-encoded grant is one left out.
    assert "'null'" not in str(taken["application/x-www-form-urlencoded"])
    for label in ("POST /v1/token", "PATCH /v1/me"):
        assert PROBLEM in operations(doc)[label]["responses"]["429"]["content"], label


async def test_health_is_documented_as_needing_no_token(registry: Client) -> None:
    doc = await document(registry)
    for path in ("/health/live", "/health/ready"):
        assert doc["paths"][path]["get"].get("security") == [{}]
