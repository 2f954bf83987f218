"""RFC 4567 §3.1 key-mgmt attribute in SDP, with the §5 examples as fixtures."""

from __future__ import annotations

import base64
import json
import pathlib
from typing import Any

import pytest

from mikey.errors import MikeyDecodeError
from mikey.sdp import (
    KeyMgmtAttribute,
    add_key_mgmt,
    decode_key_mgmt_value,
    format_key_mgmt,
    make_sdp,
    mikey_message_for_media,
    mikey_messages,
    parse_key_mgmt,
)

VECTORS = pathlib.Path(__file__).parent / "vectors"
STREAMWIDE: list[dict[str, Any]] = json.loads((VECTORS / "mikey_sakke_streamwide.json").read_text())["cases"][
    "i_messages"
]

# RFC 4567 §5.1: the base64 is wrapped over three lines in the RFC; joined here.
EX1_OFFER_B64 = (
    "AQAFgM0XflABAAAAAAAAAAAAAAsAyONQ6gAAAAAGEEoo2pee4hp2"
    "UaDX8ZE22YwKAAAPZG9uYWxkQGR1Y2suY29tAQAAAAAAAQAk0JKpgaVkDaawi9whVBtBt"
    "0KZ14ymNuu62+Nv3ozPLygwK/GbAV9iemnGUIZ19fWQUOSrzKTAv9zV"
)
EX1_ANSWER_B64 = (
    "AQEFgM0XflABAAAAAAAAAAAAAAYAyONQ6gAAAAAJAAAQbWlja2V5QG1vdXNlLmNvbQABn8HdGE5BMDXFIuGEga+62AgY5cc="
)

EX1_OFFER = f"""v=0
o=alice 2891092738 2891092738 IN IP4 w-land.example.com
s=Cool stuff
e=alice@w-land.example.com
t=0 0
c=IN IP4 w-land.example.com
a=key-mgmt:mikey {EX1_OFFER_B64}
m=audio 49000 RTP/SAVP 98
a=rtpmap:98 AMR/8000
m=video 52230 RTP/SAVP 31
a=rtpmap:31 H261/90000
""".replace("\n", "\r\n")

# RFC 4567 §5.4 (data truncated with "..." in the RFC, so not valid base64).
EX4_SDP = """v=0
o=actionmovie 2891092738 2891092738 IN IP4 movie.example.com
s=Action Movie
e=action@movie.example.com
t=0 0
c=IN IP4 movie.example.com
a=control:rtsp://movie.example.com/action
m=audio 0 RTP/SAVP 98
a=rtpmap:98 AMR/8000
a=key-mgmt:mikey AQAFgM0XflABAAAAAAAAAAAAA...
a=control:rtsp://movie.example.com/action/audio
m=video 0 RTP/SAVP 31
a=rtpmap:31 H261/90000
a=key-mgmt:mikey AQAFgM0AdlABAAAAAAAAAAAAA...
a=control:rtsp://movie.example.com/action/video
"""


def test_rfc4567_example1_session_level() -> None:
    attrs = parse_key_mgmt(EX1_OFFER)
    assert len(attrs) == 1
    attr = attrs[0]
    assert (attr.prot_id, attr.level, attr.media_index) == ("mikey", "session", None)
    # A PSK I_MESSAGE: version 1, data type 0, next payload 5 (T), CSB ID 0x80cd177e.
    assert attr.data[:8].hex() == "01000580cd177e50"
    assert len(attr.data) == 132
    assert mikey_messages(EX1_OFFER) == attrs
    assert mikey_message_for_media(EX1_OFFER, 0) == attr.data
    assert mikey_message_for_media(EX1_OFFER, 1) == attr.data


def test_rfc4567_example1_answer_value() -> None:
    data = decode_key_mgmt_value("mikey " + EX1_ANSWER_B64)
    assert data[:2] == b"\x01\x01"  # PSK verification message, data type 1
    assert decode_key_mgmt_value(EX1_ANSWER_B64) == data
    assert decode_key_mgmt_value(" a=key-mgmt:mikey " + EX1_ANSWER_B64 + "\r\n") == data
    assert format_key_mgmt(data) == "a=key-mgmt:mikey " + EX1_ANSWER_B64


def test_rfc4567_example4_media_level_truncated_data_rejected() -> None:
    with pytest.raises(MikeyDecodeError):
        parse_key_mgmt(EX4_SDP)


def test_media_level_overrides_session_level() -> None:
    session_msg, audio_msg = b"\x01session", b"\x01audio"
    sdp = make_sdp("s", "192.0.2.1", [("audio", 5000, "RTP/SAVP", [0]), ("video", 5002, "RTP/SAVP", [31])])
    sdp = add_key_mgmt(sdp, session_msg)
    sdp = add_key_mgmt(sdp, audio_msg, media_index=0)
    attrs = parse_key_mgmt(sdp)
    assert attrs == [
        KeyMgmtAttribute("mikey", session_msg, "session", None, base64.b64encode(session_msg).decode()),
        KeyMgmtAttribute("mikey", audio_msg, "media", 0, base64.b64encode(audio_msg).decode()),
    ]
    assert mikey_message_for_media(sdp, 0) == audio_msg
    assert mikey_message_for_media(sdp, 1) == session_msg
    assert mikey_message_for_media(make_sdp("s", "192.0.2.1"), 0) is None


