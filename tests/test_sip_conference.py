"""Conference through Kamailio (issue 12): three member processes and a relaying focus, one group key
(RFC 3830 §8, RFC 4738 §3.2, RFC 6509 + TS 33.180 GMK, RFC 6043 §9); every member decrypts both others'
tones; the pairwise methods are not served; a member with the wrong key is refused cleanly."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sipproxy
from tshark_util import TSHARK

from mikey.constants import ErrorNo
from mikey.sip.focus import GroupConfig, GroupProcess
from mikey.sip.g711 import ulaw_encode
from mikey.sip.group import METHODS, NOT_SERVED, SERVED, GroupStream, make_group_credentials
from mikey.sip.kamailio import Kamailio
from mikey.sip.media import ToneSource
from mikey.sip.phone import PhoneProcess
from mikey.sip.usecases import USE_CASES, Outcome, UseCaseEnv
from mikey.sip.usecases.conference import MEMBERS, PACKETS, SSRCS, TONES, evaluate, run_group

kamailio = sipproxy.kamailio


def env_for(k: Kamailio, tmp_path: Path) -> UseCaseEnv:
    return UseCaseEnv(k.host, k.port, k.domain, tmp_path, timeout=20.0)


def test_registered() -> None:
    import mikey.sip.usecases.conference  # noqa: F401  (registers the case)

    assert "conference" in USE_CASES
    assert set(SERVED) | set(NOT_SERVED) == set(METHODS)


@pytest.mark.parametrize("method", sorted(SERVED))
def test_conference_every_member_decrypts_every_other(method: str, kamailio: Kamailio, tmp_path: Path) -> None:
    obs = USE_CASES["conference"](env_for(kamailio, tmp_path), method)
    assert obs.outcome == Outcome.KEYED, obs.detail
    assert obs.media_ok and obs.data["same_keys"] and obs.data["focus_ok"]
    for who, seen in obs.data["members"].items():
        assert seen["sent"] == PACKETS
        assert seen["auth_failures"] == 0
        assert set(seen["heard"]) == set(MEMBERS) - {who}
        for other, heard in seen["heard"].items():
            assert heard["received"] >= PACKETS * 0.8, (who, other, heard)
            assert heard["auth_failures"] == 0 and heard["replays"] == 0
            assert abs(heard["tone_hz"] - TONES[other]) <= 5.0, (who, other, heard)
    # The focus forwarded every member's packets (RTP + RTCP) to both others, without keys.
    relay = obs.data["relay"]
    assert len(relay["forwarded"]) == len(MEMBERS)
    for port, count in relay["forwarded"].items():
        assert count >= PACKETS
        assert relay["delivered"][port] >= 2 * PACKETS * 0.8


@pytest.mark.parametrize("method", sorted(NOT_SERVED))
def test_conference_not_served(method: str, tmp_path: Path) -> None:
    env = UseCaseEnv("127.0.0.1", 9, "mikey.test", tmp_path)  # never contacted: nothing is started
    obs = USE_CASES["conference"](env, method)
    assert obs.outcome == Outcome.NOT_SERVED
    assert obs.detail == NOT_SERVED[method] and "relay focus" in obs.detail
    assert not any(tmp_path.iterdir())


def test_member_with_the_wrong_psk_is_refused(kamailio: Kamailio, tmp_path: Path) -> None:
    """Carol holds another PSK: she answers 488 with the MIKEY Error (Auth failure, Error no 0), derives no keys; the
    others still key and hear each other (RFC 3830 §5.1.2, RFC 4567 §4.1)."""
    env = env_for(kamailio, tmp_path)
    uri = {m: f"sip:{m}@{env.domain}" for m in MEMBERS}
    focus = f"sip:focus@{env.domain}"
    creds = make_group_credentials("psk", tmp_path / "creds", focus, list(uri.values()))
    streams = tuple(GroupStream(uri[m], SSRCS[m]) for m in MEMBERS)
    common = {"case": "conference", "method": "psk", "proxy": (env.proxy_host, env.proxy_port), "focus": focus,
              "streams": streams, "packets": 60, "timeout": 12.0}
    focus_cfg = GroupConfig(role="focus", aor=focus, members=tuple(uri.values()), creds=creds, **common)
    wrong = {**creds, "parties": {**creds["parties"], uri["carol"]: {"uri": uri["carol"], "psk": "00" * 16}}}
    members = {m: GroupConfig(role="member", aor=uri[m], ssrc=SSRCS[m], tone=TONES[m],
                              creds=wrong if m == "carol" else creds, **common) for m in MEMBERS}
    events, _ = run_group(env, focus_cfg, members, "wrong-psk")
    carol = next(e for e in events["carol"] if e["event"] == "call")
    assert carol["status"] == 488 and carol["mikey"] == "refused" and carol["error_no"] == ErrorNo.AUTH_FAILURE
    assert not any(e["event"] == "media" and e["received"] for e in events["carol"])
    refused = [e for e in events["focus"] if e["event"] == "refused"]
    assert [e["member"] for e in refused] == [uri["carol"]] and refused[0]["status"] == 488
    ok, problems, data = evaluate(events, {m: members[m] for m in ("alice", "bob")}, 60)
    assert ok, problems
    assert data["members"]["alice"]["heard"]["bob"]["auth_failures"] == 0
    assert not next(e for e in events["focus"] if e["event"] == "end")["ok"]


def test_config_round_trip_and_bad_config() -> None:
    from mikey.sip.focus import FocusError

    cfg = GroupConfig(role="member", case="conference", method="psk", aor="sip:a@x", proxy=("127.0.0.1", 5060),
                      focus="sip:f@x", creds={"method": "psk"}, streams=(GroupStream("sip:a@x", 7, 3),), ssrc=7)
    assert GroupConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(FocusError, match="role"):
        dataclasses.replace(cfg, role="mixer")
    with pytest.raises(FocusError, match="not in the roster"):
        dataclasses.replace(cfg, ssrc=8)
    with pytest.raises(FocusError, match="bad group configuration"):
        GroupConfig.from_json('{"role": "member"}')
    assert "creds" not in repr(cfg)


def test_focus_process_refuses_bad_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m mikey.sip.focus CONFIG``: a broken file or a method that cannot key a group is one error event
    and ``end`` with ok false, exit 1 -- nothing started."""
    import json

    from mikey.sip.focus import main

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad)]) == 1
    dh = tmp_path / "dh.json"
    cfg = GroupConfig(role="focus", case="conference", method="dh", aor="sip:f@x", proxy=("127.0.0.1", 9),
                      focus="sip:f@x", creds={"method": "dh", "focus": "sip:f@x"}, streams=(GroupStream("sip:a@x", 7),),
                      members=("sip:a@x",))
    dh.write_text(cfg.to_json())
    assert main([str(dh)]) == 1
    assert main([]) == 2
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["error", "end", "error", "end"]
    assert "bad group configuration" in events[0]["error"] and "relay focus" in events[2]["error"]
    assert not any(e.get("ok") for e in events)


