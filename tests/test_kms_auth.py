"""KMS bearer-token authentication and authorisation (3GPP TS 33.180 Annex B; RFC 6750, RFC 7519)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwks_server import JwksServer, self_signed
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from mikey.cli import main
from mikey.errors import KeyMaterialError, KmsAuthError, KmsForbiddenError, KmsUnauthorizedError
from mikey.kms.auth import (
    ADMIN_SCOPE,
    DEV_AUDIENCE,
    DEV_ISSUER,
    DEV_JWKS_FILE,
    DEV_KEY_FILE,
    JWKS_DEFAULT_TTL,
    JWKS_MAX_TTL,
    JWKS_MIN_REFRESH_INTERVAL,
    JWKS_MIN_TTL,
    USER_SCOPE,
    BearerAuth,
    BearerPolicy,
    DevIssuer,
    FileJwks,
    KeySet,
    NoIssuer,
    RefreshableJwksSource,
    StaticJwks,
    UrlJwks,
    _create_key,
    _max_age,
    authorize_user,
    require_admin,
    www_authenticate,
)

NOW = 1_800_000_000.0
ISSUER = "https://idms.example.org"
AUDIENCE = "kms.example.org"
ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"

EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = ECAlgorithm if isinstance(key, ec.EllipticCurvePublicKey) else RSAAlgorithm
    return {**json.loads(algorithm.to_jwk(key)), "kid": kid, "use": "sig"}


JWKS = {"keys": [_jwk(EC_KEY.public_key(), "ec1"), _jwk(RSA_KEY.public_key(), "rsa1")]}


def _auth(**overrides: Any) -> BearerAuth:
    return BearerAuth(BearerPolicy(issuer=ISSUER, audience=AUDIENCE, jwks=StaticJwks(JWKS), **overrides))


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "mcptt-client-A", "mcptt_id": ALICE,
        "scope": f"openid {USER_SCOPE}", "iat": int(NOW) - 10, "exp": int(NOW) + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _token(key: Any = EC_KEY, alg: str = "ES256", kid: str | None = "ec1", **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(_claims(**changes), key, algorithm=alg, headers=headers)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _refused(auth: BearerAuth | NoIssuer, header: str | bytes | None, now: float = NOW) -> KmsAuthError:
    with pytest.raises(KmsAuthError) as info:
        auth.verify_bearer(header, now)
    return info.value


# --- accepted tokens -----------------------------------------------------------------------------


def test_valid_user_token_gives_the_principal() -> None:
    principal = _auth().verify_bearer("Bearer " + _token(), NOW)
    assert principal.user_uri == ALICE
    assert principal.subject == "mcptt-client-A"  # deployed servers: sub names the client, not the user
    assert principal.scopes == frozenset({"openid", USER_SCOPE})
    assert principal.has_user_scope and not principal.is_admin
    assert principal.issuer == ISSUER and principal.expires_at == NOW + 600
    authorize_user(principal, ALICE)


def test_rs256_token_with_deployed_claim_shapes() -> None:
    """A deployed IdM access token: RS256, scope as a JSON array, no aud, mcptt_id beside client_id."""
    token = _token(RSA_KEY, "RS256", "rsa1", aud=None, scope=["3gpp:mcptt:ptt_server", "openid", USER_SCOPE],
                   client_id="mcptt_client")
    err = _refused(_auth(), "Bearer " + token)
    assert (err.status, err.reason) == (401, "wrong-audience") and "allow_missing_audience" in str(err)
    principal = _auth(allow_missing_audience=True).verify_bearer("Bearer " + token, NOW)
    assert principal.user_uri == ALICE and USER_SCOPE in principal.scopes


def test_scheme_is_case_insensitive_and_audience_may_be_a_list() -> None:
    token = _token(aud=["other", AUDIENCE])
    assert _auth().verify_bearer(b"bearer   " + token.encode(), NOW).user_uri == ALICE


def test_leeway_applies_to_exp_and_nbf() -> None:
    auth = _auth(leeway=30)
    assert auth.verify_bearer("Bearer " + _token(exp=int(NOW) - 29), NOW).user_uri == ALICE
    assert auth.verify_bearer("Bearer " + _token(nbf=int(NOW) + 29), NOW).user_uri == ALICE
    assert _refused(auth, "Bearer " + _token(exp=int(NOW) - 30)).reason == "expired"


def test_configured_identity_claim() -> None:
    token = _token(mcptt_id=None, sub=BOB)
    assert _refused(_auth(), "Bearer " + token).reason == "no-identity"
    assert _auth(identity_claims=("mcptt_id", "sub")).verify_bearer("Bearer " + token, NOW).user_uri == BOB


# --- the verified-token cache ----------------------------------------------------------------------


class _CountingDecode:
    """Wraps ``jwt.decode_complete`` (the signature check) and counts its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._real = jwt.decode_complete
        monkeypatch.setattr(jwt, "decode_complete", self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self._real(*args, **kwargs)


def test_cached_principal_equals_a_fresh_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    decode = _CountingDecode(monkeypatch)
    auth, token = _auth(), "Bearer " + _token(scope=f"{USER_SCOPE} {ADMIN_SCOPE}")
    first = auth.verify_bearer(token, NOW)
    again = auth.verify_bearer(token, NOW + 100)
    assert decode.calls == 1  # the second answer came from the cache, without a signature check
    fresh = BearerAuth(_auth().policy, cache_size=0).verify_bearer(token, NOW + 100)
    assert decode.calls == 2
    assert again == first == fresh
    assert (fresh.user_uri, fresh.is_admin, fresh.expires_at) == (ALICE, True, NOW + 600)
    # The cache holds SHA-256 digests of tokens, never a token.
    assert list(auth._cache) == [hashlib.sha256(token.removeprefix("Bearer ").encode()).digest()]


def test_cached_token_is_refused_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    decode = _CountingDecode(monkeypatch)
    auth, token = _auth(leeway=30), "Bearer " + _token(exp=int(NOW) + 600)
    assert auth.verify_bearer(token, NOW).user_uri == ALICE
    assert auth.verify_bearer(token, NOW + 629).user_uri == ALICE
    assert decode.calls == 1
    err = _refused(auth, token, NOW + 630)
    assert (err.status, err.reason) == (401, "expired")
    assert _refused(auth, token, NOW + 631).reason == "expired"  # refusals are not cached as anything else


def test_cached_token_respects_nbf_and_iat(monkeypatch: pytest.MonkeyPatch) -> None:
    _CountingDecode(monkeypatch)
    auth = _auth(leeway=30)
    early = "Bearer " + _token(nbf=int(NOW) + 100, iat=int(NOW) + 100)
    assert auth.verify_bearer(early, NOW + 100).user_uri == ALICE  # now cached
    assert auth.verify_bearer(early, NOW + 70).user_uri == ALICE  # within the leeway
    assert _refused(auth, early, NOW + 69).reason == "not-yet-valid"
    assert _refused(auth, early, NOW).reason == "not-yet-valid"
    assert auth.verify_bearer(early, NOW + 200).user_uri == ALICE


def test_cache_forgets_tokens_when_the_jwks_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decode = _CountingDecode(monkeypatch)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(JWKS))
    source = FileJwks(path)
    auth = BearerAuth(BearerPolicy(issuer=ISSUER, audience=AUDIENCE, jwks=source))
    ec_token, rsa_token = "Bearer " + _token(), "Bearer " + _token(RSA_KEY, "RS256", "rsa1")
    assert auth.verify_bearer(ec_token, NOW).user_uri == ALICE
    assert auth.verify_bearer(rsa_token, NOW).user_uri == ALICE
    assert decode.calls == 2
    path.write_text(json.dumps({"keys": [JWKS["keys"][1]]}))  # the identity server dropped ec1
    source.reload()
    assert _refused(auth, ec_token).reason == "unknown-key"
    assert auth.verify_bearer(rsa_token, NOW).user_uri == ALICE
    assert decode.calls == 3  # rsa1 verified again under the new key set
    assert auth.verify_bearer(rsa_token, NOW).user_uri == ALICE
    assert decode.calls == 3


