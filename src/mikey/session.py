"""Crypto session bundles: from an :class:`~mikey.modes.results.ExchangeResult` to SRTP contexts, and rekeying.

A crypto session bundle (CSB, RFC 3830 §1.3) groups the crypto sessions (CS) keyed by
one MIKEY exchange.  Each CS is one SRTP stream: its SSRC and ROC come from the CS ID
map (§6.1.1, RFC 6043 §6.1.1), its policy from the SP payload (§6.10.1) and its
master key and salt from the TGK (§4.1.3).  :class:`CryptoSessionBundle` turns those
into :class:`~mikey.srtp.SrtpContext` objects for SRTP and SRTCP (RFC 3711 §8.2) and
accepts updates of the same CSB (§4.5).

The ROC of the CS ID map is the rollover counter the stream is at (RFC 3711 §3.3.1), so
a sender can key a running stream and a late joiner can receive it; each context starts
at its crypto session's ROC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .constants import ProtType
from .errors import StateError, UnsupportedSPTypeError
from .modes.results import CryptoSessionKeys, ExchangeResult
from .srtp import SrtpContext, SrtpPolicyParams

__all__ = ["CryptoSessionBundle", "SrtpContexts", "RekeyError", "policy_params"]


class RekeyError(StateError):
    """An update that does not belong to this crypto session bundle (RFC 3830 §4.5: same CSB ID)."""


def policy_params(cs: CryptoSessionKeys) -> SrtpPolicyParams:
    """The SRTP policy of one crypto session; RFC 3830 §6.10.1 defaults when it has no SP payload."""
    if cs.policy is None:
        return SrtpPolicyParams()
    if cs.policy.prot_type != ProtType.SRTP:
        raise UnsupportedSPTypeError(
            f"crypto session {cs.cs_id} has a policy for protocol type {cs.policy.prot_type}, not SRTP"
        )
    return SrtpPolicyParams.from_params(cs.policy.params)


@dataclass
class SrtpContexts:
    """One endpoint's SRTP contexts by CS ID: the streams it sends and the streams it receives."""

    outbound: dict[int, SrtpContext] = field(default_factory=dict)
    inbound: dict[int, SrtpContext] = field(default_factory=dict)


