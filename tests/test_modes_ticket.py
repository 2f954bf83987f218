"""MIKEY-TICKET (RFC 6043): derivations against a reference written from the RFC's formulas, every
message type end to end (the four modes of §4.1.1, key forking, group keys, pre-encrypted content),
Ticket Policy validation, reuse detection and the refusals with their Error numbers."""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
from collections.abc import Callable

import pytest

from mikey.constants import (
    PRF,
    CSIdMapType,
    DataType,
    EncrAlg,
    ErrorNo,
    IDRole,
    IDType,
    KeyDataType,
    MacAlg,
    PayloadType,
    RANDRole,
    TSRole,
    TSType,
)
from mikey.crypto import kemac as kemac_crypto
from mikey.crypto import ticket as ticket_crypto
from mikey.errors import (
    AuthenticationError,
    InvalidTicketError,
    InvalidTimestampError,
    InvalidTPparError,
    MikeyError,
    PeerError,
    ReplayError,
    TicketRefusedError,
    TicketReuseError,
    UnspecifiedError,
)
from mikey.modes.base import CryptoSessionSpec, ResponderOutcome, State
from mikey.modes.ticket import (
    SUITE_128,
    SUITE_256,
    InMemoryTicketStore,
    ResolutionRecord,
    ResolvedTicketCache,
    TicketCredential,
    TicketGrant,
    TicketInitiator,
    TicketKms,
    TicketPeer,
    TicketPolicy,
    TicketPolicyRules,
    TicketProtectionKey,
    TicketRequester,
    TicketResponder,
    TicketSuite,
    TicketUpdater,
    TicketUpdateResponder,
    check_policy,
    create_ticket,
    narrower_policy,
    open_base_ticket,
    policy_violations,
    requested_keys,
    reuse_conflict,
    ticket_flags,
)
from mikey.wire import (
    ErrorPayload,
    GenericIdEntry,
    IdrPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    RandrPayload,
    SpiValidity,
    TicketPayload,
    TimestampPayload,
    TrPayload,
    VerificationPayload,
    decode_sub_payloads,
)

NOW = 1_700_000_000.0
ALICE = b"sip:alice@example.com"
BOB = b"sip:bob@example.com"
CAROL = b"sip:carol@example.com"
KMS_ID = b"kms.example.com"
PSK_A = bytes(range(16))
PSK_B_PHONE = bytes(range(16, 32))
PSK_B_LAPTOP = bytes(range(32, 48))
PSK_C = bytes(range(48, 64))
TPK = bytes(range(100, 116))

# -- a reference written straight from RFC 3830 §4.1.2 / RFC 6043 §5.1, §6.10, A.2 -----------------


def ref_prf(inkey: bytes, label: bytes, out_len: int, prf_func: int = 0) -> bytes:
    """P(s, label, m) per 256-bit inkey piece, XORed, truncated (RFC 3830 §4.1.2, RFC 6043 §6.1)."""
    h = hashlib.sha256 if prf_func == 1 else hashlib.sha1
    hlen = h().digest_size
    m = -(-out_len // hlen)
    out = bytes(m * hlen)
    for i in range(0, len(inkey), 32):
        s = inkey[i : i + 32]
        a, chunk = label, b""
        for _ in range(m):
            a = hmac.new(s, a, h).digest()
            chunk += hmac.new(s, a + label, h).digest()
        out = bytes(x ^ y for x, y in zip(out, chunk, strict=True))
    return out[:out_len]


ENCR, AUTH, SALT = 0x150533E1, 0x2D22AC75, 0x29B88916  # RFC 3830 §4.1.4
TEK_C, SALT_C = 0x2AD01C64, 0x39A2C14B  # RFC 3830 §4.1.3


def lv8(x: bytes | None) -> bytes:
    return b"\x00" if x is None else bytes([len(x)]) + x


def ref_msg_key(key: bytes, const: int, csb: int, which: int, ri: bytes | None, rr: bytes | None, n: int,
                prf: int = 0) -> bytes:
    """RFC 6043 §5.1.2."""
    label = struct.pack(">IBIB", const, 0xFF, csb, which) + lv8(ri) + lv8(rr)
    return ref_prf(key, label, n, prf)


def ref_tgk_key(tgk: bytes, const: int, cs_id: int, ri: bytes | None, rr: bytes | None, n: int, prf: int = 0) -> bytes:
    """RFC 6043 §5.1.3."""
    label = struct.pack(">IBIB", const, cs_id, 0xFFFFFFFF, 0x03) + lv8(ri) + lv8(rr)
    return ref_prf(tgk, label, n, prf)


def ref_fork(key: bytes, const: int, id_data: bytes, rand_kms: bytes, prf: int = 0) -> bytes:
    """RFC 6043 §5.1.1."""
    label = struct.pack(">IBIB", const, 0xFF, 0xFFFFFFFF, 0x00) + struct.pack(">H", len(id_data)) + id_data
    return ref_prf(key, label + lv8(rand_kms), len(key), prf)


def ref_tpk_key(tpk: bytes, const: int, rand: bytes, n: int, prf: int = 0) -> bytes:
    """RFC 6043 A.2.1."""
    return ref_prf(tpk, struct.pack(">IBIB", const, 0xFF, 0xFFFFFFFF, 0x05) + lv8(rand), n, prf)


def ref_mpk(mpk: bytes, const: int, rand: bytes, prf: int = 0) -> bytes:
    """RFC 6043 A.2.2 (MPKi 0x220E99A2, MPKr 0x1F4D675B)."""
    return ref_prf(mpk, struct.pack(">IBIB", const, 0xFF, 0xFFFFFFFF, 0x06) + lv8(rand), len(mpk), prf)


def ref_vr_key(mpk_r: bytes, n: int, prf: int = 0) -> bytes:
    """RFC 6043 §6.10 (Vr of the Initiator Data)."""
    return ref_prf(mpk_r, struct.pack(">IBIB", AUTH, 0xFF, 0xFFFFFFFF, 0x04), n, prf)


def hmac1(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha1).digest()


# -- fixtures -------------------------------------------------------------------------------------


def seeded(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return r.randbytes


def idr(role: int, data: bytes) -> IdrPayload:
    return IdrPayload(role, IDType.URI, data)


def policy(letters: str = "DEFHINO", responders: tuple[bytes, ...] = (BOB,), **kw: object) -> TicketPolicy:
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(NOW) + 2208988800 + 3600).to_bytes(4, "big"))
    kw.setdefault("end", end)
    return TicketPolicy(ticket_flags(letters), tuple(idr(IDRole.RESPONDER, r) for r in responders), **kw)  # type: ignore[arg-type]


def make_store() -> InMemoryTicketStore:
    store = InMemoryTicketStore()
    store.add_credential(TicketCredential(ALICE, PSK_A, b"alice"))
    store.add_credential(TicketCredential(BOB, PSK_B_PHONE, b"bob-phone"))
    store.add_credential(TicketCredential(BOB, PSK_B_LAPTOP, b"bob-laptop"))
    store.add_credential(TicketCredential(CAROL, PSK_C, b"carol", groups=frozenset({b"sip:support@example.com"})))
    store.add_protection_key(TicketProtectionKey(b"kms-tpk", TPK))
    return store


def make_kms(store: InMemoryTicketStore | None = None, seed: int = 7, **kw: object) -> TicketKms:
    return TicketKms(store or make_store(), identity=KMS_ID, rng=seeded(seed), **kw)  # type: ignore[arg-type]


def request(kms: TicketKms, pol: TicketPolicy, *, seed: int = 1, suite: TicketSuite = SUITE_128,
            **kw: object) -> tuple[TicketRequester, bytes, bytes, TicketGrant]:
    req = TicketRequester(PSK_A, pol, id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(seed), suite=suite,
                          **kw)  # type: ignore[arg-type]
    init = req.create_message(NOW)
    resp = kms.handle(init, NOW)
    assert resp is not None
    return req, init, resp, req.receive(resp, NOW)


def responder(device: bytes = b"bob-phone", psk: bytes = PSK_B_PHONE, seed: int = 3, **kw: object) -> TicketResponder:
    return TicketResponder(psk, id_r=BOB, kms_id=KMS_ID, psk_id=device, rng=seeded(seed), **kw)  # type: ignore[arg-type]


