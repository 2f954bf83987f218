"""GStreamer's MIKEY library (libgstsdp-1.0, gst_mikey_*) driven through ctypes.

Run as a script in a child process (GStreamer 1.22 can loop forever on some
payloads, so the test guards it with a timeout).  It reads one JSON object on
stdin and prints one on stdout:

* ``{"parse": [HEX, ...]}`` -> for each message GStreamer's view: number of
  payloads and crypto sessions, the payload types, and its own re-encoding.
* ``{"build": {...}}`` -> a PSK-style message GStreamer builds with its own API
  (HDR, SRTP-ID map, T, RAND, SP, KEMAC with a TEK Key data sub-payload).
"""

from __future__ import annotations

import ctypes
import json
import sys
from typing import Any

c_void_p = ctypes.c_void_p


def load() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    gst = ctypes.CDLL("libgstreamer-1.0.so.0")
    sdp = ctypes.CDLL("libgstsdp-1.0.so.0")
    glib = ctypes.CDLL("libglib-2.0.so.0")
    gst.gst_init(None, None)
    sig = {
        "gst_mikey_message_new_from_data": (c_void_p, [ctypes.c_char_p, ctypes.c_size_t, c_void_p, c_void_p]),
        "gst_mikey_message_to_bytes": (c_void_p, [c_void_p, c_void_p, c_void_p]),
        "gst_mikey_message_get_n_payloads": (ctypes.c_uint, [c_void_p]),
        "gst_mikey_message_get_n_cs": (ctypes.c_uint, [c_void_p]),
        "gst_mikey_message_get_payload": (c_void_p, [c_void_p, ctypes.c_uint]),
        "gst_mikey_message_new": (c_void_p, []),
        "gst_mikey_message_set_info": (
            ctypes.c_bool, [c_void_p, ctypes.c_uint8, ctypes.c_int, ctypes.c_bool, ctypes.c_int, ctypes.c_uint32,
                            ctypes.c_int],
        ),
        "gst_mikey_message_add_cs_srtp": (ctypes.c_bool, [c_void_p, ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint32]),
        "gst_mikey_message_add_t": (ctypes.c_bool, [c_void_p, ctypes.c_int, ctypes.c_char_p]),
        "gst_mikey_message_add_rand": (ctypes.c_bool, [c_void_p, ctypes.c_uint8, ctypes.c_char_p]),
        "gst_mikey_message_add_payload": (ctypes.c_bool, [c_void_p, c_void_p]),
        "gst_mikey_payload_new": (c_void_p, [ctypes.c_int]),
        "gst_mikey_payload_sp_set": (ctypes.c_bool, [c_void_p, ctypes.c_uint, ctypes.c_int]),
        "gst_mikey_payload_sp_add_param": (ctypes.c_bool, [c_void_p, ctypes.c_uint8, ctypes.c_uint8, ctypes.c_char_p]),
        "gst_mikey_payload_kemac_set": (ctypes.c_bool, [c_void_p, ctypes.c_int, ctypes.c_int]),
        "gst_mikey_payload_kemac_add_sub": (ctypes.c_bool, [c_void_p, c_void_p]),
        "gst_mikey_payload_key_data_set_key": (ctypes.c_bool, [c_void_p, ctypes.c_int, ctypes.c_uint16, ctypes.c_char_p]),
    }
    for name, (res, args) in sig.items():
        f = getattr(sdp, name)
        f.restype = res
        f.argtypes = args
    glib.g_bytes_get_data.restype = c_void_p
    glib.g_bytes_get_data.argtypes = [c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    return sdp, glib


def to_bytes(sdp: ctypes.CDLL, glib: ctypes.CDLL, msg: int) -> bytes:
    b = sdp.gst_mikey_message_to_bytes(msg, None, None)
    if not b:
        raise RuntimeError("gst_mikey_message_to_bytes failed")
    n = ctypes.c_size_t()
    p = glib.g_bytes_get_data(b, ctypes.byref(n))
    return ctypes.string_at(p, n.value)


#: GstMIKEYPayload starts with a GstMiniObject (64 octets on LP64), then type and len.
_PAYLOAD_TYPE_OFFSET = 64


def parse(sdp: ctypes.CDLL, glib: ctypes.CDLL, data: bytes) -> dict[str, Any]:
    msg = sdp.gst_mikey_message_new_from_data(data, len(data), None, None)
    if not msg:
        return {"ok": False}
    n = sdp.gst_mikey_message_get_n_payloads(msg)
    types = []
    for i in range(n):
        p = sdp.gst_mikey_message_get_payload(msg, i)
        types.append(ctypes.c_int.from_address(p + _PAYLOAD_TYPE_OFFSET).value)
    return {
        "ok": True,
        "n_payloads": n,
        "n_cs": sdp.gst_mikey_message_get_n_cs(msg),
        "payload_types": types,
        "reencoded": to_bytes(sdp, glib, msg).hex(),
    }


def build(sdp: ctypes.CDLL, glib: ctypes.CDLL, spec: dict[str, Any]) -> str:
    msg = sdp.gst_mikey_message_new()
    sdp.gst_mikey_message_set_info(msg, 1, 0, False, 0, spec["csb_id"], 0)  # PSK_INIT, MIKEY-1, SRTP-ID
    for ssrc in spec["ssrcs"]:
        sdp.gst_mikey_message_add_cs_srtp(msg, 0, ssrc, 0)
    sdp.gst_mikey_message_add_t(msg, 0, bytes.fromhex(spec["ntp"]))  # NTP-UTC
    rand = bytes.fromhex(spec["rand"])
    sdp.gst_mikey_message_add_rand(msg, len(rand), rand)
    sp = sdp.gst_mikey_payload_new(10)
    sdp.gst_mikey_payload_sp_set(sp, 0, 0)
    for t, v in spec["sp"]:
        value = bytes.fromhex(v)
        sdp.gst_mikey_payload_sp_add_param(sp, t, len(value), value)
    sdp.gst_mikey_message_add_payload(msg, sp)
    kemac = sdp.gst_mikey_payload_new(1)
    sdp.gst_mikey_payload_kemac_set(kemac, 0, 0)  # NULL encryption, NULL MAC
    kd = sdp.gst_mikey_payload_new(20)
    key = bytes.fromhex(spec["key"])
    sdp.gst_mikey_payload_key_data_set_key(kd, 2, len(key), key)  # TEK
    sdp.gst_mikey_payload_kemac_add_sub(kemac, kd)
    sdp.gst_mikey_message_add_payload(msg, kemac)
    return to_bytes(sdp, glib, msg).hex()


def main() -> None:
    request = json.load(sys.stdin)
    sdp, glib = load()
    out: dict[str, Any] = {}
    if "parse" in request:
        out["parse"] = [parse(sdp, glib, bytes.fromhex(h)) for h in request["parse"]]
    if "build" in request:
        out["build"] = build(sdp, glib, request["build"])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
