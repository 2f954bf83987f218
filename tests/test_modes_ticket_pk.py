"""MIKEY-TICKET PK variants (RFC 6043 §4.2.1.3, §4.2.3.3): REQUEST_INIT_PK and RESOLVE_INIT_PK with
CERT, CHASH, PKE and SIGN as in RFC 3830's PK mode; SIGN over the message || identities (§5.5); the
responses keyed from the envelope key, checked against a reference derivation."""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pki import NOW as PKI_NOW
from pki import make_ca, make_leaf

from mikey.constants import DataType, ErrorNo, HashFunc, IDRole, IDType, TSRole, TSType
from mikey.crypto.x509 import CertificateValidator
from mikey.errors import AuthenticationError, CertificateError, MikeyError, TicketRefusedError
from mikey.keystore import Credentials
from mikey.modes.ticket import (
    InMemoryTicketStore,
    TicketCredential,
    TicketInitiator,
    TicketKms,
    TicketPkSigner,
    TicketPolicy,
    TicketProtectionKey,
    TicketRequester,
    TicketResponder,
    ticket_flags,
)
from mikey.wire import (
    CertPayload,
    ChashPayload,
    ErrorPayload,
    IdrPayload,
    Message,
    PkePayload,
    RandrPayload,
    SignPayload,
    TrPayload,
)

NOW = PKI_NOW.timestamp()
ALICE, BOB, KMS_ID = b"sip:alice@example.com", b"sip:bob@example.com", b"kms.example.com"

CA = make_ca("Ticket Test Root")
ALICE_CERT = make_leaf(CA, "ticket-alice", san_uris=[ALICE.decode()])
BOB_CERT = make_leaf(CA, "ticket-bob", san_uris=[BOB.decode()])
MALLORY_CERT = make_leaf(CA, "ticket-mallory", san_uris=["sip:mallory@example.com"])
KMS_CERT = make_leaf(CA, "ticket-kms", san_dns=["kms.example.com"])


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def creds(issued: object) -> Credentials:
    return Credentials(issued.key, issued.cert)  # type: ignore[attr-defined]


def make_kms() -> TicketKms:
    store = InMemoryTicketStore()
    store.add_credential(TicketCredential(ALICE, bytes(16), b"alice"))
    store.add_credential(TicketCredential(BOB, bytes(range(16)), b"bob"))
    store.add_protection_key(TicketProtectionKey(b"tpk", bytes(range(100, 116))))
    return TicketKms(store, identity=KMS_ID, pk_credentials=[creds(KMS_CERT)],
                     validator=CertificateValidator([CA.cert]), rng=seeded(7))


def policy() -> TicketPolicy:
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(NOW) + 2208988800 + 3600).to_bytes(4, "big"))
    return TicketPolicy(ticket_flags("DEFHINO"), (IdrPayload(IDRole.RESPONDER, IDType.URI, BOB),), end=end)


def signer(issued: object, **kw: object) -> TicketPkSigner:
    return TicketPkSigner(creds(issued), KMS_CERT.cert, **kw)  # type: ignore[arg-type]


def ref_key(key: bytes, const: int, csb: int, which: int, ri: bytes | None, rr: bytes | None, n: int) -> bytes:
    """RFC 6043 §5.1.2 with the MIKEY-1 PRF (RFC 3830 §4.1.2), one inkey piece."""
    label = struct.pack(">IBIB", const, 0xFF, csb, which) + (bytes([len(ri)]) + ri if ri else b"\x00") + \
        (bytes([len(rr)]) + rr if rr else b"\x00")
    a, out = label, b""
    while len(out) < n:
        a = hmac.new(key, a, hashlib.sha1).digest()
        out += hmac.new(key, a + label, hashlib.sha1).digest()
    return out[:n]


