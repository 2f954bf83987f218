"""Crypto session bundles: PSK exchange -> SRTP/SRTCP contexts both ways, rekeying (RFC 3830 §4.1.3, §4.5)."""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from twoparty import run

from mikey.constants import ProtType
from mikey.errors import (
    AuthenticationError,
    MikeyError,
    StateError,
    UnsupportedSPTypeError,
)
from mikey.modes.base import CryptoSessionSpec, ExchangeResult
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.session import CryptoSessionBundle, RekeyError, policy_params
from mikey.srtp import LABEL_RTP_AUTH, LABEL_RTP_ENCR, LABEL_RTP_SALT, SrtpPolicyParams, srtp_kdf
from mikey.wire import SecurityPolicyPayload

NOW = 1_700_000_000.0
PSK = bytes(range(32))
SSRC_I = 0x11111111
SSRC_R = 0x22222222
CSB_ID = 0x0BADCAFE


def psk_results(
    *,
    csb_id: int = CSB_ID,
    tgk: bytes | None = None,
    specs: list[CryptoSessionSpec] | None = None,
    policies: list[SecurityPolicyPayload] | None = None,
    now: float = NOW,
) -> tuple[ExchangeResult, ExchangeResult]:
    """A PSK exchange with V set, in memory: (Initiator's result, Responder's result)."""
    specs = specs if specs is not None else [CryptoSessionSpec(ssrc=SSRC_I), CryptoSessionSpec(ssrc=0)]
    ex = run(PskInitiator(PSK, crypto_sessions=specs, csb_id=csb_id, tgk=tgk, v=True, policies=policies),
             PskResponder(PSK, own_ssrcs=[SSRC_R]), now)
    assert ex.result is not None
    return ex.result, ex.outcome.result


def rtp(ssrc: int, seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes([seq & 0xFF]) * 160


def rtcp(ssrc: int, n: int) -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, n, 0, n * 160, n, n * 160)


def test_both_ends_derive_the_same_crypto_sessions() -> None:
    res_i, res_r = psk_results()
    a, b = CryptoSessionBundle(res_i), CryptoSessionBundle(res_r)
    assert a.csb_id == b.csb_id == CSB_ID
    assert a.cs_ids == b.cs_ids == (1, 2)
    assert [cs.ssrc for cs in a.crypto_sessions] == [SSRC_I, SSRC_R]  # Responder filled CS 2 (§6.1.1)
    assert a.fingerprints() == b.fingerprints()
    assert len(set(a.fingerprints().values())) == 2
    assert a.params(1) == SrtpPolicyParams()  # the RFC 3830 §6.10.1 defaults the PSK Initiator writes out


def test_rtp_and_rtcp_both_ways_for_two_crypto_sessions() -> None:
    res_i, res_r = psk_results()
    ini, rsp = CryptoSessionBundle(res_i), CryptoSessionBundle(res_r)
    ctx_i, ctx_r = ini.srtp_contexts([SSRC_I]), rsp.srtp_contexts([SSRC_R])
    assert (set(ctx_i.outbound), set(ctx_i.inbound)) == ({1}, {2})
    assert (set(ctx_r.outbound), set(ctx_r.inbound)) == ({2}, {1})
    for (out, inb, ssrc) in ((ctx_i.outbound[1], ctx_r.inbound[1], SSRC_I), (ctx_r.outbound[2], ctx_i.inbound[2], SSRC_R)):
        for seq in range(50):
            packet = rtp(ssrc, seq)
            protected = out.protect(packet)
            assert protected != packet and len(protected) == len(packet) + 10  # 80-bit tag
            assert inb.unprotect(protected) == packet
        for n in range(3):
            report = rtcp(ssrc, n)
            assert inb.unprotect_rtcp(out.protect_rtcp(report)) == report
    # The contexts are kept: asking again gives the same stateful stream.
    assert ini.sender(1) is ctx_i.outbound[1]


