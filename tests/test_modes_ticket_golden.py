"""Golden MIKEY-TICKET messages (tests/vectors/mikey_ticket_golden.json): one full exchange (mode 1,
key forking, RANDRr) built from fixed keys, seeds and time.  There are no public MIKEY-TICKET vectors;
these bytes were produced by mikey.modes.ticket and every MAC and key in them is checked against the
reference derivations of test_modes_ticket.py (RFC 6043 §5.1, A.2) in test_golden_messages_check_out.

Regenerate after a deliberate wire change: ``python tests/test_modes_ticket_golden.py --write``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

from test_modes_ticket import (
    AUTH,
    ENCR,
    SALT,
    SALT_C,
    TEK_C,
    ref_fork,
    ref_msg_key,
    ref_tgk_key,
)

from mikey.constants import DataType, IDRole, IDType, RANDRole, TSRole, TSType
from mikey.crypto import kemac as kemac_crypto
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
from mikey.wire import (
    IdrPayload,
    KemacPayload,
    Message,
    RandrPayload,
    TicketPayload,
    TimestampPayload,
    TrPayload,
    decode_sub_payloads,
)

GOLDEN = Path(__file__).parent / "vectors" / "mikey_ticket_golden.json"
NOW = 1_700_000_000.0
ALICE, BOB, KMS_ID = b"sip:alice@example.com", b"sip:bob@example.com", b"kms.example.com"
PSK_A, PSK_B, TPK = bytes(range(16)), bytes(range(16, 32)), bytes(range(100, 116))


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def build() -> dict[str, str]:
    store = InMemoryTicketStore()
    store.add_credential(TicketCredential(ALICE, PSK_A, b"alice"))
    store.add_credential(TicketCredential(BOB, PSK_B, b"bob-phone"))
    store.add_protection_key(TicketProtectionKey(b"kms-tpk", TPK))
    kms = TicketKms(store, identity=KMS_ID, rng=seeded(7))
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(NOW) + 2208988800 + 3600).to_bytes(4, "big"))
    pol = TicketPolicy(ticket_flags("DEFGHINO"), (IdrPayload(IDRole.RESPONDER, IDType.URI, BOB),), end=end)
    req = TicketRequester(PSK_A, pol, id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(1), csb_id=0x01020304)
    out: dict[str, str] = {}
    out["request_init"] = req.create_message(NOW).hex()
    out["request_resp"] = (kms.handle(bytes.fromhex(out["request_init"]), NOW) or b"").hex()
    grant = req.receive(bytes.fromhex(out["request_resp"]), NOW)
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2), csb_id=0x0A0B0C0D,
                          crypto_sessions=[CryptoSessionSpec(ssrc=0x11223344, cs_id=1)])
    out["transfer_init"] = ini.create_message(NOW).hex()
    r = TicketResponder(PSK_B, id_r=BOB, kms_id=KMS_ID, psk_id=b"bob-phone", rng=seeded(3), own_ssrcs=[0x55667788])
    out["resolve_init"] = (r.receive(bytes.fromhex(out["transfer_init"]), NOW).resolve_init or b"").hex()
    out["resolve_resp"] = (kms.handle(bytes.fromhex(out["resolve_init"]), NOW) or b"").hex()
    outcome = r.receive_resolve(bytes.fromhex(out["resolve_resp"]), NOW)
    out["transfer_resp"] = (outcome.response or b"").hex()
    res = ini.receive(bytes.fromhex(out["transfer_resp"]), NOW)
    assert res.crypto_sessions[0].master_key == outcome.result.crypto_sessions[0].master_key
    out["srtp_master_key"] = res.crypto_sessions[0].master_key.hex()
    out["srtp_master_salt"] = res.crypto_sessions[0].master_salt.hex()
    return out


def _load() -> dict[str, str]:
    data: dict[str, str] = json.loads(GOLDEN.read_text())["messages"]
    return data


def test_golden_messages_are_reproduced() -> None:
    assert build() == _load()


def test_golden_messages_check_out() -> None:
    """From the stored bytes alone (PSKs known): every MAC and the SRTP keys by the reference derivation."""
    g = {k: bytes.fromhex(v) for k, v in _load().items()}
    sha1 = hashlib.sha1
    ri_m = Message.decode(g["request_init"])
    rand_i = ri_m.find(RandrPayload).rand  # type: ignore[union-attr]
    csb = ri_m.csb_id
    assert g["request_init"][-20:] == hmac.new(ref_msg_key(PSK_A, AUTH, csb, 1, rand_i, None, 20),
                                               g["request_init"][:-20] + ALICE + KMS_ID, sha1).digest()
    assert g["request_resp"][-20:] == hmac.new(ref_msg_key(PSK_A, AUTH, csb, 2, rand_i, None, 20),
                                               g["request_resp"][:-20] + g["request_init"], sha1).digest()
    rr_m = Message.decode(g["request_resp"])
    kem, t = rr_m.find(KemacPayload), rr_m.find(TimestampPayload)
    assert kem is not None and t is not None
    plain = kemac_crypto.decrypt(kem.encr_alg, ref_msg_key(PSK_A, ENCR, csb, 2, rand_i, None, 16),
                                 ref_msg_key(PSK_A, SALT, csb, 2, rand_i, None, 14), csb, t.ts_value, kem.encr_data)
    mpk_i, mpk_r, tgk = (s.key for s in decode_sub_payloads(plain))  # type: ignore[attr-defined]
    ti_m = Message.decode(g["transfer_init"])
    assert ti_m.find(TicketPayload).ticket_data == rr_m.find(TicketPayload).ticket_data  # type: ignore[union-attr]
    ti_rand = next(p.rand for p in ti_m.payloads if isinstance(p, RandrPayload) and p.rand_role == RANDRole.INITIATOR)
    rs_m = Message.decode(g["resolve_resp"])
    rand_kms = next(p.rand for p in rs_m.payloads if isinstance(p, RandrPayload) and p.rand_role == RANDRole.KMS)
    tr_m = Message.decode(g["transfer_resp"])
    assert tr_m.data_type == DataType.TRANSFER_RESP
    rand_r = next(p.rand for p in tr_m.payloads if isinstance(p, RandrPayload) and p.rand_role == RANDRole.RESPONDER)
    mpk_r_f = ref_fork(mpk_r, 0x2B288856, BOB, rand_kms)
    assert g["transfer_resp"][-20:] == hmac.new(ref_msg_key(mpk_r_f, AUTH, ti_m.csb_id, 2, ti_rand, rand_r, 20),
                                                g["transfer_resp"][:-20] + g["transfer_init"], sha1).digest()
    tgk_f = ref_fork(tgk, 0x1512B54A, BOB, rand_kms)
    assert g["srtp_master_key"] == ref_tgk_key(tgk_f, TEK_C, 1, ti_rand, rand_r, 16)
    assert g["srtp_master_salt"] == ref_tgk_key(tgk_f, SALT_C, 1, ti_rand, rand_r, 14)
    assert mpk_i != mpk_r


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps({
        "description": "MIKEY-TICKET (RFC 6043) golden exchange: mode 1, key forking (I), RANDRr (G). "
                       "PSK Alice-KMS 000102..0f, PSK Bob-KMS 101112..1f, TPK 6465..73, time 1700000000 "
                       "(Unix). Made by mikey.modes.ticket; checked against RFC-formula reference derivations "
                       "in tests/test_modes_ticket_golden.py.",
        "messages": build(),
    }, indent=2) + "\n")
