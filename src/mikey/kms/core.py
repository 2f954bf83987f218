"""The sans-I/O KMS request handler (3GPP TS 33.180 Annex D; issue 9 §1-§3).

:class:`KmsCore` turns one HTTP request (method, path, headers, body, time) into one
:class:`KmsResponse`; the HTTP edge (:mod:`mikey.kms.http`) only moves bytes.  Routes
(TS 33.180 §D.2.1), all ``POST``:

* ``/keymanagement/identity/v1/init``: KmsInit, the community KmsCertificate (§D.3.2).
* ``/keymanagement/identity/v1/keyprov[/<user URI>[/<16 hex digits NTP time>]]``: KmsKeyProv
  (§D.3.3).  The URI may be percent-encoded or raw (deployed clients send it raw); without it,
  the user is the body's UserUri, else the token's MC identity.  Without a time the key set of
  the current key period is returned; a time in the next period returns the current and the
  next key set (rollover); other periods are refused (400).
* ``/keymanagement/identity/v1/certcache[/<number>]``: KmsCertCache (§D.3.4), the certificates
  of other KMSs to trust: none are configured, so an empty cache with ``CacheNum`` 0.

The body may be empty (deployed clients send only the bearer token) or a ``KmsRequest`` /
``SignedKmsRequest`` document (at most :data:`MAX_BODY_BYTES`, parsed with every DTD refused,
so no entity is ever expanded or fetched).  Errors are ``KmsResponse`` documents carrying a
``KmsError`` (ErrorCode = the HTTP status) with 400, 401 (plus ``WWW-Authenticate``, RFC 6750
§3), 403 (another user's keys, disabled user), 404 (unknown route, unregistered user), 405, 413
or 500; never a traceback.  Key sets are issued through
:meth:`~mikey.kms.store.KmsStore.get_or_issue_key_set`, so re-provisioning returns the same keys
and a refused request stores nothing.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

from ..constants import SakkeIDScheme
from ..errors import KeyMaterialError, KmsAuthError, MikeyError
from ..identities import key_period_number, unix_from_ntp
from ..keystore import IdentityKeys
from .auth import Principal, www_authenticate
from .issue import KmsCommunity, issue_user_keys
from .store import KmsStore
from .xml import KMS_XML_NS, kms_init_xml, kms_key_prov_xml

__all__ = ["KmsCore", "KmsResponse", "Authenticator", "MAX_BODY_BYTES", "API_PREFIX"]

logger = logging.getLogger(__name__)

#: Request bodies longer than this are refused unparsed (413); a KmsRequest is well under 2 kB.
MAX_BODY_BYTES = 64 * 1024
#: The path prefix of the TS 33.180 KMS interface (§D.2.1).
API_PREFIX = "/keymanagement/identity/v1/"

_XML_TYPE = "application/xml; charset=utf-8"
_NTP_TIME = re.compile(r"[0-9A-Fa-f]{16}")
_CACHE_NUM = re.compile(r"[0-9]{1,18}")
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


class Authenticator(Protocol):
    """What the core needs of :class:`~mikey.kms.auth.BearerAuth`."""

    def verify_bearer(self, authorization: str | bytes | None, now: float) -> Principal: ...

    def authorize_user(self, principal: Principal, requested_user_uri: str) -> None: ...


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


def _parse_body(body: bytes) -> _Request:
    """The UserUri and KmsUri of a KmsRequest body; an empty body gives neither."""
    if not body.strip():
        return _Request(None, None)
    parser = ET.XMLParser(target=_NoDtd())
    try:
        parser.feed(body)
        root: ET.Element = parser.close()
    except ET.ParseError as exc:
        raise _Refusal(400, f"the request body is not well-formed XML ({exc})") from None
    if root.tag == _q("SignedKmsRequest"):
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

    return _Request(text("UserUri"), text("KmsUri"))


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


def _cert_cache_xml(user_uri: str, kms_uri: str, now: float) -> bytes:
    """An empty KmsCertCache (TS 33.180 §D.3.4): this KMS trusts no other KMS."""
    root = ET.Element("KmsResponse", {"xmlns": KMS_XML_NS, "xmlns:xsi": _XSI_NS, "Id": "xmldoc"})
    for tag, value in (
        ("UserUri", user_uri),
        ("KmsUri", kms_uri),
        ("Time", _dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")),
        ("ClientReqUrl", f"http://{kms_uri}{API_PREFIX}certcache"),
    ):
        ET.SubElement(root, tag).text = value
    msg = ET.SubElement(root, "KmsMessage")
    ET.SubElement(msg, "KmsCertCache", {"Version": "1.0.0", "CacheNum": "0"})
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


class KmsCore:
    """The TS 33.180 KMS request handler over a :class:`~mikey.kms.store.KmsStore`; see the module docstring.

    *kms_uri*, if given, must be the stored community's KMS URI.  Thread-safe.
    """

    def __init__(self, store: KmsStore, authenticator: Authenticator, kms_uri: str | None = None) -> None:
        public = store.public_keys()
        if kms_uri is not None and kms_uri != public.kms_uri:
            raise ValueError(f"the database holds the community of {public.kms_uri!r}, not {kms_uri!r}")
        self.store = store
        self.authenticator = authenticator
        self.public = public
        self.kms_uri = public.kms_uri
        self._community: KmsCommunity | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KmsCore({self.kms_uri!r})"

    def _secrets(self) -> KmsCommunity:
        with self._lock:
            if self._community is None:
                self._community = self.store.load_community()
            return self._community

    # -- periods ------------------------------------------------------------------------------

    def _monthly(self) -> bool:
        return self.public.id_scheme == SakkeIDScheme.TEL_URI_MONTHLY

    def period_of(self, when: float) -> int:
        """The KeyPeriodNo holding Unix time *when* (TS 33.180 §F.2.1; months since 0000-01 for RFC 6509)."""
        if self._monthly():
            moment = _dt.datetime.fromtimestamp(when, _dt.UTC)
            return moment.year * 12 + moment.month - 1
        return key_period_number(when, self.public.key_period, self.public.key_period_offset)

    def _issue(self, uri: str, period_no: int) -> IdentityKeys:
        community = self._secrets()
        if self._monthly():
            year, month0 = divmod(period_no, 12)
            return issue_user_keys(community, uri, month=f"{year:04d}-{month0 + 1:02d}")
        return issue_user_keys(community, uri, period_no=period_no)

    # -- requests -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes, now: float) -> KmsResponse:
        """Answer one request; *path* is the request path as sent (percent-encoded), *now* Unix seconds."""
        lowered = {k.lower(): v for k, v in headers.items()}
        request = path.split("?", 1)[0]
        name = request[len(API_PREFIX):].split("/", 1)[0] if request.startswith(API_PREFIX) else ""
        user_for_errors = self.kms_uri
        try:
            if name not in ("init", "keyprov", "certcache"):
                raise _Refusal(404, "no such KMS resource (TS 33.180 §D.2.1: init, keyprov, certcache)")
            if method.upper() != "POST":
                raise _Refusal(405, "KMS requests use POST", (("Allow", "POST"),))
            if len(body) > MAX_BODY_BYTES:
                raise _Refusal(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
            try:
                principal = self.authenticator.verify_bearer(lowered.get("authorization"), now)
            except KmsAuthError as exc:
                extra = (("WWW-Authenticate", www_authenticate(exc)),)
                raise _Refusal(exc.status, exc.message, extra) from None
            user_for_errors = principal.user_uri or self.kms_uri
            parsed = _parse_body(body)
            if parsed.kms_uri is not None and parsed.kms_uri != self.kms_uri:
                raise _Refusal(400, "the KmsRequest is addressed to another KMS")
            rest = request[len(API_PREFIX) + len(name):]
            if name == "init":
                if rest not in ("", "/"):
                    raise _Refusal(404, "init takes no path segments")
                return self._ok(kms_init_xml(self.public, principal.user_uri or parsed.user_uri or self.kms_uri,
                                             now=now))
            if name == "certcache":
                if rest not in ("", "/") and not _CACHE_NUM.fullmatch(rest[1:]):
                    raise _Refusal(400, "certcache takes a cache number")
                return self._ok(_cert_cache_xml(user_for_errors, self.kms_uri, now))
            return self._key_prov(principal, parsed, rest, now)
        except _Refusal as r:
            return self._error(r.status, r.message, user_for_errors, name or "init", now, r.headers)
        except MikeyError as exc:
            logger.error("KMS request failed: %s: %s", type(exc).__name__, exc)
            return self._error(500, "the KMS could not answer (see its log)", user_for_errors, name or "init", now)
        except Exception:
            logger.exception("KMS request failed unexpectedly")
            return self._error(500, "the KMS could not answer (see its log)", user_for_errors, name or "init", now)

    def _key_prov(self, principal: Principal, parsed: _Request, rest: str, now: float) -> KmsResponse:
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
        user = self.store.get_user(uri)
        if user is None:
            raise _Refusal(404, "the user is not registered at this KMS")
        if not user.enabled:
            raise _Refusal(403, "the user is disabled at this KMS")
        current = self.period_of(now)
        periods = [current]
        if when is not None:
            asked = self.period_of(when)
            if asked == current + 1:
                periods.append(asked)
            elif asked != current:
                raise _Refusal(400, "the requested time is outside the current and the next key period")
        issued_to = principal.subject or principal.user_uri
        key_sets = [self.store.get_or_issue_key_set(uri, p, self._issue, issued_to=issued_to, now=now)
                    for p in periods]
        return self._ok(kms_key_prov_xml(self.public, *key_sets, now=now))

    @staticmethod
    def _ok(body: bytes) -> KmsResponse:
        return KmsResponse(200, _XML_TYPE, body)

    def _error(self, status: int, message: str, user_uri: str, request: str, now: float,
               headers: tuple[tuple[str, str], ...] = ()) -> KmsResponse:
        try:
            body = _error_xml(status, message[:300], user_uri, self.kms_uri, request, now)
        except (ValueError, KeyMaterialError):  # pragma: no cover - every field above is non-empty
            body = b""
        return KmsResponse(status, _XML_TYPE, body, headers)
