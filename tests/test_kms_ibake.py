"""MIKEY-IBAKE key requests (RFC 6267 §4.2.1) served by ``mikey kms serve`` (``IbakeKmsRole``).

Users are the MIKEY-TICKET parties (``kms ticket-user add``: one PSK per party); ``kms ibake-params``
writes the public parameters, ``kms ibake-fetch`` gets the K_PRs over HTTP, and the keys drive the
four-message ``--mode ibake`` exchange.  The master secret is stored sealed (migration 0005), made
once even when processes race.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from procrace import race
from test_kms_http import Kms, mikey

from mikey.constants import DataType
from mikey.crypto import ibe
from mikey.kms.ibake_role import IbakeKmsRole, ibake_master
from mikey.kms.store import AtRestKey, KmsStore, create_at_rest_key_file
from mikey.modes.ibake_keys import IbakeKeyRequest
from mikey.wire import ErrorPayload, Message

ALICE = "sip:alice@x.example"
BOB = "sip:bob@x.example"


def _exchange(tmp: Path, alice_keys: Path, bob_keys: Path, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The four CLI steps of tests/test_cli_ibake.py (I1, R1, I2, R2): both ends' JSON."""
    a_state, b_state = str(tmp / "a.state"), str(tmp / "b.state")

    def step(*argv: str) -> dict[str, Any]:
        r = mikey(*argv, "--json", "--show-keys")
        assert r.returncode == 0, r.stderr
        out: dict[str, Any] = json.loads(r.stdout)
        return out

    a = ["--mode", "ibake", "--keys", str(alice_keys), "--state", a_state]
    b = ["--mode", "ibake", "--keys", str(bob_keys), "--state", b_state]
    i1 = step("initiate", *a, "--to", BOB, "--now", str(now))
    r1 = step("respond", *b, "--imsg", i1["i_message"], "--now", str(now))
    i2 = step("initiate", *a, "--rmsg", r1["r_message"], "--now", str(now + 1))
    r2 = step("respond", *b, "--imsg", i2["i_message"], "--now", str(now + 1))
    done = step("complete", *a, "--imsg", i1["i_message"], "--rmsg", r2["r_message"], "--now", str(now + 2))
    return r2, done


def test_fetch_over_http_then_exchange(tmp_path: Path) -> None:
    data = tmp_path / "kms"
    kms = Kms(tmp_path, data)
    try:
        psks = {ALICE: "a1" * 32, BOB: "b2" * 32}
        for uri, psk in psks.items():
            (tmp_path / f"{uri[4:9]}.psk").write_text(psk + "\n")
            added = mikey("kms", "ticket-user", "add", "--data", str(data), "--identity", uri,
                          "--psk-file", str(tmp_path / f"{uri[4:9]}.psk"))
            assert added.returncode == 0, added.stderr
        params = tmp_path / "params.json"
        r = mikey("kms", "ibake-params", "--data", str(data), "--out", str(params), "--json")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        public = json.loads(params.read_text())
        assert "master_secret" not in public and public["key_period"] == "YYYY-MM"
        assert info["kms_id"] == public["kms_id"] and info["q_bits"] == 224 and info["p_bits"] == 1024
        now = int(time.time())
        out = {}
        for uri in (ALICE, BOB):
            out[uri] = tmp_path / f"{uri[4:9]}.keys.json"
            r = mikey("kms", "ibake-fetch", "--kms", kms.url, "--uri", uri, "--psk-file",
                      str(tmp_path / f"{uri[4:9]}.psk"), "--params", str(params), "--out", str(out[uri]),
                      "--now", str(now), "--json")
            assert r.returncode == 0, r.stderr + kms.log()
            got = json.loads(r.stdout)
            month = time.strftime("%Y-%m", time.gmtime(now))
            assert got["periods"][0] == uri + month and len(got["periods"]) == 2
            assert stat.S_IMODE(out[uri].stat().st_mode) == 0o600
            doc = json.loads(out[uri].read_text())
            assert doc["uri"] == uri and doc["params"] == public["params"] and doc["kms_id"] == public["kms_id"]
        # the same params again: the master was made once (ibake-params before, the server after)
        again = tmp_path / "params2.json"
        assert mikey("kms", "ibake-params", "--data", str(data), "--out", str(again)).returncode == 0
        assert json.loads(again.read_text())["params"] == public["params"]

        r2, done = _exchange(tmp_path, out[ALICE], out[BOB], now)
        keys = [(cs["srtp_master_key"], cs["srtp_master_salt"]) for cs in done["crypto_sessions"]]
        assert keys and keys == [(cs["srtp_master_key"], cs["srtp_master_salt"]) for cs in r2["crypto_sessions"]]
        assert len(bytes.fromhex(keys[0][0])) >= 16

        # a wrong PSK: Error message (Auth failure), exit 1, one line, nothing written
        (tmp_path / "wrong.psk").write_text("c3" * 32)
        bad = tmp_path / "bad.keys.json"
        r = mikey("kms", "ibake-fetch", "--kms", kms.url, "--uri", ALICE, "--psk-file", str(tmp_path / "wrong.psk"),
                  "--params", str(params), "--out", str(bad))
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stdout == ""
        assert r.stderr.endswith("Error message: 0\n") and not bad.exists()  # Auth failure (RFC 3830 §6.12)
        # an unknown user: the same Error
        r = mikey("kms", "ibake-fetch", "--kms", kms.url, "--uri", "sip:mallory@x.example", "--psk-file",
                  str(tmp_path / "wrong.psk"), "--params", str(params), "--out", str(bad))
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and not bad.exists()
        # alice's PSK cannot fetch bob's keys (authorisation: own identity only)
        r = mikey("kms", "ibake-fetch", "--kms", kms.url, "--uri", BOB, "--psk-id", ALICE, "--psk-file",
                  str(tmp_path / "alice.psk"), "--params", str(params), "--out", str(bad))
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and not bad.exists()
        assert kms.proc.poll() is None
    finally:
        kms.stop()