def test_cache_is_bounded_least_recently_used_first(monkeypatch: pytest.MonkeyPatch) -> None:
    decode = _CountingDecode(monkeypatch)
    auth = BearerAuth(_auth().policy, cache_size=2)
    tokens = ["Bearer " + _token(sub=f"client-{i}") for i in range(3)]
    for token in tokens:
        auth.verify_bearer(token, NOW)
    assert decode.calls == 3 and len(auth._cache) == 2
    auth.verify_bearer(tokens[2], NOW)
    auth.verify_bearer(tokens[1], NOW)
    assert decode.calls == 3
    assert auth.verify_bearer(tokens[0], NOW).subject == "client-0"  # was dropped: verified again
    assert decode.calls == 4 and len(auth._cache) == 2
    auth.verify_bearer(tokens[1], NOW)
    assert decode.calls == 4
    auth.verify_bearer(tokens[2], NOW)  # the least recently used one went
    assert decode.calls == 5


def test_refused_tokens_are_never_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    decode = _CountingDecode(monkeypatch)
    auth = _auth()
    no_scope = "Bearer " + _token(scope="openid")
    for _ in range(2):
        with pytest.raises(KmsForbiddenError):
            auth.verify_bearer(no_scope, NOW)
    forged = "Bearer " + _token(OTHER_EC_KEY)
    assert _refused(auth, forged).reason == "bad-signature"
    assert _refused(auth, forged).reason == "bad-signature"
    assert decode.calls == 4 and len(auth._cache) == 0


