"""Bearer-token authentication and authorisation for the KMS (3GPP TS 33.180 §5.3 and Annex B; RFC 6750).

A KMS request carries an OAuth 2.0 access token of the MC identity management server
(``Authorization: Bearer <JWT>``, RFC 6750 §2.1).  :class:`BearerAuth` decides, without
sockets or a clock of its own (``now`` is a parameter):

* :meth:`BearerAuth.verify_bearer` authenticates the header: a JWS signed with an allowed
  asymmetric algorithm by a key of the configured JWKS (RFC 7517), from the configured issuer,
  for the configured audience, within ``exp``/``nbf``/``iat`` give or take a small leeway, and
  carrying a KMS scope.  It returns a :class:`Principal` or raises
  :class:`~mikey.errors.KmsUnauthorizedError` (401) / :class:`~mikey.errors.KmsForbiddenError` (403).
* :func:`authorize_user` and :func:`require_admin` decide what the principal may do: a user
  only their own key sets, an admin (scope :data:`ADMIN_SCOPE`) everything.

The keys come from a :class:`JwksSource`: :class:`StaticJwks` (a document), :class:`FileJwks`
(a file) or :class:`UrlJwks` (the identity server's ``jwks_uri``, RFC 8414 §2, fetched over
HTTPS, cached, refreshed on an unknown ``kid`` at a bounded rate).  :class:`NoIssuer` accepts no
token at all (a KMS started without an identity server).

Claims read (TS 33.180 Annex B.1.2 access token): the MC identity from ``mcptt_id`` by default
(deployed identity servers put the client's id, not the user, in ``sub``), the scopes from
``scope`` (a space-separated string, RFC 9068 §2.2.3, or a JSON array as deployed servers send)
or ``scp``.  :class:`DevIssuer` is the development issuer behind ``mikey kms token``.

Tokens never appear in an exception, a log line or a repr.
"""

from __future__ import annotations

import base64
import collections
import errno
import hashlib
import http.client
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import ssl
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from .._files import write_private_atomic
from ..errors import KeyMaterialError, KmsAuthError, KmsForbiddenError, KmsUnauthorizedError

__all__ = [
    "USER_SCOPE",
    "ADMIN_SCOPE",
    "DEFAULT_ALGORITHMS",
    "Principal",
    "KeySet",
    "JwksSource",
    "RefreshableJwksSource",
    "StaticJwks",
    "FileJwks",
    "UrlJwks",
    "NoIssuer",
    "BearerPolicy",
    "BearerAuth",
    "TOKEN_CACHE_SIZE",
    "authorize_user",
    "require_admin",
    "www_authenticate",
    "DevIssuer",
    "DEV_ISSUER",
    "DEV_AUDIENCE",
    "DEV_KEY_FILE",
    "DEV_JWKS_FILE",
]

logger = logging.getLogger(__name__)

#: The key-management scope of TS 33.179 Annex B.3.1.1 / TS 33.180 Annex B (MCPTT scope values).
USER_SCOPE = "3gpp:mcptt:key_management_server"
#: This KMS's own scope for registering users and rotating community keys.
ADMIN_SCOPE = "mikey:kms:admin"
#: Verification algorithms allowed by default (RFC 7518 §3.1, RFC 8037 §3.1); all asymmetric.
DEFAULT_ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "EdDSA")
#: Every algorithm a policy may allow: asymmetric only, so a public key can never be an HMAC secret.
_ASYMMETRIC = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"})
_EC_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

#: RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token (the scheme is case-insensitive, RFC 9110 §11.1).
_BEARER = re.compile(r"([A-Za-z]+) +([A-Za-z0-9\-._~+/]+=*)")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9._:@+\-]{1,64}")
#: The longest token read; a JWT with a handful of claims is well under 2 KiB.
MAX_TOKEN_LENGTH = 8192
#: The largest leeway a policy may set (TS 33.179 Annex B.1.1.1: "not to exceed 30 seconds" is the norm).
MAX_LEEWAY = 300.0


def _shown(value: object) -> str:
    """*value* quoted when it is a short plain string, else a placeholder (attacker-chosen text stays out)."""
    if isinstance(value, str) and _SAFE_TEXT.fullmatch(value):
        return repr(value)
    return "(not shown)"


def _unauthorized(message: str, reason: str) -> KmsUnauthorizedError:
    return KmsUnauthorizedError(message, reason=reason)


# --- keys ------------------------------------------------------------------------------------