def test_master_is_stored_sealed_and_survives_reopen(db_url: sa.URL) -> None:
    key = AtRestKey.generate()
    with KmsStore(db_url, key) as s:
        assert s.ibake_master() is None
        master, period = ibake_master(s, security=1024)
        assert period is ibe.KeyPeriod.MONTH
        with s._engine.connect() as conn:
            row = conn.execute(sa.text("SELECT params, master_sealed FROM kms_ibake_master")).one()
        assert bytes(row.params) == master.params.encode()
        assert master.encode() not in bytes(row.master_sealed)
        record = s.ibake_master()
        assert record is not None and "master" not in repr(record).replace("IbakeMasterRecord", "")
    with KmsStore(db_url, key) as s:
        again, _ = ibake_master(s, security=1024)
        assert again.encode() == master.encode()
        role = IbakeKmsRole(s, b"kms.example")
        assert role.data_types == frozenset({19, 20})
        assert role.kms().params.encode() == master.params.encode()
        # REQUEST_KEY_PKE is not configured on the server: Error no 11 (RFC 3830 §6.12)
        now = time.time()
        req = IbakeKeyRequest(b"k" * 32, [ALICE.encode()], b"kms.example", master.params).create_message(now)
        answer = role.handle(req[:1] + bytes([DataType.REQUEST_KEY_PKE]) + req[2:], now)
        assert answer is not None
        msg = Message.decode(answer)
        assert msg.data_type == DataType.ERROR and [e.error_no for e in msg.find_all(ErrorPayload)] == [11]
        # an unknown user's REQUEST_KEY_PSK: Auth failure (0)
        answer = role.handle(IbakeKeyRequest(b"k" * 32, [ALICE.encode()], b"kms.example",
                                             master.params).create_message(now), now)
        assert answer is not None
        assert [e.error_no for e in Message.decode(answer).find_all(ErrorPayload)] == [0]
    with KmsStore(db_url, AtRestKey.generate()) as s, pytest.raises(Exception, match="master secret"):
        s.ibake_master()  # another AtRestKey does not open it


def test_upgrade_from_0004_adds_the_ibake_table(db_url: sa.URL) -> None:
    key = AtRestKey.generate()
    old = KmsStore(db_url, key, migrate=False)
    old.upgrade("0004")
    assert old.schema_revision() == "0004"
    assert old.add_ticket_user(ALICE.encode(), b"k" * 32)
    assert "kms_ibake_master" not in sa.inspect(old._engine).get_table_names()
    old.close()
    with KmsStore(db_url, key) as s:
        assert s.schema_revision() == "0005"
        assert "kms_ibake_master" in sa.inspect(s._engine).get_table_names()
        record = s.ticket_user(ALICE.encode())
        assert record is not None and record.psk == b"k" * 32
        master, _ = ibake_master(s, security=1024)
        stored = s.ibake_master()
        assert stored is not None and stored.master == master.encode()


def _first_master(url: str, key_file: str, start: Any, out: Any) -> None:
    try:
        with KmsStore(url, AtRestKey.load(key_file)) as s:

            def generate() -> tuple[bytes, bytes]:
                params, master = ibe.bf_setup(1024)
                start.wait(30)  # every process has found no master and made its own
                return params.encode(), master.encode()

            record = s.get_or_create_ibake_master(generate, "YYYY-MM")
        out.put(("ok", record.params.hex(), record.master.hex()))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}", ""))


def test_processes_racing_share_one_master(db_url: sa.URL, tmp_path: Path) -> None:
    key_file = tmp_path / "at-rest.key"
    with KmsStore(db_url, create_at_rest_key_file(key_file)) as s:
        url = db_url.render_as_string(hide_password=False)
        results = race(_first_master, (url, str(key_file)), 2)
        assert [r[0] for r in results] == ["ok"] * 2, results
        assert len({r[1:] for r in results}) == 1
        stored = s.ibake_master()
        assert stored is not None and (stored.params.hex(), stored.master.hex()) == results[0][1:]
