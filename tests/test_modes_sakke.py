"""MIKEY-SAKKE mode (RFC 6509) with the 3GPP TS 33.180 profile: interop vectors, round trips, rejection."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from mikey.constants import CSIdMapType, KeyPurpose, SakkeIDScheme
from mikey.crypto import prf
from mikey.errors import (
    AuthenticationError,
    InvalidTimestampError,
    KeyMaterialError,
    ReplayError,
    StateError,
    UnsupportedIDError,
    UnsupportedSPParamsError,
)
from mikey.identities import NTP_UNIX_OFFSET, key_period_number, rfc6509_identifier
from mikey.keystore import IdentityKeys, KmsPublicKeys, SakkeKeystore
from mikey.kms import generate_community, issue_user_keys
from mikey.modes.base import CryptoSessionSpec, derive_crypto_sessions
from mikey.modes.sakke import (
    SakkeInitiator,
    SakkeResponder,
    gcm_srtp_policy,
    group_session_keys,
    key_purpose,
    make_key_id,
    recover_gmk_id,
)
from mikey.replay import ReplayCache
from mikey.wire import CommonHeader, Message, TimestampPayload

VECTORS = pathlib.Path(__file__).parent / "vectors"
SW: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_streamwide.json").read_text())
ALEA: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_alea_via_streamwide.json").read_text())
h = bytes.fromhex


def _msg_time(raw: bytes) -> float:
    t = Message.decode(raw).find(TimestampPayload)
    assert t is not None
    when = t.unix_time()
    assert when is not None
    return when


# --- key IDs and periods (the identifier formats are tested in test_identities.py) -------------


def test_key_ids_and_purposes() -> None:
    assert key_purpose(0x2DDD5BF0) == KeyPurpose.CSK
    assert key_purpose(0x16992638) == KeyPurpose.PCK
    assert key_purpose(0x0DF9BC39) == KeyPurpose.GMK
    for p in (0, 1, 2, 6):
        assert key_purpose(make_key_id(p)) == p


def test_period_number_matches_vector_timestamps() -> None:
    """The period of T equals the key period the vector users' UIDs were issued for."""
    when = _msg_time(h(SW["cases"]["i_messages"][0]["i_message_hex"]))
    assert key_period_number(when, 16777215, 0) == 236
    when = _msg_time(h(ALEA["cases"][0]["i_message_hex"]))
    assert key_period_number(when, 914544000, 0) == 4


# --- Streamwide and ALEA interop -------------------------------------------------------------


def _sw_store(name_or_uri: str) -> SakkeKeystore:
    kp = SW["kms_public"]
    kms = KmsPublicKeys(kp["KmsUri"], h(kp["PubAuthKey_KPAK"]), h(kp["PubEncKey_Z"]), 1,
                        kp["UserKeyPeriod"], kp["UserKeyOffset"], kp["UserIdFormat"])
    u = next(u for u in SW["users"] if u["UserUri"] == name_or_uri)
    keys = IdentityKeys(u["UserUri"], h(u["UserID_UID"]), h(u["UserSigningKeySSK"]), h(u["UserPubTokenPVT"]),
                        h(u["UserDecryptKey_RSK"]), kms, u["KeyPeriodNo"])
    return SakkeKeystore(kms, u["UserUri"], [keys])


def _alea_store(name: str) -> SakkeKeystore:
    kp = ALEA["kms_public"]
    kms = KmsPublicKeys(kp["kms_uri"], h(kp["KPAK"]), h(kp["Z"]), 1, kp["key_period"], kp["key_period_offset"], 2)
    u = next(u for u in ALEA["users"] if u["name"] == name)
    keys = IdentityKeys(u["uri"], h(u["UID"]), h(u["SSK"]), h(u["PVT"]), h(u["RSK"]), kms, kp["key_period_no"])
    return SakkeKeystore(kms, u["uri"], [keys])


