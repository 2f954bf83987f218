"""``mikey kms serve`` for real: a uvicorn subprocess on 127.0.0.1 driven over HTTP (issue 9 §2)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import xmlschema
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwks_server import JwksServer, self_signed
from jwt.algorithms import ECAlgorithm

from mikey.cli import main
from mikey.cli.kms_server import listening_socket
from mikey.cli.main import build_parser
from mikey.kms.auth import USER_SCOPE
from mikey.kms.store import AtRestKey, KmsStore
from mikey.kms.xml import KMS_XML_NS, read_kms_init, read_kms_key_prov

XML = pathlib.Path(__file__).parent / "vectors" / "kms_xml_ts33180"
ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"
API = "/keymanagement/identity/v1/"


def mikey(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mikey", *args], capture_output=True, text=True, timeout=60)


def post(url: str, token: str | None, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/xml"})
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


SERVING = re.compile(r"serving (https?)://(127\.0\.0\.1|\[::1\]):([0-9]{1,5})")


class Kms:
    """A ``mikey kms serve`` subprocess: its URL (from the first stdout line) and its log (stderr, a file)."""

    def __init__(self, tmp_path: pathlib.Path, data: pathlib.Path, *args: str) -> None:
        self.data = data
        self.log_path = tmp_path / f"kms-{len(list(tmp_path.glob('kms-*.log')))}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "mikey", "kms", "serve", "--data", str(data),
                                      "--port", "0", *args], stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline().rstrip("\n")
        match = SERVING.fullmatch(self.first_line)
        if match is None:
            self.stop()
            raise AssertionError((self.first_line, self.log()))
        assert 0 < int(match.group(3)) < 65536
        self.url = self.first_line.removeprefix("serving ")

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[tuple[str, pathlib.Path]]:
    kms = Kms(tmp_path, tmp_path / "kms", "--dev-tokens")
    try:
        assert kms.url.startswith("http://127.0.0.1:")
        yield kms.url, kms.data
        assert kms.proc.poll() is None, "the server stopped"
    finally:
        kms.stop()


def token(data: pathlib.Path, user: str) -> str:
    r = mikey("kms", "token", "--data", str(data), "--user", user)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_serve_init_user_add_keyprov(server: tuple[str, pathlib.Path]) -> None:
    url, data = server
    schema = xmlschema.XMLSchema(str(XML / "schema.xsd"), validation="lax")
    tok = token(data, ALICE)
    status, _, init = post(url + API + "init", tok)
    assert status == 200
    assert list(schema.iter_errors(init.decode())) == []
    kms = read_kms_init(init)
    status, _, body = post(url + API + "keyprov/" + quote(ALICE, safe=""), tok)
    assert status == 404 and b"not registered" in body
    added = mikey("kms", "user", "add", "--data", str(data), ALICE, BOB)
    assert added.returncode == 0 and added.stdout.split("\n")[:2] == [f"added {ALICE}", f"added {BOB}"]
    status, headers, prov = post(url + API + "keyprov/" + quote(ALICE, safe=""), tok)
    assert status == 200 and headers["content-type"].startswith("application/xml")
    assert list(schema.iter_errors(prov.decode())) == []
    [keys] = read_kms_key_prov(prov, kms)
    status, _, raw = post(url + API + "keyprov/" + ALICE, tok)  # raw URI, empty body
    assert status == 200 and read_kms_key_prov(raw, kms)[0].rsk == keys.rsk
    again = mikey("kms", "user", "add", "--data", str(data), ALICE)
    assert again.stdout.strip() == f"already registered {ALICE}"


def test_bad_requests_and_server_keeps_serving(server: tuple[str, pathlib.Path]) -> None:
    url, data = server
    status, headers, body = post(url + API + "init", "not.a.token")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer ")
    assert ET.fromstring(body).findtext(f"{{{KMS_XML_NS}}}KmsError/{{{KMS_XML_NS}}}ErrorCode") == "401"
    tok = token(data, ALICE)
    status, _, body = post(url + API + "keyprov", tok, b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")
    assert status == 400 and b"DTD" in body
    status, _, _ = post(url + API + "keyprov", tok, b"x" * (200 * 1024))
    assert status == 413
    status, _, _ = post(url + "/other", tok)
    assert status == 404
    status, _, body = post(url + API + "init", tok)
    assert status == 200


def test_non_loopback_without_tls_is_refused(tmp_path: pathlib.Path) -> None:
    r = mikey("kms", "serve", "--data", str(tmp_path), "--host", "0.0.0.0", "--port", "0", "--dev-tokens")
    assert r.returncode == 2 and "loopback" in r.stderr and r.stdout == ""


def test_fetch_then_sakke_initiate_respond(server: tuple[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    """``mikey kms fetch`` writes the keystores ``--mode sakke --keys`` reads; the exchange completes."""
    url, data = server
    assert mikey("kms", "user", "add", "--data", str(data), ALICE, BOB).returncode == 0
    for name, uri in (("alice", ALICE), ("bob", BOB)):
        r = mikey("kms", "fetch", "--kms", url, "--token", token(data, uri), "--out", str(tmp_path / f"{name}.json"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"{name}.json").stat().st_mode & 0o077 == 0
        doc = json.loads((tmp_path / f"{name}.json").read_text())
        periods = [k["period_no"] for k in [doc["user"], *doc.get("users", [])]]
        assert len(periods) == 2 and periods[1] == periods[0] + 1, periods  # current and next (rollover)
    init = mikey("--json", "initiate", "--mode", "sakke", "--keys", str(tmp_path / "alice.json"), "--to", BOB,
                 "--key-type", "pck", "--show-keys")
    assert init.returncode == 0, init.stderr
    i = json.loads(init.stdout)
    resp = mikey("--json", "respond", "--mode", "sakke", "--keys", str(tmp_path / "bob.json"),
                 "--imsg", i["i_message"], "--from", ALICE, "--show-keys")
    assert resp.returncode == 0, resp.stderr
    assert json.loads(resp.stdout)["tgk"] == i["tgk"]


def test_fetch_with_a_bad_token_fails_cleanly(server: tuple[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    url, _ = server
    r = mikey("kms", "fetch", "--kms", url, "--token", "bad.token.x", "--out", str(tmp_path / "x.json"))
    assert r.returncode == 1 and "401" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.json").exists()


def test_https_serve_and_fetch_with_ca(tmp_path: pathlib.Path) -> None:
    cert, key = self_signed(tmp_path, "kms")
    data = tmp_path / "kms"
    proc = subprocess.Popen([sys.executable, "-m", "mikey", "kms", "serve", "--data", str(data), "--port", "0",
                             "--dev-tokens", "--tls-cert", str(cert), "--tls-key", str(key)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("serving https://127.0.0.1:"), first
        url = first.removeprefix("serving ")
        assert mikey("kms", "user", "add", "--data", str(data), ALICE).returncode == 0
        out = tmp_path / "alice.json"
        r = mikey("kms", "fetch", "--kms", url, "--token", token(data, ALICE), "--out", str(out), "--ca", str(cert))
        assert r.returncode == 0, r.stderr
        assert json.loads(out.read_text())["user"]["uri"] == ALICE
        untrusted = mikey("kms", "fetch", "--kms", url, "--token", token(data, ALICE), "--out", str(out) + ".2")
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- bearer tokens of a configured identity server, over HTTP (issue 9 §3; RFC 6750 §3) -------------

ISSUER = "https://idms.example.org"
AUDIENCE = "kms.example.org"
IDP_KEY = ec.generate_private_key(ec.SECP256R1())
ROGUE_KEY = ec.generate_private_key(ec.SECP256R1())
IDP_JWKS = {"keys": [{**json.loads(ECAlgorithm.to_jwk(IDP_KEY.public_key())), "kid": "idp1", "use": "sig"}]}


def idp_token(key: Any = IDP_KEY, kid: str = "idp1", alg: str = "ES256", **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mcptt-client", "mcptt_id": ALICE,
                              "scope": f"openid {USER_SCOPE}", "iat": now - 5, "exp": now + 600}
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=alg,
                      headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key() -> str:
    """Algorithm confusion: HS256 keyed with the identity server's public key (PEM), as an attacker can."""
    pem = IDP_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    good = idp_token().split(".")[1]
    signing_input = _b64(json.dumps({"alg": "HS256", "kid": "idp1", "typ": "JWT"}).encode()) + "." + good
    return signing_input + "." + _b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())