def run_tshark(tmp_path: Path, *args: str) -> list[list[str]]:
    assert TSHARK is not None
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.run([TSHARK, "-n", *args], capture_output=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return [line.split("\t") for line in proc.stdout.decode().splitlines()]


@pytest.mark.skipif(TSHARK is None and not os.environ.get("CI"), reason="tshark (Wireshark) is not installed")
def test_relayed_media_is_srtp_on_the_wire(kamailio: Kamailio, tmp_path: Path) -> None:
    """What the relay sent Alice, as tshark reads it: RTP headers of Bob's and Carol's SSRCs, each payload the
    encrypted PCMU plus the 80-bit tag, never the plain µ-law of their tones (the focus holds no key)."""
    assert TSHARK is not None, "CI is set: tshark must be installed"
    env = env_for(kamailio, tmp_path)
    uri = {m: f"sip:{m}@{env.domain}" for m in MEMBERS}
    focus = f"sip:focus@{env.domain}"
    creds = make_group_credentials("psk", tmp_path / "creds", focus, list(uri.values()))
    common = {"case": "conference", "method": "psk", "proxy": (env.proxy_host, env.proxy_port), "focus": focus,
              "creds": creds, "streams": tuple(GroupStream(uri[m], SSRCS[m]) for m in MEMBERS), "packets": 50,
              "timeout": 15.0}
    store = tmp_path / "alice.pcap"
    members = {m: GroupConfig(role="member", aor=uri[m], ssrc=SSRCS[m], tone=TONES[m],
                              store_srtp=str(store) if m == "alice" else None, **common) for m in MEMBERS}
    events, problem = run_group(env, GroupConfig(role="focus", aor=focus, members=tuple(uri.values()), **common),
                                members, "tshark")
    assert not problem, problem
    port = next(e for e in events["alice"] if e["event"] == "media")["port"]
    rows = run_tshark(tmp_path, "-r", str(store), "-d", f"udp.port=={port},rtp", "-Y", "rtp && !rtcp",
                      "-T", "fields", "-e", "rtp.ssrc", "-e", "rtp.p_type", "-e", "rtp.payload")
    by_ssrc: dict[int, list[bytes]] = {}
    for ssrc, ptype, payload in rows:
        assert ptype == "0"
        by_ssrc.setdefault(int(ssrc, 16), []).append(bytes.fromhex(payload.replace(":", "")))
    assert set(by_ssrc) == {SSRCS["bob"], SSRCS["carol"]}
    for who in ("bob", "carol"):
        tone = ToneSource(TONES[who])
        plain = {ulaw_encode(tone.read(160)) for _ in range(50)}
        packets = by_ssrc[SSRCS[who]]
        assert len(packets) >= 40
        assert all(len(p) == 160 + 10 and p[:160] not in plain for p in packets)


def test_a_mikey_phone_joins_an_rsa_r_conference(kamailio: Kamailio, tmp_path: Path) -> None:
    """The project's own phone, unmodified, calls the focus in RSA-R group mode (``--group``); the focus learns
    its SSRC from the offer's a=ssrc (RFC 5576) before keying anyone, and all three decrypt each other."""
    env = env_for(kamailio, tmp_path)
    uri = {m: f"sip:{m}@{env.domain}" for m in MEMBERS}
    focus = f"sip:focus@{env.domain}"
    creds = make_group_credentials("rsa-r", tmp_path / "creds", focus, list(uri.values()))
    streams = (GroupStream(uri["alice"], SSRCS["alice"]), GroupStream(uri["bob"], SSRCS["bob"]),
               GroupStream(uri["carol"], 0))  # Carol's phone picks its own SSRC
    common = {"case": "conference", "method": "rsa-r", "proxy": (env.proxy_host, env.proxy_port), "focus": focus,
              "creds": creds, "streams": streams, "packets": PACKETS, "timeout": 20.0}
    procs = [GroupProcess(GroupConfig(role="focus", aor=focus, members=tuple(uri.values()), **common), tmp_path,
                          "focus")]
    phone: PhoneProcess | None = None
    try:
        assert procs[0].wait_for("ready", 15.0) is not None
        procs += [GroupProcess(GroupConfig(role="member", aor=uri[m], ssrc=SSRCS[m], tone=TONES[m], **common),
                               tmp_path, m) for m in ("alice", "bob")]
        carol = creds["parties"][uri["carol"]]
        phone = PhoneProcess([sys.executable, "-m", "mikey", "phone", "--json", "--mode", "rsa-r", "--user",
                              uri["carol"], "--proxy", f"{env.proxy_host}:{env.proxy_port}", "--call", focus,
                              "--cert", carol["cert"], "--key", carol["key"], "--ca", creds["ca"], "--group",
                              "--tone", f"{TONES['carol']:g}", "--packets", str(PACKETS), "--timeout", "20"],
                             stderr=tmp_path / "carol.stderr")
        phone_events = phone.finish(45.0)
        assert all(p.wait_end(20.0) for p in procs)
    finally:
        if phone is not None:
            phone.finish(0.0)
        events = {p.name: p.stop() for p in procs}
    media = next(e for e in phone_events if e["event"] == "media")
    carol_ssrc = media["local_ssrc"]
    learnt = next(e for e in events["focus"] if e["event"] == "learnt-ssrc")
    assert learnt == {"event": "learnt-ssrc", "member": uri["carol"], "ssrc": carol_ssrc}
    call = next(e for e in phone_events if e["event"] == "call")
    assert call["mikey"] == "keyed" and len(call["fingerprints"]) == 3
    heard = {s["ssrc"]: s for s in media["streams"]}
    for m in ("alice", "bob"):
        s = heard[f"{SSRCS[m]:08x}"]
        assert s["received"] >= PACKETS * 0.8 and s["auth_failures"] == 0 and abs(s["tone_hz"] - TONES[m]) <= 5.0
        member_media = next(e for e in events[m] if e["event"] == "media")
        (from_carol,) = [s for s in member_media["streams"] if s["ssrc"] == carol_ssrc]
        assert from_carol["received"] >= PACKETS * 0.8 and from_carol["auth_failures"] == 0
        assert abs(from_carol["tone_hz"] - TONES["carol"]) <= 5.0
