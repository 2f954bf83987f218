"""The KMS admin routes (mikey.kms.core, issue 9 §3): users, integrity keys, community rotation, audit."""

from __future__ import annotations

import json
import multiprocessing
import pathlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from asgi_server import serving

from mikey.kms import KmsCommunity, generate_community, load_keystore_xml
from mikey.kms.auth import BearerAuth, DevIssuer
from mikey.kms.core import ADMIN_PREFIX, MAX_BODY_BYTES, KmsCore, KmsResponse
from mikey.kms.store import AtRestKey, KmsStore
from mikey.kms.xml import KMS_XML_NS, read_kms_init, read_kms_key_prov

NOW = 1_780_000_000.0
ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"
CAROL = "sip:carol@example.org"
ROOT = "root@example.org"
P = "/keymanagement/identity/v1/"
A = ADMIN_PREFIX
NS = {"k": KMS_XML_NS}


@pytest.fixture(scope="module")
def community() -> KmsCommunity:
    return generate_community("kms.example.org")


@pytest.fixture(scope="module")
def issuer_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("dev")


@pytest.fixture(scope="module")
def issuer(issuer_dir: pathlib.Path) -> DevIssuer:
    return DevIssuer.load_or_create(issuer_dir)


@pytest.fixture
def at_rest() -> AtRestKey:
    return AtRestKey.generate()


@pytest.fixture
def db(tmp_path: pathlib.Path) -> str:
    return f"sqlite:///{tmp_path / 'kms.sqlite3'}"


@pytest.fixture
def store(db: str, at_rest: AtRestKey, community: KmsCommunity) -> Iterator[KmsStore]:
    with KmsStore(db, at_rest) as s:
        s.create_community(community)
        s.add_user(ALICE)
        s.add_user(BOB)
        yield s


@pytest.fixture
def core(store: KmsStore, issuer: DevIssuer) -> KmsCore:
    return KmsCore(store, BearerAuth(issuer.policy()), "kms.example.org")


def _call(core: KmsCore, issuer: DevIssuer, path: str, body: bytes | dict[str, Any] = b"", *, method: str = "POST",
          user: str | None = ROOT, admin: bool = True, now: float = NOW) -> KmsResponse:
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = f"Bearer {issuer.issue(user, admin=admin, now=now)}"
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return core.handle(method, path, headers, raw, now)


def _json(r: KmsResponse, status: int = 200) -> Any:
    assert r.status == status, r.body
    assert r.content_type == "application/json"
    return json.loads(r.body)


def _error(r: KmsResponse, status: int) -> str:
    assert r.status == status, r.body
    root = ET.fromstring(r.body)
    assert root.findtext("k:KmsError/k:ErrorCode", namespaces=NS) == str(status)
    return root.findtext("k:KmsError/k:ErrorMsg", namespaces=NS) or ""


def _state(store: KmsStore) -> tuple[Any, ...]:
    """Everything an admin request could change: users, key sets, generations, audit records."""
    return (store.list_users(), store.list_key_sets(), [g.generation for g in store.list_generations()],
            store.list_audit())


def test_register_disable_enable_users(core: KmsCore, issuer: DevIssuer, store: KmsStore) -> None:
    added = _json(_call(core, issuer, A + "users", {"uri": CAROL}), 201)
    assert added == {"uri": CAROL, "enabled": True, "integrity_key": False, "created_at": NOW}
    assert _call(core, issuer, P + "keyprov", user=CAROL, admin=False).status == 200
    off = _json(_call(core, issuer, A + "users/" + quote(CAROL, safe="") + "/disable"))
    assert off["enabled"] is False
    assert "disabled" in _error(_call(core, issuer, P + "keyprov", user=CAROL, admin=False, now=NOW + 1), 403)
    on = _json(_call(core, issuer, A + "users/" + CAROL + "/enable"))  # a raw URI in the path works too
    assert on["enabled"] is True
    assert _call(core, issuer, P + "keyprov", user=CAROL, admin=False).status == 200
    dave = "sip:dave@example.org"
    _json(_call(core, issuer, A + "users", {"uri": dave, "enabled": False, "integrity_key": "ab" * 32}), 201)
    listed = _json(_call(core, issuer, A + "users", method="GET"))["users"]
    assert [(u["uri"], u["enabled"], u["integrity_key"]) for u in listed] == [
        (ALICE, True, False), (BOB, True, False), (CAROL, True, False), (dave, False, True)]
    assert store.integrity_key(dave) == bytes.fromhex("ab" * 32)
    before = _state(store)
    assert "already registered" in _error(_call(core, issuer, A + "users", {"uri": dave}), 409)
    assert _state(store) == before
    audit = _json(_call(core, issuer, A + "audit", method="GET"))["audit"]
    assert [(a["actor"], a["action"], a["subject"]) for a in audit if a["actor"] == ROOT] == [
        (ROOT, "user-add", CAROL), (ROOT, "user-disable", CAROL), (ROOT, "user-enable", CAROL),
        (ROOT, "user-add", dave)]


