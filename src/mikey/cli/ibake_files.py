"""Files of the command-line MIKEY-IBAKE (RFC 6267): the file-based KMS, user key files, exchange state.

* KMS directory (``mikey kms ibake-init``): ``ibake_kms.json`` (0600: the Boneh-Franklin master
  secret s, RFC 5091 §5.1.2, with the public parameters, the KMS identity and the key period
  granularity) and ``ibake_params.json`` (the public part, what users need besides their K_PRs).
* User key file (``mikey kms ibake-issue``, read by ``--mode ibake --keys``; 0600): the KMS's public
  parameters and the user's K_PRs (RFC 6267 §6.1.3), one per key period, each with its ``ID || date``.
* State file (``--state``, 0600): what a side keeps between its messages -- the Initiator's x and SK,
  the Responder's y (:meth:`~mikey.modes.ibake.IbakeInitiator.export_secrets`,
  :meth:`~mikey.modes.ibake.IbakeResponder.export_ec_private`) -- and the public messages so far.

Every file is JSON with a ``format`` tag; anything malformed is a :class:`~mikey.cli.common.UsageError`
naming the file (a local file is an option, not a received message).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._files import write_private_atomic
from ..crypto import ibe
from ..errors import MikeyError
from ..modes.ibake import IbakeCredentials
from ..modes.ibake_keys import IssuedKey
from .common import UsageError

__all__ = [
    "KMS_FILE",
    "PARAMS_FILE",
    "IbakeKmsFile",
    "UserKeys",
    "write_private",
    "write_public",
    "read_json",
    "kms_document",
    "params_document",
    "user_key_document",
    "load_kms",
    "load_user_keys",
    "load_params",
    "load_state",
    "state_hex",
    "STATE_FORMAT",
]

KMS_FILE = "ibake_kms.json"
PARAMS_FILE = "ibake_params.json"
_KMS_FORMAT = "mikey-ibake-kms/1"
_PARAMS_FORMAT = "mikey-ibake-params/1"
_KEYS_FORMAT = "mikey-ibake-keys/1"
STATE_FORMAT = "mikey-ibake-state/1"


def write_private(path: str | Path, doc: Mapping[str, Any]) -> None:
    """A secret JSON file: new 0600 file renamed into place, never through a symbolic link."""
    try:
        write_private_atomic(path, json.dumps(doc, indent=2).encode())
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_public(path: str | Path, doc: Mapping[str, Any]) -> None:
    try:
        Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_json(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    """The JSON object of *path*, whose ``format`` must be *fmt*."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
        doc = json.loads(data)
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError:
        raise UsageError(f"{what} {path}: not a JSON file") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise UsageError(f"{what} {path}: not a {fmt} file")
    return doc


def _hex(doc: Mapping[str, Any], key: str, what: str) -> bytes:
    value = doc.get(key)
    try:
        if not isinstance(value, str):
            raise ValueError
        return bytes.fromhex(value)
    except ValueError:
        raise UsageError(f"{what}: {key!r} is not a hex string") from None


