"""Tokens only identity can sign: keys, their rotation, and the verifier every service runs."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime, timedelta

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from services.identity.domain.keys import (
    IDENTITY_REREAD,
    LONGEST_TOKEN,
    SigningKey,
    file_key,
    jwks,
    published_keys,
    rotated_key,
    sign,
    signing_key,
    thumbprint,
)
from services.identity.domain.tokens import Membership, access_claims, access_token
from shared.auth import PublishedKeys, Revocations, Role, TokenVerifier
from shared.errors import ServiceUnavailable, Unauthenticated

ISSUER = "https://identity.example"
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
KEY = file_key(Ed25519PrivateKey.generate())
OFFICE = Membership(org="city", role=Role.OFFICE)


class Identity:
    """What a verifier asks: the published key set, counted; `away` makes it unreachable."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.away = False

    async def fetch(self) -> bytes:
        self.fetches += 1
        if self.away:
            raise OSError("connection refused")
        return msgspec.json.encode(jwks(self.keys, datetime.now(UTC)))


def verifier(identity: Identity, revocations: Revocations | None = None) -> TokenVerifier:
    return TokenVerifier(
        PublishedKeys(identity.fetch, max_age=300),
        revocations or Revocations(),
        issuer=ISSUER,
    )


def token(key: SigningKey = KEY, **changes: object) -> str:
    claims = access_claims(
        issuer=ISSUER,
        sub="u1",
        membership=OFFICE,
        sid="login-1",
        now=datetime.now(UTC),
        ttl=timedelta(minutes=15),
    )
    claims.update(changes)
    return sign(claims, key)


def check(verify: TokenVerifier, value: str) -> object:
    return asyncio.run(verify(f"Bearer {value}"))


def test_the_kid_is_the_rfc_7638_thumbprint() -> None:
    # RFC 8037 appendix A.3: the thumbprint of the Ed25519 key of A.2.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "="))
    assert thumbprint(public) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_a_signed_token_verifies_and_names_its_login() -> None:
    principal = check(verifier(Identity(KEY)), token())
    assert principal == check(verifier(Identity(KEY)), token())  # type: ignore[comparison-overlap]
    assert principal.sid == "login-1"
    assert principal.role is Role.OFFICE


def test_a_lecturer_token_carries_its_lecturer() -> None:
    signed = access_token(
        KEY,
        issuer=ISSUER,
        sub="u2",
        membership=Membership(org="corps", role=Role.LECTURER, lecturer_id="l1"),
        sid="s",
        now=datetime.now(UTC),
    )
    assert check(verifier(Identity(KEY)), signed).lecturer_id == "l1"


def _public_x() -> str:
    return str(jwks([KEY], NOW)["keys"][0]["x"])


@pytest.mark.parametrize(
    "forged",
    [
        # HS256 with any secret, the published public key's bytes included.
        jwt.encode({"sub": "x", "role": "office", "org": "o"}, "s" * 40, algorithm="HS256"),
        jwt.encode(
            {"sub": "x", "role": "office", "org": "o", "iss": ISSUER},
            _public_x(),
            algorithm="HS256",
            headers={"kid": KEY.kid},
        ),
        jwt.encode({"sub": "x", "role": "office", "org": "o"}, None, algorithm="none"),
        jwt.encode(
            {"sub": "x", "role": "office", "org": "o"},
            None,
            algorithm="none",
            headers={"kid": KEY.kid},
        ),
        "not.a.token",
        "",
    ],
    ids=["hs256", "hs256-public-key", "none", "none-with-kid", "junk", "empty"],
)
def test_nothing_but_eddsa_from_identity_is_accepted(forged: str) -> None:
    with pytest.raises(Unauthenticated):
        check(verifier(Identity(KEY)), forged)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"iss": "https://elsewhere.example"}, "wrong issuer"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"iat": int(time.time()) + 600}, "issued in the future"),
        ({"role": "mayor"}, "unknown role"),
        ({"role": "lecturer"}, "lecturer without lecturer_id"),
    ],
)
def test_a_token_with_bad_claims_is_refused(changes: dict[str, object], why: str) -> None:
    with pytest.raises(Unauthenticated):
        check(verifier(Identity(KEY)), token(**changes))


@pytest.mark.parametrize("missing", ["sid", "jti", "exp", "iss", "sub", "org"])
def test_a_token_missing_a_required_claim_is_refused(missing: str) -> None:
    claims = access_claims(
        issuer=ISSUER, sub="u", membership=OFFICE, sid="s", now=datetime.now(UTC),
        ttl=timedelta(minutes=5),
    )  # fmt: skip
    del claims[missing]
    with pytest.raises(Unauthenticated):
        check(verifier(Identity(KEY)), sign(claims, KEY))


