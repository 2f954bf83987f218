"""SP parameter registry rules (RFC 3830 §6.10.1, RFC 4771, RFC 6188, RFC 7714 §14-15) and the
responders that apply them before any key derivation (issue 7 finding 1); non-finite clocks
(issue 7 finding 9)."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pki import make_ca, make_leaf
from wire_samples import srtp_policy

from mikey.cli import main
from mikey.constants import (
    PRF,
    CSIdMapType,
    DataType,
    EncrAlg,
    KeyDataType,
    MacAlg,
    ProtType,
    SRTPParam,
)
from mikey.crypto import kemac as kemac_crypto
from mikey.crypto import prf as prf_crypto
from mikey.crypto.x509 import CertificateValidator
from mikey.errors import (
    InvalidTimestampError,
    MikeyError,
    StateError,
    UnsupportedSPParamsError,
    UnsupportedSPTypeError,
)
from mikey.keystore import Credentials, SakkeKeystore
from mikey.kms import generate_community, issue_user_keys
from mikey.modes.base import (
    CryptoSessionSpec,
    build_header,
    check_timestamp,
    default_srtp_policy,
    derive_crypto_sessions,
    srtp_key_lengths,
)
from mikey.modes.dh import DhInitiator, DhResponder
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.modes.sakke import SakkeInitiator, SakkeResponder, gcm_srtp_policy
from mikey.modes.signing import Signer, signed_message
from mikey.srtp import SrtpPolicyParams
from mikey.wire import (
    CommonHeader,
    ErrorPayload,
    GenericIdEntry,
    KemacPayload,
    KeyDataPayload,
    Message,
    RandPayload,
    SecurityPolicyPayload,
    SrtpIdEntry,
    TimestampPayload,
    encode_sub_payloads,
)
from mikey.wire.policy import check_security_policies

NOW = 1_700_000_000.0
PSK = bytes(range(16))
TGK = bytes(range(100, 116))
RAND = bytes(range(16))
CSB_ID = 0x01020304

# The issue's attack: "session encr key len" = 0xFFFFFFFF in a 4-octet value.
HUGE_KEY_LEN = SecurityPolicyPayload(0, ProtType.SRTP, ((SRTPParam.SESSION_ENCR_KEY_LEN, b"\xff\xff\xff\xff"),))


def _error_nos(error_message: bytes | None) -> list[int]:
    assert error_message is not None
    msg = Message.decode(error_message)
    assert msg.data_type == DataType.ERROR
    return [int(p.error_no) for p in msg.find_all(ErrorPayload)]


def _psk_i_message(sp: SecurityPolicyPayload, mac_alg: int) -> bytes:
    """HDR, T, RAND, SP, KEMAC(NULL encryption, TGK in the clear, *mac_alg* made with the PSK)."""
    hdr = CommonHeader(DataType.PSK_INIT, CSB_ID, (SrtpIdEntry(0, 0x1234, 0),), CSIdMapType.SRTP_ID, False, PRF.MIKEY_1)
    n = 20 if mac_alg == MacAlg.HMAC_SHA_1_160 else 0
    kemac = KemacPayload(EncrAlg.NULL, encode_sub_payloads([KeyDataPayload(KeyDataType.TGK, TGK)]), mac_alg, bytes(n))
    draft = Message(hdr, (TimestampPayload.ntp_utc(NOW), RandPayload(RAND), sp, kemac)).encode()
    if not n:
        return draft
    auth_key = prf_crypto.derive_transport_keys(PSK, CSB_ID, RAND, encr_len=0, auth_len=20, salt_len=0).auth_key
    return draft[:-n] + kemac_crypto.compute_mac(mac_alg, auth_key, draft[:-n])


@pytest.fixture
def prf_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every PRF output length asked for; a length over 1024 fails at once (the old code would run for hours)."""
    asked: list[int] = []
    real_prf, real_many = prf_crypto.prf, prf_crypto.prf_many

    def note(n: int) -> None:
        asked.append(n)
        if n > 1024:
            raise AssertionError(f"PRF asked for {n} octets")

    def prf(inkey: bytes, label: bytes, out_len: int, prf_func: int = 0) -> bytes:
        note(out_len)
        return real_prf(inkey, label, out_len, prf_func)

    def prf_many(inkey: bytes, requests: Any, prf_func: int = 0) -> list[bytes]:
        for _, n in requests:
            note(n)
        return real_many(inkey, requests, prf_func)

    monkeypatch.setattr(prf_crypto, "prf", prf)
    monkeypatch.setattr(prf_crypto, "prf_many", prf_many)
    yield asked