def test_crypto_sessions_have_distinct_keys() -> None:
    res_i, res_r = psk_results()
    ini, rsp = CryptoSessionBundle(res_i), CryptoSessionBundle(res_r)
    # CS 1 keys cannot open a packet protected with CS 2 keys, even with the right SSRC.
    wrong = rsp.receiver(1, ssrc=SSRC_R)
    with pytest.raises(AuthenticationError):
        wrong.unprotect(ini.sender(2, ssrc=SSRC_R).protect(rtp(SSRC_R, 1)))


@pytest.mark.parametrize("where", [-1, 12, 20])
def test_tampered_packet_rejected(where: int) -> None:
    res_i, res_r = psk_results()
    out, inb = CryptoSessionBundle(res_i).sender(1), CryptoSessionBundle(res_r).receiver(1)
    protected = bytearray(out.protect(rtp(SSRC_I, 7)))
    protected[where] ^= 0x40
    with pytest.raises(AuthenticationError) as info:
        inb.unprotect(bytes(protected))
    assert info.value.err_no == 0
    report = bytearray(out.protect_rtcp(rtcp(SSRC_I, 1)))
    report[10] ^= 0x01
    with pytest.raises(AuthenticationError):
        inb.unprotect_rtcp(bytes(report))


def test_replayed_packet_rejected() -> None:
    res_i, res_r = psk_results()
    out, inb = CryptoSessionBundle(res_i).sender(1), CryptoSessionBundle(res_r).receiver(1)
    protected = out.protect(rtp(SSRC_I, 3))
    inb.unprotect(protected)
    with pytest.raises(AuthenticationError):
        inb.unprotect(protected)


def test_rekey_same_csb_replaces_keys() -> None:
    res_i, res_r = psk_results(tgk=bytes(16))
    ini, rsp = CryptoSessionBundle(res_i), CryptoSessionBundle(res_r)
    old_fp = ini.fingerprints()
    old_sender, old_receiver = ini.sender(1), rsp.receiver(1)
    before = old_sender.protect(rtp(SSRC_I, 1))
    assert old_receiver.unprotect(before) == rtp(SSRC_I, 1)

    new_i, new_r = psk_results(tgk=bytes([0xA5]) * 16, now=NOW + 30)  # same CSB ID, fresh TGK, new T
    ini.rekey(new_i)
    rsp.rekey(new_r)
    assert ini.generation == rsp.generation == 1
    assert ini.fingerprints() == rsp.fingerprints()
    assert all(ini.fingerprints()[c] != old_fp[c] for c in old_fp)
    assert ini.result is new_i
    new_sender, new_receiver = ini.sender(1), rsp.receiver(1)
    assert new_sender is not old_sender
    # Packets of the old generation no longer verify; new ones do, both ways.
    with pytest.raises(AuthenticationError):
        new_receiver.unprotect(old_sender.protect(rtp(SSRC_I, 2)))
    assert new_receiver.unprotect(new_sender.protect(rtp(SSRC_I, 3))) == rtp(SSRC_I, 3)
    assert ini.receiver(2).unprotect(rsp.sender(2).protect(rtp(SSRC_R, 3))) == rtp(SSRC_R, 3)


def test_rekey_other_csb_rejected() -> None:
    res_i, _ = psk_results()
    bundle = CryptoSessionBundle(res_i)
    fp = bundle.fingerprints()
    other, _ = psk_results(csb_id=CSB_ID + 1)
    with pytest.raises(RekeyError) as info:
        bundle.rekey(other)
    assert isinstance(info.value, StateError) and isinstance(info.value, MikeyError)
    assert f"{CSB_ID + 1:08x}" in str(info.value) and f"{CSB_ID:08x}" in str(info.value)
    assert bundle.generation == 0 and bundle.fingerprints() == fp and bundle.result is res_i


def test_rekey_adding_a_crypto_session_keeps_the_others() -> None:
    res_i, _ = psk_results(specs=[CryptoSessionSpec(ssrc=SSRC_I)])
    bundle = CryptoSessionBundle(res_i)
    update = replace(res_i, crypto_sessions=(replace(res_i.crypto_sessions[0], cs_id=2, ssrc=SSRC_R),))
    bundle.rekey(update)
    assert bundle.cs_ids == (1, 2)
    assert bundle.keys(1) == res_i.crypto_sessions[0]


