"""Call forking at the mode level: one I_MESSAGE, two devices of the called user, two answers.

A forking proxy (RFC 3261 §16.7) delivers the caller's one I_MESSAGE (RFC 4567 §4.1) to every
registered device.  Per method this shows what each device ends up with and what the Initiator
can do with several answers (:meth:`mikey.modes.base.Initiator.fork`, TICKET's ``receive_fork``
(RFC 6043 §5.1.1), IBAKE's legs (RFC 6267 §7.3)):

* own keys per device: DH and DH-HMAC (each device's DHr, RFC 3830 §3.3, RFC 4650), RSA-R (each
  device picks its TGK, RFC 4738 §3.6), TICKET with key forking (I flag), IBAKE (each ECCPTr);
* the same key for every device: PSK and PK (the I_MESSAGE carries the TGK, RFC 3830 §3.1, §3.2),
  SAKKE (the SSV is encapsulated to the identity, RFC 6509 §2.2), TICKET without key forking.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pki import NOW, two_party_pki

from mikey.constants import IDType, TSRole, TSType
from mikey.crypto import ibe
from mikey.errors import AuthenticationError, MikeyError, StateError
from mikey.keystore import SakkeKeystore
from mikey.kms import generate_community, issue_user_keys
from mikey.modes.base import CryptoSessionSpec, Initiator, State
from mikey.modes.dh import DhInitiator, DhResponder
from mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from mikey.modes.ibake import IbakeCredentials, IbakeInitiator, IbakeResponder
from mikey.modes.ibake_keys import IbakeKeyRequest, IbakeKms
from mikey.modes.pk import PkInitiator, PkResponder
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.modes.results import ExchangeResult
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
from mikey.sip.usecases import Outcome
from mikey.wire import IdPayload, IdrPayload, TrPayload

T0 = NOW.timestamp()
ALICE, BOB = "sip:alice@example.com", "sip:bob@example.com"
PKI = two_party_pki("Fork Test Root")
PSK = bytes(range(16))
SSRC_A = 0x11111111
DEVICE_SSRCS = (0x22222222, 0x33333333)


def uri(u: str) -> IdPayload:
    return IdPayload(IDType.URI, u.encode())


def specs() -> list[CryptoSessionSpec]:
    """The caller's stream and one the answering device fills in (RFC 3830 §6.1.1)."""
    return [CryptoSessionSpec(ssrc=SSRC_A), CryptoSessionSpec(ssrc=0)]


def keys_of(result: ExchangeResult) -> list[tuple[bytes, bytes]]:
    """The SRTP master keys and salts of every crypto session (what media is keyed with)."""
    return [(cs.master_key, cs.master_salt) for cs in result.crypto_sessions]


@dataclass
class Forked:
    """What a two-device fork gave: each device's keys and the Initiator's keys for each answer."""

    devices: list[ExchangeResult]
    initiator: list[ExchangeResult]


# --- the methods whose I_MESSAGE gets one response (PSK/PK with V, DH, DH-HMAC, RSA-R, SAKKE) ---------------


OneShot = tuple[Callable[[], Initiator], Callable[[int], Any]]


def _one_shot_cases() -> dict[str, OneShot]:
    community = generate_community("kms.fork.example")
    alice_ks = SakkeKeystore(community.public, ALICE, [issue_user_keys(community, ALICE, now=T0)])
    bob_ks = SakkeKeystore(community.public, BOB, [issue_user_keys(community, BOB, now=T0)])
    v = PKI.validator
    return {
        "psk": (lambda: PskInitiator(PSK, crypto_sessions=specs(), v=True),
                lambda d: PskResponder(PSK, own_ssrcs=[DEVICE_SSRCS[d]])),
        "pk": (lambda: PkInitiator(PKI.a, PKI.bob.cert, validator=v, v=True, crypto_sessions=specs(), id_r=uri(BOB)),
               lambda d: PkResponder(PKI.b, v, own_ssrcs=[DEVICE_SSRCS[d]])),
        "dh": (lambda: DhInitiator(PKI.a, v, crypto_sessions=specs(), id_r=uri(BOB)),
               lambda d: DhResponder(PKI.b, v, own_ssrcs=[DEVICE_SSRCS[d]])),
        "dhhmac": (lambda: DhHmacInitiator(PSK, crypto_sessions=specs(), id_i=uri(ALICE), id_r=uri(BOB)),
                   lambda d: DhHmacResponder(PSK, own_ssrcs=[DEVICE_SSRCS[d]], id_r=uri(BOB))),
        "rsa-r": (lambda: RsaRInitiator(PKI.a, validator=v, crypto_sessions=specs()),
                  lambda d: RsaRResponder(PKI.b, v, own_ssrcs=[DEVICE_SSRCS[d]])),
        "sakke": (lambda: SakkeInitiator(alice_ks, BOB, crypto_sessions=[CryptoSessionSpec(ssrc=SSRC_A, cs_id=1)]),
                  lambda d: SakkeResponder(bob_ks, initiator_uri=ALICE, own_ssrcs=[DEVICE_SSRCS[d]])),
    }


