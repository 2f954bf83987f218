"""validate(): the RFC rules per data type, one test per rule (RFC 3830 §3, §5.1.2, §6; 4563; 4650; 4738; 6509)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from wire_samples import sample_messages, srtp_policy

from mikey.constants import PRF, CSIdMapType, DataType, GenExtType, ProtType
from mikey.errors import MikeyError, MikeyValidationError
from mikey.wire import (
    CertPayload,
    ChashPayload,
    CommonHeader,
    ErrorPayload,
    GeneralExtensionPayload,
    GenericIdEntry,
    IdPayload,
    IdrPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    Payload,
    RandPayload,
    SecurityPolicyPayload,
    SignPayload,
    SrtpIdEntry,
    TimestampPayload,
    VerificationPayload,
    encode_sub_payloads,
)
from mikey.wire.validate import LAYOUTS, TICKET_ROLES, LintWarning, lint, validate, violations

MESSAGES = sample_messages()
PSK = MESSAGES["dt/PSK_INIT"]  # HDR, T, RAND, IDi, IDr, SP, KEMAC
SAKKE = MESSAGES["dt/SAKKE"]
VECTORS = Path(__file__).parent / "vectors"


def _with(m: Message, *, header: CommonHeader | None = None, payloads: list[Payload] | None = None) -> Message:
    return Message(header or m.header, tuple(m.payloads if payloads is None else payloads))


def _hdr(m: Message, **changes: object) -> CommonHeader:
    h = m.header
    fields = {
        "data_type": h.data_type,
        "csb_id": h.csb_id,
        "cs_id_map": h.cs_id_map,
        "cs_id_map_type": h.cs_id_map_type,
        "v": h.v,
        "prf": h.prf,
        "version": h.version,
        "cs_count": h.cs_count,
    }
    fields.update(changes)
    return CommonHeader(**fields)  # type: ignore[arg-type]


def _one(m: Message, needle: str) -> None:
    """*m* breaks exactly one rule, whose sentence contains *needle*; validate() raises with it."""
    problems = violations(m)
    assert len(problems) == 1 and needle in problems[0], problems
    for lints in (False, True):  # rule violations raise before any lint is looked at
        with pytest.raises(MikeyValidationError) as ei:
            validate(m, lints=lints)
        assert ei.value.violations == problems and ei.value.err_no == 12
    # and what decodes from its encoding breaks the same rule
    assert violations(Message.decode(m.encode())) == problems


# --- valid messages pass ---------------------------------------------------------------------


#: The synthetic MIKEY-TICKET samples of wire_samples exercise payload coding, not RFC 6043 §4's layouts
#: (a RAND where RANDR goes, KEMAC where V goes); real TICKET messages are checked below instead.
_TICKET_NAMES = {f"dt/{dt.name}" for dt in range(DataType.REQUEST_INIT_PSK, DataType.RESOLVE_RESP + 1)
                 for dt in [DataType(dt)]}
# The RFC 6267 samples of wire_samples are codec samples, not RFC layouts: real ones are checked below.
_TICKET_NAMES |= {f"dt/{dt.name}" for dt in range(DataType.REQUEST_KEY_PSK, DataType.IBAKE_R_MESSAGE_2 + 1)
                  for dt in [DataType(dt)]}


@pytest.mark.parametrize("name", sorted(k for k in MESSAGES if k.startswith("dt/") and k not in _TICKET_NAMES))
def test_valid_sample_of_each_data_type_passes(name: str) -> None:
    m = MESSAGES[name]
    assert validate(m) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LintWarning)
        assert validate(Message.decode(m.encode()), lints=True) == lint(m)


def test_lint_leaves_dhhmac_keyless_null_kemac_alone() -> None:
    """RFC 4650 §3: the DHHMAC KEMAC has NULL encryption and carries no key; nothing to warn of."""
    for name in ("dt/DHHMAC_INIT", "dt/DHHMAC_RESP"):
        assert lint(MESSAGES[name]) == []


def test_layouts_cover_the_rfc3830_4650_4738_6043_6267_6509_data_types() -> None:
    assert set(LAYOUTS) == set(range(0, 26)) | {DataType.SAKKE}
    assert set(TICKET_ROLES) == set(range(11, 19))


# --- MIKEY-TICKET (RFC 6043 §4): real messages of every data type 11..18 ------------------------------


def _ticket_messages() -> dict[str, bytes]:
    """One exchange of every kind from the TICKET roles: PSK Request/Transfer (with forking, RANDRr) /
    Resolve, the PK variants, a CSB update both ways, a KMS Error message."""
    import random

    from pki import NOW as PKI_NOW
    from pki import make_ca, make_leaf

    from mikey.constants import IDRole, IDType, KeyDataType, TSRole, TSType
    from mikey.crypto.x509 import CertificateValidator
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
        TicketUpdater,
        TicketUpdateResponder,
        ticket_flags,
    )
    from mikey.wire import SpiValidity, TrPayload

    now = PKI_NOW.timestamp()
    alice, bob, kms_id = b"sip:alice@example.com", b"sip:bob@example.com", b"kms.example.com"
    ca = make_ca("Validate Ticket Root")
    certs = {n: make_leaf(ca, f"v-{n}", san_uris=[u.decode()]) for n, u in (("alice", alice), ("bob", bob))}
    kms_cert = make_leaf(ca, "v-kms", san_dns=["kms.example.com"])
    store = InMemoryTicketStore()
    store.add_credential(TicketCredential(alice, bytes(16), b"alice"))
    store.add_credential(TicketCredential(bob, bytes(range(16)), b"bob"))
    store.add_protection_key(TicketProtectionKey(b"tpk", bytes(range(100, 116))))
    kms = TicketKms(store, identity=kms_id, pk_credentials=[Credentials(kms_cert.key, kms_cert.cert)],
                    validator=CertificateValidator([ca.cert]), rng=random.Random(7).randbytes)
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(now) + 2208988800 + 3600).to_bytes(4, "big"))
    pol = TicketPolicy(ticket_flags("DEFGHILNO"), (IdrPayload(IDRole.RESPONDER, IDType.URI, bob),), end=end)
    out: dict[str, bytes] = {}
    req = TicketRequester(bytes(16), pol, id_i=alice, kms_id=kms_id, psk_id=b"alice")
    out["request_init_psk"] = req.create_message(now)
    out["request_resp"] = kms.handle(out["request_init_psk"], now) or b""
    grant = req.receive(out["request_resp"], now)
    ini = TicketInitiator(grant, id_i=alice, id_r=bob)
    out["transfer_init"] = ini.create_message(now)
    resp = TicketResponder(bytes(range(16)), id_r=bob, kms_id=kms_id, psk_id=b"bob")
    out["resolve_init_psk"] = resp.receive(out["transfer_init"], now).resolve_init or b""
    out["resolve_resp"] = kms.handle(out["resolve_init_psk"], now) or b""
    out["transfer_resp"] = resp.receive_resolve(out["resolve_resp"], now).response or b""
    ini.receive(out["transfer_resp"], now)
    assert resp.bundle is not None
    new_tgk = KeyDataPayload(KeyDataType.TGK, bytes(range(70, 86)), None, SpiValidity(b"\0\0\0\x09"))
    up = TicketUpdater(ini.bundles[0], new_keys=[new_tgk])
    out["update_transfer_init"] = up.create_message(now + 60)
    out["update_transfer_resp"] = TicketUpdateResponder(resp.bundle).receive(
        out["update_transfer_init"], now + 61).response or b""
    bob_up = TicketUpdater(resp.bundle)  # started by the Responder: IDRr before IDRi
    out["update_by_responder"] = bob_up.create_message(now + 70)
    pk_req = TicketRequester(None, pol, pk=TicketPkSigner(Credentials(certs["alice"].key, certs["alice"].cert),
                                                          kms_cert.cert), id_i=alice, kms_id=kms_id)
    out["request_init_pk"] = pk_req.create_message(now)
    pk_grant = pk_req.receive(kms.handle(out["request_init_pk"], now) or b"", now)
    pk_resp = TicketResponder(pk=TicketPkSigner(Credentials(certs["bob"].key, certs["bob"].cert), kms_cert.cert),
                              id_r=bob, kms_id=kms_id)
    out["resolve_init_pk"] = pk_resp.receive(TicketInitiator(pk_grant, id_i=alice, id_r=bob).create_message(now),
                                             now).resolve_init or b""
    wrong = TicketRequester(bytes(range(1, 17)), pol, id_i=alice, kms_id=kms_id, psk_id=b"alice")
    out["error"] = kms.handle(wrong.create_message(now), now) or b""
    return out


TICKET_MESSAGES = _ticket_messages()


@pytest.mark.parametrize("name", sorted(TICKET_MESSAGES))
def test_real_ticket_messages_pass(name: str) -> None:
    m = Message.decode(TICKET_MESSAGES[name])
    assert violations(m) == []
    assert (m.data_type == DataType.ERROR) == (name == "error")


def test_ticket_golden_messages_pass() -> None:
    golden = json.loads((VECTORS / "mikey_ticket_golden.json").read_text())["messages"]
    names = ["request_init", "request_resp", "transfer_init", "resolve_init", "resolve_resp", "transfer_resp"]
    assert [int(Message.decode(bytes.fromhex(golden[n])).data_type) for n in names] == [11, 13, 14, 16, 18, 15]
    for n in names:
        assert violations(Message.decode(bytes.fromhex(golden[n]))) == [], n


def _ticket(name: str) -> Message:
    return Message.decode(TICKET_MESSAGES[name])


def _drop(m: Message, payload_type: int) -> Message:
    return _with(m, payloads=[p for p in m.payloads if p.TYPE != payload_type])


def test_ticket_layout_rules() -> None:
    from mikey.constants import PayloadType as PT

    _one(_drop(_ticket("request_init_psk"), PT.TP), "REQUEST_INIT_PSK message layout: expected TP")
    _one(_drop(_ticket("request_resp"), PT.TICKET), "REQUEST_RESP message layout: expected TICKET")
    _one(_drop(_ticket("resolve_init_psk"), PT.TICKET), "RESOLVE_INIT_PSK message layout: expected TICKET")
    _one(_drop(_ticket("resolve_resp"), PT.KEMAC), "RESOLVE_RESP message layout: expected KEMAC")
    _one(_drop(_ticket("resolve_init_pk"), PT.PKE), "RESOLVE_INIT_PK message layout: expected PKE")
    _one(_drop(_ticket("transfer_resp"), PT.V), "TRANSFER_RESP message layout: expected V")
    m = _ticket("transfer_init")  # V must be last: a second T after it
    _one(_with(m, payloads=[*m.payloads, m.payloads[0]]), "TRANSFER_INIT message layout: unexpected T payload")


def test_ticket_role_rules() -> None:
    from mikey.constants import IDRole, RANDRole
    from mikey.wire import RandrPayload

    m = _ticket("request_init_psk")
    swapped = [IdrPayload(IDRole.RESPONDER, p.id_type, p.data) if isinstance(p, IdrPayload)
               and p.id_role == IDRole.INITIATOR else p for p in m.payloads]
    _one(_with(m, payloads=swapped), "REQUEST_INIT_PSK: IDR roles RESPONDER, KMS, PSK are not ([IDRINITIATOR]")
    wrong_rand = [RandrPayload(RANDRole.RESPONDER, p.rand) if isinstance(p, RandrPayload) else p for p in m.payloads]
    _one(_with(m, payloads=wrong_rand), "REQUEST_INIT_PSK: RANDR roles RESPONDER are not INITIATOR")
    r = _ticket("transfer_resp")  # RANDRkms before RANDRr
    rands = [p for p in r.payloads if isinstance(p, RandrPayload)]
    assert [int(x.rand_role) for x in rands] == [RANDRole.RESPONDER, RANDRole.KMS]
    order = [p if not isinstance(p, RandrPayload) else (rands[1] if p is rands[0] else rands[0]) for p in r.payloads]
    _one(_with(r, payloads=order), "TRANSFER_RESP: RANDR roles KMS, RESPONDER are not RESPONDER, KMS")
    short = [RandrPayload(p.rand_role, p.rand[:8]) if isinstance(p, RandrPayload) else p for p in m.payloads]
    _one(_with(m, payloads=short), "RANDR is 8 octets")
    # both orders of a CSB update pass; a Request with crypto sessions does not
    assert violations(_ticket("update_by_responder")) == []
    t = _ticket("transfer_init")
    _one(_with(m, header=_hdr(m, cs_id_map=t.header.cs_id_map, cs_id_map_type=t.header.cs_id_map_type,
                              cs_count=None)), "carry no crypto sessions")
    _one(_with(m, header=_hdr(m, cs_id_map_type=CSIdMapType.SRTP_ID, cs_count=None)), "the Empty map")


def test_ticket_types_must_be_registered() -> None:
    import dataclasses

    from mikey.wire import TicketPayload, TicketPolicyPayload

    m = _ticket("request_init_psk")
    tp = [dataclasses.replace(p, ticket_type=9) if isinstance(p, TicketPolicyPayload) else p for p in m.payloads]
    _one(_with(m, payloads=tp), "TP Ticket type 9 is not registered")
    r = _ticket("request_resp")
    tk = [dataclasses.replace(p, ticket_type=9) if isinstance(p, TicketPayload) else p for p in r.payloads]
    _one(_with(r, payloads=tk), "TICKET Ticket type 9 is not registered")


# --- MIKEY-IBAKE (RFC 6267 §4): real messages of every data type 19..25 ------------------------------


def _ibake_messages() -> dict[str, bytes]:
    """Real messages from the IBAKE roles: a PSK and a PKE key request and their responses, an exchange
    with ESK in I_MESSAGE_1, a CSB update started by either side, a Responder's Error message."""
    from pki import NOW as PKI_NOW
    from pki import make_ca, make_leaf

    from mikey.crypto import ibe
    from mikey.crypto.x509 import CertificateValidator
    from mikey.keystore import Credentials
    from mikey.modes.ibake import (
        IbakeCredentials,
        IbakeInitiator,
        IbakeResponder,
        IbakeUpdateInitiator,
        IbakeUpdateResponder,
    )
    from mikey.modes.ibake_keys import IbakeKeyRequest, IbakeKms, IbakePkSigner

    now = PKI_NOW.timestamp()
    alice, bob, kms_id = b"sip:alice@example.org", b"sip:bob@example.org", b"kms.example.org"
    params, master = ibe.bf_setup(1024)
    ca = make_ca("IBAKE validate root")
    alice_cert = make_leaf(ca, "alice", san_uris=[alice.decode()])
    kms_cert = make_leaf(ca, "kms", san_uris=["sip:kms.example.org"])
    psks = {alice: b"A" * 16, bob: b"B" * 16}
    role = IbakeKms(master, psks, identity=kms_id, periods=1, pk_credentials=[Credentials(kms_cert.key, kms_cert.cert)],
                    validator=CertificateValidator([ca.cert]))
    out: dict[str, bytes] = {}
    creds = {}
    for user in (alice, bob):
        req = IbakeKeyRequest(psks[user], [user], kms_id, params, psk_id=user)
        out[f"request_key_psk/{user.decode()}"] = m = req.create_message(now)
        out[f"request_key_resp/{user.decode()}"] = resp = role.handle(m, now) or b""
        creds[user] = IbakeCredentials(params, req.receive(resp, now).private_keys)
    signer = IbakePkSigner(Credentials(alice_cert.key, alice_cert.cert), kms_cert.cert, chash=2)
    pke = IbakeKeyRequest(None, [alice], kms_id, params, pk=signer)
    out["request_key_pke"] = pke.create_message(now)
    out["request_key_resp/pke"] = role.handle(out["request_key_pke"], now) or b""
    i, r = IbakeInitiator(creds[alice], alice, bob, esk=True), IbakeResponder(creds[bob])
    out["i_message_1"] = i.create_message(now)
    out["r_message_1"] = r.receive(out["i_message_1"], now).response or b""
    out["i_message_2"] = i.receive(out["r_message_1"], now).response or b""
    out["r_message_2"] = r.receive(out["i_message_2"], now).response or b""
    i.receive(out["r_message_2"], now)
    assert r.result is not None
    for who, (mine, theirs, me, peer) in {"initiator": (i.results[0], r.result, alice, bob),
                                          "responder": (r.result, i.results[0], bob, alice)}.items():
        up = IbakeUpdateInitiator(creds[me], mine, me)
        out[f"update_i_message_1/{who}"] = m = up.create_message(now + 60)
        out[f"update_r_message_1/{who}"] = IbakeUpdateResponder(creds[peer], theirs, peer).receive(
            m, now + 60).response or b""
    bad = bytearray(out["i_message_1"])
    bad[-40] ^= 1
    try:
        IbakeResponder(creds[bob]).receive(bytes(bad), now)
    except MikeyError as exc:
        assert exc.error_message is not None
        out["error"] = exc.error_message
    return out


