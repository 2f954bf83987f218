"""MIKEY-TICKET Transfer carried in SDP offer/answer (RFC 4567 a=key-mgmt:mikey, RFC 6043 §7), and
SRTP media both ways with the keys each side derived (the Resolve travels to the KMS separately)."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from mikey.constants import IDRole, IDType, TSRole, TSType
from mikey.modes.base import CryptoSessionSpec
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
from mikey.sdp import make_sdp, mikey_messages
from mikey.session import CryptoSessionBundle
from mikey.wire import IdrPayload, TrPayload

NOW = 1_700_000_000.0
ALICE, BOB, KMS_ID = b"sip:alice@example.com", b"sip:bob@example.com", b"kms.example.com"
ALICE_SSRC, BOB_SSRC = 0x11223344, 0x55667788


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def rtp(ssrc: int, seq: int, payload: bytes) -> bytes:
    return struct.pack(">BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def test_transfer_in_sdp_and_srtp_both_ways() -> None:
    store = InMemoryTicketStore()
    store.add_credential(TicketCredential(ALICE, bytes(16), b"alice"))
    store.add_credential(TicketCredential(BOB, bytes(range(16)), b"bob"))
    store.add_protection_key(TicketProtectionKey(b"tpk", bytes(range(100, 116))))
    kms = TicketKms(store, identity=KMS_ID, rng=seeded(7))
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(NOW) + 2208988800 + 3600).to_bytes(4, "big"))
    policy = TicketPolicy(ticket_flags("DEFGHINO"), (IdrPayload(IDRole.RESPONDER, IDType.URI, BOB),), end=end)
    req = TicketRequester(bytes(16), policy, id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(1))
    grant = req.receive(kms.handle(req.create_message(NOW), NOW) or b"", NOW)

    alice = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2), crypto_sessions=[
        CryptoSessionSpec(ssrc=ALICE_SSRC, cs_id=1), CryptoSessionSpec(ssrc=0, cs_id=2)])
    offer = make_sdp("call", "192.0.2.1", key_mgmt=alice.create_message(NOW))
    (attr,) = mikey_messages(offer)
    assert attr.level == "session" and "a=key-mgmt:mikey " in offer

    bob = TicketResponder(bytes(range(16)), id_r=BOB, kms_id=KMS_ID, psk_id=b"bob", rng=seeded(3),
                          own_ssrcs=[BOB_SSRC])
    step = bob.receive(attr.data, NOW)
    out = bob.receive_resolve(kms.handle(step.resolve_init or b"", NOW) or b"", NOW)
    answer = make_sdp("call", "192.0.2.2", key_mgmt=out.response)
    mine = alice.receive(mikey_messages(answer)[0].data, NOW)
    assert [cs.ssrc for cs in mine.crypto_sessions] == [ALICE_SSRC, BOB_SSRC]

    a_bundle, b_bundle = CryptoSessionBundle(mine), CryptoSessionBundle(out.result)
    for seq, (tx, rx, cs_id, ssrc) in enumerate(((a_bundle, b_bundle, 1, ALICE_SSRC),
                                                 (b_bundle, a_bundle, 2, BOB_SSRC)), 1):
        packet = rtp(ssrc, seq, b"media payload %d" % seq)
        protected = tx.sender(cs_id).protect(packet)
        assert protected != packet and len(protected) > len(packet)
        assert rx.receiver(cs_id).unprotect(protected) == packet