# --- finding 1: the one-packet denial of service ----------------------------------------------


@pytest.mark.parametrize("mac_alg", [MacAlg.NULL, MacAlg.HMAC_SHA_1_160])
def test_huge_key_length_refused_before_any_prf_output(mac_alg: int, prf_requests: list[int]) -> None:
    raw = _psk_i_message(HUGE_KEY_LEN, mac_alg)
    assert len(raw) <= 110  # the issue's message is 82 octets; ours carries a 16-octet RAND and TGK
    prf_requests.clear()
    for _ in range(100):
        with pytest.raises(UnsupportedSPParamsError, match="Session Encr. key length .* 4 octets") as ei:
            PskResponder(PSK, allow_null_security=True).receive(raw, NOW)
        assert ei.value.err_no == 10
        assert _error_nos(ei.value.error_message) == [10]
    assert sum(prf_requests) == 0  # no PRF output was computed for the refused message


def test_huge_key_length_refused_by_derivation_itself(prf_requests: list[int]) -> None:
    """No path derives with unvalidated lengths: derive_crypto_sessions checks the policy too."""
    hdr = build_header(DataType.PSK_INIT, CSB_ID, [CryptoSessionSpec(ssrc=1)])
    for value in (b"\xff\xff\xff\xff", b"\x00" * 254 + b"\x10", b"\x21", b"\x00"):
        sp = SecurityPolicyPayload(0, ProtType.SRTP, ((SRTPParam.SESSION_ENCR_KEY_LEN, value),))
        with pytest.raises(UnsupportedSPParamsError) as ei:
            derive_crypto_sessions(TGK, hdr, RAND, [sp])
        assert ei.value.err_no == 10
    assert prf_requests == []


def _replace_sp(raw: bytes, sp: SecurityPolicyPayload) -> bytes:
    msg = Message.decode(raw)
    payloads = tuple(sp if isinstance(p, SecurityPolicyPayload) else p for p in msg.payloads)
    assert any(p is sp for p in payloads)
    return Message(msg.header, payloads).encode()


def _dh_parties() -> tuple[DhInitiator, DhResponder, Credentials]:
    ca = make_ca("SP Test Root")
    alice = make_leaf(ca, "alice", san_uris=["sip:alice@example.com"])
    bob = make_leaf(ca, "bob", san_uris=["sip:bob@example.com"])
    a_creds = Credentials(alice.key, alice.cert)
    ini = DhInitiator(a_creds, CertificateValidator([ca.cert]))
    res = DhResponder(Credentials(bob.key, bob.cert), CertificateValidator([ca.cert]))
    return ini, res, a_creds


def test_dh_responder_refuses_signed_huge_key_length(prf_requests: list[int]) -> None:
    """An authenticated peer (valid signature) asking for 2^32 - 1 octets gets Error no 10."""
    ini, res, a_creds = _dh_parties()
    msg = Message.decode(ini.create_message(NOW))
    payloads = [HUGE_KEY_LEN if isinstance(p, SecurityPolicyPayload) else p for p in msg.payloads[:-1]]
    resigned = signed_message(msg.header, payloads, Signer(a_creds))
    prf_requests.clear()
    with pytest.raises(UnsupportedSPParamsError) as ei:
        res.receive(resigned, NOW)
    assert ei.value.err_no == 10 and _error_nos(ei.value.error_message) == [10]
    assert sum(prf_requests) == 0


def test_dh_responder_refuses_before_the_signature() -> None:
    ini, res, _ = _dh_parties()
    with pytest.raises(UnsupportedSPParamsError) as ei:
        res.receive(_replace_sp(ini.create_message(NOW), HUGE_KEY_LEN), NOW)
    assert _error_nos(ei.value.error_message) == [10]


@pytest.fixture(scope="module")
def sakke_stores() -> dict[str, SakkeKeystore]:
    c = generate_community("kms.example.org")
    return {uri: SakkeKeystore(c.public, uri, [issue_user_keys(c, uri, now=NOW)])
            for uri in ("sip:alice@example.org", "sip:bob@example.org")}


