"""Key material the modes are handed, in two halves.

* :mod:`.credentials` -- PSKs (RFC 3830 §3.1), X.509 credentials and PKCS#12
  bundles (§3.2, §3.3; RFC 4738), trust anchors (§4.3.2).
* :mod:`.identity` -- MIKEY-SAKKE identity-based keys (RFC 6507-6509) and their
  JSON key file; the 3GPP TS 33.180 XML for them is in :mod:`mikey.kms.xml`.
"""

from __future__ import annotations

from .credentials import (
    Credentials,
    PresharedKey,
    TrustStore,
    load_certificates,
    load_credentials,
    load_pkcs12,
    load_private_key,
)
from .identity import IdentityKeys, KmsPublicKeys, SakkeKeystore
from .source import Source

__all__ = [
    "Source",
    "PresharedKey",
    "Credentials",
    "TrustStore",
    "load_private_key",
    "load_certificates",
    "load_pkcs12",
    "load_credentials",
    "IdentityKeys",
    "KmsPublicKeys",
    "SakkeKeystore",
]
