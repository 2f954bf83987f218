"""The 3GPP TS 33.180 Annex D KMS XML (namespace ``urn:3gpp:ns:mcsecKMSInterface:1.0``), read and written.

Writing: a KmsInit response with the community's KmsCertificate (§D.3.2), a
KmsKeyProv response with plaintext KmsKeySet elements (§D.3.3) and a KmsRequest
(§D.2.2), valid against the TS 33.180 schema (the key elements carry
``xsi:type="KeyContentType"``), with no empty element (deployed clients fail on them).
Keys are not wrapped.  :mod:`mikey.kms.dsig` signs these documents (SignedKmsResponse,
SignedKmsRequest) when a client has an integrity key.

UserID: the schema types it ``xsd:string`` and KMSs write it in hex or in base64.  We emit
lowercase hex (as the TS 33.180 sample responses do); we read either: the text is decoded as
hex (hex digits, even length, any case) and as strict base64 (RFC 4648 §4); for 3GPP UIDs the
decoding that equals the UID of UserUri and KeyPeriodNo (TS 33.180 §F.2.1) is taken, for
RFC 6509 identifiers the hex one when the text is hex.

KmsCertCache (§D.3.4): :func:`kms_cert_cache_xml` writes the certificates of other KMSs a
client should trust (``Role="External"``, plain ``KmsCertificate`` elements: this KMS has no key
to sign them with) under a ``CacheNum``; :func:`read_kms_cert_cache` reads it back, and
:func:`read_kms_certificate` reads the one KmsCertificate of another KMS's KmsInit response (or a
bare KmsCertificate) to trust it.  Certificates are validated as read: KMS URI, UserIdFormat,
key period, PubEncKey Z on the SAKKE Parameter Set 1 curve, PubAuthKey KPAK on P-256
(:class:`~mikey.keystore.KmsPublicKeys`), KmsDomainList.

Reading: the same documents, plain or inside ``SignedKmsResponse`` (the signature is not
checked here: :func:`mikey.kms.dsig.verify_kms_response` does that and returns the signed
KmsResponse to read), also from KMSs that leave out the key elements' ``xsi:type``.
Wrapped (EncKeyContentType) keys, DTDs, KmsError responses and missing or malformed
elements raise :class:`~mikey.errors.KeyMaterialError`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as _dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from ..constants import SakkeIDScheme
from ..errors import KeyMaterialError
from ..identities import uid_3gpp
from ..keystore import IdentityKeys, KmsPublicKeys, SakkeKeystore, Source
from ..keystore.source import read_source
from .issue import KmsCommunity

__all__ = [
    "KMS_XML_NS",
    "MAX_KMS_XML_BYTES",
    "kms_init_xml",
    "kms_key_prov_xml",
    "kms_request_xml",
    "kms_cert_cache_xml",
    "KmsCertificateInfo",
    "KmsCertCache",
    "read_kms_init",
    "read_kms_certificate",
    "read_kms_cert_cache",
    "read_kms_key_prov",
    "load_keystore_xml",
]

#: Namespace of the 3GPP KMS interface documents (TS 33.180 Annex D).
KMS_XML_NS = "urn:3gpp:ns:mcsecKMSInterface:1.0"
#: Larger documents are refused unparsed (a KmsKeyProv with a few key sets is ~2 kB).
MAX_KMS_XML_BYTES = 1 << 20

_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{_XSI_NS}}}type"
_KEY_TAGS = ("UserDecryptKey", "UserSigningKeySSK", "UserPubTokenPVT")
_ID_FORMATS = {"1": SakkeIDScheme.TEL_URI_MONTHLY, "2": SakkeIDScheme.UID_3GPP}
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_MAX_URI = 2048
_MAX_DOMAINS = 64
_MAX_PERIOD = 1 << 62


@dataclasses.dataclass(frozen=True)
class KmsCertificateInfo:
    """A KmsCertificate (TS 33.180 §D.3.2.2): the KMS's public keys and the KmsDomainList it serves."""

    public: KmsPublicKeys
    domains: tuple[str, ...] = ()
    #: The ``Version`` and ``Role`` attributes the certificate was read with (Root: the issuing KMS's own).
    version: str = "1.1.0"
    role: str = "Root"

    @property
    def kms_uri(self) -> str:
        return self.public.kms_uri


