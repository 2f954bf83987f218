"""No secret in any repr or str: every object that holds key material is printed and searched
for the secret, as bytes repr, hex and decimal.  (Guide: keep private keys out of reprs.)"""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives import serialization

from mikey.cli.demo_pki import new_pki
from mikey.crypto import eccsi, prf, sakke
from mikey.keystore import PresharedKey, SakkeKeystore
from mikey.kms import generate_community, issue_user_keys
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.dh import DhInitiator, DhResponder
from mikey.modes.pk import EnvelopeKeyCache, PkInitiator, PkResponder
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.modes.sakke import SakkeInitiator, SakkeResponder
from mikey.session import CryptoSessionBundle

NOW = time.time()


def _forms(secret: bytes | int) -> list[str]:
    if isinstance(secret, int):
        return [str(secret), f"{secret:x}", f"{secret:X}"]
    return [repr(secret), secret.hex(), secret.hex().upper()]


def assert_hidden(obj: Any, *secrets: bytes | int) -> None:
    text = repr(obj) + str(obj)
    for secret in secrets:
        for form in _forms(secret):
            assert form not in text, f"{type(obj).__name__} shows a secret: {text[:200]}"


def test_psk_objects() -> None:
    psk = bytes(range(16))
    tgk = bytes(range(100, 116))
    init = PskInitiator(psk, tgk=tgk, v=True, crypto_sessions=[CryptoSessionSpec(1), CryptoSessionSpec(0)])
    i_message = init.create_message(NOW)
    resp = PskResponder(psk, own_ssrcs=[2])
    out = resp.receive(i_message, NOW)
    result = out.result
    secrets = [psk, tgk] + [k for cs in result.crypto_sessions for k in (cs.master_key, cs.master_salt)]
    for obj in (init, resp, out, result, *result.crypto_sessions, CryptoSessionBundle(result), PresharedKey(psk)):
        assert_hidden(obj, *secrets)
    keys = prf.derive_transport_keys(psk, 1, bytes(16), encr_len=16, auth_len=20, salt_len=14)
    assert_hidden(keys, keys.encr_key, keys.auth_key, keys.salt)


def test_certificate_mode_objects() -> None:
    pki = new_pki(NOW)
    private_numbers = pki.bob.rsa_private_key.private_numbers()
    der = pki.bob.rsa_private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cache = EnvelopeKeyCache()
    pk_init = PkInitiator(pki.alice, pki.bob.certificate, validator=pki.validator(), envelope_key_cache=cache, cache=1)
    i_message = pk_init.create_message(NOW)
    pk_resp = PkResponder(pki.bob, pki.validator())
    outcome = pk_resp.receive(i_message, NOW)
    secrets: list[bytes | int] = [private_numbers.d, private_numbers.p, der[-64:], pk_init.envelope_key,
                                  outcome.result.tgk]
    for obj in (pki.bob, pk_init, pk_resp, outcome.result, cache):
        assert_hidden(obj, *secrets)
    dh_init = DhInitiator(pki.alice, pki.validator())
    dh_msg = dh_init.create_message(NOW)
    dh_resp = DhResponder(pki.bob, pki.validator())
    reply = dh_resp.receive(dh_msg, NOW)
    for obj in (dh_init, dh_resp, reply.result, dh_init.receive(reply.response or b"", NOW)):
        assert_hidden(obj, dh_init.export_dh_private(), reply.result.tgk)


def test_identity_based_objects() -> None:
    community = generate_community("kms.example.org")
    alice_set = issue_user_keys(community, "sip:alice@example.org", now=NOW)
    bob_set = issue_user_keys(community, "sip:bob@example.org", now=NOW)
    alice = SakkeKeystore(community.public, "sip:alice@example.org", [alice_set])
    bob = SakkeKeystore(community.public, "sip:bob@example.org", [bob_set])
    init = SakkeInitiator(alice, "sip:bob@example.org", key_type="pck")
    i_message = init.create_message(NOW)
    resp = SakkeResponder(bob, initiator_uri="sip:alice@example.org")
    result = resp.receive(i_message, NOW).result
    secrets: list[bytes | int] = [community.ksak, community.z_master, alice_set.ssk, bob_set.rsk, result.tgk]
    signer = eccsi.EccsiSigner(alice_set.ssk, alice_set.pvt, alice_set.identifier, community.public.kpak)
    receiver = sakke.SakkeReceiver(bob_set.rsk, bob_set.identifier, community.public.z)
    kms_keys = eccsi.KmsEccsiKeys.from_ksak(community.ksak)
    for obj in (community, alice_set, bob_set, alice, bob, init, resp, result, signer, receiver, kms_keys):
        assert_hidden(obj, *secrets)


def test_the_check_catches_a_leak() -> None:
    import pytest

    class Leaky:
        def __repr__(self) -> str:
            return f"Leaky(key={bytes(range(16)).hex()})"

    with pytest.raises(AssertionError):
        assert_hidden(Leaky(), bytes(range(16)))
    with pytest.raises(AssertionError):
        assert_hidden({"d": 123456789}, 123456789)
