"""Call divert: the proxy redirects (302) or retargets the call from Bob to Carol.

In memory (always run): per method, Bob's I_MESSAGE handed to Carol is refused with the MIKEY
Error the method gives (identity or key mismatch, RFC 3830 §5.1.2), or the caller refuses Carol's
answer; after a 302 the caller keys a new I_MESSAGE to Carol and both ends agree.  Never is a
party keyed with someone it did not mean to talk to.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pki import NOW, make_ca, make_leaf
from sipproxy import kamailio_factory  # noqa: F401

from mikey.constants import IDType, TSRole, TSType
from mikey.crypto import ibe
from mikey.crypto.x509 import CertificateValidator
from mikey.errors import MikeyError, PeerError
from mikey.keystore import Credentials, SakkeKeystore
from mikey.kms import generate_community, issue_user_keys
from mikey.modes.base import CryptoSessionSpec, Initiator, Responder
from mikey.modes.dh import DhInitiator, DhResponder
from mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from mikey.modes.ibake import IbakeCredentials, IbakeInitiator, IbakeResponder, answer_policy
from mikey.modes.ibake_keys import IbakeKeyRequest, IbakeKms
from mikey.modes.pk import PkInitiator, PkResponder
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from mikey.modes.sakke import SakkeInitiator, SakkeResponder
from mikey.modes.ticket import (
    InMemoryTicketStore,
    TicketCredential,
    TicketInitiator,
    TicketKms,
    TicketPolicy,
    TicketProtectionKey,
    TicketRequester,
    TicketResponder,
    ticket_flags,
)
from mikey.wire import ErrorPayload, IdPayload, IdrPayload, Message, TrPayload

T0 = NOW.timestamp()
NAMES = ("alice", "bob", "carol")
URI = {n: f"sip:{n}@example.com" for n in NAMES}
CA = make_ca("Divert Test Root")
LEAVES = {n: make_leaf(CA, n, san_uris=[URI[n]]) for n in NAMES}
CREDS = {n: Credentials(LEAVES[n].key, LEAVES[n].cert) for n in NAMES}
VALIDATOR = CertificateValidator([CA.cert])
#: One PSK per pair of parties (PSK, DH-HMAC).
PAIR_PSK = {("alice", "bob"): bytes(range(16)), ("alice", "carol"): bytes(range(16, 32))}
SPECS = [CryptoSessionSpec(ssrc=0x11111111)]
COMMUNITY = generate_community("kms.divert.example")
SAKKE = {n: SakkeKeystore(COMMUNITY.public, URI[n], [issue_user_keys(COMMUNITY, URI[n], now=T0)]) for n in NAMES}


def uri_id(name: str) -> IdPayload:
    return IdPayload(IDType.URI, URI[name].encode())


def error_nos(exc: MikeyError) -> list[int]:
    """The Error nos of the MIKEY Error message *exc* carries (what goes back in the 488's SDP)."""
    if exc.error_message is None:
        return []
    return [int(p.error_no) for p in Message.decode(exc.error_message).find_all(ErrorPayload)]


def initiator(method: str, to: str, *, name_responder: bool = True) -> Initiator:
    """Alice's Initiator for a call to *to* (IDr named, as a caller that knows whom it called)."""
    id_r = uri_id(to) if name_responder else None
    if method == "psk":
        return PskInitiator(PAIR_PSK[("alice", to)], v=True, crypto_sessions=SPECS, id_i=uri_id("alice"), id_r=id_r)
    if method == "pk":
        return PkInitiator(CREDS["alice"], LEAVES[to].cert, validator=VALIDATOR, v=True, crypto_sessions=SPECS, id_r=id_r)
    if method == "dh":
        return DhInitiator(CREDS["alice"], VALIDATOR, crypto_sessions=SPECS, id_r=id_r)
    if method == "dhhmac":
        return DhHmacInitiator(PAIR_PSK[("alice", to)], crypto_sessions=SPECS, id_i=uri_id("alice"), id_r=id_r)
    if method == "rsa-r":
        return RsaRInitiator(CREDS["alice"], validator=VALIDATOR, crypto_sessions=SPECS, id_r=id_r)
    return SakkeInitiator(SAKKE["alice"], URI[to], crypto_sessions=[CryptoSessionSpec(ssrc=0x11111111, cs_id=1)])


def responder(method: str, who: str) -> Responder:
    """*who*'s Responder for a call from Alice."""
    if method == "psk":
        return PskResponder(PAIR_PSK[("alice", who)], id_r=uri_id(who))
    if method == "pk":
        return PkResponder(CREDS[who], VALIDATOR)
    if method == "dh":
        return DhResponder(CREDS[who], VALIDATOR, id_r=uri_id(who))
    if method == "dhhmac":
        return DhHmacResponder(PAIR_PSK[("alice", who)], id_r=uri_id(who))
    if method == "rsa-r":
        return RsaRResponder(CREDS[who], VALIDATOR, id_r=uri_id(who))
    return SakkeResponder(SAKKE[who], initiator_uri=URI["alice"])


#: Retargeting: Carol's Error no for Bob's I_MESSAGE (RFC 3830 §6.12: 0 Auth failure, 7 ID not supported).
RETARGET_ERROR = {"psk": 0, "pk": 0, "dh": 7, "dhhmac": 7, "rsa-r": 7, "sakke": 7}


@pytest.mark.parametrize("method", list(RETARGET_ERROR))
def test_retargeted_i_message_is_refused_by_the_diverted_to_party(method: str) -> None:
    """Bob's I_MESSAGE at Carol's phone: the MIKEY Error (sent in a 488) and no keys."""
    i_message = initiator(method, "bob").create_message(T0)
    carol = responder(method, "carol")
    with pytest.raises(MikeyError) as info:
        carol.receive(i_message, T0)
    assert error_nos(info.value) == [RETARGET_ERROR[method]]
    assert carol.result is None


@pytest.mark.parametrize("method", ["dh", "rsa-r"])
def test_caller_that_names_bob_refuses_carols_answer(method: str) -> None:
    """Methods where Carol could answer with her own key (her certificate, her DHr or TGK): a caller
    that names IDr refuses it (RFC 3830 §3.3, RFC 4738 §3.4); one that does not would be keyed with
    Carol -- authenticated as Carol, so the phone must check ``responder_id`` against the called AOR."""
    ini = initiator(method, "bob")
    i_message = ini.create_message(T0)
    # Carol's phone without an IDr check of its own (no id_r) answers as Carol
    carol = DhResponder(CREDS["carol"], VALIDATOR) if method == "dh" else RsaRResponder(CREDS["carol"], VALIDATOR)
    with pytest.raises(MikeyError) as info:
        carol.receive(i_message, T0)  # IDr = Bob: Carol's Responder refuses it too
    assert error_nos(info.value) == [7]
    anonymous = initiator(method, "bob", name_responder=False)
    out = carol.__class__(CREDS["carol"], VALIDATOR).receive(anonymous.create_message(T0), T0)
    assert anonymous.receive(out.response or b"", T0).responder_id == URI["carol"].encode()


@pytest.mark.parametrize("method", list(RETARGET_ERROR))
def test_after_a_302_the_caller_rekeys_to_carol(method: str) -> None:
    """302 Moved Temporarily: a new INVITE with a new I_MESSAGE for Carol's identity (RFC 3261 §8.1.3.4)."""
    ini = initiator(method, "carol")
    out = responder(method, "carol").receive(ini.create_message(T0), T0)
    mine = ini.receive(out.response, T0) if out.response is not None else ini.result
    assert out.result.crypto_sessions[0].master_key == mine.crypto_sessions[0].master_key
    assert mine.responder_id in (None, URI["carol"].encode())
    assert out.result.initiator_id in (None, URI["alice"].encode())


# --- TICKET: the KMS resolves a ticket only for the Responders its policy names (RFC 6043 §4.2.3) ----------


@dataclass
class TicketWorld:
    kms: TicketKms
    psks: dict[str, bytes]


def ticket_world() -> TicketWorld:
    psks = {n: bytes([i + 1]) * 16 for i, n in enumerate(NAMES)}
    store = InMemoryTicketStore()
    for n in NAMES:
        store.add_credential(TicketCredential(URI[n].encode(), psks[n], n.encode()))
    store.add_protection_key(TicketProtectionKey(b"tpk", bytes(range(100, 116))))
    return TicketWorld(TicketKms(store, identity=b"kms.example.com", rng=random.Random(5).randbytes), psks)


def ticket_call(world: TicketWorld, to: str, answerer: str) -> tuple[TicketInitiator, bytes]:
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(T0) + 2208988800 + 3600).to_bytes(4, "big"))
    policy = TicketPolicy(ticket_flags("DEFHNO"), (IdrPayload(2, IDType.URI, URI[to].encode()),), end=end)
    req = TicketRequester(world.psks["alice"], policy, id_i=URI["alice"].encode(), kms_id=b"kms.example.com",
                          psk_id=b"alice")
    grant = req.receive(world.kms.handle(req.create_message(T0), T0) or b"", T0)
    ini = TicketInitiator(grant, id_i=URI["alice"].encode(), id_r=URI[to].encode(), crypto_sessions=SPECS)
    ti = ini.create_message(T0)
    r = TicketResponder(world.psks[answerer], id_r=URI[answerer].encode(), kms_id=b"kms.example.com",
                        psk_id=answerer.encode())
    step = r.receive(ti, T0)
    out = r.receive_resolve(world.kms.handle(step.resolve_init or b"", T0) or b"", T0)
    return ini, out.response or b""


