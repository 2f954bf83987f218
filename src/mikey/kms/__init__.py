"""Key Management Service for MIKEY-SAKKE (RFC 6509 §2.1.2, 3GPP TS 33.180 Annex D): library-level KMS.

:mod:`.issue` generates community and user keys; :mod:`.xml` reads and writes the
TS 33.180 KMS XML that carries them, :mod:`.dsig` signs and verifies it (SignedKmsResponse,
SignedKmsRequest; imported on demand, it needs signxml).  The server: :mod:`.store` (database,
community generations), :mod:`.auth` (bearer tokens), :mod:`.core` (requests, admin routes),
:mod:`.http` (ASGI), :mod:`.client` (fetching a keystore).
"""

from __future__ import annotations

from .issue import (
    KmsCommunity,
    generate_community,
    issue_user_keys,
    user_key_document,
)
from .xml import (
    KMS_XML_NS,
    kms_init_xml,
    kms_key_prov_xml,
    kms_request_xml,
    load_keystore_xml,
    read_kms_init,
    read_kms_key_prov,
)

__all__ = [
    "KmsCommunity",
    "generate_community",
    "issue_user_keys",
    "user_key_document",
    "KMS_XML_NS",
    "kms_init_xml",
    "kms_key_prov_xml",
    "kms_request_xml",
    "read_kms_init",
    "read_kms_key_prov",
    "load_keystore_xml",
]