IBAKE_MESSAGES = _ibake_messages()


@pytest.mark.parametrize("name", sorted(IBAKE_MESSAGES))
def test_real_ibake_messages_pass(name: str) -> None:
    m = Message.decode(IBAKE_MESSAGES[name])
    assert violations(m) == []
    expected = {"request_key_psk": 19, "request_key_pke": 20, "request_key_resp": 21, "i_message_1": 22,
                "update_i_message_1": 22, "r_message_1": 23, "update_r_message_1": 23, "i_message_2": 24,
                "r_message_2": 25, "error": DataType.ERROR}
    assert int(m.data_type) == expected[name.split("/")[0]]


def test_ibake_golden_messages_pass() -> None:
    golden = json.loads((VECTORS / "ibake_profile_golden.json").read_text())
    names = ["request_key_psk", "request_key_resp", "i_message_1", "r_message_1", "i_message_2", "r_message_2"]
    assert [int(Message.decode(bytes.fromhex(golden[n])).data_type) for n in names] == [19, 21, 22, 23, 24, 25]
    for n in names:
        assert violations(Message.decode(bytes.fromhex(golden[n]))) == [], n


def _ibake(name: str) -> Message:
    return Message.decode(IBAKE_MESSAGES[name])


def test_ibake_layout_rules() -> None:
    from mikey.constants import PayloadType as PT

    _one(_drop(_ibake("request_key_psk/sip:alice@example.org"), PT.V), "REQUEST_KEY_PSK message layout: expected V")
    _one(_drop(_ibake("request_key_psk/sip:alice@example.org"), PT.RAND),
         "REQUEST_KEY_PSK message layout: expected RAND")
    _one(_drop(_ibake("request_key_pke"), PT.PKE), "REQUEST_KEY_PKE message layout: expected PKE")
    _one(_drop(_ibake("request_key_resp/pke"), PT.KEMAC), "REQUEST_KEY_RESP message layout: expected KEMAC")
    _one(_drop(_ibake("i_message_2"), PT.IBAKE), "IBAKE_I_MESSAGE_2 message layout: expected IBAKE")
    _one(_drop(_ibake("i_message_2"), PT.RAND), "IBAKE_I_MESSAGE_2 message layout: expected RAND")
    _one(_drop(_ibake("r_message_2"), PT.V), "IBAKE_R_MESSAGE_2 message layout: expected V")
    m = _ibake("i_message_1")  # ESK last; an IBAKE after it is out of place
    ibake_p = next(p for p in m.payloads if p.TYPE == PT.IBAKE)
    _one(_with(m, payloads=[*m.payloads, ibake_p]), "IBAKE_I_MESSAGE_1 message layout: unexpected IBAKE payload")
    r2 = _ibake("r_message_2")
    _one(_with(r2, payloads=[*r2.payloads, r2.payloads[0]]), "IBAKE_R_MESSAGE_2 message layout: unexpected T payload")


