"""Credential loading (keystore/credentials.py): keys, certificates, PKCS#12, trust anchors, PSKs; SAKKE keystore periods."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from pki import NOW, Issued, make_ca, make_intermediate, make_leaf

from mikey.crypto import rsa as mrsa
from mikey.errors import CertificateError, KeyMaterialError, UnsupportedIDError
from mikey.keystore import (
    Credentials,
    PresharedKey,
    TrustStore,
    load_certificates,
    load_credentials,
    load_pkcs12,
    load_private_key,
)

PASSWORD = b"correct horse"


@pytest.fixture(scope="module")
def issued() -> tuple[Issued, Issued, Issued]:
    root = make_ca("Keystore Root")
    inter = make_intermediate(root, "Keystore Intermediate")
    alice = make_leaf(inter, "alice", san_uris=["sip:alice@example.com"])
    return root, inter, alice


def _same_key(a: object, b: rsa.RSAPrivateKey) -> bool:
    assert isinstance(a, rsa.RSAPrivateKey)
    return a.private_numbers() == b.private_numbers()


# --------------------------------------------------------------------------- private keys


def test_load_private_key_pem_der_encrypted(tmp_path: Path, issued: tuple[Issued, Issued, Issued]) -> None:
    alice = issued[2]
    assert _same_key(load_private_key(alice.key_pem()), alice.key)
    assert _same_key(load_private_key(alice.key_der()), alice.key)
    path = tmp_path / "alice.key"
    path.write_bytes(alice.key_pem(PASSWORD))
    assert _same_key(load_private_key(path, PASSWORD), alice.key)
    assert _same_key(load_private_key(str(path), PASSWORD), alice.key)
    traditional = alice.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert _same_key(load_private_key(traditional), alice.key)


def test_load_private_key_failures(tmp_path: Path, issued: tuple[Issued, Issued, Issued]) -> None:
    alice = issued[2]
    encrypted = alice.key_pem(PASSWORD)
    for data, password in [
        (encrypted, b"wrong"),
        (encrypted, None),
        (alice.key_pem(), PASSWORD),
        (b"junk", None),
    ]:
        with pytest.raises(KeyMaterialError) as info:
            load_private_key(data, password)
        assert "BEGIN" not in str(info.value)
        assert PASSWORD.decode() not in str(info.value)
    with pytest.raises(KeyMaterialError, match="cannot read"):
        load_private_key(tmp_path / "missing.key")


# --------------------------------------------------------------------------- certificates


def test_load_certificates_chain_order(tmp_path: Path, issued: tuple[Issued, Issued, Issued]) -> None:
    root, inter, alice = issued
    path = tmp_path / "chain.pem"
    path.write_bytes(alice.cert_pem + inter.cert_pem)
    assert load_certificates(path) == [alice.cert, inter.cert]
    assert load_certificates(alice.cert_der) == [alice.cert]
    with pytest.raises(CertificateError):
        load_certificates(b"not a certificate")
    with pytest.raises(CertificateError):
        load_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


# --------------------------------------------------------------------------- credentials


def test_credentials_from_files(tmp_path: Path, issued: tuple[Issued, Issued, Issued]) -> None:
    root, inter, alice = issued
    (tmp_path / "k.pem").write_bytes(alice.key_pem(PASSWORD))
    (tmp_path / "c.pem").write_bytes(alice.cert_pem + inter.cert_pem)
    creds = load_credentials(tmp_path / "k.pem", tmp_path / "c.pem", PASSWORD)
    assert creds.certificate == alice.cert
    assert creds.chain == (inter.cert,)
    assert creds.certificates == (alice.cert, inter.cert)
    assert creds.certificate_ders() == [alice.cert_der, inter.cert_der]
    assert creds.subject == "CN=alice"
    # The loaded key actually signs for the certificate's public key.
    sig = mrsa.sign(creds.rsa_private_key, b"msg", mrsa.S_TYPE_RSA_PKCS1_V15)
    mrsa.verify(creds.certificate.public_key(), b"msg", sig, 0)  # type: ignore[arg-type]
    # And validates against the root.
    assert TrustStore([root.cert]).validator().validate(list(creds.certificates), at=NOW) == alice.cert


def test_credentials_repr_hides_key(issued: tuple[Issued, Issued, Issued]) -> None:
    _, inter, alice = issued
    creds = Credentials(alice.key, alice.cert, (inter.cert,))
    assert repr(creds) == "Credentials(subject='CN=alice', chain_len=1)"
    assert str(creds) == repr(creds)
    d = str(alice.key.private_numbers().d)
    assert d[:16] not in repr(creds)


def test_credentials_key_mismatch(issued: tuple[Issued, Issued, Issued]) -> None:
    root, _, alice = issued
    with pytest.raises(KeyMaterialError, match="does not match"):
        Credentials(root.key, alice.cert)


def test_credentials_non_rsa_key() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW)
        .sign(key, hashes.SHA256())
    )
    creds = Credentials(key, cert)
    with pytest.raises(KeyMaterialError, match="not an RSA key"):
        _ = creds.rsa_private_key


def test_load_pkcs12(tmp_path: Path, issued: tuple[Issued, Issued, Issued]) -> None:
    _, inter, alice = issued
    blob = pkcs12.serialize_key_and_certificates(
        b"alice", alice.key, alice.cert, [inter.cert], serialization.BestAvailableEncryption(PASSWORD)
    )
    path = tmp_path / "alice.p12"
    path.write_bytes(blob)
    creds = load_pkcs12(path, PASSWORD)
    assert creds.certificate == alice.cert
    assert creds.chain == (inter.cert,)
    assert _same_key(creds.private_key, alice.key)
    with pytest.raises(KeyMaterialError, match="wrong password"):
        load_pkcs12(blob, b"nope")
    with pytest.raises(KeyMaterialError):
        load_pkcs12(b"\x30\x00", None)


def test_load_pkcs12_missing_parts(issued: tuple[Issued, Issued, Issued]) -> None:
    _, _, alice = issued
    certs_only = pkcs12.serialize_key_and_certificates(
        None, None, alice.cert, None, serialization.NoEncryption()
    )
    with pytest.raises(KeyMaterialError, match="no private key"):
        load_pkcs12(certs_only, None)
    key_only = pkcs12.serialize_key_and_certificates(
        b"k", alice.key, None, None, serialization.NoEncryption()
    )
    with pytest.raises(CertificateError, match="no certificate"):
        load_pkcs12(key_only, None)


# --------------------------------------------------------------------------- trust store


def test_trust_store_load(tmp_path: Path, issued: tuple[Issued, Issued, Issued]) -> None:
    root, inter, alice = issued
    other = make_ca("Keystore Other Root")
    (tmp_path / "a.pem").write_bytes(root.cert_pem + other.cert_pem)
    (tmp_path / "b.pem").write_bytes(root.cert_pem)  # duplicate is dropped
    store = TrustStore.load(tmp_path / "a.pem", tmp_path / "b.pem")
    assert len(store) == 2
    assert list(store) == [root.cert, other.cert]
    assert store[0] == root.cert
    assert "Keystore Root" in repr(store)
    v = store.validator()
    assert v.validate([alice.cert, inter.cert], at=NOW, peer_id="sip:alice@example.com") == alice.cert
    with pytest.raises(CertificateError):
        TrustStore.load(tmp_path / "b.pem").validator().validate([alice.cert], at=NOW)


def test_trust_store_validator_passes_extended_key_usages(issued: tuple[Issued, Issued, Issued]) -> None:
    """A TLS-client-only leaf is refused (err 8) unless the validator is told to accept that purpose."""
    root, inter, _ = issued
    tls = make_leaf(inter, "tls-only", san_uris=["sip:tls@example.com"],
                    extra_extensions=[(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)])
    store = TrustStore([root.cert])
    with pytest.raises(CertificateError, match="extended_key_usages=") as info:
        store.validator().validate([tls.cert, inter.cert], at=NOW)
    assert info.value.err_no == 8
    for purposes in ([ExtendedKeyUsageOID.CLIENT_AUTH], [ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string]):
        assert store.validator(extended_key_usages=purposes).validate([tls.cert, inter.cert], at=NOW) == tls.cert
    with pytest.raises(CertificateError):
        store.validator(extended_key_usages=[ExtendedKeyUsageOID.SERVER_AUTH]).validate([tls.cert, inter.cert], at=NOW)


def test_package_keeps_the_public_names() -> None:
    """keystore is a package of two halves; its top level still offers every name it did as one module."""
    import mikey.keystore as ks
    from mikey.keystore import credentials, identity

    assert set(ks.__all__) == {"Source", "PresharedKey", "Credentials", "TrustStore", "load_private_key",
                               "load_certificates", "load_pkcs12", "load_credentials", "IdentityKeys",
                               "KmsPublicKeys", "SakkeKeystore"}
    assert all(getattr(ks, name) is not None for name in ks.__all__)
    assert ks.Credentials is credentials.Credentials and ks.SakkeKeystore is identity.SakkeKeystore


# --------------------------------------------------------------------------- PSK


def test_preshared_key() -> None:
    value = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    psk = PresharedKey(value, b"alice@example.com")
    assert psk.value == value
    assert len(psk) == 16
    assert repr(psk) == "PresharedKey(identity=b'alice@example.com', length=16)"
    assert value.hex() not in repr(psk) and str(value) not in repr(psk)
    assert psk == PresharedKey.from_hex(value.hex(), b"alice@example.com")
    assert psk != PresharedKey(value, b"bob")
    assert psk != PresharedKey(value[:-1] + b"\x00", b"alice@example.com")
    assert hash(psk) == hash(PresharedKey(value, b"alice@example.com"))
    with pytest.raises(KeyMaterialError):
        PresharedKey(b"")
    with pytest.raises(KeyMaterialError):
        PresharedKey.from_hex("zz")
    with pytest.raises(AttributeError):
        psk.value = b"x"  # type: ignore[misc]


# --- MIKEY-SAKKE keystores across key periods (RFC 6509 §3.3) -------------------------------------


def test_sakke_keystore_periods_merge_and_prune() -> None:
    """Fetching again after a boundary (N+1, N+2) and merging keeps N; pruning drops it again."""
    from mikey.identities import NTP_UNIX_OFFSET
    from mikey.keystore import SakkeKeystore
    from mikey.kms import generate_community, issue_user_keys
    from mikey.modes.sakke import SakkeInitiator, SakkeResponder

    alice, bob = "sip:alice@example.org", "sip:bob@example.org"
    c = generate_community("kms.example.org")
    n = 1545
    boundary = float((n + 1) * c.public.key_period - NTP_UNIX_OFFSET)
    sender = SakkeKeystore(c.public, alice, [issue_user_keys(c, alice, period_no=p) for p in (n, n + 1)])
    before = SakkeKeystore(c.public, bob, [issue_user_keys(c, bob, period_no=p) for p in (n, n + 1)])
    after = SakkeKeystore(c.public, bob, [issue_user_keys(c, bob, period_no=p) for p in (n + 1, n + 2)])
    assert before.period_numbers == [n, n + 1] and after.period_numbers == [n + 1, n + 2]
    both = before.merged(after)
    assert both.period_numbers == [n, n + 1, n + 2]
    newer = after.key_set_for_period(n + 1)
    assert newer is not None and both.key_set_for_period(n + 1) is newer  # the newer key set wins
    assert both.key_set_for_period(n + 3) is None
    again = SakkeKeystore.from_dict(both.to_dict(), validate=True)
    assert again.period_numbers == [n, n + 1, n + 2]
    pruned = both.pruned(n + 1)
    assert pruned.period_numbers == [n + 1, n + 2] and both.period_numbers == [n, n + 1, n + 2]
    # T just before the boundary, the receiver's clock just after it (RFC 6509 §3.3's grace time).
    data = SakkeInitiator(sender, bob).create_message(boundary - 1)
    for store, accepted in ((after, False), (both, True), (pruned, False)):
        responder = SakkeResponder(store, initiator_uri=alice)
        if accepted:
            assert responder.receive(data, boundary + 1).result.extras["key_period_no"] == n
        else:
            with pytest.raises(UnsupportedIDError, match=f"key period {n}"):
                responder.receive(data, boundary + 1)
    with pytest.raises(KeyMaterialError, match="cannot merge the keys"):
        before.merged(sender)
    other = generate_community("kms.example.org")
    with pytest.raises(KeyMaterialError, match="different KMS community"):
        before.merged(SakkeKeystore(other.public, bob, [issue_user_keys(other, bob, period_no=n)]))
