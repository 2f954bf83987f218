"""Conference (RFC 3830 §2.1 c/d, §8): three members through a focus, one group key, SRTP relayed.

Each member is a process registered at Kamailio with a fixed SSRC and its own tone; the focus
process (:mod:`mikey.sip.focus`) keys every member with the same group key through a call each
(it calls them -- PSK, PK, MIKEY-SAKKE GMK, TICKET -- or they call it, RSA-R group mode) and
relays their SRTP without keys.  The observation is ``keyed`` when every member derived the same
keys for every stream and decrypted every other member's stream: packets received, no
authentication failure, and the other member's tone heard.  DH, DH-HMAC and IBAKE are
``not-served`` (pairwise keys, :data:`mikey.sip.group.NOT_SERVED`).
"""

from __future__ import annotations

from typing import Any

from ..focus import GroupConfig, GroupProcess
from ..group import GroupStream, focus_dials_out, group_support, make_group_credentials
from . import Observation, Outcome, UseCaseEnv, use_case

__all__ = ["run", "MEMBERS", "PACKETS", "TONES", "evaluate", "run_group"]

#: The members (user part), their SSRCs and tones (Hz).
MEMBERS = ("alice", "bob", "carol")
SSRCS = {"alice": 0x0A11CE01, "bob": 0x0B0B0B02, "carol": 0x0CA201E3}
TONES = {"alice": 440.0, "bob": 660.0, "carol": 880.0}
#: RTP packets (20 ms) each member sends.
PACKETS = 100
#: A stream counts as decrypted when at least this share of the sender's packets verified.
MIN_SHARE = 0.4
#: The tone heard must be within this many Hz of the sender's.
TONE_TOLERANCE = 15.0


def run_group(env: UseCaseEnv, focus_cfg: GroupConfig, members: dict[str, GroupConfig], name: str,
              ) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Start the members and the focus (the side that is called first), wait for the end; all always stopped.

    Returns every process's events by name and a problem text ("" when every process ended)."""
    work = env.workdir / name
    work.mkdir(parents=True, exist_ok=True)
    procs: dict[str, GroupProcess] = {}
    problem = ""
    try:
        first, then = (list(members), ["focus"]) if focus_dials_out(focus_cfg.method) else (["focus"], list(members))
        configs = {"focus": focus_cfg, **members}
        for who in first:  # started together, then each must have registered before the others start
            procs[who] = GroupProcess(configs[who], work, who)
        for who in first:
            if procs[who].wait_for("ready", env.timeout) is None:
                problem = problem or f"{who} did not register: {procs[who].stderr_tail(300)}"
        if not problem:
            for who in then:
                procs[who] = GroupProcess(configs[who], work, who)
        if not problem:
            limit = focus_cfg.timeout + 15.0
            for who, proc in procs.items():
                if not proc.wait_end(limit):
                    problem = problem or f"{who} did not finish in {limit:g} s: {proc.stderr_tail(300)}"
    finally:
        events = {who: proc.stop() for who, proc in procs.items()}
    return events, problem


def _event(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in events if e.get("event") == name), None)


def evaluate(events: dict[str, list[dict[str, Any]]], members: dict[str, GroupConfig], packets: int,
             ) -> tuple[bool, list[str], dict[str, Any]]:
    """Did every member get the same keys and decrypt every other member's stream?  (ok, problems, data)"""
    problems: list[str] = []
    data: dict[str, Any] = {"members": {}}
    prints: dict[str, dict[str, str]] = {}
    for who in members:
        call = _event(events.get(who, []), "call")
        media = _event(events.get(who, []), "media")
        if call is None or call.get("mikey") != "keyed":
            problems.append(f"{who} was not keyed: {call.get('error') if call else 'no call event'}")
            continue
        prints[who] = call.get("fingerprints", {})
        heard: dict[str, Any] = {}
        for other, other_cfg in members.items():
            if other == who:
                continue
            ssrc = f"{other_cfg.ssrc:08x}"
            stream = next((s for s in (media or {}).get("streams", []) if s.get("ssrc") == ssrc), None)
            if stream is None:
                problems.append(f"{who} received nothing from {other}")
                continue
            heard[other] = {k: stream.get(k) for k in ("received", "auth_failures", "replays", "tone_hz", "lost")}
            if stream.get("received", 0) < packets * MIN_SHARE:
                problems.append(f"{who} decrypted only {stream.get('received')} of {other}'s {packets} packets")
            if stream.get("auth_failures", 0) or stream.get("replays", 0):
                problems.append(f"{who}: {stream.get('auth_failures')} authentication failures on {other}'s stream")
            tone = stream.get("tone_hz")
            if tone is None or abs(float(tone) - other_cfg.tone) > TONE_TOLERANCE:
                problems.append(f"{who} heard {tone} Hz from {other}, who sent {other_cfg.tone:g} Hz")
        data["members"][who] = {"heard": heard, "sent": (media or {}).get("sent"),
                                "auth_failures": (media or {}).get("auth_failures")}
    distinct = {tuple(sorted(p.items())) for p in prints.values()}
    if len(distinct) > 1:
        problems.append("the members derived different keys for the group's streams")
    data["same_keys"] = len(distinct) == 1 and len(prints) == len(members)
    return not problems, problems, data


@use_case("conference")
def run(env: UseCaseEnv, method: str) -> Observation:
    """Three members through a relaying focus with one group key (see the module doc)."""
    reason = group_support(method)
    if reason is not None:
        return Observation("conference", method, Outcome.NOT_SERVED, reason)
    work = env.workdir / f"conference-{method}"
    uri = {m: f"sip:{m}@{env.domain}" for m in MEMBERS}
    focus = f"sip:focus@{env.domain}"
    creds = make_group_credentials(method, work / "creds", focus, [uri[m] for m in MEMBERS])
    streams = tuple(GroupStream(uri[m], SSRCS[m]) for m in MEMBERS)
    proxy = (env.proxy_host, env.proxy_port)
    common: dict[str, Any] = {"case": "conference", "method": method, "proxy": proxy, "focus": focus,
                              "creds": creds, "streams": streams, "packets": PACKETS, "timeout": env.timeout}
    focus_cfg = GroupConfig(role="focus", aor=focus, members=tuple(uri[m] for m in MEMBERS), **common)
    members = {m: GroupConfig(role="member", aor=uri[m], ssrc=SSRCS[m], tone=TONES[m], **common) for m in MEMBERS}
    events, problem = run_group(env, focus_cfg, members, f"conference-{method}")
    ok, problems, data = evaluate(events, members, PACKETS)
    relay = _event(events.get("focus", []), "relay")
    data["relay"] = relay
    data["focus_ok"] = bool((_event(events.get("focus", []), "end") or {}).get("ok"))
    if problem:
        problems.insert(0, problem)
    if ok and not problem and data["focus_ok"]:
        who = "the focus called each member" if focus_dials_out(method) else "each member called the focus"
        low = min(h["received"] for m in data["members"].values() for h in m["heard"].values())
        detail = (f"{len(MEMBERS)} members, {who} through Kamailio; one group key, SRTP relayed undecrypted; every "
                  f"member decrypted both others' tones (>= {low} of {PACKETS} packets each, 0 auth failures)")
        return Observation("conference", method, Outcome.KEYED, detail, media_ok=True, data=data)
    return Observation("conference", method, Outcome.FAILED, "; ".join(problems) or "the focus failed", data=data)
