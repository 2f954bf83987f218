"""The KMS database: the community's key generations, its users and the key sets issued to them (issue 9 §4).

SQLAlchemy Core over an SQLite file (the default, ``sqlite:///PATH``) or PostgreSQL
(``postgresql://…``, driven by psycopg 3, the ``postgres`` extra) so that several KMS
processes can share one database.  The schema is created and upgraded by the Alembic
migrations shipped in :mod:`mikey.kms.migrations`, run in code when the store opens.

Secrets are encrypted at rest with AES-256-GCM (NIST SP 800-38D) under an
:class:`AtRestKey` kept outside the database (a file or an environment variable):
the community's KSAK (RFC 6507 §2.2) and SAKKE master secret z (RFC 6508 §6.1), and
each user's SSK (RFC 6507 §5.1.1) and RSK (RFC 6508 §6.1.1).  Every ciphertext's
associated data names its column and row, so a ciphertext copied to another column or
row does not decrypt.  Public values (KPAK, Z, PVT, identifiers) are stored in clear.

Re-provisioning returns the key set already stored for (generation, user, period); two
processes racing to issue the first one both end up with the one the database kept
(:meth:`KmsStore.get_or_issue_key_set`).

Rotation (:meth:`KmsStore.rotate_community`) adds a *generation* of the community's master
keys; the highest generation is the active one, which init and keyprov serve.  Every process
reads the active generation number per request (:meth:`KmsStore.active_generation`, one
primary-key ``max()``), so a rotation done by one process is seen by all at their next request;
a generation's keys never change, so they are cached.  Key sets of older generations stay
stored and listable.  Generation 1 seals its secrets with the associated data of schema
revision 0001 (so a database upgraded from it keeps working); later generations add their
number to it.  Each client's integrity key InK (TS 33.180 Annex D, signed requests and
responses) is sealed too.  Admin changes are written to an audit log (:meth:`KmsStore.list_audit`).

The MIKEY-TICKET KMS role (RFC 6043, :mod:`mikey.kms.ticket_role`) keeps its parties' PSKs and
rights (:meth:`KmsStore.add_ticket_user`), its ticket protection keys (TPKs, Appendix A), both sealed
like every secret, and the resolves of no-reuse tickets (:meth:`KmsStore.record_ticket_resolution`,
§5.3), shared by every KMS process on the database (schema revision 0003).

Trusted external KMSs (TS 33.180 §D.3.4, schema revision 0004): the KmsCertificates of other KMSs
this KMS's clients should trust (:meth:`KmsStore.add_trusted_kms`), one per KMS URI, served by
``certcache`` under a cache number that every add, replace or remove increments in the same
transaction (:meth:`KmsStore.trusted_kms_cache`); each change is audited.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError

from .._files import write_private_atomic
from ..crypto.aead import aes_gcm_open, aes_gcm_seal
from ..errors import AuthenticationError, KeyMaterialError, KmsStoreError
from ..keystore import IdentityKeys, KmsPublicKeys
from .issue import KmsCommunity
from .xml import KmsCertificateInfo

__all__ = [
    "AT_REST_KEY_ENV",
    "AtRestKey",
    "AuditRecord",
    "CommunityGeneration",
    "KeySetRecord",
    "KmsStore",
    "KmsUser",
    "RotationConflictError",
    "TicketTpkRecord",
    "TicketUserRecord",
    "TrustRefusedError",
    "TrustedKms",
    "UnknownUserError",
    "check_integrity_key",
    "check_user_uri",
    "create_at_rest_key_file",
    "database_url",
]

#: The environment variable :meth:`AtRestKey.load` reads when no key file is given (64 hex digits).
AT_REST_KEY_ENV = "MIKEY_KMS_AT_REST_KEY"
#: The SQLite file a KMS data directory holds when no database URL is given.
DEFAULT_DB_NAME = "kms.sqlite3"

_KEY_LENGTH = 32  # AES-256
_NONCE_LENGTH = 12  # 96-bit random nonce (SP 800-38D §8.2.2)
_SEAL_VERSION = b"\x01"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_ID = 0x6D696B65794B4D53  # "mikeyKMS": serialises concurrent migrations on PostgreSQL


class UnknownUserError(KmsStoreError):
    """The user is not registered, or is disabled: no key set is issued."""

    kind = "kms-unknown-user"


class TrustRefusedError(KmsStoreError):
    """A KMS certificate that cannot be trusted (this KMS's own, a bad KMS URI); nothing was stored."""

    kind = "kms-trust-refused"


class RotationConflictError(KmsStoreError):
    """Another process rotated the community at the same moment; nothing was stored."""

    kind = "kms-rotation-conflict"


#: Integrity keys (HMAC-SHA-256 keys, RFC 2104 §3) are 16 to 64 octets.
MIN_INTEGRITY_KEY = 16
MAX_INTEGRITY_KEY = 64
_MAX_URI = 2048


class AtRestKey:
    """The AES-256-GCM key that encrypts the KMS secrets at rest.  Never shown in ``repr``."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_LENGTH:
            raise KmsStoreError(f"the at-rest key must be {_KEY_LENGTH} octets, not {len(key)}")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "AtRestKey(<hidden>)"

    @classmethod
    def generate(cls) -> AtRestKey:
        return cls(secrets.token_bytes(_KEY_LENGTH))

    @classmethod
    def from_text(cls, text: str, *, source: str) -> AtRestKey:
        """The key written as 64 hex digits (surrounding white space ignored); *source* names it in errors."""
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            raise KmsStoreError(f"the at-rest key in {source} is not {2 * _KEY_LENGTH} hex digits") from None
        if len(key) != _KEY_LENGTH:
            raise KmsStoreError(f"the at-rest key in {source} is not {2 * _KEY_LENGTH} hex digits")
        return cls(key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> AtRestKey:
        try:
            text = Path(path).read_text(encoding="ascii")
        except OSError as exc:
            raise KmsStoreError(f"cannot read the at-rest key file {os.fspath(path)!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise KmsStoreError(f"the at-rest key in {os.fspath(path)!r} is not {2 * _KEY_LENGTH} hex digits") from None
        return cls.from_text(text, source=repr(os.fspath(path)))

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, env: str = AT_REST_KEY_ENV) -> AtRestKey:
        """The key from *path* if given, else from the environment variable *env*."""
        if path is not None:
            return cls.from_file(path)
        text = os.environ.get(env)
        if not text:
            raise KmsStoreError(f"no at-rest key: give a key file or set {env}")
        return cls.from_text(text, source=f"${env}")

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """``version || nonce || ciphertext || tag`` of *plaintext*, bound to *associated_data*."""
        nonce = secrets.token_bytes(_NONCE_LENGTH)
        return _SEAL_VERSION + nonce + aes_gcm_seal(self._key, nonce, plaintext, associated_data)

    def open(self, sealed: bytes, associated_data: bytes, *, what: str) -> bytes:
        """The plaintext of :meth:`seal`'s output; *what* names the value in the error."""
        sealed = bytes(sealed)
        if len(sealed) < 1 + _NONCE_LENGTH or sealed[:1] != _SEAL_VERSION:
            raise KmsStoreError(f"the stored {what} is not a sealed value of this version")
        try:
            return aes_gcm_open(self._key, sealed[1 : 1 + _NONCE_LENGTH], sealed[1 + _NONCE_LENGTH :], associated_data)
        except AuthenticationError:
            raise KmsStoreError(
                f"cannot decrypt the stored {what}: wrong at-rest key, or the value was altered or moved from another row"
            ) from None


def create_at_rest_key_file(path: str | os.PathLike[str]) -> AtRestKey:
    """A fresh at-rest key written to *path* (mode 0600, atomically); refuses to replace an existing file.

    Replacing the key would make every secret already in the database unreadable.
    """
    if os.path.lexists(path):
        raise KmsStoreError(f"refusing to replace the existing at-rest key file {os.fspath(path)!r}")
    key = AtRestKey.generate()
    try:
        write_private_atomic(path, (key._key.hex() + "\n").encode("ascii"))
    except OSError as exc:
        raise KmsStoreError(f"cannot write the at-rest key file {os.fspath(path)!r}: {exc.strerror}") from None
    return key


def _ad(label: str, *parts: str | int) -> bytes:
    """Associated data ``mikey-kms:<label>:`` followed by each part, length-prefixed (unambiguous)."""
    out = bytearray(f"mikey-kms:{label}:".encode("ascii"))
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part.to_bytes(8, "big", signed=True)
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


def check_user_uri(uri: object) -> str:
    """*uri* if it can name a user: 1 to 2048 printable characters, no outer white space."""
    if not isinstance(uri, str) or not uri or len(uri) > _MAX_URI or not uri.isprintable() or uri != uri.strip():
        raise KmsStoreError(f"a user URI must have 1 to {_MAX_URI} printable characters, no outer white space")
    return uri


def check_integrity_key(integrity_key: object) -> bytes:
    """*integrity_key* if it can be an integrity key InK: :data:`MIN_INTEGRITY_KEY` to :data:`MAX_INTEGRITY_KEY` octets."""
    if not isinstance(integrity_key, bytes | bytearray) or not (
            MIN_INTEGRITY_KEY <= len(integrity_key) <= MAX_INTEGRITY_KEY):
        raise KmsStoreError(f"an integrity key must be {MIN_INTEGRITY_KEY} to {MAX_INTEGRITY_KEY} octets")
    return bytes(integrity_key)


def _gad(label: str, generation: int, kms_uri: str, *parts: str | int) -> bytes:
    """Associated data of a community generation's secret: revision 0001's for generation 1."""
    return _ad(label if generation == 1 else f"{label}.g{generation}", kms_uri, *parts)


def database_url(url: str | sa.URL | None = None, *, data_dir: str | os.PathLike[str] | None = None) -> sa.URL:
    """The SQLAlchemy URL for *url*, or the SQLite file in *data_dir*.

    ``postgresql://`` and ``postgres://`` select psycopg 3 (``postgresql+psycopg://``).
    """
    if url is None:
        if data_dir is None:
            raise KmsStoreError("give a database URL or a data directory")
        return sa.URL.create("sqlite", database=os.fspath(Path(data_dir) / DEFAULT_DB_NAME))
    try:
        parsed = url if isinstance(url, sa.URL) else sa.make_url(url)
    except ArgumentError:
        raise KmsStoreError("the database URL is not of the form dialect://… (sqlite:///PATH, postgresql://…)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise KmsStoreError(f"unsupported database {parsed.drivername!r}: use sqlite:///PATH or postgresql://…")
    if parsed.drivername.startswith("sqlite") and (
        not parsed.database or parsed.database == ":memory:" or parsed.query.get("mode") == "memory"
    ):
        raise KmsStoreError("an in-memory SQLite database would lose every key: give sqlite:///PATH")
    return parsed


@dataclasses.dataclass(frozen=True)
class KmsUser:
    """A registered user: its URI (the MC identity, TS 33.180), when it was added, whether it may get keys,
    whether it has an integrity key (InK) for signed requests and responses."""

    uri: str
    created_at: float
    enabled: bool
    has_integrity_key: bool = False


@dataclasses.dataclass(frozen=True)
class CommunityGeneration:
    """One generation of the community's master keys: its number, public keys, when and by whom made."""

    generation: int
    public: KmsPublicKeys
    created_at: float
    created_by: str | None


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    """One admin action: when, who (the token's subject, or ``local``), what, on what."""

    at: float
    actor: str
    action: str
    subject: str | None
    detail: str | None


@dataclasses.dataclass(frozen=True)
class KeySetRecord:
    """The audit view of one issued key set: whose, which period, when, to whom.  No secret in it."""

    user_uri: str
    period_no: int
    identifier: bytes
    issued_at: float
    issued_to: str | None
    generation: int = 1


_metadata = sa.MetaData()
# Mirrors of the tables the migrations create (mikey/kms/migrations/versions), for Core statements.
_community = sa.Table(
    "kms_community",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kms_uri", sa.Text),
    sa.Column("kpak", sa.LargeBinary),
    sa.Column("z_public", sa.LargeBinary),
    sa.Column("sakke_params", sa.Integer),
    sa.Column("id_scheme", sa.Integer),
    sa.Column("key_period", sa.BigInteger),
    sa.Column("key_period_offset", sa.BigInteger),
    sa.Column("ksak_sealed", sa.LargeBinary),
    sa.Column("z_master_sealed", sa.LargeBinary),
    sa.Column("created_at", sa.Double),
    sa.Column("created_by", sa.Text),
)
_users = sa.Table(
    "kms_users",
    _metadata,
    sa.Column("uri", sa.Text, primary_key=True),
    sa.Column("created_at", sa.Double),
    sa.Column("enabled", sa.Boolean),
    sa.Column("integrity_key_sealed", sa.LargeBinary),
)
_key_sets = sa.Table(
    "kms_key_sets",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("user_uri", sa.Text),
    sa.Column("period_no", sa.BigInteger),
    sa.Column("identifier", sa.LargeBinary),
    sa.Column("pvt", sa.LargeBinary),
    sa.Column("ssk_sealed", sa.LargeBinary),
    sa.Column("rsk_sealed", sa.LargeBinary),
    sa.Column("issued_at", sa.Double),
    sa.Column("issued_to", sa.Text),
    sa.Column("generation", sa.Integer),
)
_audit = sa.Table(
    "kms_audit",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("at", sa.Double),
    sa.Column("actor", sa.Text),
    sa.Column("action", sa.Text),
    sa.Column("subject", sa.Text),
    sa.Column("detail", sa.Text),
)

_ticket_credentials = sa.Table(
    "kms_ticket_credentials",
    _metadata,
    sa.Column("key_id", sa.LargeBinary, primary_key=True),
    sa.Column("identity", sa.LargeBinary),
    sa.Column("psk_sealed", sa.LargeBinary),
    sa.Column("groups", sa.Text),
    sa.Column("may_request", sa.Boolean),
    sa.Column("may_resolve", sa.Boolean),
    sa.Column("peer_kms", sa.Boolean),
    sa.Column("url", sa.Text),
    sa.Column("created_at", sa.Double),
)
_ticket_tpks = sa.Table(
    "kms_ticket_tpks",
    _metadata,
    sa.Column("key_id", sa.LargeBinary, primary_key=True),
    sa.Column("key_sealed", sa.LargeBinary),
    sa.Column("owner", sa.LargeBinary),
    sa.Column("default_marker", sa.Integer),
    sa.Column("created_at", sa.Double),
)
_ticket_uses = sa.Table(
    "kms_ticket_uses",
    _metadata,
    sa.Column("ticket_id", sa.LargeBinary, primary_key=True),
    sa.Column("use_id", sa.LargeBinary),
    sa.Column("first_at", sa.Double),
    sa.Column("expires", sa.Double),
)
_ticket_resolutions = sa.Table(
    "kms_ticket_resolutions",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("ticket_id", sa.LargeBinary),
    sa.Column("device", sa.LargeBinary),
    sa.Column("resolver", sa.LargeBinary),
    sa.Column("use_id", sa.LargeBinary),
    sa.Column("resolved_at", sa.Double),
    sa.Column("expires", sa.Double),
)

_trusted_certs = sa.Table(
    "kms_trusted_certs",
    _metadata,
    sa.Column("kms_uri", sa.Text, primary_key=True),
    sa.Column("cert_version", sa.Text),
    sa.Column("cert_role", sa.Text),
    sa.Column("id_scheme", sa.Integer),
    sa.Column("key_period", sa.BigInteger),
    sa.Column("key_period_offset", sa.BigInteger),
    sa.Column("z_public", sa.LargeBinary),
    sa.Column("kpak", sa.LargeBinary),
    sa.Column("sakke_params", sa.Integer),
    sa.Column("domains", sa.Text),
    sa.Column("added_at", sa.Double),
    sa.Column("added_by", sa.Text),
)
_cert_cache = sa.Table(
    "kms_cert_cache",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("cache_num", sa.BigInteger),
)
# certcache's one SELECT: the cache number left-joined with every trusted certificate (one snapshot).
_TRUSTED_CACHE = (
    sa.select(_cert_cache.c.cache_num, _trusted_certs)
    .select_from(_cert_cache.outerjoin(_trusted_certs, sa.true()))
    .where(_cert_cache.c.id == 1)
    .order_by(_trusted_certs.c.kms_uri)
)
_BUMP_CACHE = _cert_cache.update().where(_cert_cache.c.id == 1).values(cache_num=_cert_cache.c.cache_num + 1)
_CACHE_NUM = sa.select(_cert_cache.c.cache_num).where(_cert_cache.c.id == 1)


@dataclasses.dataclass(frozen=True)
class TrustedKms:
    """A trusted external KMS (TS 33.180 §D.3.4): its certificate, when and by whom it was added."""

    certificate: KmsCertificateInfo
    added_at: float
    added_by: str

    @property
    def kms_uri(self) -> str:
        return self.certificate.kms_uri


class _Unchanged(Exception):
    """Rolls back a trust change that would store what is stored already."""


_TICKET_USER_BY_KEY_ID = sa.select(_ticket_credentials).where(_ticket_credentials.c.key_id == sa.bindparam("key_id"))

#: MIKEY-TICKET PSKs and TPKs: 16 to 64 octets (RFC 6043 §12.1: at least 128 bits).
MIN_TICKET_KEY = 16
MAX_TICKET_KEY = 64
_MAX_TICKET_ID = 1024


@dataclasses.dataclass(frozen=True)
class TicketUserRecord:
    """A MIKEY-TICKET party the KMS shares a PSK with (RFC 6043 §4.2.1.1): one device's key.

    ``key_id`` names the PSK (IDRpsk data; the identity when the device sends no IDRpsk).  A peer KMS
    (RFC 6043 §10) has ``peer_kms`` and the ``url`` Resolves of its tickets are forwarded to.
    """

    identity: bytes
    key_id: bytes
    psk: bytes = dataclasses.field(repr=False)
    groups: tuple[bytes, ...] = ()
    may_request: bool = True
    may_resolve: bool = True
    peer_kms: bool = False
    created_at: float = 0.0
    url: str | None = None


@dataclasses.dataclass(frozen=True)
class TicketTpkRecord:
    """A ticket protection key (RFC 6043 Appendix A): its id, the key, who else holds it (§4.1.1)."""

    key_id: bytes
    key: bytes = dataclasses.field(repr=False)
    owner: bytes | None = None
    default: bool = False


def _check_ticket_bytes(value: object, what: str, *, lo: int = 1, hi: int = _MAX_TICKET_ID) -> bytes:
    if not isinstance(value, bytes | bytearray) or not lo <= len(value) <= hi:
        raise KmsStoreError(f"{what} must be {lo} to {hi} octets")
    return bytes(value)


_KEY_SET_COLUMNS = (_key_sets.c.identifier, _key_sets.c.pvt, _key_sets.c.ssk_sealed, _key_sets.c.rsk_sealed)
# The statements of every KMS request, built once: building a SQLAlchemy statement costs more
# CPU than running it on SQLite (issue 9 "Speed").
_ACTIVE_GENERATION = sa.select(sa.func.max(_community.c.id))
_INTEGRITY_KEY = sa.select(_users.c.integrity_key_sealed).where(_users.c.uri == sa.bindparam("uri"))
_USER_AND_KEY_SETS = (
    sa.select(_users.c.uri, _users.c.created_at, _users.c.enabled, _users.c.integrity_key_sealed,
              _key_sets.c.period_no, *_KEY_SET_COLUMNS)
    .select_from(_users.outerjoin(_key_sets, sa.and_(
        _key_sets.c.user_uri == _users.c.uri, _key_sets.c.generation == sa.bindparam("generation"),
        _key_sets.c.period_no.in_(sa.bindparam("periods", expanding=True)))))
    .where(_users.c.uri == sa.bindparam("uri"))
)


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


class KmsStore:
    """The KMS database at one URL, its secrets sealed under an :class:`AtRestKey`.

    Thread-safe (a connection pool); several processes may share a PostgreSQL database.
    Every failure is a :class:`~mikey.errors.KmsStoreError`; driver exceptions never escape.
    """

    def __init__(self, url: str | sa.URL, at_rest_key: AtRestKey, *, migrate: bool = True) -> None:
        self.url = database_url(url)
        self._key = at_rest_key
        self._public: dict[int, KmsPublicKeys] = {}
        self._public_lock = threading.Lock()
        options: dict[str, Any] = {}
        if self.url.drivername.startswith("sqlite"):
            options["connect_args"] = {"timeout": 30.0}
        else:
            options.update(pool_pre_ping=True, connect_args={"connect_timeout": 5})
        try:
            self._engine: Engine = sa.create_engine(self.url, **options)
        except ImportError:
            raise KmsStoreError(
                f"the driver for {self.url.drivername} is not installed (pip install 'mikey[postgres]')"
            ) from None
        except SQLAlchemyError as exc:
            raise KmsStoreError(f"cannot use the database {self._safe_url()}: {type(exc).__name__}") from None
        if self.url.drivername.startswith("sqlite"):
            sa.event.listen(self._engine, "connect", _sqlite_on_connect)
            sa.event.listen(self._engine, "begin", _sqlite_on_begin)
        if migrate:
            self.upgrade()

    def __repr__(self) -> str:
        return f"KmsStore({self._safe_url()})"

    def _safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> KmsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors and transactions --------------------------------------------------------------

    def _fail(self, exc: BaseException, doing: str) -> NoReturn:
        """A :class:`KmsStoreError` for a driver failure: the driver's message, not its SQL or parameters."""
        if isinstance(exc, DBAPIError) and exc.orig is not None:
            detail = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
            detail = f"{type(exc.orig).__name__}: {detail}"
        else:
            detail = type(exc).__name__
        raise KmsStoreError(f"database {self._safe_url()} failed while {doing} ({detail})") from None

    @contextmanager
    def _begin(self, doing: str) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except KmsStoreError:
            raise
        except SQLAlchemyError as exc:
            self._fail(exc, doing)

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to *revision* (default: the newest) with the shipped Alembic migrations."""
        from alembic import command
        from alembic.config import Config
        from alembic.util import CommandError

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        try:
            with self._engine.connect() as conn, conn.execution_options(mikey_write_lock=True).begin():
                if conn.dialect.name == "postgresql":
                    # Two KMS processes starting on an empty database: one migrates, the other waits.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
                config.attributes["connection"] = conn
                command.upgrade(config, revision)  # inside this transaction: all of it, or none of it
        except CommandError as exc:
            raise KmsStoreError(f"cannot migrate the database {self._safe_url()}: {exc}") from None
        except SQLAlchemyError as exc:
            self._fail(exc, "migrating the schema")

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        from .migrations import VERSION_TABLE

        with self._begin("reading the schema revision") as conn:
            return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()

    # -- the community ------------------------------------------------------------------------

    def _community_row(self, community: KmsCommunity, generation: int, now: float | None,
                       created_by: str | None) -> dict[str, Any]:
        p = community.public
        row: dict[str, Any] = {
            "id": generation,
            "kms_uri": p.kms_uri,
            "kpak": p.kpak,
            "z_public": p.z,
            "sakke_params": p.sakke_params,
            "id_scheme": p.id_scheme,
            "key_period": p.key_period,
            "key_period_offset": p.key_period_offset,
            "ksak_sealed": self._key.seal(_int_bytes(community.ksak), _gad("ksak", generation, p.kms_uri)),
            "z_master_sealed": self._key.seal(_int_bytes(community.z_master), _gad("z", generation, p.kms_uri)),
            "created_at": time.time() if now is None else now,
        }
        if created_by is not None:
            row["created_by"] = created_by
        return row

    def create_community(self, community: KmsCommunity, *, now: float | None = None) -> None:
        """Store *community* (its secrets sealed) as generation 1; refused if the database holds one."""
        try:
            with self._begin("storing the community") as conn:
                conn.execute(_community.insert(), self._community_row(community, 1, now, None))
        except KmsStoreError:
            if self.has_community():
                raise KmsStoreError("the database already holds a KMS community") from None
            raise

    def get_or_create_community(self, generate: Callable[[], KmsCommunity]) -> KmsCommunity:
        """The stored (active) community, or ``generate()`` stored first (a KMS's first start).

        When several processes start at once on one empty database, one community is
        kept and every process gets that one.
        """
        if not self.has_community():
            try:
                self.create_community(generate())
            except KmsStoreError:
                if not self.has_community():
                    raise
        return self.load_community()

    def has_community(self) -> bool:
        with self._begin("reading the community") as conn:
            return conn.execute(sa.select(_community.c.id).limit(1)).first() is not None

    def active_generation(self) -> int:
        """The number of the active (newest) community generation: one indexed ``max()``, read every call."""
        with self._begin("reading the community") as conn:
            generation = conn.execute(_ACTIVE_GENERATION).scalar()
        if generation is None:
            raise KmsStoreError("the database holds no KMS community yet")
        return int(generation)

    @staticmethod
    def _public_of(row: Any) -> KmsPublicKeys:
        return KmsPublicKeys(
            kms_uri=row.kms_uri,
            kpak=bytes(row.kpak),
            z=bytes(row.z_public),
            sakke_params=row.sakke_params,
            key_period=row.key_period,
            key_period_offset=row.key_period_offset,
            id_scheme=row.id_scheme,
        )

    def public_keys(self, generation: int | None = None) -> KmsPublicKeys:
        """The public keys and key-period rules of *generation* (default: the active one).

        Cached per generation: a generation's keys never change.
        """
        if generation is None:
            generation = self.active_generation()
        with self._public_lock:
            cached = self._public.get(generation)
        if cached is not None:
            return cached
        with self._begin("reading the community") as conn:
            row = conn.execute(sa.select(_community).where(_community.c.id == generation)).first()
        if row is None:
            raise KmsStoreError(f"the database holds no community generation {generation}")
        public = self._public_of(row)
        with self._public_lock:
            return self._public.setdefault(generation, public)

    def list_generations(self) -> list[CommunityGeneration]:
        """Every community generation, oldest first (the last is the active one)."""
        with self._begin("listing community generations") as conn:
            rows = conn.execute(sa.select(_community).order_by(_community.c.id)).all()
        return [CommunityGeneration(int(r.id), self._public_of(r), r.created_at, r.created_by) for r in rows]

    def load_community(self, generation: int | None = None) -> KmsCommunity:
        """The community of *generation* (default: the active one) with its secrets decrypted.

        The secrets are checked against KPAK and Z.
        """
        if generation is None:
            generation = self.active_generation()
        public = self.public_keys(generation)
        with self._begin("reading the community") as conn:
            row = conn.execute(sa.select(_community.c.ksak_sealed, _community.c.z_master_sealed)
                               .where(_community.c.id == generation)).one()
        ksak = self._key.open(row.ksak_sealed, _gad("ksak", generation, public.kms_uri), what="KSAK")
        z_master = self._key.open(row.z_master_sealed, _gad("z", generation, public.kms_uri), what="master secret z")
        secrets_doc = {**public.to_dict(), "secrets": {"ksak": ksak.hex(), "z_master": z_master.hex()}}
        try:
            return KmsCommunity.from_dict(secrets_doc)
        except KeyMaterialError as exc:  # the secrets do not match the public keys
            raise KmsStoreError(f"the stored community is inconsistent: {exc}") from None

    def rotate_community(self, community: KmsCommunity, *, actor: str | None = None,
                         now: float | None = None) -> int:
        """Store *community* as the next generation, now the active one; its number is returned.

        The new master keys must keep the KMS URI, ID scheme and key-period rules (so every
        key period keeps its number).  The rotation and its audit record are one transaction;
        when another process rotated at the same moment, nothing is stored and
        :class:`RotationConflictError` is raised.
        """
        current = self.active_generation()
        old, new = self.public_keys(current), community.public
        for field in ("kms_uri", "id_scheme", "key_period", "key_period_offset"):
            if getattr(old, field) != getattr(new, field):
                raise KmsStoreError(f"a rotation keeps the community's {field} ({getattr(old, field)!r})")
        if (old.kpak, old.z) == (new.kpak, new.z):
            raise KmsStoreError("a rotation needs new master keys")
        generation = current + 1
        when = time.time() if now is None else now
        who = actor or "local"
        try:
            with self._engine.begin() as conn:
                conn.execute(_community.insert(), self._community_row(community, generation, when, who))
                self._audit_in(conn, who, "rotate", new.kms_uri, f"generation {current} -> {generation}", when)
        except IntegrityError:
            raise RotationConflictError(
                f"another process rotated the community to generation {generation} at the same time") from None
        except SQLAlchemyError as exc:
            self._fail(exc, "rotating the community")
        return generation

    # -- audit --------------------------------------------------------------------------------

    @staticmethod
    def _audit_in(conn: Connection, actor: str, action: str, subject: str | None, detail: str | None,
                  at: float) -> None:
        conn.execute(_audit.insert(), {"at": at, "actor": actor[:256], "action": action, "subject": subject,
                                       "detail": detail})

    def list_audit(self, *, action: str | None = None) -> list[AuditRecord]:
        """The admin audit log (rotations, user changes, integrity keys set), oldest first."""
        stmt = sa.select(_audit).order_by(_audit.c.at, _audit.c.id)
        if action is not None:
            stmt = stmt.where(_audit.c.action == action)
        with self._begin("reading the audit log") as conn:
            rows = conn.execute(stmt).all()
        return [AuditRecord(r.at, r.actor, r.action, r.subject, r.detail) for r in rows]

    # -- users --------------------------------------------------------------------------------

    def _seal_integrity_key(self, uri: str, integrity_key: bytes) -> bytes:
        return self._key.seal(check_integrity_key(integrity_key), _ad("ink", uri))

    def add_user(self, uri: str, *, enabled: bool = True, now: float | None = None,
                 integrity_key: bytes | None = None, actor: str | None = None) -> bool:
        """Register *uri* (with its integrity key InK, if given); ``False`` if it was already registered
        (then nothing changes).  Audited."""
        check_user_uri(uri)
        sealed = None if integrity_key is None else self._seal_integrity_key(uri, integrity_key)
        when = time.time() if now is None else now
        row: dict[str, Any] = {"uri": uri, "created_at": when, "enabled": enabled}
        if sealed is not None:
            row["integrity_key_sealed"] = sealed
        detail = ", ".join(x for x in ("enabled" if enabled else "disabled",
                                       "integrity key" if sealed is not None else "") if x)
        try:
            with self._begin("adding a user") as conn:
                conn.execute(_users.insert(), row)
                self._audit_in(conn, actor or "local", "user-add", uri, detail, when)
        except KmsStoreError:
            if self.get_user(uri) is not None:
                return False
            raise
        return True

    def set_user_enabled(self, uri: str, enabled: bool, *, actor: str | None = None,
                         now: float | None = None) -> None:
        """Enable or disable *uri* (:class:`UnknownUserError` if not registered).  Audited."""
        with self._begin("updating a user") as conn:
            changed = conn.execute(_users.update().where(_users.c.uri == uri).values(enabled=enabled)).rowcount
            if changed:
                self._audit_in(conn, actor or "local", "user-enable" if enabled else "user-disable", uri, None,
                               time.time() if now is None else now)
        if not changed:
            raise UnknownUserError(f"user {uri!r} is not registered")

    def set_integrity_key(self, uri: str, integrity_key: bytes | None, *, actor: str | None = None,
                          now: float | None = None) -> None:
        """Set (or, with ``None``, remove) the integrity key InK of *uri*.  Audited (never the key)."""
        sealed = None if integrity_key is None else self._seal_integrity_key(uri, integrity_key)
        with self._begin("setting an integrity key") as conn:
            changed = conn.execute(
                _users.update().where(_users.c.uri == uri).values(integrity_key_sealed=sealed)).rowcount
            if changed:
                self._audit_in(conn, actor or "local", "integrity-key-set" if sealed else "integrity-key-remove",
                               uri, None, time.time() if now is None else now)
        if not changed:
            raise UnknownUserError(f"user {uri!r} is not registered")

    def integrity_key(self, uri: str) -> bytes | None:
        """The integrity key InK of *uri*, decrypted; ``None`` if it has none or is not registered."""
        with self._begin("reading an integrity key") as conn:
            sealed = conn.execute(_INTEGRITY_KEY, {"uri": uri}).scalar()
        if sealed is None:
            return None
        return self._key.open(sealed, _ad("ink", uri), what=f"integrity key of {uri!r}")

    @staticmethod
    def _user_of(row: Any) -> KmsUser:
        return KmsUser(row.uri, row.created_at, bool(row.enabled), row.integrity_key_sealed is not None)

    def get_user(self, uri: str) -> KmsUser | None:
        with self._begin("reading a user") as conn:
            row = conn.execute(sa.select(_users).where(_users.c.uri == uri)).first()
        return None if row is None else self._user_of(row)

    def list_users(self) -> list[KmsUser]:
        with self._begin("listing users") as conn:
            rows = conn.execute(sa.select(_users).order_by(_users.c.uri)).all()
        return [self._user_of(r) for r in rows]

    # -- key sets -----------------------------------------------------------------------------

    def _key_set(self, row: Any, uri: str, period_no: int, generation: int) -> IdentityKeys:
        public = self.public_keys(generation)
        ssk = self._key.open(row.ssk_sealed, _gad("ssk", generation, public.kms_uri, uri, period_no),
                             what=f"SSK of {uri!r}")
        rsk = self._key.open(row.rsk_sealed, _gad("rsk", generation, public.kms_uri, uri, period_no),
                             what=f"RSK of {uri!r}")
        # RFC 6509 monthly identifiers carry no period number in the key set (see issue.issue_user_keys).
        stored_period = period_no if public.id_scheme != 1 else None
        return IdentityKeys(uri, bytes(row.identifier), ssk, bytes(row.pvt), rsk, public, stored_period)

    def get_key_set(self, uri: str, period_no: int, *, generation: int | None = None) -> IdentityKeys | None:
        """The key set stored for (*uri*, *period_no*) under *generation* (default: the active one), or ``None``."""
        if generation is None:
            generation = self.active_generation()
        with self._begin("reading a key set") as conn:
            row = self._select_key_set(conn, uri, period_no, generation)
        return None if row is None else self._key_set(row, uri, period_no, generation)

    def user_and_key_sets(self, uri: str, period_nos: Collection[int], *,
                          generation: int) -> tuple[KmsUser | None, dict[int, IdentityKeys]]:
        """The user *uri* (``None`` if not registered) and its key sets stored under *generation*
        for *period_nos*, ``{period: keys}``: one SELECT, the user's row left-joined with them."""
        with self._begin("reading a user and its key sets") as conn:
            rows = conn.execute(_USER_AND_KEY_SETS,
                                {"uri": uri, "generation": generation, "periods": sorted(period_nos)}).all()
        if not rows:
            return None, {}
        return self._user_of(rows[0]), {int(r.period_no): self._key_set(r, uri, int(r.period_no), generation)
                                        for r in rows if r.period_no is not None}

    @staticmethod
    def _select_key_set(conn: Connection, uri: str, period_no: int, generation: int) -> Any:
        stmt = sa.select(*_KEY_SET_COLUMNS).where(
            _key_sets.c.generation == generation, _key_sets.c.user_uri == uri, _key_sets.c.period_no == period_no)
        return conn.execute(stmt).first()

    def get_or_issue_key_set(
        self,
        uri: str,
        period_no: int,
        issue: Callable[[str, int], IdentityKeys],
        *,
        generation: int | None = None,
        issued_to: str | None = None,
        now: float | None = None,
        known_new: bool = False,
    ) -> IdentityKeys:
        """The key set of (*uri*, *period_no*) under *generation* (default: the active one): the stored
        one, else ``issue(uri, period_no)`` (which must use that generation's master keys) stored first.

        *period_no* is the TS 33.180 KeyPeriodNo (for RFC 6509 monthly identifiers, any number
        naming the month).  The user must be registered and enabled (:class:`UnknownUserError`).
        The new key set is stored in one transaction under UNIQUE(generation, user, period): when
        another process stored one first, the insert fails, is rolled back, and the stored one is
        returned, so every caller gets the same keys.  If *issue* raises, nothing is stored.
        *known_new*: the caller has just read that the user is enabled and has no such key set
        (:meth:`user_and_key_sets`), so both reads are skipped.
        """
        if generation is None:
            generation = self.active_generation()
        if not known_new:
            existing = self.get_key_set(uri, period_no, generation=generation)
            if existing is not None:
                return existing
            user = self.get_user(uri)
            if user is None or not user.enabled:
                raise UnknownUserError(f"user {uri!r} is {'not registered' if user is None else 'disabled'}")
        keys = issue(uri, period_no)  # the crypto runs outside any transaction
        public = self.public_keys(generation)
        if keys.uri != uri or (keys.period_no is not None and keys.period_no != period_no):
            raise KmsStoreError(f"the issuer returned keys for {keys.uri!r} period {keys.period_no}, not {uri!r} {period_no}")
        row = {
            "generation": generation,
            "user_uri": uri,
            "period_no": period_no,
            "identifier": keys.identifier,
            "pvt": keys.pvt,
            "ssk_sealed": self._key.seal(keys.ssk, _gad("ssk", generation, public.kms_uri, uri, period_no)),
            "rsk_sealed": self._key.seal(keys.rsk, _gad("rsk", generation, public.kms_uri, uri, period_no)),
            "issued_at": time.time() if now is None else now,
            "issued_to": issued_to,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(_key_sets.insert(), row)
        except IntegrityError:
            # Another process stored this (generation, user, period) first (or the user was just removed).
            pass
        except SQLAlchemyError as exc:
            self._fail(exc, "storing a key set")
        else:
            return keys
        stored = self.get_key_set(uri, period_no, generation=generation)
        if stored is None:
            raise KmsStoreError(f"the key set of {uri!r} period {period_no} was refused by the database")
        return stored

    def list_key_sets(self, *, uri: str | None = None, period_no: int | None = None,
                      generation: int | None = None) -> list[KeySetRecord]:
        """The audit listing: every issued key set of every generation (no secrets), oldest first,
        optionally for one user, period or generation."""
        stmt = sa.select(
            _key_sets.c.user_uri,
            _key_sets.c.period_no,
            _key_sets.c.identifier,
            _key_sets.c.issued_at,
            _key_sets.c.issued_to,
            _key_sets.c.generation,
        ).order_by(_key_sets.c.issued_at, _key_sets.c.id)
        if uri is not None:
            stmt = stmt.where(_key_sets.c.user_uri == uri)
        if period_no is not None:
            stmt = stmt.where(_key_sets.c.period_no == period_no)
        if generation is not None:
            stmt = stmt.where(_key_sets.c.generation == generation)
        with self._begin("listing key sets") as conn:
            rows = conn.execute(stmt).all()
        return [KeySetRecord(r.user_uri, r.period_no, bytes(r.identifier), r.issued_at, r.issued_to, int(r.generation))
                for r in rows]


    # -- trusted external KMSs (TS 33.180 §D.3.4) -----------------------------------------------

    @staticmethod
    def _trusted_of(row: Any) -> TrustedKms:
        public = KmsPublicKeys(kms_uri=row.kms_uri, kpak=bytes(row.kpak), z=bytes(row.z_public),
                               sakke_params=row.sakke_params, key_period=row.key_period,
                               key_period_offset=row.key_period_offset, id_scheme=row.id_scheme)
        info = KmsCertificateInfo(public, tuple(json.loads(row.domains)), row.cert_version, row.cert_role)
        return TrustedKms(info, row.added_at, row.added_by)

    def add_trusted_kms(self, certificate: KmsCertificateInfo, *, actor: str | None = None,
                        now: float | None = None) -> tuple[str, int]:
        """Trust *certificate* (another KMS's KmsCertificate), replacing the one stored for its KMS URI.

        Returns ``("added" | "replaced" | "unchanged", cache number)``: an add or replace increments
        the cache number and is audited, in one transaction; the same certificate again changes
        nothing.  This KMS's own URI is refused (:class:`KmsStoreError`).
        """
        info = certificate
        if not isinstance(info, KmsCertificateInfo):
            raise TrustRefusedError("a trusted KMS certificate must be a KmsCertificateInfo")
        try:
            check_user_uri(info.kms_uri)
        except KmsStoreError:
            raise TrustRefusedError("a KMS URI must have 1 to 2048 printable characters") from None
        if self.has_community() and info.kms_uri == self.public_keys().kms_uri:
            raise TrustRefusedError(f"{info.kms_uri!r} is this KMS's own URI: its certificate is served by init, "
                                "not trusted as an external KMS")
        p = info.public
        when = time.time() if now is None else now
        who = actor or "local"
        row = {"kms_uri": p.kms_uri, "cert_version": info.version, "cert_role": info.role,
               "id_scheme": int(p.id_scheme), "key_period": p.key_period, "key_period_offset": p.key_period_offset,
               "z_public": p.z, "kpak": p.kpak, "sakke_params": p.sakke_params,
               "domains": json.dumps(list(info.domains)), "added_at": when, "added_by": who}
        try:
            with self._begin("trusting a KMS certificate") as conn:
                conn.execute(_BUMP_CACHE)  # first: the write lock (SQLite), the row lock (PostgreSQL)
                old = conn.execute(sa.select(_trusted_certs).where(_trusted_certs.c.kms_uri == p.kms_uri)).first()
                if old is not None and self._trusted_of(old).certificate == info:
                    raise _Unchanged
                if old is None:
                    conn.execute(_trusted_certs.insert(), row)
                else:
                    conn.execute(_trusted_certs.update().where(_trusted_certs.c.kms_uri == p.kms_uri), row)
                cache_num = int(conn.execute(_CACHE_NUM).scalar_one())
                outcome = "added" if old is None else "replaced"
                self._audit_in(conn, who, f"trust-{'add' if old is None else 'replace'}", p.kms_uri,
                               f"cache {cache_num}; KPAK {p.kpak.hex()[:16]}…", when)
        except _Unchanged:
            return "unchanged", self.cert_cache_number()
        return outcome, cache_num

    def remove_trusted_kms(self, kms_uri: str, *, actor: str | None = None, now: float | None = None) -> int | None:
        """Stop trusting *kms_uri*: the new cache number, or ``None`` if it was not trusted (nothing
        changes).  Audited."""
        when = time.time() if now is None else now
        who = actor or "local"
        try:
            with self._begin("removing a trusted KMS") as conn:
                conn.execute(_BUMP_CACHE)
                if not conn.execute(_trusted_certs.delete().where(_trusted_certs.c.kms_uri == kms_uri)).rowcount:
                    raise _Unchanged
                cache_num = int(conn.execute(_CACHE_NUM).scalar_one())
                self._audit_in(conn, who, "trust-remove", kms_uri, f"cache {cache_num}", when)
        except _Unchanged:
            return None
        return cache_num

    def cert_cache_number(self) -> int:
        """The current KmsCertCache number (0 until the first change)."""
        with self._begin("reading the certificate cache number") as conn:
            return int(conn.execute(_CACHE_NUM).scalar_one())

    def trusted_kms_cache(self) -> tuple[int, list[TrustedKms]]:
        """The cache number and every trusted KMS, by URI: one SELECT, one consistent snapshot."""
        with self._begin("reading the trusted KMS certificates") as conn:
            rows = conn.execute(_TRUSTED_CACHE).all()
        if not rows:
            raise KmsStoreError("the database has no certificate cache row (schema revision 0004 missing?)")
        return int(rows[0].cache_num), [self._trusted_of(r) for r in rows if r.kms_uri is not None]

    # -- MIKEY-TICKET (RFC 6043): parties, TPKs, resolved tickets -------------------------------------

    def _ticket_user_of(self, row: Any) -> TicketUserRecord:
        key_id = bytes(row.key_id)
        psk = self._key.open(row.psk_sealed, _ad("ticket-psk", key_id.hex()), what="MIKEY-TICKET PSK")
        groups = tuple(bytes.fromhex(g) for g in json.loads(row.groups))
        return TicketUserRecord(bytes(row.identity), key_id, psk, groups, bool(row.may_request),
                                bool(row.may_resolve), bool(row.peer_kms), row.created_at, row.url)

    def add_ticket_user(self, identity: bytes, psk: bytes, *, key_id: bytes | None = None,
                        groups: tuple[bytes, ...] = (), may_request: bool = True, may_resolve: bool = True,
                        peer_kms: bool = False, url: str | None = None, actor: str | None = None,
                        now: float | None = None) -> bool:
        """Store a MIKEY-TICKET party's PSK (sealed) and rights; ``False`` if *key_id* (default: the
        identity) is taken (then nothing changes).  A peer KMS (*peer_kms*) may have the *url* this KMS
        forwards Resolves of its tickets to (RFC 6043 §10).  Audited (never the key)."""
        if url is not None and (not peer_kms or not url.startswith(("http://", "https://")) or len(url) > _MAX_URI):
            raise KmsStoreError("a forwarding URL is an http(s):// URL of a peer KMS")
        identity = _check_ticket_bytes(identity, "a MIKEY-TICKET identity")
        kid = _check_ticket_bytes(identity if key_id is None else key_id, "a PSK id")
        psk = _check_ticket_bytes(psk, "a MIKEY-TICKET PSK", lo=MIN_TICKET_KEY, hi=MAX_TICKET_KEY)
        group_list = [_check_ticket_bytes(g, "a group identity").hex() for g in groups]
        when = time.time() if now is None else now
        row = {"key_id": kid, "identity": identity, "psk_sealed": self._key.seal(psk, _ad("ticket-psk", kid.hex())),
               "groups": json.dumps(group_list), "may_request": may_request, "may_resolve": may_resolve,
               "peer_kms": peer_kms, "url": url, "created_at": when}
        subject = identity.decode("utf-8", "replace")
        detail = ", ".join(x for x, on in (("request", may_request), ("resolve", may_resolve),
                                          ("peer KMS", peer_kms)) if on) or "no rights"
        try:
            with self._engine.begin() as conn:
                conn.execute(_ticket_credentials.insert(), row)
                self._audit_in(conn, actor or "local", "ticket-user-add", subject, detail, when)
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            self._fail(exc, "adding a MIKEY-TICKET party")
        return True

    def ticket_user(self, key_id: bytes) -> TicketUserRecord | None:
        """The party whose PSK *key_id* names, or ``None``.  (Read per Ticket Request/Resolve: the
        statement is built once, its construction costs more than SQLite's lookup.)"""
        with self._begin("reading a MIKEY-TICKET party") as conn:
            row = conn.execute(_TICKET_USER_BY_KEY_ID, {"key_id": key_id}).first()
        return None if row is None else self._ticket_user_of(row)

    def ticket_users(self, identity: bytes | None = None) -> list[TicketUserRecord]:
        """Every MIKEY-TICKET party's devices (of *identity* only, if given), by identity and PSK id."""
        stmt = sa.select(_ticket_credentials).order_by(_ticket_credentials.c.identity, _ticket_credentials.c.key_id)
        if identity is not None:
            stmt = stmt.where(_ticket_credentials.c.identity == identity)
        with self._begin("listing MIKEY-TICKET parties") as conn:
            rows = conn.execute(stmt).all()
        return [self._ticket_user_of(r) for r in rows]

    def ticket_peer(self, identity: bytes) -> TicketUserRecord | None:
        """The peer KMS *identity* with a forwarding URL (RFC 6043 §10), or ``None``."""
        stmt = sa.select(_ticket_credentials).where(
            _ticket_credentials.c.identity == identity, _ticket_credentials.c.peer_kms.is_(True),
            _ticket_credentials.c.url.is_not(None)).order_by(_ticket_credentials.c.key_id).limit(1)
        with self._begin("reading a peer KMS") as conn:
            row = conn.execute(stmt).first()
        return None if row is None else self._ticket_user_of(row)

    def _ticket_tpk_of(self, row: Any) -> TicketTpkRecord:
        key_id = bytes(row.key_id)
        key = self._key.open(row.key_sealed, _ad("ticket-tpk", key_id.hex()), what="ticket protection key")
        return TicketTpkRecord(key_id, key, None if row.owner is None else bytes(row.owner), row.default_marker == 1)

    def add_ticket_tpk(self, key_id: bytes, key: bytes, *, owner: bytes | None = None, default: bool = False,
                       now: float | None = None) -> bool:
        """Store a TPK (sealed); ``False`` if *key_id* is taken, or *default* and a default TPK exists."""
        kid = _check_ticket_bytes(key_id, "a TPK id")
        key = _check_ticket_bytes(key, "a TPK", lo=MIN_TICKET_KEY, hi=MAX_TICKET_KEY)
        row = {"key_id": kid, "key_sealed": self._key.seal(key, _ad("ticket-tpk", kid.hex())),
               "owner": None if owner is None else _check_ticket_bytes(owner, "a TPK owner"),
               "default_marker": 1 if default else None, "created_at": time.time() if now is None else now}
        try:
            with self._engine.begin() as conn:
                conn.execute(_ticket_tpks.insert(), row)
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            self._fail(exc, "storing a ticket protection key")
        return True

    def ticket_tpk(self, key_id: bytes | None) -> TicketTpkRecord | None:
        """The TPK *key_id* names (``None``: the default TPK), or ``None``."""
        where = _ticket_tpks.c.default_marker == 1 if key_id is None else _ticket_tpks.c.key_id == key_id
        with self._begin("reading a ticket protection key") as conn:
            row = conn.execute(sa.select(_ticket_tpks).where(where)).first()
        return None if row is None else self._ticket_tpk_of(row)

    def ticket_tpk_owned_by(self, owner: bytes) -> TicketTpkRecord | None:
        """A TPK the KMS shares with *owner* (mode 2 or 3 of RFC 6043 §4.1.1), or ``None``."""
        with self._begin("reading a ticket protection key") as conn:
            row = conn.execute(sa.select(_ticket_tpks).where(_ticket_tpks.c.owner == owner)
                               .order_by(_ticket_tpks.c.created_at).limit(1)).first()
        return None if row is None else self._ticket_tpk_of(row)

    def get_or_create_default_tpk(self, generate: Callable[[], tuple[bytes, bytes]]) -> TicketTpkRecord:
        """The KMS's default TPK; ``generate() -> (key id, key)`` stored first when there is none.
        Processes starting together all get the one the database kept (UNIQUE default marker)."""
        existing = self.ticket_tpk(None)
        if existing is not None:
            return existing
        key_id, key = generate()
        self.add_ticket_tpk(key_id, key, default=True)
        stored = self.ticket_tpk(None)
        if stored is None:
            raise KmsStoreError("the default ticket protection key was refused by the database")
        return stored

    def record_ticket_resolution(self, ticket_id: bytes, *, use_id: bytes, device: bytes, resolver: bytes,
                                 expires: float | None, now: float) -> str | None:
        """Remember a resolve of a no-reuse ticket (RFC 6043 §5.3, J = 0); why it is a reuse, or ``None``.

        A reuse is a second resolve by the same *device* (UNIQUE(ticket, device)), or a resolve with
        another non-empty *use_id* (Vi, key forking) than the one the first resolve fixed (the ticket
        id is the PRIMARY KEY of its use).  Atomic across processes: of two concurrent resolves by one
        device exactly one is recorded; a reuse stores nothing.  Expired records are deleted.
        """
        ticket_id = _check_ticket_bytes(ticket_id, "a ticket id")
        resolution = {"ticket_id": ticket_id, "device": device, "resolver": resolver, "use_id": use_id,
                      "resolved_at": now, "expires": expires}
        try:
            with self._engine.begin() as conn:
                for table in (_ticket_uses, _ticket_resolutions):
                    conn.execute(table.delete().where(table.c.expires < now))
                conn.execute(_ticket_uses.insert(), {"ticket_id": ticket_id, "use_id": use_id, "first_at": now,
                                                     "expires": expires})
                conn.execute(_ticket_resolutions.insert(), resolution)
            return None
        except IntegrityError:
            pass  # resolved before (or just now, by another process): check the use, then the device
        except SQLAlchemyError as exc:
            self._fail(exc, "recording a ticket resolution")
        with self._begin("reading a ticket's use") as conn:
            first = conn.execute(sa.select(_ticket_uses.c.use_id).where(_ticket_uses.c.ticket_id == ticket_id)).scalar()
        if first is not None and use_id and bytes(first) and not secrets.compare_digest(bytes(first), use_id):
            return "the ticket was used in another Ticket Transfer and its policy forbids reuse (J = 0, §5.3)"
        try:
            with self._engine.begin() as conn:
                if first is None:  # the first record expired meanwhile
                    conn.execute(_ticket_uses.insert(), {"ticket_id": ticket_id, "use_id": use_id, "first_at": now,
                                                         "expires": expires})
                conn.execute(_ticket_resolutions.insert(), resolution)
        except IntegrityError:
            return "this device has already resolved the ticket, whose policy forbids reuse (J = 0, §5.3)"
        except SQLAlchemyError as exc:
            self._fail(exc, "recording a ticket resolution")
        return None

    def list_ticket_resolutions(self, ticket_id: bytes | None = None) -> list[tuple[bytes, bytes, bytes, float]]:
        """``(ticket id, resolver, device, resolved at)`` of the remembered resolves, oldest first (audit)."""
        stmt = sa.select(_ticket_resolutions).order_by(_ticket_resolutions.c.resolved_at, _ticket_resolutions.c.id)
        if ticket_id is not None:
            stmt = stmt.where(_ticket_resolutions.c.ticket_id == ticket_id)
        with self._begin("listing ticket resolutions") as conn:
            rows = conn.execute(stmt).all()
        return [(bytes(r.ticket_id), bytes(r.resolver), bytes(r.device), r.resolved_at) for r in rows]

    # -- MIKEY-IBAKE (RFC 6267 §4.2.1) --------------------------------------------------------

    def ibake_master(self) -> IbakeMasterRecord | None:
        """The KMS's Boneh-Franklin parameters and master secret (opened), or ``None`` before the first."""
        with self._begin("reading the MIKEY-IBAKE master secret") as conn:
            row = conn.execute(sa.select(_ibake_master).where(_ibake_master.c.id == 1)).first()
        if row is None:
            return None
        params = bytes(row.params)
        master = self._key.open(row.master_sealed, _ad("ibake-master", params.hex()), what="MIKEY-IBAKE master secret")
        return IbakeMasterRecord(params, master, str(row.key_period))

    def get_or_create_ibake_master(self, generate: Callable[[], tuple[bytes, bytes]], key_period: str,
                                   *, now: float | None = None) -> IbakeMasterRecord:
        """The KMS's IBAKE master; ``generate() -> (params, master secret)`` stored first when there is none.
        Processes starting together all get the one the database kept (single row, id 1)."""
        existing = self.ibake_master()
        if existing is not None:
            return existing
        params, master = generate()
        row = {"id": 1, "params": params, "master_sealed": self._key.seal(master, _ad("ibake-master", params.hex())),
               "key_period": key_period, "created_at": time.time() if now is None else now}
        try:
            with self._engine.begin() as conn:
                conn.execute(_ibake_master.insert(), row)
        except IntegrityError:
            pass  # another process stored one first: the re-read below returns it
        except SQLAlchemyError as exc:
            self._fail(exc, "storing the MIKEY-IBAKE master secret")
        stored = self.ibake_master()
        if stored is None:
            raise KmsStoreError("the MIKEY-IBAKE master secret was refused by the database")
        return stored


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """WAL (readers do not block the writer), foreign keys on, a full fsync per commit.

    The driver's own transaction handling is switched off (it would commit before DDL):
    :func:`_sqlite_on_begin` emits BEGIN, so a migration is one transaction too.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    """BEGIN, or BEGIN IMMEDIATE (the write lock at once) for a migration, so concurrent starts take turns."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("mikey_write_lock") else "BEGIN")


_ibake_master = sa.Table(
    "kms_ibake_master",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("params", sa.LargeBinary),
    sa.Column("master_sealed", sa.LargeBinary),
    sa.Column("key_period", sa.Text),
    sa.Column("created_at", sa.Double),
)


@dataclasses.dataclass(frozen=True)
class IbakeMasterRecord:
    """The KMS's MIKEY-IBAKE master (RFC 5091 §5.1.2): encoded public parameters, encoded master secret
    (never shown) and the key period granularity (RFC 6267 §4.2.1)."""

    params: bytes
    master: bytes = dataclasses.field(repr=False)
    key_period: str = "YYYY-MM"
