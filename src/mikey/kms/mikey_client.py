"""Sending a MIKEY message to a KMS role over HTTP(S) (``POST /keymanagement/mikey/v1``; issue 10 §9).

:func:`post_mikey` POSTs one MIKEY message (``Content-Type: application/mikey``, RFC 3830 §10) to
the KMS server's MIKEY route (:data:`~mikey.kms.mikey_route.MIKEY_PATH`) and returns the MIKEY message
it answers with: the response, or an Error message (HTTP 400 with an ``application/mikey`` body,
RFC 6043 §5.4), which the caller's MIKEY role turns into a :class:`~mikey.errors.PeerError`.  Any
other answer (a ``KmsError`` document, an unreachable server) raises :class:`KmsMikeyError`.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

from ..errors import KeyMaterialError
from .mikey_route import MAX_MIKEY_BYTES, MIKEY_MEDIA_TYPE, MIKEY_PATH
from .xml import KMS_XML_NS

__all__ = ["post_mikey", "KmsMikeyError", "mikey_url"]


class KmsMikeyError(KeyMaterialError):
    """The KMS could not be reached, or refused the MIKEY message without a MIKEY answer."""

    kind = "kms-mikey"


def mikey_url(kms_url: str) -> str:
    """The MIKEY route of the KMS at *kms_url* (``http(s)://host:port``)."""
    if not kms_url.startswith(("http://", "https://")):
        raise KmsMikeyError("the KMS URL must start with http:// or https://")
    return kms_url.rstrip("/") + MIKEY_PATH


def _kms_error_text(body: bytes) -> str:
    try:
        root = ET.fromstring(body)  # our own server's KmsError; nothing from it is expanded
    except ET.ParseError:
        return ""
    return (root.findtext(f"{{{KMS_XML_NS}}}KmsError/{{{KMS_XML_NS}}}ErrorMsg") or "").strip()


def post_mikey(kms_url: str, message: bytes, *, ca: str | None = None, timeout: float = 30.0) -> bytes:
    """The KMS's MIKEY answer to *message* (a response or an Error message)."""
    url = mikey_url(kms_url)
    context: ssl.SSLContext | None = None
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    request = urllib.request.Request(url, data=message, method="POST",
                                     headers={"Content-Type": MIKEY_MEDIA_TYPE, "Accept": MIKEY_MEDIA_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            answer: bytes = response.read(MAX_MIKEY_BYTES + 1)
            media = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        body = exc.read(MAX_MIKEY_BYTES + 1)
        if exc.headers.get("Content-Type", "").split(";")[0].strip() == MIKEY_MEDIA_TYPE and body:
            return bytes(body)  # an Error message (RFC 6043 §5.4)
        detail = _kms_error_text(body)
        raise KmsMikeyError(f"{url}: HTTP {exc.code}" + (f": {detail}" if detail else "")) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KmsMikeyError(f"cannot reach the KMS at {url}: {reason}") from None
    if media.split(";")[0].strip() != MIKEY_MEDIA_TYPE or len(answer) > MAX_MIKEY_BYTES:
        raise KmsMikeyError(f"{url}: the answer is not a MIKEY message")
    return answer
