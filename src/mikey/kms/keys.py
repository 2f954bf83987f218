"""A library-level KMS for MIKEY-SAKKE: community keys, user key issuing, JSON and 3GPP XML export.

RFC 6507 §2.2 / §5.1.1 (KSAK, KPAK, SSK, PVT), RFC 6508 §6.1 (KMS Master Secret z,
Public Key Z, RSK), RFC 6509 §3.2-§3.3 (identifiers per key period) and 3GPP TS
33.180 Annex D (KmsInit / KmsKeyProv XML, namespace urn:3gpp:ns:mcsecKMSInterface:1.0).

This is for tests, demos and lab use: it keeps the master secrets in memory and
in a JSON file.  The exported XML carries the key material in plaintext and is
not signed (real KMSs encrypt KmsKeySet elements and sign the document).
"""

from __future__ import annotations

import datetime as _dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..constants import SakkeIDScheme
from ..crypto import eccsi, sakke
from ..errors import KeyMaterialError
from ..identities import key_period_number, rfc6509_identifier, uid_3gpp
from ..keystore import KMS_XML_NS, IdentityKeys, KmsPublicKeys, SakkeKeystore

__all__ = [
    "KmsCommunity",
    "generate_community",
    "issue_user_keys",
    "user_key_document",
    "kms_init_xml",
    "kms_key_prov_xml",
]

_XSI = "http://www.w3.org/2001/XMLSchema-instance"


