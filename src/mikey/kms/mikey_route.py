"""Where and how MIKEY messages reach the KMS server's MIKEY roles (RFC 3830 §10; issue 10 §9).

Shared by the server core (:mod:`mikey.kms.core`) and its clients (:mod:`mikey.kms.mikey_client`).
"""

from __future__ import annotations

__all__ = ["MIKEY_PATH", "MIKEY_MEDIA_TYPE", "MAX_MIKEY_BYTES"]

#: The path of the MIKEY KMS roles (RFC 6043 Ticket Request and Resolve), with or without a final "/".
MIKEY_PATH = "/keymanagement/mikey/v1"
#: The media type of MIKEY messages (RFC 3830 §10).
MIKEY_MEDIA_TYPE = "application/mikey"
#: The longest MIKEY message (or KmsError answer) a client reads: the server's request body limit.
MAX_MIKEY_BYTES = 64 * 1024