def test_integrity_key_set_and_removed(core: KmsCore, issuer: DevIssuer, store: KmsStore) -> None:
    path = A + "users/" + quote(ALICE, safe="") + "/integrity-key"
    assert _json(_call(core, issuer, path, {"integrity_key": "0F" * 16}))["integrity_key"] is True
    assert store.integrity_key(ALICE) == b"\x0f" * 16
    assert _json(_call(core, issuer, path, {"integrity_key": None}))["integrity_key"] is False
    assert store.integrity_key(ALICE) is None
    assert [a.action for a in store.list_audit() if a.actor == ROOT] == ["integrity-key-set", "integrity-key-remove"]
    assert all("0f" * 16 not in (a.detail or "").lower() for a in store.list_audit())


def test_user_tokens_and_missing_tokens_change_nothing(core: KmsCore, issuer: DevIssuer, store: KmsStore) -> None:
    before = _state(store)
    for path, body in [(A + "users", {"uri": CAROL}), (A + "rotate", b""),
                       (A + "users/" + quote(ALICE, safe="") + "/disable", b""),
                       (A + "users/" + quote(ALICE, safe="") + "/integrity-key", {"integrity_key": "00" * 16})]:
        r = _call(core, issuer, path, body, user=ALICE, admin=False)
        assert "admin scope" in _error(r, 403)
        assert 'error="insufficient_scope"' in dict(r.headers)["WWW-Authenticate"]
        _error(_call(core, issuer, path, body, user=None), 401)
    for path in ("users", "keysets", "audit", "generations"):
        _error(_call(core, issuer, A + path, method="GET", user=ALICE, admin=False), 403)
    assert _state(store) == before


def test_rotation_serves_the_new_certificate_and_keeps_old_key_sets(core: KmsCore, issuer: DevIssuer,
                                                                    store: KmsStore,
                                                                    community: KmsCommunity) -> None:
    old_init = _call(core, issuer, P + "init", user=ALICE, admin=False)
    assert read_kms_init(old_init.body) == community.public
    old_prov = _call(core, issuer, P + "keyprov", user=ALICE, admin=False)
    [old_keys] = read_kms_key_prov(old_prov.body, community.public)
    rotated = _json(_call(core, issuer, A + "rotate", now=NOW + 10))
    assert (rotated["generation"], rotated["previous"], rotated["rotated_by"]) == (2, 1, ROOT)
    new_init = _call(core, issuer, P + "init", user=ALICE, admin=False, now=NOW + 20)
    new_public = read_kms_init(new_init.body)
    assert new_public != community.public and new_public.kpak.hex() == rotated["kpak"]
    assert (new_public.kms_uri, new_public.key_period) == (community.public.kms_uri, community.public.key_period)
    new_prov = _call(core, issuer, P + "keyprov", user=ALICE, admin=False, now=NOW + 20)
    keystore = load_keystore_xml(new_init.body, [new_prov.body], validate=True)  # RSK/SSK fit the new Z/KPAK
    [new_keys] = keystore.key_sets
    assert new_keys.period_no == old_keys.period_no and new_keys.ssk != old_keys.ssk
    again = read_kms_key_prov(_call(core, issuer, P + "keyprov", user=ALICE, admin=False).body, new_public)[0]
    assert again.ssk == new_keys.ssk  # re-provisioning in the new generation: the same keys
    listed = _json(_call(core, issuer, A + "keysets", method="GET"))["key_sets"]
    assert [(k["user"], k["generation"]) for k in listed] == [(ALICE, 1), (ALICE, 2)]
    only_old = _json(_call(core, issuer, A + "keysets", {"generation": 1}))["key_sets"]
    assert [k["identifier"] for k in only_old] == [old_keys.identifier.hex()]
    gens = _json(_call(core, issuer, A + "generations", method="GET"))
    assert gens["active"] == 2 and [g["created_by"] for g in gens["generations"]] == [None, ROOT]
    [audit] = [a for a in _json(_call(core, issuer, A + "audit"))["audit"] if a["action"] == "rotate"]
    assert (audit["actor"], audit["at"], audit["detail"]) == (ROOT, NOW + 10, "generation 1 -> 2")


