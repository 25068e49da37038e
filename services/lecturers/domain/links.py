"""Secrets in URLs: the lecturer's feed token and the signed one-click answers to an offer.

A feed token is 256 random bits, kept with the lecturer; a feed URL without the right one is 404.
An answer link carries what it may do (accept or decline which offer, at which `sequence` of the
offer, until when) and an HMAC-SHA256 over exactly that, under a key derived for this purpose alone
from the lecturer service's own link secret (COMMONROOM_LINK_SECRET), never from a token key: no
other service can make a link, and a leaked link key signs nothing else. It needs no login; it
works once, because answering raises the offer's sequence, and never after the offer's answer time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import msgspec

from services.lecturers.domain.corps import Answer, Offer
from shared.config import ConfigurationError, checked_secret
from shared.errors import NotFound

FEED_TOKEN_BYTES = 32
_LINK_KEY_PURPOSE = b"commonroom/lecturers/offer-links/v1"
ANSWERS: tuple[Answer, ...] = ("accept", "decline")


def new_feed_token() -> str:
    return secrets.token_urlsafe(FEED_TOKEN_BYTES)


def feed_token_matches(expected: str, given: str) -> bool:
    """Compared in constant time, so the answer's timing says nothing about the token."""
    return hmac.compare_digest(expected.encode(), given.encode())


def link_key(link_secret: str | None) -> bytes:
    """The links' key, derived from the service's link secret. Without one the service must not
    start (its app and its worker ask for the key as they are built), rather than fail per link."""
    if link_secret is None:
        raise ConfigurationError(
            "the lecturer service signs its one-click offer links with COMMONROOM_LINK_SECRET: "
            "set it to a random value of at least 32 bytes (e.g. `openssl rand -base64 48`), "
            "or keep one in the file link-secret under COMMONROOM_VAR_DIR"
        )
    secret = checked_secret("COMMONROOM_LINK_SECRET", link_secret)
    return hmac.new(secret.encode(), _LINK_KEY_PURPOSE, hashlib.sha256).digest()


class LinkClaim(msgspec.Struct, frozen=True, array_like=True):
    offer_id: str
    answer: Answer
    sequence: int
    expires: int  # Unix seconds


class OfferLink(msgspec.Struct, frozen=True):
    """What a one-click link does, for the page that shows it: the offer, the answer the link
    gives, and whether it has been given (by this request: a used link is 409). The page is
    opened without a login, so it cannot ask the registry where the venue is: the venue's name,
    address and zone come along."""

    offer: Offer
    action: Answer
    done: bool
    venue_name: str | None = None
    venue_address: str | None = None
    timezone: str | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, claim: LinkClaim) -> str:
    """The token of a link: the claim and its MAC, URL-safe."""
    body = msgspec.msgpack.encode(claim)
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def answer_link_claim(
    offer_id: str, answer: Answer, sequence: int, expires_at: datetime
) -> LinkClaim:
    return LinkClaim(
        offer_id=offer_id,
        answer=answer,
        sequence=sequence,
        expires=int(expires_at.astimezone(UTC).timestamp()),
    )


def answer_links(
    key: bytes, pages_url: str, offer_id: str, sequence: int, expires_at: datetime
) -> dict[str, str]:
    """The offer's signed one-click links (`accept_url`, `decline_url`), each a token on the
    pages at `pages_url`."""
    claims = {
        answer: answer_link_claim(offer_id, answer, sequence, expires_at) for answer in ANSWERS
    }
    return {f"{answer}_url": f"{pages_url}/{sign(key, claim)}" for answer, claim in claims.items()}


def web_link_pages(web_url: str) -> str:
    """Where people open a one-click link: the web service's pages (API.md § Lecturers)."""
    return f"{web_url}/offers/links"


def verify(key: bytes, token: str) -> LinkClaim:
    """The claim a token carries; 404 for anything this service did not sign."""
    body_text, _, mac_text = token.partition(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise NotFound("no such link") from None
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), mac):
        raise NotFound("no such link")
    return msgspec.msgpack.decode(body, type=LinkClaim)