@pytest.mark.parametrize("case", SW["cases"]["i_messages"], ids=lambda c: c["name"])
def test_streamwide_i_messages(case: dict[str, Any]) -> None:
    """Every Streamwide I_MESSAGE verifies (ECCSI over the bytes incl. the SIGN header) and decapsulates."""
    raw = h(case["i_message_hex"])
    now = _msg_time(raw)
    responder = SakkeResponder(_sw_store(case["Responder_URI"]), initiator_uri=case["Initiator_URI"], cs_ids=[4])
    out = responder.receive(raw, now)
    assert out.response is None
    r = out.result
    assert r.tgk.hex() == case["key"]
    assert r.authenticated
    kt = case["key_type"].lower()
    assert r.extras["key_type"] == kt
    assert r.extras["key_id"] == case[f"{case['key_type']}_ID"]
    if kt == "gmk":
        assert f"{r.csb_id:08x}" == r.extras["guk_id"]
        assert r.csb_id == prf.guk_id(r.tgk, int(case["GMK_ID"], 16), case["Responder_URI"])
    assert r.rand.hex() == case[f"{case['key_type']}_RAND"]
    # the SRTP keys derive with PRF-HMAC-SHA-256 and the AES-GCM policy (12-octet salt)
    assert r.prf == 1
    for cs in r.crypto_sessions:
        assert len(cs.master_key) == 16 and len(cs.master_salt) == 12
        assert cs.master_key == prf.derive_tek(r.tgk, cs.cs_id, r.csb_id, r.rand, 16, 1)


def test_compat_option_still_accepts_rfc_coverage() -> None:
    """The compat option only adds the variant: RFC-coverage messages still verify."""
    case = SW["cases"]["i_messages"][1]
    raw = h(case["i_message_hex"])
    resp = SakkeResponder(_sw_store(case["Responder_URI"]), initiator_uri=case["Initiator_URI"],
                          allow_signature_without_header=True)
    assert resp.receive(raw, _msg_time(raw)).result.tgk.hex() == case["key"]


@pytest.mark.parametrize(
    "case,responder,initiator",
    [(ALEA["cases"][0], "alice", "gms"), (ALEA["cases"][1], "gms2", "alice")],
    ids=["imsg_gmk", "imsg_csk"],
)
def test_alea_i_messages(case: dict[str, Any], responder: str, initiator: str) -> None:
    raw = h(case["i_message_hex"])
    init_uri = next(u["uri"] for u in ALEA["users"] if u["name"] == initiator)
    r = SakkeResponder(_alea_store(responder), initiator_uri=init_uri).receive(raw, _msg_time(raw)).result
    assert r.tgk.hex() == case["key"]
    key_id = int(case["key_id_as_written"], 16)
    assert r.extras["key_id"] == f"{key_id:08x}"
    if case["name"] == "imsg_gmk":
        assert r.extras["key_type"] == "gmk"
        assert r.extras["key_parameters"]["activation_time"] > 0
        assert recover_gmk_id(r.tgk, r.csb_id, "sip:u1alea@veronica-cluster") == key_id
    else:
        assert r.extras["purpose_tag"] == "csk"  # no key-parameters extension in this message


def test_alea_bob_key_set_is_invalid() -> None:
    """Vector notes: bob's PVT is a copy of alice's; his key set must fail validation."""
    with pytest.raises(KeyMaterialError):
        _alea_store("bob").validate()
    _alea_store("alice").validate()


@pytest.mark.parametrize("case", [c for c in SW["cases"]["guk_id_and_srtp_master_keys"] if "master_key_TEK_16" in c],
                         ids=lambda c: c["source_location"])
def test_group_srtp_master_keys(case: dict[str, Any]) -> None:
    """GMK SRTP keys use the sender's GUK-ID as CSB ID; the SPK case uses its key ID."""
    policy = [gcm_srtp_policy()]
    if "GMK" in case:
        (cs,) = group_session_keys(h(case["GMK"]), int(case["GMK_ID"], 16), case["sender_uri"],
                                   h(case["GMK_RAND"]), [case["cs_id"]], policy)
        assert prf.guk_id(h(case["GMK"]), int(case["GMK_ID"], 16), case["sender_uri"]) == int(case["GUK_ID"], 16)
    else:
        csb = int(case["key_id_used_as_csb_id"], 16)
        hdr = CommonHeader(26, csb, (), CSIdMapType.EMPTY, False, 1, cs_count=0)
        (cs,) = derive_crypto_sessions(h(case["key"]), hdr, h(case["RAND"]), policy, cs_ids=[case["cs_id"]])
    assert cs.master_key.hex() == case["master_key_TEK_16"]
    assert cs.master_salt.hex() == case["master_salt_12"]


# --- our own round trips ---------------------------------------------------------------------

NOW = 1_700_000_000.0
ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"


