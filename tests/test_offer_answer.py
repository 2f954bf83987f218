"""MIKEY in SDP offer/answer and the RTSP KeyMgmt header (RFC 4567 §3.1, §3.2, §4.1, §5)."""

from __future__ import annotations

import base64

import pytest

from mikey.errors import MikeyDecodeError
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.offer_answer import (
    make_answer,
    make_offer,
    rtsp_keymgmt_header,
    take_answer,
    take_offer,
    take_rtsp_keymgmt,
)
from mikey.rtsp import parse_keymgmt_header
from mikey.sdp import make_sdp, parse_key_mgmt
from mikey.session import CryptoSessionBundle

NOW = 1_700_000_000.0
PSK = b"k" * 16
MSG = bytes(range(64))
OTHER = b"\x01\x02\x03"

TWO_MEDIA = make_sdp(
    "call", "192.0.2.1", (("audio", 49000, "RTP/SAVP", (0,)), ("video", 51372, "RTP/SAVP", (99,)))
)


def test_offer_made_from_scratch() -> None:
    sdp = make_offer(MSG, address="192.0.2.7", port=40000)
    lines = sdp.split("\r\n")
    assert lines[0] == "v=0" and "c=IN IP4 192.0.2.7" in lines and "m=audio 40000 RTP/SAVP 0" in lines
    assert f"a=key-mgmt:mikey {base64.b64encode(MSG).decode()}" in lines
    # Session level: before the first m= line (RFC 4567 §3.1).
    assert lines.index(f"a=key-mgmt:mikey {base64.b64encode(MSG).decode()}") < lines.index("m=audio 40000 RTP/SAVP 0")
    assert sdp.endswith("\r\n")
    assert take_offer(sdp) == MSG


def test_offer_at_media_level_of_given_sdp() -> None:
    sdp = make_offer(MSG, sdp=TWO_MEDIA, media_index=1)
    attrs = parse_key_mgmt(sdp)
    assert [(a.level, a.media_index, a.data) for a in attrs] == [("media", 1, MSG)]
    assert take_offer(sdp) == MSG  # first media-level one when there is no session-level one
    assert take_offer(sdp, media_index=1) == MSG
    with pytest.raises(MikeyDecodeError):
        take_offer(sdp, media_index=0)


def test_session_level_wins_for_take_and_media_level_per_media() -> None:
    sdp = make_offer(OTHER, sdp=make_offer(MSG, sdp=TWO_MEDIA), media_index=0)
    assert take_offer(sdp) == MSG
    assert take_offer(sdp, media_index=0) == OTHER  # media level overrides session level (§3.1)
    assert take_offer(sdp, media_index=1) == MSG


def test_offer_replaces_mikey_at_same_level_and_keeps_other_protocols() -> None:
    base = TWO_MEDIA.replace("t=0 0\r\n", "t=0 0\r\na=key-mgmt:keyp1 727gkdOshsuiSDF9sdhsdKnD\r\n")
    first = make_offer(MSG, sdp=base)
    second = make_offer(OTHER, sdp=first)
    attrs = parse_key_mgmt(second)
    assert [(a.prot_id, a.level) for a in attrs] == [("keyp1", "session"), ("mikey", "session")]
    assert take_offer(second) == OTHER


def test_lf_line_endings_kept() -> None:
    sdp = make_offer(MSG, sdp=TWO_MEDIA.replace("\r\n", "\n"))
    assert "\r" not in sdp and sdp.endswith("\n")
    assert take_offer(sdp) == MSG


def test_offer_without_mikey_rejected() -> None:
    with pytest.raises(MikeyDecodeError):
        take_offer(TWO_MEDIA)
    with pytest.raises(MikeyDecodeError):
        take_offer(TWO_MEDIA + "a=key-mgmt:mikey !!notbase64!!\r\n")


def test_answer_with_and_without_message() -> None:
    answer = make_answer(MSG, port=50000)
    assert "m=audio 50000 RTP/SAVP 0" in answer
    assert take_answer(answer) == MSG
    empty = make_answer(None)
    assert "key-mgmt" not in empty
    assert take_answer(empty) is None
    # An answer built from the offer's body loses the offer's key-mgmt.
    assert take_answer(make_answer(None, sdp=make_offer(MSG))) is None


@pytest.mark.parametrize("verify", [True, False])
def test_psk_exchange_through_offer_answer(verify: bool) -> None:
    initiator = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=0xAAAA0001)], v=verify)
    offer = make_offer(initiator.create_message(NOW))
    outcome = PskResponder(PSK).receive(take_offer(offer), NOW)
    answer = make_answer(outcome.response)
    r_message = take_answer(answer)
    assert (r_message is not None) == verify
    result = initiator.receive(r_message, NOW) if r_message is not None else initiator.result
    assert result.authenticated == verify
    assert CryptoSessionBundle(result).fingerprints() == CryptoSessionBundle(outcome.result).fingerprints()


def test_rtsp_header_round_trip() -> None:
    value = rtsp_keymgmt_header(MSG, "rtsp://example.com/movie")
    assert value == f'prot=mikey; uri="rtsp://example.com/movie"; data="{base64.b64encode(MSG).decode()}"'
    [entry] = parse_keymgmt_header(value)
    assert (entry.prot, entry.uri, entry.data) == ("mikey", "rtsp://example.com/movie", MSG)
    assert take_rtsp_keymgmt(value) == MSG
    assert take_rtsp_keymgmt("KeyMgmt: " + value, uri="rtsp://example.com/movie") == MSG


def test_rtsp_uri_selection() -> None:
    b64 = base64.b64encode
    value = (
        f'prot=foo; data="{b64(b"x").decode()}", '
        f'prot=mikey; uri="rtsp://h/a"; data="{b64(MSG).decode()}", '
        f'prot=MIKEY; data="{b64(OTHER).decode()}"'
    )
    assert take_rtsp_keymgmt(value) == MSG
    assert take_rtsp_keymgmt(value, uri="rtsp://h/a") == MSG
    assert take_rtsp_keymgmt(value, uri="rtsp://h/b") == OTHER  # an entry without uri applies to all
    with pytest.raises(MikeyDecodeError):
        take_rtsp_keymgmt(f'prot=foo; data="{b64(b"x").decode()}"')
    with pytest.raises(MikeyDecodeError):
        take_rtsp_keymgmt(f'prot=mikey; uri="rtsp://h/a"; data="{b64(MSG).decode()}"', uri="rtsp://h/b")
    with pytest.raises(MikeyDecodeError):
        take_rtsp_keymgmt('prot=mikey; uri="rtsp://h/a"')