class KeySet:
    """The verification keys of a JWKS document (RFC 7517 §5), each bound to the algorithms it may verify.

    Keys whose ``use`` is not ``sig`` and key types other than EC, RSA and OKP are skipped (an
    identity server's JWKS may also list encryption keys); a key with private members, a
    symmetric (``oct``) key, a broken key, an RSA key under 2048 bits, two keys with one ``kid``
    or a set with no usable key raise :class:`~mikey.errors.KeyMaterialError`.
    """

    __slots__ = ("_keys", "_kids")

    def __init__(self, document: Mapping[str, Any]) -> None:
        keys = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(keys, list):
            raise KeyMaterialError("JWKS: no 'keys' array")
        self._keys: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._kids: list[str | None] = []
        for number, jwk in enumerate(keys):
            if not isinstance(jwk, dict):
                raise KeyMaterialError(f"JWKS: key {number} is not an object")
            self._add(number, jwk)
        if not self._kids:
            raise KeyMaterialError("JWKS: no signature-verification key (EC, RSA or OKP with use 'sig')")

    def _add(self, number: int, jwk: dict[str, Any]) -> None:
        where = f"JWKS key {number}"
        if _PRIVATE_MEMBERS & jwk.keys():
            raise KeyMaterialError(f"{where}: holds private or symmetric key material; publish public keys only")
        kty, use, kid = jwk.get("kty"), jwk.get("use", "sig"), jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise KeyMaterialError(f"{where}: 'kid' is not a string")
        if use != "sig" or kty not in ("EC", "RSA", "OKP"):
            return
        if kid in self._kids:
            raise KeyMaterialError(f"{where}: a second key with kid {_shown(kid)}")
        algorithms = self._algorithms_for(where, jwk)
        for alg in algorithms:
            try:
                key = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError:
                raise KeyMaterialError(f"{where}: not a valid {kty} key for {alg}") from None
            if kty == "RSA" and getattr(key.key, "key_size", 0) < 2048:
                raise KeyMaterialError(f"{where}: RSA key shorter than 2048 bits")
            self._keys[(kid, alg)] = key
        self._kids.append(kid)

    @staticmethod
    def _algorithms_for(where: str, jwk: dict[str, Any]) -> tuple[str, ...]:
        kty, crv, declared = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
        if kty == "EC":
            fitting: tuple[str, ...] = (_EC_CURVES[crv],) if crv in _EC_CURVES else ()
        elif kty == "RSA":
            fitting = _RSA_ALGORITHMS
        else:
            fitting = ("EdDSA",) if crv in ("Ed25519", "Ed448") else ()
        if declared is not None:  # RFC 7517 §4.4: the key is for that algorithm only
            fitting = tuple(a for a in fitting if a == declared)
        if not fitting:
            raise KeyMaterialError(f"{where}: {kty} key with curve {_shown(crv)}, alg {_shown(declared)} "
                                   "fits no supported algorithm")
        return fitting

    def __len__(self) -> int:
        return len(self._kids)

    def __contains__(self, kid: object) -> bool:
        return kid in self._kids

    @property
    def kids(self) -> tuple[str | None, ...]:
        """The ``kid`` of each verification key, in document order (``None`` for a key without one)."""
        return tuple(self._kids)

    def __repr__(self) -> str:
        return f"KeySet(kids={self._kids!r})"

    def find(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key named *kid* (or the only key, when the token names none) for *alg*.

        Raises :class:`~mikey.errors.KmsUnauthorizedError` (``unknown-key`` or ``key-algorithm``).
        """
        if kid is None:
            if len(self._kids) != 1:
                raise _unauthorized(f"token names no key (kid) and the JWKS holds {len(self._kids)} keys",
                                    "unknown-key")
            kid = self._kids[0]
        elif kid not in self._kids:
            raise _unauthorized(f"token signed by an unknown key (kid {_shown(kid)})", "unknown-key")
        key = self._keys.get((kid, alg))
        if key is None:
            raise _unauthorized(f"key {_shown(kid)} cannot verify {alg} signatures", "key-algorithm")
        return key


class JwksSource(Protocol):
    """Where the verification keys come from: a file, a dict, later an identity server's jwks_uri.

    ``key_set()`` is called for every token; a fetching source caches and refreshes on its own.
    """

    def key_set(self) -> KeySet: ...


@runtime_checkable
class RefreshableJwksSource(JwksSource, Protocol):
    """A source that can look again when a token names a key it does not hold (the IdP rotated its keys)."""

    def refresh_for_unknown_kid(self, kid: str) -> KeySet:
        """The key set to retry with: fetched anew unless rate-limited, else the current one."""
        ...


class StaticJwks:
    """A JWKS given as a document (a dict, as parsed JSON) or a :class:`KeySet`."""

    __slots__ = ("_keys",)

    def __init__(self, document: Mapping[str, Any] | KeySet) -> None:
        self._keys = document if isinstance(document, KeySet) else KeySet(document)

    def key_set(self) -> KeySet:
        return self._keys

    def __repr__(self) -> str:
        return f"StaticJwks({self._keys!r})"


class FileJwks:
    """A JWKS read from a JSON file (RFC 7517 §5) when constructed, and again on :meth:`reload`."""

    __slots__ = ("path", "_keys")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._keys = self._read()

    def _read(self) -> KeySet:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise KeyMaterialError(f"cannot read JWKS {self.path}: {exc.strerror or exc}") from None
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            raise KeyMaterialError(f"JWKS {self.path} is not JSON") from None
        if not isinstance(document, dict):
            raise KeyMaterialError(f"JWKS {self.path} is not a JSON object")
        return KeySet(document)

    def reload(self) -> None:
        """Read the file again (after the identity server rotated its keys)."""
        self._keys = self._read()

    def key_set(self) -> KeySet:
        return self._keys

    def __repr__(self) -> str:
        return f"FileJwks({str(self.path)!r})"


#: :class:`UrlJwks` defaults: the longest JWKS document read, the seconds one fetch may take, the
#: cache lifetime without (and the bounds around) a ``Cache-Control: max-age``, and the shortest
#: time between two fetches (unknown-``kid`` refreshes and retries after a failure alike).
JWKS_MAX_BYTES = 256 * 1024
JWKS_TIMEOUT = 5.0
JWKS_DEFAULT_TTL = 300.0
JWKS_MIN_TTL = 60.0
JWKS_MAX_TTL = 24 * 3600.0
JWKS_MIN_REFRESH_INTERVAL = 30.0


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _max_age(cache_control: str | None) -> float | None:
    """The freshness lifetime a ``Cache-Control`` value gives (RFC 9111 §5.2.2): 0 for no-store/no-cache."""
    if not cache_control:
        return None
    directives: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        directives.setdefault(name.strip().lower(), value.strip().strip('"'))
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    value = directives.get("max-age", "")
    if value.isdigit() and value.isascii():
        return float(int(value[:12]))
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed (one could lead from HTTPS to plain HTTP or to another host)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        return None


class UrlJwks:
    """The JWKS at an identity server's ``jwks_uri`` (RFC 8414 §2, RFC 7517 §5), fetched with the stdlib.

    *url* must be ``https://`` (verified against the system's CAs, or *ca_file*); plain ``http://``
    only for a loopback host or with *allow_http*.  URLs with credentials are refused; redirects
    are not followed.  A fetch takes at most *timeout* seconds (in all, not per read) and reads at
    most *max_bytes* octets; a larger, non-JSON or non-JWKS answer is refused with
    :class:`~mikey.errors.KeyMaterialError`.

    The constructor fetches once and raises on failure (a misconfigured source is found at start).
    Afterwards the key set is cached for the response's ``Cache-Control: max-age`` (clamped to
    *min_ttl*..*max_ttl*; *default_ttl* without one) and fetched again when it expires.  A token
    naming an unknown ``kid`` triggers a fetch (the IdP rotated its keys), but no fetch of any kind
    starts within *min_refresh_interval* seconds of the previous one, so tokens with made-up kids
    cannot make the KMS hammer the IdP.  A failed refresh is logged and the last good key set
    stays in use.  *clock* (monotonic seconds) is for tests.  Thread-safe.
    """

    __slots__ = ("url", "timeout", "max_bytes", "default_ttl", "min_ttl", "max_ttl", "min_refresh_interval",
                 "_opener", "_clock", "_lock", "_keys", "_fetched_at", "_expires_at", "_last_attempt",
                 "fetches", "failures")

    def __init__(
        self,
        url: str,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        allow_http: bool = False,
        timeout: float = JWKS_TIMEOUT,
        max_bytes: int = JWKS_MAX_BYTES,
        default_ttl: float = JWKS_DEFAULT_TTL,
        min_ttl: float = JWKS_MIN_TTL,
        max_ttl: float = JWKS_MAX_TTL,
        min_refresh_interval: float = JWKS_MIN_REFRESH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("https", "http") or not host:
            raise ValueError("the JWKS URL must be an https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("the JWKS URL must not carry credentials")
        loopback = _is_loopback_host(host)
        if scheme == "http" and not (loopback or allow_http):
            raise ValueError(f"the JWKS URL must use https:// (plain http only for a loopback host, "
                             f"or with allow_http): {url}")
        if scheme == "http" and ca_file is not None:
            raise ValueError("a CA file applies to https:// JWKS URLs only")
        if not (0 < timeout <= 60) or max_bytes < 1024:
            raise ValueError("timeout must be in (0, 60] seconds and max_bytes at least 1024")
        if not (0 < min_ttl <= default_ttl <= max_ttl) or min_refresh_interval < 0:
            raise ValueError("need 0 < min_ttl <= default_ttl <= max_ttl and min_refresh_interval >= 0")
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if scheme == "https":
            try:
                context = ssl.create_default_context(cafile=None if ca_file is None else os.fspath(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise KeyMaterialError(f"cannot load the CA file {os.fspath(ca_file or '')}: "
                                       f"{getattr(exc, 'strerror', None) or exc}") from None
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            handlers.append(urllib.request.HTTPSHandler(context=context))
        if loopback:
            handlers.append(urllib.request.ProxyHandler({}))  # never send a loopback request to a proxy
        self.url = url
        self.timeout = float(timeout)
        self.max_bytes = max_bytes
        self.default_ttl, self.min_ttl, self.max_ttl = float(default_ttl), float(min_ttl), float(max_ttl)
        self.min_refresh_interval = float(min_refresh_interval)
        self._opener = urllib.request.build_opener(*handlers)
        self._clock = clock
        self._lock = threading.Lock()
        #: Fetch attempts and failed ones, since construction.
        self.fetches = 0
        self.failures = 0
        self._last_attempt = clock()
        self.fetches += 1
        keys, ttl = self._fetch()
        self._install(keys, ttl)
        logger.info("JWKS %s: keys %s, cached for %.0f s", url, list(keys.kids), ttl)

    def __repr__(self) -> str:
        return f"UrlJwks({self.url!r}, kids={list(self._keys.kids)!r})"

    def _fetch(self) -> tuple[KeySet, float]:
        """One GET of the URL: the key set and its cache lifetime, or ``KeyMaterialError``."""
        where = f"JWKS {self.url}"
        request = urllib.request.Request(self.url, headers={
            "Accept": "application/jwk-set+json, application/json", "User-Agent": "mikey-kms"})
        deadline = time.monotonic() + self.timeout
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > self.max_bytes:
                    raise KeyMaterialError(f"{where}: the answer ({int(length)} bytes) is larger than "
                                           f"{self.max_bytes} bytes")
                data = bytearray()
                while len(data) <= self.max_bytes:
                    if time.monotonic() > deadline:
                        raise KeyMaterialError(f"{where}: no complete answer within {self.timeout:g} s")
                    chunk = response.read1(min(65536, self.max_bytes + 1 - len(data)))  # one recv at most
                    if not chunk:
                        break
                    data += chunk
                cache_control = response.headers.get("Cache-Control")
        except urllib.error.HTTPError as exc:
            exc.close()
            hint = " (redirects are not followed: configure the final URL)" if 300 <= exc.code < 400 else ""
            raise KeyMaterialError(f"{where}: HTTP status {exc.code}{hint}") from None
        except urllib.error.URLError as exc:
            raise KeyMaterialError(f"{where}: cannot fetch: {exc.reason}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise KeyMaterialError(f"{where}: cannot fetch: {type(exc).__name__}: {exc}") from None
        if len(data) > self.max_bytes:
            raise KeyMaterialError(f"{where}: the answer is larger than {self.max_bytes} bytes")
        try:
            document = json.loads(bytes(data))
        except (ValueError, RecursionError):
            raise KeyMaterialError(f"{where}: the answer is not JSON") from None
        if not isinstance(document, dict):
            raise KeyMaterialError(f"{where}: the answer is not a JSON object")
        try:
            keys = KeySet(document)
        except KeyMaterialError as exc:
            raise KeyMaterialError(f"{where}: {str(exc).removeprefix('JWKS: ')}") from None
        age = _max_age(cache_control)
        ttl = self.default_ttl if age is None else min(max(age, self.min_ttl), self.max_ttl)
        return keys, ttl

    def _install(self, keys: KeySet, ttl: float) -> None:
        now = self._clock()
        self._keys, self._fetched_at, self._expires_at = keys, now, now + ttl

    def _refresh(self, why: str) -> None:
        """Fetch again (the caller holds the lock); on failure keep the last good key set."""
        self._last_attempt = self._clock()
        self.fetches += 1
        try:
            keys, ttl = self._fetch()
        except KeyMaterialError as exc:
            self.failures += 1
            logger.warning("%s; refresh (%s) failed, still using the %d key(s) fetched %.0f s ago", exc, why,
                           len(self._keys), self._clock() - self._fetched_at)
            return
        if keys.kids != self._keys.kids:
            logger.info("JWKS %s: keys now %s (were %s)", self.url, list(keys.kids), list(self._keys.kids))
        self._install(keys, ttl)

    def _may_fetch(self, now: float) -> bool:
        return now - self._last_attempt >= self.min_refresh_interval

    def key_set(self) -> KeySet:
        """The cached key set, fetched anew first when it has expired (one thread fetches, others go on)."""
        now = self._clock()
        if now >= self._expires_at and self._may_fetch(now) and self._lock.acquire(blocking=False):
            try:
                if self._clock() >= self._expires_at and self._may_fetch(self._clock()):
                    self._refresh("the cached key set expired")
            finally:
                self._lock.release()
        return self._keys

    def refresh_for_unknown_kid(self, kid: str) -> KeySet:
        """The key set after fetching again for a token naming *kid*, unless a fetch is too recent."""
        if kid in self._keys:
            return self._keys
        with self._lock:  # a fetch under way in another thread finishes first, and may bring the kid
            if kid not in self._keys and self._may_fetch(self._clock()):
                self._refresh(f"a token names the unknown key {_shown(kid)}")
            return self._keys

    def refresh(self) -> None:
        """Fetch now, whatever the cache and rate limit say; raises ``KeyMaterialError`` on failure."""
        with self._lock:
            self._last_attempt = self._clock()
            self.fetches += 1
            try:
                keys, ttl = self._fetch()
            except KeyMaterialError:
                self.failures += 1
                raise
            self._install(keys, ttl)


# --- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for.

    ``user_uri`` is the MC identity (TS 33.180 Annex B.1.2: the MC ID, a URI), ``None`` for an
    admin token naming no user; ``subject`` is the ``sub`` claim as sent.  The token is not kept.
    """

    user_uri: str | None
    subject: str | None
    issuer: str
    scopes: frozenset[str]
    is_admin: bool
    has_user_scope: bool
    expires_at: float


