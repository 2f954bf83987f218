"""Identity-based key material for MIKEY-SAKKE (RFC 6507, RFC 6508, RFC 6509; 3GPP TS 33.180).

The community's KMS public keys (:class:`KmsPublicKeys`), one user's keys for one
key period (:class:`IdentityKeys`), and a user's keystore over several periods
(:class:`SakkeKeystore`) with its JSON file shape.  The TS 33.180 KMS XML that
carries the same keys is read and written in :mod:`mikey.kms.xml`.  Secrets never
appear in a ``repr`` or an exception message.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mikey.constants import SakkeIDScheme
from mikey.crypto import eccsi, sakke
from mikey.errors import KeyMaterialError
from mikey.identities import rfc6509_identifier, uid_3gpp

from .source import Source, read_source

__all__ = ["IdentityKeys", "KmsPublicKeys", "SakkeKeystore"]


def _hex(value: object, what: str) -> bytes:
    """Bytes from the hex text of a key-file field; errors name *what*, never the value."""
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

    def to_dict(self) -> dict[str, Any]:
        """The public part shared by the key files: ``kms_uri``, ``community`` and ``period``."""
        return {
            "kms_uri": self.kms_uri,
            "community": {
                "kpak": self.kpak.hex(),
                "z": self.z.hex(),
                "sakke_params": self.sakke_params,
                "id_scheme": self.id_scheme,
            },
            "period": {"key_period": self.key_period, "key_period_offset": self.key_period_offset},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> KmsPublicKeys:
        """The inverse of :meth:`to_dict` (other keys of *doc* are ignored)."""
        try:
            community = doc["community"]
            period = doc.get("period", {})
            return cls(
                kms_uri=str(doc["kms_uri"]),
                kpak=_hex(community["kpak"], "KPAK"),
                z=_hex(community["z"], "Z"),
                sakke_params=int(community.get("sakke_params", 1)),
                key_period=int(period.get("key_period", 2_592_000)),
                key_period_offset=int(period.get("key_period_offset", 0)),
                id_scheme=int(community.get("id_scheme", SakkeIDScheme.UID_3GPP)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, KeyMaterialError):
                raise
            raise KeyMaterialError(f"malformed KMS public keys ({type(exc).__name__}: {exc})") from None


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
    shape written by ``mikey kms issue`` (:meth:`load_json`), or from 3GPP KMS XML
    responses with :func:`mikey.kms.xml.load_keystore_xml`.  RFC 6509 §3.3: hold two
    periods' keys at once by :meth:`add`-ing both.
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

    @property
    def period_numbers(self) -> list[int]:
        """The key periods held, in order (key sets without a period number are not listed)."""
        return sorted({k.period_no for k in self._sets.values() if k.period_no is not None})

    def key_set_for_period(self, period_no: int) -> IdentityKeys | None:
        """The user's key set of key period *period_no*, if held."""
        return next((k for k in self._sets.values() if k.period_no == period_no and k.uri == self.uri), None)

    def merged(self, newer: SakkeKeystore) -> SakkeKeystore:
        """This keystore's key sets plus *newer*'s, for the same user and KMS community.

        A client that fetches again after a period boundary gets periods N+1 and N+2; merging
        keeps N too, so messages timestamped just before the boundary still decrypt (RFC 6509
        §3.3: hold two periods' keys; accept the old ones for a short while after the change).
        A key set of *newer* replaces one of this keystore with the same identifier.  Raises
        :class:`KeyMaterialError` for another user or other community keys (a KMS that changes
        its keys at a period change, RFC 6509 §3.3, needs a keystore per community key).
        """
        if newer.uri != self.uri:
            raise KeyMaterialError(f"cannot merge the keys of {newer.uri!r} into those of {self.uri!r}")
        if newer.kms != self.kms:
            raise KeyMaterialError("cannot merge keystores of different KMS community keys or key periods")
        return SakkeKeystore(self.kms, self.uri, [*self._sets.values(), *newer._sets.values()])

    def pruned(self, first_period: int) -> SakkeKeystore:
        """A keystore without the key sets of periods before *first_period* (RFC 6509 §3.3: stop
        accepting the previous period's keys once the grace time after the change is over)."""
        kept = [k for k in self._sets.values() if k.period_no is None or k.period_no >= first_period]
        return SakkeKeystore(self.kms, self.uri, kept)

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
        kms = KmsPublicKeys.from_dict(doc)
        try:
            period = doc.get("period", {})
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
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, KeyMaterialError):
                raise
            raise KeyMaterialError(f"malformed MIKEY-SAKKE key file ({type(exc).__name__}: {exc})") from None
        if validate:
            store.validate()
        return store

    @classmethod
    def load_json(cls, source: Source, *, validate: bool = False) -> SakkeKeystore:
        try:
            doc = json.loads(read_source(source))
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

        doc = self.kms.to_dict()
        doc["user"] = user(sets[0])
        doc["period"]["period_no"] = sets[0].period_no
        if len(sets) > 1:
            doc["users"] = [user(k) for k in sets[1:]]
        return doc
