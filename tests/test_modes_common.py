"""What every mode shares: one create_message path, the response-timestamp switch, named deployed variants.

Runs each mode through the shared in-memory helper (tests/twoparty.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import pytest
from pki import ALICE_URI, BOB_URI, TwoPartyPki, two_party_pki
from pki import NOW as PKI_NOW
from twoparty import fingerprints, run

from mikey.constants import DataType
from mikey.errors import AuthenticationError, InvalidTimestampError, StateError, UnspecifiedError
from mikey.keystore import SakkeKeystore
from mikey.kms import generate_community, issue_user_keys
from mikey.modes.base import Initiator, State
from mikey.modes.dh import DhInitiator, DhResponder
from mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from mikey.modes.keytransport import (
    COMPAT_BY_MODE,
    COMPAT_FRESH_RESPONSE_TIMESTAMP,
    COMPAT_RESPONSE_RAND,
    KeyTransport,
    verification_message,
    verification_trailer,
)
from mikey.modes.pk import PkInitiator, PkResponder
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.modes.results import CryptoSessionSpec
from mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from mikey.modes.sakke import SakkeInitiator, SakkeResponder
from mikey.modes.signing import sign_message
from mikey.replay import ReplayCache
from mikey.wire import IdPayload, Message, RandPayload, SignPayload, TimestampPayload

NOW = PKI_NOW.timestamp()
PSK = bytes(range(16))


@pytest.fixture(scope="module")
def pki() -> TwoPartyPki:
    return two_party_pki("Common Modes Root")


@pytest.fixture(scope="module")
def sakke_store() -> SakkeKeystore:
    c = generate_community("kms.example.org")
    return SakkeKeystore(c.public, ALICE_URI, [issue_user_keys(c, ALICE_URI, now=NOW),
                                               issue_user_keys(c, BOB_URI, now=NOW)])


def _initiators(pki: TwoPartyPki, store: SakkeKeystore) -> dict[str, Callable[[], Initiator]]:
    return {
        "psk": lambda: PskInitiator(PSK),
        "pk": lambda: PkInitiator(pki.a, pki.bob.cert, validator=pki.validator),
        "rsa-r": lambda: RsaRInitiator(pki.a, validator=pki.validator),
        "dh": lambda: DhInitiator(pki.a, pki.validator),
        "dhhmac": lambda: DhHmacInitiator(PSK, id_r=IdPayload.uri(BOB_URI)),
        "sakke": lambda: SakkeInitiator(store, BOB_URI),
    }


@pytest.mark.parametrize("mode", ["psk", "pk", "rsa-r", "dh", "dhhmac", "sakke"])
def test_any_build_error_moves_every_initiator_to_failed(pki: TwoPartyPki, sakke_store: SakkeKeystore,
                                                         mode: str) -> None:
    """One create_message path (base): an error while building -- here a NaN clock -- leaves FAILED."""
    ini = _initiators(pki, sakke_store)[mode]()
    with pytest.raises((ValueError, OverflowError, UnspecifiedError)):
        ini.create_message(math.nan)
    assert ini.state is State.FAILED
    with pytest.raises(StateError):
        ini.create_message(NOW)


# --- the response timestamp: deployed PSK and PK responders put their own clock in T -------------


def _psk_pair(compat: frozenset[str]) -> tuple[Any, Any, Callable[[Any], bytes]]:
    ini = PskInitiator(PSK, v=True, compat=compat)
    return ini, PskResponder(PSK), lambda i: PSK


def _pk_pair(pki: TwoPartyPki, compat: frozenset[str]) -> tuple[Any, Any, Callable[[Any], bytes]]:
    ini = PkInitiator(pki.a, pki.bob.cert, validator=pki.validator, v=True, compat=compat)
    return ini, PkResponder(pki.b, pki.validator), lambda i: i.envelope_key


def _deployed_response(ini: Any, secret: bytes, response: bytes, own_t: TimestampPayload, *,
                       mac_over: TimestampPayload) -> bytes:
    """The R_MESSAGE the way deployed responders build it: their own T, V over *mac_over*'s T."""
    msg = Message.decode(response)
    transport: KeyTransport = ini.transport
    keys = transport.keys(secret, ini.csb_id, ini.rand)
    id_i = ini.id_i if getattr(ini, "send_id_i", True) else None
    trailer = verification_trailer("rfc", id_i, ini.id_r, mac_over.ts_value)
    return verification_message(int(msg.data_type), msg.header, own_t, transport.mac_alg, keys.auth_key, None,
                                 trailer)


