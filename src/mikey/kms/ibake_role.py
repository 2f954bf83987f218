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
* REQUEST_KEY_PKE is not configured on the server: it gets Error no 11 (Unsupported message type).

Users get the public parameters out of band (they are not in REQUEST_KEY_RESP): ``mikey kms
ibake-params`` writes them from the database for the operator to hand out.
"""

from __future__ import annotations

import threading

from ..constants import DataType
from ..crypto import ibe
from ..errors import KmsStoreError, MikeyError
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

    def __init__(self, store: KmsStore, identity: bytes, *, replay_cache: ReplayStore | None = None) -> None:
        self.store = store
        self.identity = identity
        self._replay_cache = replay_cache
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
        record = self.store.ticket_user(user)
        owner = record.identity if record is not None else user
        return owner == identity

    def kms(self) -> IbakeKms:
        """The sans-I/O KMS over the stored master (made on the first call, in any process)."""
        with self._lock:
            if self._kms is None:
                master, period = ibake_master(self.store)
                self._kms = IbakeKms(master, self._psk, identity=self.identity, key_period=period,
                                     authorize=self._authorize, replay_cache=self._replay_cache)
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