def test_ticket_retargeted_to_carol_is_refused_and_a_302_rekeys() -> None:
    world = ticket_world()
    with pytest.raises(PeerError) as info:
        ticket_call(world, "bob", "carol")  # the KMS will not resolve Bob's ticket for Carol
    assert info.value.err_nos == [12]  # RESOLVE_INIT refused: Unspecified error (RFC 6043 §5.4)
    ini, response = ticket_call(world, "carol", "carol")
    assert ini.receive(response, T0).responder_id == URI["carol"].encode()


# --- IBAKE: retargeting is the Initiator's policy (RFC 6267 §7.4) -------------------------------------------


def test_ibake_retargeting_needs_the_callers_consent() -> None:
    params, master = ibe.bf_setup(1024)
    psks = {URI[n].encode(): n.encode() * 8 for n in NAMES}
    kms = IbakeKms(master, psks, identity=b"kms.example.com")

    def creds(name: str) -> IbakeCredentials:
        req = IbakeKeyRequest(psks[URI[name].encode()], [URI[name].encode()], b"kms.example.com", params)
        return IbakeCredentials(params, req.receive(kms.handle(req.create_message(T0), T0) or b"", T0).private_keys)

    alice, carol_keys = creds("alice"), creds("carol")
    strict = IbakeInitiator(alice, URI["alice"].encode(), URI["bob"].encode())
    r1 = IbakeResponder(carol_keys, URI["carol"].encode()).receive(strict.create_message(T0), T0).response or b""
    with pytest.raises(MikeyError) as info:  # Carol could not read it and answers as Carol: not whom Alice called
        strict.receive(r1, T0)
    assert info.value.err_no == 7
    lenient = IbakeInitiator(alice, URI["alice"].encode(), URI["bob"].encode(),
                             answers=answer_policy(retargets={URI["carol"].encode()}))
    carol = IbakeResponder(carol_keys, URI["carol"].encode())
    step = lenient.receive(carol.receive(lenient.create_message(T0), T0).response or b"", T0)
    done = lenient.receive(carol.receive(step.response or b"", T0).response or b"", T0)
    assert done.confirmed and done.result is not None and done.result.extras["answer"] == "retargeted"
    assert carol.result is not None
    assert carol.result.crypto_sessions[0].master_key == done.result.crypto_sessions[0].master_key