def test_sakke_responder_refuses_huge_key_length(sakke_stores: dict[str, SakkeKeystore]) -> None:
    ini = SakkeInitiator(sakke_stores["sip:alice@example.org"], "sip:bob@example.org", key_type="gmk",
                         crypto_sessions=[CryptoSessionSpec(ssrc=5, cs_id=4)])
    bad = _replace_sp(ini.create_message(NOW), HUGE_KEY_LEN)
    with pytest.raises(UnsupportedSPParamsError) as ei:
        SakkeResponder(sakke_stores["sip:bob@example.org"]).receive(bad, NOW)
    assert ei.value.err_no == 10 and _error_nos(ei.value.error_message) == [10]


def test_psk_responder_refuses_bad_sp_before_the_mac() -> None:
    raw = PskInitiator(PSK, policies=[default_srtp_policy(0)]).create_message(NOW)
    bad = _replace_sp(raw, SecurityPolicyPayload(0, ProtType.SRTP, ((SRTPParam.ENCR_ALG, b"\x09"),)))
    with pytest.raises(UnsupportedSPParamsError, match=r"Encryption algorithm \(type 0\) is 9") as ei:
        PskResponder(PSK, allow_null_security=False).receive(bad, NOW)
    assert _error_nos(ei.value.error_message) == [10]


# --- the registry rules ------------------------------------------------------------------------


def _sp(*params: tuple[int, bytes], prot_type: int = ProtType.SRTP) -> SecurityPolicyPayload:
    return SecurityPolicyPayload(0, prot_type, params)


P = SRTPParam
B = bytes


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (((P.ENCR_ALG, B([9])),), "Encryption algorithm"),
        (((P.ENCR_ALG, B([1, 1])),), "2 octets long"),
        (((P.SESSION_ENCR_KEY_LEN, B([64])),), "Session Encr. key length .* 64"),
        (((P.SESSION_ENCR_KEY_LEN, B(255)),), "255 octets long"),
        (((P.SESSION_ENCR_KEY_LEN, B([0])),), "is 0; AES-CM takes 16, 24, 32"),
        (((P.ENCR_ALG, B([6])), (P.SESSION_ENCR_KEY_LEN, B([24]))), "AES-GCM takes 16, 32"),
        (((P.ENCR_ALG, B([2])), (P.SESSION_ENCR_KEY_LEN, B([32]))), "AES-F8 takes 16"),
        (((P.ENCR_ALG, B([3])), (P.SESSION_ENCR_KEY_LEN, B([32]))), "SEED-CTR takes 16"),
        (((P.SESSION_SALT_KEY_LEN, B([12])),), "Session Salt key length .* AES-CM takes 14"),
        (((P.ENCR_ALG, B([6])), (P.SESSION_SALT_KEY_LEN, B([14]))), "AES-GCM takes 12"),
        (((P.SESSION_SALT_KEY_LEN, B([200])),), "Session Salt key length .* 200"),
        (((P.ENCR_ALG, B([6])), (P.SRTP_PRF, B([1]))), "RFC 7714 §15"),
        (((P.SRTP_PRF, B([1])), (P.SESSION_ENCR_KEY_LEN, B([32]))), "SEED_CTR is not keyed"),
        (((P.SRTP_PRF, B([3])),), "SRTP PRF"),
        (((P.AUTH_ALG, B([5])),), "Authentication algorithm"),
        (((P.SESSION_AUTH_KEY_LEN, B([65])),), "at most 64"),
        (((P.SRTCP_SESSION_AUTH_KEY_LEN, B([200])),), "at most 64"),
        (((P.AUTH_TAG_LEN, B([25])),), "at most 24"),
        (((P.SRTP_AUTH_TAG_LEN, B([255])),), "at most 24"),
        (((P.AEAD_AUTH_TAG_LEN, B([8])),), "AEAD authentication tag length"),
        (((P.KEY_DERIVATION_RATE, B([3])),), "Key derivation rate"),
        (((P.KEY_DERIVATION_RATE, (1 << 25).to_bytes(4, "big")),), "Key derivation rate"),
        (((P.KEY_DERIVATION_RATE, B(5)),), "5 octets long"),
        (((P.SRTP_ENCRYPTION, B([2])),), "0 \\(off\\) or 1"),
        (((P.SRTCP_ENCRYPTION, B([0, 1])),), "2 octets long"),
        (((P.SRTP_AUTHENTICATION, B([7])),), "SRTP authentication"),
        (((P.FEC_ORDER, B([1])),), "FEC order"),
        (((P.ROC_TRANSMISSION_RATE, B([0, 0])),), "ROC transmission rate"),
        (((P.ROC_TRANSMISSION_RATE, B([0, 0, 1])),), "3 octets long"),
        (((P.SRTP_PREFIX_LEN, B([0, 0])),), "SRTP prefix length"),
        (((P.SRTP_AUTH_ALG, B([9])),), "SRTP Auth. algorithm"),
        (((21, B([0])),), "type 21 is not a registered"),
        (((255, B(255)),), "type 255 is not a registered"),
        (((P.ENCR_ALG, b""),), "empty value"),
    ],
)
def test_registry_refusals(params: tuple[tuple[int, bytes], ...], match: str) -> None:
    with pytest.raises(UnsupportedSPParamsError, match=match) as ei:
        check_security_policies([_sp(*params)])
    assert ei.value.err_no == 10
    with pytest.raises(UnsupportedSPParamsError, match=match):
        srtp_key_lengths(_sp(*params))


