"""One group key for several participants: the MIKEY side of a conference focus and of group broadcast.

Sans-I/O: message objects in, message objects out; credentials come from files
:func:`make_group_credentials` writes (the same files ``mikey phone`` takes).

A group key is one TGK that every member turns into the *same* SRTP master keys for every
stream of the group, so a focus can relay SRTP between members without decrypting it.  The
SRTP keys of a crypto session derive from TGK, CS ID, CSB ID and RAND (RFC 3830 §4.1.3),
so the key server gives every member the same four: "the streaming server MUST specify
the same CSB_ID and CS_ID(s) for the session to all the group members" (RFC 3830 §8.1).
Each member's CS ID map lists every stream of the group (one crypto session per sender,
with its SSRC and current ROC, §6.1.1), so each member holds the keys of every stream.

How each method serves (:data:`SERVED`) or cannot serve (:data:`NOT_SERVED`) a group:

* PSK, PK (RFC 3830 §3.1, §3.2, §8.1): the focus is the Initiator toward each member, with
  the same TGK, CSB ID, RAND and CS ID map in every I_MESSAGE.
* RSA-R group mode (RFC 4738 §3.2): each member asks as Initiator (no SP); the focus, the
  group key server, answers every member with GenExt(CSB_ID), RAND, SP and the one TGK.
* MIKEY-SAKKE (RFC 6509, 3GPP TS 33.180 §7.3): the focus sends each member the GMK
  (key purpose GMK, CSB ID = the member's GUK-ID); the SRTP keys of a sender's stream use
  the *sender's* GUK-ID as CSB ID, so a member derives them from GMK, GMK-ID and the sender's
  URI (:func:`~mikey.modes.sakke.group_session_keys`; :func:`member_view`).  The RFC 6509
  profile without key purposes (the SSV as a plain TGK, one CSB ID) serves as PSK does.
* MIKEY-TICKET (RFC 6043 §9, §12.5): the focus requests one ticket for the group identity
  (reuse allowed, J; no key forking, I = 0: forked TGKs would differ, §9.1) and runs a
  Ticket Transfer with each member using the same RANDRi and CSB ID (§9: "the same RANDs
  MUST be used"); each member resolves the ticket at the KMS, which checks that it is in
  the group (§12.5), and gets the ticket's one TGK.
* DH, DH-HMAC (RFC 3830 §3.3, RFC 4650 §1), IBAKE (RFC 6267 §4): the TGK is the pairwise
  Diffie-Hellman value of each exchange, so every member would hold a different key; a
  relay focus cannot forward one member's SRTP to the others.  Serving them needs a focus
  that decrypts and re-encrypts per member (a media mixer/translator holding every pairwise
  key), which is not a group key and not what a relay focus does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .._files import write_private_atomic
from ..constants import PRF, CSIdMapType, DataType, IDType, KeyPurpose
from ..crypto.x509 import CertificateValidator
from ..errors import MikeyError, StateError, UnspecifiedError
from ..keystore import SakkeKeystore, TrustStore, load_certificates, load_credentials
from ..modes.base import Rng, build_header, default_srtp_policy, derive_crypto_sessions, random_csb_id
from ..modes.pk import PkInitiator, PkResponder
from ..modes.psk import PskInitiator, PskResponder
from ..modes.results import CryptoSessionKeys, CryptoSessionSpec, ExchangeResult, ResponderOutcome
from ..modes.rsa_r import RsaRInitiator, RsaRResponder
from ..modes.sakke import (
    SakkeInitiator,
    SakkeResponder,
    gcm_srtp_policy,
    group_session_keys,
    make_key_id,
)
from ..modes.ticket import TicketInitiator, TicketRequester, TicketResponder
from ..replay import ReplayCache
from ..wire import CommonHeader, IdPayload, SecurityPolicyPayload

__all__ = [
    "SERVED",
    "NOT_SERVED",
    "METHODS",
    "GroupKeyingError",
    "GroupStream",
    "GroupKey",
    "GroupKeyServer",
    "group_support",
    "focus_dials_out",
    "make_group_credentials",
    "member_initiator",
    "member_responder",
    "member_view",
    "session_fingerprints",
]

#: How each method distributes one group key (the README's conference/broadcast cells).
SERVED: Mapping[str, str] = {
    "psk": "the focus is the PSK Initiator toward each member with the same TGK, CSB ID, RAND and CS ID map "
           "(RFC 3830 §3.1, §8.1)",
    "pk": "the focus is the PK Initiator toward each member (envelope key per member, one TGK, CSB ID, RAND and "
          "CS ID map; RFC 3830 §3.2, §8.1)",
    "rsa-r": "members ask the focus as RSA-R Initiators in group mode; the focus (group key server) answers each "
             "with GenExt(CSB_ID), RAND, SP and the one TGK (RFC 4738 §3.2)",
    "sakke": "the focus sends each member the GMK (purpose GMK, CSB ID = the member's GUK-ID); a sender's SRTP keys "
             "use the sender's GUK-ID (3GPP TS 33.180 §7.3, RFC 6509)",
    "ticket": "the focus requests one ticket for the group identity (J, no key forking) and transfers it to each "
              "member with the same RANDRi and CSB ID; members resolve it at the KMS (RFC 6043 §9, §12.5)",
}

#: Why the Diffie-Hellman methods cannot give a relay focus one group key.
NOT_SERVED: Mapping[str, str] = {
    "dh": "MIKEY-DH gives each pair its own TGK g^(xi*xr) and 'cannot be used to create group keys' "
          "(RFC 3830 §3.3): a relay focus cannot forward one member's SRTP to the others; it would take a focus "
          "that decrypts and re-encrypts per member",
    "dhhmac": "DH-HMAC gives each pair its own TGK and 'does not support group-based keying for any group size "
              "larger than two' (RFC 4650 §1): a relay focus cannot forward one member's SRTP to the others; it "
              "would take a focus that decrypts and re-encrypts per member",
    "ibake": "MIKEY-IBAKE's session key is the pairwise EC-DH value [x][y]P (RFC 6267 §4), unknown to anyone else: "
             "a relay focus cannot forward one member's SRTP to the others; it would take a focus that decrypts "
             "and re-encrypts per member",
}

#: The CLI mode names, in the README table's order.
METHODS = ("psk", "pk", "dh", "dhhmac", "rsa-r", "sakke", "ticket", "ibake")

#: TICKET Ticket Policy flags of a group ticket: D E F H (RANDRi in the keys) J (reused: one ticket, several
#: Transfers) N O; no G (no RANDRr, so every Transfer keys alike) and no I (forked TGKs differ, §9.1).
GROUP_TICKET_FLAGS = "DEFHJNO"


class GroupKeyingError(MikeyError):
    """A group keying request this method or these credentials cannot serve."""

    kind = "group"


def group_support(method: str) -> str | None:
    """None when *method* can key a group through a relay focus, else why not (RFC-cited)."""
    if method in SERVED:
        return None
    if method in NOT_SERVED:
        return NOT_SERVED[method]
    raise GroupKeyingError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")


def focus_dials_out(method: str) -> bool:
    """Whether the focus sends the I_MESSAGE (PSK, PK, SAKKE, TICKET) or the members do (RSA-R group mode)."""
    if group_support(method) is not None:
        raise GroupKeyingError(f"{method}: {NOT_SERVED[method]}")
    return method != "rsa-r"


# --- the group key -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupStream:
    """One sender's SRTP stream in the group: who sends it, its SSRC and the ROC it is at (RFC 3711 §3.3.1).

    SSRC 0: not known yet -- a focus learns it from the member's SDP offer (``a=ssrc``, RFC 5576)
    before keying anyone (:meth:`GroupKey.with_ssrc`).
    """

    uri: str
    ssrc: int
    roc: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.ssrc < 1 << 32:
            raise GroupKeyingError(f"SSRC {self.ssrc} of {self.uri} is not a 32-bit value")
        if not 0 <= self.roc < 1 << 32:
            raise GroupKeyingError(f"ROC {self.roc} of {self.uri} is not a 32-bit value")


@dataclass(frozen=True)
class GroupKey:
    """The group's key material: TGK (the GMK for MIKEY-SAKKE), RAND, CSB ID, and the streams.

    Crypto session *n* (1-based, the SRTP-ID map position, RFC 3830 §6.1.1) is ``streams[n-1]``.
    ``gmk_id`` is the MIKEY-SAKKE GMK-ID (purpose tag GMK, TS 33.180).  Keys never appear in ``repr``.
    """

    tgk: bytes = field(repr=False)
    rand: bytes
    csb_id: int
    streams: tuple[GroupStream, ...]
    gmk_id: int

    @classmethod
    def new(cls, streams: Sequence[GroupStream], *, rng: Rng = os.urandom, tgk_len: int = 16) -> GroupKey:
        """A fresh random group key for *streams* (distinct SSRCs)."""
        if not streams:
            raise GroupKeyingError("a group needs at least one stream")
        ssrcs = [s.ssrc for s in streams if s.ssrc]
        if len(set(ssrcs)) != len(ssrcs):
            raise GroupKeyingError("two streams of the group share an SSRC (RFC 3550 §8)")
        return cls(rng(tgk_len), rng(16), random_csb_id(rng), tuple(streams), make_key_id(KeyPurpose.GMK, rng))

    def specs(self) -> list[CryptoSessionSpec]:
        """The crypto sessions every member is offered: one per stream, with its SSRC and ROC."""
        return [CryptoSessionSpec(ssrc=s.ssrc, roc=s.roc, cs_id=i) for i, s in enumerate(self.streams, 1)]

    def with_roc(self, ssrc: int, roc: int) -> GroupKey:
        """The same key with the stream *ssrc* at *roc* (what a late joiner is told, RFC 3830 §6.1.1)."""
        if all(s.ssrc != ssrc for s in self.streams):
            raise GroupKeyingError(f"SSRC {ssrc:08x} is not a stream of this group")
        streams = tuple(GroupStream(s.uri, s.ssrc, roc) if s.ssrc == ssrc else s for s in self.streams)
        return dataclasses.replace(self, streams=streams)

    def with_ssrc(self, uri: str, ssrc: int) -> GroupKey:
        """The same key with the SSRC of *uri*'s stream learnt (from its SDP offer, RFC 5576)."""
        if not 0 < ssrc < 1 << 32:
            raise GroupKeyingError(f"SSRC {ssrc} of {uri} is not a non-zero 32-bit value")
        if any(s.ssrc == ssrc and s.uri != uri for s in self.streams):
            raise GroupKeyingError(f"SSRC {ssrc:08x} of {uri} is another member's (RFC 3550 §8)")
        if all(s.uri != uri for s in self.streams):
            raise GroupKeyingError(f"{uri} sends no stream of this group")
        streams = tuple(GroupStream(s.uri, ssrc, s.roc) if s.uri == uri else s for s in self.streams)
        return dataclasses.replace(self, streams=streams)

    def stream(self, ssrc: int) -> GroupStream:
        for s in self.streams:
            if s.ssrc == ssrc:
                return s
        raise GroupKeyingError(f"SSRC {ssrc:08x} is not a stream of this group")