def test_pk_request_and_resolve_end_to_end() -> None:
    kms = make_kms()
    req = TicketRequester(None, policy(), pk=signer(ALICE_CERT, chash=HashFunc.SHA_256), id_i=ALICE, kms_id=KMS_ID,
                          rng=seeded(1))
    init = req.create_message(NOW)
    m = Message.decode(init)
    assert m.data_type == DataType.REQUEST_INIT_PK
    assert [p.NAME for p in m.payloads] == ["T", "RANDR", "IDR", "CERT", "IDR", "TP", "CHASH", "PKE", "SIGN"]
    # SIGNi covers the message up to the signature (SIGN header included) || Identity_i || Identity_kms
    sign = m.payloads[-1]
    assert isinstance(sign, SignPayload)
    off = m.payload_span(len(m.payloads) - 1)[0]
    ALICE_CERT.key.public_key().verify(sign.signature, init[: off + 2] + ALICE + KMS_ID, padding.PKCS1v15(),
                                       hashes.SHA256())
    # the envelope key in PKE keys the REQUEST_RESP (label 0x02 with RANDRi)
    pke = m.find(PkePayload)
    assert pke is not None
    env = KMS_CERT.key.decrypt(pke.data, padding.PKCS1v15())
    resp = kms.handle(init, NOW)
    assert resp is not None
    ri = m.find(RandrPayload).rand  # type: ignore[union-attr]
    assert resp[-20:] == hmac.new(ref_key(env, 0x2D22AC75, m.csb_id, 2, ri, None, 20), resp[:-20] + init,
                                  hashlib.sha1).digest()
    grant = req.receive(resp, NOW)
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    ti = ini.create_message(NOW)
    r = TicketResponder(pk=signer(BOB_CERT), id_r=BOB, kms_id=KMS_ID, rng=seeded(3))
    step = r.receive(ti, NOW)
    rm = Message.decode(step.resolve_init or b"")
    assert rm.data_type == DataType.RESOLVE_INIT_PK and rm.find(CertPayload) is not None
    assert rm.find(ChashPayload) is None
    out = r.receive_resolve(kms.handle(step.resolve_init or b"", NOW) or b"", NOW)
    res = ini.receive(out.response or b"", NOW)
    assert res.crypto_sessions[0].master_key == out.result.crypto_sessions[0].master_key
    assert res.extras["forked"]


def test_pk_refusals() -> None:
    kms = make_kms()
    # a certificate the KMS database does not know: Unspecified error (12), authenticated with the envelope key
    req = TicketRequester(None, policy(), pk=signer(MALLORY_CERT), kms_id=KMS_ID, rng=seeded(1))
    with pytest.raises(TicketRefusedError) as info:
        kms.receive(req.create_message(NOW), NOW)
    assert Message.decode(info.value.error_message or b"").find(ErrorPayload).error_no == ErrorNo.UNSPECIFIED  # type: ignore[union-attr]
    # Mallory signing as Alice (IDRi names Alice, the certificate is Mallory's): certificate refused
    req = TicketRequester(None, policy(), pk=signer(MALLORY_CERT), id_i=ALICE, kms_id=KMS_ID, rng=seeded(2))
    with pytest.raises(CertificateError):
        kms.receive(req.create_message(NOW), NOW)
    # a tampered signature
    req = TicketRequester(None, policy(), pk=signer(ALICE_CERT), id_i=ALICE, kms_id=KMS_ID, rng=seeded(3))
    bad = bytearray(req.create_message(NOW))
    bad[-5] ^= 1
    with pytest.raises(AuthenticationError) as info:
        kms.receive(bytes(bad), NOW)
    assert Message.decode(info.value.error_message or b"").find(ErrorPayload).error_no == ErrorNo.AUTH_FAILURE  # type: ignore[union-attr]
    # a KMS without PK credentials does not take the PK variant: Data type not supported (11)
    plain = TicketKms(InMemoryTicketStore(), identity=KMS_ID)
    req = TicketRequester(None, policy(), pk=signer(ALICE_CERT), id_i=ALICE, kms_id=KMS_ID, rng=seeded(4))
    with pytest.raises(MikeyError) as info:
        plain.receive(req.create_message(NOW), NOW)
    assert Message.decode(info.value.error_message or b"").find(ErrorPayload).error_no == ErrorNo.INVALID_DT  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        TicketRequester(bytes(16), policy(), pk=signer(ALICE_CERT))


def test_mutated_pk_messages_only_raise_mikey_errors() -> None:
    """Seeded byte mutations of REQUEST_INIT_PK and RESOLVE_INIT_PK at the KMS: MikeyError only, none accepted."""
    req = TicketRequester(None, policy(), pk=signer(ALICE_CERT), id_i=ALICE, kms_id=KMS_ID, rng=seeded(1))
    init = req.create_message(NOW)
    grant = req.receive(make_kms().handle(init, NOW) or b"", NOW)
    r = TicketResponder(pk=signer(BOB_CERT), id_r=BOB, kms_id=KMS_ID, rng=seeded(3))
    resolve = r.receive(TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2)).create_message(NOW), NOW)
    rng = random.Random(5)
    for original in (init, resolve.resolve_init or b""):
        for _ in range(40):
            data = bytearray(original)
            pos = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                del data[pos : pos + rng.randrange(1, 9)]
            try:
                make_kms().receive(bytes(data), NOW)
            except MikeyError:
                continue
            raise AssertionError("a mutated PK message was accepted")