@pytest.fixture(scope="module")
def stores() -> dict[str, SakkeKeystore]:
    c = generate_community("kms.example.org")
    out = {}
    for uri in (ALICE, BOB, "sip:carol@example.org"):
        out[uri] = SakkeKeystore(c.public, uri, [issue_user_keys(c, uri, now=NOW)])
    tel = generate_community("kms.example.org", id_scheme=SakkeIDScheme.TEL_URI_MONTHLY)
    for uri in ("tel:+447700900123", "tel:+447700900456"):
        out[uri] = SakkeKeystore(tel.public, uri, [issue_user_keys(tel, uri, now=NOW)])
    return out


@pytest.mark.parametrize("key_type", [None, "gmk", "pck", "csk"])
def test_round_trip_3gpp(stores: dict[str, SakkeKeystore], key_type: str | None) -> None:
    specs = [CryptoSessionSpec(ssrc=0x11223344, cs_id=4)]
    init = SakkeInitiator(stores[ALICE], BOB, key_type=key_type, crypto_sessions=specs)
    data = init.create_message(NOW)
    out = SakkeResponder(stores[BOB], initiator_uri=ALICE).receive(data, NOW + 2)
    r = out.result
    assert r.tgk == init.result.tgk and len(r.tgk) == 16
    assert r.crypto_sessions[0].master_key == init.result.crypto_sessions[0].master_key
    assert r.crypto_sessions[0].master_salt == init.result.crypto_sessions[0].master_salt
    assert len(r.crypto_sessions[0].master_salt) == 12
    if key_type is not None:
        assert r.extras["key_type"] == key_type
        assert r.extras["key_id"] == init.result.extras["key_id"]
        assert key_purpose(int(r.extras["key_id"], 16)) == {"gmk": 0, "pck": 1, "csk": 2}[key_type]
    if key_type == "gmk":
        assert r.csb_id == prf.guk_id(r.tgk, int(r.extras["key_id"], 16), BOB)
    if key_type in ("pck", "csk"):
        assert f"{r.csb_id:08x}" == r.extras["key_id"]


#: 2036-02-07T06:28:16Z, the first second of NTP era 1 (RFC 5905 §6), and 2040-01-01T00:00:00Z.
ERA1 = 2_085_978_496
Y2040 = 2_208_988_800


@pytest.mark.parametrize(
    ("scheme", "t_i", "t_r"),
    [
        (SakkeIDScheme.UID_3GPP, ERA1 - 2.5, ERA1 + 3),
        (SakkeIDScheme.UID_3GPP, Y2040, Y2040 + 2),
        (SakkeIDScheme.TEL_URI_MONTHLY, ERA1 - 1, ERA1 + 1),
        (SakkeIDScheme.TEL_URI_MONTHLY, Y2040 + 0.5, Y2040 + 1),
    ],
)
def test_round_trip_across_the_ntp_rollover(scheme: int, t_i: float, t_r: float) -> None:
    """T is read in the era of the Responder's clock, so the identifiers it selects are the right ones."""
    a, b = ("sip:alice@example.org", "sip:bob@example.org") if scheme == SakkeIDScheme.UID_3GPP else (
        "tel:+447700900123", "tel:+447700900456")
    c = generate_community("kms.example.org", id_scheme=scheme)
    keys = {u: SakkeKeystore(c.public, u, [issue_user_keys(c, u, now=t_i)]) for u in (a, b)}
    init = SakkeInitiator(keys[a], b, key_type="pck")
    data = init.create_message(t_i)
    r = SakkeResponder(keys[b], initiator_uri=a).receive(data, t_r).result
    assert r.tgk == init.result.tgk and r.extras["key_type"] == "pck"
    assert r.extras["initiator_identifier"] == keys[a].key_sets[0].identifier.hex()


def test_round_trip_without_expected_initiator(stores: dict[str, SakkeKeystore]) -> None:
    data = SakkeInitiator(stores[ALICE], BOB, key_type="pck").create_message(NOW)
    r = SakkeResponder(stores[BOB]).receive(data, NOW).result
    assert r.extras["initiator_identifier"] == stores[ALICE].key_sets[0].identifier.hex()


