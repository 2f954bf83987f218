"""Key Management Service for MIKEY-SAKKE (RFC 6509 §2.1.2, 3GPP TS 33.180 Annex D): library-level KMS."""

from __future__ import annotations

from .keys import (
    KmsCommunity,
    generate_community,
    issue_user_keys,
    kms_init_xml,
    kms_key_prov_xml,
    user_key_document,
)

__all__ = [
    "KmsCommunity",
    "generate_community",
    "issue_user_keys",
    "user_key_document",
    "kms_init_xml",
    "kms_key_prov_xml",
]