def transfer(kms: TicketKms, grant: TicketGrant, resp: TicketResponder, *,
             seed: int = 2) -> tuple[TicketInitiator, bytes, bytes, bytes, ResponderOutcome]:
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(seed), crypto_sessions=[CryptoSessionSpec(ssrc=0x1234)])
    ti = ini.create_message(NOW)
    step = resp.receive(ti, NOW)
    assert step.resolve_init is not None
    rr = kms.handle(step.resolve_init, NOW)
    assert rr is not None
    out = resp.receive_resolve(rr, NOW)
    return ini, ti, step.resolve_init, rr, out


# -- crypto.ticket against the reference ----------------------------------------------------------


@pytest.mark.parametrize("prf", [0, 1])
def test_every_label_matches_the_rfc_formula(prf: int) -> None:
    key, ri, rr, rk = bytes(range(32)), b"\x11" * 16, b"\x22" * 20, b"\x33" * 16
    n = 32 if prf else 20
    for which in (1, 2):
        keys = ticket_crypto.derive_message_keys(key, 0xDEADBEEF, which, ri, rr, encr_len=16, auth_len=n, salt_len=14,
                                                 prf_func=prf)
        assert keys.encr_key == ref_msg_key(key, ENCR, 0xDEADBEEF, which, ri, rr, 16, prf)
        assert keys.auth_key == ref_msg_key(key, AUTH, 0xDEADBEEF, which, ri, rr, n, prf)
        assert keys.salt == ref_msg_key(key, SALT, 0xDEADBEEF, which, ri, rr, 14, prf)
    # an absent RAND is a zero length (§5.1.2)
    only_r = ticket_crypto.derive_message_keys(key, 5, 1, None, rr, encr_len=16, auth_len=n, salt_len=14, prf_func=prf)
    assert only_r.auth_key == ref_msg_key(key, AUTH, 5, 1, None, rr, n, prf)
    assert ticket_crypto.derive_tek_and_salt(key, 7, ri, None, 16, 14, prf) == (
        ref_tgk_key(key, TEK_C, 7, ri, None, 16, prf), ref_tgk_key(key, SALT_C, 7, ri, None, 14, prf))
    assert ticket_crypto.fork_key(key[:16], 0x2B288856, BOB, rk, prf) == ref_fork(key[:16], 0x2B288856, BOB, rk, prf)
    assert ticket_crypto.fork_key(key, 0x1512B54A, BOB, rk, prf) == ref_fork(key, 0x1512B54A, BOB, rk, prf)
    assert len(ticket_crypto.fork_key(key, 0x1512B54A, BOB, rk, prf)) == 32
    assert ticket_crypto.derive_initiator_data_keys(key, auth_len=n, prf_func=prf) == ref_vr_key(key, n, prf)
    tk = ticket_crypto.derive_tpk_keys(key, ri, encr_len=16, auth_len=n, salt_len=14, prf_func=prf)
    assert (tk.encr_key, tk.auth_key, tk.salt) == tuple(
        ref_tpk_key(key, c, ri, m, prf) for c, m in ((ENCR, 16), (AUTH, n), (SALT, 14)))
    assert ticket_crypto.derive_mpki_mpkr(key, ri, prf) == (
        ref_mpk(key, 0x220E99A2, ri, prf), ref_mpk(key, 0x1F4D675B, ri, prf))


@pytest.mark.parametrize("prf", [0, 1])
def test_one_pass_derivations_equal_the_separate_ones(prf: int) -> None:
    """derive_exchange_keys (the KMS's initial auth_key + response keys) and derive_mpki (A.2.2) give
    what the per-message derivations give."""
    key, ri, rr = bytes(range(16, 48)), b"\x44" * 16, b"\x55" * 24
    n, e = (32, 32) if prf else (20, 16)
    for rand_i, rand_r in ((ri, None), (None, rr), (ri, rr)):
        init_auth, resp = ticket_crypto.derive_exchange_keys(key, 0x0A0B0C0D, rand_i, rand_r, encr_len=e, auth_len=n,
                                                             salt_len=14, prf_func=prf)
        assert init_auth == ref_msg_key(key, AUTH, 0x0A0B0C0D, 1, rand_i, rand_r, n, prf)
        assert resp.encr_key == ref_msg_key(key, ENCR, 0x0A0B0C0D, 2, rand_i, rand_r, e, prf)
        assert resp.auth_key == ref_msg_key(key, AUTH, 0x0A0B0C0D, 2, rand_i, rand_r, n, prf)
        assert resp.salt == ref_msg_key(key, SALT, 0x0A0B0C0D, 2, rand_i, rand_r, 14, prf)
    with pytest.raises(MikeyError):
        ticket_crypto.derive_exchange_keys(key, 1, None, None, encr_len=16, auth_len=20, salt_len=14)
    assert ticket_crypto.derive_mpki(key[:16], ri, prf) == ref_mpk(key[:16], 0x220E99A2, ri, prf)
    assert ticket_crypto.derive_mpki(key, ri, prf) == ticket_crypto.derive_mpki_mpkr(key, ri, prf)[0]


def test_ticket_mac_coverage_is_the_encoded_payload_less_initiator_data() -> None:
    """A.1: the TICKET payload but Next Payload, Initiator Data length and data, less the MAC."""
    import dataclasses

    from mikey.modes.ticket import _ticket_mac_input
    from mikey.wire import encode_sub_payloads

    t = TicketPayload(1, 1, 1, 1, ticket_flags("DEFHJNO"), b"\x0f" * 40, bytes(range(90)), b"init" * 9, 0x15)
    enc = encode_sub_payloads([dataclasses.replace(t, initiator_data=b"")])
    assert _ticket_mac_input(t, 32) == enc[1 : len(enc) - 2 - 32]
    assert _ticket_mac_input(t, 20) == enc[1 : len(enc) - 2 - 20]
    with pytest.raises(MikeyError):
        _ticket_mac_input(dataclasses.replace(t, version=256), 20)


def test_label_octets_and_constants() -> None:
    """Each derivation has its own label octet 0x00..0x06 and RFC 6043's own constants."""
    assert ticket_crypto.fork_label(0x2B288856, b"ab", b"r")[:10] == bytes.fromhex("2b288856ffffffffff00")
    assert ticket_crypto.fork_label(0x1512B54A, b"ab", b"r")[10:] == b"\x00\x02ab\x01r"
    assert ticket_crypto.message_label(ENCR, 0x01020304, 1, b"i", None) == bytes.fromhex("150533e1ff0102030401") + \
        b"\x01i\x00"
    assert ticket_crypto.message_label(ENCR, 0x01020304, 2, None, b"r")[9:] == b"\x02\x00\x01r"
    assert ticket_crypto.tgk_label(TEK_C, 9, None, b"rr") == bytes.fromhex("2ad01c6409ffffffff03") + b"\x00\x02rr"
    assert ticket_crypto.tpk_label(AUTH, b"xy") == bytes.fromhex("2d22ac75ffffffffff05") + b"\x02xy"
    assert ticket_crypto.mpk_label(0x220E99A2, b"x") == bytes.fromhex("220e99a2ffffffffff06") + b"\x01x"
    # RFC 3830's labels (no direction octet) give other keys: the RFC 6043 ones are really used.
    from mikey.crypto import prf as prf_crypto

    rfc3830 = prf_crypto.derive_transport_keys(PSK_A, 1, b"r" * 16, encr_len=16, auth_len=20, salt_len=14)
    rfc6043 = ticket_crypto.derive_message_keys(PSK_A, 1, 1, b"r" * 16, None, encr_len=16, auth_len=20, salt_len=14)
    assert rfc3830.auth_key != rfc6043.auth_key
    with pytest.raises(MikeyError):
        ticket_crypto.message_label(ENCR, 1, 1, None, None)
    with pytest.raises(MikeyError):
        ticket_crypto.message_label(ENCR, 1, 3, b"i", None)
    with pytest.raises(MikeyError):
        ticket_crypto.fork_label(1, b"x" * 70000, b"r")


# -- mode 1, every message cross-checked -----------------------------------------------------------


