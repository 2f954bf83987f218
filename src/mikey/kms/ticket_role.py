"""The MIKEY-TICKET KMS role (RFC 6043 §4.2.1, §4.2.3; issue 10 §9) on the KMS server's database.

:class:`DatabaseTicketStore` is the :class:`~mikey.modes.ticket.TicketStore` of
:class:`~mikey.modes.ticket.TicketKms` over a :class:`~mikey.kms.store.KmsStore`: the parties'
PSKs and rights and the TPKs are read from the database (sealed at rest); the resolves of no-reuse
tickets are recorded there (§5.3), so every KMS process on one PostgreSQL database refuses a
reuse another one saw.  The KMS's own TPK is made on first use and kept.

:class:`TicketKmsRole` is the MIKEY KMS role :class:`~mikey.kms.core.KmsCore` dispatches
REQUEST_INIT_PSK/_PK and RESOLVE_INIT_PSK/_PK to (data types 11, 12, 16, 17): message in, the
REQUEST_RESP / RESOLVE_RESP or the RFC 6043 §5.4 Error message out; ``None`` when the message is
discarded (a replay, RFC 3830 §5.4).  A database failure raises :class:`~mikey.errors.KmsStoreError`
(the server answers 500), never an Error message.

Resolve routing (§10): the peer KMSs are the ``peer_kms`` parties of the database that have a
forwarding URL (:class:`PeerDirectory`, read per Resolve).  A ticket whose TPK this KMS lacks and
whose Ticket Policy names (IDRkms) such a peer is resolved there: this KMS sends its own
RESOLVE_INIT_PSK to the peer's ``POST …/keymanagement/mikey/v1`` and re-keys the answer for the
Responder; a peer that cannot be reached gives the Responder Unspecified error (12), a peer's
refusal is relayed with its Error no.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from ..constants import DataType
from ..crypto.x509 import CertificateValidator
from ..errors import KmsStoreError, MikeyError, StateError, TicketReuseError
from ..keystore import Credentials
from ..modes.ticket import (
    ResolutionRecord,
    TicketCredential,
    TicketKms,
    TicketPeer,
    TicketPolicy,
    TicketPolicyRules,
    TicketProtectionKey,
)
from ..replay import ReplayStore
from .store import KmsStore, TicketTpkRecord, TicketUserRecord

__all__ = ["DatabaseTicketStore", "PeerDirectory", "TicketKmsRole", "TICKET_DATA_TYPES"]

logger = logging.getLogger(__name__)

#: The initial messages the TICKET KMS role answers (RFC 6043 §6.1).
TICKET_DATA_TYPES = frozenset({DataType.REQUEST_INIT_PSK, DataType.REQUEST_INIT_PK, DataType.RESOLVE_INIT_PSK,
                               DataType.RESOLVE_INIT_PK})

#: The length of the KMS's own TPK (256 bits serves both the 128- and the 256-bit suite).
_TPK_LENGTH = 32


def _credential(r: TicketUserRecord) -> TicketCredential:
    # The id of the one PSK of an identity without IDRpsk is the identity itself (no separate key id).
    key_id = b"" if r.key_id == r.identity else r.key_id
    return TicketCredential(r.identity, r.psk, key_id, frozenset(r.groups), r.may_request, r.may_resolve, r.peer_kms)


def _tpk(r: TicketTpkRecord) -> TicketProtectionKey:
    return TicketProtectionKey(r.key_id, r.key, r.owner)


class DatabaseTicketStore:
    """A :class:`~mikey.modes.ticket.TicketStore` over the KMS database.  Thread-safe.

    TPKs never change once stored, so they are cached; credentials are read per message (an admin
    may change them while the server runs).
    """

    def __init__(self, store: KmsStore) -> None:
        self.store = store
        self._tpks: dict[bytes, TicketProtectionKey] = {}
        self._default: TicketProtectionKey | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DatabaseTicketStore({self.store!r})"

    def credential(self, identity: bytes | None, key_id: bytes | None) -> TicketCredential | None:
        if key_id is not None:
            record = self.store.ticket_user(key_id)
            if record is None or (identity is not None and record.identity != identity and not record.peer_kms):
                return None
            return _credential(record)
        if identity is None:
            return None
        found = self.store.ticket_users(identity)
        return _credential(found[0]) if len(found) == 1 else None

    def user_rights(self, identity: bytes) -> TicketCredential | None:
        found = self.store.ticket_users(identity)
        return _credential(found[0]) if found else None

    def default_tpk(self) -> TicketProtectionKey:
        """The KMS's own TPK (mode 1), made and stored (sealed) on first use."""
        with self._lock:
            if self._default is not None:
                return self._default
        record = self.store.get_or_create_default_tpk(lambda: (b"kms-tpk-" + os.urandom(8).hex().encode(),
                                                               os.urandom(_TPK_LENGTH)))
        tpk = _tpk(record)
        with self._lock:
            self._default = tpk
            self._tpks[tpk.key_id] = tpk
        return tpk

    def protection_key(self, key_id: bytes | None) -> TicketProtectionKey | None:
        if key_id is None:
            return self.default_tpk()
        with self._lock:
            cached = self._tpks.get(key_id)
        if cached is not None:
            return cached
        record = self.store.ticket_tpk(key_id)
        if record is None:
            return None
        tpk = _tpk(record)
        with self._lock:
            self._tpks[key_id] = tpk
        return tpk

    def issuing_key(self, policy: TicketPolicy) -> TicketProtectionKey:
        if not policy.flag("E") and len(policy.responders) == 1:
            shared = self.store.ticket_tpk_owned_by(policy.responders[0].data)
            if shared is not None:  # mode 2: the Responder may resolve it itself
                return _tpk(shared)
        return self.default_tpk()

    def record_resolution(self, ticket_id: bytes, record: ResolutionRecord, *, reusable: bool,
                          expires: float | None, now: float) -> None:
        if reusable:  # J = 1: nothing to refuse later, nothing to remember
            return
        problem = self.store.record_ticket_resolution(ticket_id, use_id=record.use_id, device=record.device,
                                                      resolver=record.resolver, expires=expires, now=now)
        if problem is not None:
            raise TicketReuseError(problem)


