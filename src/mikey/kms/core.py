"""The sans-I/O KMS request handler (3GPP TS 33.180 Annex D; issue 9 §1-§3).

:class:`KmsCore` turns one HTTP request (method, path, headers, body, time) into one
:class:`KmsResponse`; the HTTP edge (:mod:`mikey.kms.http`) only moves bytes.  Routes
(TS 33.180 §D.2.1), all ``POST``:

* ``/keymanagement/identity/v1/init``: KmsInit, the active community KmsCertificate (§D.3.2).
* ``/keymanagement/identity/v1/keyprov[/<user URI>[/<16 hex digits NTP time>]]``: KmsKeyProv
  (§D.3.3).  The URI may be percent-encoded or raw (deployed clients send it raw); without it,
  the user is the body's UserUri, else the token's MC identity.  Without a time the key set of
  the current key period is returned; a time in the next period returns the current and the
  next key set (rollover); other periods are refused (400).  Key sets are issued under the
  active community generation.
* ``/keymanagement/identity/v1/certcache[/<number>]``: KmsCertCache (§D.3.4), the certificates
  of the other KMSs the client should trust (added by an admin, below), each a ``KmsCertificate``
  with ``Role="External"``, under the ``CacheNum`` the store increments on every change.  Our
  reading of §D.3.4 (its text was not at hand; the schema gives CacheNum as an attribute of
  KmsCertCache and the path its optional number): the number in the path is the CacheNum of the
  cache the client holds; when it equals the current one nothing changed and the answer is a
  KmsCertCache with that CacheNum and no certificate; without a number, or with any other one,
  the whole cache is sent.  A client holding no certificate asks without a number.

The body may be empty (deployed clients send only the bearer token) or a ``KmsRequest`` /
``SignedKmsRequest`` document (at most :data:`MAX_BODY_BYTES`, parsed with every DTD refused,
so no entity is ever expanded or fetched).

Signed documents (§D.2.2, §D.2.3; :mod:`mikey.kms.dsig`): the *client* of a request is the
user the response is for (keyprov: the requested user; init and certcache: the token's MC
identity, else the body's UserUri).  When the client has an integrity key InK (set by an
admin), the answer is a ``SignedKmsResponse`` (HMAC-SHA-256 XML signature under the InK), whether
the request was signed or not (deployed clients in secured mode send empty bodies).  A
``SignedKmsRequest`` must verify under the client's InK, else 403 and nothing is issued; one
from a client with no InK is refused (403) too.  KmsError answers are never signed.

Admin routes (not in TS 33.180; a token with the admin scope, :func:`~mikey.kms.auth.require_admin`,
else 401/403 and nothing changes), JSON in and out (``application/json``), under
``/keymanagement/identity/v1/admin/``:

* ``POST users`` ``{"uri": URI, "enabled": true, "integrity_key": "<32-128 hex digits>"}``
  (``enabled`` and ``integrity_key`` optional): registers a user, 201 and the user; 409 if
  already registered (nothing changes).  ``GET``/``POST users``: ``{"users": [...]}``.
* ``POST users/<percent-encoded URI>/enable`` and ``…/disable`` (empty body): 200 and the user.
* ``POST users/<URI>/integrity-key`` ``{"integrity_key": "<hex>" | null}``: sets or removes the InK.
* ``POST rotate`` (empty body): a new community generation (new KSAK/KPAK and z/Z, same KMS
  URI and key periods) becomes active: init serves its certificate, keyprov issues under it;
  200 ``{"generation", "previous", "kms_uri", "rotated_by", "rotated_at", "kpak", "z"}``; 409
  when another process rotated at the same moment.
* ``GET``/``POST generations``: ``{"active": N, "generations": [...]}`` (public values only).
* ``GET``/``POST keysets`` (optional body ``{"user", "generation", "period_no"}``): the audit
  listing of issued key sets of every generation, no secrets.
* ``GET``/``POST audit``: the admin audit log (who rotated, registered, enabled... and when).
* ``POST trusted-kms`` with another KMS's KmsCertificate as body (a bare ``KmsCertificate``, or the
  KmsInit response holding it, e.g. that KMS's ``init`` answer; XML, any Content-Type): trusts it
  (certcache serves it), replacing the one of the same KMS URI: 201 when added, 200 when replaced
  or unchanged, ``{"kms_uri", "outcome", "cache_num", ...}``.  The certificate is validated (namespace,
  required elements, Z and KPAK points on their curves, our own KMS URI refused): 400, nothing stored.
  ``GET trusted-kms`` (or ``POST`` with an empty body): ``{"cache_num", "trusted_kms": [...]}``.
  ``POST trusted-kms/<percent-encoded KMS URI>/remove`` (empty body): 200 ``{"removed", "cache_num"}``,
  404 if not trusted.  Every change increments the cache number and is audited.

* ``POST ticket-users`` ``{"identity": URI, "psk": "<32-128 hex digits>", "key_id": TEXT, "groups": [URI...],
  "may_request": true, "may_resolve": true, "peer_kms": false, "url": URL}`` (all but identity and psk
  optional): provisions a MIKEY-TICKET party's PSK (one device; ``key_id`` is the IDRpsk it sends,
  default none: the identity names the key), 201 and the party without its key; 409 if that key id
  exists.  With ``peer_kms`` the party is another KMS (RFC 6043 §10) that may forward Resolves for
  the Responder its RESOLVE_INIT names; with ``url`` too, this KMS forwards the Resolves of tickets
  whose IDRkms is that KMS's identity to ``url`` (the peer list, kept in the database).  ``GET ticket-users``
  (or ``POST`` with an empty body): ``{"ticket_users": [...]}``, no keys.

MIKEY KMS roles (RFC 6043 §4.2.1, §4.2.3; issue 10 §9): ``POST /keymanagement/mikey/v1`` with a
MIKEY message as body, ``Content-Type: application/mikey`` (RFC 3830 §10, the registered media
type), answered with ``application/mikey``.  The message authenticates itself (its MAC under the
party's PSK with the KMS, or its signature, RFC 6043 §5.5) and the KMS database authorises it; no
bearer token is needed (an Authorization header is ignored).  The core dispatches on the common
header's data type to a registered :class:`MikeyKmsRole` -- by default the MIKEY-TICKET role
(:mod:`mikey.kms.ticket_role`, data types 11, 12, 16, 17); another method's KMS role (IBAKE key
requests, 19-21) registers the same way.  A response is 200; an RFC 6043 §5.4 Error message is
400 with the Error message as ``application/mikey`` body; a message the role discards (a replay,
RFC 3830 §5.4), a data type no role serves, or a body too short for a header is 400 with a
``KmsError``; 405, 413 and 415 (another Content-Type) as for the other routes; a database
failure 500.  A refused message stores nothing.

Every KmsCore reads the active generation number from the database once per request (one
primary-key ``max()``, so a rotation made through another process on the same database is
served from the next request on, with no staleness window as a TTL cache would have; a
generation's keys never change and are cached).

Errors are ``KmsResponse`` documents carrying a ``KmsError`` (ErrorCode = the HTTP status) with
400, 401 (plus ``WWW-Authenticate``, RFC 6750 §3), 403 (another user's keys, disabled user,
bad request signature, no admin scope), 404 (unknown route, unregistered user), 405, 409, 413
or 500; never a traceback.  A refused request stores nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

from ..constants import SakkeIDScheme
from ..errors import KeyMaterialError, KmsAuthError, KmsStoreError, MikeyError
from ..identities import key_period_number, unix_from_ntp
from ..keystore import IdentityKeys, KmsPublicKeys
from .auth import Principal, require_admin, www_authenticate
from .dsig import KmsSignatureError, sign_kms_response, verify_kms_request
from .issue import KmsCommunity, generate_community, issue_user_keys
from .mikey_route import MIKEY_MEDIA_TYPE, MIKEY_PATH
from .store import (
    KmsStore,
    KmsUser,
    RotationConflictError,
    TicketUserRecord,
    TrustedKms,
    TrustRefusedError,
    check_integrity_key,
    check_user_uri,
)
from .xml import (
    KMS_XML_NS,
    KmsCertificateInfo,
    kms_cert_cache_xml,
    kms_init_xml,
    kms_key_prov_xml,
    read_kms_certificate,
)

__all__ = ["KmsCore", "KmsResponse", "Authenticator", "MikeyKmsRole", "MAX_BODY_BYTES", "API_PREFIX", "ADMIN_PREFIX",
           "MIKEY_PATH", "MIKEY_MEDIA_TYPE"]

logger = logging.getLogger(__name__)

#: Request bodies longer than this are refused unparsed (413); a KmsRequest is well under 2 kB.
MAX_BODY_BYTES = 64 * 1024
#: The path prefix of the TS 33.180 KMS interface (§D.2.1).
API_PREFIX = "/keymanagement/identity/v1/"
#: The path prefix of the admin routes (this KMS's own, not TS 33.180).
ADMIN_PREFIX = API_PREFIX + "admin/"

_XML_TYPE = "application/xml; charset=utf-8"
_JSON_TYPE = "application/json"
_NTP_TIME = re.compile(r"[0-9A-Fa-f]{16}")
_CACHE_NUM = re.compile(r"[0-9]{1,18}")
_HEX_KEY = re.compile(r"(?:[0-9A-Fa-f]{2}){16,64}")
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_USER_VERBS = ("enable", "disable", "integrity-key")
_ERROR_DATA_TYPE = 6  # RFC 3830 §6.1: an Error message


class Authenticator(Protocol):
    """What the core needs of :class:`~mikey.kms.auth.BearerAuth`."""

    def verify_bearer(self, authorization: str | bytes | None, now: float) -> Principal: ...

    def authorize_user(self, principal: Principal, requested_user_uri: str) -> None: ...


class MikeyKmsRole(Protocol):
    """A MIKEY method's KMS role: the data types of the initial messages it answers, and the answer.

    ``handle`` returns the response or the Error message, or ``None`` for a message to discard;
    it raises :class:`~mikey.errors.KmsStoreError` when the database fails.
    """

    @property
    def data_types(self) -> frozenset[int]: ...

    def handle(self, message: bytes, now: float) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class KmsResponse:
    """One HTTP response: status, Content-Type, body and any extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class _Refusal(Exception):
    """A request refused with *status* and a KmsError (internal to the core)."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class _NoDtd(ET.TreeBuilder):
    def doctype(self, name: str | None, pubid: str | None, system: str | None) -> None:
        raise _Refusal(400, "KMS requests must not carry a DTD (entities are not accepted)")


def _q(tag: str) -> str:
    return f"{{{KMS_XML_NS}}}{tag}"


@dataclass(frozen=True, slots=True)
class _Request:
    user_uri: str | None
    kms_uri: str | None
    signed: bool = False


def _parse_body(body: bytes) -> _Request:
    """The UserUri and KmsUri of a KmsRequest body, and whether it came signed; an empty body gives neither."""
    if not body.strip():
        return _Request(None, None)
    parser = ET.XMLParser(target=_NoDtd())
    try:
        parser.feed(body)
        root: ET.Element = parser.close()
    except ET.ParseError as exc:
        raise _Refusal(400, f"the request body is not well-formed XML ({exc})") from None
    signed = root.tag == _q("SignedKmsRequest")
    if signed:
        inner = root.find(_q("KmsRequest"))
        if inner is None:
            raise _Refusal(400, "SignedKmsRequest has no KmsRequest")
        root = inner
    if root.tag != _q("KmsRequest"):
        raise _Refusal(400, f"the request body must be a KmsRequest in the namespace {KMS_XML_NS}")

    def text(tag: str) -> str | None:
        el = root.find(_q(tag))
        value = el.text.strip() if el is not None and el.text else ""
        return value or None

    return _Request(text("UserUri"), text("KmsUri"), signed)


def _error_xml(status: int, message: str, user_uri: str, kms_uri: str, request: str, now: float) -> bytes:
    """A KmsResponse carrying a KmsError (TS 33.180 §D.2.3, ErrorType): ErrorCode is the HTTP status."""
    root = ET.Element("KmsResponse", {"xmlns": KMS_XML_NS, "xmlns:xsi": _XSI_NS, "Id": "xmldoc"})
    for tag, value in (
        ("UserUri", user_uri),
        ("KmsUri", kms_uri),
        ("Time", _dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")),
        ("ClientReqUrl", f"http://{kms_uri}{API_PREFIX}{request}"),
    ):
        ET.SubElement(root, tag).text = value
    err = ET.SubElement(root, "KmsError", {"Version": "1.0.0"})
    ET.SubElement(err, "ErrorCode").text = str(status)
    ET.SubElement(err, "ErrorMsg").text = message or "error"
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


# -- admin JSON ---------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _Refusal(400, f"the admin request repeats the member {name[:40]!r}")
        out[name] = value
    return out


def _json_body(body: bytes, allowed: frozenset[str], required: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The admin request's JSON object (an empty body is ``{}``), with only *allowed* members."""
    if not body.strip():
        obj: Any = {}
    else:
        try:
            obj = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _Refusal(400, f"the admin request body is not JSON ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise _Refusal(400, "the admin request body must be a JSON object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise _Refusal(400, f"unknown member(s) in the admin request: {', '.join(n[:40] for n in unknown[:5])}")
    missing = sorted(required - set(obj))
    if missing:
        raise _Refusal(400, f"the admin request needs {', '.join(missing)}")
    return obj


def _user_uri(value: object) -> str:
    try:
        return check_user_uri(value)
    except KmsStoreError as exc:
        raise _Refusal(400, exc.message) from None


def _integrity_key(value: object) -> bytes:
    if not isinstance(value, str) or not _HEX_KEY.fullmatch(value):
        raise _Refusal(400, "integrity_key must be 32 to 128 hex digits (16 to 64 octets)")
    return check_integrity_key(bytes.fromhex(value))


def _optional_int(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value < 1 << 62):
        raise _Refusal(400, f"{name} must be a non-negative integer")
    return value


def _user_json(user: KmsUser) -> dict[str, Any]:
    return {"uri": user.uri, "enabled": user.enabled, "integrity_key": user.has_integrity_key,
            "created_at": user.created_at}


def _ticket_user_json(record: TicketUserRecord) -> dict[str, Any]:
    """A MIKEY-TICKET party for the admin listing: never its PSK."""
    return {"identity": record.identity.decode("utf-8", "replace"),
            "key_id": None if record.key_id == record.identity else record.key_id.decode("utf-8", "replace"),
            "groups": [g.decode("utf-8", "replace") for g in record.groups], "may_request": record.may_request,
            "may_resolve": record.may_resolve, "peer_kms": record.peer_kms, "url": record.url,
            "created_at": record.created_at}


def _certificate_json(info: KmsCertificateInfo) -> dict[str, Any]:
    p = info.public
    return {"kms_uri": p.kms_uri, "user_id_format": int(p.id_scheme), "key_period": p.key_period,
            "key_period_offset": p.key_period_offset, "parameter_set": p.sakke_params, "z": p.z.hex(),
            "kpak": p.kpak.hex(), "domains": list(info.domains), "version": info.version, "role": info.role}


def _trusted_json(trusted: TrustedKms) -> dict[str, Any]:
    return {**_certificate_json(trusted.certificate), "added_at": trusted.added_at, "added_by": trusted.added_by}


def _actor(principal: Principal) -> str:
    """Who an admin token speaks for, for the audit log: its subject, else its MC identity, else its issuer."""
    who = principal.subject or principal.user_uri or f"admin token of {principal.issuer}"
    return "".join(c if c.isprintable() else "?" for c in who)[:256]


class KmsCore:
    """The TS 33.180 KMS request handler over a :class:`~mikey.kms.store.KmsStore`; see the module docstring.

    *kms_uri*, if given, must be the stored community's KMS URI.  Thread-safe.
    """

    def __init__(self, store: KmsStore, authenticator: Authenticator, kms_uri: str | None = None, *,
                 mikey_roles: Sequence[MikeyKmsRole] | None = None) -> None:
        public = store.public_keys()
        if kms_uri is not None and kms_uri != public.kms_uri:
            raise ValueError(f"the database holds the community of {public.kms_uri!r}, not {kms_uri!r}")
        self.store = store
        self.authenticator = authenticator
        self.kms_uri = public.kms_uri  # every generation keeps it (KmsStore.rotate_community)
        self._communities: dict[int, KmsCommunity] = {}
        self._lock = threading.Lock()
        if mikey_roles is None:
            from .ticket_role import TicketKmsRole

            mikey_roles = [TicketKmsRole.on_store(store, self.kms_uri.encode("utf-8"))]
        #: ``{data type: role}`` of the MIKEY KMS roles served at :data:`MIKEY_PATH`.
        self.mikey_roles: dict[int, MikeyKmsRole] = {}
        for role in mikey_roles:
            for data_type in role.data_types:
                if data_type in self.mikey_roles:
                    raise ValueError(f"two MIKEY KMS roles for data type {data_type}")
                self.mikey_roles[int(data_type)] = role

    def __repr__(self) -> str:
        return f"KmsCore({self.kms_uri!r})"

    @property
    def public(self) -> KmsPublicKeys:
        """The active generation's public keys (read per call: another process may have rotated)."""
        return self.store.public_keys()

    def _secrets(self, generation: int) -> KmsCommunity:
        with self._lock:
            community = self._communities.get(generation)
        if community is None:
            community = self.store.load_community(generation)
            with self._lock:
                community = self._communities.setdefault(generation, community)
        return community

    # -- periods ------------------------------------------------------------------------------

    def period_of(self, when: float, public: KmsPublicKeys | None = None) -> int:
        """The KeyPeriodNo holding Unix time *when* (TS 33.180 §F.2.1; months since 0000-01 for RFC 6509)."""
        p = self.public if public is None else public
        if p.id_scheme == SakkeIDScheme.TEL_URI_MONTHLY:
            moment = _dt.datetime.fromtimestamp(when, _dt.UTC)
            return moment.year * 12 + moment.month - 1
        return key_period_number(when, p.key_period, p.key_period_offset)

    def _issuer(self, generation: int) -> Callable[[str, int], IdentityKeys]:
        def issue(uri: str, period_no: int) -> IdentityKeys:
            community = self._secrets(generation)
            if community.public.id_scheme == SakkeIDScheme.TEL_URI_MONTHLY:
                year, month0 = divmod(period_no, 12)
                return issue_user_keys(community, uri, month=f"{year:04d}-{month0 + 1:02d}")
            return issue_user_keys(community, uri, period_no=period_no)

        return issue

    # -- requests -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes, now: float) -> KmsResponse:
        """Answer one request; *path* is the request path as sent (percent-encoded), *now* Unix seconds."""
        lowered = {k.lower(): v for k, v in headers.items()}
        request = path.split("?", 1)[0]
        name = request[len(API_PREFIX):].split("/", 1)[0] if request.startswith(API_PREFIX) else ""
        user_for_errors = self.kms_uri
        if request.rstrip("/") == MIKEY_PATH:
            return self._mikey(method, lowered, body, now)
        try:
            if name == "admin":
                return self._admin(method, request[len(ADMIN_PREFIX):], lowered, body, now)
            if name not in ("init", "keyprov", "certcache"):
                raise _Refusal(404, "no such KMS resource (TS 33.180 §D.2.1: init, keyprov, certcache)")
            if method.upper() != "POST":
                raise _Refusal(405, "KMS requests use POST", (("Allow", "POST"),))
            if len(body) > MAX_BODY_BYTES:
                raise _Refusal(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
            principal = self._principal(lowered, now)
            user_for_errors = principal.user_uri or self.kms_uri
            parsed = _parse_body(body)
            if parsed.kms_uri is not None and parsed.kms_uri != self.kms_uri:
                raise _Refusal(400, "the KmsRequest is addressed to another KMS")
            rest = request[len(API_PREFIX) + len(name):]
            generation = self.store.active_generation()
            public = self.store.public_keys(generation)
            if name == "init":
                if rest not in ("", "/"):
                    raise _Refusal(404, "init takes no path segments")
                client = principal.user_uri or parsed.user_uri
                key = self._integrity(client, parsed, body)
                return self._ok(kms_init_xml(public, client or self.kms_uri, now=now), key)
            if name == "certcache":
                if rest not in ("", "/") and not _CACHE_NUM.fullmatch(rest[1:]):
                    raise _Refusal(400, "certcache takes a cache number")
                client = principal.user_uri or parsed.user_uri
                key = self._integrity(client, parsed, body)
                cache_num, trusted = self.store.trusted_kms_cache()
                held = int(rest[1:]) if rest not in ("", "/") else None
                certificates = [] if held == cache_num else [t.certificate for t in trusted]
                return self._ok(kms_cert_cache_xml(client or self.kms_uri, self.kms_uri, cache_num, certificates,
                                                   now=now), key)
            return self._key_prov(principal, parsed, body, rest, generation, public, now)
        except _Refusal as r:
            return self._error(r.status, r.message, user_for_errors, name or "init", now, r.headers)
        except MikeyError as exc:
            logger.error("KMS request failed: %s: %s", type(exc).__name__, exc)
            return self._error(500, "the KMS could not answer (see its log)", user_for_errors, name or "init", now)
        except Exception:
            logger.exception("KMS request failed unexpectedly")
            return self._error(500, "the KMS could not answer (see its log)", user_for_errors, name or "init", now)

    def _principal(self, headers: Mapping[str, str], now: float) -> Principal:
        try:
            return self.authenticator.verify_bearer(headers.get("authorization"), now)
        except KmsAuthError as exc:
            raise _Refusal(exc.status, exc.message, (("WWW-Authenticate", www_authenticate(exc)),)) from None

    def _integrity(self, client: str | None, parsed: _Request, body: bytes, *, has_key: bool = True) -> bytes | None:
        """The client's integrity key InK (``None``: answer unsigned); checks a SignedKmsRequest under it.

        *has_key* ``False`` (the user record says it has none) spares the lookup.
        """
        key = self.store.integrity_key(client) if client and (has_key or parsed.signed) else None
        if parsed.signed:
            if key is None:
                raise _Refusal(403, "a SignedKmsRequest needs an integrity key registered for its user at this KMS")
            try:
                signed = _parse_body(verify_kms_request(body, key))
            except KmsSignatureError as exc:
                raise _Refusal(403, f"the request signature is refused: {exc.message}") from None
            if (signed.user_uri, signed.kms_uri) != (parsed.user_uri, parsed.kms_uri):
                raise _Refusal(403, "the signed KmsRequest is not the one received")
        return key

    def _key_prov(self, principal: Principal, parsed: _Request, body: bytes, rest: str, generation: int,
                  public: KmsPublicKeys, now: float) -> KmsResponse:
        segments = [s for s in rest.split("/")[1:]] if rest else []
        if segments and segments[-1] == "":
            segments.pop()
        when: float | None = None
        if len(segments) >= 2 and _NTP_TIME.fullmatch(segments[-1]):
            when = unix_from_ntp(int(segments.pop(), 16), reference=now)
        if len(segments) > 1:
            # A raw (not percent-encoded) URI holding "/" arrives as several segments.
            segments = ["/".join(segments)]
        try:
            uri = unquote(segments[0], errors="strict") if segments else (parsed.user_uri or principal.user_uri)
        except UnicodeDecodeError:
            raise _Refusal(400, "the user URI in the path is not percent-encoded UTF-8") from None
        if not uri:
            raise _Refusal(400, "keyprov needs a user: a path segment, a KmsRequest UserUri or a token MC identity")
        if parsed.user_uri is not None and parsed.user_uri != uri:
            raise _Refusal(400, "the KmsRequest UserUri is not the user in the request path")
        try:
            self.authenticator.authorize_user(principal, uri)
        except KmsAuthError as exc:
            raise _Refusal(exc.status, exc.message, (("WWW-Authenticate", www_authenticate(exc)),)) from None
        current = self.period_of(now, public)
        asked = current if when is None else self.period_of(when, public)
        periods = [current, asked] if asked == current + 1 else [current]
        # One SELECT: the user and the key sets already issued (issue 9 "Speed").
        user, stored = self.store.user_and_key_sets(uri, periods, generation=generation)
        if user is None:
            raise _Refusal(404, "the user is not registered at this KMS")
        if not user.enabled:
            raise _Refusal(403, "the user is disabled at this KMS")
        key = self._integrity(uri, parsed, body, has_key=user.has_integrity_key)
        if asked not in (current, current + 1):
            raise _Refusal(400, "the requested time is outside the current and the next key period")
        issued_to = principal.subject or principal.user_uri
        issue = self._issuer(generation)
        key_sets = [stored.get(p) or self.store.get_or_issue_key_set(
            uri, p, issue, generation=generation, issued_to=issued_to, now=now, known_new=True) for p in periods]
        return self._ok(kms_key_prov_xml(public, *key_sets, now=now), key)

    # -- admin --------------------------------------------------------------------------------

    def _admin(self, method: str, route: str, headers: Mapping[str, str], body: bytes, now: float) -> KmsResponse:
        verb = method.upper()
        parts = route.rstrip("/").split("/") if route.strip("/") else [""]
        user_uri: str | None = None
        allowed: tuple[str, ...]
        if parts[0] == "users" and len(parts) >= 3 and parts[-1] in _USER_VERBS:
            action, allowed = parts[-1], ("POST",)
            try:
                user_uri = unquote("/".join(parts[1:-1]), errors="strict")
            except UnicodeDecodeError:
                raise _Refusal(400, "the user URI in the path is not percent-encoded UTF-8") from None
        elif parts[0] == "trusted-kms" and len(parts) >= 3 and parts[-1] == "remove":
            action, allowed = "trusted-kms-remove", ("POST",)
            try:
                user_uri = unquote("/".join(parts[1:-1]), errors="strict")
            except UnicodeDecodeError:
                raise _Refusal(400, "the KMS URI in the path is not percent-encoded UTF-8") from None
        elif len(parts) == 1 and parts[0] in ("users", "generations", "keysets", "audit", "ticket-users",
                                              "trusted-kms"):
            action = parts[0]
            allowed = ("GET", "POST")
        elif parts == ["rotate"]:
            action, allowed = "rotate", ("POST",)
        else:
            raise _Refusal(404, "no such admin resource (users, users/<URI>/enable|disable|integrity-key, rotate, "
                                "generations, keysets, audit, ticket-users, trusted-kms, trusted-kms/<URI>/remove)")
        if verb not in allowed:
            raise _Refusal(405, f"this admin resource takes {' or '.join(allowed)}", (("Allow", ", ".join(allowed)),))
        if len(body) > MAX_BODY_BYTES:
            raise _Refusal(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        principal = self._principal(headers, now)
        try:
            require_admin(principal)
        except KmsAuthError as exc:
            raise _Refusal(exc.status, exc.message, (("WWW-Authenticate", www_authenticate(exc)),)) from None
        actor = _actor(principal)
        if action == "trusted-kms-remove" and user_uri is not None:
            _json_body(body, frozenset())
            cache_num = self.store.remove_trusted_kms(_user_uri(user_uri), actor=actor, now=now)
            if cache_num is None:
                raise _Refusal(404, "that KMS is not trusted here (nothing changed)")
            return self._json(200, {"removed": user_uri, "cache_num": cache_num})
        if action == "trusted-kms":
            if verb == "GET" or not body.strip():
                cache_num, trusted = self.store.trusted_kms_cache()
                return self._json(200, {"cache_num": cache_num, "trusted_kms": [_trusted_json(t) for t in trusted]})
            return self._admin_trust(body, actor, now)
        if user_uri is not None:
            return self._admin_user(action, _user_uri(user_uri), body, actor, now)
        if action == "users":
            if verb == "GET" or not body.strip():
                return self._json(200, {"users": [_user_json(u) for u in self.store.list_users()]})
            return self._admin_add_user(body, actor, now)
        if action == "rotate":
            return self._admin_rotate(body, actor, now)
        if action == "ticket-users":
            if verb == "GET" or not body.strip():
                return self._json(200, {"ticket_users": [_ticket_user_json(u) for u in self.store.ticket_users()]})
            return self._admin_add_ticket_user(body, actor, now)
        if action == "generations":
            _json_body(body if verb == "POST" else b"", frozenset())
            generations = self.store.list_generations()
            return self._json(200, {"active": generations[-1].generation, "generations": [
                {"generation": g.generation, "created_at": g.created_at, "created_by": g.created_by,
                 "kms_uri": g.public.kms_uri, "kpak": g.public.kpak.hex(), "z": g.public.z.hex()}
                for g in generations]})
        if action == "keysets":
            query = _json_body(body if verb == "POST" else b"", frozenset({"user", "generation", "period_no"}))
            user = None if query.get("user") is None else _user_uri(query["user"])
            records = self.store.list_key_sets(uri=user, generation=_optional_int(query, "generation"),
                                               period_no=_optional_int(query, "period_no"))
            return self._json(200, {"key_sets": [
                {"user": r.user_uri, "period_no": r.period_no, "generation": r.generation,
                 "identifier": r.identifier.hex(), "issued_at": r.issued_at, "issued_to": r.issued_to}
                for r in records]})
        _json_body(body if verb == "POST" else b"", frozenset())
        return self._json(200, {"audit": [
            {"at": a.at, "actor": a.actor, "action": a.action, "subject": a.subject, "detail": a.detail}
            for a in self.store.list_audit()]})

    def _admin_trust(self, body: bytes, actor: str, now: float) -> KmsResponse:
        """Trust the KmsCertificate in *body* (module docstring); 400 and nothing stored when invalid."""
        try:
            info = read_kms_certificate(body)
        except KeyMaterialError as exc:
            raise _Refusal(400, f"not a valid KmsCertificate: {exc.message}") from None
        if info.kms_uri == self.kms_uri:
            raise _Refusal(400, "that is this KMS's own certificate (init serves it), not an external KMS")
        try:
            outcome, cache_num = self.store.add_trusted_kms(info, actor=actor, now=now)
        except TrustRefusedError as exc:
            raise _Refusal(400, exc.message) from None
        return self._json(201 if outcome == "added" else 200,
                          {**_certificate_json(info), "outcome": outcome, "cache_num": cache_num})

    def _admin_add_user(self, body: bytes, actor: str, now: float) -> KmsResponse:
        obj = _json_body(body, frozenset({"uri", "enabled", "integrity_key"}), frozenset({"uri"}))
        uri = _user_uri(obj["uri"])
        enabled = obj.get("enabled", True)
        if not isinstance(enabled, bool):
            raise _Refusal(400, "enabled must be true or false")
        ink = None if obj.get("integrity_key") is None else _integrity_key(obj["integrity_key"])
        if not self.store.add_user(uri, enabled=enabled, integrity_key=ink, actor=actor, now=now):
            raise _Refusal(409, "the user is already registered (nothing changed)")
        return self._json(201, _user_json(self._registered(uri)))

    def _admin_add_ticket_user(self, body: bytes, actor: str, now: float) -> KmsResponse:
        obj = _json_body(body, frozenset({"identity", "psk", "key_id", "groups", "may_request", "may_resolve",
                                          "peer_kms", "url"}), frozenset({"identity", "psk"}))
        identity = _user_uri(obj["identity"]).encode("utf-8")
        psk = obj["psk"]
        if not isinstance(psk, str) or not _HEX_KEY.fullmatch(psk):
            raise _Refusal(400, "psk must be 32 to 128 hex digits (16 to 64 octets)")
        key_id = obj.get("key_id")
        if key_id is not None and (not isinstance(key_id, str) or not 1 <= len(key_id) <= 256
                                   or not key_id.isprintable()):
            raise _Refusal(400, "key_id must be 1 to 256 printable characters")
        groups = obj.get("groups", [])
        if not isinstance(groups, list) or len(groups) > 64:
            raise _Refusal(400, "groups must be a list of at most 64 URIs")
        rights = {}
        for name, default in (("may_request", True), ("may_resolve", True), ("peer_kms", False)):
            rights[name] = obj.get(name, default)
            if not isinstance(rights[name], bool):
                raise _Refusal(400, f"{name} must be true or false")
        url = obj.get("url")
        if url is not None and not isinstance(url, str):
            raise _Refusal(400, "url must be the peer KMS's http(s):// URL")
        try:
            added = self.store.add_ticket_user(
                identity, bytes.fromhex(psk), key_id=None if key_id is None else key_id.encode("utf-8"),
                groups=tuple(_user_uri(g).encode("utf-8") for g in groups), url=url, actor=actor, now=now, **rights)
        except KmsStoreError as exc:
            raise _Refusal(400, exc.message) from None
        if not added:
            raise _Refusal(409, "that PSK id is already provisioned (nothing changed)")
        record = self.store.ticket_user(identity if key_id is None else key_id.encode("utf-8"))
        if record is None:  # pragma: no cover - just stored
            raise _Refusal(500, "the party was not stored")
        return self._json(201, _ticket_user_json(record))

    # -- MIKEY KMS roles ----------------------------------------------------------------------

    def _mikey(self, method: str, headers: Mapping[str, str], body: bytes, now: float) -> KmsResponse:
        """One MIKEY message to the KMS role its data type names (module docstring)."""
        try:
            if method.upper() != "POST":
                raise _Refusal(405, "MIKEY messages are sent with POST", (("Allow", "POST"),))
            if len(body) > MAX_BODY_BYTES:
                raise _Refusal(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != MIKEY_MEDIA_TYPE:
                raise _Refusal(415, f"the body must be a MIKEY message, Content-Type {MIKEY_MEDIA_TYPE}")
            if len(body) < 10:  # RFC 3830 §6.1: the common header alone is 10 octets
                raise _Refusal(400, "the body is too short for a MIKEY message")
            role = self.mikey_roles.get(body[1])
            if role is None:
                raise _Refusal(400, f"this KMS answers no MIKEY message of data type {body[1]}")
            answer = role.handle(body, now)
            if answer is None:
                raise _Refusal(400, "the MIKEY message was discarded (a replay, RFC 3830 §5.4)")
            status = 400 if len(answer) > 1 and answer[1] == _ERROR_DATA_TYPE else 200
            return KmsResponse(status, MIKEY_MEDIA_TYPE, answer)
        except _Refusal as r:
            return self._error(r.status, r.message, self.kms_uri, "mikey", now, r.headers)
        except MikeyError as exc:
            logger.error("MIKEY KMS role failed: %s: %s", type(exc).__name__, exc)
            return self._error(500, "the KMS could not answer (see its log)", self.kms_uri, "mikey", now)
        except Exception:
            logger.exception("MIKEY KMS role failed unexpectedly")
            return self._error(500, "the KMS could not answer (see its log)", self.kms_uri, "mikey", now)

    def _registered(self, uri: str) -> KmsUser:
        user = self.store.get_user(uri)
        if user is None:
            raise _Refusal(404, "the user is not registered at this KMS")
        return user

    def _admin_user(self, action: str, uri: str, body: bytes, actor: str, now: float) -> KmsResponse:
        self._registered(uri)
        if action == "integrity-key":
            obj = _json_body(body, frozenset({"integrity_key"}), frozenset({"integrity_key"}))
            ink = None if obj["integrity_key"] is None else _integrity_key(obj["integrity_key"])
            self.store.set_integrity_key(uri, ink, actor=actor, now=now)
        else:
            _json_body(body, frozenset())
            self.store.set_user_enabled(uri, action == "enable", actor=actor, now=now)
        return self._json(200, _user_json(self._registered(uri)))

    def _admin_rotate(self, body: bytes, actor: str, now: float) -> KmsResponse:
        _json_body(body, frozenset())
        previous = self.store.active_generation()
        old = self.store.public_keys(previous)
        new = generate_community(old.kms_uri, key_period=old.key_period, key_period_offset=old.key_period_offset,
                                 id_scheme=old.id_scheme)
        try:
            generation = self.store.rotate_community(new, actor=actor, now=now)
        except RotationConflictError as exc:
            raise _Refusal(409, exc.message) from None
        logger.info("KMS community rotated to generation %d by %s", generation, actor)
        return self._json(200, {"generation": generation, "previous": generation - 1, "kms_uri": new.public.kms_uri,
                                "rotated_by": actor, "rotated_at": now, "kpak": new.public.kpak.hex(),
                                "z": new.public.z.hex()})

    # -- answers ------------------------------------------------------------------------------

    @staticmethod
    def _ok(body: bytes, integrity_key: bytes | None = None) -> KmsResponse:
        if integrity_key is not None:
            body = sign_kms_response(body, integrity_key)
        return KmsResponse(200, _XML_TYPE, body)

    @staticmethod
    def _json(status: int, document: Mapping[str, Any]) -> KmsResponse:
        return KmsResponse(status, _JSON_TYPE, json.dumps(document, sort_keys=True).encode("utf-8"))

    def _error(self, status: int, message: str, user_uri: str, request: str, now: float,
               headers: tuple[tuple[str, str], ...] = ()) -> KmsResponse:
        try:
            body = _error_xml(status, message[:300], user_uri, self.kms_uri, request, now)
        except (ValueError, KeyMaterialError):  # pragma: no cover - every field above is non-empty
            body = b""
        return KmsResponse(status, _XML_TYPE, body, headers)
