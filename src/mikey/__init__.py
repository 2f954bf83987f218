"""mikey: MIKEY (Multimedia Internet KEYing, RFC 3830 and extensions) for Python.

The package is layered, each layer importing only from those below it:
:mod:`mikey.wire` (bytes <-> payloads) beside :mod:`mikey.crypto` (PRF, KEMAC,
RSA, DH, ECCSI, SAKKE); :mod:`mikey.keystore` and :mod:`mikey.replay` (what the
modes are handed); :mod:`mikey.modes` (one Initiator and Responder per
key-exchange method, sans-I/O); and the edges (:mod:`mikey.session`,
:mod:`mikey.srtp`, :mod:`mikey.sdp`, :mod:`mikey.rtsp`, :mod:`mikey.offer_answer`,
:mod:`mikey.kms`, the CLI).

The names below are the curated public API.  Those in ``_LAZY`` load on first
use, so ``import mikey`` stays cheap; each is also imported under
``TYPE_CHECKING`` for type checkers, and ``__all__`` lists them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .constants import DataType, PayloadType
from .errors import (
    AuthenticationError,
    CertificateError,
    InvalidTimestampError,
    MikeyDecodeError,
    MikeyError,
    MikeyProtocolError,
    MikeyValidationError,
    PeerError,
    ReplayError,
)
from .wire import Message

__version__ = "0.1.0"

#: Public name -> module it lives in.
_LAZY: dict[str, str] = {
    # modes
    "PskInitiator": "mikey.modes.psk",
    "PskResponder": "mikey.modes.psk",
    "PkInitiator": "mikey.modes.pk",
    "PkResponder": "mikey.modes.pk",
    "EnvelopeKeyCache": "mikey.modes.pk",
    "DhInitiator": "mikey.modes.dh",
    "DhResponder": "mikey.modes.dh",
    "DhHmacInitiator": "mikey.modes.dhhmac",
    "DhHmacResponder": "mikey.modes.dhhmac",
    "RsaRInitiator": "mikey.modes.rsa_r",
    "RsaRResponder": "mikey.modes.rsa_r",
    "SakkeInitiator": "mikey.modes.sakke",
    "SakkeResponder": "mikey.modes.sakke",
    "CryptoSessionSpec": "mikey.modes.results",
    "CryptoSessionKeys": "mikey.modes.results",
    "ExchangeResult": "mikey.modes.results",
    "ResponderOutcome": "mikey.modes.results",
    "ResponderFactory": "mikey.modes.base",
    "default_srtp_policy": "mikey.modes.base",
    # edges
    "ReplayCache": "mikey.replay",
    "ReplayStore": "mikey.replay",
    "CryptoSessionBundle": "mikey.session",
    "SrtpContext": "mikey.srtp",
    "SrtpPolicyParams": "mikey.srtp",
    "make_offer": "mikey.offer_answer",
    "take_offer": "mikey.offer_answer",
    "make_answer": "mikey.offer_answer",
    "take_answer": "mikey.offer_answer",
    "Credentials": "mikey.keystore",
    "TrustStore": "mikey.keystore",
    "SakkeKeystore": "mikey.keystore",
    "load_credentials": "mikey.keystore",
    "load_certificates": "mikey.keystore",
    "load_private_key": "mikey.keystore",
    "validate": "mikey.wire.validate",
    "lint": "mikey.wire.validate",
    "LintWarning": "mikey.wire.validate",
}

__all__ = [
    "__version__",
    "Message",
    "DataType",
    "PayloadType",
    "MikeyError",
    "MikeyDecodeError",
    "MikeyValidationError",
    "MikeyProtocolError",
    "AuthenticationError",
    "InvalidTimestampError",
    "ReplayError",
    "CertificateError",
    "PeerError",
    "PskInitiator",
    "PskResponder",
    "PkInitiator",
    "PkResponder",
    "EnvelopeKeyCache",
    "DhInitiator",
    "DhResponder",
    "DhHmacInitiator",
    "DhHmacResponder",
    "RsaRInitiator",
    "RsaRResponder",
    "SakkeInitiator",
    "SakkeResponder",
    "CryptoSessionSpec",
    "CryptoSessionKeys",
    "ExchangeResult",
    "ResponderOutcome",
    "ResponderFactory",
    "default_srtp_policy",
    "ReplayCache",
    "ReplayStore",
    "CryptoSessionBundle",
    "SrtpContext",
    "SrtpPolicyParams",
    "make_offer",
    "take_offer",
    "make_answer",
    "take_answer",
    "Credentials",
    "TrustStore",
    "SakkeKeystore",
    "load_credentials",
    "load_certificates",
    "load_private_key",
    "validate",
    "lint",
    "LintWarning",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mikey' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .keystore import (
        Credentials,
        SakkeKeystore,
        TrustStore,
        load_certificates,
        load_credentials,
        load_private_key,
    )
    from .modes.base import ResponderFactory, default_srtp_policy
    from .modes.dh import DhInitiator, DhResponder
    from .modes.dhhmac import DhHmacInitiator, DhHmacResponder
    from .modes.pk import EnvelopeKeyCache, PkInitiator, PkResponder
    from .modes.psk import PskInitiator, PskResponder
    from .modes.results import CryptoSessionKeys, CryptoSessionSpec, ExchangeResult, ResponderOutcome
    from .modes.rsa_r import RsaRInitiator, RsaRResponder
    from .modes.sakke import SakkeInitiator, SakkeResponder
    from .offer_answer import make_answer, make_offer, take_answer, take_offer
    from .replay import ReplayCache, ReplayStore
    from .session import CryptoSessionBundle
    from .srtp import SrtpContext, SrtpPolicyParams
    from .wire.validate import LintWarning, lint, validate