def _other_process(db: str, key_hex: str, issuer_dir: str, token: str, requests: Any, answers: Any) -> None:
    """Another KMS process on the same database: answers init requests until told to stop."""
    try:
        store = KmsStore(db, AtRestKey(bytes.fromhex(key_hex)))
        core = KmsCore(store, BearerAuth(DevIssuer.load_or_create(issuer_dir).policy()))
        while (what := requests.get(timeout=60)) is not None:
            r = core.handle("POST", P + what, {"Authorization": f"Bearer {token}"}, b"", NOW)
            answers.put((r.status, r.body))
        store.close()
    except BaseException as exc:  # report rather than die silently
        answers.put((0, f"{type(exc).__name__}: {exc}".encode()))


def test_a_core_in_another_process_serves_the_rotated_community(core: KmsCore, issuer: DevIssuer, db: str,
                                                                at_rest: AtRestKey, issuer_dir: pathlib.Path,
                                                                community: KmsCommunity) -> None:
    ctx = multiprocessing.get_context("spawn")
    requests, answers = ctx.Queue(), ctx.Queue()
    token = issuer.issue(ALICE, now=NOW)
    proc = ctx.Process(target=_other_process,
                       args=(db, at_rest._key.hex(), str(issuer_dir), token, requests, answers))
    proc.start()
    try:
        requests.put("init")
        status, body = answers.get(timeout=60)
        assert status == 200, body
        assert read_kms_init(body) == community.public
        rotated = _json(_call(core, issuer, A + "rotate"))  # rotated through this process
        requests.put("init")
        status, body = answers.get(timeout=60)
        assert status == 200 and read_kms_init(body).kpak.hex() == rotated["kpak"]
        requests.put("keyprov")
        status, prov = answers.get(timeout=60)
        assert status == 200, prov
        load_keystore_xml(body, [prov], validate=True)  # issued there under the new generation
        requests.put(None)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    assert [(r.user_uri, r.generation) for r in core.store.list_key_sets()] == [(ALICE, 2)]


@pytest.mark.parametrize(
    ("path", "body", "status", "why"),
    [
        (A + "users", b"{", 400, "not JSON"),
        (A + "users", b"[1]", 400, "JSON object"),
        (A + "users", b"\xff\xfe", 400, "not JSON"),
        (A + "users", b"[" * 50_000, 400, "not JSON"),
        (A + "users", {"uri": CAROL, "admin": True}, 400, "unknown member"),
        (A + "users", b'{"uri": "sip:c@x", "uri": "sip:d@x"}', 400, "repeats"),
        (A + "users", {"enabled": True}, 400, "needs uri"),
        (A + "users", {"uri": ""}, 400, "user URI"),
        (A + "users", {"uri": 7}, 400, "user URI"),
        (A + "users", {"uri": " sip:c@x"}, 400, "user URI"),
        (A + "users", {"uri": "sip:c\n@x"}, 400, "user URI"),
        (A + "users", {"uri": "s" * 3000}, 400, "user URI"),
        (A + "users", {"uri": CAROL, "enabled": "yes"}, 400, "enabled"),
        (A + "users", {"uri": CAROL, "integrity_key": "00" * 15}, 400, "integrity_key"),
        (A + "users", {"uri": CAROL, "integrity_key": "00" * 65}, 400, "integrity_key"),
        (A + "users", {"uri": CAROL, "integrity_key": "zz" * 16}, 400, "integrity_key"),
        (A + "users", {"uri": CAROL, "integrity_key": 5}, 400, "integrity_key"),
        (A + "users", b"{}" + b" " * MAX_BODY_BYTES, 413, "larger"),
        (A + "users/" + quote(CAROL, safe="") + "/enable", b"", 404, "not registered"),
        (A + "users/%ff/enable", b"", 400, "percent-encoded"),
        (A + "users/" + quote(ALICE, safe="") + "/disable", {"x": 1}, 400, "unknown member"),
        (A + "users/" + quote(ALICE, safe="") + "/integrity-key", b"", 400, "needs integrity_key"),
        (A + "users/" + quote(ALICE, safe="") + "/integrity-key", {"integrity_key": "0"}, 400, "integrity_key"),
        (A + "rotate", {"kms_uri": "kms.other.org"}, 400, "unknown member"),
        (A + "keysets", {"generation": -1}, 400, "generation"),
        (A + "keysets", {"period_no": "7"}, 400, "period_no"),
        (A + "keysets", {"user": ""}, 400, "user URI"),
        (A + "nothing", b"", 404, "no such admin resource"),
        (A + "users/x/destroy", b"", 404, "no such admin resource"),
        (A, b"", 404, "no such admin resource"),
    ],
)
def test_bad_admin_requests_are_4xx_and_change_nothing(core: KmsCore, issuer: DevIssuer, store: KmsStore,
                                                       path: str, body: bytes | dict[str, Any], status: int,
                                                       why: str) -> None:
    before = _state(store)
    assert why in _error(_call(core, issuer, path, body), status)
    assert _state(store) == before
    assert _call(core, issuer, A + "users", method="GET").status == 200  # still serving