def test_ibake_role_rules() -> None:
    from mikey.constants import IDRole

    def roles(m: Message, *new: int) -> Message:
        it = iter(new)
        return _with(m, payloads=[IdrPayload(next(it), p.id_type, p.data) if isinstance(p, IdrPayload) else p
                                  for p in m.payloads])

    psk = _ibake("request_key_psk/sip:alice@example.org")
    assert [int(p.id_role) for p in psk.payloads if isinstance(p, IdrPayload)] == [IDRole.INITIATOR, IDRole.KMS,
                                                                                    IDRole.PSK]
    assert violations(roles(psk, IDRole.RESPONDER, IDRole.KMS, IDRole.PSK)) == []  # a Responder asks for its K_PR
    _one(roles(psk, IDRole.INITIATOR, IDRole.PSK, IDRole.KMS), "REQUEST_KEY_PSK: IDR roles INITIATOR, PSK, KMS")
    _one(roles(psk, IDRole.KMS, IDRole.KMS, IDRole.PSK), "are not (IDRi/r), IDRkms, [IDRpsk]")
    pke = _ibake("request_key_pke")
    _one(roles(pke, IDRole.INITIATOR, IDRole.RESPONDER), "REQUEST_KEY_PKE: the requested identities must all be IDRi")
    _one(roles(pke, IDRole.INITIATOR, IDRole.PSK), "REQUEST_KEY_PKE: IDR roles INITIATOR, PSK are not")
    resp = _ibake("request_key_resp/pke")
    _one(roles(resp, *[IDRole.KMS, IDRole.INITIATOR][: sum(isinstance(p, IdrPayload) for p in resp.payloads)]),
         "REQUEST_KEY_RESP: IDR roles KMS")
    _one(_with(resp, header=_hdr(resp, v=True)), "REQUEST_KEY_RESP: HDR V must be 0")
    i1 = _ibake("i_message_1")
    _one(_with(psk, header=_hdr(psk, cs_id_map=i1.header.cs_id_map, cs_id_map_type=i1.header.cs_id_map_type,
                                cs_count=None)), "a key request carries no crypto sessions")
    _one(roles(_ibake("i_message_2"), IDRole.RESPONDER, IDRole.INITIATOR),
         "IBAKE_I_MESSAGE_2: IDR roles RESPONDER, INITIATOR are not IDRi, IDRr")
    _one(roles(_ibake("r_message_1"), IDRole.INITIATOR, IDRole.INITIATOR), "IBAKE_R_MESSAGE_1: IDR roles")
    assert violations(_ibake("update_i_message_1/responder")) == []  # IDRr, IDRi: a Responder's update
    _one(_with(i1, header=_hdr(i1, v=False)), "IBAKE_I_MESSAGE_1: HDR V must be 1")
    r2 = _ibake("r_message_2")
    ext = GeneralExtensionPayload(GenExtType.VENDOR_ID, b"x")
    _one(_with(r2, payloads=[*r2.payloads, ext]), "IBAKE_R_MESSAGE_2: V must be the last payload")
    assert violations(_with(r2, payloads=[ext, *r2.payloads])) == []


