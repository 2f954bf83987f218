"""Loading and holding credentials: PSKs, certificates, private keys, trust anchors.

An edge module (it reads files).  Nothing here ever puts key bytes in a
``repr`` or an exception message.

* :class:`PresharedKey` -- the PSK of RFC 3830 §3.1 (and DH-HMAC, RFC 4650).
* :class:`Credentials` -- a private key with its certificate and chain, for the
  PK, DH and RSA-R modes (RFC 3830 §3.2, §3.3; RFC 4738).
* :class:`TrustStore` -- the trusted roots of RFC 3830 §4.3.2.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from mikey.constants import SakkeIDScheme
from mikey.crypto import eccsi, sakke
from mikey.crypto.x509 import CertificateValidator, IdBinding, certificate_der
from mikey.errors import CertificateError, KeyMaterialError
from mikey.identities import rfc6509_identifier, uid_3gpp

__all__ = [
    "Source",
    "PresharedKey",
    "Credentials",
    "TrustStore",
    "load_private_key",
    "load_certificates",
    "load_pkcs12",
    "load_credentials",
]

#: A file path, or the file's bytes.
Source = str | os.PathLike[str] | bytes


def _read(source: Source) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise KeyMaterialError(f"cannot read {os.fspath(source)!r}: {exc.strerror}") from None


def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN" in data[:4096]


# --------------------------------------------------------------------------- pre-shared keys


@dataclass(frozen=True, eq=False)
class PresharedKey:
    """A pre-shared key (RFC 3830 §3.1) and optionally the identity it belongs to.

    The value never appears in ``repr``; equality is constant-time.
    """

    value: bytes = field(repr=False)
    identity: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes):
            raise KeyMaterialError("pre-shared key must be bytes")
        if not self.value:
            raise KeyMaterialError("pre-shared key must not be empty")

    @classmethod
    def from_hex(cls, text: str, identity: bytes | None = None) -> PresharedKey:
        try:
            return cls(bytes.fromhex(text), identity)
        except ValueError:
            raise KeyMaterialError("pre-shared key is not valid hex") from None

    def __len__(self) -> int:
        return len(self.value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PresharedKey):
            return NotImplemented
        return self.identity == other.identity and hmac.compare_digest(self.value, other.value)

    def __hash__(self) -> int:
        return hash((PresharedKey, self.identity, len(self.value)))

    def __repr__(self) -> str:
        return f"PresharedKey(identity={self.identity!r}, length={len(self.value)})"


# --------------------------------------------------------------------------- private keys and certificates


def load_private_key(source: Source, password: bytes | None = None) -> PrivateKeyTypes:
    """A private key from a PEM or DER file (PKCS#8 or traditional), optionally encrypted."""
    data = _read(source)
    try:
        if _is_pem(data):
            return serialization.load_pem_private_key(data, password)
        return serialization.load_der_private_key(data, password)
    except (ValueError, TypeError):
        # Wrong/missing password and malformed keys alike; never echo the input.
        raise KeyMaterialError(
            "cannot load private key (malformed, unsupported, or wrong password)"
        ) from None
    except Exception as exc:  # e.g. UnsupportedAlgorithm
        raise KeyMaterialError(f"cannot load private key ({type(exc).__name__})") from None


def load_certificates(source: Source) -> list[x509.Certificate]:
    """Every certificate in a PEM file (in file order, leaf first by convention) or one DER certificate."""
    data = _read(source)
    try:
        certs = (
            x509.load_pem_x509_certificates(data) if _is_pem(data) else [x509.load_der_x509_certificate(data)]
        )
    except ValueError as exc:
        raise CertificateError("cannot parse certificate file") from exc
    if not certs:  # pragma: no cover - cryptography raises on an empty PEM
        raise CertificateError("no certificate found")
    return certs


def _public_der(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes")  # noqa: B009 - any public key type
    result: bytes = public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return result


@dataclass(frozen=True, eq=False, repr=False)
class Credentials:
    """A private key, its certificate, and the intermediates that chain it to a root.

    ``chain`` holds the intermediates only (not the leaf); :attr:`certificates`
    gives leaf + chain, one CERT payload each (RFC 3830 §6.7).
    """

    private_key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "chain", tuple(self.chain))
        if _public_der(self.private_key.public_key()) != _public_der(self.certificate.public_key()):
            raise KeyMaterialError("private key does not match the certificate")

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return (self.certificate, *self.chain)

    @property
    def rsa_private_key(self) -> RSAPrivateKey:
        """The key as RSA, as the PK/DH/RSA-R modes need (RFC 3830 §4.2.5, §4.2.6)."""
        if not isinstance(self.private_key, RSAPrivateKey):
            raise KeyMaterialError("credential key is not an RSA key")
        return self.private_key

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    def certificate_ders(self) -> list[bytes]:
        """DER of leaf then intermediates, ready for CERT payloads."""
        return [certificate_der(c) for c in self.certificates]

    def __repr__(self) -> str:
        return f"Credentials(subject={self.subject!r}, chain_len={len(self.chain)})"


def load_credentials(key: Source, certificates: Source, password: bytes | None = None) -> Credentials:
    """Credentials from a key file and a certificate file (leaf first, then intermediates)."""
    certs = load_certificates(certificates)
    return Credentials(load_private_key(key, password), certs[0], tuple(certs[1:]))


def load_pkcs12(source: Source, password: bytes | None) -> Credentials:
    """Credentials from a PKCS#12 (.p12/.pfx) bundle."""
    data = _read(source)
    try:
        bundle = pkcs12.load_pkcs12(data, password)
    except (ValueError, TypeError):
        raise KeyMaterialError("cannot load PKCS#12 bundle (malformed or wrong password)") from None
    if bundle.key is None:
        raise KeyMaterialError("PKCS#12 bundle holds no private key")
    if bundle.cert is None:
        raise CertificateError("PKCS#12 bundle holds no certificate")
    chain = tuple(c.certificate for c in bundle.additional_certs)
    return Credentials(bundle.key, bundle.cert.certificate, chain)


# --------------------------------------------------------------------------- trust anchors


class TrustStore(Sequence[x509.Certificate]):
    """Trusted root certificates (RFC 3830 §4.3.2), usable wherever a sequence of anchors is."""

    __slots__ = ("_anchors",)

    def __init__(self, anchors: Sequence[x509.Certificate] = ()) -> None:
        seen: set[bytes] = set()
        unique: list[x509.Certificate] = []
        for cert in anchors:
            der = certificate_der(cert)
            if der not in seen:
                seen.add(der)
                unique.append(cert)
        self._anchors = tuple(unique)

    @classmethod
    def load(cls, *sources: Source) -> TrustStore:
        """Anchors from one or more PEM (or single-DER) files."""
        certs: list[x509.Certificate] = []
        for source in sources:
            certs.extend(load_certificates(source))
        return cls(certs)

    def validator(
        self, *, id_binding: IdBinding | None = None, allow_missing_key_usage: bool = True
    ) -> CertificateValidator:
        return CertificateValidator(
            self._anchors, id_binding=id_binding, allow_missing_key_usage=allow_missing_key_usage
        )

    @overload
    def __getitem__(self, index: int) -> x509.Certificate: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[x509.Certificate]: ...
    def __getitem__(self, index: int | slice) -> x509.Certificate | Sequence[x509.Certificate]:
        return self._anchors[index]

    def __len__(self) -> int:
        return len(self._anchors)

    def __iter__(self) -> Iterator[x509.Certificate]:
        return iter(self._anchors)

    def __repr__(self) -> str:
        return f"TrustStore({[c.subject.rfc4514_string() for c in self._anchors]!r})"


# --------------------------------------------------------------------------- identity-based key material
#
# MIKEY-SAKKE key material (RFC 6507, RFC 6508, RFC 6509; 3GPP TS 33.180): the community's
# KMS public keys and a user's SSK/PVT and RSK sets with their key periods.


__all__ += ["IdentityKeys", "KmsPublicKeys", "SakkeKeystore", "KMS_XML_NS"]

#: Namespace of the 3GPP KMS interface documents (TS 33.180 Annex D).
KMS_XML_NS = "urn:3gpp:ns:mcsecKMSInterface:1.0"


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeyMaterialError(f"{what} must be a hex string")
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        raise KeyMaterialError(f"{what} is not valid hex") from None


@dataclass(frozen=True)
class KmsPublicKeys:
    """A KMS community's public keys and key-period rules (RFC 6509 §2.1.2, TS 33.180 Annex D).

    ``id_scheme`` is the SAKKE ID scheme its users' identifiers follow: 1 = RFC 6509
    tel URI with monthly keys, 2 = 3GPP MIKEY-SAKKE UID (``UserIdFormat``).
    """

    kms_uri: str
    kpak: bytes
    z: bytes
    sakke_params: int = 1
    key_period: int = 2_592_000
    key_period_offset: int = 0
    id_scheme: int = 2

    def __post_init__(self) -> None:
        try:
            eccsi.P256.decode_point(self.kpak)
        except ValueError:
            raise KeyMaterialError("KPAK is not a valid P-256 point") from None
        if self.sakke_params != 1:
            raise KeyMaterialError(f"SAKKE parameter set {self.sakke_params} is not supported")
        try:
            sakke.PARAMETER_SET_1.curve.decode_point(self.z)
        except ValueError:
            raise KeyMaterialError("Z is not a valid point of SAKKE Parameter Set 1") from None
        if self.key_period <= 0:
            raise KeyMaterialError("key period must be positive")


class IdentityKeys:
    """One user's keys for one key period: identifier (UID), SSK, PVT, RSK (RFC 6507 §5.1, RFC 6508 §6.1).

    Secrets never appear in ``repr``.  :meth:`signer` and :meth:`receiver` build the
    ECCSI signer and SAKKE receiver once and keep them (the receiver caches its
    pairing precomputation).
    """

    __slots__ = ("uri", "identifier", "_ssk", "pvt", "_rsk", "period_no", "_kms", "_signer", "_receiver")

    def __init__(
        self,
        uri: str,
        identifier: bytes,
        ssk: bytes,
        pvt: bytes,
        rsk: bytes,
        kms: KmsPublicKeys,
        period_no: int | None = None,
    ) -> None:
        self.uri = uri
        self.identifier = bytes(identifier)
        self._ssk = bytes(ssk)
        self.pvt = bytes(pvt)
        self._rsk = bytes(rsk)
        self.period_no = period_no
        self._kms = kms
        self._signer: eccsi.EccsiSigner | None = None
        self._receiver: sakke.SakkeReceiver | None = None

    @property
    def ssk(self) -> bytes:
        return self._ssk

    @property
    def rsk(self) -> bytes:
        return self._rsk

    def __repr__(self) -> str:
        return f"IdentityKeys(uri={self.uri!r}, identifier={self.identifier.hex()}, period_no={self.period_no})"

    def validate(self) -> None:
        """Check SSK/PVT (RFC 6507 §5.1.2) and RSK (RFC 6508 §6.1.2); raises KeyMaterialError."""
        eccsi.validate_ssk(self._ssk, self.pvt, self.identifier, self._kms.kpak)
        sakke.validate_rsk(self._rsk, self.identifier, self._kms.z)

    def signer(self) -> eccsi.EccsiSigner:
        if self._signer is None:
            self._signer = eccsi.EccsiSigner(self._ssk, self.pvt, self.identifier, self._kms.kpak, validate=False)
        return self._signer

    def receiver(self) -> sakke.SakkeReceiver:
        if self._receiver is None:
            self._receiver = sakke.SakkeReceiver(self._rsk, self.identifier, self._kms.z, sakke.PARAMETER_SET_1)
        return self._receiver


class SakkeKeystore:
    """A user's MIKEY-SAKKE key material: the community's KMS public keys and key sets per period.

    Implements :class:`mikey.modes.sakke.SakkeKeySource`.  Load it from the JSON
    shape written by ``mikey kms issue`` (:meth:`load_json`) or from 3GPP KMS XML
    responses (:meth:`load_xml`).  RFC 6509 §3.3: hold two periods' keys at once
    by :meth:`add`-ing both.
    """

    def __init__(self, kms: KmsPublicKeys, uri: str, key_sets: Sequence[IdentityKeys] = ()) -> None:
        self.kms = kms
        self.uri = uri
        self._sets: dict[bytes, IdentityKeys] = {}
        for k in key_sets:
            self.add(k)

    # -- SakkeKeySource -------------------------------------------------------------------

    @property
    def kms_uri(self) -> str:
        return self.kms.kms_uri

    @property
    def kpak(self) -> bytes:
        return self.kms.kpak

    @property
    def z(self) -> bytes:
        return self.kms.z

    @property
    def sakke_params(self) -> int:
        return self.kms.sakke_params

    @property
    def id_scheme(self) -> int:
        return self.kms.id_scheme

    @property
    def key_period(self) -> int:
        return self.kms.key_period

    @property
    def key_period_offset(self) -> int:
        return self.kms.key_period_offset

    def user_keys(self, identifier: bytes) -> IdentityKeys | None:
        return self._sets.get(bytes(identifier))

    # -- management -----------------------------------------------------------------------

    def add(self, keys: IdentityKeys) -> None:
        self._sets[keys.identifier] = keys

    @property
    def key_sets(self) -> list[IdentityKeys]:
        return list(self._sets.values())

    def validate(self) -> None:
        """Validate every held key set against the KMS public keys."""
        for k in self._sets.values():
            k.validate()

    def __repr__(self) -> str:
        return f"SakkeKeystore(uri={self.uri!r}, kms={self.kms.kms_uri!r}, key_sets={len(self._sets)})"

    # -- JSON -----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, validate: bool = False) -> SakkeKeystore:
        """From ``{"kms_uri", "community": {kpak, z, sakke_params[, id_scheme]}, "user": {uri, [uid], ssk,
        pvt, rsk}, "period": {key_period, key_period_offset, period_no}}`` (extra key sets in ``"users"``
        entries of the "user" shape with their own ``period_no``)."""
        try:
            community = doc["community"]
            period = doc.get("period", {})
            kms = KmsPublicKeys(
                kms_uri=str(doc["kms_uri"]),
                kpak=_hex(community["kpak"], "KPAK"),
                z=_hex(community["z"], "Z"),
                sakke_params=int(community.get("sakke_params", 1)),
                key_period=int(period.get("key_period", 2_592_000)),
                key_period_offset=int(period.get("key_period_offset", 0)),
                id_scheme=int(community.get("id_scheme", SakkeIDScheme.UID_3GPP)),
            )
            users = [dict(doc["user"], period_no=doc["user"].get("period_no", period.get("period_no")))]
            users += [dict(u) for u in doc.get("users", [])]
            uri = str(users[0]["uri"])
            store = cls(kms, uri)
            for u in users:
                period_no = u.get("period_no")
                if "uid" in u:
                    ident = _hex(u["uid"], "UID")
                elif kms.id_scheme == SakkeIDScheme.TEL_URI_MONTHLY:
                    if "month" not in u:
                        raise KeyMaterialError("an RFC 6509 key set needs \"uid\" or \"month\" (YYYY-MM)")
                    year, month = (int(x) for x in str(u["month"]).split("-"))
                    ident = rfc6509_identifier(str(u["uri"]), _dt.datetime(year, month, 1, tzinfo=_dt.UTC))
                else:
                    if period_no is None:
                        raise KeyMaterialError("a key set without \"uid\" needs \"period_no\"")
                    ident = uid_3gpp(
                        str(u["uri"]), kms.kms_uri, kms.key_period, kms.key_period_offset, int(period_no)
                    )
                store.add(
                    IdentityKeys(
                        str(u["uri"]),
                        ident,
                        _hex(u["ssk"], "SSK"),
                        _hex(u["pvt"], "PVT"),
                        _hex(u["rsk"], "RSK"),
                        kms,
                        int(period_no) if period_no is not None else None,
                    )
                )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, KeyMaterialError):
                raise
            raise KeyMaterialError(f"malformed MIKEY-SAKKE key file ({type(exc).__name__}: {exc})") from None
        if validate:
            store.validate()
        return store

    @classmethod
    def load_json(cls, source: Source, *, validate: bool = False) -> SakkeKeystore:
        try:
            doc = json.loads(_read(source))
        except ValueError:
            raise KeyMaterialError("MIKEY-SAKKE key file is not valid JSON") from None
        if not isinstance(doc, dict):
            raise KeyMaterialError("MIKEY-SAKKE key file must hold a JSON object")
        return cls.from_dict(doc, validate=validate)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape :meth:`from_dict` reads (secrets included: protect the file)."""
        sets = self.key_sets
        if not sets:
            raise KeyMaterialError("the keystore holds no key set")

        def user(k: IdentityKeys) -> dict[str, Any]:
            d: dict[str, Any] = {"uri": k.uri, "uid": k.identifier.hex(), "ssk": k.ssk.hex(), "pvt": k.pvt.hex(),
                                  "rsk": k.rsk.hex()}
            if k.period_no is not None:
                d["period_no"] = k.period_no
            return d

        doc: dict[str, Any] = {
            "kms_uri": self.kms.kms_uri,
            "community": {
                "kpak": self.kms.kpak.hex(),
                "z": self.kms.z.hex(),
                "sakke_params": self.kms.sakke_params,
                "id_scheme": self.kms.id_scheme,
            },
            "user": user(sets[0]),
            "period": {
                "key_period": self.kms.key_period,
                "key_period_offset": self.kms.key_period_offset,
                "period_no": sets[0].period_no,
            },
        }
        if len(sets) > 1:
            doc["users"] = [user(k) for k in sets[1:]]
        return doc

    # -- 3GPP KMS XML ---------------------------------------------------------------------

    @staticmethod
    def parse_kms_init(source: Source) -> KmsPublicKeys:
        """Community keys from a KmsInit response (TS 33.180 Annex D, KmsCertificate).

        Reads KmsUri, UserIdFormat, UserKeyPeriod, UserKeyOffset, PubEncKey (Z) and
        PubAuthKey (KPAK).  XML signatures are not checked here.
        """
        cert = _xml_find(_xml_root(source), "KmsCertificate")
        fmt = _xml_text(cert, "UserIdFormat", "2")
        return KmsPublicKeys(
            kms_uri=_xml_text(cert, "KmsUri"),
            kpak=_hex(_xml_text(cert, "PubAuthKey"), "PubAuthKey"),
            z=_hex(_xml_text(cert, "PubEncKey"), "PubEncKey"),
            sakke_params=1,
            key_period=int(_xml_text(cert, "UserKeyPeriod", "2592000")),
            key_period_offset=int(_xml_text(cert, "UserKeyOffset", "0")),
            id_scheme=2 if fmt.strip() in ("2", "") else 1,
        )

    @classmethod
    def load_xml(
        cls, init: Source, key_provs: Sequence[Source], *, validate: bool = False
    ) -> SakkeKeystore:
        """A keystore from a KmsInit response and one or more KmsKeyProv responses (KmsKeySet).

        Only plaintext key material is supported: a KmsKeySet whose keys are
        wrapped (TS 33.180 §D.3.x EncryptedKey / KMS-to-client transport keys) raises
        :class:`KeyMaterialError`, as do missing elements.
        """
        kms = cls.parse_kms_init(init)
        store: SakkeKeystore | None = None
        for src in key_provs:
            root = _xml_root(src)
            ks = _xml_find(root, "KmsKeySet")
            for tag in ("UserDecryptKey", "UserSigningKeySSK"):
                el = ks.find(f"{{{KMS_XML_NS}}}{tag}")
                if el is not None and len(el):
                    raise KeyMaterialError(f"{tag} is encrypted; only plaintext KmsKeySet elements are supported")
            uri = _xml_text(ks, "UserUri")
            kms_uri = _xml_text(ks, "KmsUri", kms.kms_uri)
            if kms_uri != kms.kms_uri:
                raise KeyMaterialError("KmsKeySet is from a different KMS than the KmsInit response")
            keys = IdentityKeys(
                uri,
                _hex(_xml_text(ks, "UserID"), "UserID"),
                _hex(_xml_text(ks, "UserSigningKeySSK"), "UserSigningKeySSK"),
                _hex(_xml_text(ks, "UserPubTokenPVT"), "UserPubTokenPVT"),
                _hex(_xml_text(ks, "UserDecryptKey"), "UserDecryptKey"),
                kms,
                int(_xml_text(ks, "KeyPeriodNo")),
            )
            if store is None:
                store = cls(kms, uri)
            elif uri != store.uri:
                raise KeyMaterialError("KmsKeyProv responses for different users")
            store.add(keys)
        if store is None:
            raise KeyMaterialError("no KmsKeyProv response given")
        if validate:
            store.validate()
        return store


def _xml_root(source: Source) -> ET.Element:
    try:
        return ET.fromstring(_read(source))
    except ET.ParseError as exc:
        raise KeyMaterialError(f"KMS XML does not parse ({exc})") from None


def _xml_find(root: ET.Element, tag: str) -> ET.Element:
    if root.tag == f"{{{KMS_XML_NS}}}{tag}":
        return root
    el = root.find(f".//{{{KMS_XML_NS}}}{tag}")
    if el is None:
        raise KeyMaterialError(f"KMS XML has no {tag} element (namespace {KMS_XML_NS})")
    return el


def _xml_text(parent: ET.Element, tag: str, default: str | None = None) -> str:
    el = parent.find(f"{{{KMS_XML_NS}}}{tag}")
    if el is None or el.text is None:
        if default is not None:
            return default
        raise KeyMaterialError(f"KMS XML {parent.tag.split('}')[-1]} has no {tag}")
    return el.text.strip()
