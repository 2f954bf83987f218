"""Fetching a user's keys from a TS 33.180 KMS over HTTP(S) (3GPP TS 33.180 §D.2; issue 9 §5).

:func:`fetch_keystore` POSTs ``init`` and ``keyprov`` with only the bearer token (an empty
body, as deployed clients do), so the user is the one the token names, and builds a
:class:`~mikey.keystore.SakkeKeystore` from the two responses (checked: the RSK and SSK must
validate against the community's Z and KPAK), by default with the next key period's key
set as well (``keyprov/<user URI>/<NTP time>``), so a key-period rollover needs no refetch.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from urllib.parse import quote

from ..constants import SakkeIDScheme
from ..errors import KeyMaterialError
from ..identities import ntp_from_unix
from ..keystore import SakkeKeystore
from .core import API_PREFIX
from .xml import MAX_KMS_XML_BYTES, load_keystore_xml, read_kms_init, read_kms_key_prov

__all__ = ["fetch_keystore", "KmsFetchError"]


class KmsFetchError(KeyMaterialError):
    """The KMS could not be reached, refused the request, or answered with something unusable."""

    kind = "kms-fetch"


def _post(url: str, token: str, context: ssl.SSLContext | None, timeout: float) -> bytes:
    request = urllib.request.Request(
        url, data=b"", method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml", "Accept": "application/xml"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body: bytes = response.read(MAX_KMS_XML_BYTES + 1)
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
    if len(body) > MAX_KMS_XML_BYTES:
        raise KmsFetchError(f"{url}: the response is larger than {MAX_KMS_XML_BYTES} bytes")
    return body


def fetch_keystore(kms_url: str, token: str, *, ca: str | None = None, timeout: float = 30.0,
                   next_period: bool = True, now: float | None = None) -> SakkeKeystore:
    """The keystore of the token's user from the KMS at *kms_url* (``http(s)://host:port``).

    With *next_period* (the default; 3GPP UIDs only) it holds the current and the next key
    period's key sets, so messages keep verifying across the rollover; *now* is the clock.

    *ca* is a PEM file of the CAs trusted for HTTPS (default: the system's); TLS 1.2 or later.
    """
    if not kms_url.startswith(("http://", "https://")):
        raise KmsFetchError("the KMS URL must start with http:// or https://")
    base = kms_url.rstrip("/")
    context: ssl.SSLContext | None = None
    if base.startswith("https://"):
        context = ssl.create_default_context(cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    init = _post(base + API_PREFIX + "init", token, context, timeout)
    prov = _post(base + API_PREFIX + "keyprov", token, context, timeout)
    kms = read_kms_init(init)
    if not next_period or kms.id_scheme != SakkeIDScheme.UID_3GPP:  # RFC 6509 monthly ids: this month only
        return load_keystore_xml(init, [prov], validate=True)
    current = read_kms_key_prov(prov, kms)[0]
    later = (time.time() if now is None else now) + kms.key_period
    # TS 33.180 §D.2.1: keyprov/<user URI>/<NTP time> asks for the period holding that time too.
    url = f"{base}{API_PREFIX}keyprov/{quote(current.uri, safe='')}/{ntp_from_unix(later):016x}"
    both = _post(url, token, context, timeout)
    return load_keystore_xml(init, [both], validate=True)