@dataclass(frozen=True, slots=True)
class BearerPolicy:
    """What a token must be for this KMS.

    ``issuer``/``audience``: the ``iss`` expected and the ``aud`` value(s) accepted (RFC 7519 §4.1.1, §4.1.3).
    ``algorithms``: allowed JWS algorithms, asymmetric only.  ``leeway``: seconds of clock skew
    allowed on ``exp``/``nbf``/``iat`` (at most :data:`MAX_LEEWAY`).  ``user_scopes``: a token
    with any of them may fetch its own user's keys; ``admin_scope`` may do everything.
    ``identity_claims``: where the MC identity is read, first present wins.
    ``admin_acts_for_users``: an admin may fetch any user's keys (offline provisioning).
    ``allow_missing_audience``: accept tokens with no ``aud`` claim at all (some deployed
    identity servers send only ``client_id``); a token whose ``aud`` names others is still refused.
    """

    issuer: str
    audience: str | tuple[str, ...]
    jwks: JwksSource
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0
    user_scopes: frozenset[str] = frozenset({USER_SCOPE})
    admin_scope: str = ADMIN_SCOPE
    identity_claims: tuple[str, ...] = ("mcptt_id",)
    admin_acts_for_users: bool = True
    allow_missing_audience: bool = False
    audiences: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unsafe = [a for a in self.algorithms if a not in _ASYMMETRIC]
        if unsafe or not self.algorithms:
            raise ValueError(f"algorithms must be asymmetric JWS algorithms ({', '.join(sorted(_ASYMMETRIC))}); "
                             f"refused: {', '.join(map(str, unsafe)) or 'none given'}")
        if not (0 <= self.leeway <= MAX_LEEWAY) or math.isnan(self.leeway):
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        audiences = (self.audience,) if isinstance(self.audience, str) else tuple(self.audience)
        if not self.issuer or not audiences or not all(audiences):
            raise ValueError("issuer and audience must be non-empty")
        if not self.identity_claims or not self.user_scopes or not self.admin_scope:
            raise ValueError("identity_claims, user_scopes and admin_scope must be non-empty")
        object.__setattr__(self, "audiences", frozenset(audiences))


