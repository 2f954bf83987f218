"""MIKEY-IBAKE sides against MIKEY-SAKKE sides, CPU time in the same run (issue 11 "Speed").

``PYTHONPATH=src python benchmarks/bench_ibake.py [rounds]``.  IBAKE: default BF set (security 2048:
p 1024 bits, SHA-224), P-256, keys from the KMS role; the Initiator side is I_MESSAGE_1 + R_MESSAGE_1 ->
I_MESSAGE_2 + R_MESSAGE_2, the Responder side I_MESSAGE_1 -> R_MESSAGE_1 + I_MESSAGE_2 -> R_MESSAGE_2.
SAKKE: one I_MESSAGE (3GPP profile).  Rows are interleaved, one of each per round, so that load
changes hit every row alike; each row reports the median and the mean of its rounds.

"Warm" repeats one pair of identities and is warmed up first (untimed rounds): SAKKE builds a
receiver's stored lines on its second decapsulation and a [b]P + Z table on its third, IBAKE a
theta table on the third encryption to an identity, so without the warm-up a short run averages
these one-time costs into the warm rows (with 10 rounds the SAKKE "warm" Responder came out
about twice its steady cost, which made IBAKE look 1.0-1.2x of it while ``mikey speed``, which
times steady state, said 2x).  "Cold" uses a new Responder identity each round (IBAKE: theta for
a new identity at the Initiator, the Miller lines of a new key at the Responder; SAKKE: a new
receiver).  The baseline is the ``mikey speed`` one (1024-bit gmpy2 modexp, full-size exponent).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from mikey.cli.speed import baseline_cases
from mikey.crypto import ibe
from mikey.keystore import SakkeKeystore
from mikey.kms import generate_community, issue_user_keys
from mikey.modes.ibake import IbakeCredentials, IbakeInitiator, IbakeResponder
from mikey.modes.ibake_keys import IbakeKeyRequest, IbakeKms
from mikey.modes.sakke import SakkeInitiator, SakkeResponder

NOW = time.time()
WARM_UP_ROUNDS = 4


def _cpu(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.process_time()
    out = fn(*args)
    return out, time.process_time() - start


def main(rounds: int) -> None:
    params, master = ibe.bf_setup(2048)
    psks: dict[bytes, bytes] = {}
    kms = IbakeKms(master, psks, identity=b"kms.example.org", periods=1, authorize=lambda u, i: True)

    def creds(identity: bytes) -> IbakeCredentials:
        psks[identity] = b"k" * 16
        req = IbakeKeyRequest(b"k" * 16, [identity], b"kms.example.org", params)
        return IbakeCredentials(params, req.receive(kms.handle(req.create_message(NOW), NOW) or b"", NOW).private_keys)

    total = WARM_UP_ROUNDS + rounds
    alice = creds(b"sip:alice@example.org")
    bobs = [(b"sip:bob%d@example.org" % n, creds(b"sip:bob%d@example.org" % n)) for n in range(total + 1)]
    c = generate_community("kms.example.org")
    a_uri = "sip:alice@example.org"
    sa = SakkeKeystore(c.public, a_uri, [issue_user_keys(c, a_uri, now=NOW)])
    sbs = [(f"sip:bob{n}@example.org", SakkeKeystore(c.public, f"sip:bob{n}@example.org",
                                                    [issue_user_keys(c, f"sip:bob{n}@example.org", now=NOW)]))
           for n in range(total + 1)]
    modexp = baseline_cases({"modexp1024"})["modexp1024"]
    samples: dict[str, list[float]] = {}

    def add(name: str, seconds: float, n: int) -> None:
        if n >= WARM_UP_ROUNDS:
            samples.setdefault(name, []).append(seconds)

    for n in range(total):  # interleaved, so that load changes hit every row alike
        for label, k in (("warm", 0), ("cold", n + 1)):
            if label == "cold" and n < WARM_UP_ROUNDS:
                continue
            bob_id, bob = bobs[k]
            i, r = IbakeInitiator(alice, b"sip:alice@example.org", bob_id), IbakeResponder(bob)
            m1, t1 = _cpu(i.create_message, NOW)
            s1, t2 = _cpu(r.receive, m1, NOW)
            s2, t3 = _cpu(i.receive, s1.response, NOW)
            s3, t4 = _cpu(r.receive, s2.response, NOW)
            _, t5 = _cpu(i.receive, s3.response, NOW)
            add(f"IBAKE Initiator side, 4 messages ({label})", t1 + t3 + t5, n)
            add(f"IBAKE Responder side, 4 messages ({label})", t2 + t4, n)
            b_uri, sb = sbs[k]
            data, x = _cpu(lambda u: SakkeInitiator(sa, u, key_type="pck").create_message(NOW), b_uri)
            _, y = _cpu(lambda store, d: SakkeResponder(store, initiator_uri=a_uri).receive(d, NOW), sb, data)
            add(f"SAKKE Initiator side, I_MESSAGE ({label})", x, n)
            add(f"SAKKE Responder side, I_MESSAGE ({label})", y, n)
        _, m = _cpu(lambda: [modexp() for _ in range(10)])
        add("1024-bit modexp (gmpy2, baseline)", m / 10, n)
    reference = statistics.median(samples["SAKKE Responder side, I_MESSAGE (warm)"])
    print(f"{rounds} rounds after {WARM_UP_ROUNDS} warm-up rounds; CPU time; "
          "ratio = median / median of the warm SAKKE Responder side")
    print(f"{'row':<48} {'median µs':>10} {'mean µs':>10} {'ratio':>7}")
    for name in sorted(samples, key=lambda k: (k.split()[0], "cold" in k, k)):
        med = statistics.median(samples[name])
        print(f"{name:<48} {med * 1e6:>10,.0f} {statistics.fmean(samples[name]) * 1e6:>10,.0f} "
              f"{med / reference:>7.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
