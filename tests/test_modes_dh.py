"""Signed Diffie-Hellman mode (RFC 3830 §3.3): round trips, R_MESSAGE binding, certificates, tampering."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from pki import NOW, make_ca, make_intermediate, make_leaf
from twoparty import run

from mikey.constants import CertType, DataType, HashFunc
from mikey.crypto import dh as dh_crypto
from mikey.crypto.x509 import CertificateValidator, chash
from mikey.errors import (
    AuthenticationError,
    CertificateError,
    InvalidTimestampError,
    MikeyError,
    PeerError,
    ReplayError,
    UnsupportedDHGroupError,
    UnsupportedIDError,
)
from mikey.keystore import Credentials
from mikey.modes.base import CryptoSessionSpec, State
from mikey.modes.dh import (
    COMPAT_FRESH_RESPONSE_TIMESTAMP,
    COMPAT_RESPONSE_WITHOUT_IDS,
    DhInitiator,
    DhResponder,
)
from mikey.modes.signing import Signer, signed_message
from mikey.replay import ReplayCache
from mikey.wire import (
    CertPayload,
    ChashPayload,
    DhPayload,
    ErrorPayload,
    IdPayload,
    Message,
    SignPayload,
    TimestampPayload,
)

T0 = NOW.timestamp()
ALL_GROUPS = {"allowed_groups": (0, 1, 2)}
CA = make_ca("DH Test Root")
ALICE = make_leaf(CA, "alice", san_uris=["sip:alice@example.com"])
BOB = make_leaf(CA, "bob", san_uris=["sip:bob@example.com"])
A_CREDS = Credentials(ALICE.key, ALICE.cert)
B_CREDS = Credentials(BOB.key, BOB.cert)
XI = 0x1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF
XR = 0x0FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA98765432


def validator() -> CertificateValidator:
    return CertificateValidator([CA.cert])


def exchange(i_kw: dict | None = None, r_kw: dict | None = None, now: float = T0):
    ex = run(DhInitiator(A_CREDS, validator(), **(i_kw or {})), DhResponder(B_CREDS, validator(), **(r_kw or {})),
             now, complete=False)
    assert ex.response is not None
    return ex.initiator, ex.responder, ex.i_message, ex.outcome


def resign(data: bytes, creds: Credentials, mutate) -> bytes:
    """Decode a signed message, change its payloads with *mutate*, and sign it again with *creds*."""
    msg = Message.decode(data)
    payloads = mutate(list(msg.payloads[:-1]))
    return signed_message(msg.header, payloads, Signer(creds))


@pytest.mark.parametrize(
    "group,s_type,sign_hash", list(itertools.product((0, 1, 2), (0, 1), ("sha1", "sha256")))
)
def test_round_trip_all_options(group: int, s_type: int, sign_hash: str) -> None:
    sign = {"s_type": s_type, "sign_hash": sign_hash}
    ini, res, i_msg, out = exchange({"group": group, **sign, **ALL_GROUPS},
                                    {"own_ssrcs": [0xCAFE], **sign, **ALL_GROUPS})
    result = ini.receive(out.response, T0)
    assert result.tgk == out.result.tgk
    assert len(result.tgk) == dh_crypto.get_group(group).byte_length
    assert result.authenticated and out.result.authenticated
    assert [c.master_key for c in result.crypto_sessions] == [c.master_key for c in out.result.crypto_sessions]
    assert result.crypto_sessions[0].ssrc == 0xCAFE
    assert Message.decode(i_msg).find(SignPayload).s_type == s_type
    assert ini.state is State.DONE and res.state is State.DONE


@pytest.mark.parametrize("prf", (0, 1))
def test_round_trip_prfs_and_sessions(prf: int) -> None:
    specs = [CryptoSessionSpec(ssrc=1), CryptoSessionSpec(ssrc=2, policy_no=0)]
    ini, _, _, out = exchange({"prf": prf, "crypto_sessions": specs})
    result = ini.receive(out.response, T0)
    assert result.prf == prf and len(result.crypto_sessions) == 2
    assert result.crypto_sessions[0].master_key != result.crypto_sessions[1].master_key
    assert [c.master_salt for c in result.crypto_sessions] == [c.master_salt for c in out.result.crypto_sessions]


def test_tgk_is_full_length_shared_secret() -> None:
    ini, _, i_msg, out = exchange({"dh_private": XI, "group": 2, **ALL_GROUPS}, {"dh_private": XR, **ALL_GROUPS})
    group = dh_crypto.get_group(2)
    expected = pow(group.g, XI * XR, group.p).to_bytes(group.byte_length, "big")
    assert ini.receive(out.response, T0).tgk == expected == out.result.tgk
    assert Message.decode(i_msg).find(DhPayload).value == pow(2, XI, group.p).to_bytes(128, "big")


def test_r_message_layout_echoes_t_and_dhi() -> None:
    _, _, i_msg, out = exchange()
    im, rm = Message.decode(i_msg), Message.decode(out.response)
    assert rm.data_type == DataType.DH_RESP
    assert [p.NAME for p in rm.payloads] == ["T", "ID", "CERT", "ID", "DH", "DH", "SIGN"]
    assert rm.find(TimestampPayload) == im.find(TimestampPayload)
    assert rm.find_all(DhPayload)[1] == im.find(DhPayload)
    ids = rm.find_all(IdPayload)
    assert ids[0].data == b"sip:bob@example.com" and ids[1].data == b"sip:alice@example.com"
    assert [p.NAME for p in im.payloads] == ["T", "RAND", "ID", "CERT", "SP", "DH", "SIGN"]


def test_private_exponent_not_in_repr() -> None:
    ini = DhInitiator(A_CREDS, validator(), dh_private=XI)
    res = DhResponder(B_CREDS, validator(), dh_private=XR)
    for text in (repr(ini), repr(res), repr(ini.signer), repr(ini.verifier)):
        assert f"{XI:x}" not in text and str(XI) not in text and str(XR) not in text
        assert "PRIVATE" not in text


def test_result_only_after_response() -> None:
    ini = DhInitiator(A_CREDS, validator())
    ini.create_message(T0)
    with pytest.raises(MikeyError):
        _ = ini.result


# --- tampering ----------------------------------------------------------------------------------


def _flip_each_payload(data: bytes) -> list[bytes]:
    msg = Message.decode(data)
    spans = [(0, msg.offsets[0])] + [msg.payload_span(i) for i in range(len(msg.payloads))]
    out = []
    for start, end in spans:
        pos = (start + end) // 2
        out.append(data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1:])
    return out


def test_flipped_byte_in_any_i_message_payload_is_rejected() -> None:
    i_msg = DhInitiator(A_CREDS, validator()).create_message(T0)
    for bad in _flip_each_payload(i_msg):
        with pytest.raises(MikeyError) as ei:
            DhResponder(B_CREDS, validator()).receive(bad, T0)
        assert ei.value.err_no is not None
        assert Message.decode(ei.value.error_message).data_type == DataType.ERROR


def test_flipped_byte_in_any_r_message_payload_is_rejected() -> None:
    _, _, i_msg, out = exchange({"dh_private": XI})
    for bad in _flip_each_payload(out.response):
        with pytest.raises(MikeyError):
            DhInitiator.resume(i_msg, XI, validator()).receive(bad, T0)
    assert DhInitiator.resume(i_msg, XI, validator()).receive(out.response, T0).tgk == out.result.tgk


def test_wrong_key_is_rejected() -> None:
    mallory = Credentials(make_leaf(CA, "mallory").key, make_leaf(CA, "mallory").cert)
    i_msg = DhInitiator(A_CREDS, validator()).create_message(T0)
    forged = resign(i_msg, mallory, lambda ps: ps)  # still carries alice's CERT
    with pytest.raises(AuthenticationError) as ei:
        DhResponder(B_CREDS, validator()).receive(forged, T0)
    assert ei.value.err_no == 0
    err = Message.decode(ei.value.error_message)
    assert err.find(ErrorPayload).error_no == 0 and err.find(SignPayload) is None


def test_untrusted_certificate_is_rejected_with_error_message() -> None:
    rogue_ca = make_ca("Rogue Root")
    eve = make_leaf(rogue_ca, "eve", san_uris=["sip:alice@example.com"])
    i_msg = DhInitiator(Credentials(eve.key, eve.cert), validator()).create_message(T0)
    with pytest.raises(CertificateError) as ei:
        DhResponder(B_CREDS, validator()).receive(i_msg, T0)
    assert ei.value.err_no == 8
    assert Message.decode(ei.value.error_message).find(ErrorPayload).error_no == 8


def test_expired_certificate_is_rejected() -> None:
    old = make_leaf(CA, "alice-old", san_uris=["sip:alice@example.com"],
                    not_after=NOW - dt.timedelta(days=1), key_index=ALICE_KEY_INDEX)
    i_msg = DhInitiator(Credentials(old.key, old.cert), validator()).create_message(T0)
    with pytest.raises(CertificateError):
        DhResponder(B_CREDS, validator()).receive(i_msg, T0)


ALICE_KEY_INDEX = 7001


def test_validation_cache_rechecks_validity_at_each_message_time() -> None:
    short = make_leaf(CA, "alice-short", san_uris=["sip:alice@example.com"],
                      not_after=NOW + dt.timedelta(hours=1), key_index=ALICE_KEY_INDEX)
    creds = Credentials(short.key, short.cert)
    v = validator()
    DhResponder(B_CREDS, v).receive(DhInitiator(creds, v).create_message(T0), T0)  # cached now
    later = T0 + 7200
    with pytest.raises(CertificateError):
        DhResponder(B_CREDS, v).receive(DhInitiator(creds, v).create_message(later), later)


def test_id_not_bound_to_certificate_is_rejected() -> None:
    i_msg = DhInitiator(A_CREDS, validator(), id_i=IdPayload.uri("sip:carol@example.com")).create_message(T0)
    with pytest.raises(CertificateError):
        DhResponder(B_CREDS, validator()).receive(i_msg, T0)


def test_replayed_i_message_is_discarded_without_error_message() -> None:
    cache = ReplayCache()
    i_msg = DhInitiator(A_CREDS, validator()).create_message(T0)
    DhResponder(B_CREDS, validator(), replay_cache=cache).receive(i_msg, T0)
    with pytest.raises(ReplayError) as ei:
        DhResponder(B_CREDS, validator(), replay_cache=cache).receive(i_msg, T0 + 1)
    assert ei.value.error_message is None


def test_stale_timestamp_is_rejected() -> None:
    i_msg = DhInitiator(A_CREDS, validator()).create_message(T0 - 3600)
    with pytest.raises(InvalidTimestampError) as ei:
        DhResponder(B_CREDS, validator()).receive(i_msg, T0)
    assert Message.decode(ei.value.error_message).find(ErrorPayload).error_no == 1


def test_r_message_not_echoing_dhi_is_rejected() -> None:
    _, _, i_msg, out = exchange({"dh_private": XI})
    other = dh_crypto.public_value(dh_crypto.get_group(0), XR)

    def swap_dhi(ps):
        return [DhPayload(0, other) if i == len(ps) - 1 else p for i, p in enumerate(ps)]

    with pytest.raises(AuthenticationError, match="DHi"):
        DhInitiator.resume(i_msg, XI, validator()).receive(resign(out.response, B_CREDS, swap_dhi), T0)


def test_r_message_answering_another_i_message_is_rejected() -> None:
    _, _, i_msg, _ = exchange({"dh_private": XI, "csb_id": 7})
    _, _, _, other = exchange({"csb_id": 7})
    with pytest.raises(MikeyError):
        DhInitiator.resume(i_msg, XI, validator()).receive(other.response, T0)


def test_fresh_response_timestamp_needs_compat() -> None:
    _, _, i_msg, out = exchange({"dh_private": XI})
    fresh = resign(out.response, B_CREDS,
                   lambda ps: [TimestampPayload.ntp_utc(T0 + 1) if p.NAME == "T" else p for p in ps])
    with pytest.raises(InvalidTimestampError):
        DhInitiator.resume(i_msg, XI, validator()).receive(fresh, T0)
    ok = DhInitiator.resume(i_msg, XI, validator(), compat=[COMPAT_FRESH_RESPONSE_TIMESTAMP]).receive(fresh, T0)
    assert ok.tgk == out.result.tgk
    stale = resign(out.response, B_CREDS,
                   lambda ps: [TimestampPayload.ntp_utc(T0 - 3600) if p.NAME == "T" else p for p in ps])
    with pytest.raises(InvalidTimestampError):
        DhInitiator.resume(i_msg, XI, validator(), compat=[COMPAT_FRESH_RESPONSE_TIMESTAMP]).receive(stale, T0)


def test_response_without_ids_needs_compat() -> None:
    _, _, i_msg, out = exchange({"dh_private": XI})
    bare = resign(out.response, B_CREDS, lambda ps: [p for p in ps if p.NAME != "ID"])
    with pytest.raises(UnsupportedIDError):
        DhInitiator.resume(i_msg, XI, validator()).receive(bare, T0)
    ok = DhInitiator.resume(i_msg, XI, validator(), compat=[COMPAT_RESPONSE_WITHOUT_IDS]).receive(bare, T0)
    assert ok.tgk == out.result.tgk
    with pytest.raises(ValueError):
        DhInitiator(A_CREDS, compat=["no-such-variant"])


def test_wrong_dh_private_on_resume() -> None:
    _, _, i_msg, _ = exchange({"dh_private": XI})
    with pytest.raises(ValueError):
        DhInitiator.resume(i_msg, XR, validator())


def test_group_not_accepted_gets_signed_error() -> None:
    ini = DhInitiator(A_CREDS, validator(), group=2, allowed_groups=(0, 2))
    with pytest.raises(UnsupportedDHGroupError) as ei:
        DhResponder(B_CREDS, validator(), allowed_groups=(0, 1)).receive(ini.create_message(T0), T0)
    err = Message.decode(ei.value.error_message)
    assert err.find(ErrorPayload).error_no == 6 and err.find(SignPayload) is not None
    with pytest.raises(PeerError) as pe:
        ini.receive(ei.value.error_message, T0)
    assert pe.value.err_nos == [6]


@pytest.mark.parametrize("group,bits", [(1, 768), (2, 1024)])
def test_weak_group_refused_by_responder_by_default(group: int, bits: int) -> None:
    i_msg = DhInitiator(A_CREDS, validator(), group=group, allowed_groups=(0, group)).create_message(T0)
    with pytest.raises(UnsupportedDHGroupError) as ei:
        DhResponder(B_CREDS, validator()).receive(i_msg, T0)
    assert ei.value.err_no == 6
    assert f"{bits}-bit" in ei.value.message and f"--allow-dh-group {group}" in ei.value.message
    assert "allowed_groups=" in ei.value.message
    assert Message.decode(ei.value.error_message).find(ErrorPayload).error_no == 6
    out = DhResponder(B_CREDS, validator(), allowed_groups=(0, group)).receive(i_msg, T0)
    assert out.result.extras["dh_group"] == group and len(out.result.tgk) == bits // 8


@pytest.mark.parametrize("group", [1, 2])
def test_weak_group_refused_by_initiator_by_default(group: int) -> None:
    with pytest.raises(UnsupportedDHGroupError) as ei:
        DhInitiator(A_CREDS, validator(), group=group)
    assert ei.value.err_no == 6 and f"--allow-dh-group {group}" in ei.value.message
    # A stateless resume of an I_MESSAGE that used the weak group needs the same switch.
    i_msg = DhInitiator(A_CREDS, validator(), group=group, allowed_groups=(0, group),
                        dh_private=XI).create_message(T0)
    with pytest.raises(UnsupportedDHGroupError):
        DhInitiator.resume(i_msg, XI, validator())
    assert DhInitiator.resume(i_msg, XI, validator(), allowed_groups=(0, group)).group.group_id == group


def test_allowed_groups_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown DH group"):
        DhResponder(B_CREDS, validator(), allowed_groups=(0, 9))
    with pytest.raises(ValueError, match="at least one"):
        DhInitiator(A_CREDS, validator(), allowed_groups=())
    with pytest.raises(UnsupportedDHGroupError, match="not allowed by local policy"):
        DhInitiator(A_CREDS, validator(), group=0, allowed_groups=(2,))


def test_unknown_group_number_is_error_6() -> None:
    i_msg = DhInitiator(A_CREDS, validator()).create_message(T0)
    msg = Message.decode(i_msg)
    pos = msg.payload_span(msg.index(DhPayload))[0] + 1  # after the next-payload octet
    bad = i_msg[:pos] + b"\x07" + i_msg[pos + 1:]
    with pytest.raises(UnsupportedDHGroupError) as ei:
        DhResponder(B_CREDS, validator()).receive(bad, T0)
    assert Message.decode(ei.value.error_message).find(ErrorPayload).error_no == 6


def test_pinned_peer_certificate_without_cert_payloads() -> None:
    ini = DhInitiator(A_CREDS, None, peer_certificates=[BOB.cert], send_certificates=False)
    res = DhResponder(B_CREDS, None, peer_certificates=[ALICE.cert], send_certificates=False)
    i_msg = ini.create_message(T0)
    assert Message.decode(i_msg).find(CertPayload) is None
    out = res.receive(i_msg, T0)
    assert ini.receive(out.response, T0).tgk == out.result.tgk
    with pytest.raises(CertificateError):
        DhResponder(B_CREDS, None).receive(DhInitiator(A_CREDS, None, send_certificates=False).create_message(T0), T0)


# --- a pinned peer certificate is validated like any other (issue 7, finding 5) -------------------

EXPIRED_WINDOW = {"not_before": NOW - dt.timedelta(days=800), "not_after": NOW - dt.timedelta(days=400)}


def test_pinned_expired_initiator_certificate_is_refused() -> None:
    old = make_leaf(CA, "alice-expired", san_uris=["sip:alice@example.com"], key_index=ALICE_KEY_INDEX,
                    **EXPIRED_WINDOW)
    i_msg = DhInitiator(Credentials(old.key, old.cert), None, peer_certificates=[BOB.cert]).create_message(T0)
    with pytest.raises(CertificateError, match="expired") as ei:
        DhResponder(B_CREDS, None, peer_certificates=[old.cert]).receive(i_msg, T0)
    assert ei.value.err_no == 8
    err = Message.decode(ei.value.error_message)
    assert err.data_type == DataType.ERROR and err.find(ErrorPayload).error_no == 8
    # Without CERT payloads the pinned certificate itself is the one checked.
    bare = DhInitiator(Credentials(old.key, old.cert), None, peer_certificates=[BOB.cert],
                       send_certificates=False).create_message(T0)
    with pytest.raises(CertificateError, match="expired"):
        DhResponder(B_CREDS, None, peer_certificates=[old.cert]).receive(bare, T0)


def test_pinned_certificate_does_not_vouch_for_another_id() -> None:
    ceo = IdPayload.uri("sip:ceo@example.com")
    for send in (True, False):
        i_msg = DhInitiator(A_CREDS, None, peer_certificates=[BOB.cert], id_i=ceo,
                            send_certificates=send).create_message(T0)
        with pytest.raises(CertificateError, match="not bound to ID 'sip:ceo@example.com'") as ei:
            DhResponder(B_CREDS, None, peer_certificates=[ALICE.cert]).receive(i_msg, T0)
        assert Message.decode(ei.value.error_message).find(ErrorPayload).error_no == 8


def test_pinned_certificate_key_usage_is_checked() -> None:
    enc_only = make_leaf(CA, "alice-enc-only", san_uris=["sip:alice@example.com"], key_index=ALICE_KEY_INDEX,
                         key_usage=("key_encipherment",))
    i_msg = DhInitiator(Credentials(enc_only.key, enc_only.cert), None, peer_certificates=[BOB.cert]).create_message(T0)
    with pytest.raises(CertificateError, match="digitalSignature"):
        DhResponder(B_CREDS, None, peer_certificates=[enc_only.cert]).receive(i_msg, T0)


def test_pinned_certificate_must_be_the_one_sent() -> None:
    # A CA-issued certificate for the same ID is not the pinned one.
    i_msg = DhInitiator(A_CREDS, None, peer_certificates=[BOB.cert]).create_message(T0)
    other = make_leaf(CA, "alice-2", san_uris=["sip:alice@example.com"], key_index=ALICE_KEY_INDEX)
    with pytest.raises(CertificateError, match="not the configured peer's"):
        DhResponder(B_CREDS, None, peer_certificates=[other.cert]).receive(i_msg, T0)
    # Pinning a CA certificate does not turn it into a trust anchor for what it issued.
    with pytest.raises(CertificateError, match="not the configured peer's"):
        DhResponder(B_CREDS, None, peer_certificates=[CA.cert]).receive(i_msg, T0)


def test_initiator_refuses_expired_pinned_responder_certificate() -> None:
    old_bob = make_leaf(CA, "bob-expired", san_uris=["sip:bob@example.com"], key_index=7002, **EXPIRED_WINDOW)
    ini = DhInitiator(A_CREDS, None, peer_certificates=[old_bob.cert])
    i_msg = ini.create_message(T0)
    out = DhResponder(Credentials(old_bob.key, old_bob.cert), None, peer_certificates=[ALICE.cert]).receive(i_msg, T0)
    with pytest.raises(CertificateError, match="expired") as ei:
        ini.receive(out.response, T0)
    assert ei.value.err_no == 8


def test_initiator_refuses_pinned_responder_claiming_another_id() -> None:
    ini = DhInitiator(A_CREDS, None, peer_certificates=[BOB.cert])
    i_msg = ini.create_message(T0)
    ceo = IdPayload.uri("sip:ceo@example.com")
    out = DhResponder(B_CREDS, None, peer_certificates=[ALICE.cert], id_r=ceo).receive(i_msg, T0)
    with pytest.raises(CertificateError, match="not bound to ID 'sip:ceo@example.com'"):
        ini.receive(out.response, T0)


def test_valid_pinned_certificates_authenticate_both_sides() -> None:
    ini = DhInitiator(A_CREDS, None, peer_certificates=[BOB.cert])
    out = DhResponder(B_CREDS, None, peer_certificates=[ALICE.cert]).receive(ini.create_message(T0), T0)
    result = ini.receive(out.response, T0)
    assert result.authenticated and out.result.authenticated and result.tgk == out.result.tgk
    assert out.result.extras["peer_certificate"] == ALICE.cert and result.extras["peer_certificate"] == BOB.cert


def test_chash_names_the_responder_certificate() -> None:
    ini = DhInitiator(A_CREDS, validator(), peer_certificates=[BOB.cert], chash_func=HashFunc.SHA_256)
    i_msg = ini.create_message(T0)
    assert Message.decode(i_msg).find(ChashPayload).digest == chash(HashFunc.SHA_256, BOB.cert_der)
    out = DhResponder(B_CREDS, validator()).receive(i_msg, T0)
    assert ini.receive(out.response, T0).authenticated
    wrong = DhInitiator(A_CREDS, validator(), peer_certificates=[ALICE.cert], chash_func=HashFunc.SHA_1)
    with pytest.raises(CertificateError):
        DhResponder(B_CREDS, validator()).receive(wrong.create_message(T0), T0)


def test_chain_with_intermediate() -> None:
    inter = make_intermediate(CA, "DH Intermediate")
    leaf = make_leaf(inter, "alice-i", san_uris=["sip:alice@example.com"], key_index=ALICE_KEY_INDEX)
    creds = Credentials(leaf.key, leaf.cert, (inter.cert,))
    ini = DhInitiator(creds, validator())
    i_msg = ini.create_message(T0)
    assert len(Message.decode(i_msg).find_all(CertPayload)) == 2
    out = DhResponder(B_CREDS, validator()).receive(i_msg, T0)
    assert ini.receive(out.response, T0).tgk == out.result.tgk


def test_initiator_rejects_untrusted_responder() -> None:
    rogue = make_ca("Rogue Root 2")
    eve = make_leaf(rogue, "eve2", san_uris=["sip:bob@example.com"])
    ini = DhInitiator(A_CREDS, validator())
    i_msg = ini.create_message(T0)
    out = DhResponder(Credentials(eve.key, eve.cert), CertificateValidator([CA.cert])).receive(i_msg, T0)
    with pytest.raises(CertificateError):
        ini.receive(out.response, T0)


def _with_cert_payloads(cert_type: int, data: bytes | None = None):  # type: ignore[no-untyped-def]
    def mutate(ps):  # type: ignore[no-untyped-def]
        return [CertPayload(cert_type, p.data if data is None else data) if isinstance(p, CertPayload) else p
                for p in ps]
    return mutate


def test_encryption_only_certificate_cannot_verify_signature() -> None:
    i_msg = DhInitiator(A_CREDS, validator()).create_message(T0)
    forged = resign(i_msg, A_CREDS, _with_cert_payloads(CertType.X509V3_ENCR))
    with pytest.raises(CertificateError, match="encryption-only") as ei:
        DhResponder(B_CREDS, validator()).receive(forged, T0)
    assert Message.decode(ei.value.error_message).find(ErrorPayload).error_no == 8
    # The Sign-only type verifies signatures like plain X.509v3.
    signed_type = resign(i_msg, A_CREDS, _with_cert_payloads(CertType.X509V3_SIGN))
    assert DhResponder(B_CREDS, validator()).receive(signed_type, T0).result.authenticated


def test_corrupted_cert_payload_raises_only_certificate_error() -> None:
    i_msg = DhInitiator(A_CREDS, validator()).create_message(T0)
    der = ALICE.cert_der
    for pos in range(0, len(der), 23):
        bad = der[:pos] + bytes([der[pos] ^ 0xFF]) + der[pos + 1:]
        forged = resign(i_msg, A_CREDS, _with_cert_payloads(CertType.X509V3, bad))
        try:
            DhResponder(B_CREDS, validator()).receive(forged, T0)
        except CertificateError as exc:
            assert Message.decode(exc.error_message).find(ErrorPayload).error_no == 8


def test_url_certificate_without_resolver_is_refused() -> None:
    i_msg = DhInitiator(A_CREDS, validator()).create_message(T0)
    forged = resign(i_msg, A_CREDS, _with_cert_payloads(CertType.X509V3_URL, b"http://example.com/alice.der"))
    with pytest.raises(CertificateError, match="resolver"):
        DhResponder(B_CREDS, validator()).receive(forged, T0)