# --- 401: refused tokens, each with its own reason ----------------------------------------------


def _hs256_with_public_key() -> str:
    """The algorithm-confusion token: HS256 keyed with the verifier's public key (PEM)."""
    pem = EC_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64({"alg": "HS256", "kid": "ec1", "typ": "JWT"})
    signing_input = f"{header}.{_b64(_claims())}"
    import hashlib
    import hmac

    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


REFUSALS: list[tuple[str, str | None, str]] = [
    ("missing", None, "missing"),
    ("empty", "", "missing"),
    ("basic", "Basic YWxpY2U6c2VjcmV0", "not-bearer"),
    ("bearer-alone", "Bearer", "malformed"),
    ("bearer-space", "Bearer ", "malformed"),
    ("two-tokens", "Bearer abc def", "malformed"),
    ("garbage", "Bearer not-a-jwt", "malformed"),
    ("garbage-segments", "Bearer a.b.c", "malformed"),
    ("expired", "Bearer " + _token(exp=int(NOW) - 3600), "expired"),
    ("not-yet-valid", "Bearer " + _token(nbf=int(NOW) + 3600), "not-yet-valid"),
    ("issued-in-future", "Bearer " + _token(iat=int(NOW) + 3600), "not-yet-valid"),
    ("no-exp", "Bearer " + _token(exp=None), "invalid-claims"),
    ("other-key", "Bearer " + _token(OTHER_EC_KEY), "bad-signature"),
    ("unknown-kid", "Bearer " + _token(kid="nobody"), "unknown-key"),
    ("no-kid-two-keys", "Bearer " + _token(kid=None), "unknown-key"),
    ("rsa-alg-on-ec-key", "Bearer " + _token(RSA_KEY, "RS256", "ec1"), "key-algorithm"),
    ("wrong-audience", "Bearer " + _token(aud="another-service"), "wrong-audience"),
    ("no-audience", "Bearer " + _token(aud=None), "wrong-audience"),
    ("wrong-issuer", "Bearer " + _token(iss="https://evil.example"), "wrong-issuer"),
    ("no-issuer", "Bearer " + _token(iss=None), "wrong-issuer"),
    ("alg-none", "Bearer " + jwt.encode(_claims(), None, algorithm="none", headers={"kid": "ec1"}), "algorithm"),
    ("hs256-public-key", "Bearer " + _hs256_with_public_key(), "algorithm"),
    ("bad-scope-type", "Bearer " + _token(scope=7), "invalid-claims"),
    ("bad-exp-type", "Bearer " + _token(exp="tomorrow"), "invalid-claims"),
]