def test_valid_policies_and_their_lengths() -> None:
    cases: list[tuple[SecurityPolicyPayload, tuple[int, int]]] = [
        (default_srtp_policy(0), (16, 14)),
        (default_srtp_policy(0, tag_len=4), (16, 14)),
        (srtp_policy(), (16, 14)),  # 4-octet KDR, 2-octet ROC rate
        (_sp(*SrtpPolicyParams(encr_key_len=32).to_params()), (32, 14)),  # AES-256-CM, RFC 6188
        (_sp(*SrtpPolicyParams(encr_key_len=24).to_params()), (24, 14)),  # AES-192-CM, RFC 6188
        (_sp(*SrtpPolicyParams(kdr=1 << 24).to_params()), (16, 14)),
        (gcm_srtp_policy(0), (16, 12)),
        (gcm_srtp_policy(0, key_len=32), (32, 12)),
        (_sp(*SrtpPolicyParams.aes_gcm(32).to_params()), (32, 12)),
        (_sp((P.ENCR_ALG, B([6]))), (16, 12)),  # RFC 7714 defaults
        (_sp((P.ENCR_ALG, B([8])), (P.SESSION_ENCR_KEY_LEN, B([32]))), (32, 12)),  # ARIA-256-GCM, RFC 8269
        (_sp((P.ENCR_ALG, B([7])), (P.SRTP_PRF, B([2])), (P.SESSION_ENCR_KEY_LEN, B([32]))), (32, 14)),
        (_sp((P.ENCR_ALG, B([3])), (P.SRTP_PRF, B([1]))), (16, 14)),  # SEED-CTR, RFC 5748
        (_sp((P.ENCR_ALG, B([0])), (P.SESSION_ENCR_KEY_LEN, B([0])), (P.SESSION_SALT_KEY_LEN, B([0]))), (16, 14)),
        (_sp(), (16, 14)),
        (_sp(prot_type=ProtType.TESLA), (16, 14)),
        (_sp((77, B(200)), prot_type=ProtType.TESLA), (16, 14)),  # TESLA parameters size no key
    ]
    for sp, lengths in cases:
        check_security_policies([sp])
        assert srtp_key_lengths(sp) == lengths, sp
    assert srtp_key_lengths(None) == (16, 14)


# The SP payloads of the 3GPP MIKEY-SAKKE vectors (Streamwide, ALEA): AES-GCM, RCCm3, tag lengths 4/0,
# and a one-octet RFC 4771 ROC transmission rate (ALEA).
STREAMWIDE_SP = "1a0000001b00010601011002010404010c050100060100120104130100140110"
ALEA_SP = "150100001e00010601011002010404010c0501000601000d0101120104130100140110"


@pytest.mark.parametrize("raw", [STREAMWIDE_SP, ALEA_SP])
def test_deployed_3gpp_policies_accepted(raw: str) -> None:
    body = bytes.fromhex(raw)[1:]
    sp, _ = SecurityPolicyPayload.pull(body, 0, len(body))
    check_security_policies([sp])
    assert srtp_key_lengths(sp) == (16, 12)