@pytest.mark.parametrize("mode", ["psk", "pk"])
def test_fresh_response_timestamp_is_a_named_variant(pki: TwoPartyPki, mode: str) -> None:
    def pair(compat: frozenset[str]) -> tuple[Any, Any, Callable[[Any], bytes]]:
        return _psk_pair(compat) if mode == "psk" else _pk_pair(pki, compat)

    own_t = TimestampPayload.ntp_utc(NOW + 2)
    # Default: refused, and the message names the switch (library keyword and CLI flag).
    ini, res, secret = pair(frozenset())
    ex = run(ini, res, NOW, complete=False)
    assert ex.response is not None
    deployed = _deployed_response(ini, secret(ini), ex.response, own_t, mac_over=ini.timestamp)
    with pytest.raises(AuthenticationError) as err:
        ini.receive(deployed, NOW + 2)
    assert "compat={'fresh-response-timestamp'}" in str(err.value)
    assert "--compat fresh-response-timestamp" in str(err.value)
    assert ini.state is State.FAILED
    # With the switch: accepted, same keys as the Responder.
    ini, res, secret = pair(frozenset({COMPAT_FRESH_RESPONSE_TIMESTAMP}))
    ex = run(ini, res, NOW, complete=False)
    assert ex.response is not None
    deployed = _deployed_response(ini, secret(ini), ex.response, own_t, mac_over=ini.timestamp)
    result = ini.receive(deployed, NOW + 2)
    assert result.authenticated and fingerprints(result) == fingerprints(ex.outcome.result)
    # V over the Responder's own T does not bind the response to this I_MESSAGE: refused even so.
    ini, res, secret = pair(frozenset({COMPAT_FRESH_RESPONSE_TIMESTAMP}))
    ex = run(ini, res, NOW, complete=False)
    assert ex.response is not None
    wrong = _deployed_response(ini, secret(ini), ex.response, own_t, mac_over=own_t)
    with pytest.raises(AuthenticationError):
        ini.receive(wrong, NOW + 2)
    # A fresh T must still lie within the allowable clock skew.
    ini, res, secret = pair(frozenset({COMPAT_FRESH_RESPONSE_TIMESTAMP}))
    ex = run(ini, res, NOW, complete=False)
    assert ex.response is not None
    stale = _deployed_response(ini, secret(ini), ex.response, TimestampPayload.ntp_utc(NOW - 3600),
                               mac_over=ini.timestamp)
    with pytest.raises(InvalidTimestampError):
        ini.receive(stale, NOW + 2)


def test_every_mode_with_a_response_takes_the_fresh_timestamp_switch() -> None:
    for mode in ("psk", "pk", "rsa-r", "dh", "dhhmac"):
        assert COMPAT_FRESH_RESPONSE_TIMESTAMP in COMPAT_BY_MODE[mode], mode


def test_echoed_timestamp_still_accepted_with_the_switch(pki: TwoPartyPki) -> None:
    ini, res, _ = _pk_pair(pki, frozenset({COMPAT_FRESH_RESPONSE_TIMESTAMP}))
    ex = run(ini, res, NOW)
    assert ex.result is not None and fingerprints(ex.result) == fingerprints(ex.outcome.result)


# --- RSA-R: the deployed responder repeats RAND in the R_MESSAGE ----------------------------------


def _with_rand(pki: TwoPartyPki, response: bytes, rand: bytes) -> bytes:
    """Insert RAND after T and sign again as the Responder (over the message alone: rsa-r-sign-no-trailer)."""
    msg = Message.decode(response)
    payloads = list(msg.payloads[:-1])
    sign = msg.payloads[-1]
    assert isinstance(sign, SignPayload)
    at = next(i for i, p in enumerate(payloads) if isinstance(p, TimestampPayload))
    payloads.insert(at + 1, RandPayload(rand))
    return sign_message(msg.header, payloads, pki.b.rsa_private_key, s_type=int(sign.s_type))


@pytest.mark.parametrize("named", [False, True])
def test_rsa_r_response_rand_is_a_named_variant(pki: TwoPartyPki, named: bool) -> None:
    compat = {"rsa-r-sign-no-trailer"} | ({COMPAT_RESPONSE_RAND} if named else set())
    ini = RsaRInitiator(pki.a, validator=pki.validator, compat=compat)
    res = RsaRResponder(pki.b, pki.validator, compat={"rsa-r-sign-no-trailer"})
    ex = run(ini, res, NOW, complete=False)
    assert ex.response is not None and Message.decode(ex.response).data_type == DataType.RSA_R_RESP
    deployed = _with_rand(pki, ex.response, ini.rand)
    if not named:
        with pytest.raises(UnspecifiedError) as err:
            ini.receive(deployed, NOW)
        assert "compat={'response-rand'}" in str(err.value) and "--compat response-rand" in str(err.value)
        return
    result = ini.receive(deployed, NOW)
    assert fingerprints(result) == fingerprints(ex.outcome.result) and result.rand == ini.rand