def test_vendor_sakke_messages() -> None:
    sw = json.loads((VECTORS / "mikey_sakke_streamwide.json").read_text())
    for c in sw["cases"]["i_messages"]:
        validate(Message.decode(bytes.fromhex(c["i_message_hex"])))
    alea = json.loads((VECTORS / "mikey_sakke_alea_via_streamwide.json").read_text())["cases"]
    validate(Message.decode(bytes.fromhex(alea[1]["i_message_hex"])))
    # ALEA's GMK message sends the ROC transmission rate (RFC 4771, 16 bits) in one octet.
    assert violations(Message.decode(bytes.fromhex(alea[0]["i_message_hex"]))) == [
        "SRTP policy parameter ROC_TRANSMISSION_RATE has length 1; expected 2"
    ]


# --- HDR rules ----------------------------------------------------------------------------------


def test_version_must_be_1() -> None:
    _one(_with(PSK, header=_hdr(PSK, version=2)), "version")


def test_unregistered_data_type() -> None:
    _one(_with(PSK, header=_hdr(PSK, data_type=99)), "data type 99")


def test_unregistered_prf() -> None:
    _one(_with(PSK, header=_hdr(PSK, prf=9)), "PRF func 9")


def test_unregistered_cs_id_map_type() -> None:
    # Cannot be encoded (its map info has no known length), so checked on a built message.
    m = _with(PSK, header=_hdr(PSK, cs_id_map=(), cs_id_map_type=7, cs_count=0))
    problems = violations(m)
    assert problems == ["HDR CS ID map type 7 is not registered"]