def test_round_trip_rfc6509_tel_uri(stores: dict[str, SakkeKeystore]) -> None:
    a, b = "tel:+447700900123", "tel:+447700900456"
    init = SakkeInitiator(stores[a], b, crypto_sessions=[CryptoSessionSpec(ssrc=7)], prf=0)
    data = init.create_message(NOW)
    msg = Message.decode(data)
    assert msg.header.cs_id_map_type == CSIdMapType.SRTP_ID and msg.header.prf == 0
    r = SakkeResponder(stores[b]).receive(data, NOW).result
    assert r.tgk == init.result.tgk
    assert r.initiator_id == a.encode()
    assert r.extras["initiator_identifier"] == rfc6509_identifier(a, NOW).hex()
    assert r.crypto_sessions[0].master_key == init.result.crypto_sessions[0].master_key


def test_given_ssv_key_id_rand(stores: dict[str, SakkeKeystore]) -> None:
    gmk, gmk_id, rand = bytes(range(16)), 0x0ABCDEF1, bytes(16)
    init = SakkeInitiator(stores[ALICE], BOB, key_type="gmk", ssv=gmk, key_id=gmk_id, rand=rand)
    data = init.create_message(NOW)
    assert Message.decode(data).csb_id == prf.guk_id(gmk, gmk_id, BOB)
    r = SakkeResponder(stores[BOB], cs_ids=[1, 2]).receive(data, NOW).result
    assert r.tgk == gmk and r.extras["key_id"] == "0abcdef1" and r.rand == rand
    assert [cs.cs_id for cs in r.crypto_sessions] == [1, 2]  # Empty map: the application names the sessions
    with pytest.raises(ValueError):
        SakkeInitiator(stores[ALICE], BOB, key_type="pck", key_id=gmk_id)


def test_sakke_to_self(stores: dict[str, SakkeKeystore]) -> None:
    init = SakkeInitiator(stores[ALICE], BOB, key_type="pck", sakke_to_self=True)
    data = init.create_message(NOW)
    with pytest.raises(UnsupportedIDError):
        SakkeResponder(stores[ALICE]).receive(data, NOW)
    r = SakkeResponder(stores[ALICE], accept_to_self=True).receive(data, NOW).result
    assert r.tgk == init.result.tgk and r.extras["sakke_to_self"]


# --- rejection -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed(stores: dict[str, SakkeKeystore]) -> bytes:
    init = SakkeInitiator(stores[ALICE], BOB, key_type="gmk", crypto_sessions=[CryptoSessionSpec(ssrc=5, cs_id=4)])
    return init.create_message(NOW)


def test_tampering_every_payload_rejected(stores: dict[str, SakkeKeystore], signed: bytes) -> None:
    msg = Message.decode(signed)
    spans = [(0, msg.offsets[0])] + [msg.payload_span(i) for i in range(len(msg.payloads))]
    assert len(spans) == 11  # HDR T RAND IDR*4 SP SAKKE GEN_EXT SIGN
    for i, (_start, end) in enumerate(spans):
        bad = bytearray(signed)
        bad[end - 1] ^= 0x01
        # The SP's last octet is its AEAD tag length: 17 is refused (Error no 10) before the signature.
        refused = UnsupportedSPParamsError if i == 7 else AuthenticationError
        with pytest.raises(refused) as ei:
            SakkeResponder(stores[BOB], initiator_uri=ALICE).receive(bytes(bad), NOW)
        assert ei.value.err_no == (10 if i == 7 else 0)
        assert ei.value.error_message is not None
        assert Message.decode(ei.value.error_message).data_type == 6


def test_stale_timestamp(stores: dict[str, SakkeKeystore], signed: bytes) -> None:
    with pytest.raises(InvalidTimestampError) as ei:
        SakkeResponder(stores[BOB]).receive(signed, NOW + 3600)
    assert ei.value.err_no == 1 and ei.value.error_message is not None


def test_replay(stores: dict[str, SakkeKeystore], signed: bytes) -> None:
    cache = ReplayCache()
    SakkeResponder(stores[BOB], replay_cache=cache).receive(signed, NOW)
    with pytest.raises(ReplayError):
        SakkeResponder(stores[BOB], replay_cache=cache).receive(signed, NOW + 1)


def test_wrong_recipient_and_wrong_sender(stores: dict[str, SakkeKeystore], signed: bytes) -> None:
    with pytest.raises(UnsupportedIDError) as ei:
        SakkeResponder(stores["sip:carol@example.org"]).receive(signed, NOW)
    assert ei.value.err_no == 7
    with pytest.raises(AuthenticationError):
        SakkeResponder(stores[BOB], initiator_uri="sip:carol@example.org").receive(signed, NOW)