def test_rsa_r_response_rand_must_repeat_the_initiators(pki: TwoPartyPki) -> None:
    """RFC 4738 §3.5: in unicast both sides key with the I_MESSAGE's RAND; another RAND is refused."""
    ini = RsaRInitiator(pki.a, validator=pki.validator, compat={"rsa-r-sign-no-trailer", COMPAT_RESPONSE_RAND})
    res = RsaRResponder(pki.b, pki.validator, compat={"rsa-r-sign-no-trailer"})
    ex = run(ini, res, NOW, complete=False)
    assert ex.response is not None
    other = bytes(b ^ 0xFF for b in ini.rand)
    with pytest.raises(UnspecifiedError, match="other than the I_MESSAGE's"):
        ini.receive(_with_rand(pki, ex.response, other), NOW)


def test_round_trip_through_the_helper_every_responding_mode(pki: TwoPartyPki) -> None:
    pairs: list[tuple[Any, Any]] = [
        (PskInitiator(PSK, v=True), PskResponder(PSK)),
        (PkInitiator(pki.a, pki.bob.cert, validator=pki.validator, v=True), PkResponder(pki.b, pki.validator)),
        (RsaRInitiator(pki.a, validator=pki.validator), RsaRResponder(pki.b, pki.validator)),
        (DhInitiator(pki.a, pki.validator), DhResponder(pki.b, pki.validator)),
        (DhHmacInitiator(PSK, id_r=IdPayload.uri(BOB_URI)), DhHmacResponder(PSK)),
    ]
    for ini, res in pairs:
        ex = run(ini, res, NOW)
        assert ex.result is not None, type(ini).__name__
        assert fingerprints(ex.result) == fingerprints(ex.outcome.result)
        assert ini.state is State.DONE and res.state is State.DONE


# --- the shared constructor keywords (base.*Keywords, keytransport.KeyKeywords) ----------------------


def _responders(pki: TwoPartyPki, store: SakkeKeystore) -> dict[str, Callable[..., Any]]:
    return {
        "psk": lambda **kw: PskResponder(PSK, **kw),
        "pk": lambda **kw: PkResponder(pki.b, pki.validator, **kw),
        "rsa-r": lambda **kw: RsaRResponder(pki.b, pki.validator, **kw),
        "dh": lambda **kw: DhResponder(pki.b, pki.validator, **kw),
        "dhhmac": lambda **kw: DhHmacResponder(PSK, **kw),
        "sakke": lambda **kw: SakkeResponder(store, **kw),
    }


@pytest.mark.parametrize("mode", ["psk", "pk", "rsa-r", "dh", "dhhmac", "sakke"])
def test_every_responder_takes_the_shared_keywords(pki: TwoPartyPki, sakke_store: SakkeKeystore, mode: str) -> None:
    cache = ReplayCache()
    res = _responders(pki, sakke_store)[mode](own_ssrcs=[0x0A0B0C0D], replay_cache=cache, clock_skew=7.0,
                                              rng=bytes)
    assert (res.own_ssrcs, res.replay_cache, res.clock_skew, res.rng) == ([0x0A0B0C0D], cache, 7.0, bytes)
    if mode != "sakke":  # SAKKE's identity is its key source's URI
        id_r = IdPayload.uri("sip:other@example.org")
        assert _responders(pki, sakke_store)[mode](id_r=id_r).id_r == id_r


@pytest.mark.parametrize(("mode", "unused"), [
    ("sakke", "id_r"),       # the SAKKE Responder has no IDr of its own
    ("psk", "tgk"),          # only the RSA-R Responder sends a key
    ("dh", "encr_alg"),
    ("pk", "compat_typo"),
])
def test_a_responder_refuses_a_keyword_it_does_not_use(pki: TwoPartyPki, sakke_store: SakkeKeystore, mode: str,
                                                       unused: str) -> None:
    with pytest.raises(TypeError, match=unused):
        _responders(pki, sakke_store)[mode](**{unused: None})


def test_initiators_take_the_shared_offer_keywords(pki: TwoPartyPki, sakke_store: SakkeKeystore) -> None:
    offer: dict[str, Any] = {"crypto_sessions": [CryptoSessionSpec(ssrc=0x01020304)], "csb_id": 0x0BADF00D,
                             "rand": bytes(16), "rng": os.urandom}
    psk = PskInitiator(PSK, **offer)
    rsa_r = RsaRInitiator(pki.a, validator=pki.validator, id_r=IdPayload.uri(BOB_URI), clock_skew=9.0, **offer)
    sakke = SakkeInitiator(sakke_store, BOB_URI, **offer)
    for ini in (psk, rsa_r, sakke):
        assert (ini.csb_id, ini.rand, [s.ssrc for s in ini.specs]) == (0x0BADF00D, bytes(16), [0x01020304])
    assert rsa_r.clock_skew == 9.0 and rsa_r.id_r == IdPayload.uri(BOB_URI)
    with pytest.raises(TypeError, match="id_i"):
        SakkeInitiator(sakke_store, BOB_URI, id_i=IdPayload.uri(ALICE_URI))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="tgk"):
        RsaRInitiator(pki.a, validator=pki.validator, tgk=bytes(16))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="replay_cache"):
        PskInitiator(PSK, replay_cache=ReplayCache())  # type: ignore[call-arg]