def test_admin_methods(core: KmsCore, issuer: DevIssuer, store: KmsStore) -> None:
    before = _state(store)
    r = _call(core, issuer, A + "rotate", method="GET")
    _error(r, 405)
    assert dict(r.headers)["Allow"] == "POST"
    r = _call(core, issuer, A + "users", method="DELETE")
    _error(r, 405)
    assert dict(r.headers)["Allow"] == "GET, POST"
    _error(_call(core, issuer, A + "users/" + quote(ALICE, safe="") + "/disable", method="GET"), 405)
    assert _state(store) == before


def test_cli_rotate(tmp_path: pathlib.Path, community: KmsCommunity, capsys: pytest.CaptureFixture[str]) -> None:
    """``mikey kms rotate --data DIR``: a new active generation in DIR's database, audited as ``cli``."""
    from mikey.cli.main import main
    from mikey.kms.store import create_at_rest_key_file, database_url

    key = create_at_rest_key_file(tmp_path / "at_rest.key")
    with KmsStore(database_url(None, data_dir=tmp_path), key) as store:
        store.create_community(community)
    assert main(["kms", "rotate", "--data", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["generation"] == 2 and out["kms_uri"] == "kms.example.org"
    with KmsStore(database_url(None, data_dir=tmp_path), key) as store:
        assert store.active_generation() == 2 and store.public_keys().kpak.hex() == out["kpak"]
        assert [(a.actor, a.action) for a in store.list_audit()] == [("cli", "rotate")]
    empty = tmp_path / "empty"
    empty.mkdir()
    create_at_rest_key_file(empty / "at_rest.key")
    assert main(["kms", "rotate", "--data", str(empty)]) != 0
    assert "holds no community" in capsys.readouterr().err


@pytest.fixture
def served(core: KmsCore) -> Iterator[str]:
    """The real ASGI app on uvicorn, 127.0.0.1, a free port; stopped afterwards."""
    with serving(core) as url:
        yield url


def _http(url: str, token: str, body: bytes = b"", method: str = "POST") -> tuple[int, str, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_admin_routes_over_http(served: str, issuer: DevIssuer, store: KmsStore) -> None:
    import time

    now = time.time()
    admin, alice = issuer.issue(ROOT, admin=True, now=now), issuer.issue(ALICE, now=now)
    status, ctype, body = _http(served + A + "users", admin, json.dumps({"uri": CAROL}).encode())
    assert (status, ctype) == (201, "application/json") and json.loads(body)["uri"] == CAROL
    status, _, body = _http(served + A + "rotate", alice)
    assert status == 403 and b"admin scope" in body and store.active_generation() == 1
    status, _, body = _http(served + A + "rotate", admin)
    assert status == 200 and json.loads(body)["generation"] == 2
    status, _, init = _http(served + P + "init", alice)
    assert status == 200 and read_kms_init(init).kpak.hex() == json.loads(body)["kpak"]
    status, _, listed = _http(served + A + "users", admin, method="GET")
    assert status == 200 and [u["uri"] for u in json.loads(listed)["users"]] == [ALICE, BOB, CAROL]