def test_signature_without_header_only_with_compat(stores: dict[str, SakkeKeystore]) -> None:
    data = SakkeInitiator(stores[ALICE], BOB, signature_coverage="exclude-sign-header").create_message(NOW)
    with pytest.raises(AuthenticationError):
        SakkeResponder(stores[BOB]).receive(data, NOW)
    r = SakkeResponder(stores[BOB], allow_signature_without_header=True).receive(data, NOW)
    assert r.result.authenticated


def test_no_response_and_state(stores: dict[str, SakkeKeystore], signed: bytes) -> None:
    init = SakkeInitiator(stores[ALICE], BOB)
    with pytest.raises(StateError):
        _ = init.result
    init.create_message(NOW)
    with pytest.raises(StateError):
        init.create_message(NOW)
    resp = SakkeResponder(stores[BOB])
    resp.receive(signed, NOW)
    with pytest.raises(StateError):
        resp.receive(signed, NOW)


def test_secrets_not_in_repr(stores: dict[str, SakkeKeystore]) -> None:
    k = stores[ALICE].key_sets[0]
    text = repr(k) + repr(stores[ALICE]) + repr(SakkeInitiator(stores[ALICE], BOB, ssv=b"\x42" * 16))
    assert k.ssk.hex() not in text and k.rsk.hex()[:40] not in text and "42424242" not in text


# --- key-period rollover (RFC 6509 §3.2, §3.3; TS 33.180 §F.2.1) ----------------------------------
#
# The identifiers of a message are those of the key period holding its timestamp T; a Responder
# holding periods N and N+1 accepts messages of either, whatever side of the boundary its own
# clock is on (within the allowed clock skew, RFC 3830 §5.4).

PERIOD = 2_592_000
#: Period N+1 starts at this Unix time: NTP seconds (N+1) * PERIOD, offset 0 (TS 33.180 §F.2.1).
N = key_period_number(NOW, PERIOD)
BOUNDARY = float((N + 1) * PERIOD - NTP_UNIX_OFFSET)


@pytest.fixture(scope="module")
def rollover() -> dict[str, Any]:
    """Alice and Bob holding the key sets of periods N and N+1, and each period's key sets alone."""
    c = generate_community("kms.example.org", key_period=PERIOD)
    sets = {(u, p): issue_user_keys(c, u, period_no=p) for u in (ALICE, BOB) for p in (N, N + 1)}
    both = {u: SakkeKeystore(c.public, u, [sets[u, N], sets[u, N + 1]]) for u in (ALICE, BOB)}
    only = {(u, p): SakkeKeystore(c.public, u, [sets[u, p]]) for u in (ALICE, BOB) for p in (N, N + 1)}
    return {"both": both, "only": only, "sets": sets}


def test_boundary_is_where_the_period_changes() -> None:
    assert key_period_number(BOUNDARY - 0.001, PERIOD) == N
    assert key_period_number(BOUNDARY, PERIOD) == N + 1


@pytest.mark.parametrize("expected_initiator", [True, False], ids=["from-expected", "from-message"])
@pytest.mark.parametrize(
    ("t_i", "t_r"),
    [
        (BOUNDARY - 3600, BOUNDARY - 3590),  # both in N, the next period's keys already held
        (BOUNDARY - 1.5, BOUNDARY + 1.5),  # sender just before the boundary, receiver already in N+1
        (BOUNDARY - 0.001, BOUNDARY + 299),  # ... at the edge of the 300 s window
        (BOUNDARY + 1, BOUNDARY - 1),  # sender already in N+1, receiver still in N
        (BOUNDARY + 2, BOUNDARY + 5),  # both in N+1
    ],
    ids=["both-in-N", "sender-N-receiver-N+1", "window-edge", "sender-N+1-receiver-N", "both-in-N+1"],
)
def test_rollover_message_uses_the_period_of_t(
    rollover: dict[str, Any], t_i: float, t_r: float, expected_initiator: bool
) -> None:
    alice, bob = rollover["both"][ALICE], rollover["both"][BOB]
    period = N if t_i < BOUNDARY else N + 1
    init = SakkeInitiator(alice, BOB, key_type="pck", crypto_sessions=[CryptoSessionSpec(ssrc=0x1234, cs_id=1)])
    data = init.create_message(t_i)
    assert init.result.extras["key_period_no"] == period
    responder = SakkeResponder(bob, initiator_uri=ALICE if expected_initiator else None)
    r = responder.receive(data, t_r).result
    assert r.tgk == init.result.tgk and r.authenticated
    assert r.crypto_sessions[0].master_key == init.result.crypto_sessions[0].master_key
    assert r.extras["key_period_no"] == period
    assert r.extras["initiator_identifier"] == rollover["sets"][ALICE, period].identifier.hex()
    assert r.extras["responder_identifier"] == rollover["sets"][BOB, period].identifier.hex()