def alg_none() -> str:
    good = idp_token().split(".")[1]
    return _b64(json.dumps({"alg": "none", "kid": "idp1"}).encode()) + "." + good + "."


def post_raw(url: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/xml"}
    if authorization is not None:
        headers["Authorization"] = authorization
    req = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def error_code(body: bytes) -> str | None:
    return ET.fromstring(body).findtext(f"{{{KMS_XML_NS}}}KmsError/{{{KMS_XML_NS}}}ErrorCode")


def key_sets(data: pathlib.Path) -> list[tuple[str, int]]:
    """What the server's database records as issued (the audit listing), read beside the running server."""
    with KmsStore(f"sqlite:///{data / 'kms.sqlite3'}", AtRestKey.from_file(data / "at_rest.key")) as store:
        return [(r.user_uri, r.period_no) for r in store.list_key_sets()]


@pytest.fixture
def idp_kms(tmp_path: pathlib.Path) -> Iterator[tuple[Kms, JwksServer]]:
    """A KMS trusting the identity server whose JWKS a loopback HTTP server publishes; Alice and Bob registered."""
    with JwksServer(IDP_JWKS) as idp:
        kms = Kms(tmp_path, tmp_path / "kms", "--jwks", idp.url, "--issuer", ISSUER, "--audience", AUDIENCE)
        try:
            assert idp.hits == 1  # fetched at start
            assert mikey("kms", "user", "add", "--data", str(kms.data), ALICE, BOB).returncode == 0
            yield kms, idp
        finally:
            kms.stop()


NO_ERROR = 'Bearer realm="mikey-kms"'
HTTP_REFUSALS: list[tuple[str, Any, int, str]] = [
    # (name, Authorization header or a function making it, status, what WWW-Authenticate holds)
    ("missing", None, 401, NO_ERROR),
    ("other-scheme", "Basic YWxpY2U6c2VjcmV0", 401, NO_ERROR),
    ("two-tokens", lambda: "Bearer " + idp_token() + " " + idp_token(), 401, 'error="invalid_token"'),
    ("not-a-jwt", "Bearer not.a.jwt", 401, 'error="invalid_token", error_description="bearer token is not'),
    ("expired", lambda: "Bearer " + idp_token(exp=int(time.time()) - 3600), 401, "token expired"),
    ("not-yet-valid", lambda: "Bearer " + idp_token(nbf=int(time.time()) + 3600), 401, "not valid for another"),
    ("wrong-audience", lambda: "Bearer " + idp_token(aud="another-service"), 401, "for another audience"),
    ("wrong-issuer", lambda: "Bearer " + idp_token(iss="https://evil.example"), 401, "token issuer"),
    ("unknown-key", lambda: "Bearer " + idp_token(ROGUE_KEY, kid="rogue"), 401, "unknown key (kid 'rogue')"),
    ("forged-signature", lambda: "Bearer " + idp_token(ROGUE_KEY), 401, "signature does not verify"),
    ("alg-none", lambda: "Bearer " + alg_none(), 401, "algorithm 'none' is not allowed"),
    ("hs256-public-key", lambda: "Bearer " + hs256_with_public_key(), 401, "algorithm 'HS256' is not allowed"),
    ("no-kms-scope", lambda: "Bearer " + idp_token(scope="openid 3gpp:mcptt:ptt_server"), 403,
     'error="insufficient_scope", error_description="token lacks the key-management scope'),
]


def test_refused_tokens_over_http_issue_nothing_and_stay_out_of_the_log(idp_kms: tuple[Kms, JwksServer]) -> None:
    kms, _ = idp_kms
    url = kms.url + API + "keyprov/" + quote(ALICE, safe="")
    sent: list[str] = []
    for name, make, status, expected in HTTP_REFUSALS:
        header = make() if callable(make) else make
        got, headers, body = post_raw(url, header)
        assert (got, error_code(body)) == (status, str(status)), (name, body)
        challenge = headers["www-authenticate"]
        assert challenge.startswith(NO_ERROR) and expected in challenge, (name, challenge)
        if status == 403:
            assert challenge.endswith(f'scope="{USER_SCOPE}"')
        if header is not None:
            sent.append(header.partition(" ")[2])
    assert key_sets(kms.data) == []  # nothing issued
    got, _, body = post_raw(url, "Bearer " + idp_token())  # the same request with a good token is served
    assert got == 200 and read_kms_key_prov(body, read_kms_init(post_raw(kms.url + API + "init",
                                                                          "Bearer " + idp_token())[2]))
    assert [uri for uri, _ in key_sets(kms.data)] == [ALICE]
    kms.stop()
    log = kms.log()
    for reason in ("401 missing", "401 not-bearer", "401 malformed", "401 expired", "401 not-yet-valid",
                   "401 wrong-audience", "401 wrong-issuer", "401 unknown-key", "401 bad-signature",
                   "401 algorithm", "403 insufficient-scope"):
        assert f"KMS bearer token refused ({reason})" in log, reason
    for token_text in sent:
        for piece in (token_text, *token_text.split(" ")):
            assert len(piece) < 12 or piece not in log, piece[:20]
    assert "Traceback" not in log


def test_user_a_asking_for_user_b_is_403_over_http(idp_kms: tuple[Kms, JwksServer]) -> None:
    kms, _ = idp_kms
    alice = "Bearer " + idp_token()
    for path in ("keyprov/" + quote(BOB, safe=""), "keyprov/" + BOB,
                 "keyprov/" + quote(BOB, safe="") + "/" + format(int(time.time() + 2_208_988_800) << 32, "016X")):
        got, headers, body = post_raw(kms.url + API + path, alice)
        assert (got, error_code(body)) == (403, "403"), (path, body)
        assert 'error="insufficient_scope"' in headers["www-authenticate"] and b"another user" in body
    body_for_bob = (f'<KmsRequest xmlns="{KMS_XML_NS}"><UserUri>{BOB}</UserUri>'
                    f"<KmsUri>kms.example.org</KmsUri></KmsRequest>").encode()
    got, _, _ = post(kms.url + API + "keyprov", idp_token(), body_for_bob)
    assert got == 403
    assert key_sets(kms.data) == []
    got, _, _ = post_raw(kms.url + API + "keyprov/" + quote(ALICE, safe=""), alice)
    assert got == 200 and [uri for uri, _ in key_sets(kms.data)] == [ALICE]
    bob = "Bearer " + idp_token(mcptt_id=BOB)
    assert post_raw(kms.url + API + "keyprov/" + quote(BOB, safe=""), bob)[0] == 200
    assert sorted(uri for uri, _ in key_sets(kms.data)) == [ALICE, BOB]


def test_serve_with_a_jwks_url_that_fails_later_keeps_serving(idp_kms: tuple[Kms, JwksServer]) -> None:
    """The identity server goes away: tokens it signed before still verify with the keys fetched at start."""
    kms, idp = idp_kms
    idp.close()
    got, _, body = post_raw(kms.url + API + "keyprov/" + quote(ALICE, safe=""), "Bearer " + idp_token())
    assert got == 200, body
    got, _, _ = post_raw(kms.url + API + "keyprov/" + quote(ALICE, safe=""),
                         "Bearer " + idp_token(ROGUE_KEY, kid="rogue"))
    assert got == 401


# --- the command-line contract of issue 9 ------------------------------------------------------------


def test_serve_defaults_match_the_contract() -> None:
    args = build_parser(["kms", "serve"]).parse_args(["kms", "serve"])
    assert (args.data, args.db, args.host, args.port, args.kms_uri) == ("kms-data", None, "127.0.0.1", 8443, None)
    assert (args.tls_cert, args.tls_key, args.dev_tokens, args.jwks) == (None, None, False, None)
    assert (args.workers, args.threads) == (1, 4)


def test_serve_without_an_issuer_serves_and_refuses_every_token(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "kms"
    kms = Kms(tmp_path, data)
    try:
        assert kms.url.startswith("http://127.0.0.1:")
        assert (data / "kms.sqlite3").exists() and (data / "at_rest.key").stat().st_mode & 0o077 == 0
        dev = token(data, ALICE)  # the development issuer exists, but is not trusted without --dev-tokens
        got, headers, body = post_raw(kms.url + API + "init", "Bearer " + dev)
        assert (got, error_code(body)) == (401, "401") and b"accepts no tokens" in body
        assert 'error="invalid_token"' in headers["www-authenticate"]
    finally:
        kms.stop()
    assert "no --jwks URL --issuer ISS --audience AUD and no --dev-tokens" in kms.log()


def test_serve_ipv6_loopback_other_db_and_kms_uri(tmp_path: pathlib.Path) -> None:
    data, db = tmp_path / "kms", tmp_path / "elsewhere" / "kms.db"
    db.parent.mkdir()
    kms = Kms(tmp_path, data, "--host", "::1", "--db", f"sqlite:///{db}", "--kms-uri", "kms.test.example",
              "--dev-tokens")
    try:
        assert kms.url.startswith("http://[::1]:")
        got, _, body = post_raw(kms.url + API + "init", "Bearer " + token(data, ALICE))
        assert got == 200 and read_kms_init(body).kms_uri == "kms.test.example"
        assert db.exists() and not (data / "kms.sqlite3").exists()
    finally:
        kms.stop()
    r = mikey("kms", "serve", "--data", str(data), "--db", f"sqlite:///{db}", "--port", "0", "--kms-uri",
              "kms.other.example", "--dev-tokens")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("mikey: error: --kms-uri:") and "kms.test.example" in r.stderr
    assert len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "0.0.0.0"], "plain HTTP is served on loopback only"),
    (["--host", "::"], "plain HTTP is served on loopback only"),
    (["--host", "192.0.2.7", "--dev-tokens"], "plain HTTP is served on loopback only"),
    (["--host", "kms.example.org", "--dev-tokens"], "plain HTTP is served on loopback only"),
    (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
    (["--workers", "0", "--dev-tokens"], "--workers must be 1 to 64"),
    (["--workers", "65", "--dev-tokens"], "--workers must be 1 to 64"),
    (["--threads", "0", "--dev-tokens"], "--threads must be 1 to 64"),
    (["--dev-tokens", "--jwks", "jwks.json"], "choose the development issuer or your identity server"),
    (["--jwks", "jwks.json", "--issuer", ISSUER], "--jwks, --issuer and --audience go together"),
    (["--jwks", "http://idp.example.org/jwks", "--issuer", ISSUER, "--audience", AUDIENCE],
     "--jwks: the JWKS URL must use https://"),
    (["--jwks", "http://127.0.0.1:1/jwks", "--issuer", ISSUER, "--audience", AUDIENCE], "cannot fetch"),
    (["--jwks", "absent.json", "--issuer", ISSUER, "--audience", AUDIENCE], "--jwks: cannot read JWKS"),
    (["--jwks", "jwks.json", "--jwks-ca", "ca.pem", "--issuer", ISSUER, "--audience", AUDIENCE],
     "--jwks-ca and --jwks-allow-http apply to a --jwks URL"),
])
def test_serve_usage_errors_are_one_line(args: list[str], message: str, tmp_path: pathlib.Path,
                                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    log = logging.getLogger("mikey")
    monkeypatch.setattr(log, "handlers", [])  # serve adds a stderr handler; the test leaves none behind
    monkeypatch.setattr(log, "level", log.level)
    assert main(["kms", "serve", "--data", str(tmp_path / "kms"), "--port", "0", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("mikey: error: ") and message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "kms" / "kms.sqlite3").exists()  # refused before anything was created


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_served_connections_get_tcp_nodelay(host: str) -> None:
    """The listening socket says TCP, so asyncio (uvicorn's transport) sets TCP_NODELAY on every
    accepted connection: a response on a kept-alive connection is not held back by Nagle until
    the client's delayed ACK (RFC 1122 §4.2.3.4)."""
    sock = listening_socket(host, 0)
    assert sock.proto == socket.IPPROTO_TCP
    seen: list[int] = []

    async def run() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.write(b"x")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handler, sock=sock)
        async with server:
            reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            assert await reader.read() == b"x"
            writer.close()

    try:
        asyncio.run(run())
    finally:
        sock.close()
    assert len(seen) == 1 and seen[0] != 0


def test_serve_on_a_busy_port_is_a_one_line_error(tmp_path: pathlib.Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        r = mikey("kms", "serve", "--data", str(tmp_path / "kms"), "--port", str(busy.getsockname()[1]),
                  "--dev-tokens")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("mikey: error: cannot listen on 127.0.0.1:") and len(r.stderr.splitlines()) == 1


def test_serve_with_an_https_jwks_url_and_its_ca(tmp_path: pathlib.Path) -> None:
    cert, key = self_signed(tmp_path, "idp")
    with JwksServer(IDP_JWKS, tls=(cert, key)) as idp:
        common = ["--issuer", ISSUER, "--audience", AUDIENCE]
        r = mikey("kms", "serve", "--data", str(tmp_path / "kms"), "--port", "0", "--jwks", idp.url, *common)
        assert r.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in r.stderr and len(r.stderr.splitlines()) == 1
        kms = Kms(tmp_path, tmp_path / "kms", "--jwks", idp.url, "--jwks-ca", str(cert), *common)
        try:
            assert mikey("kms", "user", "add", "--data", str(kms.data), ALICE).returncode == 0
            got, _, body = post_raw(kms.url + API + "keyprov", "Bearer " + idp_token())
            assert got == 200 and read_kms_key_prov(body, read_kms_init(
                post_raw(kms.url + API + "init", "Bearer " + idp_token())[2]))[0].uri == ALICE
        finally:
            kms.stop()
        assert f"JWKS {idp.url}: keys ['idp1'], cached for 300 s" in kms.log()
