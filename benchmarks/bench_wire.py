"""Wire-format costs: decode and encode of a typical PSK I_MESSAGE (RFC 3830 §3.1).

Run:  PYTHONPATH=src python benchmarks/bench_wire.py [--quick]
Prints microseconds per operation (best of several repeats), with one
HMAC-SHA-1 over 200 octets as a baseline for scale.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import timeit
from collections.abc import Callable

from mikey.constants import CSIdMapType, DataType, EncrAlg, MacAlg
from mikey.modes.base import default_srtp_policy
from mikey.wire import (
    CommonHeader,
    KemacPayload,
    Message,
    RandPayload,
    SrtpIdEntry,
    TimestampPayload,
)
from mikey.wire.payloads import rfc3830


def typical_psk_init() -> Message:
    """HDR with 2 SRTP-ID entries, T NTP-UTC, RAND 16, SP with 11 SRTP params, KEMAC AES-CM-128 + HMAC-SHA-1."""
    hdr = CommonHeader(
        DataType.PSK_INIT,
        0x12345678,
        (SrtpIdEntry(1, 0xDEADBEEF, 0), SrtpIdEntry(1, 0xCAFEBABE, 0)),
        CSIdMapType.SRTP_ID,
        v=True,
    )
    sp = default_srtp_policy(1)  # the 11 RFC 3830 §6.10.1 defaults written out
    return Message(
        hdr,
        (
            TimestampPayload.ntp_utc(1_700_000_000.25),
            RandPayload(bytes(range(16))),
            sp,
            KemacPayload(EncrAlg.AES_CM_128, bytes(range(40)), MacAlg.HMAC_SHA_1_160, bytes(20)),
        ),
    )


def bench(label: str, fn: Callable[[], object], number: int, repeat: int = 25) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=repeat)) / number
    print(f"{label:<52} {best * 1e6:>10.2f} us/op")
    return best


def main(quick: bool = False) -> dict[str, float]:
    n = 2_000 if quick else 20_000
    msg = typical_psk_init()
    raw = msg.encode()
    assert Message.decode(raw) == msg
    key = bytes(20)
    data = raw.ljust(200, b"\x00")[:200]
    print(f"typical PSK I_MESSAGE: {len(raw)} octets, {len(msg.payloads)} payloads after HDR")
    out = {
        "decode": bench("Message.decode (PSK I_MESSAGE)", lambda: Message.decode(raw), n),
        "encode": bench("Message.encode (PSK I_MESSAGE)", msg.encode, n),
    }
    # The SP parameter lists are memoised (policies repeat across messages); without that:
    saved = rfc3830.SP_PARAMS_CACHE_SIZE
    rfc3830.SP_PARAMS_CACHE_SIZE = 0
    rfc3830._SP_PARAMS_CACHE.clear()
    rfc3830._SP_BODY_CACHE.clear()
    try:
        out["decode_cold"] = bench("Message.decode, SP cache off", lambda: Message.decode(raw), n)
        out["encode_cold"] = bench("Message.encode, SP cache off", msg.encode, n)
    finally:
        rfc3830.SP_PARAMS_CACHE_SIZE = saved
    out["hmac"] = bench("hmac.digest HMAC-SHA-1 over 200 octets", lambda: hmac.digest(key, data, hashlib.sha1), n)
    return out


if __name__ == "__main__":
    main("--quick" in sys.argv)
