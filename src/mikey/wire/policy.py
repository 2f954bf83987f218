"""The rules the MIKEY registries set for Security Policy parameters (RFC 3830 §6.10, §6.10.1).

Decoding stays lenient (any Type/Length/Value decodes); these checks run before a
policy's values are used, so a peer cannot choose a key length the PRF then computes
(a 255-octet "session encryption key length" is a request for gigabytes of output).

SRTP (Prot type 0): each parameter of RFC 3830 Table 6.10.1.a, RFC 4771 §4 (types 13-19)
and RFC 7714 §14.3 (type 20) has a value width and a set of allowed values; the
cipher-dependent ones are also checked together (RFC 3711 §8.2, RFC 6188 §2-§3, RFC
7714 §15, RFC 5748, RFC 8269 §4).  Decisions where the RFCs leave room:

* Values may be written in fewer octets than the registry width (the ALEA MIKEY-SAKKE
  messages write the RFC 4771 16-bit ROC transmission rate in one octet), never more,
  and never empty.
* Parameter types no registry defines are refused (Error no 10): a policy we do not
  understand is not a policy we can honour.
* A parameter type may repeat with different values only in an RSA-R offer, where the
  repeats are options (RFC 4738 §3.5); each option is checked on its own at admission,
  and a policy used for keys must give one value per type.
* NULL encryption may give key and salt length 0 ("no session key"); the master key and
  salt then take the SRTP key-derivation defaults of 16 and 14 octets.

TESLA (Prot type 1, RFC 4442) parameters size no key and are not interpreted here.
Other Prot types pass admission (the wire stays lenient) but no keys are derived for
them: :func:`policy_key_lengths` raises :class:`UnsupportedSPTypeError` (Error no 9).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, NamedTuple

from ..constants import SRTPPRF, ProtType, SRTPAuthAlg, SRTPEncrAlg, SRTPParam
from ..errors import UnsupportedSPParamsError, UnsupportedSPTypeError

if TYPE_CHECKING:
    from .payloads.rfc3830 import SecurityPolicyPayload

__all__ = [
    "MAX_SRTP_MASTER_KEY_LEN",
    "check_security_policies",
    "check_srtp_params",
    "policy_key_lengths",
    "srtp_master_lengths",
]

#: The longest SRTP master key any registered cipher takes: AES-256 (RFC 6188), ARIA-256 (RFC 8269).
MAX_SRTP_MASTER_KEY_LEN: Final = 32

#: RFC 3830 §6.10.1: when a policy gives no lengths, SRTP's own defaults (RFC 3711 §8.2).
_DEFAULT_KEY_LEN: Final = 16
_DEFAULT_SALT_LEN: Final = 14

_P = SRTPParam
_E = SRTPEncrAlg

_NAMES: Final[dict[int, str]] = {
    _P.ENCR_ALG: "Encryption algorithm",
    _P.SESSION_ENCR_KEY_LEN: "Session Encr. key length",
    _P.AUTH_ALG: "Authentication algorithm",
    _P.SESSION_AUTH_KEY_LEN: "Session Auth. key length",
    _P.SESSION_SALT_KEY_LEN: "Session Salt key length",
    _P.SRTP_PRF: "SRTP PRF",
    _P.KEY_DERIVATION_RATE: "Key derivation rate",
    _P.SRTP_ENCRYPTION: "SRTP encryption off/on",
    _P.SRTCP_ENCRYPTION: "SRTCP encryption off/on",
    _P.FEC_ORDER: "sender's FEC order",
    _P.SRTP_AUTHENTICATION: "SRTP authentication off/on",
    _P.AUTH_TAG_LEN: "Authentication tag length",
    _P.SRTP_PREFIX_LEN: "SRTP prefix length",
    _P.ROC_TRANSMISSION_RATE: "ROC transmission rate",
    _P.SRTP_AUTH_ALG: "SRTP Auth. algorithm",
    _P.SRTCP_AUTH_ALG: "SRTCP Auth. algorithm",
    _P.SRTP_SESSION_AUTH_KEY_LEN: "SRTP Session Auth. key len",
    _P.SRTCP_SESSION_AUTH_KEY_LEN: "SRTCP Session Auth. key len",
    _P.SRTP_AUTH_TAG_LEN: "SRTP Authentication tag len",
    _P.SRTCP_AUTH_TAG_LEN: "SRTCP Authentication tag len",
    _P.AEAD_AUTH_TAG_LEN: "AEAD authentication tag length",
}

# HMAC keys longer than the SHA-1 block (64 octets) are hashed first (RFC 2104 §2): a longer
# session auth key adds nothing.
_MAX_AUTH_KEY_LEN: Final = 64
# The longest tag of a registered transform: HMAC-SHA-1's 20 octets plus the 4-octet ROC of
# RFC 4771 RCC (RFC 4771 §4).
_MAX_TAG_LEN: Final = 24


def _one_of(values: Iterable[int], text: str) -> tuple[Callable[[int], bool], str]:
    allowed = frozenset(values)
    return allowed.__contains__, text


def _at_most(limit: int) -> tuple[Callable[[int], bool], str]:
    return (lambda v: v <= limit), f"at most {limit}"


def _kdr(v: int) -> bool:
    return v == 0 or (v <= 1 << 24 and v & (v - 1) == 0)


_FLAG = _one_of((0, 1), "0 (off) or 1 (on)")
_AUTH_ALGS = _one_of(SRTPAuthAlg, "a registered SRTP auth alg (RFC 3830 Table 6.10.1.c, RFC 4771)")

#: type -> (largest width in octets, value check, what is allowed).
_SRTP_RULES: Final[dict[int, tuple[int, Callable[[int], bool], str]]] = {
    _P.ENCR_ALG: (1, *_one_of(SRTPEncrAlg, "a registered SRTP encr alg (RFC 3830 Table 6.10.1.b, RFC 5748, "
                                           "RFC 7714, RFC 8269)")),
    _P.SESSION_ENCR_KEY_LEN: (1, *_one_of((0, 16, 24, 32), "16, 24 or 32 (0 with NULL encryption)")),
    _P.AUTH_ALG: (1, *_AUTH_ALGS),
    _P.SESSION_AUTH_KEY_LEN: (1, *_at_most(_MAX_AUTH_KEY_LEN)),
    _P.SESSION_SALT_KEY_LEN: (1, *_one_of((0, 12, 14), "14 (counter modes) or 12 (GCM); 0 with NULL encryption")),
    _P.SRTP_PRF: (1, *_one_of(SRTPPRF, "a registered SRTP PRF (RFC 3830 Table 6.10.1.d, RFC 5748, RFC 8269)")),
    _P.KEY_DERIVATION_RATE: (4, _kdr, "0 or a power of 2 up to 2^24 (RFC 3711 §4.3.1)"),
    _P.SRTP_ENCRYPTION: (1, *_FLAG),
    _P.SRTCP_ENCRYPTION: (1, *_FLAG),
    _P.FEC_ORDER: (1, *_one_of((0,), "0, FEC then SRTP (RFC 3830 Table 6.10.1.e)")),
    _P.SRTP_AUTHENTICATION: (1, *_FLAG),
    _P.AUTH_TAG_LEN: (1, *_at_most(_MAX_TAG_LEN)),
    _P.SRTP_PREFIX_LEN: (1, lambda v: True, "one octet"),
    _P.ROC_TRANSMISSION_RATE: (2, lambda v: v != 0, "a non-zero 16-bit integer (RFC 4771 §4)"),
    _P.SRTP_AUTH_ALG: (1, *_AUTH_ALGS),
    _P.SRTCP_AUTH_ALG: (1, *_AUTH_ALGS),
    _P.SRTP_SESSION_AUTH_KEY_LEN: (1, *_at_most(_MAX_AUTH_KEY_LEN)),
    _P.SRTCP_SESSION_AUTH_KEY_LEN: (1, *_at_most(_MAX_AUTH_KEY_LEN)),
    _P.SRTP_AUTH_TAG_LEN: (1, *_at_most(_MAX_TAG_LEN)),
    _P.SRTCP_AUTH_TAG_LEN: (1, *_at_most(_MAX_TAG_LEN)),
    _P.AEAD_AUTH_TAG_LEN: (1, *_one_of((16,), "16 (RFC 7714 §14.3)")),
}

#: encr alg -> (master key lengths, salt lengths, default salt).
#: RFC 3711 §4.1 (AES-CM/f8-128, 112-bit salt), RFC 6188 §2 (AES-192/256-CM), RFC 7714 §8.1/§15
#: (AES-GCM: 16 or 32, 96-bit salt), RFC 8269 §4 (ARIA: 16 or 32), RFC 5748/RFC 5669 (SEED, 128-bit
#: keys; its AEAD modes take the RFC 7714-style 96-bit salt, and the 112-bit salt this library used
#: to default to for SEED-CCM stays accepted).  NULL encryption still feeds the AES-CM key
#: derivation (RFC 3711 §4.3), so it takes that PRF's key and salt lengths.
_CIPHERS: Final[dict[int, tuple[frozenset[int], frozenset[int], int]]] = {
    _E.NULL: (frozenset({0, 16, 24, 32}), frozenset({0, 14}), 14),
    _E.AES_CM: (frozenset({16, 24, 32}), frozenset({14}), 14),
    _E.AES_F8: (frozenset({16}), frozenset({14}), 14),
    _E.SEED_CTR: (frozenset({16}), frozenset({14}), 14),
    _E.SEED_CCM: (frozenset({16}), frozenset({12, 14}), 14),
    _E.SEED_GCM: (frozenset({16}), frozenset({12, 14}), 12),
    _E.AES_GCM: (frozenset({16, 32}), frozenset({12}), 12),
    _E.ARIA_CTR: (frozenset({16, 32}), frozenset({14}), 14),
    _E.ARIA_GCM: (frozenset({16, 32}), frozenset({12}), 12),
}

#: SRTP PRF -> master key lengths it is keyed with (RFC 3711 §4.3.3, RFC 6188 §3, RFC 5748, RFC 8269 §2).
_PRF_KEYS: Final[dict[int, frozenset[int]]] = {
    SRTPPRF.AES_CM: frozenset({16, 24, 32}),
    SRTPPRF.SEED_CTR: frozenset({16}),
    SRTPPRF.ARIA_CTR: frozenset({16, 32}),
}


def _name(ptype: int) -> str:
    return f"{_NAMES[ptype]} (type {ptype})" if ptype in _NAMES else f"type {ptype}"


def _alg_name(alg: int) -> str:
    try:
        return SRTPEncrAlg(alg).name.replace("_", "-")
    except ValueError:
        return f"encr alg {alg}"


def _param_problem(ptype: int, value: bytes) -> str | None:
    """What is wrong with one SRTP parameter, or None (RFC 3830 Table 6.10.1.a and extensions)."""
    rule = _SRTP_RULES.get(ptype)
    if rule is None:
        return f"parameter type {ptype} is not a registered SRTP policy parameter"
    width, ok, allowed = rule
    if not value:
        return f"{_name(ptype)} has an empty value"
    if len(value) > width:
        return f"{_name(ptype)} is {len(value)} octets long; it takes at most {width}"
    v = int.from_bytes(value, "big")
    if not ok(v):
        return f"{_name(ptype)} is {v}; allowed: {allowed}"
    return None


def _single_values(params: tuple[tuple[int, bytes], ...]) -> tuple[dict[int, int], int | None]:
    """One value per type, or the first type that repeats with a different value."""
    values: dict[int, int] = {}
    for ptype, value in params:
        v = int.from_bytes(value, "big")
        if values.setdefault(ptype, v) != v:
            return values, ptype
    return values, None


def _cipher_problem(values: dict[int, int]) -> str | None:
    """Cipher, key, salt and PRF checked together; ``values`` passed :func:`_param_problem`."""
    alg = values.get(_P.ENCR_ALG, _E.AES_CM)
    keys, salts, _ = _CIPHERS[alg]
    key_len = values.get(_P.SESSION_ENCR_KEY_LEN)
    if key_len is not None and key_len not in keys:
        want = ", ".join(str(k) for k in sorted(keys))
        return f"{_name(_P.SESSION_ENCR_KEY_LEN)} is {key_len}; {_alg_name(alg)} takes {want}"
    salt_len = values.get(_P.SESSION_SALT_KEY_LEN)
    if salt_len is not None and salt_len not in salts:
        want = " or ".join(str(s) for s in sorted(salts))
        return f"{_name(_P.SESSION_SALT_KEY_LEN)} is {salt_len}; {_alg_name(alg)} takes {want}"
    prf = values.get(_P.SRTP_PRF, SRTPPRF.AES_CM)
    if alg == _E.AES_GCM and prf != SRTPPRF.AES_CM:
        return f"{_name(_P.SRTP_PRF)} is {prf}; AES-GCM requires AES-CM (RFC 7714 §15)"
    master = key_len or _DEFAULT_KEY_LEN
    if master not in _PRF_KEYS[prf]:
        return f"{_name(_P.SESSION_ENCR_KEY_LEN)} is {master}; SRTP PRF {SRTPPRF(prf).name} is not keyed with it"
    return None


class _Verdict(NamedTuple):
    """What the rules say about one SRTP parameter list."""

    admit: str | None  # the problem refusing it at admission, or None
    keys: str | None  # the problem refusing keys derived under it, or None
    lengths: tuple[int, int]  # master key and salt lengths, when ``keys`` is None


def _judge(params: tuple[tuple[int, bytes], ...]) -> _Verdict:
    for ptype, value in params:
        problem = _param_problem(ptype, value)
        if problem is not None:
            return _Verdict(problem, problem, (0, 0))
    values, repeated = _single_values(params)
    if repeated is not None:  # options of an offer: each was checked on its own
        keys = (f"{_name(repeated)} is given more than once with different values; options are for "
                "RSA-R offers only (RFC 4738 §3.5)")
        return _Verdict(None, keys, (0, 0))
    problem = _cipher_problem(values)
    if problem is not None:
        return _Verdict(problem, problem, (0, 0))
    _, _, default_salt = _CIPHERS[values.get(_P.ENCR_ALG, _E.AES_CM)]
    key_len = values.get(_P.SESSION_ENCR_KEY_LEN) or _DEFAULT_KEY_LEN
    return _Verdict(None, None, (key_len, values.get(_P.SESSION_SALT_KEY_LEN) or default_salt))


_judge_cached = functools.lru_cache(maxsize=512)(_judge)
# The wire decoder hands out one params tuple per distinct SP body, so admission and key
# derivation of a message (and the next message like it) usually ask about the very same object.
_last: tuple[object, _Verdict] = ((), _judge(()))


def _verdict(params: tuple[tuple[int, bytes], ...]) -> _Verdict:
    global _last
    last = _last
    if last[0] is params:
        return last[1]
    try:
        verdict = _judge_cached(params)
    except TypeError:  # a value that is not hashable (bytearray): judged now, remembered nowhere
        return _judge(tuple((t, bytes(v)) for t, v in params))
    _last = (params, verdict)
    return verdict


def check_srtp_params(params: tuple[tuple[int, bytes], ...], policy_no: int = 0) -> None:
    """Refuse SRTP policy parameters the registries do not allow (:class:`UnsupportedSPParamsError`)."""
    problem = _verdict(params).admit
    if problem is not None:
        raise UnsupportedSPParamsError(f"SRTP policy {policy_no}: {problem}")


def check_security_policies(policies: Iterable[SecurityPolicyPayload]) -> None:
    """Refuse SP payloads whose parameters break their registry (Error no 10, RFC 3830 §6.10).

    Run before any key derivation.  Only SRTP parameters are checked (see the module doc).
    """
    for sp in policies:
        if sp.prot_type == ProtType.SRTP:
            problem = _verdict(sp.params).admit
            if problem is not None:
                raise UnsupportedSPParamsError(f"SRTP policy {sp.policy_no}: {problem}")


def srtp_master_lengths(params: tuple[tuple[int, bytes], ...], policy_no: int = 0) -> tuple[int, int]:
    """SRTP master key and salt lengths of a policy used for keys (RFC 3830 §6.10.1, RFC 7714 §15).

    The session encryption key length is the master key length (RFC 3830 §6.10.1); absent
    lengths take the cipher's defaults.  Raises :class:`UnsupportedSPParamsError` for a
    policy :func:`check_srtp_params` refuses or that repeats a type with different values.
    """
    verdict = _verdict(params)
    if verdict.keys is not None:
        raise UnsupportedSPParamsError(f"SRTP policy {policy_no}: {verdict.keys}")
    return verdict.lengths


def policy_key_lengths(policy: SecurityPolicyPayload | None) -> tuple[int, int]:
    """Master key and salt lengths for a crypto session under *policy* (None: SRTP defaults).

    TESLA keeps the SRTP defaults (RFC 4442 sizes no MIKEY-derived key); any other Prot
    type raises :class:`UnsupportedSPTypeError` (Error no 9).
    """
    if policy is None:
        return _DEFAULT_KEY_LEN, _DEFAULT_SALT_LEN
    if policy.prot_type == ProtType.SRTP:
        verdict = _verdict(policy.params)
        if verdict.keys is not None:
            raise UnsupportedSPParamsError(f"SRTP policy {policy.policy_no}: {verdict.keys}")
        return verdict.lengths
    if policy.prot_type == ProtType.TESLA:
        return _DEFAULT_KEY_LEN, _DEFAULT_SALT_LEN
    raise UnsupportedSPTypeError(f"SP Prot type {policy.prot_type} of policy {policy.policy_no} is not supported")