@pytest.mark.parametrize(("t_i", "held"), [(BOUNDARY - 1, N + 1), (BOUNDARY + 1, N)], ids=["T-in-N", "T-in-N+1"])
def test_rollover_receiver_without_the_period_of_t(rollover: dict[str, Any], t_i: float, held: int) -> None:
    """A Responder holding only the other period's keys refuses (Error no 7), on either clock side."""
    data = SakkeInitiator(rollover["both"][ALICE], BOB, key_type="pck").create_message(t_i)
    for t_r in (BOUNDARY - 2, BOUNDARY + 2):
        with pytest.raises(UnsupportedIDError) as ei:
            SakkeResponder(rollover["only"][BOB, held], initiator_uri=ALICE).receive(data, t_r)
        assert ei.value.err_no == 7 and ei.value.error_message is not None


def test_rollover_sender_without_the_period_of_now(rollover: dict[str, Any]) -> None:
    with pytest.raises(KeyMaterialError, match="key period"):
        SakkeInitiator(rollover["only"][ALICE, N], BOB).create_message(BOUNDARY + 1)


def test_rollover_window_still_applies(rollover: dict[str, Any]) -> None:
    data = SakkeInitiator(rollover["both"][ALICE], BOB).create_message(BOUNDARY - 1)
    with pytest.raises(InvalidTimestampError):
        SakkeResponder(rollover["both"][BOB], initiator_uri=ALICE).receive(data, BOUNDARY + 300)


def test_keys_of_another_period_than_t_are_refused(rollover: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A device keyed out of period N+1 cannot go on with its period-N keys after the boundary.

    The message below has T in N+1 but identifiers (signing key, recipient UID) of period N,
    which is what such a device would send; RFC 6509 §3.2 makes the identifiers' period T's.
    """
    from mikey.modes import sakke as sakke_mode

    real = sakke_mode.identifier_for
    with monkeypatch.context() as m:
        m.setattr(sakke_mode, "identifier_for", lambda keys, uri, when, scheme: real(keys, uri, when, scheme, -1))
        data = SakkeInitiator(rollover["only"][ALICE, N], BOB, key_type="pck").create_message(BOUNDARY + 1)
    # Checked against the expected sender's period-N+1 UID, the period-N signature fails.
    with pytest.raises(AuthenticationError) as ei:
        SakkeResponder(rollover["both"][BOB], initiator_uri=ALICE).receive(data, BOUNDARY + 2)
    assert ei.value.err_no == 0
    # Without an expected sender the carried UID verifies, but IDRr is Bob's UID of the wrong period.
    with pytest.raises(UnsupportedIDError, match="another key period"):
        SakkeResponder(rollover["both"][BOB]).receive(data, BOUNDARY + 2)


@pytest.mark.parametrize(("t_i", "t_r"), [(1_769_903_999.0, 1_769_904_001.0), (1_769_904_001.0, 1_769_903_999.0)],
                         ids=["sender-january", "sender-february"])
def test_rollover_rfc6509_months(t_i: float, t_r: float) -> None:
    """Monthly identifiers (RFC 6509 §3.3): 2026-01-31T23:59:59Z / 2026-02-01T00:00:01Z, both months held."""
    a, b = "tel:+447700900123", "tel:+447700900456"
    c = generate_community("kms.example.org", id_scheme=SakkeIDScheme.TEL_URI_MONTHLY)
    keys = {u: SakkeKeystore(c.public, u, [issue_user_keys(c, u, month=m) for m in ("2026-01", "2026-02")])
            for u in (a, b)}
    init = SakkeInitiator(keys[a], b, key_type="pck")
    data = init.create_message(t_i)
    r = SakkeResponder(keys[b], initiator_uri=a).receive(data, t_r).result
    month = "2026-01" if t_i < 1_769_904_000 else "2026-02"
    assert r.tgk == init.result.tgk and r.extras["key_period_month"] == month
    assert r.extras["responder_identifier"] == rfc6509_identifier(b, t_i).hex()
    assert rfc6509_identifier(b, t_i).startswith(month.encode())