@pytest.mark.parametrize(("name", "header", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_tokens_are_401_with_their_reason(
    name: str, header: str | None, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    err = _refused(_auth(), header)
    assert isinstance(err, KmsUnauthorizedError)
    assert (err.status, err.reason) == (401, reason)
    assert err.kind == "kms-auth" and str(err)
    assert reason in caplog.text  # logged with its reason ...
    token = (header or "").partition(" ")[2]
    if len(token) > 3:  # ... never with the token
        for text in (str(err), repr(err), caplog.text, *map(str, err.args)):
            assert token not in text
        assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_reasons_name_what_is_wrong() -> None:
    auth = _auth()
    assert "expired" in str(_refused(auth, "Bearer " + _token(exp=int(NOW) - 3600)))
    assert "'nobody'" in str(_refused(auth, "Bearer " + _token(kid="nobody")))
    assert "'none'" in str(_refused(auth, "Bearer " + jwt.encode(_claims(), None, algorithm="none")))
    assert "'HS256'" in str(_refused(auth, "Bearer " + _hs256_with_public_key()))
    assert "audience" in str(_refused(auth, "Bearer " + _token(aud="x")))
    assert "issuer" in str(_refused(auth, "Bearer " + _token(iss="x")))


def test_tokens_never_in_error_text_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = _token()
    cases = [
        "Bearer " + good + "x",  # bad signature
        "Bearer " + good[:-4] + "!!!!",  # not b64token
        "Bearer " + good + " " + good,  # two tokens
        "Basic " + good,  # another scheme
        "Bearer " + good.replace(".", "", 1),  # two segments
    ]
    for header in cases:
        err = _refused(_auth(), header)
        for text in (str(err), repr(err), caplog.text):
            assert good not in text and good[:60] not in text and good[-40:] not in text


# --- 403: valid tokens that do not allow the request -------------------------------------------


def test_token_without_key_management_scope_is_403() -> None:
    err = _refused(_auth(), "Bearer " + _token(scope="openid 3gpp:mcptt:ptt_server"))
    assert isinstance(err, KmsForbiddenError) and (err.status, err.reason) == (403, "insufficient-scope")
    assert USER_SCOPE in str(err)


def test_user_a_asking_for_user_b_is_403() -> None:
    principal = _auth().verify_bearer("Bearer " + _token(), NOW)
    with pytest.raises(KmsForbiddenError) as info:
        _auth().authorize_user(principal, BOB)
    assert (info.value.status, info.value.reason) == (403, "other-user")
    with pytest.raises(KmsForbiddenError):  # compared exactly, not case-folded
        authorize_user(principal, ALICE.upper())
    with pytest.raises(KmsForbiddenError) as info:
        require_admin(principal)
    assert info.value.reason == "insufficient-scope"


def test_admin_acts_for_other_users_unless_configured_not_to() -> None:
    token = "Bearer " + _token(mcptt_id=None, scope=ADMIN_SCOPE)
    principal = _auth().verify_bearer(token, NOW)
    assert principal.is_admin and principal.user_uri is None and not principal.has_user_scope
    require_admin(principal)
    _auth().authorize_user(principal, BOB)
    strict = _auth(admin_acts_for_users=False)
    with pytest.raises(KmsForbiddenError) as info:
        strict.authorize_user(strict.verify_bearer(token, NOW), BOB)
    assert info.value.reason == "insufficient-scope"


def test_www_authenticate_follows_rfc6750_section_3() -> None:
    auth = _auth()
    assert www_authenticate() == 'Bearer realm="mikey-kms"'
    assert www_authenticate(_refused(auth, None), realm="kms") == 'Bearer realm="kms"'
    assert www_authenticate(_refused(auth, "Basic eA==")) == 'Bearer realm="mikey-kms"'
    expired = www_authenticate(_refused(auth, "Bearer " + _token(exp=int(NOW) - 100)))
    assert expired == ('Bearer realm="mikey-kms", error="invalid_token", '
                       'error_description="token expired 100 s ago"')
    kid = www_authenticate(_refused(auth, "Bearer " + _token(kid="nobody")))
    assert kid.endswith('error_description="token signed by an unknown key (kid \'nobody\')"')
    quoted = www_authenticate(KmsUnauthorizedError('say "hi" \\ \u00e9\n', reason="x"))
    assert quoted.endswith('error_description="say ?hi? ? ??"')
    forbidden = www_authenticate(_refused(auth, "Bearer " + _token(scope="openid")))
    assert forbidden.startswith('Bearer realm="mikey-kms", error="insufficient_scope", error_description="token lacks')
    assert forbidden.endswith(f'scope="{USER_SCOPE}"')


# --- configuration -----------------------------------------------------------------------------


def test_policy_refuses_symmetric_or_none_algorithms_and_large_leeway() -> None:
    for algorithms in (("HS256",), ("ES256", "none"), ()):
        with pytest.raises(ValueError, match="asymmetric"):
            BearerPolicy(issuer=ISSUER, audience=AUDIENCE, jwks=StaticJwks(JWKS), algorithms=algorithms)
    with pytest.raises(ValueError, match="leeway"):
        BearerPolicy(issuer=ISSUER, audience=AUDIENCE, jwks=StaticJwks(JWKS), leeway=3600)
    with pytest.raises(ValueError, match="audience"):
        BearerPolicy(issuer=ISSUER, audience="", jwks=StaticJwks(JWKS))


def test_policy_algorithms_restrict_verification() -> None:
    err = _refused(_auth(algorithms=("ES256",)), "Bearer " + _token(RSA_KEY, "RS256", "rsa1"))
    assert err.reason == "algorithm"


def test_key_set_checks_its_keys() -> None:
    private = {**json.loads(ECAlgorithm.to_jwk(EC_KEY)), "kid": "leak"}
    with pytest.raises(KeyMaterialError, match="private"):
        KeySet({"keys": [private]})
    with pytest.raises(KeyMaterialError, match="private or symmetric"):
        KeySet({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})
    with pytest.raises(KeyMaterialError, match="second key"):
        KeySet({"keys": [JWKS["keys"][0], JWKS["keys"][0]]})
    with pytest.raises(KeyMaterialError, match="2048"):
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        KeySet({"keys": [_jwk(small, "small")]})
    with pytest.raises(KeyMaterialError, match="no signature"):
        KeySet({"keys": [{**JWKS["keys"][0], "use": "enc"}]})
    with pytest.raises(KeyMaterialError, match="keys"):
        KeySet({"kty": "EC"})
    # An encryption key beside the signing key is skipped; the single signing key serves tokens without kid.
    only = KeySet({"keys": [{**JWKS["keys"][1], "use": "enc"}, JWKS["keys"][0]]})
    assert len(only) == 1
    auth = BearerAuth(BearerPolicy(issuer=ISSUER, audience=AUDIENCE, jwks=StaticJwks(only)))
    assert auth.verify_bearer("Bearer " + _token(kid=None), NOW).user_uri == ALICE


def test_key_declared_alg_binds_it() -> None:
    jwks = {"keys": [{**JWKS["keys"][1], "alg": "PS256"}]}
    auth = BearerAuth(BearerPolicy(issuer=ISSUER, audience=AUDIENCE, jwks=StaticJwks(jwks),
                                   algorithms=("RS256", "PS256")))
    assert auth.verify_bearer("Bearer " + _token(RSA_KEY, "PS256", "rsa1"), NOW).user_uri == ALICE
    assert _refused(auth, "Bearer " + _token(RSA_KEY, "RS256", "rsa1")).reason == "key-algorithm"


def test_file_jwks_loads_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [JWKS["keys"][0]]}))
    source = FileJwks(path)
    auth = BearerAuth(BearerPolicy(issuer=ISSUER, audience=AUDIENCE, jwks=source))
    assert auth.verify_bearer("Bearer " + _token(), NOW).user_uri == ALICE
    path.write_text(json.dumps({"keys": [_jwk(OTHER_EC_KEY.public_key(), "ec2")]}))
    source.reload()
    assert _refused(auth, "Bearer " + _token()).reason == "unknown-key"
    assert auth.verify_bearer("Bearer " + _token(OTHER_EC_KEY, kid="ec2"), NOW).user_uri == ALICE
    path.write_text("{not json")
    with pytest.raises(KeyMaterialError, match="not JSON"):
        FileJwks(path)
    with pytest.raises(KeyMaterialError, match="cannot read"):
        FileJwks(tmp_path / "absent.json")