def test_no_keys_in_repr() -> None:
    res_i, _ = psk_results()
    bundle = CryptoSessionBundle(res_i)
    text = repr(bundle) + repr(bundle.sender(1)) + repr(bundle.to_dict()) + repr(bundle.srtp_contexts([SSRC_I]))
    for cs in bundle.crypto_sessions:
        assert cs.master_key.hex() not in text and cs.master_salt.hex() not in text
    assert res_i.tgk.hex() not in text
    assert "0badcafe" in repr(bundle) and "generation=0" in repr(bundle)
    assert "srtp_master_key" in bundle.to_dict(secrets=True)["crypto_sessions"][0]


def test_stream_pair() -> None:
    res_i, res_r = psk_results()
    assert CryptoSessionBundle(res_i).stream_pair(SSRC_I, SSRC_R) == (1, 2)
    assert CryptoSessionBundle(res_r).stream_pair(SSRC_R, SSRC_I) == (2, 1)
    assert CryptoSessionBundle(res_r).stream_pair(SSRC_R) == (2, 1)
    # One CS keyed for the Initiator's SSRC: both directions share it, each with its own SSRC.
    one_i, one_r = psk_results(specs=[CryptoSessionSpec(ssrc=SSRC_I)])
    a, b = CryptoSessionBundle(one_i), CryptoSessionBundle(one_r)
    assert a.stream_pair(SSRC_I, SSRC_R) == b.stream_pair(SSRC_R, SSRC_I) == (1, 1)
    packet = rtp(SSRC_R, 9)
    assert a.receiver(1, ssrc=SSRC_R).unprotect(b.sender(1, ssrc=SSRC_R).protect(packet)) == packet
    # An SSRC no crypto session belongs to, with every CS taken by others.
    with pytest.raises(StateError):
        CryptoSessionBundle(res_i).stream_pair(0x33333333)


def test_aes_gcm_policy() -> None:
    gcm = SecurityPolicyPayload(0, ProtType.SRTP, tuple(SrtpPolicyParams.aes_gcm().to_params()))
    res_i, res_r = psk_results(policies=[gcm])
    assert len(res_i.crypto_sessions[0].master_salt) == 12  # RFC 7714 §8.1
    out, inb = CryptoSessionBundle(res_i).sender(1), CryptoSessionBundle(res_r).receiver(1)
    assert out.params.is_aead
    packet = rtp(SSRC_I, 1)
    protected = out.protect(packet)
    assert len(protected) == len(packet) + 16
    assert inb.unprotect(protected) == packet


def test_roc_from_the_cs_map_keys_running_streams() -> None:
    # RFC 3830 §6.1.1: ROC_i lets a member join an already started stream (RFC 3711 §3.3.1).
    res_i, res_r = psk_results(specs=[CryptoSessionSpec(ssrc=SSRC_I, roc=3), CryptoSessionSpec(ssrc=0, roc=7)])
    ini, rsp = CryptoSessionBundle(res_i), CryptoSessionBundle(res_r)
    assert [(cs.ssrc, cs.roc) for cs in rsp.crypto_sessions] == [(SSRC_I, 3), (SSRC_R, 7)]
    assert [(cs.ssrc, cs.roc) for cs in ini.crypto_sessions] == [(SSRC_I, 3), (SSRC_R, 7)]
    directions = ((ini.sender(1), rsp.receiver(1), SSRC_I, 3), (rsp.sender(2), ini.receiver(2), SSRC_R, 7))
    for out, inb, ssrc, roc in directions:
        assert out.roc() == inb.roc() == roc
        for seq, now_roc in ((65534, roc), (65535, roc), (0, roc + 1), (1, roc + 1)):
            packet = rtp(ssrc, seq)
            assert inb.unprotect(out.protect(packet)) == packet
            assert out.roc() == inb.roc() == now_roc
        for n in range(3):
            report = rtcp(ssrc, n)
            assert inb.unprotect_rtcp(out.protect_rtcp(report)) == report