def test_mode1_forked_every_mac_and_key_recomputed() -> None:
    """Request, Transfer, Resolve (mode 1) with key forking: each MAC and key from the reference."""
    kms = make_kms()
    req, init, resp, grant = request(kms, policy("DEFHINO"))
    init_m, resp_m = Message.decode(init), Message.decode(resp)
    assert init_m.data_type == DataType.REQUEST_INIT_PSK and resp_m.data_type == DataType.REQUEST_RESP
    assert init_m.header.cs_id_map_type == CSIdMapType.EMPTY and init_m.header.n_cs == 0 and init_m.header.v
    assert not resp_m.header.v and resp_m.csb_id == init_m.csb_id
    ri = init_m.find(RandrPayload).rand  # type: ignore[union-attr]
    csb = init_m.csb_id
    # REQUEST_INIT: MAC over the message || Identity_i || Identity_kms (§5.5), key label 0x01
    auth = ref_msg_key(PSK_A, AUTH, csb, 1, ri, None, 20)
    assert init[-20:] == hmac1(auth, init[:-20] + ALICE + KMS_ID)
    # REQUEST_RESP: MAC over REQUEST_RESP || REQUEST_INIT, key label 0x02
    auth2 = ref_msg_key(PSK_A, AUTH, csb, 2, ri, None, 20)
    assert resp[-20:] == hmac1(auth2, resp[:-20] + init)
    # its KEMAC: E(encr_key, MPKi || MPKr || TGK), NULL MAC
    kemac = resp_m.find(KemacPayload)
    t = resp_m.find(TimestampPayload)
    assert kemac is not None and t is not None and kemac.mac_alg == MacAlg.NULL
    plain = kemac_crypto.decrypt(kemac.encr_alg, ref_msg_key(PSK_A, ENCR, csb, 2, ri, None, 16),
                                 ref_msg_key(PSK_A, SALT, csb, 2, ri, None, 14), csb, t.ts_value, kemac.encr_data)
    subs = decode_sub_payloads(plain)
    assert [s.key_type for s in subs] == [KeyDataType.MPK, KeyDataType.MPK, KeyDataType.TGK]  # type: ignore[attr-defined]
    mpk_i, mpk_r, tgk = (s.key for s in subs)  # type: ignore[attr-defined]
    assert (grant.mpk_i, grant.mpk_r, grant.session_keys[0].key) == (mpk_i, mpk_r, tgk)
    # the base ticket (Appendix A): THDR, T, RAND, KEMAC, IDRpsk, V
    ticket = resp_m.find(TicketPayload)
    assert ticket is not None and ticket == grant.ticket
    td = ticket.ticket_data
    assert td[1:3] == b"\x00\x00" and td[0] == PayloadType.T  # THDR: next payload T, no THDR Data
    chain = decode_sub_payloads(td[3:], td[0])
    assert [p.NAME for p in chain] == ["T", "RAND", "KEMAC", "IDR", "V"]
    rand = chain[1].rand  # type: ignore[attr-defined]
    enc = ticket.initiator_data  # empty in REQUEST_RESP
    assert enc == b""
    body = Message.decode(resp).payload_span(resp_m.payloads.index(ticket))
    tbytes = resp[body[0] + 1 : body[1] - 2]  # TICKET less Next Payload and the Initiator Data fields
    assert tbytes[-20:] == hmac1(ref_tpk_key(TPK, AUTH, rand, 20), tbytes[:-20])
    tk = chain[2]
    tplain = kemac_crypto.decrypt(tk.encr_alg, ref_tpk_key(TPK, ENCR, rand, 16), ref_tpk_key(TPK, SALT, rand, 14),  # type: ignore[attr-defined]
                                  0xFFFFFFFF, chain[0].ts_value, tk.encr_data)  # type: ignore[attr-defined]
    tsubs = decode_sub_payloads(tplain)
    mpk = tsubs[0].key  # type: ignore[attr-defined]
    assert ref_mpk(mpk, 0x220E99A2, rand) == mpk_i and ref_mpk(mpk, 0x1F4D675B, rand) == mpk_r
    assert tsubs[1].key == tgk  # type: ignore[attr-defined]
    # the granted policy: D set (KMS-made), K set (the KMS put in its own TRe? no: TRe given), IDRi/IDRkms added
    assert grant.policy.flag_string == "DEFHINO" and not grant.changed
    assert grant.policy.initiator is not None and grant.policy.initiator.data == ALICE
    assert grant.policy.kms is not None and grant.policy.kms.data == KMS_ID

    # Transfer + Resolve, two devices of Bob
    ini, ti, ri_msg, rr, out = transfer(kms, grant, responder())
    ti_m = Message.decode(ti)
    assert ti_m.header.cs_id_map_type == CSIdMapType.GENERIC_ID and ti_m.header.v  # V agrees with F
    rand_i = ti_m.find(RandrPayload).rand  # type: ignore[union-attr]
    tcsb = ti_m.csb_id
    tt = ti_m.find(TicketPayload)
    assert tt is not None and tt.initiator_data
    # TRANSFER_INIT MAC: less the Initiator Data length and data, then Identity_i || Identity_r (§5.5)
    s, e = ti_m.payload_span(ti_m.payloads.index(tt))
    covered = ti[: e - 2 - len(tt.initiator_data)] + ti[e:-20]
    vi_key = ref_msg_key(mpk_i, AUTH, tcsb, 1, rand_i, None, 20)
    assert ti[-20:] == hmac1(vi_key, covered + ALICE + BOB)
    # Initiator Data = first payload V, Vi (= V), Vr keyed from MPKr label 0x04
    idata = tt.initiator_data
    assert idata[0] == PayloadType.V
    vi, vr = decode_sub_payloads(idata[1:], idata[0])
    assert vi.ver_data == ti[-20:]  # type: ignore[attr-defined]
    assert vr.ver_data == hmac1(ref_vr_key(mpk_r, 20), idata[:-20])  # type: ignore[attr-defined]
    # RESOLVE_INIT: keys from Bob's device PSK with RANDRr only; MAC || Identity_r || Identity_kms
    rm = Message.decode(ri_msg)
    assert rm.data_type == DataType.RESOLVE_INIT_PSK and rm.header.cs_id_map_type == CSIdMapType.EMPTY
    rrand = rm.find(RandrPayload)
    assert rrand is not None and rrand.rand_role == RANDRole.RESPONDER
    assert ri_msg[-20:] == hmac1(ref_msg_key(PSK_B_PHONE, AUTH, rm.csb_id, 1, None, rrand.rand, 20),
                                 ri_msg[:-20] + BOB + KMS_ID)
    assert rm.find(TicketPayload) == tt
    # RESOLVE_RESP: V over RESOLVE_RESP || RESOLVE_INIT; KEMAC = MPKi || MPKr' || TGK'; IDRr and RANDRkms
    rrm = Message.decode(rr)
    assert rr[-20:] == hmac1(ref_msg_key(PSK_B_PHONE, AUTH, rm.csb_id, 2, None, rrand.rand, 20), rr[:-20] + ri_msg)
    rkms = next(p for p in rrm.payloads if isinstance(p, RandrPayload) and p.rand_role == RANDRole.KMS).rand
    ridr = next(p for p in rrm.payloads if isinstance(p, IdrPayload) and p.id_role == IDRole.RESPONDER).data
    assert ridr == BOB
    rk = rrm.find(KemacPayload)
    rt = rrm.find(TimestampPayload)
    rplain = kemac_crypto.decrypt(rk.encr_alg, ref_msg_key(PSK_B_PHONE, ENCR, rm.csb_id, 2, None, rrand.rand, 16),  # type: ignore[union-attr]
                                  ref_msg_key(PSK_B_PHONE, SALT, rm.csb_id, 2, None, rrand.rand, 14), rm.csb_id,
                                  rt.ts_value, rk.encr_data)  # type: ignore[union-attr]
    rsubs = decode_sub_payloads(rplain)
    mpk_r_f = ref_fork(mpk_r, 0x2B288856, BOB, rkms)
    tgk_f = ref_fork(tgk, 0x1512B54A, BOB, rkms)
    assert [s.key for s in rsubs] == [mpk_i, mpk_r_f, tgk_f]  # type: ignore[attr-defined]
    # TRANSFER_RESP: MPKr', label 0x02 with RANDRi (no RANDRr: G = 0); V over TRANSFER_RESP || TRANSFER_INIT
    tr = out.response
    assert tr is not None
    trm = Message.decode(tr)
    assert trm.data_type == DataType.TRANSFER_RESP and not trm.header.v
    assert tr[-20:] == hmac1(ref_msg_key(mpk_r_f, AUTH, tcsb, 2, rand_i, None, 20), tr[:-20] + ti)
    # SRTP keys from TGK' with RANDRi (H) (§5.1.3), both ends
    mine = ini.receive(tr, NOW)
    cs = trm.header.cs_id_map[0]
    assert isinstance(cs, GenericIdEntry)
    assert cs.ssrc == 0x1234 and cs.spi == grant.session_keys[0].kv.spi  # type: ignore[union-attr]
    want_key = ref_tgk_key(tgk_f, TEK_C, cs.cs_id, rand_i, None, 16)
    want_salt = ref_tgk_key(tgk_f, SALT_C, cs.cs_id, rand_i, None, 14)
    for r in (mine, out.result):
        assert (r.crypto_sessions[0].master_key, r.crypto_sessions[0].master_salt) == (want_key, want_salt)
        assert r.extras["forked"] and r.responder_id == BOB
    assert mine.authenticated and out.result.authenticated and ini.state == State.DONE


