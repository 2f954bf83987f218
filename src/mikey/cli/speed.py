"""``mikey speed``: microseconds per operation, measured beside baselines timed in the same run.

Like ``openssl speed``: each row is compared with a primitive measured on the
same machine in the same process, so the ratios travel between machines:

- ``hmac-sha1``: one HMAC-SHA-1 over 200 octets (the KEMAC MAC of RFC 3830 §4.2.4);
- ``rsa2048-sign``: one RSA-2048 PKCS#1 v1.5 SHA-256 signature (``cryptography``);
- ``modexp1536`` / ``modexp1024``: one modular exponentiation with a full-size
  exponent (``gmpy2.powmod``) in the OAKLEY 5 / OAKLEY 2 groups (RFC 3830 §6.4);
- ``psk-responder``: the PSK Responder taking a typical I_MESSAGE (the MIKEY-TICKET rows'
  baseline: issue 10 asks for a PSK Resolve at the KMS core within 2x of it).

Rows: decode and encode of a typical PSK I_MESSAGE (HDR, T, RAND, SP, KEMAC),
then every mode plugin's :meth:`~mikey.cli.plugin_base.ModePlugin.speed_cases`.
Each row is the best of 5 repetitions, each long enough to time reliably.

Clock: the process's CPU time by default, as ``openssl speed`` uses CPU time unless
given ``-elapsed``; ``--elapsed`` times wall-clock instead.  On a shared machine
wall-clock rows measured a few seconds apart see different loads (on two busy
cores the same row varied 2x between runs, and the ratio of two rows with it),
while CPU time excludes the time the process waits for a core.  Every row runs
in this process without waiting on others, so CPU time is all of its cost.
"""

from __future__ import annotations

import argparse
import platform
import random
import time
import timeit
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import gmpy2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..constants import DHGroup, EncrAlg, MacAlg
from ..crypto.dh import generate_private, get_group
from ..modes.psk import PskInitiator, PskResponder
from ..modes.results import CryptoSessionSpec
from ..wire import Message
from .common import EXIT_OK, UsageError, add_json_option, emit_json
from .plugin_base import SPEED_NOW, ModePlugin, SpeedCase
from .plugins import PLUGINS

__all__ = ["register", "run", "measure", "baseline_cases", "wire_cases", "BASELINES", "SpeedRow"]

#: Baseline names and what they time.
BASELINES: dict[str, str] = {
    "hmac-sha1": "HMAC-SHA-1, 200 octets",
    "rsa2048-sign": "RSA-2048 PKCS#1 v1.5 SHA-256 sign",
    "modexp1536": "1536-bit modexp (gmpy2)",
    "modexp1024": "1024-bit modexp (gmpy2)",
    "psk-responder": "PSK Responder, one typical I_MESSAGE",
}


#: Public-key primitives a mode's row can name as unavoidable (timed in the same run when used).
PRIMITIVES: dict[str, str] = {
    "rsa2048-sign": "RSA-2048 PKCS#1 v1.5 SHA-256 sign",
    "rsa2048-verify": "RSA-2048 PKCS#1 v1.5 SHA-256 verify",
    "rsa2048-encrypt": "RSA-2048 PKCS#1 v1.5 encrypt (32-octet key)",
    "rsa2048-decrypt": "RSA-2048 PKCS#1 v1.5 decrypt (OpenSSL implicit rejection)",
    "dh5-public": "OAKLEY 5 g^x (g = 2) with the 256-bit exponent mikey.crypto.dh uses",
    "dh5-shared": "OAKLEY 5 y^x (the peer's value) with a 256-bit exponent",
}


@dataclass(frozen=True)
class SpeedRow:
    name: str
    us_per_op: float
    baseline: str
    ratio_to_baseline: float
    unavoidable: tuple[str, ...] = ()
    unavoidable_us: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "us_per_op": self.us_per_op,
            "ratio_to_baseline": self.ratio_to_baseline,
            "baseline": self.baseline,
        }
        if self.unavoidable_us:
            d["unavoidable"] = list(self.unavoidable)
            d["unavoidable_us"] = self.unavoidable_us
            d["ratio_to_unavoidable"] = self.us_per_op / self.unavoidable_us
        return d