def _with_streams(sessions: Sequence[CryptoSessionKeys], streams: Sequence[GroupStream]) -> tuple[CryptoSessionKeys, ...]:
    """Crypto sessions 1..n bound to the group's streams (SSRC and ROC from the roster)."""
    by_cs = {cs.cs_id: cs for cs in sessions}
    out = []
    for i, s in enumerate(streams, 1):
        cs = by_cs.get(i)
        if cs is None:
            raise UnspecifiedError(f"the group key has no crypto session {i} for {s.uri}")
        out.append(dataclasses.replace(cs, ssrc=s.ssrc, roc=s.roc))
    return tuple(out)


def member_view(method: str, result: ExchangeResult, streams: Sequence[GroupStream]) -> ExchangeResult:
    """A member's keys for every stream of the group, from the exchange that keyed it.

    MIKEY-SAKKE GMK: a sender's crypto session keys from GMK, GMK-ID and the sender's GUK-ID
    (TS 33.180 §7.3; :func:`~mikey.modes.sakke.group_session_keys`), CS ID = roster position.
    Other methods: the exchange's own crypto sessions, which must name every stream's SSRC
    (:class:`~mikey.errors.UnspecifiedError` otherwise -- the member was not keyed for the group).
    """
    if method == "sakke" and result.extras.get("key_type") == "gmk":
        key_id = result.extras.get("key_id")
        if not isinstance(key_id, str):
            raise UnspecifiedError("the MIKEY-SAKKE GMK result carries no GMK-ID")
        gmk_id = int(key_id, 16)
        policies = result.policies or (gcm_srtp_policy(0),)
        by_cs = {cs.cs_id: cs for cs in result.crypto_sessions}
        sessions: list[CryptoSessionKeys] = []
        for i, s in enumerate(streams, 1):
            got = by_cs.get(i)
            if got is None or got.ssrc != s.ssrc:
                raise UnspecifiedError(f"the GMK I_MESSAGE does not map crypto session {i} to {s.uri}'s SSRC")
            (cs,) = group_session_keys(result.tgk, gmk_id, s.uri, result.rand, [i], policies, prf=result.prf)
            sessions.append(dataclasses.replace(cs, ssrc=got.ssrc, roc=got.roc))  # SSRC and ROC as the focus sent
        return dataclasses.replace(result, crypto_sessions=tuple(sessions))
    have = {cs.ssrc for cs in result.crypto_sessions}
    missing = [f"{s.ssrc:08x}" for s in streams if s.ssrc and s.ssrc not in have]  # 0: the focus learnt it
    if missing:
        raise UnspecifiedError(f"the {method} exchange did not key the group's streams {', '.join(missing)}")
    return result