def test_unknown_protocol_kept() -> None:
    sdp = EX1_OFFER.replace("t=0 0\r\n", "t=0 0\r\na=key-mgmt:otherkmp not*base64\r\n", 1)
    attrs = parse_key_mgmt(sdp)
    assert [(a.prot_id, a.raw) for a in attrs] == [("otherkmp", "not*base64"), ("mikey", EX1_OFFER_B64)]
    assert attrs[0].data == b""
    assert [a.prot_id for a in mikey_messages(sdp)] == ["mikey"]


def test_optional_leading_space_and_case() -> None:
    # key-mgmt-att-value = 0*1SP prtcl-id SP keymgmt-data
    attrs = parse_key_mgmt("v=0\na=key-mgmt: MIKEY AQID\n")
    assert attrs[0].prot_id == "MIKEY" and attrs[0].data == b"\x01\x02\x03"
    assert mikey_messages("v=0\na=key-mgmt: MIKEY AQID\n") == attrs


@pytest.mark.parametrize(
    "bad", ["a=key-mgmt:mikey", "a=key-mgmt:mikey AQI", "a=key-mgmt:mikey AQ$D", "a=key-mgmt:mi/key AQID"]
)
def test_malformed_attributes(bad: str) -> None:
    with pytest.raises(MikeyDecodeError):
        parse_key_mgmt("v=0\r\n" + bad + "\r\n")


def test_decode_value_errors() -> None:
    with pytest.raises(MikeyDecodeError):
        decode_key_mgmt_value("mikey !!!")
    with pytest.raises(MikeyDecodeError):
        decode_key_mgmt_value("")
    with pytest.raises(MikeyDecodeError):
        decode_key_mgmt_value("sdes AQID")


@pytest.mark.parametrize("message", STREAMWIDE, ids=lambda m: m["name"])
def test_streamwide_sdp_values(message: dict[str, Any]) -> None:
    data = decode_key_mgmt_value(message["sdp_key_mgmt_value"])
    assert data.hex() == message["i_message_hex"]
    assert data == base64.b64decode(message["i_message_base64"])


def test_add_key_mgmt_session_level_keeps_crlf() -> None:
    base = make_sdp("talk", "192.0.2.7")
    out = add_key_mgmt(base, b"\x01\x02")
    lines = out.split("\r\n")
    assert out.endswith("\r\n") and "\n" not in out.replace("\r\n", "")
    assert lines.index("a=key-mgmt:mikey AQI=") == lines.index("m=audio 49000 RTP/SAVP 0") - 1


def test_add_key_mgmt_media_level_keeps_lf() -> None:
    base = "v=0\no=- 0 0 IN IP4 h\ns=-\nt=0 0\nm=audio 1 RTP/SAVP 0\na=rtpmap:0 PCMU/8000\nm=video 2 RTP/SAVP 31\n"
    out = add_key_mgmt(base, b"\xff", media_index=0)
    assert out == base.replace("PCMU/8000\n", "PCMU/8000\na=key-mgmt:mikey /w==\n")
    out = add_key_mgmt(base, b"\xff", media_index=1)
    assert out == base + "a=key-mgmt:mikey /w==\n"
    no_trailing = base.rstrip("\n")
    assert add_key_mgmt(no_trailing, b"\xff") == no_trailing.replace(
        "t=0 0\n", "t=0 0\na=key-mgmt:mikey /w==\n"
    )
    assert parse_key_mgmt(out)[0].media_index == 1
    with pytest.raises(IndexError):
        add_key_mgmt(base, b"\xff", media_index=2)


def test_add_key_mgmt_without_media() -> None:
    out = add_key_mgmt("v=0\r\ns=-\r\n", b"\x01")
    assert out == "v=0\r\ns=-\r\na=key-mgmt:mikey AQ==\r\n"


def test_make_sdp() -> None:
    sdp = make_sdp("Cool stuff", "w-land.example.com", key_mgmt=b"\x01\x02\x03")
    assert sdp == (
        "v=0\r\n"
        "o=- 0 0 IN IP4 w-land.example.com\r\n"
        "s=Cool stuff\r\n"
        "c=IN IP4 w-land.example.com\r\n"
        "t=0 0\r\n"
        "a=key-mgmt:mikey AQID\r\n"
        "m=audio 49000 RTP/SAVP 0\r\n"
    )
    media = make_sdp(
        "x",
        "2001:db8::1",
        [("audio", 4000, "RTP/SAVP", [0, 8]), ("video", 4002, "RTP/SAVP", [31])],
        key_mgmt=b"\x01",
        at_media=True,
    )
    assert "c=IN IP6 2001:db8::1" in media and "m=audio 4000 RTP/SAVP 0 8" in media
    attrs = parse_key_mgmt(media)
    assert [(a.level, a.media_index) for a in attrs] == [("media", 0), ("media", 1)]


def test_repr_hides_data() -> None:
    attr = KeyMgmtAttribute("mikey", b"\xde\xad\xbe\xef", "session")
    assert "dead" not in repr(attr) and "4 octets" in repr(attr)