def measure(fn: Callable[[], object], *, quick: bool = False, elapsed: bool = False) -> float:
    """Microseconds per call of *fn*: autorange-style loop count, then the best of 5 repetitions.

    ``quick`` aims at about 5 ms per repetition and takes the best of 2 (for tests).
    The clock is the process's CPU time (:func:`time.process_time`), or wall-clock
    time (:func:`time.perf_counter`) with ``elapsed``.
    """
    timer = timeit.Timer(fn, timer=time.perf_counter if elapsed else time.process_time)
    target = 0.005 if quick else 0.2
    repeats = 2 if quick else 5
    number = 1
    while True:
        taken = timer.timeit(number)
        if taken >= target or number >= 10_000_000:
            break
        if taken <= 0:
            number *= 10
        else:
            number = max(number * 2, int(number * target / taken * 1.05) + 1)
    best = min([taken] + timer.repeat(repeat=repeats - 1, number=number))
    return best / number * 1e6


def _modexp_case(group_id: int) -> Callable[[], object]:
    group = get_group(group_id)
    rnd = random.Random(group_id)
    p = gmpy2.mpz(group.p)
    base = gmpy2.mpz(rnd.randrange(2, group.p - 1))
    # Full-size exponent: as many bits as the modulus (not the short DH exponent).
    exponent = gmpy2.mpz(rnd.randrange(1 << (group.bits - 1), group.p - 1))
    return lambda: gmpy2.powmod(base, exponent, p)


def baseline_cases(names: set[str] | None = None) -> dict[str, Callable[[], object]]:
    """The baseline operations (only those in *names*, when given), set up and ready to time."""
    wanted = set(BASELINES) if names is None else names
    out: dict[str, Callable[[], object]] = {}
    if "hmac-sha1" in wanted:
        key = bytes(range(20))
        data = bytes(200)
        sha1 = hashes.SHA1()

        def hmac_sha1() -> bytes:
            h = crypto_hmac.HMAC(key, sha1)
            h.update(data)
            return h.finalize()

        out["hmac-sha1"] = hmac_sha1
    if "rsa2048-sign" in wanted:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        message = bytes(200)
        pkcs1 = padding.PKCS1v15()
        sha256 = hashes.SHA256()
        out["rsa2048-sign"] = lambda: private.sign(message, pkcs1, sha256)
    if "modexp1536" in wanted:
        out["modexp1536"] = _modexp_case(DHGroup.OAKLEY_5)
    if "modexp1024" in wanted:
        out["modexp1024"] = _modexp_case(DHGroup.OAKLEY_2)
    if "psk-responder" in wanted:
        i_message = typical_psk_i_message()
        # A fresh Responder has a fresh replay cache, so the same message is accepted every time.
        out["psk-responder"] = lambda: PskResponder(bytes(range(16))).receive(i_message, SPEED_NOW)
    return out


def primitive_cases(names: set[str]) -> dict[str, Callable[[], object]]:
    """The public-key primitives named in *names*, set up and ready to time."""
    out: dict[str, Callable[[], object]] = {}
    rsa_names = {n for n in names if n.startswith("rsa2048-")}
    if rsa_names:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = private.public_key()
        message = bytes(200)
        pkcs1 = padding.PKCS1v15()
        sha256 = hashes.SHA256()
        signature = private.sign(message, pkcs1, sha256)
        envelope = public.encrypt(bytes(32), pkcs1)
        table: dict[str, Callable[[], object]] = {
            "rsa2048-sign": lambda: private.sign(message, pkcs1, sha256),
            "rsa2048-verify": lambda: public.verify(signature, message, pkcs1, sha256),
            "rsa2048-encrypt": lambda: public.encrypt(bytes(32), pkcs1),
            "rsa2048-decrypt": lambda: private.decrypt(envelope, pkcs1),
        }
        out.update({n: table[n] for n in rsa_names})
    if names & {"dh5-public", "dh5-shared"}:
        group = get_group(DHGroup.OAKLEY_5)
        x = generate_private(group)
        g = gmpy2.mpz(group.g)
        p = gmpy2.mpz(group.p)
        peer = gmpy2.powmod(g, generate_private(group), p)
        out["dh5-public"] = lambda: gmpy2.powmod(g, x, p)
        out["dh5-shared"] = lambda: gmpy2.powmod(peer, x, p)
    return out


def typical_psk_i_message() -> bytes:
    """A typical PSK I_MESSAGE: HDR (2 crypto sessions), T, RAND, SP, KEMAC (AES-CM-128, HMAC-SHA-1)."""
    initiator = PskInitiator(
        bytes(range(16)),
        crypto_sessions=[CryptoSessionSpec(ssrc=0x11223344), CryptoSessionSpec(ssrc=0x55667788)],
        csb_id=0x01020304,
        tgk=bytes(range(16, 32)),
        rand=bytes(range(32, 48)),
        encr_alg=EncrAlg.AES_CM_128,
        mac_alg=MacAlg.HMAC_SHA_1_160,
    )
    return initiator.create_message(SPEED_NOW)


