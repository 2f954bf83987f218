"""G.711 µ-law (ITU-T G.711 §2, Tables 2a/2b): 16-bit linear PCM to and from 8-bit codes.

Written after the ITU-T G.191 reference (``ulaw_compress``/``ulaw_expand``): the encoder
works on the 14 most significant bits of the sample plus the bias 33, finds the segment
(exponent) and the four-bit step (mantissa), and inverts the code bits (the transmitted
octet is the one's complement, G.711 Table 2a note); positive values have bit 8 set.  The
decoder gives the middle of each decision interval, scaled to 16 bits (±32124 at most).
RTP carries the codes as payload type 0, PCMU (RFC 3551 §4.5.14).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Final

__all__ = ["ulaw_encode_sample", "ulaw_decode_sample", "ulaw_encode", "ulaw_decode", "ULAW_TO_LINEAR"]

_BIAS: Final = 33  # G.711 µ-law bias in 14-bit units
_MAX14: Final = 0x1FFF


def ulaw_encode_sample(sample: int) -> int:
    """The µ-law code of one signed 16-bit sample (values outside -32768..32767 are clipped)."""
    sample = max(-32768, min(32767, sample))
    magnitude = ((~sample) >> 2) + _BIAS if sample < 0 else (sample >> 2) + _BIAS
    magnitude = min(magnitude, _MAX14)
    segment = (magnitude >> 6).bit_length() + 1  # 1..8
    code = ((8 - segment) << 4) | (0x0F - ((magnitude >> segment) & 0x0F))
    return code | 0x80 if sample >= 0 else code


def ulaw_decode_sample(code: int) -> int:
    """The signed 16-bit sample of one µ-law code (the middle of its decision interval)."""
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    value = (0x80 << exponent) + step * mantissa + step // 2 - 4 * _BIAS
    return value if code & 0x80 else -value


#: code -> 16-bit sample, all 256 codes.
ULAW_TO_LINEAR: Final[tuple[int, ...]] = tuple(ulaw_decode_sample(c) for c in range(256))
# 16-bit sample (offset by 32768) -> code, built once: encoding is then one table look-up per sample.
_LINEAR_TO_ULAW: Final[bytes] = bytes(ulaw_encode_sample(s) for s in range(-32768, 32768))


def ulaw_encode(samples: Iterable[int]) -> bytes:
    """µ-law codes of signed 16-bit samples (one octet per sample)."""
    table = _LINEAR_TO_ULAW
    try:
        checked = array("h", samples)  # raises OverflowError for samples outside 16 bits
    except OverflowError:
        checked = array("h", [max(-32768, min(32767, s)) for s in samples])
    return bytes([table[s + 32768] for s in checked])


def ulaw_decode(codes: bytes) -> array[int]:
    """Signed 16-bit samples (``array('h')``) of µ-law codes."""
    table = ULAW_TO_LINEAR
    return array("h", [table[c] for c in codes])