def test_v_must_be_0_in_sakke() -> None:
    _one(_with(SAKKE, header=_hdr(SAKKE, v=True)), "RFC 6509")


def test_v_must_be_0_in_error() -> None:
    err = MESSAGES["dt/ERROR"]
    _one(_with(err, header=_hdr(err, v=True)), "Error message")


def test_empty_map_forbids_sp_outside_sakke() -> None:
    h = _hdr(PSK, cs_id_map=(), cs_id_map_type=CSIdMapType.EMPTY, cs_count=2)
    _one(_with(PSK, header=h), "RFC 4563")
    validate(_with(PSK, header=h, payloads=[p for p in PSK.payloads if not isinstance(p, SecurityPolicyPayload)]))


def test_srtp_id_entry_refers_to_missing_policy() -> None:
    h = _hdr(PSK, cs_id_map=(SrtpIdEntry(1, 1), SrtpIdEntry(9, 2)))
    _one(_with(PSK, header=h), "refers to policy 9")


def test_generic_id_entry_refers_to_missing_policy() -> None:
    m = _ticket("transfer_init")  # one SP, Policy no 0
    h = _hdr(m, cs_id_map=(GenericIdEntry.srtp(1, 1, policies=(0, 4)),))
    _one(_with(m, header=h), "refers to policy 4")


