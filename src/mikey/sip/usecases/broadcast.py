"""Group broadcast (RFC 3830 §8.1 "simple one-to-many"): one sender, receivers sharing one group key.

The focus process is the sender (:mod:`mikey.sip.focus`): its stream starts ``WRAP_IN`` packets
before the SEQ wrap with ROC ``START_ROC``, so the ROC moves on during the call (RFC 3711 §3.3.1).
Two receivers are keyed at the start; after ``LATE_AFTER`` packets a late receiver is keyed with
the stream's *current* ROC in its CS ID map (RFC 3830 §6.1.1) and must decrypt from its first
packet; a second late receiver is told the ROC of the stream's start, and must fail
authentication on every packet (the wrong packet index).  RSA-R members call the sender (group
mode, RFC 4738 §3.2); with the other methods the sender calls them.  DH, DH-HMAC and IBAKE are
``not-served`` (pairwise keys, :data:`mikey.sip.group.NOT_SERVED`).
"""

from __future__ import annotations

from typing import Any

from ..focus import GroupConfig
from ..group import GroupStream, focus_dials_out, group_support, make_group_credentials
from . import Observation, Outcome, UseCaseEnv, use_case
from .conference import run_group

__all__ = ["run", "evaluate", "RECEIVERS", "LATE", "STALE", "PACKETS", "START_ROC", "WRAP_IN", "LATE_AFTER"]

RECEIVERS = ("alice", "bob")
LATE = "carol"  # keyed late with the current ROC
STALE = "dave"  # keyed late with the ROC of the stream's start (must fail)
SENDER_SSRC = 0x5E4D0001
TONE = 523.0
PACKETS = 150
START_ROC = 5
#: Packets before the SEQ wraps (so the ROC is START_ROC + 1 from then on).
WRAP_IN = 50
#: Packets sent before the late receivers are keyed (dial-out: the sender calls them then; dial-in: they
#: call LATE_DELAY seconds after starting and the sender holds their INVITE until then).
LATE_AFTER = 80
LATE_DELAY = 0.5
TONE_TOLERANCE = 15.0


def _event(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in events if e.get("event") == name), None)


def _stream(events: list[dict[str, Any]], ssrc: int) -> dict[str, Any] | None:
    media = _event(events, "media") or {}
    return next((s for s in media.get("streams", []) if s.get("ssrc") == f"{ssrc:08x}"), None)


def evaluate(events: dict[str, list[dict[str, Any]]]) -> tuple[bool, list[str], dict[str, Any]]:
    """Early and late receivers decrypt from their first packet; the stale-ROC one decrypts nothing."""
    problems: list[str] = []
    data: dict[str, Any] = {"receivers": {}}
    sender_media = _event(events.get("focus", []), "media") or {}
    data["sender"] = {k: sender_media.get(k) for k in ("sent", "first_seq", "next_seq", "send_roc")}
    for who in (*RECEIVERS, LATE, STALE):
        call = _event(events.get(who, []), "call")
        stream = _stream(events.get(who, []), SENDER_SSRC)
        rocs = (call or {}).get("rocs", {})
        info: dict[str, Any] = {"keyed_roc": rocs.get(f"{SENDER_SSRC:08x}")}
        if stream is not None:
            info |= {k: stream.get(k) for k in ("received", "auth_failures", "first_seq", "highest_seq", "roc",
                                                 "tone_hz", "lost")}
        data["receivers"][who] = info
        if call is None or call.get("mikey") != "keyed":
            problems.append(f"{who} was not keyed: {call.get('error') if call else 'no call event'}")
            continue
        if who == STALE:
            if stream is None or stream.get("received", 0) != 0 or stream.get("auth_failures", 0) == 0:
                problems.append(f"{who}, keyed with the starting ROC, was expected to fail authentication: {info}")
            continue
        if stream is None or not stream.get("received"):
            problems.append(f"{who} decrypted nothing")
            continue
        if stream.get("auth_failures") or stream.get("lost"):
            problems.append(f"{who}: {stream.get('auth_failures')} authentication failures, {stream.get('lost')} lost")
        tone = stream.get("tone_hz")
        if tone is None or abs(float(tone) - TONE) > TONE_TOLERANCE:
            problems.append(f"{who} heard {tone} Hz, the sender sent {TONE:g} Hz")
    late = data["receivers"].get(LATE, {})
    if late.get("keyed_roc") is not None and late["keyed_roc"] <= START_ROC:
        problems.append(f"the late receiver was keyed with ROC {late['keyed_roc']}, not the stream's current one")
    return not problems, problems, data


@use_case("group-broadcast")
def run(env: UseCaseEnv, method: str) -> Observation:
    """One sender near the SEQ wrap, two receivers, a late one with the current ROC, one with a stale ROC."""
    reason = group_support(method)
    if reason is not None:
        return Observation("group-broadcast", method, Outcome.NOT_SERVED, reason)
    work = env.workdir / f"broadcast-{method}"
    uri = {m: f"sip:{m}@{env.domain}" for m in (*RECEIVERS, LATE, STALE)}
    sender = f"sip:sender@{env.domain}"
    creds = make_group_credentials(method, work / "creds", sender, list(uri.values()))
    streams = (GroupStream(sender, SENDER_SSRC, START_ROC),)
    proxy = (env.proxy_host, env.proxy_port)
    common: dict[str, Any] = {"case": "broadcast", "method": method, "proxy": proxy,
                              "focus": sender, "creds": creds, "streams": streams, "timeout": env.timeout}
    focus_cfg = GroupConfig(role="focus", aor=sender, members=tuple(uri[m] for m in RECEIVERS),
                            late=(uri[LATE], uri[STALE]), stale_roc=(uri[STALE],), late_after=LATE_AFTER,
                            packets=PACKETS, tone=TONE, start_seq=0x10000 - WRAP_IN, **common)
    dial_in = not focus_dials_out(method)
    members = {m: GroupConfig(role="member", aor=uri[m], call_delay=LATE_DELAY if dial_in and m in (LATE, STALE)
                              else 0.0, **common) for m in uri}
    events, problem = run_group(env, focus_cfg, members, f"broadcast-{method}")
    ok, problems, data = evaluate(events)
    data["focus_ok"] = bool((_event(events.get("focus", []), "end") or {}).get("ok"))
    if problem:
        problems.insert(0, problem)
    if ok and not problem and data["focus_ok"]:
        late = data["receivers"][LATE]
        detail = (f"sender started at SEQ {0x10000 - WRAP_IN} ROC {START_ROC}; {len(RECEIVERS)} receivers keyed at "
                  f"the start, a late one keyed with ROC {late['keyed_roc']} decrypted from its first packet "
                  f"(SEQ {late['first_seq']}, {late['received']} packets, 0 auth failures); one told the starting "
                  f"ROC {START_ROC} failed authentication on all {data['receivers'][STALE].get('auth_failures')}")
        return Observation("group-broadcast", method, Outcome.KEYED, detail, media_ok=True, data=data)
    return Observation("group-broadcast", method, Outcome.FAILED, "; ".join(problems) or "the sender failed",
                       data=data)
