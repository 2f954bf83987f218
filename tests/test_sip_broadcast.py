"""Group broadcast through Kamailio (issue 12): one sender near the SEQ wrap with ROC 5, receivers keyed with
one group key; a late receiver keyed with the current ROC decrypts from its first packet, one keyed with the
starting ROC fails authentication on every packet (RFC 3830 §6.1.1, §8.1; RFC 3711 §3.3.1)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sipproxy

from mikey.sip.focus import GroupConfig, GroupProcess
from mikey.sip.group import NOT_SERVED, SERVED, GroupStream, make_group_credentials
from mikey.sip.kamailio import Kamailio
from mikey.sip.phone import PhoneProcess
from mikey.sip.usecases import USE_CASES, Outcome, UseCaseEnv
from mikey.sip.usecases.broadcast import LATE, PACKETS, RECEIVERS, STALE, START_ROC, TONE, WRAP_IN

kamailio = sipproxy.kamailio


@pytest.mark.parametrize("method", sorted(SERVED))
def test_broadcast_late_joiner_decrypts_from_its_first_packet(method: str, kamailio: Kamailio,
                                                              tmp_path: Path) -> None:
    env = UseCaseEnv(kamailio.host, kamailio.port, kamailio.domain, tmp_path, timeout=20.0)
    obs = USE_CASES["group-broadcast"](env, method)
    assert obs.outcome == Outcome.KEYED, obs.detail
    sender = obs.data["sender"]
    assert sender["sent"] >= PACKETS and sender["first_seq"] == 0x10000 - WRAP_IN
    assert sender["send_roc"] == START_ROC + 1  # the stream wrapped during the call
    rx = obs.data["receivers"]
    for who in RECEIVERS:
        r = rx[who]
        assert r["keyed_roc"] == START_ROC
        assert r["auth_failures"] == 0 and r["lost"] == 0
        assert r["first_seq"] == 0x10000 - WRAP_IN  # from the first packet, across the wrap
        assert r["received"] >= PACKETS  # keyed before the stream began: every packet
        assert r["roc"] == START_ROC + 1 and abs(r["tone_hz"] - TONE) <= 5.0
    late = rx[LATE]
    assert late["keyed_roc"] == START_ROC + 1
    assert late["auth_failures"] == 0 and late["lost"] == 0 and late["received"] >= 40
    # Every packet from the first that reached it verified: no gap, no failure.
    assert late["highest_seq"] - late["first_seq"] + 1 == late["received"]
    assert late["first_seq"] < 0x10000 - WRAP_IN  # it joined after the wrap
    assert abs(late["tone_hz"] - TONE) <= 5.0
    stale = rx[STALE]
    assert stale["keyed_roc"] == START_ROC
    assert stale["received"] == 0 and stale["auth_failures"] >= 10


@pytest.mark.parametrize("method", sorted(NOT_SERVED))
def test_broadcast_not_served(method: str, tmp_path: Path) -> None:
    env = UseCaseEnv("127.0.0.1", 9, "mikey.test", tmp_path)
    obs = USE_CASES["group-broadcast"](env, method)
    assert obs.outcome == Outcome.NOT_SERVED and obs.detail == NOT_SERVED[method]
    assert not any(tmp_path.iterdir())


def test_a_mikey_phone_joins_late_and_decrypts_from_its_first_packet(kamailio: Kamailio, tmp_path: Path) -> None:
    """The project's own phone, unmodified, as a late PSK receiver: the sender calls it after 80 packets with the
    current ROC in the CS ID map, and it decrypts the broadcast from its first packet (RFC 3830 §6.1.1)."""
    domain, proxy = kamailio.domain, (kamailio.host, kamailio.port)
    sender, alice, erin = (f"sip:{u}@{domain}" for u in ("sender", "alice", "erin"))
    creds = make_group_credentials("psk", tmp_path / "creds", sender, [alice, erin])
    common = {"case": "broadcast", "method": "psk", "proxy": proxy, "focus": sender, "creds": creds,
              "streams": (GroupStream(sender, 0x5E4D0001, START_ROC),), "timeout": 20.0}
    phone = PhoneProcess([sys.executable, "-m", "mikey", "phone", "--json", "--mode", "psk", "--user", erin,
                          "--proxy", f"{proxy[0]}:{proxy[1]}", "--psk", creds["parties"][erin]["psk"], "--calls", "1",
                          "--packets", "5", "--timeout", "20"], stderr=tmp_path / "erin.stderr")
    procs: list[GroupProcess] = []
    try:
        assert phone.wait_for("ready", 15.0) is not None
        procs.append(GroupProcess(GroupConfig(role="member", aor=alice, **common), tmp_path, "alice"))
        assert procs[0].wait_for("ready", 15.0) is not None
        procs.append(GroupProcess(GroupConfig(role="focus", aor=sender, members=(alice,), late=(erin,), late_after=80,
                                              packets=PACKETS, tone=TONE, start_seq=0x10000 - WRAP_IN, **common),
                                  tmp_path, "focus"))
        assert procs[1].wait_end(40.0)
        events = phone.finish(20.0)
    finally:
        phone.finish(0.0)
        for proc in procs:
            proc.stop()
    keyed = next(e for e in procs[1].events if e["event"] == "keyed" and e["member"] == erin)
    assert keyed["roc"] == START_ROC + 1
    call = next(e for e in events if e["event"] == "call")
    assert call["mikey"] == "keyed" and call["status"] == 200
    media = next(e for e in events if e["event"] == "media")
    (stream,) = [s for s in media["streams"] if s["ssrc"] == "5e4d0001"]
    assert stream["roc"] == START_ROC + 1 and stream["auth_failures"] == 0 and stream["lost"] == 0
    assert stream["received"] >= 40 and stream["highest_seq"] - stream["first_seq"] + 1 == stream["received"]
    assert stream["first_seq"] < 0x10000 - WRAP_IN and abs(stream["tone_hz"] - TONE) <= 5.0
