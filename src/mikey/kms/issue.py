"""Key issuing for a MIKEY-SAKKE KMS: community keys, user keys per key period, the JSON files.

RFC 6507 §2.2 / §5.1.1 (KSAK, KPAK, SSK, PVT), RFC 6508 §6.1 (KMS Master Secret z,
Public Key Z, RSK), RFC 6509 §3.2-§3.3 (identifiers per key period).  The 3GPP
TS 33.180 XML for the same keys is in :mod:`mikey.kms.xml`.

This is for tests, demos and lab use: it keeps the master secrets in memory and
in a JSON file.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..constants import SakkeIDScheme
from ..crypto import eccsi, sakke
from ..errors import KeyMaterialError
from ..identities import key_period_number, rfc6509_identifier, uid_3gpp
from ..keystore import IdentityKeys, KmsPublicKeys, SakkeKeystore

__all__ = [
    "KmsCommunity",
    "generate_community",
    "issue_user_keys",
    "user_key_document",
]


@dataclass(frozen=True)
class KmsCommunity:
    """A KMS's secrets (KSAK, z) and public keys.  Secrets never appear in ``repr``."""

    public: KmsPublicKeys
    ksak: int = field(repr=False)
    z_master: int = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The community file (secrets included: keep it private)."""
        doc = self.public.to_dict()
        doc["secrets"] = {"ksak": f"{self.ksak:064x}", "z_master": f"{self.z_master:x}"}
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> KmsCommunity:
        public = KmsPublicKeys.from_dict(doc)
        try:
            secrets = doc["secrets"]
            ksak = int(secrets["ksak"], 16)
            z_master = int(secrets["z_master"], 16)
        except (KeyError, TypeError, ValueError):
            # The exception text could quote a secret: name the file, not the value.
            raise KeyMaterialError("malformed KMS community file (secrets)") from None
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
