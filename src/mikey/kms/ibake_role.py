"""The MIKEY-IBAKE KMS role (RFC 6267 §4.2.1) on the KMS server's database.

:class:`IbakeKmsRole` answers REQUEST_KEY_PSK (19) and REQUEST_KEY_PKE (20) with REQUEST_KEY_RESP (21)
or the RFC's Error message, through :class:`~mikey.modes.ibake_keys.IbakeKms`:

* the Boneh-Franklin master secret (RFC 5091 §5.1.2) is made on first use and kept in the database,
  sealed with the AtRestKey (``kms_ibake_master``, one row: processes racing to make it all get
  the one stored first);
* a user's PSK is its MIKEY-TICKET PSK (``kms_ticket_credentials``, ``mikey kms ticket-user add``):
  one PSK per party serves both MIKEY-TICKET and MIKEY-IBAKE key requests.  The user is IDRpsk's data
  (a PSK id) when present, else the first IDRi (an identity with exactly one PSK); a user without one
  gets Error no 0 (Auth failure).  A party gets its own identity's K_PRs only.
* REQUEST_KEY_PKE (§4.2.1.1.2) is taken when the role has the KMS's RSA credentials and trust anchors
  for the users' certificates (``mikey kms serve --ibake-cert/--ibake-key/--ibake-ca``): the envelope
  key of the PKE payload is decrypted with the KMS key (the one CHASH names, if several), SIGN is
  verified with the CERT chain to those anchors, whose leaf must bind the first IDRi (subjectAltName).
  The user is that IDRi, and it must be one the KMS serves: a registered, enabled user (``mikey kms
  user add``) or a party with a PSK (``kms ticket-user add``); else Error no 7 (Invalid ID).  A bad
  signature or an envelope key that does not decrypt -> Error no 0, an untrusted or unbinding
  certificate, or a CHASH naming none of the KMS certificates -> 8.  (PKCS#1 v1.5 decryption rejects
  implicitly, so a PKE made for another certificate without CHASH mostly "decrypts" to a key nobody
  else can compute: the response is useless and the user refuses it.)  Without those credentials
  REQUEST_KEY_PKE gets Error no 11 (Invalid DT).

Users get the public parameters out of band (they are not in REQUEST_KEY_RESP): ``mikey kms
ibake-params`` writes them from the database for the operator to hand out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..constants import DataType
from ..crypto import ibe
from ..crypto.x509 import CertificateValidator
from ..errors import KmsStoreError, MikeyError
from ..keystore import Credentials
from ..modes.ibake_keys import IbakeKms
from ..replay import ReplayStore
from .store import IbakeMasterRecord, KmsStore

__all__ = ["IbakeKmsRole", "IBAKE_DATA_TYPES", "ibake_master", "DEFAULT_SECURITY"]

#: The key requests the IBAKE KMS role answers (RFC 6267 §6.1).
IBAKE_DATA_TYPES = frozenset({DataType.REQUEST_KEY_PSK, DataType.REQUEST_KEY_PKE})

#: RFC 5091 security parameter n of the master made on first use (p 1024 bits, q 224).
DEFAULT_SECURITY = 2048


def ibake_master(store: KmsStore, *, key_period: ibe.KeyPeriod = ibe.KeyPeriod.MONTH,
                 security: int = DEFAULT_SECURITY) -> tuple[ibe.BfMasterSecret, ibe.KeyPeriod]:
    """The database's IBAKE master secret and key period, made (BF setup) and stored on first use."""

    def generate() -> tuple[bytes, bytes]:
        params, master = ibe.bf_setup(security)
        return params.encode(), master.encode()

    record: IbakeMasterRecord = store.get_or_create_ibake_master(generate, key_period.value)
    try:
        params = ibe.BfParams.decode(record.params)
        return ibe.BfMasterSecret.decode(record.master, params), ibe.KeyPeriod(record.key_period)
    except (MikeyError, ValueError):
        raise KmsStoreError("the stored MIKEY-IBAKE master secret does not decode") from None


class IbakeKmsRole:
    """REQUEST_KEY_PSK/PKE in, REQUEST_KEY_RESP or the Error message out (the KMS server's IBAKE role)."""

    data_types: frozenset[int] = frozenset(int(t) for t in IBAKE_DATA_TYPES)

    def __init__(self, store: KmsStore, identity: bytes, *, replay_cache: ReplayStore | None = None,
                 pk_credentials: Sequence[Credentials] = (), validator: CertificateValidator | None = None) -> None:
        if bool(pk_credentials) != (validator is not None):
            raise ValueError("REQUEST_KEY_PKE needs both the KMS's credentials and the users' trust anchors")
        self.store = store
        self.identity = identity
        self._replay_cache = replay_cache
        self._pk_credentials = tuple(pk_credentials)
        self._validator = validator
        self._kms: IbakeKms | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IbakeKmsRole(identity={self.identity!r})"

    def _psk(self, user: bytes) -> bytes | None:
        record = self.store.ticket_user(user)  # by PSK id (IDRpsk, or the identity's implicit id)
        if record is not None and not record.peer_kms:
            return record.psk
        found = self.store.ticket_users(user)
        return found[0].psk if len(found) == 1 and not found[0].peer_kms else None

    def _authorize(self, user: bytes, identity: bytes) -> bool:
        """A party gets its own identity's keys only, and only an identity this KMS serves."""
        record = self.store.ticket_user(user)
        if record is not None:  # the PSK named by IDRpsk (or the identity's implicit PSK id)
            return record.identity == identity and not record.peer_kms
        if user != identity:
            return False
        if any(not r.peer_kms for r in self.store.ticket_users(identity)):  # a party with a PSK
            return True
        try:
            registered = self.store.get_user(identity.decode("utf-8"))  # PKE: a registered user
        except UnicodeDecodeError:
            return False
        return registered is not None and registered.enabled

    def kms(self) -> IbakeKms:
        """The sans-I/O KMS over the stored master (made on the first call, in any process)."""
        with self._lock:
            if self._kms is None:
                master, period = ibake_master(self.store)
                self._kms = IbakeKms(master, self._psk, identity=self.identity, key_period=period,
                                     authorize=self._authorize, replay_cache=self._replay_cache,
                                     pk_credentials=self._pk_credentials, validator=self._validator)
            return self._kms

    def handle(self, message: bytes, now: float) -> bytes | None:
        """The REQUEST_KEY_RESP or the Error message (RFC 6267 §4.2.1.3); a store failure raises."""
        kms = self.kms()
        try:
            return kms.receive(message, now)
        except KmsStoreError:
            raise
        except MikeyError as exc:
            return exc.error_message
