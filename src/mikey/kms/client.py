"""Fetching a user's keys from a TS 33.180 KMS over HTTP(S) (3GPP TS 33.180 §D.2; issue 9 §5).

:func:`fetch_keystore` POSTs ``init`` and ``keyprov`` with only the bearer token (an empty
body, as deployed clients do), so the user is the one the token names, and builds a
:class:`~mikey.keystore.SakkeKeystore` from the two responses (checked: the RSK and SSK must
validate against the community's Z and KPAK), by default with the next key period's key
set as well (``keyprov/<user URI>/<NTP time>``), so a key-period rollover needs no refetch.

With the client's integrity key InK (TS 33.180 §D.2.2, §D.2.3), every response must be a
``SignedKmsResponse`` whose HMAC-SHA-256 XML signature verifies under it (an unsigned or
wrongly signed answer is refused, :class:`KmsFetchError`), only the signed content is read
(:func:`mikey.kms.dsig.verify_kms_response`), and the keyprov requests are sent as
``SignedKmsRequest`` documents for the user the KMS named in its init response.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from urllib.parse import quote

from ..constants import SakkeIDScheme
from ..errors import KeyMaterialError
from ..identities import ntp_from_unix
from ..keystore import SakkeKeystore
from .core import API_PREFIX
from .dsig import KmsSignatureError, sign_kms_request, verify_kms_response
from .xml import (
    KMS_XML_NS,
    MAX_KMS_XML_BYTES,
    kms_request_xml,
    load_keystore_xml,
    read_kms_init,
    read_kms_key_prov,
)

__all__ = ["fetch_keystore", "KmsFetchError"]


class KmsFetchError(KeyMaterialError):
    """The KMS could not be reached, refused the request, or answered with something unusable."""

    kind = "kms-fetch"


def _post(url: str, token: str, context: ssl.SSLContext | None, timeout: float, *, body: bytes = b"",
          integrity_key: bytes | None = None) -> bytes:
    """The response body (with *integrity_key*: the KmsResponse its verified signature covers)."""
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml", "Accept": "application/xml"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            answer: bytes = response.read(MAX_KMS_XML_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(4096)
        try:
            load_keystore_xml(detail, [detail])
        except KeyMaterialError as inner:  # names the KmsError ErrorCode and ErrorMsg when there is one
            raise KmsFetchError(f"{url}: HTTP {exc.code}: {inner.message}") from None
        raise KmsFetchError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KmsFetchError(f"cannot reach the KMS at {url}: {reason}") from None
    if len(answer) > MAX_KMS_XML_BYTES:
        raise KmsFetchError(f"{url}: the response is larger than {MAX_KMS_XML_BYTES} bytes")
    if integrity_key is None:
        return answer
    try:
        return verify_kms_response(answer, integrity_key)
    except KmsSignatureError as exc:
        raise KmsFetchError(f"{url}: refused: {exc.message}") from None


def _response_user(document: bytes) -> str:
    """The UserUri of a KmsResponse (the user the KMS answered for)."""
    try:
        root = ET.fromstring(document)  # already verified, DTD-free output of signxml's parser
    except ET.ParseError:
        raise KmsFetchError("the KMS init response does not parse") from None
    user = (root.findtext(f"{{{KMS_XML_NS}}}UserUri") or "").strip()
    if not user:
        raise KmsFetchError("the KMS init response names no UserUri")
    return user


def fetch_keystore(kms_url: str, token: str, *, ca: str | None = None, timeout: float = 30.0,
                   next_period: bool = True, now: float | None = None,
                   integrity_key: bytes | None = None) -> SakkeKeystore:
    """The keystore of the token's user from the KMS at *kms_url* (``http(s)://host:port``).

    With *next_period* (the default; 3GPP UIDs only) it holds the current and the next key
    period's key sets, so messages keep verifying across the rollover; *now* is the clock.

    *ca* is a PEM file of the CAs trusted for HTTPS (default: the system's); TLS 1.2 or later.
    *integrity_key*: the client's InK; responses must then be signed under it (module docstring).
    """
    if not kms_url.startswith(("http://", "https://")):
        raise KmsFetchError("the KMS URL must start with http:// or https://")
    base = kms_url.rstrip("/")
    context: ssl.SSLContext | None = None
    if base.startswith("https://"):
        context = ssl.create_default_context(cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    clock = time.time() if now is None else now
    ink = integrity_key
    init = _post(base + API_PREFIX + "init", token, context, timeout, integrity_key=ink)
    kms = read_kms_init(init)

    def keyprov(url: str) -> bytes:
        if ink is None:
            return _post(url, token, context, timeout)
        request = sign_kms_request(kms_request_xml(_response_user(init), kms.kms_uri, url, now=clock), ink)
        return _post(url, token, context, timeout, body=request, integrity_key=ink)

    user = None if ink is None else _response_user(init)
    prov = keyprov(base + API_PREFIX + ("keyprov" if user is None else f"keyprov/{quote(user, safe='')}"))
    if not next_period or kms.id_scheme != SakkeIDScheme.UID_3GPP:  # RFC 6509 monthly ids: this month only
        return load_keystore_xml(init, [prov], validate=True)
    current = read_kms_key_prov(prov, kms)[0]
    later = clock + kms.key_period
    # TS 33.180 §D.2.1: keyprov/<user URI>/<NTP time> asks for the period holding that time too.
    url = f"{base}{API_PREFIX}keyprov/{quote(current.uri, safe='')}/{ntp_from_unix(later):016x}"
    both = keyprov(url)
    return load_keystore_xml(init, [both], validate=True)
