"""Interop with GStreamer's MIKEY library (gst-plugins-base libgstsdp, as used by rtspsrc/rtspclientsink).

Both directions:

* I_MESSAGEs our PSK Initiator builds (every KEMAC algorithm, 1-3 crypto
  sessions) parse in GStreamer, which sees the same payloads and crypto
  sessions and re-encodes them to our bytes.  Without the keys GStreamer writes
  a zero MAC and drops Key data it could not decrypt, so the comparison stops
  at the MAC field (NULL encryption) or at the KEMAC (encrypted);
* a message GStreamer builds with its own API decodes in ours to the values it
  was given, and our encoding of it is byte-identical.

GStreamer 1.22 loops forever on ID, DH, SIGN, V and ERR payloads (so on every
R_MESSAGE and Error message), so those are left out and the library runs in a
child process with a timeout.  Skipped when
libgstsdp-1.0 is not installed (CI installs it).
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mikey.constants import DataType, EncrAlg, KeyDataType, MacAlg, SRTPParam
from mikey.identities import ntp_from_unix
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator
from mikey.wire import (
    KemacPayload,
    KeyDataPayload,
    Message,
    RandPayload,
    SecurityPolicyPayload,
    SrtpIdEntry,
    TimestampPayload,
)

HAVE_GST = ctypes.util.find_library("gstsdp-1.0") is not None
pytestmark = pytest.mark.skipif(
    not HAVE_GST and not os.environ.get("CI"), reason="GStreamer's libgstsdp-1.0 is not installed"
)

PROBE = Path(__file__).parent / "gstreamer_probe.py"
NOW = 1_700_000_000.0
PSK = bytes(range(32, 48))


def gstreamer(request: dict[str, object]) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(PROBE)], input=json.dumps(request).encode(), capture_output=True, timeout=60, check=True
    )
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def _our_messages() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for encr in (EncrAlg.NULL, EncrAlg.AES_CM_128, EncrAlg.AES_KW_128):
        for mac in (MacAlg.NULL, MacAlg.HMAC_SHA_1_160):
            for n in (1, 3):
                specs = [CryptoSessionSpec(0x1000 + i) for i in range(n)]
                init = PskInitiator(PSK, crypto_sessions=specs, encr_alg=encr, mac_alg=mac, allow_null_security=True)
                out[f"encr={encr.name} mac={mac.name} cs={n}"] = init.create_message(NOW)
    return out


def test_gstreamer_parses_and_reencodes_our_messages() -> None:
    ours = _our_messages()
    result = gstreamer({"parse": [m.hex() for m in ours.values()]})["parse"]
    assert isinstance(result, list)
    for (name, raw), seen in zip(ours.items(), result, strict=True):
        m = Message.decode(raw)
        assert seen["ok"], name
        assert seen["n_payloads"] == len(m.payloads), name
        assert seen["n_cs"] == m.header.n_cs, name
        assert seen["payload_types"] == [int(p.TYPE) for p in m.payloads], name
        kemac = m.find(KemacPayload)
        assert kemac is not None
        theirs = bytes.fromhex(seen["reencoded"])
        if kemac.encr_alg == EncrAlg.NULL:
            n = len(kemac.mac)
            assert len(theirs) == len(raw) and theirs[: len(raw) - n] == raw[: len(raw) - n], name
        else:
            start, _ = m.payload_span(m.index(KemacPayload))
            assert theirs[:start] == raw[:start], name


def test_gstreamer_reference_vectors_round_trip() -> None:
    cases = json.loads((Path(__file__).parent / "vectors" / "mikey_messages_gstreamer.json").read_text())["cases"]
    messages = [bytes.fromhex(c.get("message") or c.get("full_message_derived") or c["message_derived"]) for c in cases]
    result = gstreamer({"parse": [m.hex() for m in messages]})["parse"]
    assert isinstance(result, list)
    for raw, seen in zip(messages, result, strict=True):
        assert seen["ok"] and bytes.fromhex(seen["reencoded"]) == raw == Message.decode(raw).encode()


def test_message_built_by_gstreamer_decodes_in_ours() -> None:
    ntp = ntp_from_unix(NOW).to_bytes(8, "big")
    spec = {
        "csb_id": 0xDEADBEEF,
        "ssrcs": [0x11111111, 0x22222222],
        "ntp": ntp.hex(),
        "rand": "00112233445566778899aabbccddeeff",
        "sp": [[0, "01"], [1, "10"], [2, "01"], [3, "14"], [4, "0e"], [11, "0a"]],
        "key": "000102030405060708090a0b0c0d0e0f",
    }
    raw = bytes.fromhex(str(gstreamer({"build": spec})["build"]))
    m = Message.decode(raw)
    assert m.data_type == DataType.PSK_INIT and m.csb_id == 0xDEADBEEF
    assert m.header.cs_id_map == (SrtpIdEntry(0, 0x11111111, 0), SrtpIdEntry(0, 0x22222222, 0))
    t, rand, sp, kemac = m.payloads
    assert isinstance(t, TimestampPayload) and t.ts_value == ntp and t.unix_time() == pytest.approx(NOW, abs=1e-6)
    assert isinstance(rand, RandPayload) and rand.rand.hex() == spec["rand"]
    assert isinstance(sp, SecurityPolicyPayload)
    assert sp.get_int(SRTPParam.SESSION_ENCR_KEY_LEN) == 16 and sp.get_int(SRTPParam.AUTH_TAG_LEN) == 10
    assert isinstance(kemac, KemacPayload) and kemac.encr_alg == EncrAlg.NULL and kemac.mac_alg == MacAlg.NULL
    (kd,) = kemac.key_data()
    assert isinstance(kd, KeyDataPayload) and kd.key_type == KeyDataType.TEK and kd.key.hex() == spec["key"]
    assert m.encode() == raw