ONE_SHOT = _one_shot_cases()


def fork_one_shot(method: str) -> Forked:
    """One I_MESSAGE to two devices; the first answer to the Initiator, the second to a fork of it."""
    make_initiator, make_device = ONE_SHOT[method]
    ini = make_initiator()
    i_message = ini.create_message(T0)
    outcomes = [make_device(d).receive(i_message, T0) for d in (0, 1)]
    if outcomes[0].response is None:  # SAKKE: no response; the Initiator's keys are every device's
        with pytest.raises(StateError, match="takes no response"):
            ini.fork()
        return Forked([o.result for o in outcomes], [ini.result, ini.result])
    leg = ini.fork()  # forked before the first answer: a copy waiting for one answer of its own
    first = ini.receive(outcomes[0].response, T0)
    second = leg.receive(outcomes[1].response or b"", T0)
    third = ini.fork().receive(outcomes[1].response or b"", T0)  # and after it: the same keys again
    assert keys_of(third) == keys_of(second)
    return Forked([o.result for o in outcomes], [first, second])


# --- TICKET (RFC 6043 §5.1.1) and IBAKE (RFC 6267 §7.3) have their own multi-answer APIs -----------------------


TICKET_KMS_ID = b"kms.fork.example"
PSK_A, PSK_DEV = bytes(range(16, 32)), (bytes(range(32, 48)), bytes(range(48, 64)))


def fork_ticket(forking: bool) -> Forked:
    store = InMemoryTicketStore()
    store.add_credential(TicketCredential(ALICE.encode(), PSK_A, b"alice"))
    for d, psk in enumerate(PSK_DEV):
        store.add_credential(TicketCredential(BOB.encode(), psk, f"bob-{d}".encode()))
    store.add_protection_key(TicketProtectionKey(b"tpk", bytes(range(100, 116))))
    kms = TicketKms(store, identity=TICKET_KMS_ID, rng=random.Random(7).randbytes)
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(T0) + 2208988800 + 3600).to_bytes(4, "big"))
    flags = "DEFHINO" if forking else "DEFHJNO"  # I: key forking; J: the ticket may be resolved again
    policy = TicketPolicy(ticket_flags(flags), (IdrPayload(2, IDType.URI, BOB.encode()),), end=end)
    req = TicketRequester(PSK_A, policy, id_i=ALICE.encode(), kms_id=TICKET_KMS_ID, psk_id=b"alice")
    grant = req.receive(kms.handle(req.create_message(T0), T0) or b"", T0)
    ini = TicketInitiator(grant, id_i=ALICE.encode(), id_r=BOB.encode(), crypto_sessions=specs())
    ti = ini.create_message(T0)
    devices, answers = [], []
    for d, psk in enumerate(PSK_DEV):
        r = TicketResponder(psk, id_r=BOB.encode(), kms_id=TICKET_KMS_ID, psk_id=f"bob-{d}".encode(),
                            own_ssrcs=[DEVICE_SSRCS[d]])
        step = r.receive(ti, T0)
        out = r.receive_resolve(kms.handle(step.resolve_init or b"", T0) or b"", T0)
        devices.append(out.result)
        answers.append(out.response or b"")
    first = ini.receive(answers[0], T0)
    if not forking:  # without key forking there is nothing to tell the answers apart by
        with pytest.raises(StateError):
            ini.receive_fork(answers[1], T0)
        return Forked(devices, [first, first])
    return Forked(devices, [first, ini.receive_fork(answers[1], T0)])


IBAKE_KMS_ID = b"kms.fork.example"


def fork_ibake() -> Forked:
    params, master = ibe.bf_setup(1024)  # p 512 bits: fast
    psks = {ALICE.encode(): b"A" * 16, BOB.encode(): b"B" * 16}
    kms = IbakeKms(master, psks, identity=IBAKE_KMS_ID)

    def creds(user: bytes) -> IbakeCredentials:
        req = IbakeKeyRequest(psks[user], [user], IBAKE_KMS_ID, params)
        return IbakeCredentials(params, req.receive(kms.handle(req.create_message(T0), T0) or b"", T0).private_keys)

    bob = creds(BOB.encode())
    ini = IbakeInitiator(creds(ALICE.encode()), ALICE.encode(), BOB.encode(), crypto_sessions=specs())
    i1 = ini.create_message(T0)
    devices, initiator = [], []
    for d in (0, 1):  # both devices hold Bob's K_PR and answer as Bob, each with its own ECCPTr
        r = IbakeResponder(bob, own_ssrcs=[DEVICE_SSRCS[d]])
        r1 = r.receive(i1, T0).response or b""
        step = ini.receive(r1, T0)
        r2 = r.receive(step.response or b"", T0)
        done = ini.receive(r2.response or b"", T0)
        assert done.confirmed and done.leg == d and done.result is not None
        devices.append(r2.result)
        initiator.append(done.result)
    return Forked([d for d in devices if d is not None], initiator)


