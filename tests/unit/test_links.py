"""The lecturers' one-click links: their own key, from the service's link secret, and a service
that will not start without one. Plain values, no I/O."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar import Request

from services.lecturers.api.offers import _wants_json
from services.lecturers.app import create_app
from services.lecturers.domain.links import answer_link_claim, link_key, sign, verify
from services.lecturers.worker import create_worker_settings
from shared.config import ConfigurationError, Settings
from shared.errors import NotFound

LINK_SECRET = "link-secret-" + "x" * 40
OTHER_SECRET = "link-secret-" + "y" * 40
OFFER_ID = "0190c3a2-7d41-7cc2-9a0e-5b1f2a3c4d5e"
LATER = datetime(2027, 3, 3, 9, 30, tzinfo=UTC)


def test_the_link_key_is_derived_from_the_link_secret_for_links_alone() -> None:
    key = link_key(LINK_SECRET)
    # A known answer: links already sent keep working only while the derivation stays the same.
    assert key.hex() == "7eca89f5e7bd70c9e48ec907af9104d44f9950f721ea3511fa0ce2f014d141c2"
    assert key == link_key(LINK_SECRET)
    assert key != link_key(OTHER_SECRET)
    assert LINK_SECRET.encode() not in key


def test_a_link_works_under_its_own_key_and_no_other() -> None:
    claim = answer_link_claim(OFFER_ID, "accept", 3, LATER)
    token = sign(link_key(LINK_SECRET), claim)
    assert verify(link_key(LINK_SECRET), token) == claim
    with pytest.raises(NotFound):
        verify(link_key(OTHER_SECRET), token)


def test_a_link_changed_in_any_part_is_refused() -> None:
    key = link_key(LINK_SECRET)
    token = sign(key, answer_link_claim(OFFER_ID, "decline", 0, LATER))
    other = sign(key, answer_link_claim(OFFER_ID, "accept", 0, LATER + timedelta(days=1)))
    body, mac = token.split(".")
    for forged in (f"{other.split('.')[0]}.{mac}", f"{body}.{'A' * len(mac)}", body, "", "..."):
        with pytest.raises(NotFound):
            verify(key, forged)


@pytest.mark.parametrize("secret", [None, "short", "CHANGE-ME" + "x" * 40])
def test_no_link_key_without_a_fit_link_secret(secret: str | None) -> None:
    with pytest.raises(ConfigurationError, match="COMMONROOM_LINK_SECRET"):
        link_key(secret)


def settings(tmp_path: Path, **env: str) -> Settings:
    # An empty var directory: no link-secret file to fall back on.
    return Settings.from_env({"COMMONROOM_VAR_DIR": str(tmp_path / "var"), **env})


def test_the_lecturer_app_and_worker_refuse_to_start_without_the_link_secret(
    tmp_path: Path,
) -> None:
    without = settings(tmp_path)
    assert without.link_secret is None
    with pytest.raises(ConfigurationError, match="COMMONROOM_LINK_SECRET"):
        create_app(without)
    with pytest.raises(ConfigurationError, match="COMMONROOM_LINK_SECRET"):
        create_worker_settings(without)


def test_the_lecturer_app_is_made_with_a_link_secret(tmp_path: Path) -> None:
    create_app(settings(tmp_path, COMMONROOM_LINK_SECRET=LINK_SECRET))


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger back as pytest had it after a command that configures logging."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_the_command_refuses_to_start_the_lecturer_service_without_its_link_secret(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_logging: None,
) -> None:
    from services import cli

    monkeypatch.delenv("COMMONROOM_LINK_SECRET", raising=False)
    monkeypatch.setenv("COMMONROOM_VAR_DIR", str(tmp_path / "var"))
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, "lecturers"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("commonroom: ")
    assert "COMMONROOM_LINK_SECRET" in err
    assert "Traceback" not in err


def request_accepting(accept: str | None) -> Request:  # type: ignore[type-arg]
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "state": {}})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        ("application/json", True),
        ("application/problem+json, application/json;q=0.9", True),
        ("text/html;q=0.5, application/json", True),
        # A browser, curl, a mail scanner: today's page.
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("*/*", False),
        (None, False),
        ("application/json;q=0, text/html", False),
    ],
)
def test_a_link_answers_json_only_to_a_caller_that_asks_for_it(
    accept: str | None, json: bool
) -> None:
    assert _wants_json(request_accepting(accept)) is json