def test_generic_id_map_lists_a_cs_id_twice() -> None:
    m = _ticket("transfer_init")
    h = _hdr(m, cs_id_map=(GenericIdEntry.srtp(1, 1, policies=(0,)), GenericIdEntry.srtp(1, 2, policies=(0,))))
    _one(_with(m, header=h), "twice")


# --- layout rules ---------------------------------------------------------------------------------


def test_missing_payload() -> None:
    _one(_with(PSK, payloads=[p for p in PSK.payloads if not isinstance(p, TimestampPayload)]), "expected T")


def test_update_message_without_rand_is_valid() -> None:
    """RFC 3830 §4.5: an update message carries no RAND."""
    assert violations(_with(PSK, payloads=[p for p in PSK.payloads if not isinstance(p, RandPayload)])) == []


def test_wrong_order() -> None:
    t, rand, *rest = PSK.payloads
    problems = violations(_with(PSK, payloads=[rand, t, *rest]))
    assert problems and "PSK_INIT message layout" in problems[0] and "expected T" in problems[0]


def test_unexpected_payload() -> None:
    m = MESSAGES["dt/PK_RESP"]  # HDR, T, V
    _one(_with(m, payloads=[*m.payloads, RandPayload(bytes(16))]), "unexpected RAND")
    _one(_with(m, payloads=[*m.payloads[:1], RandPayload(bytes(16)), *m.payloads[1:]]), "expected V")


