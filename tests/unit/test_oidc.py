"""The relying party's pure rules: where a login may return to, PKCE, the authorization request,
and the checks of an ID token, with plain values and keys made here."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from services.identity.domain.oidc import (
    IdClaims,
    InvalidIdToken,
    LoginStart,
    OidcRefused,
    PendingLogin,
    ProviderMetadata,
    authorization_url,
    check_return_to,
    is_expired,
    new_login,
    pkce_challenge,
    verified_email,
    verify_id_token,
    with_parameters,
)

ISSUER = "https://login.city.example"
CLIENT = "commonroom"
NONCE = "the-nonce-of-this-login"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
WEB = "https://web.commonroom.test"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RS256 = frozenset({"RS256"})


def public_jwk(key: Any, **extra: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, **extra}


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "city-person-1",
        "aud": CLIENT,
        "exp": int((NOW + timedelta(minutes=5)).timestamp()),
        "iat": int(NOW.timestamp()),
        "nonce": NONCE,
        "email": "Wang@School.Example",
        "email_verified": True,
        "name": "王老师",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def id_token(
    key: Any = RSA_KEY, algorithm: str = "RS256", kid: str | None = None, **changes: Any
) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers=headers)


def verify(
    token: str,
    keys: list[dict[str, Any]] | None = None,
    algorithms: frozenset[str] = RS256,
    now: datetime = NOW,
) -> IdClaims:
    jwks = {"keys": keys if keys is not None else [public_jwk(RSA_KEY)]}
    return verify_id_token(
        token, jwks, algorithms=algorithms, issuer=ISSUER, client_id=CLIENT, nonce=NONCE, now=now
    )


def test_pkce_challenge_is_rfc_7636s_example() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_each_login_has_its_own_secrets_of_the_lengths_pkce_asks() -> None:
    one, two = new_login(), new_login()
    assert len({one.state, one.nonce, one.code_verifier, two.state, two.nonce}) == 5
    assert 43 <= len(one.code_verifier) <= 128
    assert one.code_challenge == pkce_challenge(one.code_verifier)


def test_authorization_url_asks_for_the_code_flow_with_pkce() -> None:
    metadata = ProviderMetadata(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize?tenant=city",
        token_endpoint=f"{ISSUER}/token",
        jwks_uri=f"{ISSUER}/jwks",
    )
    login = LoginStart(state="s" * 43, nonce="n" * 43, code_verifier="v" * 43)

    url = authorization_url(
        metadata, client_id=CLIENT, redirect_uri="https://id.example/v1/oidc/callback", login=login
    )

    assert url.startswith(f"{ISSUER}/authorize?tenant=city&")
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "tenant": ["city"],
        "response_type": ["code"],
        "client_id": [CLIENT],
        "redirect_uri": ["https://id.example/v1/oidc/callback"],
        "scope": ["openid email profile"],
        "state": ["s" * 43],
        "nonce": ["n" * 43],
        "code_challenge": [pkce_challenge("v" * 43)],
        "code_challenge_method": ["S256"],
    }


def test_client_authentication_follows_the_discovery_document() -> None:
    def method(*supported: str) -> str:
        metadata = ProviderMetadata(
            issuer=ISSUER,
            authorization_endpoint="a",
            token_endpoint="t",
            jwks_uri="j",
            token_endpoint_auth_methods_supported=list(supported),
        )
        return metadata.client_authentication()

    assert method("client_secret_post") == "client_secret_post"
    assert method("client_secret_basic") == "client_secret_basic"
    assert method("client_secret_post", "client_secret_basic") == "client_secret_basic"
    default = ProviderMetadata(
        issuer=ISSUER, authorization_endpoint="a", token_endpoint="t", jwks_uri="j"
    )
    assert default.client_authentication() == "client_secret_basic"
    assert default.id_token_algorithms() == {"RS256"}


def test_id_token_algorithms_are_asymmetric_only() -> None:
    metadata = ProviderMetadata(
        issuer=ISSUER,
        authorization_endpoint="a",
        token_endpoint="t",
        jwks_uri="j",
        id_token_signing_alg_values_supported=["HS256", "none", "RS256", "ES256"],
    )
    assert metadata.id_token_algorithms() == {"RS256", "ES256"}


@pytest.mark.parametrize(
    "return_to",
    [
        f"{WEB}/auth/city?state=abc",
        f"{WEB}:443/auth/city",
        "HTTPS://WEB.commonroom.test/",
        f"{WEB}",
        f"{WEB}/auth/city?state=abc#top",
    ],
)
def test_return_to_of_the_web_origin_is_accepted(return_to: str) -> None:
    assert check_return_to(return_to, WEB) == return_to


@pytest.mark.parametrize(
    "return_to",
    [
        "https://elsewhere.test/",
        "http://web.commonroom.test/",
        "https://web.commonroom.test:444/",
        "https://web.commonroom.test.elsewhere.test/",
        "https://elsewhere.test\\@web.commonroom.test/",
        "https://elsewhere.test\\.web.commonroom.test/",
        "https://web.commonroom.test\t.elsewhere.test/",
        "https://user:pw@web.commonroom.test/",
        "https://web.commonroom.test:99999/",
        "//web.commonroom.test/",
        "/auth/city",
        "",
        "javascript://web.commonroom.test/%0aalert(1)",
        "https://web.commonroom.test/auth?code=planted",
        "https://web.commonroom.test/auth?x=1&error=planted",
        "https://web.commonroom.test/" + "a" * 2000,
    ],
)
def test_return_to_elsewhere_is_refused(return_to: str) -> None:
    with pytest.raises(OidcRefused) as refused:
        check_return_to(return_to, WEB)
    assert refused.value.code == "invalid_return_to"
    assert refused.value.status == 400


def test_return_to_keeps_a_non_default_port_of_web_url() -> None:
    assert check_return_to("http://127.0.0.1:8000/x", "http://127.0.0.1:8000")
    with pytest.raises(OidcRefused):
        check_return_to("http://127.0.0.1/x", "http://127.0.0.1:8000")


def test_parameters_are_added_after_the_pages_own_query_untouched() -> None:
    page = f"{WEB}/auth/city?state=a%2Fb&next=%2Fbookings%3Fweek%3D2#top"
    assert with_parameters(page, code="xyz") == (
        f"{WEB}/auth/city?state=a%2Fb&next=%2Fbookings%3Fweek%3D2&code=xyz#top"
    )
    assert with_parameters(f"{WEB}/auth", error="not_invited") == f"{WEB}/auth?error=not_invited"


def test_a_login_expires_after_ten_minutes() -> None:
    pending = PendingLogin(nonce="n", code_verifier="v", return_to=WEB, created_at=NOW)
    assert not is_expired(pending, NOW + timedelta(minutes=9, seconds=59))
    assert is_expired(pending, NOW + timedelta(minutes=10))


def test_a_good_id_token_gives_its_claims() -> None:
    checked = verify(
        id_token(kid="k1"), [public_jwk(OTHER_RSA_KEY, kid="k0"), public_jwk(RSA_KEY, kid="k1")]
    )
    assert checked == IdClaims(
        issuer=ISSUER,
        subject="city-person-1",
        email="Wang@School.Example",
        email_verified=True,
        name="王老师",
    )
    assert verified_email(checked) == "wang@school.example"


def test_a_token_without_kid_is_checked_with_the_providers_only_key() -> None:
    assert verify(id_token()).subject == "city-person-1"


def test_a_token_without_kid_is_refused_where_the_provider_has_several_keys() -> None:
    with pytest.raises(InvalidIdToken):
        verify(id_token(), [public_jwk(RSA_KEY), public_jwk(OTHER_RSA_KEY)])


def test_a_token_naming_an_unknown_key_is_refused() -> None:
    with pytest.raises(InvalidIdToken):
        verify(id_token(kid="k9"), [public_jwk(RSA_KEY, kid="k1")])


def test_a_token_signed_by_another_key_is_refused() -> None:
    with pytest.raises(InvalidIdToken):
        verify(id_token(OTHER_RSA_KEY))


def test_an_ec_signed_token_is_checked_where_the_provider_announces_es256() -> None:
    token = id_token(EC_KEY, algorithm="ES256")
    assert verify(token, [public_jwk(EC_KEY)], algorithms=frozenset({"ES256"})).subject
    with pytest.raises(InvalidIdToken):  # not announced
        verify(token, [public_jwk(EC_KEY)])


def test_a_token_whose_algorithm_does_not_fit_the_key_is_refused() -> None:
    token = id_token(EC_KEY, algorithm="ES256")
    with pytest.raises(InvalidIdToken):
        verify(token, [public_jwk(RSA_KEY)], algorithms=frozenset({"ES256", "RS256"}))


def _unsigned(header: dict[str, Any], body: dict[str, Any], signature: bytes = b"") -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(body).encode()), part(signature)]
    )


def test_alg_none_and_symmetric_tokens_are_refused() -> None:
    with pytest.raises(InvalidIdToken):
        verify(_unsigned({"alg": "none"}, claims()))
    # HS256 "signed" with the provider's public key as the secret: the classic confusion.
    hs = jwt.encode(claims(), "a-shared-secret-of-at-least-32-bytes!!", algorithm="HS256")
    with pytest.raises(InvalidIdToken):
        verify(hs, algorithms=frozenset({"RS256", "HS256"}))
    with pytest.raises(InvalidIdToken):
        verify("not-a-jwt")


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "https://login.elsewhere.example"},
        {"iss": None},
        {"aud": "another-client"},
        {"aud": ["another-client"]},
        {"aud": None},
        {"aud": [CLIENT, "another-client"]},  # several audiences, and no azp
        {"aud": [CLIENT, "another-client"], "azp": "another-client"},
        {"azp": "another-client"},
        {"exp": int((NOW - timedelta(seconds=61)).timestamp())},
        {"exp": None},
        {"exp": "tomorrow"},
        {"iat": int((NOW + timedelta(seconds=61)).timestamp())},
        {"iat": int((NOW - timedelta(minutes=12)).timestamp())},
        {"iat": None},
        {"nbf": int((NOW + timedelta(minutes=2)).timestamp())},
        {"nonce": "someone-elses-nonce"},
        {"nonce": None},
        {"sub": None},
        {"sub": ""},
        {"sub": "x" * 256},
    ],
)
def test_claims_that_do_not_hold_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidIdToken):
        verify(id_token(**changes))


def test_clocks_may_differ_by_a_minute() -> None:
    token = id_token(
        iat=int((NOW + timedelta(seconds=50)).timestamp()),
        exp=int((NOW - timedelta(seconds=50)).timestamp()),
    )
    assert verify(token).subject == "city-person-1"


def test_several_audiences_are_accepted_with_azp_naming_us() -> None:
    assert verify(id_token(aud=[CLIENT, "another"], azp=CLIENT)).subject


@pytest.mark.parametrize(
    "changes",
    [
        {"email_verified": False},
        {"email_verified": "true"},
        {"email_verified": None},
        {"email": None},
    ],
)
def test_only_an_address_the_provider_verified_is_used(changes: dict[str, Any]) -> None:
    assert verified_email(verify(id_token(**changes))) is None