def session_fingerprints(result: ExchangeResult) -> dict[int, str]:
    """SSRC -> non-secret fingerprint of that stream's master key and salt (to compare members)."""
    return {cs.ssrc or 0: cs.fingerprint() for cs in result.crypto_sessions}


# --- credentials (files, JSON-serialisable descriptions) --------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(subject: str, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey,
                 start: dt.datetime, *, ca: bool, uri: str | None = None) -> x509.Certificate:
    """A test certificate: a CA, or an end entity with *uri* as subjectAltName (RFC 3830 §4.3.2 ID binding)."""
    builder = (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=31))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=not ca,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if uri:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pki(workdir: Path, parties: Sequence[str], now: float) -> dict[str, Any]:
    start = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(days=1)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("MIKEY group CA", ca_key, _name("MIKEY group CA"), ca_key, start, ca=True)
    pem = serialization.Encoding.PEM
    (workdir / "ca.pem").write_bytes(ca.public_bytes(pem))
    out: dict[str, Any] = {"ca": str(workdir / "ca.pem"), "parties": {}}
    for i, uri in enumerate(parties):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = _certificate(uri, key, ca.subject, ca_key, start, ca=False, uri=uri)
        cert_path, key_path = workdir / f"party{i}.pem", workdir / f"party{i}.key"
        cert_path.write_bytes(cert.public_bytes(pem))
        write_private_atomic(key_path, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
        out["parties"][uri] = {"uri": uri, "cert": str(cert_path), "key": str(key_path)}
    return out


def make_group_credentials(method: str, workdir: Path, focus: str, members: Sequence[str], *,
                           group_uri: str | None = None, now: float | None = None) -> dict[str, Any]:
    """Throw-away credentials for a focus and its members, as files under *workdir* (keys 0600).

    Shape: ``{"method", "focus": URI, "group": URI, "parties": {URI: {...}}, ...}`` where each party
    has what ``mikey phone`` / ``mikey respond`` take: ``psk`` (hex); ``cert``/``key`` and the
    shared ``ca`` (PK, RSA-R); ``keys`` (MIKEY-SAKKE key file); ``psk``/``psk_id`` with the KMS
    database ``kms_db``/``at_rest_key``/``kms_id`` (TICKET; members are in the group ``group``).
    """
    if group_support(method) is not None:
        raise GroupKeyingError(f"{method}: {NOT_SERVED[method]}")
    now = time.time() if now is None else now
    workdir.mkdir(parents=True, exist_ok=True)
    parties = [focus, *members]
    if len(set(parties)) != len(parties):
        raise GroupKeyingError("the focus and the members need distinct URIs")
    group_uri = group_uri or focus.replace("sip:", "sip:group-", 1)
    out: dict[str, Any] = {"method": method, "focus": focus, "group": group_uri}
    if method == "psk":
        out["parties"] = {uri: {"uri": uri, "psk": os.urandom(16).hex()} for uri in members}
        out["parties"][focus] = {"uri": focus}
    elif method in ("pk", "rsa-r"):
        out |= _pki(workdir, parties, now)
    elif method == "sakke":
        from ..kms import generate_community, issue_user_keys, user_key_document

        community = generate_community("kms.group.example")
        out["parties"] = {}
        for i, uri in enumerate(parties):
            first = issue_user_keys(community, uri, now=now)
            second = issue_user_keys(community, uri, period_no=(first.period_no or 0) + 1)
            path = workdir / f"party{i}.sakke.json"
            write_private_atomic(path, json.dumps(user_key_document(community, first, second)).encode())
            out["parties"][uri] = {"uri": uri, "keys": str(path)}
    else:  # ticket
        from ..kms.store import AtRestKey, KmsStore

        at_rest = os.urandom(32).hex()
        db = workdir / "group-kms.sqlite3"
        out |= {"kms_db": str(db), "at_rest_key": at_rest, "kms_id": "kms.group.example", "parties": {}}
        with KmsStore(f"sqlite:///{db}", AtRestKey.from_text(at_rest, source="group credentials")) as store:
            for i, uri in enumerate(parties):
                psk, psk_id = os.urandom(16), f"party{i}"
                store.add_ticket_user(uri.encode(), psk, key_id=psk_id.encode(), may_request=uri == focus,
                                      groups=() if uri == focus else (group_uri.encode(),))
                out["parties"][uri] = {"uri": uri, "psk": psk.hex(), "psk_id": psk_id}
    return out


def _party(creds: Mapping[str, Any], uri: str) -> Mapping[str, Any]:
    party = creds.get("parties", {}).get(uri)
    if party is None:
        raise GroupKeyingError(f"no {creds.get('method')} credentials for {uri}")
    result: Mapping[str, Any] = party
    return result


def _validator(creds: Mapping[str, Any]) -> CertificateValidator:
    validator: CertificateValidator = TrustStore.load(creds["ca"]).validator()
    return validator


def _uri_id(uri: str) -> IdPayload:
    return IdPayload(IDType.URI, uri.encode("utf-8"))


class KmsTransport(Protocol):
    def __call__(self, message: bytes, now: float, /) -> bytes: ...


def _kms(creds: Mapping[str, Any]) -> KmsTransport:
    from ..cli.mode_ticket import http_transport, local_transport

    if creds.get("kms_url"):
        return http_transport(str(creds["kms_url"]))
    return local_transport(creds["kms_db"], creds["at_rest_key"], str(creds["kms_id"]).encode())


# --- the focus: one exchange per member, all with the group key ---------------------------------------------


class GroupInitiator(Protocol):
    """What the focus drives per member when it sends the I_MESSAGE (every dial-out method's Initiator)."""

    def create_message(self, now: float) -> bytes: ...

    def receive(self, data: bytes, now: float) -> ExchangeResult: ...

    @property
    def result(self) -> ExchangeResult: ...


class GroupKeyServer:
    """The focus's MIKEY role: keys every member with one :class:`GroupKey` (see the module doc per method).

    Dial-out methods (:func:`focus_dials_out`): :meth:`initiator` gives the Initiator for one member,
    whose I_MESSAGE goes in the INVITE to that member.  RSA-R: :meth:`respond` answers a member's
    group-mode I_MESSAGE.  :meth:`focus_view` is the focus's own view of every stream's keys (a
    broadcasting focus sends with it; a relay focus needs none).  One replay cache guards all
    Responder exchanges (RFC 3830 §5.4).
    """

    def __init__(self, method: str, key: GroupKey, creds: Mapping[str, Any]) -> None:
        if group_support(method) is not None:
            raise GroupKeyingError(f"{method}: {NOT_SERVED[method]}")
        if creds.get("method") != method:
            raise GroupKeyingError(f"the credentials are for {creds.get('method')!r}, not {method!r}")
        self.method = method
        self.key = key
        self.creds = creds
        self.focus_uri = str(creds["focus"])
        self.replay_cache = ReplayCache()
        self._grant: Any = None
        self._ticket_view: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"GroupKeyServer(method={self.method!r}, csb_id={self.key.csb_id:08x}, streams={len(self.key.streams)})"

    def _policies(self) -> list[SecurityPolicyPayload]:
        return [gcm_srtp_policy(0)] if self.method == "sakke" else [default_srtp_policy(0)]

    def initiator(self, member: str, now: float, *, key: GroupKey | None = None) -> GroupInitiator:
        """The Initiator keying *member* with the group key (*key*: e.g. a later ROC for a late joiner)."""
        key = key or self.key
        if not focus_dials_out(self.method):
            raise GroupKeyingError("RSA-R group mode: members send the I_MESSAGE; the focus responds (RFC 4738 §3.2)")
        party = _party(self.creds, member)
        common: dict[str, Any] = {"csb_id": key.csb_id, "rand": key.rand, "crypto_sessions": key.specs(),
                                  "policies": self._policies()}
        if self.method == "psk":
            return PskInitiator(bytes.fromhex(party["psk"]), tgk=key.tgk, v=True, id_i=_uri_id(self.focus_uri),
                                id_r=_uri_id(member), **common)
        if self.method == "pk":
            own = _party(self.creds, self.focus_uri)
            peer = load_certificates(party["cert"])[0]
            return PkInitiator(load_credentials(own["key"], own["cert"]), peer, validator=_validator(self.creds),
                               tgk=key.tgk, v=True, id_r=_uri_id(member), **common)
        if self.method == "sakke":
            own = _party(self.creds, self.focus_uri)
            keys = SakkeKeystore.load_json(own["keys"])
            # GMK: CSB ID = the member's GUK-ID (TS 33.180 §7.3.2), so the CSB ID is not passed.  The SRTP-ID
            # map carries each stream's ROC (RFC 3830 §6.1.1); this SakkeInitiator's GENERIC-ID map leaves it out.
            return SakkeInitiator(keys, member, key_type="gmk", ssv=key.tgk, key_id=key.gmk_id, rand=key.rand,
                                  crypto_sessions=key.specs(), policies=self._policies(),
                                  cs_id_map_type=CSIdMapType.SRTP_ID)
        grant = self._ticket_grant(now)
        return TicketInitiator(grant, id_i=self.focus_uri.encode(), id_r=member.encode(), crypto_sessions=key.specs(),
                               policies=self._policies(), csb_id=key.csb_id, rand=key.rand)

    def _ticket_grant(self, now: float) -> Any:
        """The group ticket, requested once from the KMS (RFC 6043 §4.2.1, IDRr = the group, §12.5)."""
        if self._grant is None:
            from ..cli.mode_ticket import ticket_policy

            own = _party(self.creds, self.focus_uri)
            policy = ticket_policy([str(self.creds["group"])], GROUP_TICKET_FLAGS, 3600.0, now)
            requester = TicketRequester(bytes.fromhex(own["psk"]), policy, id_i=self.focus_uri.encode(),
                                        kms_id=str(self.creds["kms_id"]).encode(), psk_id=own["psk_id"].encode())
            self._grant = requester.receive(_kms(self.creds)(requester.create_message(now), now), now)
        return self._grant

    def respond(self, i_message: bytes, now: float, *, key: GroupKey | None = None) -> ResponderOutcome:
        """RSA-R group mode: the R_MESSAGE with GenExt(CSB_ID), RAND, SP and the group TGK (RFC 4738 §3.2, §3.6)."""
        key = key or self.key
        if self.method != "rsa-r":
            raise GroupKeyingError(f"{self.method}: the focus sends the I_MESSAGE; it does not respond")
        own = _party(self.creds, self.focus_uri)
        responder = RsaRResponder(load_credentials(own["key"], own["cert"]), _validator(self.creds),
                                  group_csb_id=key.csb_id, group_crypto_sessions=key.specs(), rand=key.rand,
                                  tgk=key.tgk, policies=self._policies(), replay_cache=self.replay_cache)
        return responder.receive(i_message, now)

    def note_member_result(self, result: ExchangeResult) -> None:
        """Keep the focus's view of a TICKET group (the ticket's TGK is the KMS's, learnt per Transfer)."""
        if self.method == "ticket" and self._ticket_view is None:
            self._ticket_view = result

    def focus_view(self) -> ExchangeResult:
        """The focus's keys for every stream (RFC 3830 §4.1.3 with the group's TGK, CSB ID, RAND, CS IDs)."""
        key = self.key
        if self.method == "ticket":
            if self._ticket_view is None:
                raise StateError("the TICKET group's TGK is known once a Ticket Transfer finished")
            return member_view(self.method, self._ticket_view, key.streams)
        policies = self._policies()
        if self.method == "sakke":
            sessions = []
            for i, s in enumerate(key.streams, 1):
                (cs,) = group_session_keys(key.tgk, key.gmk_id, s.uri, key.rand, [i], policies)
                sessions.append(cs)
            prf = int(PRF.PRF_HMAC_SHA_256)
            hdr = CommonHeader(DataType.SAKKE, key.csb_id, (), CSIdMapType.EMPTY, False, prf, cs_count=0)
            extras: dict[str, Any] = {"key_type": "gmk", "key_id": f"{key.gmk_id:08x}"}
        else:
            prf = int(PRF.MIKEY_1)
            hdr = build_header(DataType.PSK_INIT, key.csb_id, key.specs())
            sessions = list(derive_crypto_sessions(key.tgk, hdr, key.rand, policies))
            extras = {}
        return ExchangeResult(mode=self.method, csb_id=key.csb_id, tgk=key.tgk, rand=key.rand, prf=prf,
                              crypto_sessions=_with_streams(sessions, key.streams), authenticated=True, header=hdr,
                              policies=tuple(policies), initiator_id=self.focus_uri.encode(), extras=extras)


# --- the member's side (what ``mikey phone`` does as a participant; here for the in-memory group) --------------


def member_responder(method: str, creds: Mapping[str, Any], member: str, *, own_ssrc: int | None = None) -> Any:
    """The Responder a member answers the focus's I_MESSAGE with (PSK, PK, SAKKE, TICKET)."""
    party = _party(creds, member)
    focus = str(creds["focus"])
    own = [own_ssrc] if own_ssrc else []
    if method == "psk":
        return PskResponder(bytes.fromhex(party["psk"]), id_r=_uri_id(member), own_ssrcs=own)
    if method == "pk":
        peer = load_certificates(_party(creds, focus)["cert"])[0]
        return PkResponder(load_credentials(party["key"], party["cert"]), _validator(creds), peer_certificate=peer,
                           id_r=_uri_id(member), own_ssrcs=own)
    if method == "sakke":
        return SakkeResponder(SakkeKeystore.load_json(party["keys"]), initiator_uri=focus, own_ssrcs=own)
    if method == "ticket":
        from ..cli.mode_ticket import HttpTicketResponder

        responder = TicketResponder(bytes.fromhex(party["psk"]), id_r=member.encode(),
                                    kms_id=str(creds["kms_id"]).encode(), psk_id=party["psk_id"].encode(),
                                    own_ssrcs=own)
        return HttpTicketResponder(_kms(creds), responder)
    raise GroupKeyingError(f"{method}: members do not respond to the focus in this method")


def member_initiator(method: str, creds: Mapping[str, Any], member: str) -> RsaRInitiator:
    """RSA-R group mode: the member's request for the group key (RFC 4738 §3.2: no SP, RAND from the focus)."""
    if method != "rsa-r":
        raise GroupKeyingError(f"{method}: the focus sends the I_MESSAGE")
    party = _party(creds, member)
    focus = _party(creds, str(creds["focus"]))
    return RsaRInitiator(load_credentials(party["key"], party["cert"]), validator=_validator(creds),
                         peer_certificate=load_certificates(focus["cert"])[0], group=True,
                         id_r=_uri_id(str(creds["focus"])))