def test_a_little_clock_skew_is_tolerated() -> None:
    ahead = int(time.time()) + 10
    assert check(verifier(Identity(KEY)), token(iat=ahead))
    assert check(verifier(Identity(KEY)), token(exp=int(time.time()) - 10))


def test_another_key_with_a_known_kid_is_refused() -> None:
    stranger = SigningKey(
        kid=KEY.kid,
        private=Ed25519PrivateKey.generate(),
        published_from=KEY.published_from,
        sign_from=KEY.sign_from,
    )
    with pytest.raises(Unauthenticated):
        check(verifier(Identity(KEY)), token(stranger))


def test_an_unknown_kid_is_401_while_identity_answers_and_503_while_it_is_away() -> None:
    identity = Identity(KEY)
    other = file_key(Ed25519PrivateKey.generate())
    with pytest.raises(Unauthenticated):
        check(verifier(identity), token(other))
    identity.away = True
    with pytest.raises(ServiceUnavailable) as away:
        check(verifier(identity), token(other))
    assert away.value.code == "identity_unavailable"


def test_known_keys_keep_working_while_identity_is_away() -> None:
    identity = Identity(KEY)
    verify = verifier(identity)
    check(verify, token())
    identity.away = True
    assert check(verify, token())  # a new token, with the key already known


def test_a_flood_of_made_up_kids_is_not_a_flood_of_fetches() -> None:
    identity = Identity(KEY)
    verify = verifier(identity)

    async def flood() -> None:
        for number in range(200):
            made_up = SigningKey(
                kid=f"made-up-{number}",
                private=KEY.private,
                published_from=KEY.published_from,
                sign_from=KEY.sign_from,
            )
            with pytest.raises(Unauthenticated):
                await verify(f"Bearer {token(made_up)}")

    asyncio.run(flood())
    assert identity.fetches == 1


def test_a_new_key_is_found_at_once_once_the_refetch_interval_has_passed() -> None:
    identity = Identity(KEY)
    clock = [0.0]
    verify = TokenVerifier(
        PublishedKeys(identity.fetch, max_age=300, refetch_interval=5, clock=lambda: clock[0]),
        Revocations(),
        issuer=ISSUER,
    )
    check(verify, token())
    newer = file_key(Ed25519PrivateKey.generate())
    identity.keys.append(newer)
    clock[0] = 6.0
    assert check(verify, token(newer))
    assert identity.fetches == 2


def test_a_retired_key_stops_working_once_the_set_is_read_again() -> None:
    old = file_key(Ed25519PrivateKey.generate())
    identity = Identity(old)
    clock = [0.0]
    keys = PublishedKeys(identity.fetch, max_age=300, clock=lambda: clock[0])
    asyncio.run(keys.key(old.kid))
    identity.keys = [KEY]
    clock[0] = 301.0
    with pytest.raises(Unauthenticated):
        asyncio.run(keys.key(old.kid))


def test_revoked_logins_and_users_are_refused_even_when_remembered() -> None:
    revocations = Revocations()
    verify = verifier(Identity(KEY), revocations)
    signed = token()
    check(verify, signed)
    revocations.replace(["sid:login-1"])
    with pytest.raises(Unauthenticated):
        check(verify, signed)
    revocations.replace(["sub:u1"])
    with pytest.raises(Unauthenticated):
        check(verify, signed)
    revocations.replace(["sid:another"])
    assert check(verify, signed)


def test_a_rotated_key_is_published_before_it_signs_and_the_old_one_after() -> None:
    max_age = timedelta(minutes=5)
    new = rotated_key(Ed25519PrivateKey.generate(), now=NOW, jwks_max_age=max_age)
    keys = [KEY, new]
    # Published at once; signing only once every verifier has read the set again.
    assert {k.kid for k in published_keys(keys, NOW)} == {KEY.kid, new.kid}
    takeover = NOW + IDENTITY_REREAD + 2 * max_age
    assert signing_key(keys, NOW) is KEY
    assert signing_key(keys, takeover - timedelta(seconds=1)) is KEY
    assert signing_key(keys, takeover) is new
    # The old key stays published until its last token has expired, then goes.
    later = takeover + LONGEST_TOKEN
    assert KEY.kid in {k.kid for k in published_keys(keys, later - timedelta(seconds=1))}
    assert {k.kid for k in published_keys(keys, later)} == {new.kid}