def forked(method: str) -> Forked:
    if method in ONE_SHOT:
        return fork_one_shot(method)
    if method == "ticket":
        return fork_ticket(True)
    if method == "ticket-no-forking":
        return fork_ticket(False)
    return fork_ibake()


#: The method's forking outcome (README: call forking).
EXPECTED = {
    "psk": Outcome.SAME_KEY, "pk": Outcome.SAME_KEY, "sakke": Outcome.SAME_KEY, "ticket-no-forking": Outcome.SAME_KEY,
    "dh": Outcome.OWN_KEYS, "dhhmac": Outcome.OWN_KEYS, "rsa-r": Outcome.OWN_KEYS, "ticket": Outcome.OWN_KEYS,
    "ibake": Outcome.OWN_KEYS,
}


@pytest.mark.parametrize("method", list(EXPECTED))
def test_forking_each_device_keys_as_the_method_allows(method: str) -> None:
    f = forked(method)
    assert len(f.devices) == 2 and len(f.initiator) == 2
    # the Initiator holds the keys of whichever device answered (the 200 OK's R_MESSAGE) ...
    for device, mine in zip(f.devices, f.initiator, strict=True):
        if method != "sakke":  # SAKKE's devices fill in no SSRC: compare the Initiator's crypto session
            assert keys_of(device) == keys_of(mine)
        else:
            assert keys_of(device)[0] == keys_of(mine)[0]
    # ... and the devices have their own keys or the same one
    same = keys_of(f.devices[0])[0] == keys_of(f.devices[1])[0]
    assert (Outcome.SAME_KEY if same else Outcome.OWN_KEYS) == EXPECTED[method]
    if not same:  # no crypto session of one device's keys opens the other's
        assert not {k for k, _ in keys_of(f.devices[0])} & {k for k, _ in keys_of(f.devices[1])}


# --- Initiator.fork() itself --------------------------------------------------------------------------------


def test_fork_before_the_i_message_is_refused() -> None:
    with pytest.raises(StateError, match="create_message"):
        DhInitiator(PKI.a, PKI.validator).fork()


@pytest.mark.parametrize("method", ["psk", "pk"])
def test_fork_of_a_message_without_response_is_refused(method: str) -> None:
    ini: Initiator = (PskInitiator(PSK) if method == "psk"
                      else PkInitiator(PKI.a, PKI.bob.cert, validator=PKI.validator))
    ini.create_message(T0)
    assert ini.state is State.DONE
    with pytest.raises(StateError, match="takes no response"):
        ini.fork()


def test_fork_leaves_the_original_waiting_and_each_leg_takes_one_answer() -> None:
    make_initiator, make_device = ONE_SHOT["dh"]
    ini = make_initiator()
    i_message = ini.create_message(T0)
    answers = [make_device(d).receive(i_message, T0).response or b"" for d in (0, 1)]
    leg = ini.fork()
    assert leg is not ini and leg.state is State.WAIT_RESPONSE
    with pytest.raises(StateError):  # a leg has no keys before its answer
        _ = leg.result
    leg.receive(answers[1], T0)
    assert ini.state is State.WAIT_RESPONSE  # the original still waits for its own answer
    with pytest.raises(StateError):  # one answer per leg
        leg.receive(answers[0], T0)
    assert keys_of(ini.receive(answers[0], T0)) != keys_of(leg.result)


def test_a_forged_answer_fails_its_leg_only() -> None:
    """An answer that does not verify (here: its DHi echo altered) fails its leg; the others still key."""
    make_initiator, make_device = ONE_SHOT["dh"]
    ini = make_initiator()
    i_message = ini.create_message(T0)
    good = make_device(0).receive(i_message, T0).response or b""
    forged = bytearray(good)
    forged[len(forged) // 2] ^= 0x01
    leg = ini.fork()
    with pytest.raises(MikeyError):
        leg.receive(bytes(forged), T0)
    assert leg.state is State.FAILED
    again = leg.fork()  # a failed leg that took an answer may still be forked for the next answer
    assert keys_of(again.receive(good, T0)) == keys_of(ini.receive(good, T0))


def test_a_failed_build_cannot_be_forked() -> None:
    ini = DhInitiator(PKI.a, PKI.validator)
    with pytest.raises(ValueError):  # NaN is no time: the I_MESSAGE is never built
        ini.create_message(float("nan"))
    assert ini.state is State.FAILED
    with pytest.raises(StateError, match="no I_MESSAGE"):
        ini.fork()


def test_fork_of_a_responder_answer_for_another_caller_is_refused() -> None:
    """A fork keeps the I_MESSAGE's binding: an answer to another caller's I_MESSAGE fails (RFC 3830 §3.3)."""
    make_initiator, make_device = ONE_SHOT["dh"]
    ini, other = make_initiator(), make_initiator()
    ini.create_message(T0)
    answer_to_other = make_device(0).receive(other.create_message(T0), T0).response or b""
    with pytest.raises(AuthenticationError):
        ini.fork().receive(answer_to_other, T0)