def test_rsa_r_offer_options_checked_one_by_one() -> None:
    """RFC 4738 §3.5: an offer may repeat a type as options; keys need one value per type."""
    offer = _sp((P.ENCR_ALG, B([1])), (P.ENCR_ALG, B([6])), (P.AUTH_TAG_LEN, B([10])))
    check_security_policies([offer])
    with pytest.raises(UnsupportedSPParamsError, match="more than once"):
        srtp_key_lengths(offer)
    with pytest.raises(UnsupportedSPParamsError, match="Encryption algorithm"):
        check_security_policies([_sp((P.ENCR_ALG, B([1])), (P.ENCR_ALG, B([66])))])
    same_twice = _sp((P.ENCR_ALG, B([1])), (P.ENCR_ALG, B([1])))
    assert srtp_key_lengths(same_twice) == (16, 14)


def test_unknown_prot_type_refused_only_for_keys() -> None:
    odd = _sp((0, B([1])), prot_type=7)
    check_security_policies([odd])  # the wire stays lenient: nothing is derived from it here
    with pytest.raises(UnsupportedSPTypeError) as ei:
        srtp_key_lengths(odd)
    assert ei.value.err_no == 9
    hdr = build_header(DataType.PSK_INIT, CSB_ID, [CryptoSessionSpec(ssrc=1)])
    with pytest.raises(UnsupportedSPTypeError):
        derive_crypto_sessions(TGK, hdr, RAND, [odd])
    generic = CommonHeader(DataType.PSK_INIT, CSB_ID, (GenericIdEntry(1, 9, (0,), b""),),
                           CSIdMapType.GENERIC_ID, False, PRF.MIKEY_1)
    with pytest.raises(UnsupportedSPTypeError):
        derive_crypto_sessions(TGK, generic, RAND, [default_srtp_policy(0)])


def test_unhashable_values_still_checked() -> None:
    sp = SecurityPolicyPayload(0, ProtType.SRTP, ((P.SESSION_ENCR_KEY_LEN, bytearray(b"\x20")),))  # type: ignore[arg-type]
    check_security_policies([sp])
    assert srtp_key_lengths(sp) == (32, 14)
    bad = SecurityPolicyPayload(0, ProtType.SRTP, ((P.SESSION_ENCR_KEY_LEN, bytearray(b"\x21")),))  # type: ignore[arg-type]
    with pytest.raises(UnsupportedSPParamsError):
        check_security_policies([bad])


# --- known answers: valid policies derive what the RFC 3830 §4.1.3 formula gives ---------------


def _reference_prf(inkey: bytes, label: bytes, out_len: int) -> bytes:
    """RFC 3830 §4.1.2 P-function with HMAC-SHA-1, for an inkey of one 256-bit piece."""
    a, out = label, b""
    while len(out) < out_len:
        a = hmac.new(inkey, a, hashlib.sha1).digest()
        out += hmac.new(inkey, a + label, hashlib.sha1).digest()
    return out[:out_len]


@pytest.mark.parametrize(
    "sp",
    [default_srtp_policy(3), default_srtp_policy(3, tag_len=4), _sp(*SrtpPolicyParams(encr_key_len=32).to_params()),
     gcm_srtp_policy(3), gcm_srtp_policy(3, key_len=32), srtp_policy(3)],
)
def test_valid_policies_derive_known_answers(sp: SecurityPolicyPayload) -> None:
    sp = SecurityPolicyPayload(3, sp.prot_type, sp.params)
    hdr = build_header(DataType.PSK_INIT, CSB_ID, [CryptoSessionSpec(ssrc=7, policy_no=3)])
    (cs,) = derive_crypto_sessions(TGK, hdr, RAND, [sp])
    key_len, salt_len = srtp_key_lengths(sp)
    tail = b"\x01" + CSB_ID.to_bytes(4, "big") + RAND  # cs_id || csb_id || RAND
    assert cs.master_key == _reference_prf(TGK, bytes.fromhex("2ad01c64") + tail, key_len)
    assert cs.master_salt == _reference_prf(TGK, bytes.fromhex("39a2c14b") + tail, salt_len)