def test_forking_two_devices_get_different_keys_and_the_initiator_derives_each() -> None:
    """§5.1.1/§9.1: Bob's phone and laptop resolve one TRANSFER_INIT; keys differ, Alice derives both."""
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFHINO"))
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    ti = ini.create_message(NOW)
    outs = []
    for dev, psk, seed in ((b"bob-phone", PSK_B_PHONE, 3), (b"bob-laptop", PSK_B_LAPTOP, 4)):
        r = responder(dev, psk, seed)
        step = r.receive(ti, NOW)
        assert step.resolve_init is not None
        outs.append(r.receive_resolve(kms.handle(step.resolve_init, NOW) or b"", NOW))
    first = ini.receive(outs[0].response or b"", NOW)
    second = ini.receive_fork(outs[1].response or b"", NOW)
    k = [o.result.crypto_sessions[0].master_key for o in outs]
    assert k[0] != k[1]
    assert first.crypto_sessions[0].master_key == k[0] and second.crypto_sessions[0].master_key == k[1]
    assert first.extras["rand_kms"] != second.extras["rand_kms"]
    with pytest.raises(AuthenticationError):  # the same fork twice
        ini.receive_fork(outs[1].response or b"", NOW)


def test_without_forking_both_devices_share_keys_and_no_initiator_data() -> None:
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFHJNO"))
    assert grant.mpk_r is None
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    ti = ini.create_message(NOW)
    assert Message.decode(ti).find(TicketPayload).initiator_data == b""  # type: ignore[union-attr]
    keys = []
    for dev, psk in ((b"bob-phone", PSK_B_PHONE), (b"bob-laptop", PSK_B_LAPTOP)):
        r = responder(dev, psk)
        step = r.receive(ti, NOW)
        out = r.receive_resolve(kms.handle(step.resolve_init or b"", NOW) or b"", NOW)
        keys.append(out.result.crypto_sessions[0].master_key)
        assert ini.state == State.WAIT_RESPONSE
    assert keys[0] == keys[1]
    res = ini.receive(out.response or b"", NOW)
    assert res.crypto_sessions[0].master_key == keys[0]


def test_g_flag_randrr_enters_the_keys_and_f0_sends_no_response() -> None:
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFGHNO"))
    ini, ti, _, _, out = transfer(kms, grant, responder())
    trm = Message.decode(out.response or b"")
    rr = next(p.rand for p in trm.payloads if isinstance(p, RandrPayload) and p.rand_role == RANDRole.RESPONDER)
    rand_i = Message.decode(ti).find(RandrPayload).rand  # type: ignore[union-attr]
    tgk = grant.session_keys[0].key
    cs_id = trm.header.cs_ids()[0]
    assert ini.receive(out.response or b"", NOW).crypto_sessions[0].master_key == \
        ref_tgk_key(tgk, TEK_C, cs_id, rand_i, rr, 16) == out.result.crypto_sessions[0].master_key
    # F = 0 (so G = 0, H = 1): no TRANSFER_RESP; the Initiator has its keys at once
    kms0 = make_kms()
    _, _, _, grant0 = request(kms0, policy("DEHNO"), seed=9)
    ini0 = TicketInitiator(grant0, id_i=ALICE, id_r=BOB, rng=seeded(5))
    ti0 = ini0.create_message(NOW)
    assert ini0.state == State.DONE and not Message.decode(ti0).header.v
    r0 = responder()
    out0 = r0.receive_resolve(kms0.handle(r0.receive(ti0, NOW).resolve_init or b"", NOW) or b"", NOW)
    assert out0.response is None
    assert out0.result.crypto_sessions[0].master_key == ini0.result.crypto_sessions[0].master_key


def test_256_bit_suite_round_trip() -> None:
    """PRF-HMAC-SHA-256, AES-CM-256, HMAC-SHA-256-256 together (§6.1, §6.2, §12.1)."""
    kms = make_kms()
    req, init, resp, grant = request(kms, policy("DEFHINO"), suite=SUITE_256)
    m = Message.decode(init)
    assert m.header.prf == PRF.PRF_HMAC_SHA_256 and m.payloads[-1].auth_alg == MacAlg.HMAC_SHA_256_256  # type: ignore[attr-defined]
    ri = m.find(RandrPayload).rand  # type: ignore[union-attr]
    assert init[-32:] == hmac.new(ref_msg_key(PSK_A, AUTH, m.csb_id, 1, ri, None, 32, 1), init[:-32] + ALICE + KMS_ID,
                                  hashlib.sha256).digest()
    assert Message.decode(resp).find(KemacPayload).encr_alg == EncrAlg.AES_CM_256  # type: ignore[union-attr]
    assert len(grant.mpk_i) == 32 and grant.policy.prf_func == PRF.PRF_HMAC_SHA_256
    ini, _, _, _, out = transfer(kms, grant, responder(suite=SUITE_256))
    assert ini.receive(out.response or b"", NOW).crypto_sessions[0].master_key == \
        out.result.crypto_sessions[0].master_key


# -- the four modes of §4.1.1 ----------------------------------------------------------------------


def test_mode2_kms_and_responder_share_the_tpk_no_resolve() -> None:
    """Mode 2: the KMS issues with a TPK it shares with Bob; E = 0, Bob resolves the ticket himself."""
    store = make_store()
    bob_tpk = bytes(range(200, 216))
    store.add_protection_key(TicketProtectionKey(b"bob-tpk", bob_tpk, owner=BOB))
    kms = make_kms(store)
    _, _, _, grant = request(kms, policy("DFHNO"))
    r = TicketResponder(None, id_r=BOB, tpk_for=lambda key_id: bob_tpk if key_id == b"bob-tpk" else None,
                        rng=seeded(3))
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    step = r.receive(ini.create_message(NOW), NOW)
    assert step.resolve_init is None and step.outcome is not None
    res = ini.receive(step.outcome.response or b"", NOW)
    assert res.crypto_sessions[0].master_key == step.outcome.result.crypto_sessions[0].master_key
    assert open_base_ticket(grant.ticket, lambda k: bob_tpk).session_keys[0].key == grant.session_keys[0].key


def test_mode3_initiator_makes_the_ticket_kms_resolves() -> None:
    """Mode 3: Alice shares a TPK with the KMS and makes the ticket herself (D = 0, so L = 1)."""
    store = make_store()
    alice_tpk = bytes(range(150, 166))
    store.add_protection_key(TicketProtectionKey(b"alice-tpk", alice_tpk, owner=ALICE))
    kms = make_kms(store)
    pol = policy("EFHLNO").replace(initiator=idr(IDRole.INITIATOR, ALICE))
    grant = create_ticket(pol, alice_tpk, NOW, tpk_id=b"alice-tpk", rng=seeded(11))
    assert not grant.policy.flag("D")
    ini, _, _, _, out = transfer(kms, grant, responder())
    assert ini.receive(out.response or b"", NOW).crypto_sessions[0].master_key == \
        out.result.crypto_sessions[0].master_key
    # a ticket made with Alice's TPK that claims another creator is refused
    forged = create_ticket(pol.replace(initiator=idr(IDRole.INITIATOR, CAROL)), alice_tpk, NOW, tpk_id=b"alice-tpk",
                           rng=seeded(12))
    r = responder(seed=8)
    step = r.receive(TicketInitiator(forged, id_i=CAROL, id_r=BOB, rng=seeded(13)).create_message(NOW), NOW)
    with pytest.raises(AuthenticationError) as info:
        kms.receive(step.resolve_init or b"", NOW)
    assert Message.decode(info.value.error_message or b"").find(ErrorPayload).error_no == ErrorNo.AUTH_FAILURE  # type: ignore[union-attr]