def test_message_ends_early() -> None:
    m = MESSAGES["dt/PSK_RESP"]  # HDR, T, IDr, V
    _one(_with(m, payloads=list(m.payloads[:-1])), "found end of message")


def test_sign_must_be_last() -> None:
    m = MESSAGES["dt/PK_INIT"]
    *rest, pke, sign = m.payloads
    problems = violations(_with(m, payloads=[*rest, sign, pke]))
    assert "SIGN must be the last payload (RFC 3830 §6.5)" in problems


def test_kemac_must_be_last_in_psk_init() -> None:
    gext = GeneralExtensionPayload.sdp_ids(["mikey"])
    _one(_with(PSK, payloads=[*PSK.payloads, gext]), "KEMAC must be the last payload")
    validate(_with(PSK, payloads=[*PSK.payloads[:2], gext, *PSK.payloads[2:]]))  # GenExt may stand anywhere else


def test_sub_payload_cannot_stand_in_a_message() -> None:
    kd = KeyDataPayload(0, bytes(16))
    m = _ticket("transfer_init")  # the layout rule (KEY_DATA where V goes) fires too
    problems = violations(_with(m, payloads=[*m.payloads[:-1], kd, m.payloads[-1]]))
    assert problems == ["KEY_DATA is a sub-payload and cannot stand in the message itself (payload 7)",
                        "TRANSFER_INIT message layout: expected V at payload 7, found KEY_DATA"]


def test_repeated_items_up_to_their_maximum() -> None:
    err = MESSAGES["dt/ERROR"]
    validate(_with(err, payloads=[err.payloads[0]] + [ErrorPayload(i) for i in range(16)]))
    idrs = [IdrPayload(1, 1, b"sip:a")] * 9  # SAKKE allows up to 8 IDR
    _one(_with(SAKKE, payloads=[*SAKKE.payloads[:2], *idrs, *SAKKE.payloads[6:]]), "found IDR")


# --- payload rules ---------------------------------------------------------------------------------


def _replace(m: Message, cls: type, new: Payload) -> Message:
    return m.replace_payload(m.index(cls), new)


def test_rand_too_short() -> None:
    _one(_replace(PSK, RandPayload, RandPayload(bytes(15))), "at least 16")


def test_kemac_unregistered_algorithms() -> None:
    k = PSK.find(KemacPayload)
    assert k is not None
    _one(_replace(PSK, KemacPayload, KemacPayload(9, k.encr_data, k.mac_alg, k.mac)), "Encr alg 9")
    problems = violations(_with(PSK, payloads=[*PSK.payloads[:-1], KemacPayload(1, b"", 7, b"")]))
    assert problems == ["KEMAC MAC alg 7 is not registered"]


