"""``mikey initiate|respond|complete --mode ticket`` against a real ``mikey kms serve`` (RFC 6043; issue 10).

The KMS is the server process :class:`~mikey.cli.demo_kms.DemoKms` starts (``mikey kms serve
--port 0 --dev-tokens`` on 127.0.0.1); the parties' PSKs are provisioned through its admin route
``ticket-users`` over HTTP.  The Initiator's Ticket Request and the Responder's Ticket Resolve go
to ``POST /keymanagement/mikey/v1`` over HTTP.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mikey.cli import main
from mikey.cli.demo_kms import DemoKms
from mikey.cli.mode_ticket import provision_ticket_user, ticket_policy
from mikey.constants import DataType, ErrorNo
from mikey.errors import KeyMaterialError
from mikey.kms.auth import DevIssuer
from mikey.kms.core import MIKEY_PATH
from mikey.kms.mikey_client import KmsMikeyError, post_mikey
from mikey.kms.ticket_role import TicketKmsRole
from mikey.modes.ticket import TicketInitiator, TicketRequester, TicketResponder
from mikey.wire import ErrorPayload, Message

ALICE, BOB = "sip:alice@example.org", "sip:bob@example.org"
PSK_A, PSK_B = os.urandom(16), os.urandom(16)
PSK_AB = os.urandom(32)  # shared by the KMS server and a second KMS ("kms-b.example.org", §10)
PSK_B2 = os.urandom(16)  # Bob's PSK with kms-b
KMS_B = "kms-b.example.org"


@pytest.fixture(scope="module")
def kms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("kms")
    with DemoKms(data) as server:
        assert server.url is not None
        token = DevIssuer.load_or_create(data).issue("admin", admin=True, now=time.time())
        provision_ticket_user(server.url, token, ALICE, PSK_A, key_id="alice-phone", may_resolve=False)
        provision_ticket_user(server.url, token, BOB, PSK_B, key_id="bob-phone", may_request=False)
        provision_ticket_user(server.url, token, KMS_B, PSK_AB, key_id="kms-b", may_request=False, peer_kms=True)
        yield server.url, data
    assert server.stopped


@pytest.fixture(scope="module")
def kms(kms_server: tuple[str, Path]) -> str:
    return kms_server[0]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def initiate(capsys: pytest.CaptureFixture[str], kms: str, *extra: str, psk: bytes = PSK_A) -> tuple[int, dict[str, Any]]:
    return run(capsys, "initiate", "--mode", "ticket", "--kms", kms, "--psk", psk.hex(), "--psk-id", "alice-phone",
               "--id-i", ALICE, "--to", BOB, "--ssrc", "11223344", "--ssrc", "0", "--show-keys", *extra)


def respond(capsys: pytest.CaptureFixture[str], kms: str, i_message: str, *extra: str,
            psk: bytes = PSK_B) -> tuple[int, dict[str, Any]]:
    return run(capsys, "respond", "--mode", "ticket", "--kms", kms, "--psk", psk.hex(), "--psk-id", "bob-phone",
               "--id-r", BOB, "--imsg", i_message, "--ssrc", "55667788", "--show-keys", *extra)


@pytest.mark.parametrize("flags", ["DEFHNO", "DEFHINO", "DEFGHJNO"], ids=["plain", "forking", "randrr-reuse"])
def test_initiate_respond_complete_through_the_kms_server(capsys: pytest.CaptureFixture[str], kms: str,
                                                          flags: str) -> None:
    code, ini = initiate(capsys, kms, "--flags", flags)
    assert code == 0, ini
    assert ini["awaits_transfer_resp"] is True and ini["crypto_sessions"] == []
    assert set(flags) <= set(ini["ticket_flags"]) and "grant_keys" in ini
    assert Message.decode(bytes.fromhex(ini["i_message"])).data_type == DataType.TRANSFER_INIT
    code, res = respond(capsys, kms, ini["i_message"])
    assert code == 0, res
    assert Message.decode(bytes.fromhex(res["r_message"])).data_type == DataType.TRANSFER_RESP
    code, done = run(capsys, "complete", "--mode", "ticket", "--imsg", ini["i_message"], "--rmsg", res["r_message"],
                     "--grant-keys", ini["grant_keys"], "--show-keys")
    assert code == 0, done
    assert done["authenticated"] and res["authenticated"]
    assert done["csb_id"] == res["csb_id"] == ini["csb_id"]
    assert [cs["ssrc"] for cs in done["crypto_sessions"]] == ["11223344", "55667788"]
    assert done["crypto_sessions"] == res["crypto_sessions"]  # the same SRTP master keys and salts
    assert done["tgk"] == res["tgk"] and len(done["tgk"]) == 32
    # a Responder-side key never appears without --show-keys
    code, quiet = run(capsys, "complete", "--mode", "ticket", "--imsg", ini["i_message"], "--rmsg",
                      res["r_message"], "--grant-keys", ini["grant_keys"])
    assert code == 0 and "tgk" not in quiet and done["tgk"] not in json.dumps(quiet)


def test_a_no_reuse_ticket_resolved_twice_is_refused_with_an_error_message(capsys: pytest.CaptureFixture[str],
                                                                           kms: str) -> None:
    code, ini = initiate(capsys, kms)
    assert code == 0
    assert respond(capsys, kms, ini["i_message"])[0] == 0
    code, again = respond(capsys, kms, ini["i_message"])  # the same device again: a reuse (J = 0, §5.3)
    assert code == 1 and again["ok"] is False
    error = Message.decode(bytes.fromhex(again["r_message"]))  # for the Initiator, with the KMS's Error no
    assert error.data_type == DataType.ERROR
    assert [int(p.error_no) for p in error.find_all(ErrorPayload)] == [ErrorNo.UNSPECIFIED]


def test_wrong_psks_are_refused(capsys: pytest.CaptureFixture[str], kms: str) -> None:
    code, out = initiate(capsys, kms, psk=os.urandom(16))
    assert code != 0 and out["ok"] is False and out["error"]["err_no"] == ErrorNo.AUTH_FAILURE
    code, ini = initiate(capsys, kms)
    code, res = respond(capsys, kms, ini["i_message"], psk=os.urandom(16))
    assert code == 1 and res["error"]["err_no"] == ErrorNo.AUTH_FAILURE
    assert Message.decode(bytes.fromhex(res["r_message"])).data_type == DataType.ERROR
    # complete with the keys of another grant is refused before the response is looked at
    code, other = initiate(capsys, kms)
    code, done = run(capsys, "complete", "--mode", "ticket", "--imsg", ini["i_message"], "--rmsg", ini["i_message"],
                     "--grant-keys", other["grant_keys"])
    assert code == 1 and done["error"]["kind"] == "authentication"


def test_unreachable_kms_and_bad_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = initiate(capsys, "http://127.0.0.1:9")
    assert code != 0 and "cannot reach the KMS" in out["error"]["message"]
    with pytest.raises(KeyMaterialError, match="http"):
        post_mikey("ftp://example.org", b"x")
    code = main(["initiate", "--mode", "ticket", "--kms", "http://127.0.0.1:9", "--psk", PSK_A.hex(), "--id-i",
                 ALICE, "--to", BOB, "--flags", "DEFIHNO".replace("E", "")])  # I without E
    err = capsys.readouterr().err
    assert code == 2 and "I implies E" in err


def test_the_mikey_route_over_http(kms: str) -> None:
    """The server itself: 415 for another media type, a KmsError for a message no role takes."""
    url = kms + "/keymanagement/mikey/v1"
    for headers, body, status in (({"Content-Type": "text/plain"}, bytes(20), 415),
                                  ({"Content-Type": "application/mikey"}, bytes([1, 14]) + bytes(20), 400)):
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == status
        assert info.value.headers["Content-Type"].startswith("application/xml")


# -- Resolve routing between two KMSs (RFC 6043 §10) ---------------------------------------------


def _kms_b(tmp_path: Path, kms: str) -> tuple[Any, Any]:
    """A second KMS (in-process core, its own database and identity) whose peer list names the server."""
    from mikey.kms import generate_community
    from mikey.kms.auth import NoIssuer
    from mikey.kms.core import KmsCore
    from mikey.kms.store import AtRestKey, KmsStore

    store = KmsStore(f"sqlite:///{tmp_path / 'kms-b.sqlite3'}", AtRestKey.generate())
    store.create_community(generate_community(KMS_B))
    store.add_ticket_user(BOB.encode(), PSK_B2, key_id=b"bob-at-b", may_request=False)
    store.add_ticket_user(b"kms.example.org", PSK_AB, key_id=b"kms-b", peer_kms=True, url=kms)
    return store, KmsCore(store, NoIssuer())


def test_a_second_kms_forwards_the_resolve_to_the_issuing_kms_over_http(kms: str, tmp_path: Path) -> None:
    store, core_b = _kms_b(tmp_path, kms)
    try:
        now = time.time()
        req = TicketRequester(PSK_A, ticket_policy([BOB], "DEFHNO", 600, now), id_i=ALICE.encode(),
                              psk_id=b"alice-phone")
        grant = req.receive(post_mikey(kms, req.create_message(now)), now)
        assert grant.policy.kms is not None and grant.policy.kms.data == b"kms.example.org"
        ini = TicketInitiator(grant, id_i=ALICE.encode(), id_r=BOB.encode())
        ti = ini.create_message(now)
        bob = TicketResponder(PSK_B2, id_r=BOB.encode(), psk_id=b"bob-at-b")  # Bob's KMS is kms-b
        step = bob.receive(ti, now)
        assert step.resolve_init is not None
        answer = core_b.handle("POST", MIKEY_PATH, {"Content-Type": "application/mikey"}, step.resolve_init, now)
        assert answer.status == 200, answer.body
        outcome = bob.receive_resolve(answer.body, now)
        result = ini.receive(outcome.response or b"", now)
        assert result.crypto_sessions[0].master_key == outcome.result.crypto_sessions[0].master_key
        # a ticket for someone else: the issuing KMS refuses, kms-b relays its Error no (12)
        req2 = TicketRequester(PSK_A, ticket_policy(["sip:carol@example.org"], "DEFHNO", 600, now),
                               id_i=ALICE.encode(), psk_id=b"alice-phone")
        grant2 = req2.receive(post_mikey(kms, req2.create_message(now)), now)
        ti2 = TicketInitiator(grant2, id_i=ALICE.encode(), id_r=BOB.encode()).create_message(now)
        bob2 = TicketResponder(PSK_B2, id_r=BOB.encode(), psk_id=b"bob-at-b")
        step2 = bob2.receive(ti2, now)
        refused = core_b.handle("POST", MIKEY_PATH, {"Content-Type": "application/mikey"}, step2.resolve_init or b"",
                                now)
        assert refused.status == 400 and refused.content_type == "application/mikey"
        assert [int(p.error_no) for p in Message.decode(refused.body).find_all(ErrorPayload)] == [ErrorNo.UNSPECIFIED]
        # the issuing KMS unreachable: the Responder gets Unspecified error (12), not a hang or a 500
        role = TicketKmsRole.on_store(store, KMS_B.encode())

        def down(url: str, message: bytes) -> bytes:
            raise KmsMikeyError(f"cannot reach the KMS at {url}")

        role._send = down
        bob3 = TicketResponder(PSK_B2, id_r=BOB.encode(), psk_id=b"bob-at-b")
        error = role.handle(bob3.receive(ti, now).resolve_init or b"", now)
        assert error is not None
        assert [int(p.error_no) for p in Message.decode(error).find_all(ErrorPayload)] == [ErrorNo.UNSPECIFIED]
    finally:
        store.close()


def test_kms_ticket_user_add_while_the_server_runs(capsys: pytest.CaptureFixture[str],
                                                   kms_server: tuple[str, Path], tmp_path: Path) -> None:
    url, data = kms_server
    dave, psk = "sip:dave@example.org", os.urandom(16)
    key_file = tmp_path / "dave.psk"
    key_file.write_text(psk.hex() + "\n")
    argv = ["kms", "ticket-user", "add", "--data", str(data), "--identity", dave, "--psk-file", str(key_file),
            "--key-id", "dave-1", "--no-resolve"]
    assert main(argv) == 0
    assert "added sip:dave@example.org (PSK id dave-1)" in capsys.readouterr().out
    assert main(argv) == 1 and "already provisioned" in capsys.readouterr().err
    assert main(["kms", "ticket-user", "list", "--data", str(data)]) == 0
    listing = capsys.readouterr().out
    assert psk.hex() not in listing
    parties = {u["key_id"]: u for u in json.loads(listing)["ticket_users"]}
    assert parties["dave-1"] == {"identity": dave, "key_id": "dave-1", "groups": [], "may_request": True,
                                 "may_resolve": False, "peer_kms": False, "url": None}
    assert parties["kms-b"]["peer_kms"] is True
    # the running server takes Dave's requests at once
    code, out = run(capsys, "initiate", "--mode", "ticket", "--kms", url, "--psk", psk.hex(), "--psk-id", "dave-1",
                    "--id-i", dave, "--to", BOB)
    assert code == 0 and out["initiator_id"] == dave
    assert main(["kms", "ticket-user", "add", "--data", str(data), "--identity", "x", "--psk", "00" * 16,
                 "--url", "http://127.0.0.1:1"]) == 2
    assert "--peer-kms" in capsys.readouterr().err
    assert main(["kms", "ticket-user", "add", "--data", str(data), "--identity", "x", "--psk", "00" * 4]) == 2
    assert "16 to 64 octets" in capsys.readouterr().err


def test_no_transfer_resp_policy_keys_at_once(capsys: pytest.CaptureFixture[str], kms: str) -> None:
    """F = 0 (§6.10): no TRANSFER_RESP; the Initiator's keys come with initiate, complete needs no --rmsg."""
    code, ini = initiate(capsys, kms, "--flags", "DEHNO")
    assert code == 0 and ini["awaits_transfer_resp"] is False and ini["crypto_sessions"]
    code, res = respond(capsys, kms, ini["i_message"])
    assert code == 0 and res["r_message"] is None
    code, done = run(capsys, "complete", "--mode", "ticket", "--imsg", ini["i_message"], "--grant-keys",
                     ini["grant_keys"], "--show-keys")
    assert code == 0
    assert done["crypto_sessions"][0]["srtp_master_key"] == res["crypto_sessions"][0]["srtp_master_key"] == \
        ini["crypto_sessions"][0]["srtp_master_key"]


def test_text_output_hides_the_grant_keys(capsys: pytest.CaptureFixture[str], kms: str) -> None:
    code = main(["initiate", "--mode", "ticket", "--kms", kms, "--psk", PSK_A.hex(), "--psk-id", "alice-phone",
                 "--id-i", ALICE, "--to", BOB])
    out = capsys.readouterr().out
    assert code == 0
    assert "SDP:            a=key-mgmt:mikey " in out and "ticket_flags: " in out
    assert "not shown:      grant_keys (secret; 'complete' needs it: use --show-keys)" in out
    assert main(["initiate", "--mode", "ticket", "--help"]) == 0
    helptext = capsys.readouterr().out
    assert "--mode ticket options" in helptext and "--kms URL" in helptext and "--tgk" not in helptext