class PeerDirectory(Mapping[bytes, TicketPeer]):
    """The peer KMSs of the database (RFC 6043 §10): ``peer_kms`` parties with a forwarding URL, looked
    up by identity on each use (so peers added by an admin serve at once).  Only :meth:`get` and
    ``in`` are meant; iteration lists nothing (the database is not scanned)."""

    def __init__(self, store: KmsStore) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"PeerDirectory({self.store!r})"

    def __getitem__(self, identity: bytes) -> TicketPeer:
        record = self.store.ticket_peer(identity)
        if record is None:
            raise KeyError(identity)
        return TicketPeer(record.identity, record.psk, b"" if record.key_id == record.identity else record.key_id)

    def url(self, identity: bytes) -> str | None:
        record = self.store.ticket_peer(identity)
        return None if record is None else record.url

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def __len__(self) -> int:
        return 0


class TicketKmsRole:
    """REQUEST_INIT_* / RESOLVE_INIT_* in, the response or Error message out (the KMS server's TICKET role)."""

    data_types: frozenset[int] = frozenset(int(t) for t in TICKET_DATA_TYPES)

    def __init__(self, kms: TicketKms, *, peer_url: Callable[[bytes], str | None] | None = None,
                 send: Callable[[str, bytes], bytes] | None = None) -> None:
        self.kms = kms
        self.peer_url = peer_url
        self._send = send

    def __repr__(self) -> str:
        return f"TicketKmsRole({self.kms!r})"

    @classmethod
    def on_store(cls, store: KmsStore, identity: bytes, *, rules: TicketPolicyRules | None = None,
                 replay_cache: ReplayStore | None = None, pk_credentials: Sequence[Credentials] = (),
                 validator: CertificateValidator | None = None) -> TicketKmsRole:
        """The role over *store*'s database, answering as *identity* (IDRkms: the KMS URI).

        With *pk_credentials* (the KMS's certificate and RSA key) and a *validator* of the parties'
        certificates, REQUEST_INIT_PK and RESOLVE_INIT_PK are answered too (the party's rights are
        those of its identity's ``ticket-users`` rows); without, they get Error no 11.
        """
        peers = PeerDirectory(store)
        kms = TicketKms(DatabaseTicketStore(store), identity=identity, rules=rules or TicketPolicyRules(),
                        replay_cache=replay_cache, peers=peers, pk_credentials=pk_credentials, validator=validator)
        return cls(kms, peer_url=peers.url)

    def handle(self, message: bytes, now: float) -> bytes | None:
        """The REQUEST_RESP / RESOLVE_RESP, or the Error message (§5.4), or ``None`` (discarded)."""
        try:
            outcome = self.kms.receive(message, now)
        except KmsStoreError:
            raise
        except MikeyError as exc:
            return exc.error_message
        fwd = outcome.forward
        if fwd is None:
            return outcome.response
        from .mikey_client import KmsMikeyError, post_mikey

        url = self.peer_url(fwd.peer) if self.peer_url is not None else None
        if url is None:  # pragma: no cover - the directory named the peer a moment ago
            raise StateError("a Resolve was to be forwarded to a peer KMS without a URL")
        try:
            answer = (self._send or (lambda u, m: post_mikey(u, m, timeout=10.0)))(url, fwd.message)
        except KmsMikeyError as exc:
            logger.warning("peer KMS %s: %s", fwd.peer.decode("utf-8", "replace"), exc.message)
            return self.kms.forward_failed(fwd, now)
        try:
            return self.kms.complete_forward(fwd, answer, now)
        except KmsStoreError:
            raise
        except MikeyError as exc:
            return exc.error_message
