"""MIKEY-IBAKE sides against a MIKEY-SAKKE side, CPU time in the same run (issue 11 "Speed").

``PYTHONPATH=src python benchmarks/bench_ibake.py [rounds]``.  IBAKE: default BF set (security 2048:
p 1024 bits, SHA-224), P-256, keys from the KMS role; the Initiator side is I_MESSAGE_1 + R_MESSAGE_1 ->
I_MESSAGE_2 + R_MESSAGE_2, the Responder side I_MESSAGE_1 -> R_MESSAGE_1 + I_MESSAGE_2 -> R_MESSAGE_2.
"Warm" repeats the same pair of identities (per-identity values cached), "cold" uses a new Responder
identity each round.  SAKKE: one I_MESSAGE (3GPP profile), warm and cold alike.  Rows are interleaved.
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


def _cpu(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.process_time()
    out = fn(*args)
    return out, time.process_time() - start


def _row(name: str, seconds: float, rounds: int) -> None:
    print(f"{name:<58} {seconds / rounds * 1e6:>12,.0f} µs")


def main(rounds: int) -> None:
    params, master = ibe.bf_setup(2048)
    psks: dict[bytes, bytes] = {}
    kms = IbakeKms(master, psks, identity=b"kms.example.org", periods=1, authorize=lambda u, i: True)

    def creds(identity: bytes) -> IbakeCredentials:
        psks[identity] = b"k" * 16
        req = IbakeKeyRequest(b"k" * 16, [identity], b"kms.example.org", params)
        return IbakeCredentials(params, req.receive(kms.handle(req.create_message(NOW), NOW) or b"", NOW).private_keys)

    alice = creds(b"sip:alice@example.org")
    bobs = [(b"sip:bob%d@example.org" % n, creds(b"sip:bob%d@example.org" % n)) for n in range(rounds + 1)]
    c = generate_community("kms.example.org")
    a_uri = "sip:alice@example.org"
    sa = SakkeKeystore(c.public, a_uri, [issue_user_keys(c, a_uri, now=NOW)])
    sbs = [(f"sip:bob{n}@example.org", SakkeKeystore(c.public, f"sip:bob{n}@example.org",
                                                    [issue_user_keys(c, f"sip:bob{n}@example.org", now=NOW)]))
           for n in range(rounds + 1)]
    totals: dict[str, float] = {}

    def add(name: str, seconds: float) -> None:
        totals[name] = totals.get(name, 0.0) + seconds

    for n in range(rounds):  # interleaved, so that load changes hit every row alike
        for label, k in (("warm", 0), ("cold", n + 1)):
            bob_id, bob = bobs[k]
            i, r = IbakeInitiator(alice, b"sip:alice@example.org", bob_id), IbakeResponder(bob)
            m1, t1 = _cpu(i.create_message, NOW)
            s1, t2 = _cpu(r.receive, m1, NOW)
            s2, t3 = _cpu(i.receive, s1.response, NOW)
            s3, t4 = _cpu(r.receive, s2.response, NOW)
            _, t5 = _cpu(i.receive, s3.response, NOW)
            add(f"IBAKE Initiator side, 4 messages ({label})", t1 + t3 + t5)
            add(f"IBAKE Responder side, 4 messages ({label})", t2 + t4)
            b_uri, sb = sbs[k]
            data, x = _cpu(lambda u: SakkeInitiator(sa, u, key_type="pck").create_message(NOW), b_uri)
            _, y = _cpu(lambda store, d: SakkeResponder(store, initiator_uri=a_uri).receive(d, NOW), sb, data)
            add(f"SAKKE Initiator side, I_MESSAGE ({label})", x)
            add(f"SAKKE Responder side, I_MESSAGE ({label})", y)
    for name in sorted(totals, key=lambda k: (k.split()[0], "cold" in k, k)):
        _row(name, totals[name], rounds)
    _, m = _cpu(lambda: [pow(3, (1 << 1024) - 12345, (1 << 1024) - 105) for _ in range(rounds)])
    _row("1024-bit modexp (baseline)", m, rounds)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
