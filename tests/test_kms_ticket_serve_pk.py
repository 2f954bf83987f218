"""MIKEY-TICKET's PK variants through a real ``mikey kms serve --ticket-cert/--ticket-key/--ticket-ca``.

REQUEST_INIT_PK and RESOLVE_INIT_PK (RFC 6043 §4.2.1.3, §4.2.3.3) are signed with the parties'
certificates and the envelope key is encrypted to the KMS's; without the flags the server answers
them with Error no 11 (RFC 6043 §5.4).
"""

from __future__ import annotations

import datetime as dt
import pathlib
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from pki import Issued, make_ca, make_leaf
from test_kms_http import Kms, mikey

from mikey.constants import IDRole, IDType
from mikey.errors import PeerError
from mikey.keystore import Credentials
from mikey.kms.mikey_client import post_mikey
from mikey.modes.ticket import (
    TicketInitiator,
    TicketPkSigner,
    TicketPolicy,
    TicketRequester,
    TicketResponder,
    ticket_flags,
)
from mikey.wire import IdrPayload

KMS_URI = "kms.example.org"
ALICE = b"sip:alice@example.org"
BOB = b"sip:bob@example.org"


def _pem(path: pathlib.Path, issued: Issued, *, key: bool = False) -> str:
    if key:
        path.write_bytes(issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    else:
        path.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


@pytest.fixture(scope="module")
def pki() -> dict[str, Issued]:
    now = dt.datetime.now(dt.UTC)
    span = {"not_before": now - dt.timedelta(days=1), "not_after": now + dt.timedelta(days=30)}
    ca = make_ca("Ticket serve PK Root", **span)
    return {"ca": ca,
            "alice": make_leaf(ca, "serve-alice", san_uris=[ALICE.decode()], **span),
            "bob": make_leaf(ca, "serve-bob", san_uris=[BOB.decode()], **span),
            "kms": make_leaf(ca, "serve-kms", san_dns=[KMS_URI], **span)}


@pytest.fixture
def served(tmp_path: pathlib.Path, pki: dict[str, Issued]) -> Iterator[Kms]:
    server = Kms(tmp_path, tmp_path / "kms", "--dev-tokens", "--kms-uri", KMS_URI,
                 "--ticket-cert", _pem(tmp_path / "kms.pem", pki["kms"]),
                 "--ticket-key", _pem(tmp_path / "kms.key", pki["kms"], key=True),
                 "--ticket-ca", _pem(tmp_path / "ca.pem", pki["ca"]))
    try:
        for who, key_id in ((ALICE, "alice"), (BOB, "bob-phone")):  # the parties' rights are their identity's rows
            r = mikey("kms", "ticket-user", "add", "--data", str(server.data), "--identity", who.decode(),
                      "--psk", bytes(16).hex(), "--key-id", key_id)
            assert r.returncode == 0, r.stderr
        yield server
    finally:
        server.stop()


def test_pk_request_and_resolve_over_http(served: Kms, pki: dict[str, Issued]) -> None:
    now = time.time()
    kms_cert = pki["kms"].cert
    pol = TicketPolicy(ticket_flags("DEFHNO"), (IdrPayload(IDRole.RESPONDER, IDType.URI, BOB),))
    alice = TicketPkSigner(Credentials(pki["alice"].key, pki["alice"].cert), kms_cert)
    req = TicketRequester(None, pol, pk=alice, id_i=ALICE, kms_id=KMS_URI.encode())
    grant = req.receive(post_mikey(served.url, req.create_message(now)), now)
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB)
    bob = TicketResponder(pk=TicketPkSigner(Credentials(pki["bob"].key, pki["bob"].cert), kms_cert), id_r=BOB,
                          kms_id=KMS_URI.encode())
    step = bob.receive(ini.create_message(now), now)
    assert step.resolve_init is not None
    outcome = bob.receive_resolve(post_mikey(served.url, step.resolve_init), now)
    assert ini.receive(outcome.response or b"", now).tgk == outcome.result.tgk


def test_without_the_flags_pk_requests_get_error_11(tmp_path: pathlib.Path, pki: dict[str, Issued]) -> None:
    server = Kms(tmp_path, tmp_path / "kms", "--dev-tokens", "--kms-uri", KMS_URI)
    try:
        assert mikey("kms", "ticket-user", "add", "--data", str(server.data), "--identity", ALICE.decode(),
                     "--psk", bytes(16).hex(), "--key-id", "alice").returncode == 0
        now = time.time()
        pol = TicketPolicy(ticket_flags("DEFHNO"), (IdrPayload(IDRole.RESPONDER, IDType.URI, BOB),))
        signer = TicketPkSigner(Credentials(pki["alice"].key, pki["alice"].cert), pki["kms"].cert)
        req = TicketRequester(None, pol, pk=signer, id_i=ALICE, kms_id=KMS_URI.encode())
        with pytest.raises(PeerError) as refused:
            req.receive(post_mikey(server.url, req.create_message(now)), now)
        assert refused.value.err_nos == [11]
    finally:
        server.stop()


def test_the_flags_go_together(tmp_path: pathlib.Path, pki: dict[str, Issued]) -> None:
    r = mikey("kms", "serve", "--data", str(tmp_path / "kms"), "--port", "0", "--dev-tokens",
              "--ticket-cert", _pem(tmp_path / "kms.pem", pki["kms"]))
    assert r.returncode == 2 and "--ticket-ca go together" in r.stderr and r.stdout == ""