# --- the development issuer ----------------------------------------------------------------------


def test_dev_issuer_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "kms"
    issuer = DevIssuer.load_or_create(data)
    key_file, jwks_file = data / DEV_KEY_FILE, data / DEV_JWKS_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key_file.read_bytes()
    jwks = json.loads(jwks_file.read_text())
    assert jwks == issuer.jwks() and jwks["keys"][0]["kid"] == issuer.kid and "d" not in jwks["keys"][0]
    token = issuer.issue(ALICE, ttl=120, now=NOW)
    auth = BearerAuth(BearerPolicy(issuer=DEV_ISSUER, audience=DEV_AUDIENCE, jwks=FileJwks(jwks_file)))
    principal = auth.verify_bearer("Bearer " + token, NOW + 60)
    assert principal.user_uri == ALICE and principal.scopes == {USER_SCOPE} and not principal.is_admin
    assert principal.expires_at == int(NOW) + 120
    assert _refused(auth, "Bearer " + token, NOW + 120 + 31).reason == "expired"
    admin = auth.verify_bearer("Bearer " + issuer.issue(BOB, admin=True, now=NOW), NOW)
    assert admin.is_admin and admin.user_uri == BOB and admin.scopes == {USER_SCOPE, ADMIN_SCOPE}
    # The same key next time; another directory's tokens do not verify.
    assert DevIssuer.load_or_create(data).kid == issuer.kid
    other = DevIssuer.load_or_create(tmp_path / "other")
    assert other.kid != issuer.kid
    assert _refused(auth, "Bearer " + other.issue(ALICE, now=NOW)).reason == "unknown-key"
    assert issuer.policy().issuer == DEV_ISSUER
    assert issuer.kid in repr(issuer) and "PRIVATE" not in repr(issuer)


def test_dev_issuer_key_is_never_replaced_once_created(tmp_path: Path) -> None:
    """A second creator (another process starting at the same time) keeps the first key."""
    first = DevIssuer.load_or_create(tmp_path)
    _create_key(tmp_path / DEV_KEY_FILE)
    assert DevIssuer.load_or_create(tmp_path).kid == first.kid
    assert sorted(p.name for p in tmp_path.iterdir()) == [DEV_JWKS_FILE, DEV_KEY_FILE]


def test_dev_issuer_refuses_bad_key_files_and_arguments(tmp_path: Path) -> None:
    issuer = DevIssuer.load_or_create(tmp_path)
    with pytest.raises(ValueError):
        issuer.issue(ALICE, ttl=0, now=NOW)
    with pytest.raises(ValueError):
        issuer.issue("", now=NOW)
    key_file = tmp_path / DEV_KEY_FILE
    os.chmod(key_file, 0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        DevIssuer.load_or_create(tmp_path)
    key_file.unlink()
    rsa_pem = RSA_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, rsa_pem)
    os.close(fd)
    with pytest.raises(KeyMaterialError, match="P-256"):
        DevIssuer.load_or_create(tmp_path)
    key_file.unlink()
    key_file.symlink_to(tmp_path / "elsewhere.pem")
    with pytest.raises(KeyMaterialError, match="symbolic link"):
        DevIssuer.load_or_create(tmp_path)


