"""Identity's signing keys: which one signs now, which are published, and how a new one is added.

The first key comes from a PEM file; `commonroom keys rotate` adds keys in identity's database.
A new key is published for longer than any verifier keeps the key set before it signs anything
(`sign_from`), and a key stays published until the last token it can have signed has expired, so
a rotation costs no valid token a 401. Pure functions over plain values: no I/O here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ALGORITHM = "EdDSA"
# The longest a token can live (an operator's `commonroom token --hours 720`), so the longest a
# retired key must stay published after its successor starts signing.
LONGEST_TOKEN = timedelta(days=30)
THE_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
# How often every identity replica reads the keys in its database again.
IDENTITY_REREAD = timedelta(seconds=5)


class KeyFileError(ValueError):
    """The signing key file is missing or holds no Ed25519 private key."""


@dataclass(frozen=True)
class SigningKey:
    """One key: published from `published_from`, signing from `sign_from`."""

    kid: str
    private: Ed25519PrivateKey
    published_from: datetime
    sign_from: datetime


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_x(public: Ed25519PublicKey) -> str:
    return _b64url(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def thumbprint(public: Ed25519PublicKey) -> str:
    """The key's RFC 7638 thumbprint (SHA-256): its `kid`."""
    # RFC 7638 3.2: the required members only, in lexicographic order, with no white space.
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _public_x(public)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(key: SigningKey) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _public_x(key.private.public_key()),
        "kid": key.kid,
        "use": "sig",
        "alg": ALGORITHM,
    }


def private_key_from_pem(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError("not a PEM private key without a password") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError("the key is not an Ed25519 key")
    return key


def new_private_key_pem() -> bytes:
    """A new Ed25519 key as unencrypted PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def file_key(private: Ed25519PrivateKey) -> SigningKey:
    """The first key, from the key file: published and signing since always."""
    return SigningKey(
        kid=thumbprint(private.public_key()),
        private=private,
        published_from=THE_BEGINNING,
        sign_from=THE_BEGINNING,
    )


def rotated_key(
    private: Ed25519PrivateKey, *, now: datetime, jwks_max_age: timedelta
) -> SigningKey:
    """A key added now: published at once, signing once every verifier can have seen it.

    Every identity replica publishes it within `IDENTITY_REREAD`; a verifier that read the set
    just before has read it again within its cache age. Twice that age gives the margin."""
    return SigningKey(
        kid=thumbprint(private.public_key()),
        private=private,
        published_from=now,
        sign_from=now + IDENTITY_REREAD + 2 * jwks_max_age,
    )


def _by_start(keys: Sequence[SigningKey]) -> list[SigningKey]:
    return sorted(keys, key=lambda key: (key.sign_from, key.published_from))


def signing_key(keys: Sequence[SigningKey], now: datetime) -> SigningKey:
    """The key that signs now: the latest whose `sign_from` has come."""
    ready = [key for key in _by_start(keys) if key.sign_from <= now]
    if not ready:
        raise KeyFileError("no signing key is ready")
    return ready[-1]


def published_keys(keys: Sequence[SigningKey], now: datetime) -> list[SigningKey]:
    """The keys to publish now: each from `published_from` until `LONGEST_TOKEN` after a later
    key took over signing (when every token it signed has expired)."""
    ordered = _by_start(keys)
    active = signing_key(ordered, now)
    published = []
    for index, key in enumerate(ordered):
        if key.published_from > now:
            continue
        successors = [later for later in ordered[index + 1 :] if later.sign_from <= now]
        if key is not active and successors and successors[0].sign_from + LONGEST_TOKEN <= now:
            continue
        published.append(key)
    return published


def jwks(keys: Sequence[SigningKey], now: datetime) -> dict[str, Any]:
    return {"keys": [public_jwk(key) for key in published_keys(keys, now)]}


def sign(claims: Mapping[str, Any], key: SigningKey) -> str:
    return jwt.encode(dict(claims), key.private, algorithm=ALGORITHM, headers={"kid": key.kid})
