"""Signed KMS documents: ``SignedKmsResponse`` and ``SignedKmsRequest`` (3GPP TS 33.180 §D.2.2, §D.2.3, §D.3).

A KMS may sign its responses, and a client its requests, with an XML signature (XML-DSig,
W3C xmldsig-core) under the client's integrity key InK: HMAC-SHA-256 (RFC 4051 §2.2.2,
``…xmldsig-more#hmac-sha256``) over SHA-256 digests.  The form written here, as deployed
KMSs write it, is an *enveloped* signature: the wrapper element (``SignedKmsResponse`` or
``SignedKmsRequest``, attribute ``Id`` = :data:`SIGNED_ID`) holds the unsigned document and, as
its last child, the ``ds:Signature`` whose one Reference (``URI="#signedxmldoc"``) names the
wrapper, with the enveloped-signature transform and Canonical XML 1.0.  The inner document
follows the wrapper's start tag with no white space (deployed clients read every field as
empty otherwise).  Signing, canonicalisation and verification are :mod:`signxml`'s.

Verification accepts exactly one HMAC-SHA-256 signature, a direct child of the wrapper, with
one SHA-256 Reference; the Reference may name the wrapper or the inner document.  It returns
the inner document *as signed* (what the signature covers, not what surrounds it), so a
reader never sees unsigned content.  DTDs are refused before anything else is parsed.
"""

from __future__ import annotations

from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # signxml's own XML library
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from ..errors import AuthenticationError
from .xml import KMS_XML_NS, MAX_KMS_XML_BYTES

__all__ = [
    "SIGNED_ID",
    "KmsSignatureError",
    "is_signed",
    "sign_kms_request",
    "sign_kms_response",
    "verify_kms_request",
    "verify_kms_response",
]

#: The ``Id`` of the wrapper element, which the signature's Reference names.
SIGNED_ID = "signedxmldoc"

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_CONFIG = SignatureConfiguration(
    require_x509=False,
    location="./",  # a direct child of the wrapper
    expect_references=1,
    signature_methods=frozenset({SignatureMethod.HMAC_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
)


class KmsSignatureError(AuthenticationError):
    """A signed KMS document is malformed, unsigned, or its signature does not verify under the key."""

    kind = "kms-signature"


def _q(tag: str) -> str:
    return f"{{{KMS_XML_NS}}}{tag}"


def _parse(document: bytes) -> Any:
    """The root element of *document*, parsed with no DTD, no entity expansion, no network."""
    if len(document) > MAX_KMS_XML_BYTES:
        raise KmsSignatureError(f"the signed KMS document is larger than {MAX_KMS_XML_BYTES} bytes")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_comments=False)
    try:
        root = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as exc:
        raise KmsSignatureError(f"the KMS document does not parse ({exc.msg})") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise KmsSignatureError("a signed KMS document must not carry a DTD")
    return root


def _check_key(integrity_key: bytes) -> bytes:
    if not isinstance(integrity_key, bytes | bytearray) or len(integrity_key) < 16:
        raise KmsSignatureError("the integrity key must be at least 16 octets")
    return bytes(integrity_key)


def _sign(document: bytes, inner_tag: str, wrapper_tag: str, integrity_key: bytes) -> bytes:
    key = _check_key(integrity_key)
    inner = _parse(document)
    if inner.tag != _q(inner_tag):
        raise ValueError(f"only a {inner_tag} document is signed as {wrapper_tag}")
    wrapper = etree.Element(_q(wrapper_tag), nsmap={None: KMS_XML_NS})
    wrapper.set("Id", SIGNED_ID)
    wrapper.append(inner)  # no text before it: the inner document follows the start tag directly
    signer = XMLSigner(signature_algorithm=SignatureMethod.HMAC_SHA256, digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0)
    signed = signer.sign(wrapper, key=key, reference_uri=f"#{SIGNED_ID}")
    return _DECLARATION + bytes(etree.tostring(signed))


def _verify(document: bytes, inner_tag: str, wrapper_tag: str, integrity_key: bytes) -> bytes:
    key = _check_key(integrity_key)
    root = _parse(document)
    if root.tag != _q(wrapper_tag):
        raise KmsSignatureError(f"the KMS document is not a {wrapper_tag} (unsigned, or another document)")
    inner = [child for child in root if isinstance(child.tag, str) and child.tag == _q(inner_tag)]
    if len(inner) != 1:
        raise KmsSignatureError(f"{wrapper_tag} must hold one {inner_tag}")
    try:
        result = XMLVerifier().verify(root, hmac_key=key, expect_config=_CONFIG)
    except (InvalidSignature, InvalidInput) as exc:
        raise KmsSignatureError(f"the {wrapper_tag} signature does not verify ({type(exc).__name__})") from None
    except (etree.LxmlError, ValueError, TypeError) as exc:
        raise KmsSignatureError(f"the {wrapper_tag} signature cannot be checked ({type(exc).__name__})") from None
    signed = result.signed_xml if not isinstance(result, list) else None
    if signed is None:
        raise KmsSignatureError(f"{wrapper_tag} must carry exactly one signature")
    if signed.tag == _q(wrapper_tag):
        covered = [child for child in signed if isinstance(child.tag, str) and child.tag == _q(inner_tag)]
        if len(covered) != 1:
            raise KmsSignatureError(f"the signed {wrapper_tag} must hold one {inner_tag}")
        signed = covered[0]
    elif signed.tag != _q(inner_tag):
        raise KmsSignatureError(f"the signature covers a {etree.QName(signed).localname}, not the {inner_tag}")
    return _DECLARATION + bytes(etree.tostring(signed))


def sign_kms_response(kms_response: bytes, integrity_key: bytes) -> bytes:
    """The ``SignedKmsResponse`` of a ``KmsResponse`` document, signed under *integrity_key* (the InK)."""
    return _sign(kms_response, "KmsResponse", "SignedKmsResponse", integrity_key)


def sign_kms_request(kms_request: bytes, integrity_key: bytes) -> bytes:
    """The ``SignedKmsRequest`` of a ``KmsRequest`` document, signed under *integrity_key* (the InK)."""
    return _sign(kms_request, "KmsRequest", "SignedKmsRequest", integrity_key)


def verify_kms_response(document: bytes, integrity_key: bytes) -> bytes:
    """The ``KmsResponse`` a ``SignedKmsResponse`` carries, as signed; :class:`KmsSignatureError` if it
    is not one or its signature does not verify under *integrity_key*."""
    return _verify(document, "KmsResponse", "SignedKmsResponse", integrity_key)


def verify_kms_request(document: bytes, integrity_key: bytes) -> bytes:
    """The ``KmsRequest`` a ``SignedKmsRequest`` carries, as signed (see :func:`verify_kms_response`)."""
    return _verify(document, "KmsRequest", "SignedKmsRequest", integrity_key)


def is_signed(document: bytes) -> bool:
    """Whether *document*'s root is a ``SignedKmsResponse`` or ``SignedKmsRequest`` (nothing verified)."""
    try:
        root = _parse(document)
    except KmsSignatureError:
        return False
    return bool(root.tag in (_q("SignedKmsResponse"), _q("SignedKmsRequest")))