def test_cli_kms_token_prints_one_verifiable_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "kms"
    assert main(["kms", "token", "--data", str(data), "--user", ALICE, "--ttl", "300"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].count(".") == 2
    assert stat.S_IMODE((data / DEV_KEY_FILE).stat().st_mode) == 0o600
    auth = BearerAuth(BearerPolicy(issuer=DEV_ISSUER, audience=DEV_AUDIENCE, jwks=FileJwks(data / DEV_JWKS_FILE)))
    now = time.time()
    principal = auth.verify_bearer("Bearer " + lines[0], now)
    assert principal.user_uri == ALICE and not principal.is_admin
    assert now + 240 < principal.expires_at <= now + 301
    assert main(["kms", "token", "--data", str(data), "--user", BOB, "--admin"]) == 0
    admin = auth.verify_bearer("Bearer " + capsys.readouterr().out.strip(), time.time())
    assert admin.is_admin and admin.user_uri == BOB


def test_cli_kms_token_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kms", "token", "--data", str(tmp_path), "--user", ALICE, "--ttl", "0"]) == 2
    assert "--ttl" in capsys.readouterr().err
    assert main(["kms", "token", "--data", str(tmp_path)]) == 2
    capsys.readouterr()
    DevIssuer.load_or_create(tmp_path)
    os.chmod(tmp_path / DEV_KEY_FILE, 0o640)
    assert main(["kms", "token", "--data", str(tmp_path), "--user", ALICE]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("mikey: error: --data:") and "chmod 600" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


# --- fuzz ----------------------------------------------------------------------------------------

GOOD = _token()


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=200),
    st.text(max_size=200).map(lambda s: "Bearer " + s),
    st.binary(max_size=200).map(lambda b: b"Bearer " + b),
    st.tuples(st.integers(0, len(GOOD) - 1), st.characters()).map(
        lambda t: "Bearer " + GOOD[: t[0]] + t[1] + GOOD[t[0] + 1:]),
    st.lists(st.sampled_from(["e30", "eyJhbGciOiJFUzI1NiJ9", "", "AA", "=", ".", "null", "W10"]), max_size=6).map(
        lambda parts: "Bearer " + ".".join(parts)),
))
def test_fuzzed_headers_raise_only_the_typed_error(header: str | bytes) -> None:
    try:
        principal = _auth().verify_bearer(header, NOW)
    except KmsAuthError as err:
        assert err.status in (401, 403) and err.reason
    else:  # a mutation that leaves a valid token (e.g. the same character) is still Alice's
        assert principal.user_uri == ALICE


# --- JWKS from the identity server's jwks_uri (UrlJwks) -----------------------------------------