def test_roc_from_the_cs_map_matches_own_aes_cm() -> None:
    # The first packet of CS 1 at ROC 3, rebuilt from the MIKEY keys with cryptography's AES-CTR
    # and HMAC-SHA1 over mikey.srtp.srtp_kdf (RFC 3711 §4.1.1, §4.2, §4.3).
    res_i, _ = psk_results(specs=[CryptoSessionSpec(ssrc=SSRC_I, roc=3)])
    cs = res_i.crypto_sessions[0]
    seq, packet = 0xFFF0, rtp(SSRC_I, 0xFFF0)
    protected = CryptoSessionBundle(res_i).sender(1).protect(packet)
    k_e, k_s, k_a = (
        srtp_kdf(cs.master_key, cs.master_salt, label, 0, 0, n)
        for label, n in ((LABEL_RTP_ENCR, 16), (LABEL_RTP_SALT, 14), (LABEL_RTP_AUTH, 20))
    )
    index = (3 << 16) + seq
    iv = (int.from_bytes(k_s, "big") << 16) ^ (SSRC_I << 64) ^ (index << 16)
    enc = Cipher(algorithms.AES(k_e), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    body = packet[:12] + enc.update(packet[12:]) + enc.finalize()
    assert protected == body + hmac.new(k_a, body + (3).to_bytes(4, "big"), hashlib.sha1).digest()[:10]


def test_receiver_told_the_wrong_roc_fails_authentication() -> None:
    res_i, res_r = psk_results(specs=[CryptoSessionSpec(ssrc=SSRC_I, roc=3)])
    wrong_map = replace(res_r, crypto_sessions=(replace(res_r.crypto_sessions[0], roc=2),))
    sender = CryptoSessionBundle(res_i).sender(1)
    right, wrong = CryptoSessionBundle(res_r).receiver(1), CryptoSessionBundle(wrong_map).receiver(1)
    for seq in (100, 101):
        protected = sender.protect(rtp(SSRC_I, seq))
        with pytest.raises(AuthenticationError, match="unprotect failed: authentication failure") as info:
            wrong.unprotect(protected)
        assert info.value.err_no == 0 and isinstance(info.value, MikeyError)
        assert right.unprotect(protected) == rtp(SSRC_I, seq)
    # SRTCP does not use the ROC (RFC 3711 §3.4): it still verifies.
    assert wrong.unprotect_rtcp(sender.protect_rtcp(rtcp(SSRC_I, 1))) == rtcp(SSRC_I, 1)


def test_rekey_mid_stream_takes_the_new_roc() -> None:
    res_i, res_r = psk_results(specs=[CryptoSessionSpec(ssrc=SSRC_I)])
    ini, rsp = CryptoSessionBundle(res_i), CryptoSessionBundle(res_r)
    for seq in (65535, 0):
        assert rsp.receiver(1).unprotect(ini.sender(1).protect(rtp(SSRC_I, seq))) == rtp(SSRC_I, seq)
    assert ini.sender(1).roc() == 1
    # The update carries the stream's current ROC (RFC 3830 §6.1.1); the new contexts start there.
    new_i, new_r = psk_results(specs=[CryptoSessionSpec(ssrc=SSRC_I, roc=1)], now=NOW + 30)
    ini.rekey(new_i)
    rsp.rekey(new_r)
    assert rsp.receiver(1).unprotect(ini.sender(1).protect(rtp(SSRC_I, 1))) == rtp(SSRC_I, 1)
    assert ini.sender(1).roc() == rsp.receiver(1).roc() == 1


def test_policy_for_another_protocol_refused() -> None:
    res_i, _ = psk_results()
    cs = replace(res_i.crypto_sessions[0], policy=SecurityPolicyPayload(0, ProtType.TESLA, ()))
    with pytest.raises(UnsupportedSPTypeError) as info:
        policy_params(cs)
    assert info.value.err_no == 9
    assert policy_params(replace(cs, policy=None)) == SrtpPolicyParams()
    with pytest.raises(KeyError):
        CryptoSessionBundle(res_i).keys(9)