@dataclasses.dataclass(frozen=True)
class KmsCertCache:
    """A KmsCertCache (TS 33.180 §D.3.4): its CacheNum and the certificates of the KMSs to trust."""

    cache_num: int
    certificates: tuple[KmsCertificateInfo, ...] = ()


def _q(tag: str) -> str:
    return f"{{{KMS_XML_NS}}}{tag}"


# --------------------------------------------------------------------------- writing


# Elements are built with plain names under literal xmlns declarations on the root, so
# the output has the KMS namespace as default and "xsi" for the schema instance
# (ElementTree's default_namespace refuses unqualified attributes, and
# register_namespace would change every other user of ElementTree).


def _el(parent: ET.Element, tag: str, text: str | None = None, xsi_type: str | None = None,
        **attrib: str) -> ET.Element:
    if text is not None and not text.strip():
        raise ValueError(f"KMS XML {tag} must not be empty")
    e = ET.SubElement(parent, tag, attrib)
    if xsi_type is not None:
        e.set("xsi:type", xsi_type)
    e.text = text
    return e


def _response(user_uri: str, kms_uri: str, now: float, request: str) -> tuple[ET.Element, ET.Element]:
    """The KmsResponse envelope (§D.2.3) and its KmsMessage."""
    root = ET.Element("KmsResponse", {"xmlns": KMS_XML_NS, "xmlns:xsi": _XSI_NS, "Id": "xmldoc"})
    _el(root, "UserUri", user_uri)
    _el(root, "KmsUri", kms_uri)
    _el(root, "Time", _dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    _el(root, "ClientReqUrl", f"http://{kms_uri}/keymanagement/identity/v1/{request}")
    return root, _el(root, "KmsMessage")


def _serialize(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


def _public(community: KmsCommunity | KmsPublicKeys) -> KmsPublicKeys:
    return community.public if isinstance(community, KmsCommunity) else community


def kms_init_xml(community: KmsCommunity | KmsPublicKeys, user_uri: str, *, now: float) -> bytes:
    """A KmsInit response to *user_uri* carrying the community's KmsCertificate (TS 33.180 §D.3.2).

    *now* (Unix seconds) is the response's Time.  An empty *user_uri* raises ValueError.
    """
    p = _public(community)
    root, msg = _response(user_uri, p.kms_uri, now, "init")
    init = _el(msg, "KmsInit", Version="1.0.0", xsi_type="KmsInitTkIkType")
    _certificate(init, p, "Root")
    return _serialize(root)


def _certificate(parent: ET.Element, p: KmsPublicKeys, role: str, domains: Sequence[str] = ()) -> None:
    """A KmsCertificate element (§D.3.2.2), in the schema's element order."""
    cert = _el(parent, "KmsCertificate", Version="1.1.0", Role=role)
    _el(cert, "KmsUri", p.kms_uri)
    _el(cert, "UserIdFormat", str(int(p.id_scheme)))
    _el(cert, "UserKeyPeriod", str(p.key_period))
    _el(cert, "UserKeyOffset", str(p.key_period_offset))
    _el(cert, "PubEncKey", p.z.hex().upper())
    _el(cert, "PubAuthKey", p.kpak.hex().upper())
    _el(cert, "ParameterSet", str(p.sakke_params))
    if domains:
        listing = _el(cert, "KmsDomainList")
        for domain in domains:
            _el(listing, "KmsDomain", domain)


def kms_cert_cache_xml(user_uri: str, kms_uri: str, cache_num: int,
                       certificates: Sequence[KmsCertificateInfo], *, now: float) -> bytes:
    """A KmsCertCache response of *kms_uri* to *user_uri* (TS 33.180 §D.3.4): *certificates* of the
    other KMSs to trust, each a ``KmsCertificate`` with ``Role="External"``, under ``CacheNum``."""
    if isinstance(cache_num, bool) or not 0 <= cache_num < _MAX_PERIOD:
        raise ValueError("CacheNum must be a non-negative integer")
    root, msg = _response(user_uri, kms_uri, now, "certcache")
    cache = _el(msg, "KmsCertCache", Version="1.0.0", CacheNum=str(cache_num))
    for info in certificates:
        _certificate(cache, info.public, "External", info.domains)
    return _serialize(root)


def kms_key_prov_xml(community: KmsCommunity | KmsPublicKeys, *key_sets: IdentityKeys, now: float) -> bytes:
    """A KmsKeyProv response with one plaintext KmsKeySet per key set (TS 33.180 §D.3.3).

    The key sets must belong to one user.  RFC 6509 key sets have no period number:
    their KeyPeriodNo is written as 0 (and read back as none).
    """
    if not key_sets:
        raise ValueError("at least one key set")
    if len({k.uri for k in key_sets}) != 1:
        raise ValueError("a KmsKeyProv response carries one user's key sets")
    p = _public(community)
    root, msg = _response(key_sets[0].uri, p.kms_uri, now, "keyprov")
    prov = _el(msg, "KmsKeyProv", Version="1.0.0", xsi_type="KmsKeyProvTkIkType")
    for keys in key_sets:
        ks = _el(prov, "KmsKeySet", Version="1.1.0")
        _el(ks, "KmsUri", p.kms_uri)
        _el(ks, "UserUri", keys.uri)
        _el(ks, "UserID", keys.identifier.hex())
        _el(ks, "KeyPeriodNo", str(keys.period_no if keys.period_no is not None else 0))
        for tag, value in zip(_KEY_TAGS, (keys.rsk, keys.ssk, keys.pvt), strict=True):
            _el(ks, tag, value.hex().upper(), xsi_type="KeyContentType")
    return _serialize(root)


def kms_request_xml(user_uri: str, kms_uri: str, client_req_url: str, *, now: float) -> bytes:
    """A KmsRequest (TS 33.180 §D.2.2) from *user_uri* to *kms_uri* for *client_req_url* at *now*."""
    root = ET.Element("KmsRequest", {"xmlns": KMS_XML_NS, "Id": "xmldoc", "Version": "1.1.0"})
    _el(root, "UserUri", user_uri)
    _el(root, "KmsUri", kms_uri)
    _el(root, "Time", _dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    _el(root, "ClientReqUrl", client_req_url)
    return _serialize(root)


# --------------------------------------------------------------------------- reading


class _NoDtdBuilder(ET.TreeBuilder):
    """A tree builder that refuses any DOCTYPE (no entity expansion, no external references)."""

    def doctype(self, name: str | None, pubid: str | None, system: str | None) -> None:
        raise KeyMaterialError("KMS XML must not carry a DTD")


def _root(source: Source) -> ET.Element:
    data = read_source(source)
    if len(data) > MAX_KMS_XML_BYTES:
        raise KeyMaterialError(f"KMS XML is larger than {MAX_KMS_XML_BYTES} bytes")
    parser = ET.XMLParser(target=_NoDtdBuilder())
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except ET.ParseError as exc:
        raise KeyMaterialError(f"KMS XML does not parse ({exc})") from None
    error = root.find(f".//{_q('KmsError')}")
    if error is not None:
        code = _text(error, "ErrorCode", "?")
        message = _text(error, "ErrorMsg", "")[:200]
        raise KeyMaterialError(f"KMS answered with KmsError {code}: {message}")
    return root


def _find(root: ET.Element, tag: str) -> ET.Element:
    if root.tag == _q(tag):
        return root
    el = root.find(f".//{_q(tag)}")
    if el is None:
        raise KeyMaterialError(f"KMS XML has no {tag} element (namespace {KMS_XML_NS})")
    return el


def _text(parent: ET.Element, tag: str, default: str | None = None) -> str:
    el = parent.find(_q(tag))
    text = el.text.strip() if el is not None and el.text is not None else ""
    if text:
        return text
    if default is not None:
        return default
    raise KeyMaterialError(f"KMS XML {parent.tag.rpartition('}')[2]} has no {tag}")


def _int(parent: ET.Element, tag: str, default: str | None = None) -> int:
    text = _text(parent, tag, default)
    try:
        return int(text)
    except ValueError:
        raise KeyMaterialError(f"KMS XML {tag} is not an integer") from None


def _hex(parent: ET.Element, tag: str) -> bytes:
    el = parent.find(_q(tag))
    if el is not None:
        kind = el.get(_XSI_TYPE, "").rpartition(":")[2]
        if len(el) or kind not in ("", "KeyContentType"):
            raise KeyMaterialError(
                f"{tag} is not plaintext (xsi:type {kind or 'none'}); only plaintext KmsKeySet keys are supported"
            )
    try:
        return bytes.fromhex(_text(parent, tag))
    except ValueError:
        raise KeyMaterialError(f"KMS XML {tag} is not valid hex") from None


def _user_ids(parent: ET.Element) -> list[bytes]:
    """The possible values of a KmsKeySet UserID: hex if it is hex digits of even length, and base64."""
    text = _text(parent, "UserID")
    if len(text) > 4096:
        raise KeyMaterialError("KMS XML UserID is too long")
    out = []
    if _HEX.fullmatch(text):
        out.append(bytes.fromhex(text))
    if _BASE64.fullmatch(text) and len(text) % 4 == 0:
        try:
            out.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            pass
    if not out:
        raise KeyMaterialError("KMS XML UserID is neither hex nor base64")
    return out


def read_kms_init(source: Source) -> KmsPublicKeys:
    """Community keys from a KmsInit response (TS 33.180 §D.3.2, KmsCertificate).

    Reads KmsUri, UserIdFormat (1: RFC 6509, 2: 3GPP UID), UserKeyPeriod,
    UserKeyOffset, PubEncKey (Z), PubAuthKey (KPAK) and ParameterSet.
    """
    return _public_of(_find(_root(source), "KmsCertificate"))


def _public_of(cert: ET.Element) -> KmsPublicKeys:
    fmt = _text(cert, "UserIdFormat", "2")
    if fmt not in _ID_FORMATS:
        raise KeyMaterialError(f"KmsCertificate UserIdFormat {fmt[:20]!r} is not supported (1 or 2)")
    return KmsPublicKeys(
        kms_uri=_text(cert, "KmsUri"),
        kpak=_hex(cert, "PubAuthKey"),
        z=_hex(cert, "PubEncKey"),
        sakke_params=_int(cert, "ParameterSet", "1"),
        key_period=_int(cert, "UserKeyPeriod", "2592000"),
        key_period_offset=_int(cert, "UserKeyOffset", "0"),
        id_scheme=_ID_FORMATS[fmt],
    )


def _uri(text: str, what: str) -> str:
    if len(text) > _MAX_URI or not text.isprintable() or any(c.isspace() for c in text):
        raise KeyMaterialError(f"KmsCertificate {what} must be 1 to {_MAX_URI} printable characters, no spaces")
    return text


def _certificate_info(cert: ET.Element) -> KmsCertificateInfo:
    """A validated KmsCertificate: every key a point on its curve, bounded numbers and URIs."""
    public = _public_of(cert)
    _uri(public.kms_uri, "KmsUri")
    if not (0 < public.key_period < _MAX_PERIOD and 0 <= public.key_period_offset < _MAX_PERIOD):
        raise KeyMaterialError("KmsCertificate UserKeyPeriod/UserKeyOffset is out of range")
    domains: list[str] = []
    listing = cert.find(_q("KmsDomainList"))
    if listing is not None:
        for el in listing:
            text = (el.text or "").strip()
            if el.tag != _q("KmsDomain") or not text:
                raise KeyMaterialError("KmsCertificate KmsDomainList must hold non-empty KmsDomain elements only")
            domains.append(_uri(text, "KmsDomain"))
        if not domains or len(domains) > _MAX_DOMAINS:
            raise KeyMaterialError(f"KmsCertificate KmsDomainList must list 1 to {_MAX_DOMAINS} KmsDomain")
    version = cert.get("Version", "1.1.0").strip()
    if not version or len(version) > 32 or not version.isprintable():
        raise KeyMaterialError("KmsCertificate Version must be 1 to 32 printable characters")
    role = cert.get("Role", "Root").strip()
    if role not in ("Root", "External"):
        raise KeyMaterialError("KmsCertificate Role must be Root or External")
    return KmsCertificateInfo(public, tuple(domains), version, role)


def _in_namespace(root: ET.Element) -> ET.Element:
    if not root.tag.startswith(f"{{{KMS_XML_NS}}}"):
        raise KeyMaterialError(f"KMS XML must be in the namespace {KMS_XML_NS}")
    return root


def read_kms_certificate(source: Source) -> KmsCertificateInfo:
    """The one KmsCertificate of a KmsInit response (plain or signed) or a bare KmsCertificate
    (TS 33.180 §D.3.2.2), validated: to trust another KMS.  A document with none, or with several
    (a KmsCertCache), raises :class:`~mikey.errors.KeyMaterialError`."""
    root = _in_namespace(_root(source))
    certs = [root] if root.tag == _q("KmsCertificate") else root.findall(f".//{_q('KmsCertificate')}")
    if len(certs) != 1:
        raise KeyMaterialError(f"KMS XML must hold exactly one KmsCertificate (namespace {KMS_XML_NS}), "
                               f"not {len(certs)}")
    return _certificate_info(certs[0])


def read_kms_cert_cache(source: Source) -> KmsCertCache:
    """A KmsCertCache response (TS 33.180 §D.3.4), plain or signed: its CacheNum and certificates
    (``KmsCertificate`` and ``SignedKmsCertificate`` ones; the latter's signature is not checked)."""
    root = _in_namespace(_root(source))
    cache = _find(root, "KmsCertCache")
    text = cache.get("CacheNum", "").strip()
    if not text.isdigit() or len(text) > 18:
        raise KeyMaterialError("KmsCertCache has no CacheNum, or it is not a non-negative integer")
    infos = []
    for el in cache:
        if el.tag == _q("SignedKmsCertificate"):
            inner = el.find(_q("KmsCertificate"))
            if inner is None:
                raise KeyMaterialError("SignedKmsCertificate has no KmsCertificate")
            el = inner
        if el.tag == _q("KmsCertificate"):
            infos.append(_certificate_info(el))
    return KmsCertCache(int(text), tuple(infos))


def read_kms_key_prov(source: Source, kms: KmsPublicKeys) -> list[IdentityKeys]:
    """Every KmsKeySet of a KmsKeyProv response (TS 33.180 §D.3.3), for community *kms*.

    A 3GPP UserID must be the UID of UserUri for KeyPeriodNo (TS 33.180 §F.2.1),
    as clients recompute it.
    """
    root = _root(source)
    sets = [root] if root.tag == _q("KmsKeySet") else root.findall(f".//{_q('KmsKeySet')}")
    if not sets:
        raise KeyMaterialError(f"KMS XML has no KmsKeySet element (namespace {KMS_XML_NS})")
    out = []
    for ks in sets:
        if _text(ks, "KmsUri", kms.kms_uri) != kms.kms_uri:
            raise KeyMaterialError("KmsKeySet is from a different KMS than the KmsInit response")
        uri = _text(ks, "UserUri")
        candidates = _user_ids(ks)
        identifier = candidates[0]
        period = _int(ks, "KeyPeriodNo")
        period_no: int | None = period
        if kms.id_scheme == SakkeIDScheme.UID_3GPP:
            expected = uid_3gpp(uri, kms.kms_uri, kms.key_period, kms.key_period_offset, period)
            if expected not in candidates:
                raise KeyMaterialError("KmsKeySet UserID is not the UID of its UserUri and KeyPeriodNo")
            identifier = expected
        else:
            period_no = None  # RFC 6509 identifiers carry the month, not a period number
        ssk, pvt, rsk = _hex(ks, "UserSigningKeySSK"), _hex(ks, "UserPubTokenPVT"), _hex(ks, "UserDecryptKey")
        out.append(IdentityKeys(uri, identifier, ssk, pvt, rsk, kms, period_no))
    return out


def load_keystore_xml(init: Source, key_provs: Sequence[Source], *, validate: bool = False) -> SakkeKeystore:
    """A keystore from a KmsInit response and one or more KmsKeyProv responses for one user."""
    kms = read_kms_init(init)
    store: SakkeKeystore | None = None
    for source in key_provs:
        for keys in read_kms_key_prov(source, kms):
            if store is None:
                store = SakkeKeystore(kms, keys.uri)
            elif keys.uri != store.uri:
                raise KeyMaterialError("KmsKeyProv responses for different users")
            store.add(keys)
    if store is None:
        raise KeyMaterialError("no KmsKeyProv response given")
    if validate:
        store.validate()
    return store
