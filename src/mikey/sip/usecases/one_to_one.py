"""One-to-one call (RFC 3830 §2.1): two phones through the proxy, SRTP both ways, re-keyed mid call.

Bob's phone registers and waits; Alice's phone calls ``sip:bob@<domain>`` through Kamailio with the
method's I_MESSAGE in the INVITE's SDP (RFC 4567), Bob answers with the R_MESSAGE (if any), and both
send a tone over SRTP.  After ``REKEY_AFTER`` seconds Alice re-keys with a new exchange for the same
CSB in a re-INVITE (RFC 3830 §4.5) while the media goes on.  The observation is ``keyed`` when both
ends derived the same keys (fingerprints), re-keyed to the same new keys, and each received the
other's audio with no authentication failures and at least one packet under the new keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..phone import PhoneProcess, phone_argv, write_demo_credentials
from . import Observation, Outcome, UseCaseEnv, use_case

__all__ = ["run", "run_call", "CallRun", "media_ok", "PACKETS", "REKEY_AFTER"]

#: RTP packets each end sends (20 ms each) and when the caller re-keys (seconds into the call).
PACKETS = 100
REKEY_AFTER = 0.8


class CallRun:
    """The events of one call between two phone processes."""

    def __init__(self, caller: list[dict[str, Any]], callee: list[dict[str, Any]], detail: str = "") -> None:
        self.caller = caller
        self.callee = callee
        self.detail = detail

    @staticmethod
    def _first(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
        return next((e for e in events if e.get("event") == name), None)

    def caller_event(self, name: str) -> dict[str, Any] | None:
        return self._first(self.caller, name)

    def callee_event(self, name: str) -> dict[str, Any] | None:
        return self._first(self.callee, name)


def run_call(env: UseCaseEnv, method: str, *, caller: str = "alice", callee: str = "bob",
             packets: int = PACKETS, rekey_after: float | None = REKEY_AFTER, creds: Path | None = None,
             record: bool = True, caller_extra: tuple[str, ...] = (), callee_extra: tuple[str, ...] = ()) -> CallRun:
    """Start the callee's phone, wait until it registered, run the caller's phone; both always stopped."""
    work = env.workdir / f"one-to-one-{method}"
    work.mkdir(parents=True, exist_ok=True)
    creds = creds or write_demo_credentials(method, work)
    proxy = (env.proxy_host, env.proxy_port)
    callee_aor, caller_aor = f"sip:{callee}@{env.domain}", f"sip:{caller}@{env.domain}"
    b = PhoneProcess(phone_argv(method, callee_aor, proxy, creds=creds, packets=packets, timeout=env.timeout,
                                record=work / f"{callee}.wav" if record else None, extra=callee_extra),
                     stderr=work / f"{callee}.stderr")
    a: PhoneProcess | None = None
    try:
        if b.wait_for("ready", env.timeout) is None:
            return CallRun([], b.finish(0.0), f"{callee}'s phone did not register: {b.stderr_tail()[-300:]}")
        a = PhoneProcess(phone_argv(method, caller_aor, proxy, creds=creds, call=callee_aor, packets=packets,
                                    rekey_after=rekey_after, timeout=env.timeout,
                                    record=work / f"{caller}.wav" if record else None, extra=caller_extra),
                         stderr=work / f"{caller}.stderr")
        limit = env.timeout * 2 + packets * 0.02 + 10.0
        caller_events = a.finish(limit)
        callee_events = b.finish(env.timeout)
        detail = "" if caller_events else f"{caller}'s phone printed nothing: {a.stderr_tail()[-300:]}"
        return CallRun(caller_events, callee_events, detail)
    finally:
        if a is not None:
            a.finish(0.0)
        b.finish(0.0)


def media_ok(report: dict[str, Any] | None, *, rekeyed: bool = False) -> bool:
    """Audio arrived and verified: packets received, none failing authentication, a tone heard; after a
    re-key, packets under the new keys too (the receiver switched keys)."""
    if not report or report.get("received", 0) <= 0 or report.get("auth_failures", 1) != 0:
        return False
    if rekeyed:
        return any(s.get("key_switches", 0) >= 1 for s in report.get("streams", []))
    return True


def observe(case: str, method: str, run: CallRun, *, rekey: bool) -> Observation:
    """The table cell for one call: keyed (same keys both ends, media verified) or what went wrong."""
    out, inn = run.caller_event("call"), run.callee_event("call")
    data: dict[str, Any] = {"caller": run.caller, "callee": run.callee}
    if out is None or inn is None:
        return Observation(case, method, Outcome.FAILED, run.detail or "no call event from one of the phones",
                           data=data)
    if out["mikey"] != "keyed" or inn["mikey"] != "keyed":
        refused = out if out["mikey"] != "keyed" else inn
        detail = f"SIP {refused['status']}, {refused.get('error')}"
        if refused.get("error_no") is not None:
            detail += f" (MIKEY Error no {refused['error_no']})"
        return Observation(case, method, Outcome.REFUSED, detail, data=data)
    data["fingerprints"] = out["fingerprints"]
    if out["fingerprints"] != inn["fingerprints"]:
        return Observation(case, method, Outcome.FAILED, "the two ends derived different keys", data=data)
    rk_out, rk_in = run.caller_event("rekeyed"), run.callee_event("rekeyed")
    rekeyed = False
    if rekey:
        if not rk_out or not rk_in or not rk_out.get("ok") or not rk_in.get("ok"):
            why = (rk_out or {}).get("error") or (rk_in or {}).get("error") or "no rekeyed event"
            return Observation(case, method, Outcome.FAILED, f"re-keying failed: {why}", data=data)
        if rk_out["fingerprints"] != rk_in["fingerprints"] or rk_out["fingerprints"] == out["fingerprints"]:
            return Observation(case, method, Outcome.FAILED, "re-keying gave different or unchanged keys", data=data)
        data["rekeyed_fingerprints"] = rk_out["fingerprints"]
        rekeyed = True
    m_out, m_in = run.caller_event("media"), run.callee_event("media")
    ok = media_ok(m_out, rekeyed=rekeyed) and media_ok(m_in, rekeyed=rekeyed)
    ends = [e for e in (run.caller_event("end"), run.callee_event("end")) if e]
    if len(ends) != 2 or not all(e.get("ok") for e in ends):
        return Observation(case, method, Outcome.FAILED, "a phone did not end cleanly", media_ok=ok, data=data)
    cs = ", ".join(f"CS {k} {v}" for k, v in out["fingerprints"].items())
    detail = f"keyed ({cs})" + ("; re-keyed by re-INVITE (same CSB)" if rekeyed else "")
    if m_out and m_in:
        detail += f"; media {m_out['received']}/{m_in['received']} packets verified"
    if out.get("setup_ms") is not None:
        data["setup_ms"] = out["setup_ms"]
    if not ok:
        return Observation(case, method, Outcome.FAILED, detail + "; media did not verify both ways",
                           media_ok=False, data=data)
    return Observation(case, method, Outcome.KEYED, detail, media_ok=True, data=data)


@use_case("one-to-one")
def run(env: UseCaseEnv, method: str) -> Observation:
    """Alice calls Bob through the proxy with *method*, media both ways, re-key by re-INVITE mid call."""
    try:
        call = run_call(env, method)
    except Exception as exc:  # the table must get a cell whatever happened (credentials, processes)
        return Observation("one-to-one", method, Outcome.FAILED, f"{type(exc).__name__}: {exc}")
    return observe("one-to-one", method, call, rekey=True)
