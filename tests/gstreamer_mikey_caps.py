"""The MIKEY message GStreamer's rtsp-server and rtspclientsink send: ``gst_mikey_message_new_from_caps``.

Run as a script (in a child process, as :mod:`gstreamer_probe`): ``python gstreamer_mikey_caps.py CAPS SSRC_HEX``
prints the hex of the message libgstsdp-1.0 builds from the srtpenc-style caps, with one SRTP-ID crypto
session for the SSRC added as rtsp-server does (``gst_mikey_message_add_cs_srtp``).
"""

from __future__ import annotations

import ctypes
import sys


def build(caps_text: str, ssrc: int) -> bytes:
    c_void_p = ctypes.c_void_p
    gst = ctypes.CDLL("libgstreamer-1.0.so.0")
    sdp = ctypes.CDLL("libgstsdp-1.0.so.0")
    glib = ctypes.CDLL("libglib-2.0.so.0")
    gst.gst_init(None, None)
    gst.gst_caps_from_string.restype = c_void_p
    gst.gst_caps_from_string.argtypes = [ctypes.c_char_p]
    sdp.gst_mikey_message_new_from_caps.restype = c_void_p
    sdp.gst_mikey_message_new_from_caps.argtypes = [c_void_p]
    sdp.gst_mikey_message_add_cs_srtp.restype = ctypes.c_bool
    sdp.gst_mikey_message_add_cs_srtp.argtypes = [c_void_p, ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint32]
    sdp.gst_mikey_message_to_bytes.restype = c_void_p
    sdp.gst_mikey_message_to_bytes.argtypes = [c_void_p, c_void_p, c_void_p]
    glib.g_bytes_get_data.restype = c_void_p
    glib.g_bytes_get_data.argtypes = [c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    caps = gst.gst_caps_from_string(caps_text.encode())
    if not caps:
        raise SystemExit(f"bad caps: {caps_text}")
    msg = sdp.gst_mikey_message_new_from_caps(caps)
    if not msg or not sdp.gst_mikey_message_add_cs_srtp(msg, 0, ssrc, 0):
        raise SystemExit("gst_mikey_message_new_from_caps failed")
    data = sdp.gst_mikey_message_to_bytes(msg, None, None)
    n = ctypes.c_size_t()
    p = glib.g_bytes_get_data(data, ctypes.byref(n))
    return ctypes.string_at(p, n.value)


if __name__ == "__main__":
    print(build(sys.argv[1], int(sys.argv[2], 16)).hex())
