"""MIKEY-IBAKE sides against a MIKEY-SAKKE side, CPU time in the same run (issue 11 "Speed").

``PYTHONPATH=src python benchmarks/bench_ibake.py [rounds]``.  IBAKE: default BF set (security 2048:
p 1024 bits, SHA-224), P-256, keys from the KMS role; the Initiator side is I_MESSAGE_1 + R_MESSAGE_1 ->
I_MESSAGE_2 + R_MESSAGE_2, the Responder side I_MESSAGE_1 -> R_MESSAGE_1 + I_MESSAGE_2 -> R_MESSAGE_2.
"Warm" repeats the same pair of identities (per-identity pairing values cached), "cold" uses a new
Responder identity each round.  SAKKE: one I_MESSAGE (3GPP profile), same peers each round.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from mikey.crypto import ibe
from mikey.keystore import SakkeKeystore
from mikey.kms import generate_community, issue_user_keys
from mikey.modes.ibake import IbakeCredentials, IbakeInitiator, IbakeResponder
from mikey.modes.ibake_keys import IbakeKeyRequest, IbakeKms
from mikey.modes.sakke import SakkeInitiator, SakkeResponder

NOW = time.time()


def _cpu(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def _row(name: str, seconds: float, rounds: int) -> None:
    print(f"{name:<58} {seconds / rounds * 1e6:>12,.0f} µs")


def main(rounds: int) -> None:
    params, master = ibe.bf_setup(2048)
    psks = {}
    kms = IbakeKms(master, psks, identity=b"kms.example.org", periods=1, authorize=lambda u, i: True)

    def creds(identity: bytes) -> IbakeCredentials:
        psks[identity] = b"k" * 16
        req = IbakeKeyRequest(b"k" * 16, [identity], b"kms.example.org", params)
        return IbakeCredentials(params, req.receive(kms.handle(req.create_message(NOW), NOW) or b"", NOW).private_keys)

    alice = creds(b"sip:alice@example.org")
    bobs = [(b"sip:bob%d@example.org" % n, creds(b"sip:bob%d@example.org" % n)) for n in range(rounds + 1)]
    for label, pick in (("warm", lambda n: bobs[0]), ("cold", lambda n: bobs[n + 1])):
        t_i = t_r = 0.0
        for n in range(rounds):
            bob_id, bob = pick(n)
            i, r = IbakeInitiator(alice, b"sip:alice@example.org", bob_id), IbakeResponder(bob)
            m1, a = _cpu(lambda: i.create_message(NOW))
            s1, b = _cpu(lambda: r.receive(m1, NOW))
            s2, c = _cpu(lambda: i.receive(s1.response, NOW))
            s3, d = _cpu(lambda: r.receive(s2.response, NOW))
            _, e = _cpu(lambda: i.receive(s3.response, NOW))
            t_i += a + c + e
            t_r += b + d
        _row(f"IBAKE Initiator side, 4 messages ({label})", t_i, rounds)
        _row(f"IBAKE Responder side, 4 messages ({label})", t_r, rounds)
    c = generate_community("kms.example.org")
    a_uri, b_uri = "sip:alice@example.org", "sip:bob@example.org"
    sa = SakkeKeystore(c.public, a_uri, [issue_user_keys(c, a_uri, now=NOW)])
    sb = SakkeKeystore(c.public, b_uri, [issue_user_keys(c, b_uri, now=NOW)])
    t_i = t_r = 0.0
    for _ in range(rounds):
        data, x = _cpu(lambda: SakkeInitiator(sa, b_uri, key_type="pck").create_message(NOW))
        _, y = _cpu(lambda: SakkeResponder(sb, initiator_uri=a_uri).receive(data, NOW))
        t_i += x
        t_r += y
    _row("SAKKE Initiator side (I_MESSAGE, same run)", t_i, rounds)
    _row("SAKKE Responder side (I_MESSAGE, same run)", t_r, rounds)
    _, m = _cpu(lambda: [pow(3, (1 << 1024) - 12345, (1 << 1024) - 105) for _ in range(rounds)])
    _row("1024-bit modexp (baseline)", m, rounds)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