# --- property: any SP either is refused or derives keys of allowed lengths, in bounded time -------

_param = st.tuples(
    st.one_of(st.integers(0, 21), st.integers(0, 255)),
    st.one_of(st.binary(min_size=0, max_size=4), st.binary(min_size=0, max_size=255)),
)
_known_value = st.tuples(
    st.sampled_from(list(SRTPParam)), st.integers(0, 40).map(lambda v: bytes([v]))
)


@settings(deadline=200, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    prot_type=st.sampled_from([0, 0, 0, 1, 2, 255]),
    params=st.lists(st.one_of(_param, _known_value), max_size=12),
)
def test_random_policies_refused_or_bounded(prot_type: int, params: list[tuple[int, bytes]]) -> None:
    sp = SecurityPolicyPayload(0, prot_type, tuple(params))
    hdr = build_header(DataType.PSK_INIT, CSB_ID, [CryptoSessionSpec(ssrc=1)])
    try:
        check_security_policies([sp])
    except UnsupportedSPParamsError as exc:
        assert exc.err_no == 10 and "SRTP policy 0: " in exc.message
    try:
        (cs,) = derive_crypto_sessions(TGK, hdr, RAND, [sp])
    except (UnsupportedSPParamsError, UnsupportedSPTypeError) as exc:
        assert exc.err_no in (9, 10)
        return
    assert len(cs.master_key) in (16, 24, 32)
    assert len(cs.master_salt) in (12, 14)
    check_security_policies([sp])  # what derives was admitted too


# --- the PRF bound -----------------------------------------------------------------------------


def test_prf_refuses_outputs_beyond_the_bound() -> None:
    assert prf_crypto.MAX_PRF_OUTPUT == 1024
    assert len(prf_crypto.prf(PSK, b"label", 1024)) == 1024
    for call in (
        lambda: prf_crypto.prf(PSK, b"label", 1025),
        lambda: prf_crypto.prf(bytes(64), b"label", 0xFFFFFFFF),
        lambda: prf_crypto.prf_many(PSK, [(b"a", 16), (b"b", 1 << 32)]),
        lambda: prf_crypto.prf_many(bytes(100), [(b"a", 2000)], 1),
        lambda: prf_crypto.derive_tek(TGK, 1, 0, RAND, 0xFFFFFFFF),
    ):
        with pytest.raises(MikeyError, match="at most 1024") as ei:
            call()
        assert ei.value.kind == "crypto"


# --- finding 9: non-finite clocks ------------------------------------------------------------


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_non_finite_now_refused(now: float) -> None:
    t = TimestampPayload.ntp_utc(NOW)
    with pytest.raises(StateError, match="finite"):
        check_timestamp(t, now, 300)
    raw = PskInitiator(PSK).create_message(NOW)
    with pytest.raises(StateError) as ei:
        PskResponder(PSK).receive(raw, now)
    assert ei.value.err_no is None and ei.value.error_message is None  # a local fault: nothing to send


@pytest.mark.parametrize("skew", [math.nan, math.inf, -1.0])
def test_bad_skew_refused(skew: float) -> None:
    with pytest.raises(StateError, match="skew"):
        check_timestamp(TimestampPayload.ntp_utc(NOW), NOW, skew)


def test_skew_still_enforced_for_finite_clocks() -> None:
    t = TimestampPayload.ntp_utc(NOW)
    assert check_timestamp(t, NOW + 10, 300) == pytest.approx(NOW + 300, abs=1e-3)
    with pytest.raises(InvalidTimestampError):
        check_timestamp(t, NOW + 301, 300)


@pytest.mark.parametrize("command", ["initiate", "respond"])
@pytest.mark.parametrize("now", ["nan", "inf", "-inf"])
def test_cli_refuses_non_finite_now(capsys: pytest.CaptureFixture[str], command: str, now: str) -> None:
    """``--now nan`` used to pass the skew check (respond) or die with a traceback (initiate)."""
    argv = [command, "--mode", "psk", "--psk", PSK.hex(), f"--now={now}"]
    if command == "respond":
        argv.append("--imsg=" + PskInitiator(PSK).create_message(NOW).hex())
    assert main(argv) == 2
    assert "not a finite number of seconds" in capsys.readouterr().err