@dataclass(frozen=True)
class KmsCommunity:
    """A KMS's secrets (KSAK, z) and public keys.  Secrets never appear in ``repr``."""

    public: KmsPublicKeys
    ksak: int = field(repr=False)
    z_master: int = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The community file (secrets included: keep it private)."""
        p = self.public
        return {
            "kms_uri": p.kms_uri,
            "community": {
                "kpak": p.kpak.hex(),
                "z": p.z.hex(),
                "sakke_params": p.sakke_params,
                "id_scheme": p.id_scheme,
            },
            "period": {"key_period": p.key_period, "key_period_offset": p.key_period_offset},
            "secrets": {"ksak": f"{self.ksak:064x}", "z_master": f"{self.z_master:x}"},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> KmsCommunity:
        try:
            c = doc["community"]
            period = doc.get("period", {})
            public = KmsPublicKeys(
                kms_uri=str(doc["kms_uri"]),
                kpak=bytes.fromhex(c["kpak"]),
                z=bytes.fromhex(c["z"]),
                sakke_params=int(c.get("sakke_params", 1)),
                key_period=int(period.get("key_period", 2_592_000)),
                key_period_offset=int(period.get("key_period_offset", 0)),
                id_scheme=int(c.get("id_scheme", SakkeIDScheme.UID_3GPP)),
            )
            secrets = doc["secrets"]
            ksak = int(secrets["ksak"], 16)
            z_master = int(secrets["z_master"], 16)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, KeyMaterialError):
                raise
            raise KeyMaterialError(f"malformed KMS community file ({type(exc).__name__})") from None
        if eccsi.KmsEccsiKeys.from_ksak(ksak).kpak != public.kpak:
            raise KeyMaterialError("KSAK does not match KPAK")
        if sakke.public_key_from_master(z_master) != public.z:
            raise KeyMaterialError("z does not match Z")
        return cls(public, ksak, z_master)

    @classmethod
    def load(cls, path: str) -> KmsCommunity:
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_dict(json.load(f))
        except OSError as exc:
            raise KeyMaterialError(f"cannot read {path!r}: {exc.strerror}") from None
        except ValueError:
            raise KeyMaterialError("KMS community file is not valid JSON") from None


def generate_community(
    kms_uri: str = "kms.example.org",
    *,
    key_period: int = 2_592_000,
    key_period_offset: int = 0,
    id_scheme: int = SakkeIDScheme.UID_3GPP,
) -> KmsCommunity:
    """Fresh KSAK/KPAK (RFC 6507 §2.2) and z/Z (RFC 6508 §6.1) for a community."""
    ecc = eccsi.KmsEccsiKeys.generate()
    z_master, z_public = sakke.generate_master()
    public = KmsPublicKeys(
        kms_uri=kms_uri,
        kpak=ecc.kpak,
        z=z_public,
        sakke_params=1,
        key_period=key_period,
        key_period_offset=key_period_offset,
        id_scheme=id_scheme,
    )
    return KmsCommunity(public, ecc.ksak, int(z_master))


def issue_user_keys(
    community: KmsCommunity,
    uri: str,
    *,
    period_no: int | None = None,
    now: float | None = None,
    month: str | None = None,
) -> IdentityKeys:
    """A user's (SSK, PVT) and RSK for one key period (RFC 6507 §5.1.1, RFC 6508 §6.1.1).

    3GPP UIDs: the period is *period_no*, or the one holding *now*.  RFC 6509
    identifiers: the month "YYYY-MM" or that of *now*.
    """
    p = community.public
    if p.id_scheme == SakkeIDScheme.TEL_URI_MONTHLY:
        if month is not None:
            year, mon = (int(x) for x in month.split("-"))
            moment = _dt.datetime(year, mon, 1, tzinfo=_dt.UTC)
        elif now is not None:
            moment = _dt.datetime.fromtimestamp(now, _dt.UTC)
        else:
            raise ValueError("give month or now for RFC 6509 identifiers")
        identifier = rfc6509_identifier(uri, moment)
        period_no = None
    else:
        if period_no is None:
            if now is None:
                raise ValueError("give period_no or now")
            period_no = key_period_number(now, p.key_period, p.key_period_offset)
        identifier = uid_3gpp(uri, p.kms_uri, p.key_period, p.key_period_offset, period_no)
    ssk, pvt = eccsi.issue_ssk(community.ksak, p.kpak, identifier)
    rsk = sakke.issue_rsk(community.z_master, identifier)
    return IdentityKeys(uri, identifier, ssk, pvt, rsk, p, period_no)


def user_key_document(community: KmsCommunity | KmsPublicKeys, *key_sets: IdentityKeys) -> dict[str, Any]:
    """The user key file (the JSON shape :meth:`SakkeKeystore.from_dict` reads)."""
    public = community.public if isinstance(community, KmsCommunity) else community
    if not key_sets:
        raise ValueError("at least one key set")
    return SakkeKeystore(public, key_sets[0].uri, key_sets).to_dict()


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    e = ET.SubElement(parent, f"{{{KMS_XML_NS}}}{tag}", attrib)
    if text is not None:
        e.text = text
    return e


def _response(user_uri: str, kms_uri: str, now: float | None, req: str) -> tuple[ET.Element, ET.Element]:
    ET.register_namespace("", KMS_XML_NS)
    ET.register_namespace("xsi", _XSI)
    root = ET.Element(f"{{{KMS_XML_NS}}}KmsResponse", {"Id": "xmldoc"})
    _el(root, "UserUri", user_uri)
    _el(root, "KmsUri", kms_uri)
    when = _dt.datetime.fromtimestamp(now if now is not None else 0, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    _el(root, "Time", when)
    _el(root, "ClientReqUrl", f"http://{kms_uri}/keymanagement/identity/v1/{req}")
    return root, _el(root, "KmsMessage")


def kms_init_xml(community: KmsCommunity | KmsPublicKeys, user_uri: str, *, now: float | None = None) -> bytes:
    """A KmsInit response carrying the community's KmsCertificate (TS 33.180 Annex D.3.2)."""
    p = community.public if isinstance(community, KmsCommunity) else community
    root, msg = _response(user_uri, p.kms_uri, now, "init")
    init = _el(msg, "KmsInit", Version="1.0.0", **{f"{{{_XSI}}}type": "KmsInitTkIkType"})
    cert = _el(init, "KmsCertificate", Version="1.1.0", Role="Root")
    _el(cert, "KmsUri", p.kms_uri)
    _el(cert, "UserIdFormat", str(p.id_scheme))
    _el(cert, "UserKeyPeriod", str(p.key_period))
    _el(cert, "UserKeyOffset", str(p.key_period_offset))
    _el(cert, "PubEncKey", p.z.hex().upper())
    _el(cert, "PubAuthKey", p.kpak.hex().upper())
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


def kms_key_prov_xml(
    community: KmsCommunity | KmsPublicKeys, keys: IdentityKeys, *, now: float | None = None
) -> bytes:
    """A KmsKeyProv response with one plaintext KmsKeySet (TS 33.180 Annex D.3.3)."""
    p = community.public if isinstance(community, KmsCommunity) else community
    root, msg = _response(keys.uri, p.kms_uri, now, "keyprov")
    prov = _el(msg, "KmsKeyProv", Version="1.0.0", **{f"{{{_XSI}}}type": "KmsKeyProvTkIkType"})
    ks = _el(prov, "KmsKeySet", Version="1.1.0")
    _el(ks, "KmsUri", p.kms_uri)
    _el(ks, "UserUri", keys.uri)
    _el(ks, "UserID", keys.identifier.hex())
    _el(ks, "KeyPeriodNo", str(keys.period_no if keys.period_no is not None else 0))
    _el(ks, "UserDecryptKey", keys.rsk.hex().upper())
    _el(ks, "UserSigningKeySSK", keys.ssk.hex().upper())
    _el(ks, "UserPubTokenPVT", keys.pvt.hex().upper())
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)
