"""The MIKEY-TICKET KMS role on the KMS server (RFC 6043 §4.2.1, §4.2.3, §5.3; issue 10 §9).

Ticket Request and Resolve through :class:`KmsCore` at ``POST /keymanagement/mikey/v1`` with
``application/mikey`` bodies, on the KMS database (SQLite file; PostgreSQL at
``MIKEY_TEST_POSTGRES_URL``, skipped without a server, failing instead when ``CI`` is set): PSKs
and TPKs sealed at rest, resolved no-reuse tickets shared between KMS instances, the refusals
(MIKEY Error messages where RFC 6043 §5.4 says, else KmsError) storing nothing, migration 0003.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from procrace import race

from mikey.constants import DataType, ErrorNo, IDRole, IDType, TSRole, TSType
from mikey.errors import PeerError
from mikey.kms import generate_community
from mikey.kms.auth import BearerAuth, DevIssuer
from mikey.kms.core import MIKEY_PATH, KmsCore, KmsResponse
from mikey.kms.store import AtRestKey, KmsStore, create_at_rest_key_file
from mikey.kms.xml import KMS_XML_NS
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.ticket import (
    TicketGrant,
    TicketInitiator,
    TicketPolicy,
    TicketRequester,
    TicketResponder,
    ticket_flags,
    ticket_id_of,
)
from mikey.wire import ErrorPayload, IdrPayload, Message, TrPayload

NOW = 1_780_000_000.0
KMS_URI = "kms.example.org"
KMS_ID = KMS_URI.encode()
ALICE = b"sip:alice@example.org"
BOB = b"sip:bob@example.org"
PSK_A = bytes(range(16))
PSK_B = bytes(range(16, 32))
PSK_B2 = bytes(range(32, 48))
COMMUNITY = generate_community(KMS_URI)
MIKEY = {"Content-Type": "application/mikey"}


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer.load_or_create(tmp_path_factory.mktemp("dev"))


@pytest.fixture
def key() -> AtRestKey:
    return AtRestKey.generate()


@pytest.fixture
def store(db_url: sa.URL, key: AtRestKey) -> Iterator[KmsStore]:
    with KmsStore(db_url, key) as s:
        s.create_community(COMMUNITY)
        s.add_ticket_user(ALICE, PSK_A, key_id=b"alice", may_resolve=False)
        s.add_ticket_user(BOB, PSK_B, key_id=b"bob-phone", may_request=False)
        s.add_ticket_user(BOB, PSK_B2, key_id=b"bob-laptop", may_request=False)
        yield s


@pytest.fixture
def core(store: KmsStore, issuer: DevIssuer) -> KmsCore:
    return KmsCore(store, BearerAuth(issuer.policy()), KMS_URI)


def post(core: KmsCore, body: bytes, now: float = NOW, headers: dict[str, str] | None = None,
         method: str = "POST", path: str = MIKEY_PATH) -> KmsResponse:
    return core.handle(method, path, MIKEY if headers is None else headers, body, now)


def policy(letters: str = "DEFHNO", responders: tuple[bytes, ...] = (BOB,), lifetime: int = 3600) -> TicketPolicy:
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(NOW) + 2208988800 + lifetime).to_bytes(4, "big"))
    return TicketPolicy(ticket_flags(letters), tuple(IdrPayload(IDRole.RESPONDER, IDType.URI, r) for r in responders),
                        end=end)


def request(core: KmsCore, pol: TicketPolicy, psk: bytes = PSK_A) -> TicketGrant:
    req = TicketRequester(psk, pol, id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice")
    answer = post(core, req.create_message(NOW))
    assert (answer.status, answer.content_type) == (200, "application/mikey"), answer.body
    return req.receive(answer.body, NOW)


def transfer(core: KmsCore, grant: TicketGrant, device: bytes = b"bob-phone", psk: bytes = PSK_B,
             ini: TicketInitiator | None = None) -> tuple[TicketInitiator, KmsResponse, TicketResponder]:
    ini = ini or TicketInitiator(grant, id_i=ALICE, id_r=BOB, crypto_sessions=[CryptoSessionSpec(ssrc=0x1234)])
    ti = ini.transfer_init or ini.create_message(NOW)
    bob = TicketResponder(psk, id_r=BOB, kms_id=KMS_ID, psk_id=device)
    step = bob.receive(ti, NOW)
    assert step.resolve_init is not None
    return ini, post(core, step.resolve_init), bob


def error_nos(r: KmsResponse) -> list[int]:
    assert (r.status, r.content_type) == (400, "application/mikey"), r.body
    msg = Message.decode(r.body)
    assert msg.data_type == DataType.ERROR
    return [int(p.error_no) for p in msg.find_all(ErrorPayload)]


def kms_error(r: KmsResponse, status: int) -> str:
    assert r.status == status, r.body
    root = ET.fromstring(r.body)
    code = root.findtext(f"{{{KMS_XML_NS}}}KmsError/{{{KMS_XML_NS}}}ErrorCode")
    assert code == str(status)
    return root.findtext(f"{{{KMS_XML_NS}}}KmsError/{{{KMS_XML_NS}}}ErrorMsg") or ""


# -- Request, Transfer, Resolve through the core -------------------------------------------------


def test_request_transfer_resolve_through_the_core(core: KmsCore, store: KmsStore) -> None:
    grant = request(core, policy())
    assert grant.kms_id == KMS_ID and grant.policy.initiator is not None and grant.policy.initiator.data == ALICE
    ini, resolved, bob = transfer(core, grant)
    assert resolved.status == 200 and resolved.content_type == "application/mikey"
    outcome = bob.receive_resolve(resolved.body, NOW)
    assert outcome.response is not None
    result = ini.receive(outcome.response, NOW)
    assert result.tgk == outcome.result.tgk == grant.session_keys[0].key
    assert [cs.master_key for cs in result.crypto_sessions] == [cs.master_key for cs in outcome.result.crypto_sessions]
    # J = 0: the resolve is remembered (once, by the device that made it)
    assert [(r[1], r[2]) for r in store.list_ticket_resolutions()] == [(BOB, b"bob-phone")]


def test_a_second_kms_instance_on_the_database_resolves_and_sees_the_reuse(core: KmsCore, store: KmsStore,
                                                                        db_url: sa.URL, key: AtRestKey,
                                                                        issuer: DevIssuer) -> None:
    """The TPK is kept in the database, so another KMS process resolves tickets this one issued;
    the resolved-ticket record is shared, so a replayed resolve there is refused (§5.3)."""
    grant = request(core, policy())
    ini, first, _ = transfer(core, grant)
    assert first.status == 200
    with KmsStore(db_url, key) as other_store:
        other = KmsCore(other_store, BearerAuth(issuer.policy()), KMS_URI)
        # Another TRANSFER_INIT with the same ticket, resolved by the same device at the other instance
        ini2 = TicketInitiator(grant, id_i=ALICE, id_r=BOB)
        _, again, _ = transfer(other, grant, ini=ini2)
        assert error_nos(again) == [ErrorNo.UNSPECIFIED]
        # ... while another device of Bob may resolve it (J = 0 stops reuse by a device, not forking)
        _, laptop, bob2 = transfer(other, grant, device=b"bob-laptop", psk=PSK_B2, ini=ini)
        assert laptop.status == 200
    assert sorted(r[2] for r in store.list_ticket_resolutions()) == [b"bob-laptop", b"bob-phone"]


def test_reusable_tickets_are_not_recorded(core: KmsCore, store: KmsStore) -> None:
    grant = request(core, policy("DEFHJNO"))
    for _ in range(2):
        _, r, _ = transfer(core, grant)
        assert r.status == 200
    assert store.list_ticket_resolutions() == []


def test_secrets_are_sealed_at_rest(core: KmsCore, store: KmsStore, db_url: sa.URL) -> None:
    request(core, policy())
    tpk = store.ticket_tpk(None)
    assert tpk is not None and len(tpk.key) == 32 and "key=" not in repr(tpk)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        raw = b"".join(bytes(v) for row in conn.execute(sa.text(
            "SELECT psk_sealed FROM kms_ticket_credentials UNION ALL SELECT key_sealed FROM kms_ticket_tpks"))
            for v in row)
    engine.dispose()
    for secret in (PSK_A, PSK_B, PSK_B2, tpk.key):
        assert secret not in raw
    record = store.ticket_user(b"alice")
    assert record is not None and record.psk == PSK_A and PSK_A.hex() not in repr(record)


# -- refusals ------------------------------------------------------------------------------------


def test_wrong_psk_is_an_error_message_and_stores_nothing(core: KmsCore, store: KmsStore) -> None:
    req = TicketRequester(PSK_B, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice")
    answer = post(core, req.create_message(NOW))
    assert error_nos(answer) == [ErrorNo.AUTH_FAILURE]
    with pytest.raises(PeerError):
        req.receive(answer.body, NOW)
    assert store.ticket_tpk(None) is None  # nothing was issued, not even the KMS's TPK made


def test_unauthorised_parties_are_refused(core: KmsCore, store: KmsStore) -> None:
    bob_asks = TicketRequester(PSK_B, policy(responders=(ALICE,)), id_i=BOB, kms_id=KMS_ID, psk_id=b"bob-phone")
    assert error_nos(post(core, bob_asks.create_message(NOW))) == [ErrorNo.UNSPECIFIED]  # may not request
    grant = request(core, policy())
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB)
    alice = TicketResponder(PSK_A, id_r=ALICE, kms_id=KMS_ID, psk_id=b"alice")
    step = alice.receive(ini.create_message(NOW), NOW)
    assert step.resolve_init is not None
    assert error_nos(post(core, step.resolve_init)) == [ErrorNo.UNSPECIFIED]  # not a responder, may not resolve
    assert store.list_ticket_resolutions() == []


def test_expired_ticket_and_replayed_resolve(core: KmsCore, store: KmsStore) -> None:
    grant = request(core, policy(lifetime=60))
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB)
    ti = ini.create_message(NOW)
    late = NOW + 60 + 3600
    bob = TicketResponder(PSK_B, id_r=BOB, kms_id=KMS_ID, psk_id=b"bob-phone")
    # the Responder itself refuses a ticket out of its validity: build the RESOLVE_INIT before
    step = bob.receive(ti, NOW)
    assert step.resolve_init is not None
    bob_late = TicketResponder(PSK_B, id_r=BOB, kms_id=KMS_ID, psk_id=b"bob-phone")
    bob_late._pending = bob._pending
    late_resolve = bob_late._resolve_init(grant.ticket, late)
    ok = post(core, step.resolve_init)
    assert ok.status == 200
    replay = post(core, step.resolve_init)
    assert "discarded" in kms_error(replay, 400)
    assert error_nos(post(core, late_resolve, now=late)) == [ErrorNo.INVALID_TS]
    assert len(store.list_ticket_resolutions()) == 1


def test_http_level_refusals_are_kms_errors(core: KmsCore) -> None:
    req = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice")
    message = req.create_message(NOW)
    assert "Content-Type" in kms_error(post(core, message, headers={"Content-Type": "application/xml"}), 415)
    kms_error(post(core, message, headers={}), 415)
    kms_error(post(core, message, method="GET"), 405)
    kms_error(post(core, b"\x01\x0b\x00"), 400)
    kms_error(post(core, b"\x00" * 70_000), 413)
    assert "data type 0" in kms_error(post(core, bytes(10)), 400)
    assert "data type 14" in kms_error(post(core, bytes([1, 14]) + bytes(20)), 400)  # TRANSFER_INIT: not the KMS's
    # the trailing slash is the same route
    assert post(core, message, path=MIKEY_PATH + "/").status == 200


@pytest.mark.parametrize("cut", [11, 30, 60, -5, -1])
def test_malformed_messages_give_an_answer_never_a_traceback(core: KmsCore, store: KmsStore, cut: int) -> None:
    req = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice")
    message = req.create_message(NOW)
    answer = post(core, message[:cut])
    assert answer.status == 400
    flipped = bytearray(message)
    flipped[cut] ^= 0x40
    assert post(core, bytes(flipped)).status == 400
    assert store.ticket_tpk(None) is None


# -- admin provisioning --------------------------------------------------------------------------


def test_admin_route_provisions_ticket_users(core: KmsCore, store: KmsStore, issuer: DevIssuer) -> None:
    admin = {"Authorization": f"Bearer {issuer.issue('admin', now=NOW, admin=True)}",
             "Content-Type": "application/json"}
    path = "/keymanagement/identity/v1/admin/ticket-users"
    body = json.dumps({"identity": "sip:carol@example.org", "psk": "ab" * 16, "key_id": "carol-1",
                       "groups": ["sip:support@example.org"], "may_request": False}).encode()
    added = core.handle("POST", path, admin, body, NOW)
    assert added.status == 201, added.body
    shown = json.loads(added.body)
    assert shown == {"identity": "sip:carol@example.org", "key_id": "carol-1", "groups": ["sip:support@example.org"],
                     "may_request": False, "may_resolve": True, "peer_kms": False, "url": None, "created_at": NOW}
    assert core.handle("POST", path, admin, body, NOW).status == 409
    listing = core.handle("GET", path, admin, b"", NOW)
    assert "ab" * 16 not in listing.body.decode()
    assert [u["key_id"] for u in json.loads(listing.body)["ticket_users"]] == ["alice", "bob-laptop", "bob-phone",
                                                                                "carol-1"]
    record = store.ticket_user(b"carol-1")
    assert record is not None and record.psk == bytes.fromhex("ab" * 16)
    assert record.groups == (b"sip:support@example.org",)
    for bad in ({"identity": "sip:x@example.org", "psk": "ab"}, {"identity": "", "psk": "ab" * 16},
                {"identity": "sip:x@example.org", "psk": "ab" * 16, "may_resolve": "yes"},
                {"identity": "sip:x@example.org", "psk": "ab" * 16, "extra": 1}):
        assert core.handle("POST", path, admin, json.dumps(bad).encode(), NOW).status == 400
    peer = json.dumps({"identity": "kms-b.example.org", "psk": "cd" * 32, "key_id": "kms-b", "peer_kms": True,
                       "url": "https://kms-b.example.org:8443", "may_request": False}).encode()
    shown = json.loads(core.handle("POST", path, admin, peer, NOW).body)
    assert (shown["peer_kms"], shown["url"]) == (True, "https://kms-b.example.org:8443")
    found = store.ticket_peer(b"kms-b.example.org")
    assert found is not None and found.psk == bytes.fromhex("cd" * 32) and found.url == shown["url"]
    assert store.ticket_peer(b"sip:carol@example.org") is None  # a party, not a peer KMS
    for bad_peer in ({"identity": "kms-c.example.org", "psk": "cd" * 16, "url": "https://c.example.org"},  # no peer_kms
                     {"identity": "kms-c.example.org", "psk": "cd" * 16, "peer_kms": True, "url": "ftp://c"},
                     {"identity": "kms-c.example.org", "psk": "cd" * 16, "peer_kms": "yes"}):
        assert core.handle("POST", path, admin, json.dumps(bad_peer).encode(), NOW).status == 400
    user = {"Authorization": f"Bearer {issuer.issue('sip:alice@example.org', now=NOW)}"}
    assert core.handle("POST", path, user, body, NOW).status == 403
    assert [a.action for a in store.list_audit(action="ticket-user-add")] == ["ticket-user-add"] * 5


# -- the store: concurrency and migrations -------------------------------------------------------


def _resolver(url: str, key_file: str, device: bytes, use_id: bytes, tickets: list[bytes], start: Any,
              out: Any) -> None:
    try:
        with KmsStore(url, AtRestKey.load(key_file)) as s:
            start.wait(10)
            won = [s.record_ticket_resolution(t, use_id=use_id, device=device, resolver=BOB, expires=NOW + 60,
                                              now=NOW) is None for t in tickets]
        out.put(("ok", won))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.parametrize("what", ["same-device", "other-transfer"])
def test_two_processes_resolving_one_no_reuse_ticket_exactly_one_succeeds(db_url: sa.URL, tmp_path: Path,
                                                                          what: str) -> None:
    """Same device twice, or two devices with different TRANSFER_INITs (Vi): of each pair one wins (§5.3)."""
    key_file = tmp_path / "at-rest.key"
    with KmsStore(db_url, create_at_rest_key_file(key_file)) as s:
        tickets = [os.urandom(32) for _ in range(40)]
        ctx = multiprocessing.get_context("fork")
        start, out = ctx.Barrier(2), ctx.Queue()
        url = db_url.render_as_string(hide_password=False)
        if what == "same-device":
            args = [(b"bob-phone", b""), (b"bob-phone", b"")]
        else:
            args = [(b"bob-phone", b"vi-1" * 5), (b"bob-laptop", b"vi-2" * 5)]
        procs = [ctx.Process(target=_resolver, args=(url, str(key_file), d, u, tickets, start, out)) for d, u in args]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(10)
        assert [r[0] for r in results] == ["ok", "ok"], results
        for i, ticket in enumerate(tickets):
            assert sorted(r[1][i] for r in results) == [False, True]
            assert len(s.list_ticket_resolutions(ticket)) == 1


def test_forked_devices_with_the_same_transfer_are_all_recorded(store: KmsStore) -> None:
    t = os.urandom(32)
    for device in (b"a", b"b", b"c"):
        assert store.record_ticket_resolution(t, use_id=b"vi" * 10, device=device, resolver=BOB, expires=NOW + 5,
                                              now=NOW) is None
    assert "another Ticket Transfer" in (store.record_ticket_resolution(
        t, use_id=b"xx" * 10, device=b"d", resolver=BOB, expires=NOW + 5, now=NOW) or "")
    assert "already resolved" in (store.record_ticket_resolution(
        t, use_id=b"vi" * 10, device=b"a", resolver=BOB, expires=NOW + 5, now=NOW) or "")
    # records end with the ticket's validity: later, the same device is a new use
    assert store.record_ticket_resolution(t, use_id=b"xx" * 10, device=b"a", resolver=BOB, expires=NOW + 100,
                                          now=NOW + 10) is None
    assert [r[2] for r in store.list_ticket_resolutions(t)] == [b"a"]


def test_upgrade_from_0002_keeps_the_data_and_adds_the_ticket_tables(db_url: sa.URL, key: AtRestKey) -> None:
    old = KmsStore(db_url, key, migrate=False)
    old.upgrade("0002")
    assert old.schema_revision() == "0002"
    old.create_community(COMMUNITY)
    old.add_user("sip:alice@example.org", integrity_key=b"k" * 16)
    old.close()
    with KmsStore(db_url, key) as s:
        assert s.schema_revision() == "0005"
        assert s.load_community().public == COMMUNITY.public
        assert s.integrity_key("sip:alice@example.org") == b"k" * 16
        assert s.add_ticket_user(ALICE, PSK_A)
        assert not s.add_ticket_user(ALICE, PSK_B)  # same (implicit) key id
        record = s.ticket_user(ALICE)
        assert record is not None and record.psk == PSK_A
        from alembic import command
        from alembic.config import Config

        from mikey.kms.store import _MIGRATIONS

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with s._engine.connect() as conn, conn.execution_options(mikey_write_lock=True).begin():
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")  # and back down: the ticket tables go, the rest stays
        assert s.schema_revision() == "0002"
        assert "kms_ticket_credentials" not in sa.inspect(s._engine).get_table_names()
        assert s.integrity_key("sip:alice@example.org") == b"k" * 16
        s.upgrade()
        assert s.schema_revision() == "0005" and s.ticket_user(ALICE) is None


def test_a_moved_psk_ciphertext_does_not_open(store: KmsStore) -> None:
    """The sealed PSK is bound to its key id: copied to another row, it fails clearly."""
    with store._engine.begin() as conn:
        conn.execute(sa.text("UPDATE kms_ticket_credentials SET psk_sealed = (SELECT psk_sealed FROM "
                             "kms_ticket_credentials WHERE key_id = :src) WHERE key_id = :dst"),
                     {"src": b"alice", "dst": b"bob-phone"})
    from mikey.errors import KmsStoreError

    with pytest.raises(KmsStoreError, match="cannot decrypt"):
        store.ticket_user(b"bob-phone")


def test_ticket_ids_are_what_the_store_keeps(core: KmsCore, store: KmsStore) -> None:
    grant = request(core, policy())
    transfer(core, grant)
    [(tid, _, _, at)] = store.list_ticket_resolutions()
    assert tid == ticket_id_of(grant.ticket) and at == NOW



def test_pk_variants_through_the_core_with_kms_certificates(store: KmsStore, issuer: DevIssuer) -> None:
    """REQUEST_INIT_PK / RESOLVE_INIT_PK (§4.2.1, §4.2.3): signed by the parties' certificates, rights from the
    database; a core without KMS certificates refuses them with Error no 11."""
    from pki import NOW as PKI_NOW
    from pki import make_ca, make_leaf

    from mikey.crypto.x509 import CertificateValidator
    from mikey.keystore import Credentials
    from mikey.kms.ticket_role import TicketKmsRole
    from mikey.modes.ticket import TicketPkSigner

    now = PKI_NOW.timestamp()
    ca = make_ca("KMS Ticket PK Root")
    alice_c = make_leaf(ca, "kms-alice", san_uris=[ALICE.decode()])
    bob_c = make_leaf(ca, "kms-bob", san_uris=[BOB.decode()])
    kms_c = make_leaf(ca, "kms", san_dns=[KMS_URI])
    role = TicketKmsRole.on_store(store, KMS_ID, pk_credentials=[Credentials(kms_c.key, kms_c.cert)],
                                  validator=CertificateValidator([ca.cert]))
    core = KmsCore(store, BearerAuth(issuer.policy()), KMS_URI, mikey_roles=[role])
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(now) + 2208988800 + 600).to_bytes(4, "big"))
    pol = TicketPolicy(ticket_flags("DEFHNO"), (IdrPayload(IDRole.RESPONDER, IDType.URI, BOB),), end=end)
    req = TicketRequester(None, pol, pk=TicketPkSigner(Credentials(alice_c.key, alice_c.cert), kms_c.cert), id_i=ALICE,
                          kms_id=KMS_ID)
    answer = post(core, req.create_message(now), now=now)
    assert answer.status == 200, answer.body
    grant = req.receive(answer.body, now)
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB)
    bob = TicketResponder(pk=TicketPkSigner(Credentials(bob_c.key, bob_c.cert), kms_c.cert), id_r=BOB, kms_id=KMS_ID)
    step = bob.receive(ini.create_message(now), now)
    assert step.resolve_init is not None and Message.decode(step.resolve_init).data_type == DataType.RESOLVE_INIT_PK
    resolved = post(core, step.resolve_init, now=now)
    assert resolved.status == 200, resolved.body
    outcome = bob.receive_resolve(resolved.body, now)
    assert ini.receive(outcome.response or b"", now).tgk == outcome.result.tgk
    # the device of a PK resolve is its certificate
    [(_, resolver, device, _)] = store.list_ticket_resolutions()
    assert resolver == BOB and device.startswith(b"cert:")
    plain = KmsCore(store, BearerAuth(issuer.policy()), KMS_URI)  # no KMS certificate
    again = TicketRequester(None, pol, pk=TicketPkSigner(Credentials(alice_c.key, alice_c.cert), kms_c.cert),
                            id_i=ALICE, kms_id=KMS_ID)
    assert error_nos(post(plain, again.create_message(now), now=now)) == [ErrorNo.INVALID_DT]


def test_mutated_messages_are_refused_and_store_nothing(core: KmsCore, store: KmsStore) -> None:
    """Random byte flips, cuts and insertions in REQUEST_INIT and RESOLVE_INIT: every answer is a 400 (an Error
    message or a KmsError), never a 200 or a 500, and no resolve is recorded."""
    import random

    rng = random.Random(6043)
    grant = request(core, policy())
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB)
    ti = ini.create_message(NOW)
    for n in range(60):
        req = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice")
        bob = TicketResponder(PSK_B, id_r=BOB, kms_id=KMS_ID, psk_id=b"bob-phone")
        for good in (req.create_message(NOW), bob.receive(ti, NOW).resolve_init or b""):
            bad = bytearray(good)
            kind = n % 3
            at = rng.randrange(2, len(bad))  # keep version and data type: the role is reached
            if kind == 0:
                bad[at] ^= 1 << rng.randrange(8)
            elif kind == 1:
                del bad[at:]
            else:
                bad[at:at] = rng.randbytes(rng.randrange(1, 8))
            answer = post(core, bytes(bad))
            assert answer.status == 400, (n, answer.status, answer.body[:200])
    assert store.list_ticket_resolutions() == []


def test_a_database_failure_is_a_500_kms_error_not_an_error_message(core: KmsCore, store: KmsStore,
                                                                     db_url: sa.URL) -> None:
    """The failure is the KMS's, not the sender's: 500 KmsError, no MIKEY Error message; the core keeps serving."""
    grant = request(core, policy())
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE kms_ticket_resolutions"))
    engine.dispose()
    _, failed, _ = transfer(core, grant)
    assert failed.content_type.startswith("application/xml")
    assert "could not answer" in kms_error(failed, 500)
    assert request(core, policy()).policy.initiator is not None  # Requests still served


def _first_tpk(url: str, key_file: str, start: Any, out: Any) -> None:
    try:
        from mikey.kms.ticket_role import DatabaseTicketStore

        with KmsStore(url, AtRestKey.load(key_file)) as s:
            start.wait(10)
            tpk = DatabaseTicketStore(s).default_tpk()
        out.put(("ok", tpk.key_id.hex(), tpk.key.hex()))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}", ""))


def test_processes_starting_together_share_one_kms_tpk(db_url: sa.URL, tmp_path: Path) -> None:
    """Several KMS processes' first Ticket Requests at once: the database keeps one default TPK for all."""
    key_file = tmp_path / "at-rest.key"
    with KmsStore(db_url, create_at_rest_key_file(key_file)) as s:
        url = db_url.render_as_string(hide_password=False)
        results = race(_first_tpk, (url, str(key_file)), 3)
        assert [r[0] for r in results] == ["ok"] * 3, results
        assert len({r[1:] for r in results}) == 1
        stored = s.ticket_tpk(None)
        assert stored is not None and (stored.key_id.hex(), stored.key.hex()) == results[0][1:]