def test_mode4_initiator_and_responder_share_the_tpk() -> None:
    """Mode 4: no KMS at all; a PSK method with mutual freshness (G = 1)."""
    shared = bytes(range(50, 66))
    grant = create_ticket(policy("EFGHLNO".replace("E", "")), shared, NOW, tpk_id=b"alice-bob", rng=seeded(21))
    r = TicketResponder(None, id_r=BOB, tpk_for=lambda k: shared if k == b"alice-bob" else None, rng=seeded(22))
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(23))
    step = r.receive(ini.create_message(NOW), NOW)
    assert step.outcome is not None and step.resolve_init is None
    res = ini.receive(step.outcome.response or b"", NOW)
    assert res.crypto_sessions[0].master_key == step.outcome.result.crypto_sessions[0].master_key
    assert res.extras["rand_r"]  # G: the Responder's RAND
    # without the TPK (and no KMS credential) the Responder cannot resolve: Error no 14
    with pytest.raises(InvalidTicketError) as info:
        TicketResponder(None, id_r=BOB, rng=seeded(1)).receive(ini.transfer_init or b"", NOW)
    assert Message.decode(info.value.error_message or b"").find(ErrorPayload).error_no == ErrorNo.INVALID_TICKET  # type: ignore[union-attr]


# -- group keys and pre-encrypted content ------------------------------------------------------------


def test_group_key_gtgk_is_not_forked_and_same_rands_give_one_group_key() -> None:
    """§9: a GTGK with forking: MPKr' differ per device, the GTGK does not, so with RANDRi alone
    (G = 0, H = 1) every member derives the same SRTP keys."""
    kms = make_kms()
    pol = policy("DEFHINO", requested_keys=requested_keys([(KeyDataType.GTGK, 16)]))
    _, _, _, grant = request(kms, pol)
    assert grant.session_keys[0].key_type == KeyDataType.GTGK and not grant.changed
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    ti = ini.create_message(NOW)
    outs = []
    for dev, psk, seed in ((b"bob-phone", PSK_B_PHONE, 3), (b"bob-laptop", PSK_B_LAPTOP, 4)):
        r = responder(dev, psk, seed)
        outs.append(r.receive_resolve(kms.handle(r.receive(ti, NOW).resolve_init or b"", NOW) or b"", NOW))
    a = ini.receive(outs[0].response or b"", NOW)
    b = ini.receive_fork(outs[1].response or b"", NOW)
    keys = {x.crypto_sessions[0].master_key for x in (a, b, outs[0].result, outs[1].result)}
    assert len(keys) == 1
    assert outs[0].result.tgk == outs[1].result.tgk == grant.session_keys[0].key


def test_pre_encrypted_content_responder_supplies_the_tek() -> None:
    """§8: the Responder (e.g. a VoD server) sends its TEK in TRANSFER_RESP's KEMAC (M flag)."""
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFHMNO"))
    tek = KeyDataPayload(KeyDataType.TEK_SALT, bytes(range(16)), bytes(range(14)), SpiValidity(b"\x00\x00\x00\x07"))
    r = responder(responder_keys=[tek])
    ini, ti, _, _, out = transfer(kms, grant, r)
    res = ini.receive(out.response or b"", NOW)
    assert res.crypto_sessions[0].master_key == bytes(range(16)) == out.result.crypto_sessions[0].master_key
    assert res.crypto_sessions[0].master_salt == bytes(range(14))
    assert Message.decode(out.response or b"").find(KemacPayload) is not None
    # M = 0: the Responder must not supply keys
    _, _, _, grant2 = request(kms, policy("DEFHNO"), seed=5)
    with pytest.raises(MikeyError):
        transfer(kms, grant2, responder(responder_keys=[tek], seed=9), seed=6)


# -- Ticket Policy (§6.10) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("letters", "rule"),
    [("EFHNO", "NOT D implies L"), ("DEGHNO", "G implies F"), ("DEFNO", "NOT G implies H"),
     ("DFHINO", "I implies E"), ("DEHMNO", "M implies F")],
)
def test_flag_dependencies(letters: str, rule: str) -> None:
    assert any(rule in v for v in policy_violations(policy(letters), granted=True))
    with pytest.raises(InvalidTPparError):
        check_policy(policy(letters), granted=True)


def test_policy_contents_rules() -> None:
    assert "TP Data needs at least one IDRr" in policy_violations(policy(responders=()), granted=False)
    ctr = TrPayload(TSRole.END_OF_VALIDITY, TSType.COUNTER, b"\x00\x00\x00\x01")
    assert any("NTP" in v for v in policy_violations(policy(end=ctr), granted=False))
    rekey = TrPayload(TSRole.REKEYING_INTERVAL, TSType.NTP_UTC, bytes(8))
    assert any("TRr" in v for v in policy_violations(policy(rekey=rekey), granted=False))
    kem = requested_keys([(KeyDataType.TGK, 16)])
    assert any("must not hold a KEMAC" in v for v in policy_violations(policy(requested_keys=kem), granted=True))
    bad = KemacPayload(EncrAlg.AES_CM_128, kem.encr_data, MacAlg.NULL)
    assert any("NULL" in v for v in policy_violations(policy(requested_keys=bad), granted=False))
    mpk = requested_keys([(KeyDataType.MPK, 16)])
    assert any("only TEK" in v for v in policy_violations(policy(requested_keys=mpk), granted=False))
    assert policy_violations(policy(), granted=True) == []
    # TP Data in the wrong order (IDRr before IDRi) is refused; a round trip keeps every field
    p = policy().replace(initiator=idr(IDRole.INITIATOR, ALICE), kms=idr(IDRole.KMS, KMS_ID))
    assert TicketPolicy.from_payload(p.to_tp()) == p
    tp = p.to_tp()
    disordered = tp.__class__(tp.ticket_type, tp.subtype, tp.version, tp.prf_func, tp.flags,
                              bytes([PayloadType.IDR]) + _chain(idr(IDRole.RESPONDER, BOB), idr(IDRole.INITIATOR, ALICE)))
    with pytest.raises(InvalidTPparError):
        TicketPolicy.from_payload(disordered)


def _chain(*ps: IdrPayload) -> bytes:
    from mikey.wire import encode_sub_payloads

    return encode_sub_payloads(list(ps))


def test_kms_refuses_a_bad_desired_policy_with_error_15() -> None:
    kms = make_kms()
    req = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(1))
    # bypass the Requester's own check to see the KMS answer a policy breaking I => E
    req.desired = policy("DFHINO")
    with pytest.raises(InvalidTPparError) as info:
        kms.receive(req.create_message(NOW), NOW)
    err = Message.decode(info.value.error_message or b"")
    assert err.find(ErrorPayload).error_no == ErrorNo.INVALID_TPPAR  # type: ignore[union-attr]
    # authenticated Error message (§5.4): V over the Error message alone, keyed like REQUEST_INIT
    ri = Message.decode(req.request or b"").find(RandrPayload).rand  # type: ignore[union-attr]
    raw = info.value.error_message or b""
    assert raw[-20:] == hmac1(ref_msg_key(PSK_A, AUTH, req.csb_id, 1, ri, None, 20), raw[:-20])


def test_k_flag_when_the_kms_changes_the_policy_and_the_initiator_judges_it() -> None:
    # the KMS forces key forking and a 10-minute validity
    rules = TicketPolicyRules(force_on=ticket_flags("I"), max_lifetime=600.0)
    kms = make_kms(rules=rules)
    _, _, _, grant = request(kms, policy("DEFHNO"), accept_policy=lambda d, g: True)
    assert grant.changed and grant.policy.flag("I") and grant.policy.flag("K")
    assert grant.policy.validity(NOW)[1] == pytest.approx(NOW + 600, abs=1)
    # the default judge accepts a shorter validity but not dropping asked-for forking
    kms2 = make_kms(rules=TicketPolicyRules(force_off=ticket_flags("I")))
    with pytest.raises(InvalidTPparError):
        request(kms2, policy("DEFHINO"))
    kms3 = make_kms(rules=TicketPolicyRules(max_lifetime=60.0))
    _, _, _, g3 = request(kms3, policy("DEFHINO"))
    assert g3.changed and narrower_policy(policy("DEFHINO"), g3.policy)
    # the KMS granted the keys asked for: no K
    _, _, _, g4 = request(make_kms(), policy("DEFHNO", requested_keys=requested_keys([(KeyDataType.TEK_SALT, 16),
                                                                                        (KeyDataType.TGK, 16)])))
    assert not g4.changed and [k.key_type for k in g4.session_keys] == [KeyDataType.TEK_SALT, KeyDataType.TGK]
    assert not narrower_policy(policy("DEFHNO"), policy("DEFHJNO"))  # reuse where none was asked
    assert not narrower_policy(policy("DEFHNO"), policy("DEFHNO", responders=(CAROL,)))


