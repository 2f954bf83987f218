"""CERT/CHASH support and certificate validation (RFC 3830 §4.3, §6.7, §6.8; RFC 6043 §6.7)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU
from pki import (
    NOW,
    Issued,
    fresh_key_index,
    make_ca,
    make_intermediate,
    make_leaf,
    make_self_signed_leaf,
)

from mikey.crypto import x509 as mx509
from mikey.errors import CertificateError, UnsupportedHashError


@dataclass
class Pki:
    root: Issued
    inter: Issued
    alice: Issued  # issued by root
    bob: Issued  # issued by inter


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = make_ca("MIKEY Test Root")
    inter = make_intermediate(root, "MIKEY Test Intermediate")
    alice = make_leaf(root, "alice", san_uris=["sip:alice@example.com"], san_emails=["alice@example.com"])
    bob = make_leaf(
        inter, "bob", san_uris=["sips:bob@Example.org;transport=tls"], san_dns=["bob.example.org"]
    )
    return Pki(root, inter, alice, bob)


@pytest.fixture(scope="module")
def validator(pki: Pki) -> mx509.CertificateValidator:
    return mx509.CertificateValidator([pki.root.cert])


# --------------------------------------------------------------------------- CHASH


def test_chash_values(pki: Pki) -> None:
    der = pki.alice.cert_der
    assert mx509.chash(mx509.CHASH_SHA1, der) == hashlib.sha1(der).digest()
    assert mx509.chash(mx509.CHASH_MD5, der) == hashlib.md5(der).digest()
    assert mx509.chash(mx509.CHASH_SHA256, der) == hashlib.sha256(der).digest()
    assert [mx509.chash_length(f) for f in (0, 1, 2)] == [20, 16, 32]
    # KAT on a fixed input: SHA-1("abc") (FIPS 180-2 B.1).
    assert mx509.chash(0, b"abc").hex() == "a9993e364706816aba3e25717850c26c9cd0d89d"


def test_check_chash(pki: Pki) -> None:
    der = pki.alice.cert_der
    for func in (0, 1, 2):
        mx509.check_chash(func, mx509.chash(func, der), der)
    with pytest.raises(CertificateError) as info:
        mx509.check_chash(0, mx509.chash(0, pki.bob.cert_der), der)
    assert info.value.err_no == 8
    with pytest.raises(CertificateError):
        mx509.check_chash(2, mx509.chash(2, der)[:-1], der)
    with pytest.raises(UnsupportedHashError) as uinfo:
        mx509.chash(3, der)
    assert uinfo.value.err_no == 5
    with pytest.raises(UnsupportedHashError):
        mx509.check_chash(7, b"", der)


def test_cert_type_purpose() -> None:
    assert mx509.cert_type_purpose(mx509.CERT_TYPE_X509V3_SIGN) == "sign"
    assert mx509.cert_type_purpose(mx509.CERT_TYPE_X509V3_ENCR) == "encrypt"
    assert mx509.cert_type_purpose(mx509.CERT_TYPE_X509V3) is None
    assert mx509.cert_type_purpose(mx509.CERT_TYPE_X509V3_URL) is None


# --------------------------------------------------------------------------- parsing


def test_load_certificate_der_and_pem(pki: Pki) -> None:
    from_der = mx509.load_certificate(pki.alice.cert_der)
    from_pem = mx509.load_certificate(pki.alice.cert_pem)
    assert from_der == from_pem == pki.alice.cert
    assert mx509.certificate_der(from_pem) == pki.alice.cert_der


@pytest.mark.parametrize(
    "junk", [b"", b"\x30\x03\x02\x01\x00", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_load_certificate_rejects_junk(junk: bytes) -> None:
    with pytest.raises(CertificateError):
        mx509.load_certificate(junk)


def test_load_certificate_truncated(pki: Pki) -> None:
    with pytest.raises(CertificateError):
        mx509.load_certificate(pki.alice.cert_der[:-10])


# --------------------------------------------------------------------------- validation: success paths


def test_leaf_issued_by_root(pki: Pki, validator: mx509.CertificateValidator) -> None:
    leaf = validator.validate([pki.alice.cert], at=NOW, peer_id="sip:alice@example.com")
    assert leaf == pki.alice.cert
    assert validator.validate([pki.alice.cert], at=NOW, purpose="encrypt") == pki.alice.cert


def test_chain_through_intermediate(pki: Pki, validator: mx509.CertificateValidator) -> None:
    assert validator.validate([pki.bob.cert, pki.inter.cert], at=NOW) == pki.bob.cert
    # Extra, unrelated certificates in the chain are ignored; a root copy in the chain is fine.
    chain = [pki.bob.cert, pki.alice.cert, pki.root.cert, pki.inter.cert]
    assert validator.validate(chain, at=NOW) == pki.bob.cert


def test_two_intermediates() -> None:
    root = make_ca("Deep Root")
    i1 = make_intermediate(root, "Deep I1")
    i2 = make_intermediate(i1, "Deep I2")
    leaf = make_leaf(i2, "deep leaf", san_uris=["sip:deep@example.com"])
    v = mx509.CertificateValidator([root.cert])
    assert v.validate([leaf.cert, i1.cert, i2.cert], at=NOW, peer_id="sip:deep@example.com") == leaf.cert
    with pytest.raises(CertificateError, match="does not chain"):
        v.validate([leaf.cert, i2.cert], at=NOW)


def test_intermediate_as_anchor(pki: Pki) -> None:
    v = mx509.CertificateValidator([pki.inter.cert])
    assert v.validate([pki.bob.cert], at=NOW) == pki.bob.cert
    with pytest.raises(CertificateError):
        v.validate([pki.alice.cert], at=NOW)


def test_directly_trusted_self_signed_peer() -> None:
    peer = make_self_signed_leaf("carol", san_uris=["sip:carol@example.net"])
    v = mx509.CertificateValidator([peer.cert])
    assert v.validate([peer.cert], at=NOW, peer_id="sip:carol@example.net") == peer.cert
    with pytest.raises(CertificateError):
        mx509.CertificateValidator([]).validate([peer.cert], at=NOW)


def test_naive_datetime_is_utc(pki: Pki, validator: mx509.CertificateValidator) -> None:
    assert validator.validate([pki.alice.cert], at=NOW.replace(tzinfo=None)) == pki.alice.cert


# --------------------------------------------------------------------------- validation: failures


def test_empty_chain(validator: mx509.CertificateValidator) -> None:
    with pytest.raises(CertificateError, match="no certificate"):
        validator.validate([], at=NOW)


def test_untrusted_root(pki: Pki) -> None:
    other_root = make_ca("Other Root")
    stranger = make_leaf(other_root, "mallory", san_uris=["sip:alice@example.com"])
    v = mx509.CertificateValidator([pki.root.cert])
    with pytest.raises(CertificateError, match="does not chain to a trust anchor") as info:
        v.validate([stranger.cert, other_root.cert], at=NOW)
    assert info.value.err_no == 8


def test_rogue_ca_with_same_name_rejected(pki: Pki, validator: mx509.CertificateValidator) -> None:
    rogue = make_ca("MIKEY Test Root", key_index=fresh_key_index())
    assert rogue.cert.subject == pki.root.cert.subject
    forged = make_leaf(rogue, "alice forged", san_uris=["sip:alice@example.com"])
    with pytest.raises(CertificateError, match="does not chain"):
        validator.validate([forged.cert, rogue.cert], at=NOW, peer_id="sip:alice@example.com")


@pytest.mark.parametrize(
    ("not_before", "not_after", "at", "message"),
    [
        (NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=1), NOW, "expired"),
        (NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=30), NOW, "not yet valid"),
        (NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=1), NOW - dt.timedelta(days=2), None),
    ],
)
def test_leaf_validity_at_message_time(
    pki: Pki,
    validator: mx509.CertificateValidator,
    not_before: dt.datetime,
    not_after: dt.datetime,
    at: dt.datetime,
    message: str | None,
) -> None:
    leaf = make_leaf(pki.root, "time-bound", not_before=not_before, not_after=not_after)
    if message is None:
        assert validator.validate([leaf.cert], at=at) == leaf.cert
    else:
        with pytest.raises(CertificateError, match=message):
            validator.validate([leaf.cert], at=at)


def test_expired_intermediate(pki: Pki) -> None:
    old_inter = make_intermediate(
        pki.root,
        "Expired Intermediate",
        not_before=NOW - dt.timedelta(days=60),
        not_after=NOW - dt.timedelta(days=1),
    )
    leaf = make_leaf(old_inter, "dave")
    v = mx509.CertificateValidator([pki.root.cert])
    with pytest.raises(CertificateError, match="Expired Intermediate.*expired"):
        v.validate([leaf.cert, old_inter.cert], at=NOW)


def test_expired_anchor() -> None:
    root = make_ca(
        "Expired Root", not_before=NOW - dt.timedelta(days=60), not_after=NOW - dt.timedelta(days=1)
    )
    leaf = make_leaf(root, "erin")
    with pytest.raises(CertificateError, match="expired"):
        mx509.CertificateValidator([root.cert]).validate([leaf.cert], at=NOW)


def test_non_ca_issuer_rejected(pki: Pki) -> None:
    fake_inter = make_intermediate(
        pki.root, "Not A CA", ca=False, key_usage=("digital_signature", "key_cert_sign")
    )
    leaf = make_leaf(fake_inter, "frank")
    v = mx509.CertificateValidator([pki.root.cert])
    with pytest.raises(CertificateError, match="not a CA"):
        v.validate([leaf.cert, fake_inter.cert], at=NOW)
    no_bc = make_intermediate(pki.root, "No BC Intermediate", basic_constraints=False)
    leaf2 = make_leaf(no_bc, "frank2")
    with pytest.raises(CertificateError, match="not a CA"):
        v.validate([leaf2.cert, no_bc.cert], at=NOW)


def test_issuer_without_key_cert_sign(pki: Pki) -> None:
    inter = make_intermediate(pki.root, "No CertSign Intermediate", key_usage=("crl_sign",))
    leaf = make_leaf(inter, "gina")
    with pytest.raises(CertificateError, match="keyCertSign"):
        mx509.CertificateValidator([pki.root.cert]).validate([leaf.cert, inter.cert], at=NOW)


def test_path_length_constraint() -> None:
    root = make_ca("PathLen Root", path_length=0)
    inter = make_intermediate(root, "PathLen Inter")
    leaf = make_leaf(inter, "harry")
    direct = make_leaf(root, "harry direct")
    v = mx509.CertificateValidator([root.cert])
    assert v.validate([direct.cert], at=NOW) == direct.cert
    with pytest.raises(CertificateError, match="path length"):
        v.validate([leaf.cert, inter.cert], at=NOW)


@pytest.mark.parametrize(
    ("key_usage", "purpose", "ok"),
    [
        (("digital_signature",), "sign", True),
        (("digital_signature",), "encrypt", False),
        (("key_encipherment",), "encrypt", True),
        (("key_encipherment",), "sign", False),
        (("data_encipherment", "key_agreement"), "sign", False),
        (("data_encipherment", "key_agreement"), "encrypt", False),
    ],
)
def test_leaf_key_usage(pki: Pki, key_usage: tuple[str, ...], purpose: mx509.Purpose, ok: bool) -> None:
    leaf = make_leaf(pki.root, "ku-" + "-".join(key_usage), key_usage=key_usage)
    v = mx509.CertificateValidator([pki.root.cert])
    if ok:
        assert v.validate([leaf.cert], at=NOW, purpose=purpose) == leaf.cert
    else:
        with pytest.raises(CertificateError, match="key usage"):
            v.validate([leaf.cert], at=NOW, purpose=purpose)


def test_missing_key_usage_policy(pki: Pki) -> None:
    leaf = make_leaf(pki.root, "no-ku", key_usage=None)
    assert (
        mx509.CertificateValidator([pki.root.cert]).validate([leaf.cert], at=NOW, purpose="encrypt")
        == leaf.cert
    )
    strict = mx509.CertificateValidator([pki.root.cert], allow_missing_key_usage=False)
    with pytest.raises(CertificateError, match="no keyUsage"):
        strict.validate([leaf.cert], at=NOW)


def _eku_leaf(pki: Pki, name: str, purposes: list[x509.ObjectIdentifier], critical: bool) -> Issued:
    return make_leaf(pki.root, name, san_uris=["sip:eku@example.com"],
                     extra_extensions=[(x509.ExtendedKeyUsage(purposes), critical)])


@pytest.mark.parametrize("critical", [True, False])
@pytest.mark.parametrize(
    "purposes",
    [[EKU.SERVER_AUTH], [EKU.SERVER_AUTH, EKU.CLIENT_AUTH], [EKU.EMAIL_PROTECTION]],
    ids=["serverAuth", "tls", "email"],
)
@pytest.mark.parametrize("purpose", ["sign", "encrypt"])
def test_extended_key_usage_without_mikey_purpose_refused(
    pki: Pki, purposes: list[x509.ObjectIdentifier], critical: bool, purpose: mx509.Purpose
) -> None:
    leaf = _eku_leaf(pki, f"eku-{len(purposes)}-{purposes[0].dotted_string}-{critical}", purposes, critical)
    with pytest.raises(CertificateError, match="extended key usage .* does not allow MIKEY") as ei:
        mx509.CertificateValidator([pki.root.cert]).validate([leaf.cert], at=NOW, purpose=purpose)
    assert ei.value.err_no == 8 and "extended_key_usages=" in ei.value.message


def test_critical_server_auth_only_named_in_refusal(pki: Pki) -> None:
    leaf = _eku_leaf(pki, "eku-server-only", [EKU.SERVER_AUTH], True)
    with pytest.raises(CertificateError, match=r"\(serverAuth\)"):
        mx509.CertificateValidator([pki.root.cert]).validate([leaf.cert], at=NOW, peer_id="sip:eku@example.com")


@pytest.mark.parametrize("critical", [True, False])
def test_any_extended_key_usage_accepted(pki: Pki, critical: bool) -> None:
    leaf = _eku_leaf(pki, f"eku-any-{critical}", [EKU.SERVER_AUTH, EKU.ANY_EXTENDED_KEY_USAGE], critical)
    v = mx509.CertificateValidator([pki.root.cert])
    assert v.validate([leaf.cert], at=NOW, peer_id="sip:eku@example.com") == leaf.cert
    assert v.validate([leaf.cert], at=NOW, purpose="encrypt") == leaf.cert


def test_configured_extended_key_usage_accepted(pki: Pki) -> None:
    leaf = _eku_leaf(pki, "eku-client", [EKU.CLIENT_AUTH], True)
    private = x509.ObjectIdentifier("1.3.6.1.4.1.99999.7")
    custom = _eku_leaf(pki, "eku-custom", [private], False)
    by_object = mx509.CertificateValidator([pki.root.cert], extended_key_usages=[EKU.CLIENT_AUTH])
    assert by_object.validate([leaf.cert], at=NOW) == leaf.cert
    with pytest.raises(CertificateError, match="1.3.6.1.4.1.99999.7"):
        by_object.validate([custom.cert], at=NOW)
    by_string = mx509.CertificateValidator([pki.root.cert], extended_key_usages=["1.3.6.1.4.1.99999.7"])
    assert by_string.validate([custom.cert], at=NOW) == custom.cert
    with pytest.raises(CertificateError):
        by_string.validate([leaf.cert], at=NOW)


def test_no_extended_key_usage_accepted(pki: Pki, validator: mx509.CertificateValidator) -> None:
    # RFC 5280 §4.2.1.12: without the extension the key's purposes are not restricted.
    assert pki.alice.cert.extensions.get_extension_for_oid(x509.oid.ExtensionOID.KEY_USAGE)
    with pytest.raises(x509.ExtensionNotFound):
        pki.alice.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert validator.validate([pki.alice.cert], at=NOW, purpose="sign") == pki.alice.cert
    assert validator.validate([pki.alice.cert], at=NOW, purpose="encrypt") == pki.alice.cert


def test_extended_key_usage_checked_on_pinned_certificate() -> None:
    ca = make_ca("EKU Pin Root")
    leaf = make_leaf(ca, "eku-pinned", extra_extensions=[(x509.ExtendedKeyUsage([EKU.SERVER_AUTH]), True)])
    with pytest.raises(CertificateError, match="extended key usage"):
        mx509.CertificateValidator([leaf.cert]).validate([leaf.cert], at=NOW)


def test_unknown_critical_extension_rejected(pki: Pki) -> None:
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    leaf = make_leaf(pki.root, "critical-ext", extra_extensions=[(ext, True)])
    v = mx509.CertificateValidator([pki.root.cert])
    with pytest.raises(CertificateError, match="unsupported critical extension 1.3.6.1.4.1.99999.1"):
        v.validate([leaf.cert], at=NOW)
    benign = make_leaf(pki.root, "noncritical-ext", extra_extensions=[(ext, False)])
    assert v.validate([benign.cert], at=NOW) == benign.cert


def test_tampered_leaf_signature(pki: Pki, validator: mx509.CertificateValidator) -> None:
    der = bytearray(pki.alice.cert_der)
    der[-5] ^= 0x01  # inside the signature value
    tampered = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(CertificateError, match="does not chain"):
        validator.validate([tampered], at=NOW)


# --------------------------------------------------------------------------- ID binding


@pytest.mark.parametrize(
    ("peer_id", "ok"),
    [
        ("sip:alice@example.com", True),
        ("SIP:alice@EXAMPLE.com", True),  # scheme and host are case-insensitive
        ("sip:Alice@example.com", False),  # user part is not
        ("alice@example.com", True),  # NAI against rfc822Name
        ("alice@Example.COM", True),
        ("sip:bob@example.com", False),
        ("bob@example.com", False),
        ("sips:alice@example.com", False),
        ("tel:+15551234", False),
        ("example.com", False),
    ],
)
def test_id_binding_alice(pki: Pki, validator: mx509.CertificateValidator, peer_id: str, ok: bool) -> None:
    if ok:
        validator.validate([pki.alice.cert], at=NOW, peer_id=peer_id)
    else:
        with pytest.raises(CertificateError, match="not bound to ID"):
            validator.validate([pki.alice.cert], at=NOW, peer_id=peer_id)


@pytest.mark.parametrize(
    ("peer_id", "ok"),
    [
        ("sips:bob@example.org;transport=tls", True),
        ("sips:bob@EXAMPLE.ORG;transport=tls", True),
        ("bob@example.org", True),  # NAI matches a sips: URI with the same user@host
        ("sips:bob@example.org", False),  # URI params are part of the exact match
        ("bob.example.org", True),  # bare realm against dNSName
        ("sip:bob.example.org", True),  # user-less SIP URI against dNSName
        ("sip:other.example.org", False),
    ],
)
def test_id_binding_bob(pki: Pki, peer_id: str, ok: bool) -> None:
    v = mx509.CertificateValidator([pki.inter.cert])
    if ok:
        v.validate([pki.bob.cert], at=NOW, peer_id=peer_id)
    else:
        with pytest.raises(CertificateError):
            v.validate([pki.bob.cert], at=NOW, peer_id=peer_id)


def test_id_binding_http_uri(pki: Pki) -> None:
    leaf = make_leaf(pki.root, "web", san_uris=["https://Keys.Example.com/alice"])
    assert mx509.id_matches_certificate(leaf.cert, "HTTPS://keys.example.COM/alice")
    assert not mx509.id_matches_certificate(leaf.cert, "https://keys.example.com/Alice")


def test_no_san_never_binds(pki: Pki) -> None:
    leaf = make_leaf(pki.root, "alice@example.com")  # CN only: not used for binding
    assert not mx509.id_matches_certificate(leaf.cert, "alice@example.com")


def test_id_binding_policy_hook(pki: Pki) -> None:
    seen: list[tuple[x509.Certificate, str]] = []

    def policy(cert: x509.Certificate, peer_id: str) -> bool:
        seen.append((cert, peer_id))
        return peer_id == "urn:alice"

    v = mx509.CertificateValidator([pki.root.cert], id_binding=policy)
    assert v.validate([pki.alice.cert], at=NOW, peer_id="urn:alice") == pki.alice.cert
    with pytest.raises(CertificateError):
        v.validate([pki.alice.cert], at=NOW, peer_id="sip:alice@example.com")  # hook overrides SAN matching
    assert seen == [(pki.alice.cert, "urn:alice"), (pki.alice.cert, "sip:alice@example.com")]
    # Without a peer ID the hook is not consulted.
    v.validate([pki.alice.cert], at=NOW)
    assert len(seen) == 2


def test_validator_repr(validator: mx509.CertificateValidator) -> None:
    assert repr(validator) == "CertificateValidator(anchors=1)"


# --------------------------------------------------------------------------- malformed input never leaks


def _corruptions(der: bytes) -> list[bytes]:
    """The DER with one octet changed, at every position (two different changes each)."""
    out = []
    for pos in range(len(der)):
        for flip in (0xFF, 0x01):
            out.append(der[:pos] + bytes([der[pos] ^ flip]) + der[pos + 1 :])
    return out


def _only_certificate_error(fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kwargs)
    except CertificateError as exc:
        assert exc.err_no == 8
    # any other exception type fails the test


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_corrupted_der_raises_only_certificate_error(pki: Pki, validator: mx509.CertificateValidator) -> None:
    parsed = 0
    for bad in _corruptions(pki.alice.cert_der):
        _only_certificate_error(mx509.load_certificate, bad)
        # Unparsed DER straight into the validator, and a leaf claiming an ID (SAN parsing).
        _only_certificate_error(validator.validate, [bad], at=NOW, peer_id="sip:alice@example.com")
        try:
            cert = mx509.load_certificate(bad)
        except CertificateError:
            continue
        parsed += 1
        # Trusted as its own anchor, so the lazily parsed fields (validity, extensions, key usage,
        # subjectAltName) are all read rather than the issuer's signature failing first.
        self_trust = mx509.CertificateValidator([cert])
        for purpose in ("sign", "encrypt"):
            _only_certificate_error(self_trust.validate, [cert], at=NOW, peer_id="sip:alice@example.com",
                                    purpose=purpose)
        _only_certificate_error(validator.validate, [cert], at=NOW)
    assert parsed > 100  # many corruptions parse: the lazily read fields were exercised


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_corrupted_intermediate_in_chain(pki: Pki, validator: mx509.CertificateValidator) -> None:
    for bad in _corruptions(pki.inter.cert_der)[::7]:
        with pytest.raises(CertificateError):
            validator.validate([pki.bob.cert_der, bad], at=NOW)


@pytest.mark.parametrize("junk", [None, 42, "text"])
def test_load_certificate_wrong_type(junk: object) -> None:
    with pytest.raises(CertificateError):
        mx509.load_certificate(junk)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the validated-path cache


def _counting(v: mx509.CertificateValidator) -> list[int]:
    calls = [0]
    inner = v._validate_path

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return inner(*args, **kwargs)

    v._validate_path = counted  # type: ignore[method-assign]
    return calls


def test_cache_hit_skips_path_validation_der_or_parsed(pki: Pki) -> None:
    v = mx509.CertificateValidator([pki.root.cert])
    calls = _counting(v)
    chain = [pki.bob.cert_der, pki.inter.cert_der]
    assert v.validate(chain, at=NOW, peer_id="bob.example.org") == pki.bob.cert
    assert v.validate([pki.bob.cert, pki.inter.cert], at=NOW, peer_id="bob.example.org") == pki.bob.cert
    assert v.validate(chain, at=NOW + dt.timedelta(days=1), peer_id="bob.example.org") == pki.bob.cert
    assert calls[0] == 1
    v.clear_cache()
    v.validate(chain, at=NOW, peer_id="bob.example.org")
    assert calls[0] == 2


def test_cache_is_keyed_by_peer_id_and_purpose(pki: Pki) -> None:
    v = mx509.CertificateValidator([pki.root.cert])
    sign_only = make_leaf(pki.root, "sign-only", san_uris=["sip:carol@example.com"], key_usage=["digital_signature"])
    v.validate([sign_only.cert], at=NOW, peer_id="sip:carol@example.com", purpose="sign")
    with pytest.raises(CertificateError, match="not bound"):
        v.validate([sign_only.cert], at=NOW, peer_id="sip:mallory@example.com", purpose="sign")
    with pytest.raises(CertificateError, match="keyEncipherment"):
        v.validate([sign_only.cert], at=NOW, peer_id="sip:carol@example.com", purpose="encrypt")


@pytest.mark.parametrize("expiring", ["leaf", "intermediate", "anchor"])
def test_cached_path_only_inside_every_validity_window(expiring: str) -> None:
    """A cached path is not accepted once any certificate on it, the anchor included, is outside its window."""
    soon = NOW + dt.timedelta(hours=1)
    root = make_ca("Cache Root", not_after=soon if expiring == "anchor" else NOW + dt.timedelta(days=3650))
    inter = make_intermediate(root, "Cache Intermediate",
                              not_after=soon if expiring == "intermediate" else NOW + dt.timedelta(days=365))
    leaf = make_leaf(inter, "cache-leaf", san_uris=["sip:dave@example.com"],
                     not_after=soon if expiring == "leaf" else NOW + dt.timedelta(days=30))
    v = mx509.CertificateValidator([root.cert])
    calls = _counting(v)
    chain = [leaf.cert_der, inter.cert_der]
    v.validate(chain, at=NOW, peer_id="sip:dave@example.com")
    v.validate(chain, at=soon, peer_id="sip:dave@example.com")  # the window's last instant: still cached
    assert calls[0] == 1
    with pytest.raises(CertificateError, match="expired"):
        v.validate(chain, at=soon + dt.timedelta(seconds=1), peer_id="sip:dave@example.com")
    with pytest.raises(CertificateError, match="not yet valid"):
        v.validate(chain, at=NOW - dt.timedelta(days=3650 * 3), peer_id="sip:dave@example.com")
    assert calls[0] == 3


def test_cache_is_bounded_and_can_be_disabled(pki: Pki) -> None:
    v = mx509.CertificateValidator([pki.root.cert], cache_size=2)
    calls = _counting(v)
    leaves = [pki.alice.cert, make_leaf(pki.root, "second").cert, make_leaf(pki.root, "third").cert]
    for leaf in leaves:
        v.validate([leaf], at=NOW)
    v.validate([leaves[0]], at=NOW)  # evicted (least recently used) -> validated again
    assert calls[0] == 4
    off = mx509.CertificateValidator([pki.root.cert], cache_size=0)
    off_calls = _counting(off)
    off.validate([pki.alice.cert], at=NOW)
    off.validate([pki.alice.cert], at=NOW)
    assert off_calls[0] == 2


def test_custom_id_binding_is_consulted_on_every_call(pki: Pki) -> None:
    allowed = {"sip:alice@example.com"}
    v = mx509.CertificateValidator([pki.root.cert], id_binding=lambda cert, peer: peer in allowed)
    v.validate([pki.alice.cert], at=NOW, peer_id="sip:alice@example.com")
    allowed.clear()  # e.g. the certificate was revoked by local policy
    with pytest.raises(CertificateError, match="not bound"):
        v.validate([pki.alice.cert], at=NOW, peer_id="sip:alice@example.com")


def test_failures_are_not_cached(pki: Pki) -> None:
    v = mx509.CertificateValidator([pki.root.cert])
    calls = _counting(v)
    for _ in range(2):
        with pytest.raises(CertificateError):
            v.validate([pki.alice.cert], at=NOW, peer_id="sip:mallory@example.com")
    assert calls[0] == 2
