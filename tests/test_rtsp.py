"""RFC 4567 §3.2 KeyMgmt RTSP header, with the §5.3/§5.4 examples as fixtures."""

from __future__ import annotations

import base64

import pytest

from mikey.errors import MikeyDecodeError
from mikey.rtsp import (
    HEADER_NAME,
    STATUS_KEY_MANAGEMENT_FAILURE,
    KeyMgmtHeaderEntry,
    format_keymgmt_header,
    parse_keymgmt_header,
)

# RFC 4567 §5.1 answer message (complete, unlike the truncated §5.3 data).
ANSWER_B64 = (
    "AQEFgM0XflABAAAAAAAAAAAAAAYAyONQ6gAAAAAJAAAQbWlja2V5QG1vdXNlLmNvbQABn8HdGE5BMDXFIuGEga+62AgY5cc="
)
ANSWER = base64.b64decode(ANSWER_B64)

# RFC 4567 §5.3, header folded over two lines exactly as printed, with complete data.
EX3_HEADER = f'prot=mikey; uri="rtsp://movie.example.com/action";\r\n         data="{ANSWER_B64}"'


def test_rfc4567_example3_folded_header() -> None:
    assert parse_keymgmt_header(EX3_HEADER) == [
        KeyMgmtHeaderEntry("mikey", "rtsp://movie.example.com/action", ANSWER)
    ]


def test_rfc4567_example_truncated_data_rejected() -> None:
    # The RFC prints the data truncated with "...": not base64.
    with pytest.raises(MikeyDecodeError):
        parse_keymgmt_header(
            'prot=mikey; uri="rtsp://movie.example.com/action"; data="AQEFgM0XflABAAAAAAAAAAAAAAYAyONQ6g..."'
        )


def test_format_and_round_trip() -> None:
    value = format_keymgmt_header(ANSWER, "rtsp://movie.example.com/action/audio")
    assert value == f'prot=mikey; uri="rtsp://movie.example.com/action/audio"; data="{ANSWER_B64}"'
    assert parse_keymgmt_header(value) == [
        KeyMgmtHeaderEntry("mikey", "rtsp://movie.example.com/action/audio", ANSWER)
    ]
    no_uri = format_keymgmt_header(b"\x01\x02")
    assert no_uri == 'prot=mikey; data="AQI="'
    assert parse_keymgmt_header(no_uri) == [KeyMgmtHeaderEntry("mikey", None, b"\x01\x02")]
    assert HEADER_NAME == "KeyMgmt" and STATUS_KEY_MANAGEMENT_FAILURE == 463


def test_several_entries_and_header_name() -> None:
    value = (
        'KeyMgmt: prot=mikey; uri="rtsp://h/a,b"; data="AQI=", '
        ' PROT = other ;Data=AQID ; extra="ignored; really" ,prot=mikey;'
    )
    assert parse_keymgmt_header(value) == [
        KeyMgmtHeaderEntry("mikey", "rtsp://h/a,b", b"\x01\x02"),
        KeyMgmtHeaderEntry("other", None, b"\x01\x02\x03"),
        KeyMgmtHeaderEntry("mikey", None, None),
    ]


def test_quoted_pair_and_unquoted_padding() -> None:
    assert parse_keymgmt_header('prot=mikey; uri="rtsp://h/\\"x\\""; data=AQ==') == [
        KeyMgmtHeaderEntry("mikey", 'rtsp://h/"x"', b"\x01")
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        'uri="rtsp://h/"; data="AQI="',
        'prot=mikey; data="AQI',
        "prot=mikey; data",
        "prot=mikey; data=",
        'prot=mikey data="AQI="',
        'prot=mikey; data="AQI"',
        'prot=mikey; data="@@@@"',
        "prot=mikey; prot=mikey",
        "prot=mikey,,prot=mikey",
        '=mikey; data="AQI="',
    ],
)
def test_malformed(bad: str) -> None:
    with pytest.raises(MikeyDecodeError):
        parse_keymgmt_header(bad)


def test_format_rejects_unquotable_uri() -> None:
    with pytest.raises(ValueError):
        format_keymgmt_header(b"\x01", 'rtsp://h/"')


def test_repr_hides_data() -> None:
    assert "AQI" not in repr(KeyMgmtHeaderEntry("mikey", None, b"\x01\x02"))