# -- reuse (§5.3) and refusals (§5.4) -----------------------------------------------------------------


def test_reuse_forbidden_j0_same_device_and_other_transfer_refused() -> None:
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFHINO"))
    ini, ti, ri1, _, _ = transfer(kms, grant, responder())
    # the same device resolving the same ticket again (a new RESOLVE_INIT, not a byte replay)
    r2 = responder(seed=31)
    with pytest.raises(PeerError) as info:
        r2.receive_resolve(kms.handle(r2.receive(ti, NOW).resolve_init or b"", NOW) or b"", NOW)
    assert info.value.err_nos == [ErrorNo.UNSPECIFIED]
    to_alice = Message.decode(info.value.error_message or b"")  # the refusal passed on to the Initiator
    assert to_alice.csb_id == Message.decode(ti).csb_id and _err_no(info.value) == ErrorNo.UNSPECIFIED
    # the laptop resolving the same TRANSFER_INIT: forking, allowed
    transfer_ok = responder(b"bob-laptop", PSK_B_LAPTOP, 32)
    transfer_ok.receive_resolve(kms.handle(transfer_ok.receive(ti, NOW).resolve_init or b"", NOW) or b"", NOW)
    # a second Ticket Transfer with the same ticket (another Vi): reuse, refused for every device
    ini2 = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(33))
    ti2 = ini2.create_message(NOW)
    r3 = responder(b"bob-laptop", PSK_B_LAPTOP, 34)
    step = r3.receive(ti2, NOW)
    with pytest.raises(TicketReuseError):
        kms.receive(step.resolve_init or b"", NOW)
    # J = 1: reuse allowed
    kms_j = make_kms()
    _, _, _, gj = request(kms_j, policy("DEFHIJNO"))
    for seed in (40, 41):
        i = TicketInitiator(gj, id_i=ALICE, id_r=BOB, rng=seeded(seed))
        r = responder(seed=seed + 10)
        r.receive_resolve(kms_j.handle(r.receive(i.create_message(NOW), NOW).resolve_init or b"", NOW) or b"", NOW)


def test_reuse_rule() -> None:
    a = ResolutionRecord(b"vi1", BOB, b"phone")
    assert reuse_conflict([a], ResolutionRecord(b"vi1", BOB, b"laptop")) is None
    assert reuse_conflict([a], ResolutionRecord(b"vi1", BOB, b"phone")) is not None
    assert reuse_conflict([a], ResolutionRecord(b"vi2", BOB, b"laptop")) is not None
    assert reuse_conflict([ResolutionRecord(b"", BOB, b"phone")], ResolutionRecord(b"", CAROL, b"c")) is None


def test_replayed_resolve_is_discarded() -> None:
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFHJNO"))
    r = responder()
    step = r.receive(TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2)).create_message(NOW), NOW)
    assert kms.handle(step.resolve_init or b"", NOW) is not None
    with pytest.raises(ReplayError):
        kms.receive(step.resolve_init or b"", NOW)
    assert kms.handle(step.resolve_init or b"", NOW) is None


def _resolve_error(kms: TicketKms, grant: TicketGrant, r: TicketResponder, now: float = NOW) -> MikeyError:
    ti = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2)).create_message(NOW)
    step = r.receive(ti, now)
    with pytest.raises(MikeyError) as info:
        kms.receive(step.resolve_init or b"", now)
    return info.value


def _err_no(exc: MikeyError) -> int:
    return int(Message.decode(exc.error_message or b"").find(ErrorPayload).error_no)  # type: ignore[union-attr]


def test_refusals_carry_the_rfc_error_numbers() -> None:
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFHJNO"))
    # wrong PSK: Authentication failure, unauthenticated Error message
    exc = _resolve_error(kms, grant, responder(psk=PSK_B_LAPTOP))
    assert isinstance(exc, AuthenticationError) and _err_no(exc) == ErrorNo.AUTH_FAILURE
    assert Message.decode(exc.error_message or b"").find(VerificationPayload) is None
    # a resolver the policy does not name: Unspecified error (12), authenticated
    exc = _resolve_error(kms, grant, TicketResponder(PSK_C, id_r=CAROL, kms_id=KMS_ID, psk_id=b"carol",
                                                     rng=seeded(9)))
    assert isinstance(exc, TicketRefusedError) and _err_no(exc) == ErrorNo.UNSPECIFIED
    assert Message.decode(exc.error_message or b"").find(VerificationPayload) is not None
    # group membership authorises: the policy names a group Carol is in
    _, _, _, gg = request(kms, policy("DEFHJNO", responders=(b"sip:support@example.com",)), seed=4)
    rc = TicketResponder(PSK_C, id_r=CAROL, kms_id=KMS_ID, psk_id=b"carol", rng=seeded(9))
    ini = TicketInitiator(gg, id_i=ALICE, id_r=b"sip:support@example.com", rng=seeded(2))
    out = rc.receive_resolve(kms.handle(rc.receive(ini.create_message(NOW), NOW).resolve_init or b"", NOW) or b"", NOW)
    assert ini.receive(out.response or b"", NOW).crypto_sessions[0].master_key == \
        out.result.crypto_sessions[0].master_key
    # an expired ticket: the Responder refuses early (Invalid timestamp), and so does the KMS
    late = NOW + 7200
    kms_late = make_kms()
    _, _, _, g_late = request(kms_late, policy("DEFHJNO"), seed=6)
    with pytest.raises(InvalidTimestampError) as info:
        responder().receive(TicketInitiator(g_late, id_i=ALICE, id_r=BOB, rng=seeded(2)).create_message(late), late)
    assert _err_no(info.value) == ErrorNo.INVALID_TS
    lax = responder(clock_skew=10_000.0)
    step = lax.receive(TicketInitiator(g_late, id_i=ALICE, id_r=BOB, rng=seeded(3)).create_message(late), late)
    with pytest.raises(InvalidTimestampError) as info:
        kms_late.receive(step.resolve_init or b"", late)
    assert _err_no(info.value) == ErrorNo.INVALID_TS
    # a tampered ticket (policy flag changed): its MAC fails at the KMS -> Authentication failure
    t = grant.ticket
    tampered = TicketGrant(TicketPayload(t.ticket_type, t.subtype, t.version, t.prf_func, t.flags ^ ticket_flags("J"),
                                         t.tp_data, t.ticket_data), grant.policy.replace(flags=t.flags ^ ticket_flags("J")),
                           grant.mpk_i, None, grant.session_keys)
    exc = _resolve_error(kms, tampered, responder(seed=12))
    assert isinstance(exc, AuthenticationError) and _err_no(exc) == ErrorNo.AUTH_FAILURE


def test_other_ticket_types_are_refused_with_error_14() -> None:
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFHJNO"))
    t = grant.ticket
    other = TicketGrant(TicketPayload(2, 1, 1, t.prf_func, t.flags, t.tp_data, t.ticket_data), grant.policy,
                        grant.mpk_i, None, grant.session_keys)
    ti = Message.decode(TicketInitiator(grant, rng=seeded(2)).create_message(NOW))
    msg = ti.replace_payload(ti.index(TicketPayload), other.ticket).encode()
    with pytest.raises(InvalidTicketError) as info:
        responder().receive(msg, NOW)
    assert _err_no(info.value) == ErrorNo.INVALID_TICKET
    # and the KMS refuses a TP asking for ticket type 2
    req = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(1))
    req.desired = policy().replace(ticket_type=2)
    with pytest.raises(InvalidTicketError) as info:
        kms.receive(req.create_message(NOW), NOW)
    assert _err_no(info.value) == ErrorNo.INVALID_TICKET