def test_kemac_null_encryption_must_hold_key_data() -> None:
    _one(_replace(PSK, KemacPayload, KemacPayload(0, b"\x00\x00", 0)), "not a Key data chain")
    bad_type = KemacPayload(0, encode_sub_payloads([KeyDataPayload(12, bytes(16))]), 0)
    _one(_replace(PSK, KemacPayload, bad_type), "Key data Type 12")
    validate(_replace(PSK, KemacPayload, KemacPayload(0, encode_sub_payloads([KeyDataPayload(0, bytes(16))]), 0)))


def test_id_rules() -> None:
    _one(_replace(PSK, IdPayload, IdPayload(9, b"x")), "ID type 9")
    _one(_replace(PSK, IdPayload, IdPayload(1, b"")), "empty ID data")
    _one(_replace(SAKKE, IdrPayload, IdrPayload(6, 9, b"x")), "IDR ID type 9")


def test_sign_rules() -> None:
    m = MESSAGES["dt/PK_INIT"]
    _one(_replace(m, SignPayload, SignPayload(9, bytes(16))), "S type 9")
    _one(_replace(SAKKE, SignPayload, SignPayload(2, bytes(128))), "129")


def test_chash_v_err_unregistered() -> None:
    m = MESSAGES["dt/PK_INIT"]
    # An unknown hash func cannot be decoded (its length is unknown): checked on a built message.
    assert violations(_replace(m, ChashPayload, ChashPayload(7, b""))) == ["CHASH hash func 7 is not registered"]
    r = MESSAGES["dt/PSK_RESP"]
    assert violations(_replace(r, VerificationPayload, VerificationPayload(7, b""))) == [
        "V auth alg 7 is not registered"
    ]
    e = MESSAGES["dt/ERROR"]
    _one(_replace(e, ErrorPayload, ErrorPayload(99)), "Error no 99")


def test_general_extension_rules() -> None:
    m = MESSAGES["dt/RSA_R_RESP"]
    _one(_replace(m, GeneralExtensionPayload, GeneralExtensionPayload(99, b"")), "type 99")
    _one(_replace(m, GeneralExtensionPayload, GeneralExtensionPayload(GenExtType.CSB_ID, b"\x01")), "4 octets")
    _one(_replace(m, GeneralExtensionPayload, GeneralExtensionPayload(GenExtType.KEY_ID, b"\x00\x09")), "Key ID")


def test_sp_rules() -> None:
    _one(_replace(PSK, SecurityPolicyPayload, SecurityPolicyPayload(1, 7, ())), "Prot type 7")
    _one(_replace(PSK, SecurityPolicyPayload, SecurityPolicyPayload(1, ProtType.SRTP, ((77, b"\x00"),))), "type 77")
    _one(_replace(PSK, SecurityPolicyPayload, SecurityPolicyPayload(1, 0, ((1, b"\x00\x10"),))), "has length 2")
    _one(_replace(PSK, SecurityPolicyPayload, SecurityPolicyPayload(1, 0, ((13, b"\x01"),))), "expected 2")
    # the key derivation rate may be any length
    validate(_replace(PSK, SecurityPolicyPayload, SecurityPolicyPayload(1, 0, ((6, b"\x00\x00\x00\x18"),))))
    # TESLA parameters are not checked against the SRTP table
    validate(_replace(PSK, SecurityPolicyPayload, SecurityPolicyPayload(1, ProtType.TESLA, ((99, b""),))))
    two = _with(PSK, payloads=[*PSK.payloads[:-1], srtp_policy(1), PSK.payloads[-1]])
    _one(two, "two SP payloads with Policy no 1")


def test_every_violation_is_reported_at_once() -> None:
    m = _with(
        PSK,
        header=_hdr(PSK, version=3, prf=PRF.PRF_HMAC_SHA_256),
        payloads=[TimestampPayload.counter(1), RandPayload(b"\x01"), CertPayload(9, b""), PSK.payloads[-1]],
    )
    problems = violations(m)
    assert any("version" in p for p in problems) and any("at least 16" in p for p in problems)
    with pytest.raises(MikeyError) as ei:
        validate(m)
    assert isinstance(ei.value, MikeyValidationError) and len(ei.value.violations) == len(problems)