class CryptoSessionBundle:
    """The keys of one CSB and the SRTP/SRTCP contexts built from them.

    Contexts are built on first use and kept, so ``bundle.sender(cs_id)`` returns the
    same stateful libsrtp stream each time until :meth:`rekey` replaces the keys.
    ``ignore_rcc`` maps RFC 4771 RCC integrity transforms as if absent (see
    :func:`mikey.srtp.srtp_profile`).
    """

    def __init__(self, result: ExchangeResult, *, ignore_rcc: bool = False) -> None:
        self.csb_id = result.csb_id
        self.ignore_rcc = ignore_rcc
        self.generation = 0
        self._result = result
        self._sessions: dict[int, CryptoSessionKeys] = {cs.cs_id: cs for cs in result.crypto_sessions}
        self._contexts: dict[tuple[bool, int, int | None], SrtpContext] = {}

    def __repr__(self) -> str:
        return (
            f"CryptoSessionBundle(mode={self.mode!r}, csb_id={self.csb_id:08x}, "
            f"cs_ids={list(self.cs_ids)}, generation={self.generation})"
        )

    # -- the keys ------------------------------------------------------------------------------

    @property
    def result(self) -> ExchangeResult:
        """The exchange that keyed the current generation."""
        return self._result

    @property
    def mode(self) -> str:
        return self._result.mode

    @property
    def cs_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self._sessions))

    @property
    def crypto_sessions(self) -> tuple[CryptoSessionKeys, ...]:
        return tuple(self._sessions[c] for c in self.cs_ids)

    def keys(self, cs_id: int) -> CryptoSessionKeys:
        try:
            return self._sessions[cs_id]
        except KeyError:
            raise KeyError(f"crypto session {cs_id} is not in CSB {self.csb_id:08x}") from None

    def params(self, cs_id: int) -> SrtpPolicyParams:
        return policy_params(self.keys(cs_id))

    def fingerprints(self) -> dict[int, str]:
        """Non-secret digests of each CS's master key and salt, to compare both ends."""
        return {cs.cs_id: cs.fingerprint() for cs in self.crypto_sessions}

    def find(self, ssrc: int) -> CryptoSessionKeys | None:
        """The crypto session whose CS ID map entry names *ssrc*."""
        for cs in self.crypto_sessions:
            if cs.ssrc == ssrc:
                return cs
        return None

    # -- SRTP contexts ----------------------------------------------------------------------------

    def _context(self, cs_id: int, outbound: bool, ssrc: int | None) -> SrtpContext:
        cs = self.keys(cs_id)
        if ssrc is None and cs.ssrc:
            ssrc = cs.ssrc
        key = (outbound, cs_id, ssrc)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = SrtpContext(
                cs.master_key, cs.master_salt, self.params(cs_id),
                ssrc=ssrc, outbound=outbound, roc=cs.roc, ignore_rcc=self.ignore_rcc,
            )
            self._contexts[key] = ctx
        return ctx

    def sender(self, cs_id: int, *, ssrc: int | None = None) -> SrtpContext:
        """The outbound SRTP/SRTCP context of crypto session *cs_id*.

        The SSRC is the CS ID map's unless *ssrc* is given (needed when the map leaves it
        open, or when one CS keys both directions); with neither, any SSRC is taken.
        """
        return self._context(cs_id, True, ssrc)

    def receiver(self, cs_id: int, *, ssrc: int | None = None) -> SrtpContext:
        """The inbound SRTP/SRTCP context of crypto session *cs_id* (SSRC as for :meth:`sender`)."""
        return self._context(cs_id, False, ssrc)

    def srtp_contexts(self, local_ssrcs: Iterable[int]) -> SrtpContexts:
        """Contexts for every crypto session: those whose SSRC is one of *local_ssrcs* are sent, the rest received."""
        local = set(local_ssrcs)
        out = SrtpContexts()
        for cs in self.crypto_sessions:
            if cs.ssrc in local:
                out.outbound[cs.cs_id] = self.sender(cs.cs_id)
            else:
                out.inbound[cs.cs_id] = self.receiver(cs.cs_id)
        return out

    def stream_pair(self, local_ssrc: int, remote_ssrc: int | None = None) -> tuple[int, int]:
        """CS IDs ``(send, receive)`` for a two-party call where this end sends *local_ssrc*.

        The sending CS is the one mapped to *local_ssrc*, else one left open (SSRC 0);
        the receiving CS is the one mapped to *remote_ssrc*, else another open or
        foreign one.  A bundle with a single CS keys both directions (RFC 3711 §8
        allows one master key for streams with distinct SSRCs).
        """
        sessions = self.crypto_sessions
        if not sessions:
            raise StateError(f"CSB {self.csb_id:08x} has no crypto sessions")
        send = self.find(local_ssrc) or next((cs for cs in sessions if not cs.ssrc), None)
        send = send or (sessions[0] if len(sessions) == 1 else None)
        if send is None:
            raise StateError(f"CSB {self.csb_id:08x} has no crypto session for SSRC {local_ssrc:08x}")
        recv = self.find(remote_ssrc) if remote_ssrc is not None else None
        if recv is None:
            others = [cs for cs in sessions if cs.cs_id != send.cs_id and cs.ssrc != local_ssrc]
            recv = next((cs for cs in others if not cs.ssrc), others[0] if others else send)
        return send.cs_id, recv.cs_id

    # -- updates -------------------------------------------------------------------------------

    def rekey(self, new_result: ExchangeResult) -> None:
        """Take the keys of a new exchange for this CSB (RFC 3830 §4.5).

        The update must carry the same CSB ID.  Its crypto sessions replace the old ones
        (new keys, new contexts); crypto sessions it does not mention keep their keys.
        """
        if new_result.csb_id != self.csb_id:
            raise RekeyError(
                f"update is for CSB {new_result.csb_id:08x}, this bundle is CSB {self.csb_id:08x} "
                "(RFC 3830 §4.5: an update uses the same CSB ID)"
            )
        for cs in new_result.crypto_sessions:
            self._sessions[cs.cs_id] = cs
        self._contexts.clear()
        self._result = new_result
        self.generation += 1

    def to_dict(self, *, secrets: bool = False) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "csb_id": f"{self.csb_id:08x}",
            "generation": self.generation,
            "crypto_sessions": [cs.to_dict(secrets=secrets) for cs in self.crypto_sessions],
        }