def test_tampered_messages_are_rejected() -> None:
    kms = make_kms()
    req = TicketRequester(PSK_A, policy("DEFHINO"), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(1))
    init = bytearray(req.create_message(NOW))
    init[12] ^= 1  # in T
    with pytest.raises(MikeyError):
        kms.receive(bytes(init), NOW)
    kms = make_kms()
    req, init_b, resp, grant = request(kms, policy("DEFHINO"), seed=2)
    for pos in (20, len(resp) // 2, len(resp) - 1):
        r2 = TicketRequester(PSK_A, policy("DEFHINO"), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(2))
        r2.create_message(NOW)
        bad = bytearray(resp)
        bad[pos] ^= 0x40
        with pytest.raises(MikeyError):
            r2.receive(bytes(bad), NOW)
        assert r2.state == State.FAILED
    # TRANSFER_INIT tampered after the KMS resolved it: V fails with MPKi
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(3))
    ti = bytearray(ini.create_message(NOW))
    idx = ti.find(BOB)
    ti[idx] ^= 1  # Identity_r is covered
    r = responder()
    step = r.receive(bytes(ti), NOW)
    with pytest.raises(AuthenticationError) as info:
        r.receive_resolve(kms.handle(step.resolve_init or b"", NOW) or b"", NOW)
    assert _err_no(info.value) == ErrorNo.AUTH_FAILURE
    # a TRANSFER_RESP from another fork's keys does not verify
    kms2 = make_kms()
    _, _, _, g2 = request(kms2, policy("DEFHINO"), seed=3)
    ini2, _, _, _, out = transfer(kms2, g2, responder())
    bad_resp = bytearray(out.response or b"")
    bad_resp[-1] ^= 1
    with pytest.raises(AuthenticationError):
        ini2.receive(bytes(bad_resp), NOW)


def test_wrong_message_and_state_errors() -> None:
    kms = make_kms()
    req, init, resp, grant = request(kms, policy())
    with pytest.raises(MikeyError):
        kms.receive(resp, NOW)  # the KMS does not take REQUEST_RESP
    assert Message.decode(kms.handle(resp, NOW) or b"").find(ErrorPayload).error_no == ErrorNo.INVALID_DT  # type: ignore[union-attr]
    r = responder()
    with pytest.raises(MikeyError):
        r.receive(init, NOW)
    with pytest.raises(MikeyError):
        responder().receive_resolve(resp, NOW)
    ini = TicketInitiator(grant, rng=seeded(2))
    with pytest.raises(MikeyError):
        ini.receive_fork(resp, NOW)
    shown = repr(grant) + repr(kms) + repr(kms.store) + repr(ini) + repr(r)
    for secret in (grant.mpk_i, grant.session_keys[0].key, PSK_A, TPK):  # no key material in repr
        assert secret.hex() not in shown and repr(secret) not in shown


def test_conference_same_rands_in_every_transfer_give_one_group_key() -> None:
    """§9 (Figure 7, centralised): Alice transfers one GTGK ticket to Bob and to Carol with the same
    RANDRi (G = 0, so no RANDRr): all three derive the same SRTP master key."""
    kms = make_kms()
    pol = policy("DEFHJNO", responders=(BOB, CAROL), requested_keys=requested_keys([(KeyDataType.GTGK, 16)]))
    _, _, _, grant = request(kms, pol)
    rand_i = bytes(range(200, 216))
    keys = []
    for n, (who, psk, dev) in enumerate(((BOB, PSK_B_PHONE, b"bob-phone"), (CAROL, PSK_C, b"carol"))):
        ini = TicketInitiator(grant, id_i=ALICE, id_r=who, rand=rand_i, rng=seeded(60 + n))
        r = TicketResponder(psk, id_r=who, kms_id=KMS_ID, psk_id=dev, rng=seeded(70 + n))
        out = r.receive_resolve(kms.handle(r.receive(ini.create_message(NOW), NOW).resolve_init or b"", NOW) or b"", NOW)
        mine = ini.receive(out.response or b"", NOW)
        keys += [mine.crypto_sessions[0].master_key, out.result.crypto_sessions[0].master_key]
        assert mine.csb_id != 0 and mine.extras["rand_r"] == b""
    assert len(set(keys)) == 1
    cs_id = 1
    assert keys[0] == ref_tgk_key(grant.session_keys[0].key, TEK_C, cs_id, rand_i, None, 16)


def test_resolve_routed_between_two_kmss() -> None:
    """§10, Figure 9: Bob trusts only KMS R; the ticket comes from KMS I (Alice's). KMS R forwards the
    Resolve with its own PSK at KMS I, which resolves for the IDRr named and forks for Bob."""
    kms_r_id = b"kms-r.example.net"
    peer_psk = bytes(range(80, 96))
    store_i = make_store()
    store_i.add_credential(TicketCredential(kms_r_id, peer_psk, b"kms-r", peer_kms=True))
    kms_i = make_kms(store_i)
    store_r = InMemoryTicketStore()
    store_r.add_credential(TicketCredential(BOB, PSK_B_PHONE, b"bob-phone"))
    store_r.add_protection_key(TicketProtectionKey(b"r-tpk", bytes(range(16))))
    kms_r = TicketKms(store_r, identity=kms_r_id, peers=[TicketPeer(KMS_ID, peer_psk, b"kms-r")], rng=seeded(8))
    _, _, _, grant = request(kms_i, policy("DEFHINO"))
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    ti = ini.create_message(NOW)
    bob = TicketResponder(PSK_B_PHONE, id_r=BOB, kms_id=kms_r_id, psk_id=b"bob-phone", rng=seeded(3))
    step = bob.receive(ti, NOW)
    sent: list[bytes] = []

    def forward(peer: bytes, message: bytes) -> bytes:
        assert peer == KMS_ID
        sent.append(message)
        return kms_i.handle(message, NOW) or b""

    rr = kms_r.handle(step.resolve_init or b"", NOW, forward)
    assert rr is not None and Message.decode(rr).data_type == DataType.RESOLVE_RESP and len(sent) == 1
    fm = Message.decode(sent[0])
    assert fm.find(TicketPayload) == Message.decode(ti).find(TicketPayload)  # IDRr and TICKET reused
    assert [p.data for p in fm.find_all(IdrPayload)][:2] == [BOB, KMS_ID]
    out = bob.receive_resolve(rr, NOW)
    assert ini.receive(out.response or b"", NOW).crypto_sessions[0].master_key == \
        out.result.crypto_sessions[0].master_key
    # without a way to reach the peer, KMS R answers Invalid TICKET (14), authenticated for Bob
    bob2 = TicketResponder(PSK_B_PHONE, id_r=BOB, kms_id=kms_r_id, psk_id=b"bob-phone", rng=seeded(4))
    err = kms_r.handle(bob2.receive(ti, NOW).resolve_init or b"", NOW)
    assert Message.decode(err or b"").find(ErrorPayload).error_no == ErrorNo.INVALID_TICKET  # type: ignore[union-attr]
    # the peer's refusal is relayed: Carol is not in the ticket
    store_r.add_credential(TicketCredential(CAROL, PSK_C, b"carol"))
    carol = TicketResponder(PSK_C, id_r=CAROL, kms_id=kms_r_id, psk_id=b"carol", rng=seeded(5))
    with pytest.raises(PeerError) as info:
        carol.receive_resolve(kms_r.handle(carol.receive(ti, NOW).resolve_init or b"", NOW, forward) or b"", NOW)
    assert info.value.err_nos == [ErrorNo.UNSPECIFIED]