def _token_from_header(authorization: str | bytes | None) -> str:
    """The b64token of ``Authorization: Bearer <token>`` (RFC 6750 §2.1)."""
    if authorization is None or not authorization.strip():
        raise _unauthorized("no bearer token (Authorization header missing)", "missing")
    if isinstance(authorization, bytes):
        try:
            authorization = authorization.decode("ascii")
        except UnicodeDecodeError:
            raise _unauthorized("Authorization header is not ASCII", "malformed") from None
    text = authorization.strip(" \t")
    scheme = text.split(" ", 1)[0]
    if scheme.lower() != "bearer":
        raise _unauthorized(f"Authorization scheme {_shown(scheme)} is not Bearer", "not-bearer")
    if len(text) > MAX_TOKEN_LENGTH + 16:
        raise _unauthorized(f"bearer token longer than {MAX_TOKEN_LENGTH} characters", "malformed")
    match = _BEARER.fullmatch(text)
    if match is None:
        raise _unauthorized("Authorization: Bearer is not followed by one token (RFC 6750 §2.1)", "malformed")
    return match.group(2)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _unauthorized(f"claim {name!r} is not a NumericDate (RFC 7519 §2)", "invalid-claims")
    return float(value)


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """``scope`` (RFC 9068 §2.2.3: space-separated; deployed servers: a JSON array) or ``scp``."""
    out: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            out.update(value.split())
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out.update(value)
        else:
            raise _unauthorized(f"claim {name!r} is neither a string nor an array of strings", "invalid-claims")
    return frozenset(out)


