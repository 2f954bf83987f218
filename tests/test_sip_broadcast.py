"""Group broadcast through Kamailio (issue 12): one sender near the SEQ wrap with ROC 5, receivers keyed with
one group key; a late receiver keyed with the current ROC decrypts from its first packet, one keyed with the
starting ROC fails authentication on every packet (RFC 3830 §6.1.1, §8.1; RFC 3711 §3.3.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sipproxy

from mikey.sip.group import NOT_SERVED, SERVED
from mikey.sip.kamailio import Kamailio
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