def test_csb_update_both_directions() -> None:
    """§5.2: same CSB ID, new T, no new RANDs; protected by the keys of the initial exchange's last
    message (here TRANSFER_RESP: MPKr', label 0x02, RANDRi and RANDRr); a new TGK is not forked."""
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFGHILNO"))
    bob = responder()
    ini, ti, _, _, out = transfer(kms, grant, bob)
    first = ini.receive(out.response or b"", NOW)
    a_bundle, b_bundle = ini.bundles[0], bob.bundle
    assert b_bundle is not None
    assert a_bundle.csb_id == b_bundle.csb_id and a_bundle.rand_r == b_bundle.rand_r is not None
    # Alice rekeys with a TGK of her own (L flag)
    new_tgk = KeyDataPayload(KeyDataType.TGK, bytes(range(70, 86)), None, SpiValidity(b"\x00\x00\x00\x09"))
    up = TicketUpdater(a_bundle, new_keys=[new_tgk], rng=seeded(90))
    msg = up.create_message(NOW + 60)
    m = Message.decode(msg)
    assert m.data_type == DataType.TRANSFER_INIT and m.csb_id == a_bundle.csb_id and m.header.v
    assert m.find(RandrPayload) is None and m.find(TicketPayload) is None
    assert msg[-20:] == hmac1(a_bundle.keys.auth_key, msg[:-20] + ALICE + BOB)
    # the update MAC key is the one of TRANSFER_RESP (reference: MPKr' label 0x02 with both RANDs)
    trm = Message.decode(out.response or b"")
    rand_kms = next(p.rand for p in trm.payloads if isinstance(p, RandrPayload) and p.rand_role == RANDRole.KMS)
    mpk_r_f = ref_fork(grant.mpk_r or b"", 0x2B288856, BOB, rand_kms)
    assert a_bundle.keys.auth_key == ref_msg_key(mpk_r_f, AUTH, a_bundle.csb_id, 2, a_bundle.rand_i,
                                                 a_bundle.rand_r, 20)
    bob_up = TicketUpdateResponder(b_bundle, rng=seeded(91))
    got = bob_up.receive(msg, NOW + 61)
    mine = up.receive(got.response or b"", NOW + 62)
    cs = mine.crypto_sessions[0]
    assert cs.master_key == got.result.crypto_sessions[0].master_key == \
        ref_tgk_key(new_tgk.key, TEK_C, cs.cs_id, a_bundle.rand_i, a_bundle.rand_r, 16)
    assert cs.master_key != first.crypto_sessions[0].master_key and cs.spi == b"\x00\x00\x00\x09"
    with pytest.raises(ReplayError):  # the same update again
        TicketUpdateResponder(b_bundle, replay_cache=bob_up.replay_cache).receive(msg, NOW + 63)
    # Bob (M = 0: no keys of his) adds a crypto session; the keys stay those of the bundle
    assert bob_up.bundle.session_keys[0].key == new_tgk.key
    entries = [*bob_up.bundle.header.cs_id_map, GenericIdEntry.srtp(2, 0x99887766, roc=0, policies=(0,))]
    with pytest.raises(MikeyError):
        TicketUpdater(bob_up.bundle, new_keys=[new_tgk])
    up2 = TicketUpdater(bob_up.bundle, crypto_sessions=entries, rng=seeded(92))  # type: ignore[arg-type]
    m2 = Message.decode(up2.create_message(NOW + 70))
    assert [p.id_role for p in m2.find_all(IdrPayload)] == [IDRole.RESPONDER, IDRole.INITIATOR]
    alice_up = TicketUpdateResponder(up.bundle, own_ssrcs=[], rng=seeded(93))
    ans = alice_up.receive(m2.raw_bytes(), NOW + 71)
    done = up2.receive(ans.response or b"", NOW + 72)
    assert [c.cs_id for c in done.crypto_sessions] == [1, 2]
    assert {c.master_key for c in done.crypto_sessions} == {c.master_key for c in ans.result.crypto_sessions}
    # tampering and new RANDs are refused
    bad = bytearray(msg)
    bad[-1] ^= 1
    with pytest.raises(AuthenticationError):
        TicketUpdateResponder(b_bundle).receive(bytes(bad), NOW + 61)
    fresh = Message(m.header, (*m.payloads[:-1], RandrPayload(RANDRole.INITIATOR, bytes(16)),
                               VerificationPayload(MacAlg.HMAC_SHA_1_160, bytes(20)))).encode()
    fresh = fresh[:-20] + hmac1(a_bundle.keys.auth_key, fresh[:-20] + ALICE + BOB)
    with pytest.raises(UnspecifiedError):
        TicketUpdateResponder(b_bundle).receive(fresh, NOW + 61)


def test_responder_reuses_a_resolved_ticket_with_the_same_modifier() -> None:
    """§5.3: a reusable (J) ticket resolved once is not resolved again; the same IDRr and RANDRkms
    modify the keys of the new Transfer (new CSB ID and RANDs)."""
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFHIJNO"))
    cache = ResolvedTicketCache()
    ini1, _, _, _, out1 = transfer(kms, grant, responder(resolved=cache))
    r1 = ini1.receive(out1.response or b"", NOW)
    assert len(cache) == 1 and "mpk" not in repr(cache).lower()
    ini2 = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(44))
    step = responder(seed=45, resolved=cache).receive(ini2.create_message(NOW + 5), NOW + 5)
    assert step.resolve_init is None and step.outcome is not None  # no KMS round trip
    r2 = ini2.receive(step.outcome.response or b"", NOW + 5)
    assert r2.extras["rand_kms"] == r1.extras["rand_kms"] and r2.csb_id != r1.csb_id
    assert r2.crypto_sessions[0].master_key == step.outcome.result.crypto_sessions[0].master_key
    assert r2.crypto_sessions[0].master_key != r1.crypto_sessions[0].master_key  # new RANDRi
    # a no-reuse ticket (J = 0) is not kept
    cache0 = ResolvedTicketCache()
    _, _, _, g0 = request(kms, policy("DEFHINO"), seed=12)
    transfer(kms, g0, responder(resolved=cache0, seed=46), seed=47)
    assert len(cache0) == 0


class _SilentKms(TicketKms):
    """A KMS that changes the validity period but leaves K = 0 (a misbehaving KMS)."""

    def _grant(self, desired: TicketPolicy, cred: TicketCredential, suite: TicketSuite,
               now: float) -> tuple[TicketPolicy, list[tuple[int, int]]]:
        granted, shapes = super()._grant(desired, cred, suite, now)
        shorter = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(now) + 2208988800 + 60).to_bytes(4, "big"))
        return granted.replace(end=shorter, flags=granted.flags & ~ticket_flags("K")), shapes


def test_initiator_refuses_a_changed_policy_without_k() -> None:
    """§4.2.1.6 / §6.10: a granted policy that differs from the desired one while K = 0 is refused."""
    kms = _SilentKms(make_store(), identity=KMS_ID, rng=seeded(7))
    req = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(1))
    resp = kms.handle(req.create_message(NOW), NOW)
    with pytest.raises(InvalidTPparError):
        req.receive(resp or b"", NOW)
    assert req.state == State.FAILED


def test_responder_refuses_an_initiator_other_than_the_ticket_names() -> None:
    """§4.2.3: the resolved Ticket Policy names who requested the ticket; a TRANSFER_INIT whose IDRi
    claims someone else is refused (Authentication failure)."""
    kms = make_kms()
    _, _, _, grant = request(kms, policy("DEFHJNO"))
    r = responder()
    step = r.receive(TicketInitiator(grant, id_i=CAROL, id_r=BOB, rng=seeded(2)).create_message(NOW), NOW)
    with pytest.raises(AuthenticationError) as info:
        r.receive_resolve(kms.handle(step.resolve_init or b"", NOW) or b"", NOW)
    assert _err_no(info.value) == ErrorNo.AUTH_FAILURE
    ok = responder(seed=5)
    out = ok.receive_resolve(kms.handle(ok.receive(TicketInitiator(grant, rng=seeded(3)).create_message(NOW), NOW)
                                        .resolve_init or b"", NOW) or b"", NOW)
    assert out.result.initiator_id == ALICE  # no IDRi sent: the Ticket Policy's


def test_kms_request_refusals() -> None:
    """Error numbers for a Ticket Request: not allowed to request (12), another KMS named (7), unknown
    Initiator (0), NULL MAC (3), expired T (1)."""
    store = make_store()
    store.add_credential(TicketCredential(b"sip:guest@example.com", bytes(range(5, 21)), b"guest", may_request=False))
    kms = make_kms(store)
    guest = TicketRequester(bytes(range(5, 21)), policy(), id_i=b"sip:guest@example.com", kms_id=KMS_ID,
                            psk_id=b"guest", rng=seeded(1))
    with pytest.raises(TicketRefusedError) as info:
        kms.receive(guest.create_message(NOW), NOW)
    assert _err_no(info.value) == ErrorNo.UNSPECIFIED
    other = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=b"kms.other.net", psk_id=b"alice", rng=seeded(2))
    with pytest.raises(MikeyError) as info:
        kms.receive(other.create_message(NOW), NOW)
    assert _err_no(info.value) == ErrorNo.INVALID_ID
    stranger = TicketRequester(PSK_A, policy(), id_i=b"sip:nobody@example.com", kms_id=KMS_ID, rng=seeded(3))
    with pytest.raises(AuthenticationError) as info:
        kms.receive(stranger.create_message(NOW), NOW)
    assert _err_no(info.value) == ErrorNo.AUTH_FAILURE
    req = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(4))
    m = Message.decode(req.create_message(NOW))
    null_v = Message(m.header, (*m.payloads[:-1], VerificationPayload(MacAlg.NULL, b""))).encode()
    with pytest.raises(MikeyError) as info:
        kms.receive(null_v, NOW)
    assert _err_no(info.value) == ErrorNo.INVALID_MAC
    late = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(5))
    with pytest.raises(InvalidTimestampError) as info:
        kms.receive(late.create_message(NOW - 3600), NOW)
    assert _err_no(info.value) == ErrorNo.INVALID_TS