# --- the use case with real phones: Kamailio retargets or redirects (302) Bob's calls to Carol ----------------


#: Carol's MIKEY Error no for Bob's retargeted I_MESSAGE, per method through phones (TICKET: the KMS's 12;
#: IBAKE: Carol answers as herself and Alice's phone refuses the answer with 7).
PHONE_RETARGET_ERROR = {**RETARGET_ERROR, "ticket": 12, "ibake": 7}


@pytest.fixture
def start_proxy(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Skips without Kamailio (tests/sipproxy.py; fails under CI); the use case starts its own with divert options."""
    factory: Callable[..., Any] = request.getfixturevalue("kamailio_factory")
    return factory


@pytest.mark.parametrize("method", list(PHONE_RETARGET_ERROR))
def test_use_case_with_phones(method: str, tmp_path: Path, start_proxy: Callable[..., Any]) -> None:
    from mikey.sip.usecases import Outcome, UseCaseEnv
    from mikey.sip.usecases.divert import CASE, METHODS, divert_call, observe

    start_proxy()
    assert method in METHODS
    env = UseCaseEnv("127.0.0.1", 0, "mikey.test", tmp_path / "case", timeout=8.0)
    r_alice, _, r_carol, d1 = divert_call(env, method, "retarget", packets=15)
    first, again, carol, d2 = divert_call(env, method, "302", packets=15)
    cell = observe(method, (r_alice, r_carol), (first, again, carol), d1 or d2)
    assert cell.case == CASE and cell.outcome == Outcome.REKEYED and cell.media_ok, cell.detail
    # retarget: nobody keyed, the MIKEY Error of the method
    out = next(e for e in r_alice if e["event"] == "call")
    assert out["mikey"] == "refused" and out["error_no"] == PHONE_RETARGET_ERROR[method]
    assert all(e.get("mikey") != "keyed" for e in r_carol if e["event"] == "call")
    # 302: the Contact names Carol; Alice's new call is keyed with Carol, the same keys both ends
    moved = next(e for e in first if e["event"] == "call")
    assert moved["status"] == 302 and any("carol" in c for c in moved["contacts"])
    mine, theirs = (next(e for e in ev if e["event"] == "call") for ev in (again, carol))
    assert mine["peer"].startswith("sip:carol@") and mine["fingerprints"] == theirs["fingerprints"]
