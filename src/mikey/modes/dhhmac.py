"""HMAC-authenticated Diffie-Hellman mode, DH-HMAC (RFC 4650).

I_MESSAGE = HDR, T, RAND, [IDi], IDr, {SP}, DHi, KEMAC
R_MESSAGE = HDR, T, [IDr], IDi, DHr, DHi, KEMAC

The exchange is the one of :mod:`mikey.modes.dh` (RFC 3830 §3.3) with the SIGN payload replaced by
a KEMAC that carries only a MAC (RFC 4650 §4.2): NULL encryption, empty Encr data, the MAC over the
whole message except the MAC field.  The MAC key is auth_key derived from the pre-shared key, the
CSB ID and the Initiator's RAND (RFC 3830 §4.1.4); both messages use the same key.

Algorithm numbers follow RFC 3830 (Encr alg NULL = 0; MAC alg NULL = 0, HMAC-SHA-1-160 = 1, and
HMAC-SHA-256-256 = 2 from RFC 6043), not RFC 4650's conflicting tables 4.2 / 4.2.a.

Deployed variants (off by default, accepted only when named in ``compat``): the Initiator takes
``"fresh-response-timestamp"`` and ``"response-without-ids"`` (see :mod:`mikey.modes.dhbase`); the
Responder takes ``"init-without-idr"``, an I_MESSAGE that omits the IDr RFC 4650 §3 requires
(MiniSIP libmikey).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..constants import MAC_LENGTHS, PRF, DataType, EncrAlg, MacAlg
from ..crypto import kemac as kemac_crypto
from ..crypto import prf as prf_crypto
from ..errors import (
    AuthenticationError,
    CryptoError,
    MikeyProtocolError,
    StateError,
    UnspecifiedError,
    UnsupportedEncryptionError,
    UnsupportedIDError,
    UnsupportedMACError,
)
from ..wire import (
    CommonHeader,
    DhPayload,
    IdPayload,
    KemacPayload,
    Message,
    Payload,
    RandPayload,
    TimestampPayload,
)
from .base import State, build_error_message
from .dhbase import DH_COMPAT_OPTIONS, DhInitiatorBase, DhResponderBase, DhResponderKeywords, error_number
from .keytransport import COMPAT_BY_MODE, COMPAT_INIT_WITHOUT_IDR, PskLookup, compat_hint, resolve_psk
from .signing import check_compat

if TYPE_CHECKING:
    from typing import Unpack

__all__ = ["DhHmacInitiator", "DhHmacResponder", "COMPAT_INIT_WITHOUT_IDR", "DHHMAC_RESPONDER_COMPAT",
           "DH_COMPAT_OPTIONS", "auth_key"]

#: The deployed variants the DH-HMAC Responder accepts (the Initiator's are DH_COMPAT_OPTIONS).
DHHMAC_RESPONDER_COMPAT = COMPAT_BY_MODE["dhhmac-responder"]

_MAC_ALGS = (MacAlg.NULL, MacAlg.HMAC_SHA_1_160, MacAlg.HMAC_SHA_256_256)


def auth_key(psk: bytes, csb_id: int, rand: bytes, mac_alg: int, prf: int = PRF.MIKEY_1) -> bytes:
    """auth_key from the pre-shared key (RFC 4650 §1.1, RFC 3830 §4.1.4, constant 0x2D22AC75)."""
    n = kemac_crypto.mac_key_len(mac_alg)
    if n == 0:
        return b""
    return prf_crypto.derive_transport_keys(psk, csb_id, rand, encr_len=0, auth_len=n, salt_len=0, prf_func=prf).auth_key


def _check_mac_alg(mac_alg: int, allow_null: bool) -> None:
    if mac_alg not in _MAC_ALGS:
        raise UnsupportedMACError(f"KEMAC MAC algorithm {mac_alg} is not supported")
    if mac_alg == MacAlg.NULL and not allow_null:
        raise UnsupportedMACError("a NULL MAC leaves DH-HMAC unauthenticated; not allowed by local policy")


def mac_message(header: CommonHeader, payloads: Sequence[Payload], mac_alg: int, key: bytes) -> bytes:
    """Encode with a last KEMAC (NULL encryption, no key data) whose MAC covers all but the MAC (RFC 4650 §4.2)."""
    n = MAC_LENGTHS[mac_alg]
    draft = Message(header, (*payloads, KemacPayload(EncrAlg.NULL, b"", mac_alg, bytes(n)))).encode()
    covered = draft[: len(draft) - n]
    return covered + kemac_crypto.compute_mac(mac_alg, key, covered)


def verify_kemac(msg: Message, key_for: Any, allow_null: bool, expected_mac_alg: int | None = None) -> int:
    """Check the last-payload KEMAC of a DH-HMAC message; returns its MAC alg.

    ``key_for(mac_alg)`` gives the auth_key.  Raises the RFC error for each problem.
    """
    kemac = msg.payloads[-1] if msg.payloads else None
    if not isinstance(kemac, KemacPayload):
        raise AuthenticationError("DH-HMAC message does not end with a KEMAC payload (RFC 4650 §4.2)")
    if len(msg.find_all(KemacPayload)) != 1:
        raise UnspecifiedError("DH-HMAC message must carry exactly one KEMAC")
    if kemac.encr_alg != EncrAlg.NULL or kemac.encr_data:
        raise UnsupportedEncryptionError("DH-HMAC KEMAC must use NULL encryption with no Encr data (RFC 4650 §4.2)")
    mac_alg = int(kemac.mac_alg)
    _check_mac_alg(mac_alg, allow_null)
    if expected_mac_alg is not None and mac_alg != expected_mac_alg:
        raise UnsupportedMACError(f"KEMAC uses MAC alg {mac_alg}, the I_MESSAGE used {expected_mac_alg}")
    raw = msg.raw_bytes()
    try:
        kemac_crypto.verify_mac(mac_alg, key_for(mac_alg), raw[: len(raw) - len(kemac.mac)], kemac.mac)
    except CryptoError as e:
        raise AuthenticationError(f"MAC check failed: {e.message}") from None
    return mac_alg


class DhHmacInitiator(DhInitiatorBase):
    """The DH-HMAC Initiator (RFC 4650 §3).

    ``psk`` is the pre-shared key s; ``mac_alg`` is the KEMAC MAC alg (RFC 3830 numbers).  RFC 4650
    requires IDr; without ``id_r`` no ID payload is sent at all (a lone IDi would read as IDr).
    """

    MODE: ClassVar[str] = "dhhmac"
    INIT_TYPE: ClassVar[int] = DataType.DHHMAC_INIT
    RESP_TYPE: ClassVar[int] = DataType.DHHMAC_RESP
    HANDLERS = {(State.WAIT_RESPONSE, DataType.DHHMAC_RESP): DhInitiatorBase._on_response}

    def __init__(
        self,
        psk: bytes,
        *,
        mac_alg: int = MacAlg.HMAC_SHA_1_160,
        allow_null_mac: bool = False,
        compat: Collection[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(compat=check_compat(compat, DH_COMPAT_OPTIONS), **kwargs)
        if not psk:
            raise ValueError("DH-HMAC needs a non-empty pre-shared key")
        _check_mac_alg(mac_alg, allow_null_mac)
        self._psk = bytes(psk)
        self.mac_alg = int(mac_alg)
        self.allow_null_mac = allow_null_mac
        self._auth_key: bytes | None = None

    @classmethod
    def resume(cls, i_message: bytes, dh_private: int, psk: bytes, **kwargs: Any) -> DhHmacInitiator:
        """An Initiator waiting for the answer to *i_message*, which it sent with exponent *dh_private*."""
        msg = Message.decode(i_message)
        dh_p = msg.find(DhPayload)
        kemac = msg.find(KemacPayload)
        mac_alg = int(kemac.mac_alg) if kemac is not None else MacAlg.HMAC_SHA_1_160
        kwargs.setdefault("allow_null_mac", mac_alg == MacAlg.NULL)
        self = cls(psk, mac_alg=mac_alg, dh_private=dh_private,
                   group=int(dh_p.group) if dh_p is not None else 0, **kwargs)
        self._restore(i_message)
        return self

    def _adopt_ids(self, msg: Message) -> None:
        ids = msg.find_all(IdPayload)  # [IDi], IDr: a lone ID is IDr
        self.id_i = ids[0] if len(ids) > 1 else None
        self.id_r = ids[-1] if ids else None

    def _key(self) -> bytes:
        if self._auth_key is None:
            self._auth_key = auth_key(self._psk, self.csb_id, self.rand, self.mac_alg, self.prf)
        return self._auth_key

    def _init_payloads(self) -> list[Payload]:
        if self.timestamp is None:
            raise StateError("the I_MESSAGE has no timestamp yet")
        payloads: list[Payload] = [self.timestamp, self._rand_payload()]
        if self.id_r is not None:
            if self.id_i is not None:
                payloads.append(self.id_i)
            payloads.append(self.id_r)
        payloads += self.policies
        return payloads

    def _rand_payload(self) -> Payload:
        return RandPayload(self.rand)

    def _authenticate(self, header: CommonHeader, payloads: list[Payload]) -> bytes:
        return mac_message(header, payloads, self.mac_alg, self._key())

    def _verify_response(self, msg: Message, now: float) -> dict[str, Any]:
        mac_alg = verify_kemac(msg, lambda _alg: self._key(), self.allow_null_mac, self.mac_alg)
        return {"authenticated": mac_alg != MacAlg.NULL, "mac_alg": mac_alg}

    def __repr__(self) -> str:
        return f"DhHmacInitiator(csb_id={self.csb_id:08x}, group={self.group.group_id}, state={self.state.value})"


class DhHmacResponder(DhResponderBase):
    """The DH-HMAC Responder (RFC 4650 §3).

    ``psk`` is the key, or a lookup ``(IDi, IDr) -> key | None``.  ``id_r`` is the own identity: an
    I_MESSAGE addressed to another IDr is refused (Error no 7).  ``initiator_id`` is the IDi to put in
    the R_MESSAGE when the I_MESSAGE carries none (RFC 4650 §3 requires IDi in every response).
    """

    MODE: ClassVar[str] = "dhhmac"
    INIT_TYPE: ClassVar[int] = DataType.DHHMAC_INIT
    RESP_TYPE: ClassVar[int] = DataType.DHHMAC_RESP
    HANDLERS = {(State.START, DataType.DHHMAC_INIT): DhResponderBase._on_init}

    def __init__(
        self,
        psk: bytes | PskLookup,
        *,
        allow_null_mac: bool = False,
        initiator_id: IdPayload | None = None,
        compat: Collection[str] = (),
        **options: Unpack[DhResponderKeywords],
    ) -> None:
        super().__init__(**options)
        self._psk = psk
        self.allow_null_mac = allow_null_mac
        self.initiator_id = initiator_id
        self.compat = check_compat(compat, DHHMAC_RESPONDER_COMPAT)
        self._mac: tuple[int, bytes] | None = None
        self._received_id_r: IdPayload | None = None

    def _split_ids(self, msg: Message) -> tuple[IdPayload | None, IdPayload | None]:
        ids = msg.find_all(IdPayload)  # [IDi], IDr: a lone ID is IDr
        if len(ids) >= 2:
            return ids[0], ids[1]
        return None, (ids[0] if ids else None)

    def _authenticate_init(self, msg: Message, id_i: IdPayload | None, id_r: IdPayload | None,
                           now: float) -> dict[str, Any]:
        if id_r is None and COMPAT_INIT_WITHOUT_IDR not in self.compat:
            raise UnsupportedIDError(
                "the I_MESSAGE must carry IDr (RFC 4650 §3); one without is " + compat_hint(COMPAT_INIT_WITHOUT_IDR)
            )
        if id_r is not None and self.id_r is not None and id_r.data != self.id_r.data:
            raise UnsupportedIDError("the I_MESSAGE is addressed to another Responder (IDr)")
        rand_p = msg.find(RandPayload)
        if rand_p is None:
            raise UnspecifiedError("DH-HMAC I_MESSAGE needs RAND (RFC 4650 §3)")
        prf = int(msg.header.prf)
        psk = resolve_psk(self._psk, id_i, id_r)
        keys: dict[int, bytes] = {}

        def key_for(alg: int) -> bytes:
            keys[alg] = auth_key(psk, msg.csb_id, rand_p.rand, alg, prf)
            return keys[alg]

        mac_alg = verify_kemac(msg, key_for, self.allow_null_mac)
        self._mac = (mac_alg, keys[mac_alg])
        self._received_id_r = id_r
        return {"authenticated": mac_alg != MacAlg.NULL, "mac_alg": mac_alg}

    def _response_payloads(self, id_i: IdPayload | None) -> list[Payload]:
        out: list[Payload] = []
        own = self.id_r if self.id_r is not None else self._received_id_r
        if own is not None:
            out.append(own)
        if id_i is None:
            id_i = self.initiator_id
        if id_i is not None:
            out.append(id_i)
        return out

    def _authenticate(self, header: CommonHeader, payloads: list[Payload]) -> bytes:
        if self._mac is None:
            raise StateError("the I_MESSAGE has not been authenticated")
        return mac_message(header, payloads, *self._mac)

    def _error_message(self, exc: MikeyProtocolError, msg: Message, t: TimestampPayload,
                       authenticated: bool) -> bytes:
        """HDR, T, {ERR}, [V]: MACed with auth_key once the I_MESSAGE authenticated (RFC 3830 §5.1.2)."""
        prf = int(msg.header.prf) if msg.header.prf in (0, 1) else 0
        mac = None
        if authenticated and self._mac is not None and self._mac[0] != MacAlg.NULL:
            mac = (self._mac[0], self._mac[1], b"")
        return build_error_message(msg.csb_id, [error_number(exc)], t, prf=prf, mac=mac)