def _str(doc: Mapping[str, Any], key: str, what: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise UsageError(f"{what}: {key!r} is missing")
    return value


def _period(doc: Mapping[str, Any], what: str) -> ibe.KeyPeriod:
    try:
        return ibe.KeyPeriod(doc.get("key_period"))
    except ValueError:
        raise UsageError(f"{what}: 'key_period' must be one of {[p.value for p in ibe.KeyPeriod]}") from None


def _params(doc: Mapping[str, Any], what: str) -> ibe.BfParams:
    try:
        return ibe.BfParams.decode(_hex(doc, "params", what))
    except MikeyError as exc:
        raise UsageError(f"{what}: bad public parameters ({exc.message})") from None


# --- the KMS -------------------------------------------------------------------------------------


class IbakeKmsFile:
    """The file-based KMS: master secret (never shown), KMS identity and key period granularity."""

    def __init__(self, master: ibe.BfMasterSecret, kms_id: str, key_period: ibe.KeyPeriod) -> None:
        self.master = master
        self.kms_id = kms_id
        self.key_period = key_period

    def __repr__(self) -> str:
        return f"IbakeKmsFile({self.kms_id!r}, {self.key_period.value})"

    @property
    def params(self) -> ibe.BfParams:
        return self.master.params


def kms_document(kms: IbakeKmsFile) -> dict[str, Any]:
    return {"format": _KMS_FORMAT, "kms_id": kms.kms_id, "key_period": kms.key_period.value,
            "params": kms.params.encode().hex(), "master_secret": kms.master.encode().hex()}


def params_document(kms: IbakeKmsFile) -> dict[str, Any]:
    return {"format": _PARAMS_FORMAT, "kms_id": kms.kms_id, "key_period": kms.key_period.value,
            "params": kms.params.encode().hex()}


def load_kms(path: str | Path) -> IbakeKmsFile:
    """``ibake_kms.json`` (or the directory holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / KMS_FILE
    what = f"--community {p}"
    doc = read_json(p, _KMS_FORMAT, "--community")
    params = _params(doc, what)
    try:
        master = ibe.BfMasterSecret.decode(_hex(doc, "master_secret", what), params)
    except MikeyError as exc:
        raise UsageError(f"{what}: bad master secret ({exc.message})") from None
    return IbakeKmsFile(master, _str(doc, "kms_id", what), _period(doc, what))


def load_params(path: str | Path, what: str = "--params") -> tuple[ibe.BfParams, str, ibe.KeyPeriod]:
    """A KMS's public parameters file (``kms ibake-params`` / ``ibake-init``'s ibake_params.json):
    the parameters, the KMS identity and the key period granularity."""
    doc = read_json(path, _PARAMS_FORMAT, what)
    where = f"{what} {path}"
    kms_id = doc.get("kms_id")
    if not isinstance(kms_id, str) or not kms_id:
        raise UsageError(f"{where}: 'kms_id' must be a non-empty string")
    return _params(doc, where), kms_id, _period(doc, where)


# --- user keys -----------------------------------------------------------------------------------


class UserKeys:
    """A user key file: its identity, KMS and :class:`~mikey.modes.ibake.IbakeCredentials` (K_PRs)."""

    def __init__(self, uri: str, kms_id: str, credentials: IbakeCredentials, periods: Sequence[str]) -> None:
        self.uri = uri
        self.kms_id = kms_id
        self.credentials = credentials
        self.periods = list(periods)

    def __repr__(self) -> str:
        return f"UserKeys({self.uri!r}, periods={self.periods})"


def user_key_document(uri: str, kms_id: str, key_period: ibe.KeyPeriod, params: ibe.BfParams,
                      keys: Sequence[IssuedKey]) -> dict[str, Any]:
    """The ``--keys FILE`` document (what :func:`load_user_keys` reads): a user's K_PRs and the public parameters."""
    return {
        "format": _KEYS_FORMAT, "uri": uri, "kms_id": kms_id, "key_period": key_period.value,
        "params": params.encode().hex(),
        "keys": [{"identity": k.period_identity.hex(), "valid_from": k.valid_from.isoformat(),
                  "valid_to": k.valid_to.isoformat(), "k_pr": k.private_key.encode().hex()} for k in keys],
    }


def load_user_keys(path: str) -> UserKeys:
    """``--keys FILE``: each K_PR is checked against the parameters (e'(P, S_id) = e'(P_pub, Q_id))."""
    what = f"--keys {path}"
    doc = read_json(path, _KEYS_FORMAT, "--keys")
    params = _params(doc, what)
    period = _period(doc, what)
    entries = doc.get("keys")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{what}: holds no K_PR")
    keys: list[ibe.BfPrivateKey] = []
    periods: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise UsageError(f"{what}: a key entry is not an object")
        identity = _hex(entry, "identity", what)
        try:
            keys.append(ibe.BfPrivateKey.decode(_hex(entry, "k_pr", what), params, identity))
        except MikeyError as exc:
            raise UsageError(f"{what}: the K_PR of {identity!r} is not valid ({exc.message})") from None
        periods.append(identity.decode("utf-8", "replace"))
    return UserKeys(_str(doc, "uri", what), _str(doc, "kms_id", what),
                    IbakeCredentials(params, keys, key_period=period), periods)


# --- exchange state ----------------------------------------------------------------------------


def load_state(path: str, role: str) -> dict[str, Any]:
    """``--state FILE`` of *role* ("initiator" or "responder")."""
    doc = read_json(path, STATE_FORMAT, "--state")
    if doc.get("role") != role:
        raise UsageError(f"--state {path}: the state of the {doc.get('role')}, not of the {role}")
    return doc


def state_hex(doc: Mapping[str, Any], key: str, path: str) -> bytes:
    return _hex(doc, key, f"--state {path}")