class Clock:
    """A monotonic clock the test moves by hand (the TTL and the rate limit read it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


EC1 = {"keys": [JWKS["keys"][0]]}
EC2 = {"keys": [_jwk(OTHER_EC_KEY.public_key(), "ec2")]}
BOTH = {"keys": [*EC1["keys"], *EC2["keys"]]}


def _url_auth(source: UrlJwks) -> BearerAuth:
    return BearerAuth(BearerPolicy(issuer=ISSUER, audience=AUDIENCE, jwks=source))


def test_url_jwks_fetches_once_and_verifies() -> None:
    with JwksServer(EC1) as idp:
        source = UrlJwks(idp.url, clock=Clock())
        auth = _url_auth(source)
        for _ in range(5):
            assert auth.verify_bearer("Bearer " + _token(), NOW).user_uri == ALICE
        assert idp.hits == 1 and source.fetches == 1 and source.failures == 0
        assert idp.requests[0]["Accept"].startswith("application/jwk-set+json")
        assert source.key_set().kids == ("ec1",) and "ec1" in repr(source)
        assert isinstance(source, RefreshableJwksSource)


def test_url_jwks_picks_up_a_key_rotation_through_an_unknown_kid(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mikey.kms.auth")
    clock = Clock()
    with JwksServer(EC1) as idp:
        auth = _url_auth(source := UrlJwks(idp.url, clock=clock))
        clock.now += JWKS_MIN_REFRESH_INTERVAL  # the start's fetch is not too recent any more
        idp.set(EC2)  # the identity server rotates: ec1 out, ec2 in
        assert auth.verify_bearer("Bearer " + _token(OTHER_EC_KEY, kid="ec2"), NOW).user_uri == ALICE
        assert idp.hits == 2 and source.key_set().kids == ("ec2",)
        assert "keys now ['ec2'] (were ['ec1'])" in caplog.text
        assert _refused(auth, "Bearer " + _token()).reason == "unknown-key"  # ec1 is gone
        assert idp.hits == 2  # ... and asking again for it so soon fetches nothing


def test_url_jwks_unknown_kid_refreshes_are_rate_limited() -> None:
    clock = Clock()
    with JwksServer(EC1) as idp:
        auth = _url_auth(UrlJwks(idp.url, clock=clock))
        flood = ["Bearer " + _token(OTHER_EC_KEY, kid=f"random-{i}") for i in range(40)]
        for header in flood:  # within the interval after the start's fetch: nothing fetched
            assert _refused(auth, header).reason == "unknown-key"
        assert idp.hits == 1
        clock.now += JWKS_MIN_REFRESH_INTERVAL
        for header in flood:  # one fetch for the whole flood
            assert _refused(auth, header).reason == "unknown-key"
        assert idp.hits == 2
        idp.set(BOTH)  # now a real new key appears, within the interval: not fetched yet
        clock.now += JWKS_MIN_REFRESH_INTERVAL - 1
        assert _refused(auth, "Bearer " + _token(OTHER_EC_KEY, kid="ec2")).reason == "unknown-key"
        assert idp.hits == 2
        clock.now += 1
        assert auth.verify_bearer("Bearer " + _token(OTHER_EC_KEY, kid="ec2"), NOW).user_uri == ALICE
        assert idp.hits == 3


def test_url_jwks_concurrent_unknown_kids_fetch_once() -> None:
    clock = Clock()
    with JwksServer(EC1) as idp:
        auth = _url_auth(UrlJwks(idp.url, clock=clock))
        idp.set(BOTH)
        clock.now += JWKS_MIN_REFRESH_INTERVAL
        headers = ["Bearer " + _token(OTHER_EC_KEY, kid=kid) for kid in ["ec2"] * 8 + [f"x{i}" for i in range(8)]]
        results: list[str] = []
        lock = threading.Lock()

        def verify(header: str) -> None:
            try:
                outcome = auth.verify_bearer(header, NOW).user_uri or ""
            except KmsAuthError as err:
                outcome = err.reason
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=verify, args=(h,)) for h in headers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert idp.hits == 2
        assert sorted(results) == sorted([ALICE] * 8 + ["unknown-key"] * 8)


def test_url_jwks_cache_lifetime_follows_cache_control_within_bounds() -> None:
    clock = Clock()
    cases = [({"Cache-Control": "public, max-age=120"}, 120.0), ({}, JWKS_DEFAULT_TTL),
             ({"Cache-Control": "max-age=5"}, JWKS_MIN_TTL), ({"Cache-Control": "max-age=999999999"}, JWKS_MAX_TTL),
             ({"Cache-Control": "no-store"}, JWKS_MIN_TTL), ({"Cache-Control": "max-age=junk"}, JWKS_DEFAULT_TTL)]
    with JwksServer(EC1) as idp:
        for headers, ttl in cases:
            idp.set(EC1, headers=headers)
            hits = idp.hits
            source = UrlJwks(idp.url, clock=clock)
            assert idp.hits == hits + 1
            clock.now += ttl - 1
            source.key_set()
            assert idp.hits == hits + 1, headers  # still fresh
            idp.set(EC2, headers=headers)
            clock.now += 1
            assert source.key_set().kids == ("ec2",), headers  # expired: fetched again on use
            assert idp.hits == hits + 2
            clock.now += 1


def test_max_age_parsing() -> None:
    assert _max_age(None) is None and _max_age("") is None and _max_age("public") is None
    assert _max_age("max-age=60") == 60 and _max_age('Max-Age="90", public') == 90
    assert _max_age("no-cache, max-age=600") == 0 and _max_age("max-age=-5") is None
    assert _max_age("max-age=\u0661\u0662") is None  # Unicode digits are not a delta-seconds
    assert _max_age("max-age=" + "9" * 40) == 999_999_999_999


def test_url_jwks_keeps_the_last_good_set_when_a_refresh_fails(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mikey.kms.auth")
    clock = Clock()
    with JwksServer(EC1) as idp:
        source = UrlJwks(idp.url, clock=clock)
        auth = _url_auth(source)
        failures = [(b"", 500, "HTTP status 500"), (b"<html>oops</html>", 200, "not JSON"),
                    (json.dumps({"keys": []}).encode(), 200, "no signature-verification key")]
        for body, status, message in failures:
            idp.set(body, status=status)
            clock.now += JWKS_DEFAULT_TTL
            assert source.key_set().kids == ("ec1",)
            assert auth.verify_bearer("Bearer " + _token(), NOW).user_uri == ALICE
            assert message in caplog.text and "still using the 1 key(s)" in caplog.text
            caplog.clear()
        assert (source.fetches, source.failures) == (4, 3)
        hits = idp.hits
        clock.now += JWKS_MIN_REFRESH_INTERVAL - 1  # after a failure, no retry before the interval
        source.key_set()
        assert idp.hits == hits
        with pytest.raises(KeyMaterialError, match="no signature-verification key"):
            source.refresh()  # a forced refresh reports the failure
        idp.set(EC2)
        clock.now += JWKS_MIN_REFRESH_INTERVAL
        assert source.key_set().kids == ("ec2",)  # recovered
    clock.now += JWKS_DEFAULT_TTL  # the identity server is gone: connection refused
    assert source.key_set().kids == ("ec2",)
    assert "cannot fetch" in caplog.text and source.failures == 5


@pytest.mark.parametrize(("body", "status", "headers", "message"), [
    (b"{" + b" " * 5000 + b"}", 200, {}, "larger than 4096 bytes"),
    (json.dumps({"keys": [JWKS["keys"][0]] * 40}).encode(), 200, {"chunked": ""}, "larger than 4096 bytes"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), 200, {}, "not JSON"),
    (b"[" * 2000 + b"]" * 2000, 200, {"chunked": ""}, "not JSON"),
    (b"[]", 200, {}, "not a JSON object"),
    (json.dumps({"keys": "none"}).encode(), 200, {}, "no 'keys' array"),
    (json.dumps({"keys": [{**json.loads(ECAlgorithm.to_jwk(EC_KEY)), "kid": "x"}]}).encode(), 200, {}, "private"),
    (b"not found", 404, {}, "HTTP status 404"),
    (b"", 302, {"Location": "http://evil.example/jwks.json"}, "redirects are not followed"),
], ids=["oversize-length", "oversize-unannounced", "binary", "deep-nesting", "array", "no-keys", "private-key",
        "404", "redirect"])
def test_url_jwks_refuses_bad_answers_with_a_clear_error(body: bytes, status: int, headers: dict[str, str],
                                                         message: str) -> None:
    with JwksServer(EC1) as idp:
        unannounced = headers.pop("chunked", None) is not None
        idp.send_length = not unannounced
        idp.set(body, status=status, headers=headers)
        with pytest.raises(KeyMaterialError) as info:
            UrlJwks(idp.url, max_bytes=4096)
        assert message in str(info.value) and idp.url in str(info.value)
        assert info.value.__cause__ is None and (info.value.__context__ is None or info.value.__suppress_context__)


def test_url_jwks_bounds_the_time_of_a_slow_answer() -> None:
    with JwksServer(EC1) as idp:
        idp.drip = 0.05  # one byte every 50 ms: each read is quick, the whole answer is not
        with pytest.raises(KeyMaterialError, match=r"no complete answer within 0\.5 s"):
            UrlJwks(idp.url, timeout=0.5)
        assert idp.hits == 1


def test_url_jwks_url_rules(tmp_path: Path) -> None:
    for url in ("ftp://127.0.0.1/jwks.json", "https:///jwks.json", "/etc/jwks.json"):
        with pytest.raises(ValueError, match="https://"):
            UrlJwks(url)
    with pytest.raises(ValueError, match=r"https:// \(plain http only for a loopback host"):
        UrlJwks("http://idp.example.org/jwks.json")  # refused before any connection
    with pytest.raises(ValueError, match="credentials"):
        UrlJwks("https://user:secret@idp.example.org/jwks.json")
    with pytest.raises(ValueError, match="https:// JWKS URLs only"):
        UrlJwks("http://127.0.0.1:1/jwks.json", ca_file=tmp_path / "ca.pem")
    with pytest.raises(KeyMaterialError, match="cannot load the CA file"):
        UrlJwks("https://127.0.0.1:1/jwks.json", ca_file=tmp_path / "absent.pem")
    with pytest.raises(KeyMaterialError, match="cannot fetch"):
        UrlJwks("http://127.0.0.1:1/jwks.json")  # loopback http is allowed; nothing listens there
    with JwksServer(EC1) as idp:
        assert UrlJwks(idp.url.replace("127.0.0.1", "localhost")).key_set().kids == ("ec1",)


def test_url_jwks_over_https_with_a_ca_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with JwksServer(EC1, tls=(cert, key)) as idp:
        assert idp.url.startswith("https://127.0.0.1:")
        source = UrlJwks(idp.url, ca_file=cert)
        assert _url_auth(source).verify_bearer("Bearer " + _token(), NOW).user_uri == ALICE
        with pytest.raises(KeyMaterialError, match="CERTIFICATE_VERIFY_FAILED"):
            UrlJwks(idp.url)  # the system's CAs do not know this server
        other, _ = self_signed(tmp_path, "other")
        with pytest.raises(KeyMaterialError, match="CERTIFICATE_VERIFY_FAILED"):
            UrlJwks(idp.url, ca_file=other)


def test_no_issuer_refuses_every_request() -> None:
    err = _refused(NoIssuer(), "Bearer " + _token())
    assert (err.status, err.reason) == (401, "no-issuer") and "--dev-tokens" in str(err)
    principal = _auth().verify_bearer("Bearer " + _token(), NOW)
    with pytest.raises(KmsForbiddenError):
        NoIssuer().authorize_user(principal, ALICE)
