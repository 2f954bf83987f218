"""MIKEY-IBAKE REQUEST_KEY_PKE (RFC 6267 §4.2.1.1.2) through a real ``mikey kms serve --ibake-cert/--ibake-key/
--ibake-ca``: the envelope key encrypted to the KMS's RSA certificate (PKE), the request signed with the user's
certificate (SIGN, CERT), REQUEST_KEY_RESP protected with keys derived from the envelope key.

A bad signature, a request encrypted to another KMS certificate, a user the KMS does not serve and an
untrusted certificate are refused with the RFC 3830 §6.12 Error number; mutated requests get clean
refusals only, and nothing is stored (the unmutated request is still fresh afterwards).
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import random
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from pki import Issued, make_ca, make_leaf
from test_kms_http import Kms, mikey

from mikey.constants import DataType, HashFunc
from mikey.crypto import ibe
from mikey.errors import MikeyError
from mikey.keystore import Credentials
from mikey.kms.mikey_client import KmsMikeyError, post_mikey
from mikey.modes.ibake import IbakeCredentials, IbakeInitiator, IbakeResponder
from mikey.modes.ibake_keys import IbakeKeyRequest, IbakePkSigner
from mikey.wire import ErrorPayload, Message

KMS_URI = "kms.example.org"
ALICE = "sip:alice@example.org"  # a registered user (mikey kms user add): PKE
BOB = "sip:bob@example.org"  # a party with a PSK (kms ticket-user add): PSK
MALLORY = "sip:mallory@example.org"  # a certificate from the trusted CA, unknown to the KMS
EVE = "sip:eve@example.org"  # a certificate from another CA
MUTATIONS = 150


def _pem(path: pathlib.Path, issued: Issued, *, key: bool = False) -> str:
    if key:
        path.write_bytes(issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    else:
        path.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


@dataclass
class Served:
    kms: Kms
    dir: pathlib.Path
    pki: dict[str, Issued]
    params: ibe.BfParams
    params_file: str
    kms_id: bytes
    period: ibe.KeyPeriod

    def request(self, who: str, uri: str | None = None, *, kms_cert: Issued | None = None,
                chash: int | None = None) -> IbakeKeyRequest:
        signer = IbakePkSigner(Credentials(self.pki[who].key, self.pki[who].cert),
                               (kms_cert or self.pki["kms"]).cert, chash=chash)
        return IbakeKeyRequest(None, [(uri or _uri(who)).encode()], self.kms_id, self.params, pk=signer,
                               key_period=self.period)

    def error_nos(self, message: bytes) -> list[int]:
        answer = Message.decode(post_mikey(self.kms.url, message))
        assert answer.data_type == DataType.ERROR, answer.data_type
        return [e.error_no for e in answer.find_all(ErrorPayload)]


def _uri(who: str) -> str:
    return f"sip:{who}@example.org"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("ibake_pke")
    now = dt.datetime.now(dt.UTC)
    span = {"not_before": now - dt.timedelta(days=1), "not_after": now + dt.timedelta(days=30)}
    ca, other = make_ca("IBAKE PKE Root", **span), make_ca("Another Root", **span)
    pki = {"ca": ca, "kms": make_leaf(ca, "ibake-kms", san_dns=[KMS_URI], **span),
           "kms2": make_leaf(ca, "ibake-kms-2", san_dns=[KMS_URI], **span),
           "eve": make_leaf(other, "ibake-eve", san_uris=[EVE], **span)}
    for who in ("alice", "bob", "mallory"):
        pki[who] = make_leaf(ca, f"ibake-{who}", san_uris=[_uri(who)], **span)
    data = tmp / "kms"
    kms = Kms(tmp, data, "--kms-uri", KMS_URI, "--ibake-cert", _pem(tmp / "kms.pem", pki["kms"]),
              "--ibake-key", _pem(tmp / "kms.key", pki["kms"], key=True), "--ibake-ca", _pem(tmp / "ca.pem", ca))
    try:
        r = mikey("kms", "user", "add", "--data", str(data), ALICE)
        assert r.returncode == 0, r.stderr
        (tmp / "bob.psk").write_text("b2" * 32)
        r = mikey("kms", "ticket-user", "add", "--data", str(data), "--identity", BOB, "--psk-file", str(tmp / "bob.psk"))
        assert r.returncode == 0, r.stderr
        params_file = tmp / "params.json"
        r = mikey("kms", "ibake-params", "--data", str(data), "--out", str(params_file))
        assert r.returncode == 0, r.stderr
        doc = json.loads(params_file.read_text())
        yield Served(kms, tmp, pki, ibe.BfParams.decode(bytes.fromhex(doc["params"])), str(params_file),
                     doc["kms_id"].encode(), ibe.KeyPeriod(doc["key_period"]))
    finally:
        kms.stop()


def _fetch(served: Served, *args: str) -> tuple[int, str, str]:
    r = mikey("kms", "ibake-fetch", "--kms", served.kms.url, "--params", served.params_file, *args)
    return r.returncode, r.stdout, r.stderr


def test_pke_fetch_over_http_then_exchange_with_a_psk_user(served: Served) -> None:
    tmp = served.dir
    out = tmp / "alice.keys.json"
    code, stdout, stderr = _fetch(served, "--uri", ALICE, "--cert", _pem(tmp / "alice.pem", served.pki["alice"]),
                                  "--key", _pem(tmp / "alice.key", served.pki["alice"], key=True),
                                  "--kms-cert", str(tmp / "kms.pem"), "--out", str(out), "--json")
    assert code == 0, stderr + served.kms.log()
    got = json.loads(stdout)
    assert got["request_key_pke_len"] > 256 + 1000  # PKE (RSA 2048) + CERT + SIGN
    month = time.strftime("%Y-%m", time.gmtime())
    assert got["periods"][0] in (ALICE + month,) or got["periods"][1] == ALICE + month
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    code, _, stderr = _fetch(served, "--uri", BOB, "--psk-file", str(tmp / "bob.psk"), "--out", str(tmp / "bob.json"))
    assert code == 0, stderr
    # The K_PRs work: alice (PKE) calls bob (PSK) with the four IBAKE messages.
    from mikey.cli.ibake_files import load_user_keys

    alice, bob = load_user_keys(str(out)).credentials, load_user_keys(str(tmp / "bob.json")).credentials
    now = time.time()
    ini, res = IbakeInitiator(alice, ALICE.encode(), BOB.encode()), IbakeResponder(bob)
    r1 = res.receive(ini.create_message(now), now).response
    assert r1 is not None
    i2 = ini.receive(r1, now).response
    assert i2 is not None
    step = res.receive(i2, now)
    assert step.result is not None and step.response is not None
    done = ini.receive(step.response, now)
    assert done.confirmed and done.result is not None and done.result.tgk == step.result.tgk
    # The same in-process: the keys are the KMS's for this identity and period.
    request = served.request("alice")
    result = request.receive(post_mikey(served.kms.url, request.create_message(now)), now)
    assert [k.identity for k in result.keys] == [ALICE.encode()] * 2
    assert isinstance(alice, IbakeCredentials)


def test_refusals_carry_the_right_error_number(served: Served) -> None:
    now = time.time()
    # A bad signature (the last octet of SIGN): Auth failure.
    msg = served.request("alice").create_message(now)
    assert served.error_nos(msg[:-1] + bytes([msg[-1] ^ 0x01])) == [0]
    # The envelope key encrypted to another KMS certificate, named by CHASH: Invalid Cert (none of the KMS's).
    assert served.error_nos(served.request("alice", kms_cert=served.pki["kms2"],
                                           chash=HashFunc.SHA_256).create_message(now)) == [8]
    # Without CHASH the KMS cannot tell: PKCS#1 v1.5 decryption rejects implicitly (no padding oracle,
    # mikey.crypto.rsa.decrypt_envelope) with a pseudo-random "envelope key".  One shorter than 128 bits is
    # refused (Auth failure); otherwise the response is keyed with what only the KMS could compute and the
    # user refuses it (its V does not verify).  Either way nobody gets keys.
    for _ in range(3):
        wrong = served.request("alice", kms_cert=served.pki["kms2"])
        answer = Message.decode(post_mikey(served.kms.url, wrong.create_message(now)))
        if answer.data_type == DataType.ERROR:
            assert [e.error_no for e in answer.find_all(ErrorPayload)] == [0]
            continue
        assert answer.data_type == DataType.REQUEST_KEY_RESP
        with pytest.raises(MikeyError) as caught:
            wrong.receive(answer.raw_bytes(), now)
        assert caught.value.kind == "authentication"
    # ... and a CHASH naming the KMS's own certificate is taken.
    request = served.request("alice", chash=HashFunc.SHA_256)
    assert request.receive(post_mikey(served.kms.url, request.create_message(now)), now).keys
    # A trusted certificate, but a user the KMS does not serve: Invalid ID.
    assert served.error_nos(served.request("mallory").create_message(now)) == [7]
    # A certificate from a CA the KMS does not trust: Invalid Cert.
    assert served.error_nos(served.request("eve").create_message(now)) == [8]
    # alice's certificate asking for bob's keys: the certificate does not bind IDRi -- Invalid Cert.
    assert served.error_nos(served.request("alice", BOB).create_message(now)) == [8]
    # The same request twice: the second is a replay (discarded, RFC 3830 §5.4: no MIKEY answer).
    fresh = served.request("alice").create_message(now)
    assert Message.decode(post_mikey(served.kms.url, fresh)).data_type == DataType.REQUEST_KEY_RESP
    with pytest.raises(KmsMikeyError, match="400"):
        post_mikey(served.kms.url, fresh)
    assert served.kms.proc.poll() is None


def test_cli_refusals_write_nothing(served: Served) -> None:
    tmp = served.dir
    bad = tmp / "mallory.keys.json"
    code, stdout, stderr = _fetch(served, "--uri", MALLORY, "--cert",
                                  _pem(tmp / "mallory.pem", served.pki["mallory"]), "--key",
                                  _pem(tmp / "mallory.key", served.pki["mallory"], key=True), "--kms-cert",
                                  str(tmp / "kms.pem"), "--out", str(bad))
    assert code == 1 and stdout == "" and stderr.count("\n") == 1 and stderr.endswith("Error message: 7\n")
    assert not bad.exists()
    code, stdout, stderr = _fetch(served, "--uri", ALICE, "--cert", _pem(tmp / "alice2.pem", served.pki["alice"]),
                                  "--key", _pem(tmp / "alice2.key", served.pki["alice"], key=True), "--kms-cert",
                                  _pem(tmp / "kms2.pem", served.pki["kms2"]), "--out", str(bad))
    assert code == 1 and stderr.endswith("Error message: 8\n") and not bad.exists()  # CHASH: not the KMS's cert
    usage: list[tuple[tuple[str, ...], str]] = [
        (("--cert", str(tmp / "mallory.pem")), "go together"),
        (("--psk-file", str(tmp / "bob.psk"), "--cert", str(tmp / "mallory.pem"), "--key", str(tmp / "mallory.key"),
          "--kms-cert", str(tmp / "kms.pem")), "choose"),
        ((), "--psk-file"),
    ]
    for args, text in usage:
        code, _, stderr = _fetch(served, "--uri", MALLORY, "--out", str(bad), *args)
        assert code == 2 and text in stderr and stderr.count("\n") == 1, stderr
    assert not bad.exists()


def test_serve_pke_options_go_together(tmp_path: pathlib.Path) -> None:
    r = mikey("kms", "serve", "--data", str(tmp_path / "kms"), "--port", "0", "--ibake-cert", "x.pem")
    assert r.returncode == 2 and "--ibake-cert, --ibake-key and --ibake-ca go together" in r.stderr


def _mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind, pos = rng.randrange(5), rng.randrange(len(b))
    if kind == 0:
        b[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b[pos] = rng.randrange(256)
    elif kind == 2:
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5)))
    elif kind == 3:
        del b[pos : pos + rng.randrange(1, 9)]
    else:
        del b[pos:]
    return bytes(b)


def _rows(db: pathlib.Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


def test_mutated_pke_requests_get_clean_refusals_and_nothing_is_stored(served: Served) -> None:
    now = time.time()
    kept = served.request("alice")
    original = kept.create_message(now)  # never sent before the mutations
    before = _rows(served.kms.data / "kms.sqlite3")
    rng = random.Random("ibake-pke-server")
    answers = {"error": 0, "refused": 0}
    for _ in range(MUTATIONS):
        bad = _mutate(original, rng)
        if bad == original:
            continue
        try:
            answer = Message.decode(post_mikey(served.kms.url, bad))
        except KmsMikeyError as exc:  # no MIKEY answer: undecodable, or discarded
            assert "HTTP 400" in exc.message, exc.message
            answers["refused"] += 1
            continue
        assert answer.data_type == DataType.ERROR, "a mutated REQUEST_KEY_PKE was answered with keys"
        assert len(answer.find_all(ErrorPayload)) == 1
        answers["error"] += 1
    assert answers["error"] > MUTATIONS // 3 and sum(answers.values()) > MUTATIONS * 0.9, answers
    assert served.kms.proc.poll() is None and "Traceback" not in served.kms.log()
    assert _rows(served.kms.data / "kms.sqlite3") == before
    # No mutated copy used up the request's freshness (replay cache): the original is still answered.
    result = kept.receive(post_mikey(served.kms.url, original), now)
    assert [k.identity for k in result.keys] == [ALICE.encode()] * 2
    with pytest.raises(MikeyError):
        kept.receive(original, now)  # the request side took its one answer