def wire_cases() -> list[SpeedCase]:
    """``decode PSK I_MESSAGE`` and ``encode PSK I_MESSAGE``."""
    data = typical_psk_i_message()
    msg = Message.decode(data)
    built = Message(msg.header, msg.payloads)
    return [
        SpeedCase("decode PSK I_MESSAGE", lambda: Message.decode(data)),
        SpeedCase("encode PSK I_MESSAGE", built.encode),
    ]


def collect_cases(plugins: Iterable[ModePlugin]) -> list[SpeedCase]:
    """The wire rows, then each plugin's."""
    cases = wire_cases()
    for plugin in plugins:
        cases += plugin.speed_cases()
    return cases


def run_speed(
    patterns: list[str],
    *,
    quick: bool = False,
    cases: Sequence[SpeedCase] | None = None,
    elapsed: bool = False,
) -> tuple[dict[str, float], list[SpeedRow]]:
    """Time the selected rows (default: every row) and their baselines; returns ``({baseline: us}, rows)``.

    CPU time of this process unless ``elapsed`` (wall-clock; see the module docstring).
    """
    cases = collect_cases(PLUGINS) if cases is None else list(cases)
    if patterns:
        lowered = [p.lower() for p in patterns]
        cases = [c for c in cases if any(p in c.name.lower() for p in lowered)]
        if not cases:
            raise UsageError(f"no speed row matches {' '.join(patterns)!r}")
    for c in cases:
        if c.baseline not in BASELINES:
            raise UsageError(f"speed row {c.name!r} names unknown baseline {c.baseline!r}")
        for u in c.unavoidable:
            if u not in PRIMITIVES:
                raise UsageError(f"speed row {c.name!r} names unknown primitive {u!r}")
    needed = {"hmac-sha1"} | {c.baseline for c in cases}
    baselines = {name: measure(fn, quick=quick, elapsed=elapsed) for name, fn in baseline_cases(needed).items()}
    wanted = {u for c in cases for u in c.unavoidable}
    primitives = {name: measure(fn, quick=quick, elapsed=elapsed) for name, fn in primitive_cases(wanted).items()}
    rows = []
    for c in cases:
        us = measure(c.run, quick=quick, elapsed=elapsed)
        floor = sum(primitives[u] for u in c.unavoidable) if c.unavoidable else None
        rows.append(SpeedRow(c.name, us, c.baseline, us / baselines[c.baseline], c.unavoidable, floor))
    return baselines, rows


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "speed",
        help="measure the speed of decoding, encoding and each mode",
        description="Time decode/encode and every mode's Initiator and Responder (us per operation), "
        "each beside a baseline primitive measured in the same run (like 'openssl speed').",
    )
    p.add_argument("patterns", nargs="*", metavar="NAME", help="only rows whose name contains NAME")
    p.add_argument("--quick", action="store_true", help="short measurements (for tests; less precise)")
    p.add_argument(
        "--elapsed",
        action="store_true",
        help="time wall-clock instead of this process's CPU time (like openssl speed -elapsed)",
    )
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    elapsed = bool(getattr(args, "elapsed", False))
    baselines, rows = run_speed(list(args.patterns), quick=bool(args.quick), elapsed=elapsed)
    clock = "wall-clock" if elapsed else "CPU time"
    if getattr(args, "json", False):
        emit_json(
            {
                "clock": "wall" if elapsed else "cpu",
                "baseline_hmac_sha1_us": baselines["hmac-sha1"],
                "baselines": baselines,
                "results": [r.to_dict() for r in rows],
            }
        )
        return EXIT_OK
    import cryptography

    print(
        f"mikey speed: microseconds per operation ({clock}), best of {2 if args.quick else 5} "
        f"(Python {platform.python_version()}, cryptography {cryptography.__version__}, gmpy2 {gmpy2.version()})"
    )
    print()
    labels = {name: f"{name} ({BASELINES[name]})" for name in baselines}
    width = max([len("operation"), len("baseline")] + [len(r.name) for r in rows] + [len(v) for v in labels.values()]) + 2
    print(f"{'baseline':<{width}}{'us/op':>12}")
    for name, us in baselines.items():
        print(f"{labels[name]:<{width}}{us:>12.2f}")
    print()
    print(f"{'operation':<{width}}{'us/op':>12}{'ratio':>10}  baseline")
    for r in rows:
        extra = ""
        if r.unavoidable_us:
            extra = f"  {r.us_per_op / r.unavoidable_us:.2f}x of {'+'.join(r.unavoidable)} ({r.unavoidable_us:.0f} us)"
        print(f"{r.name:<{width}}{r.us_per_op:>12.2f}{r.ratio_to_baseline:>10.2f}  {r.baseline}{extra}")
    return EXIT_OK