#: Verified tokens :class:`BearerAuth` remembers (least recently used dropped first).
TOKEN_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class _Verified:
    """A verified token's principal, the key set that verified it, and its time claims."""

    principal: Principal
    key_set: KeySet
    not_before: float | None
    issued_at: float | None


class BearerAuth:
    """Verifies bearer tokens against a :class:`BearerPolicy`; see the module docstring.

    A token that verified is remembered (keyed by its SHA-256, never the token itself; at most
    *cache_size*, 0 for none) and answered again without the signature check as long as its
    ``exp``/``nbf``/``iat`` hold at the new time and the JWKS source still returns the very key
    set that verified it (a reloaded or refetched JWKS verifies every token anew).
    """

    __slots__ = ("policy", "cache_size", "_cache", "_cache_lock")

    def __init__(self, policy: BearerPolicy, *, cache_size: int = TOKEN_CACHE_SIZE) -> None:
        self.policy = policy
        self.cache_size = cache_size
        self._cache: collections.OrderedDict[bytes, _Verified] = collections.OrderedDict()
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BearerAuth(issuer={self.policy.issuer!r})"

    def verify_bearer(self, authorization: str | bytes | None, now: float) -> Principal:
        """The :class:`Principal` of an ``Authorization`` header value at time *now* (Unix seconds).

        Raises :class:`~mikey.errors.KmsUnauthorizedError` (401) for a missing, malformed,
        expired, not-yet-valid, wrongly signed or foreign token, and
        :class:`~mikey.errors.KmsForbiddenError` (403) for a valid token without a KMS scope.
        The refusal is logged with its reason, never with the token.
        """
        try:
            return self._verify(authorization, now)
        except KmsAuthError as exc:
            logger.warning("KMS bearer token refused (%d %s): %s", exc.status, exc.reason, exc.message)
            raise

    def _cached(self, digest: bytes, now: float) -> Principal | None:
        """The principal of a token verified before, if every check made then still holds at *now*."""
        with self._cache_lock:
            entry = self._cache.get(digest)
            if entry is None:
                return None
            leeway = self.policy.leeway
            if (entry.principal.expires_at > now - leeway
                    and (entry.not_before is None or entry.not_before <= now + leeway)
                    and (entry.issued_at is None or entry.issued_at <= now + leeway)
                    and self.policy.jwks.key_set() is entry.key_set):
                self._cache.move_to_end(digest)
                return entry.principal
            del self._cache[digest]  # verified again below: refused with its reason, or remembered anew
            return None

    def _remember(self, digest: bytes, entry: _Verified) -> None:
        with self._cache_lock:
            self._cache[digest] = entry
            self._cache.move_to_end(digest)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _verify(self, authorization: str | bytes | None, now: float) -> Principal:
        policy = self.policy
        token = _token_from_header(authorization)
        digest = hashlib.sha256(token.encode("ascii")).digest()
        if self.cache_size > 0:
            cached = self._cached(digest, now)
            if cached is not None:
                return cached
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthorized("bearer token is not a signed JWT (RFC 7515 compact form)", "malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in policy.algorithms:
            raise _unauthorized(f"token algorithm {_shown(alg)} is not allowed "
                                f"(allowed: {', '.join(policy.algorithms)})", "algorithm")
        kid, source = header.get("kid"), policy.jwks
        key_set = source.key_set()
        if isinstance(kid, str) and kid not in key_set and isinstance(source, RefreshableJwksSource):
            key_set = source.refresh_for_unknown_kid(kid)  # the identity server may have rotated its keys
        key = key_set.find(kid, alg)
        try:
            decoded = jwt.decode_complete(
                token, key=key, algorithms=[alg],
                options={"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False,
                         "enforce_minimum_key_length": True},
            )
        except jwt.InvalidSignatureError:
            raise _unauthorized("token signature does not verify", "bad-signature") from None
        except jwt.InvalidAlgorithmError:
            raise _unauthorized(f"token algorithm {_shown(alg)} does not fit its key", "key-algorithm") from None
        except jwt.PyJWTError:
            raise _unauthorized("bearer token is not a well-formed JWT", "malformed") from None
        claims = decoded["payload"]
        if not isinstance(claims, dict):
            raise _unauthorized("token claims are not a JSON object", "malformed")
        principal = self._check_claims(claims, now)
        if self.cache_size > 0:
            self._remember(digest, _Verified(principal, key_set, _number(claims, "nbf"), _number(claims, "iat")))
        return principal

    def _check_claims(self, claims: dict[str, Any], now: float) -> Principal:
        policy = self.policy
        leeway = policy.leeway
        exp = _number(claims, "exp")
        if exp is None:
            raise _unauthorized("token has no expiry (exp)", "invalid-claims")
        if exp <= now - leeway:
            raise _unauthorized(f"token expired {now - exp:.0f} s ago", "expired")
        nbf, iat = _number(claims, "nbf"), _number(claims, "iat")
        if nbf is not None and nbf > now + leeway:
            raise _unauthorized(f"token not valid for another {nbf - now:.0f} s (nbf)", "not-yet-valid")
        if iat is not None and iat > now + leeway:
            raise _unauthorized(f"token issued {iat - now:.0f} s in the future (iat)", "not-yet-valid")
        iss = claims.get("iss")
        if iss != policy.issuer:
            raise _unauthorized(f"token issuer {_shown(iss)} is not {policy.issuer!r}", "wrong-issuer")
        self._check_audience(claims.get("aud"))
        scopes = _scopes(claims)
        is_admin = policy.admin_scope in scopes
        has_user_scope = bool(scopes & policy.user_scopes)
        user_uri = self._identity(claims)
        if not (is_admin or has_user_scope):
            raise KmsForbiddenError(
                f"token lacks the key-management scope ({' or '.join(sorted(policy.user_scopes | {policy.admin_scope}))})",
                reason="insufficient-scope",
            )
        if user_uri is None and not is_admin:
            raise _unauthorized(f"token names no MC identity (claim {' or '.join(policy.identity_claims)})",
                                "no-identity")
        sub = claims.get("sub")
        return Principal(
            user_uri=user_uri,
            subject=sub if isinstance(sub, str) else None,
            issuer=policy.issuer,
            scopes=scopes,
            is_admin=is_admin,
            has_user_scope=has_user_scope,
            expires_at=exp,
        )

    def _check_audience(self, aud: object) -> None:
        if aud is None:
            if self.policy.allow_missing_audience:
                return
            raise _unauthorized("token has no audience (aud); accepting such tokens needs allow_missing_audience",
                                "wrong-audience")
        values = [aud] if isinstance(aud, str) else aud
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _unauthorized("token audience (aud) is neither a string nor an array of strings", "invalid-claims")
        if not self.policy.audiences.intersection(values):
            raise _unauthorized("token is for another audience (aud)", "wrong-audience")

    def _identity(self, claims: Mapping[str, Any]) -> str | None:
        for name in self.policy.identity_claims:
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 2048:
                raise _unauthorized(f"claim {name!r} is not an MC identity (a non-empty printable string)",
                                    "invalid-claims")
            return value
        return None

    def authorize_user(self, principal: Principal, requested_user_uri: str) -> None:
        """See :func:`authorize_user`, with this policy's ``admin_acts_for_users``."""
        authorize_user(principal, requested_user_uri, admin_acts_for_users=self.policy.admin_acts_for_users)


def authorize_user(principal: Principal, requested_user_uri: str, *, admin_acts_for_users: bool = True) -> None:
    """Allow *principal* the key sets of *requested_user_uri*, or raise :class:`~mikey.errors.KmsForbiddenError`.

    A user gets only their own keys (TS 33.180 §5.3: the KMS provisions the MC ID the token
    names); the identities are compared exactly, as the identity server wrote them.  An admin may
    act for any user when *admin_acts_for_users*.
    """
    if principal.is_admin and admin_acts_for_users:
        return
    if not principal.has_user_scope:
        raise KmsForbiddenError("token lacks the key-management scope for user keys", reason="insufficient-scope")
    if principal.user_uri is None or principal.user_uri != requested_user_uri:
        raise KmsForbiddenError("token is for another user than the one requested", reason="other-user")


def require_admin(principal: Principal) -> None:
    """Allow an admin operation (register users, rotate community keys), or raise ``KmsForbiddenError``."""
    if not principal.is_admin:
        raise KmsForbiddenError(f"needs the admin scope {ADMIN_SCOPE!r}", reason="insufficient-scope")


class NoIssuer:
    """The authenticator of a KMS with no identity server configured: every request is refused (401).

    ``mikey kms serve`` without ``--jwks`` or ``--dev-tokens`` serves the interface with it, so
    nothing is ever issued until an issuer of tokens is configured.
    """

    __slots__ = ()

    MESSAGE = ("this KMS accepts no tokens: it was started without an identity server "
               "(--jwks URL --issuer ISS --audience AUD) or --dev-tokens")

    def __repr__(self) -> str:
        return "NoIssuer()"

    def verify_bearer(self, authorization: str | bytes | None, now: float) -> Principal:
        """Refuse: :class:`~mikey.errors.KmsUnauthorizedError`, reason ``no-issuer``."""
        raise _unauthorized(self.MESSAGE, "no-issuer")

    def authorize_user(self, principal: Principal, requested_user_uri: str) -> None:
        """Refuse (never reached: no principal is ever verified)."""
        raise KmsForbiddenError(self.MESSAGE, reason="no-issuer")


_NOT_IN_QUOTED = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def www_authenticate(error: KmsAuthError | None = None, *, realm: str = "mikey-kms",
                     scope: str = USER_SCOPE) -> str:
    """The ``WWW-Authenticate`` value answering *error* (RFC 6750 §3).

    No error code when the request had no bearer credentials at all (§3.1: missing, or another
    scheme); ``invalid_token`` for every other 401; ``insufficient_scope`` with the *scope*
    needed for a 403.  The description is the error's message (which never holds the token),
    reduced to the characters §3 allows.
    """
    params = [f'realm="{_NOT_IN_QUOTED.sub("?", realm)}"']
    if error is not None and error.reason not in ("missing", "not-bearer"):
        code = "insufficient_scope" if error.status == 403 else "invalid_token"
        params.append(f'error="{code}"')
        params.append(f'error_description="{_NOT_IN_QUOTED.sub("?", error.message)}"')
        if code == "insufficient_scope":
            params.append(f'scope="{_NOT_IN_QUOTED.sub("?", scope)}"')
    return "Bearer " + ", ".join(params)


# --- development issuer ----------------------------------------------------------------------

#: ``iss`` of development tokens; ``aud`` they are issued for.
DEV_ISSUER = "urn:mikey:kms:dev-issuer"
DEV_AUDIENCE = "urn:mikey:kms"
#: Files in the KMS data directory: the signing key (PKCS #8 PEM, 0600) and its public JWKS.
DEV_KEY_FILE = "dev_token_key.pem"
DEV_JWKS_FILE = "dev_token_jwks.json"
#: The longest development token lifetime (a week).
MAX_DEV_TTL = 7 * 24 * 3600


class DevIssuer:
    """The development token issuer of a KMS data directory (``mikey kms token``, ``serve --dev-tokens``).

    An EC P-256 key signs ES256 tokens with ``iss`` :data:`DEV_ISSUER`, ``aud`` :data:`DEV_AUDIENCE`,
    the user's URI in ``mcptt_id`` and ``sub``, and scope :data:`USER_SCOPE` (plus :data:`ADMIN_SCOPE`).
    For labs and tests only: whoever can read the key file can act as any user.
    """

    __slots__ = ("_key", "kid", "directory")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, directory: Path | None = None) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise KeyMaterialError("the development token key must be an EC P-256 key")
        self._key = private_key
        self.kid = _thumbprint(self._public_jwk_without_kid())
        self.directory = directory

    def __repr__(self) -> str:
        return f"DevIssuer(kid={self.kid!r})"

    def _public_jwk_without_kid(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self._key.public_key()))
        return {k: jwk[k] for k in ("kty", "crv", "x", "y")}

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document that verifies this issuer's tokens."""
        return {"keys": [{**self._public_jwk_without_kid(), "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def policy(self, **overrides: Any) -> BearerPolicy:
        """A :class:`BearerPolicy` accepting this issuer's tokens (for ``serve --dev-tokens`` and tests)."""
        return BearerPolicy(issuer=DEV_ISSUER, audience=DEV_AUDIENCE, jwks=StaticJwks(self.jwks()), **overrides)

    def issue(self, user: str, *, admin: bool = False, ttl: float = 3600, now: float) -> str:
        """A signed ES256 access token for *user*, valid from *now* for *ttl* seconds."""
        if not isinstance(user, str) or not user or not user.isprintable():
            raise ValueError("the user must be a non-empty URI")
        if not (0 < ttl <= MAX_DEV_TTL):
            raise ValueError(f"the lifetime must be between 1 and {MAX_DEV_TTL} seconds")
        issued = int(now)
        claims = {
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": user,
            "mcptt_id": user,
            "scope": " ".join([USER_SCOPE, ADMIN_SCOPE] if admin else [USER_SCOPE]),
            "client_id": "mikey-kms-token",
            "iat": issued,
            "nbf": issued,
            "exp": issued + math.ceil(ttl),
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid, "typ": "at+jwt"})

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike[str]) -> DevIssuer:
        """The issuer whose key is DIR/:data:`DEV_KEY_FILE`, creating the key (0600) on first use.

        Writes DIR/:data:`DEV_JWKS_FILE` (the public JWKS) whenever it is missing or stale.  Two
        processes creating the key at once end up with the same one (the first link wins).  A key
        file readable by group or others, or not a P-256 key, raises ``KeyMaterialError``.
        """
        dir_path = Path(directory)
        dir_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path = dir_path / DEV_KEY_FILE
        if not key_path.exists() and not key_path.is_symlink():
            _create_key(key_path)
        issuer = cls(_load_key(key_path), dir_path)
        jwks_bytes = (json.dumps(issuer.jwks(), indent=2) + "\n").encode()
        jwks_path = dir_path / DEV_JWKS_FILE
        try:
            current = jwks_path.read_bytes()
        except OSError:
            current = b""
        if current != jwks_bytes:
            write_private_atomic(jwks_path, jwks_bytes)
        return issuer


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an EC public key."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _create_key(key_path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    staging = key_path.with_name(f".{key_path.name}.{secrets.token_hex(8)}.new")
    write_private_atomic(staging, pem)
    try:
        os.link(staging, key_path)  # never replaces a key another process created meanwhile
    except FileExistsError:
        pass
    finally:
        staging.unlink(missing_ok=True)


def _load_key(key_path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        fd = os.open(key_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyMaterialError(f"{key_path} is a symbolic link; refusing to read a key through it") from None
        raise KeyMaterialError(f"cannot read {key_path}: {exc.strerror or exc}") from None
    try:
        if os.fstat(fd).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyMaterialError(f"{key_path} is readable by others than its owner; chmod 600 it")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(1 << 16)
    finally:
        os.close(fd)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyMaterialError(f"{key_path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyMaterialError(f"{key_path} is not an EC P-256 private key")
    return key
