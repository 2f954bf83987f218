"""KmsCertCache (TS 33.180 §D.3.4): trusted external KMS certificates, the cache number, admin, CLI, HTTP.

A second community (another KMS) is generated for real; its KmsInit response is what gets trusted.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
import xmlschema

from mikey.cli import main
from mikey.errors import KeyMaterialError
from mikey.keystore import KmsPublicKeys
from mikey.kms import KmsCommunity, generate_community, kms_init_xml
from mikey.kms.auth import BearerAuth, DevIssuer
from mikey.kms.core import ADMIN_PREFIX, MAX_BODY_BYTES, KmsCore, KmsResponse
from mikey.kms.dsig import verify_kms_response
from mikey.kms.store import AtRestKey, KmsStore, TrustRefusedError, create_at_rest_key_file
from mikey.kms.xml import (
    KMS_XML_NS,
    KmsCertCache,
    KmsCertificateInfo,
    kms_cert_cache_xml,
    read_kms_cert_cache,
    read_kms_certificate,
)

XML = pathlib.Path(__file__).parent / "vectors" / "kms_xml_ts33180"
NOW = 1_780_000_000.0
ALICE = "sip:alice@example.org"
ROOT = "root@example.org"
P = "/keymanagement/identity/v1/"
A = ADMIN_PREFIX
NS = {"k": KMS_XML_NS}
OURS = "kms.example.org"


@pytest.fixture(scope="module")
def community() -> KmsCommunity:
    return generate_community(OURS)


@pytest.fixture(scope="module")
def other() -> KmsCommunity:
    return generate_community("kms.other.org")


@pytest.fixture(scope="module")
def third() -> KmsCommunity:
    return generate_community("kms.third.org", key_period=86_400, key_period_offset=3600)


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XML / "schema.xsd"), validation="lax")


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer.load_or_create(tmp_path_factory.mktemp("dev"))


@pytest.fixture
def store(tmp_path: pathlib.Path, community: KmsCommunity) -> Iterator[KmsStore]:
    with KmsStore(f"sqlite:///{tmp_path / 'kms.sqlite3'}", AtRestKey.generate()) as s:
        s.create_community(community)
        s.add_user(ALICE)
        yield s


@pytest.fixture
def core(store: KmsStore, issuer: DevIssuer) -> KmsCore:
    return KmsCore(store, BearerAuth(issuer.policy()), OURS)


def _valid(schema: xmlschema.XMLSchema, body: bytes) -> None:
    assert [f"{e.path}: {e.reason}" for e in schema.iter_errors(body.decode())] == []


def _post(core: KmsCore, issuer: DevIssuer, path: str, body: bytes = b"", *, user: str = ALICE,
          admin: bool = False, method: str = "POST") -> KmsResponse:
    headers = {"Authorization": f"Bearer {issuer.issue(user, admin=admin, now=NOW)}"}
    return core.handle(method, path, headers, body, NOW)


def _admin(core: KmsCore, issuer: DevIssuer, route: str, body: bytes = b"", method: str = "POST") -> KmsResponse:
    return _post(core, issuer, A + route, body, user=ROOT, admin=True, method=method)


def _json(r: KmsResponse, status: int = 200) -> Any:
    assert r.status == status, r.body
    assert r.content_type == "application/json"
    return json.loads(r.body)


def _error(r: KmsResponse, status: int) -> str:
    assert r.status == status, r.body
    root = ET.fromstring(r.body)
    assert root.findtext("k:KmsError/k:ErrorCode", namespaces=NS) == str(status)
    return root.findtext("k:KmsError/k:ErrorMsg", namespaces=NS) or ""


def _init(c: KmsCommunity) -> bytes:
    return kms_init_xml(c, c.public.kms_uri, now=NOW)


# -- XML ----------------------------------------------------------------------------------------


def test_cert_cache_xml_round_trip_and_schema(other: KmsCommunity, third: KmsCommunity,
                                               schema: xmlschema.XMLSchema) -> None:
    certs = (KmsCertificateInfo(other.public, ("other.org", "sip:other.org")), KmsCertificateInfo(third.public))
    body = kms_cert_cache_xml(ALICE, OURS, 7, certs, now=NOW)
    _valid(schema, body)
    cache = read_kms_cert_cache(body)
    assert cache.cache_num == 7
    assert [c.public for c in cache.certificates] == [other.public, third.public]
    assert cache.certificates[0].domains == ("other.org", "sip:other.org")
    assert {c.role for c in cache.certificates} == {"External"}
    cc = ET.fromstring(body).find("k:KmsMessage/k:KmsCertCache", NS)
    assert cc is not None and cc.get("CacheNum") == "7" and len(cc) == 2
    empty = kms_cert_cache_xml(ALICE, OURS, 0, (), now=NOW)
    _valid(schema, empty)
    assert read_kms_cert_cache(empty) == KmsCertCache(0, ())


def test_read_kms_certificate_from_an_init_response(other: KmsCommunity) -> None:
    info = read_kms_certificate(_init(other))
    assert info.public == other.public and info.role == "Root" and info.version == "1.1.0"
    cert = ET.fromstring(_init(other)).find("k:KmsMessage/k:KmsInit/k:KmsCertificate", NS)
    assert cert is not None
    assert read_kms_certificate(ET.tostring(cert)).public == other.public
    cache = kms_cert_cache_xml(ALICE, OURS, 1, [info, info], now=NOW)
    with pytest.raises(KeyMaterialError, match="exactly one KmsCertificate"):
        read_kms_certificate(cache)


def _swap(doc: bytes, tag: str, value: str) -> bytes:
    root = ET.fromstring(doc)
    el = root.find(f".//k:{tag}", NS)
    assert el is not None
    el.text = value
    return ET.tostring(root)


def _hostile(other: KmsCommunity) -> list[tuple[str, bytes]]:
    init = _init(other)
    z = other.public.z.hex().upper()
    bad_z = z[:-2] + ("00" if not z.endswith("00") else "01")
    return [
        ("DTD", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + init.split(b"?>", 1)[1]),
        ("laughs", b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>'),
        ("namespace", init.replace(KMS_XML_NS.encode(), b"urn:example:not-3gpp")),
        ("Z off the curve", _swap(init, "PubEncKey", bad_z)),
        ("KPAK garbage", _swap(init, "PubAuthKey", "04" + "11" * 64)),
        ("not hex", _swap(init, "PubAuthKey", "zz")),
        ("no Z", init.replace(b"PubEncKey", b"PubEncKeyX")),
        ("format", _swap(init, "UserIdFormat", "9")),
        ("period", _swap(init, "UserKeyPeriod", "-5")),
        ("not XML", b"<KmsResponse"),
        ("KmsError", init.replace(b"<KmsMessage>", b"<KmsError><ErrorCode>500</ErrorCode><ErrorMsg>x</ErrorMsg>"
                                  b"</KmsError><KmsMessage>")),
    ]


def test_hostile_certificates_are_refused(other: KmsCommunity) -> None:
    for name, doc in _hostile(other):
        with pytest.raises(KeyMaterialError):
            read_kms_certificate(doc)
            pytest.fail(name)


# -- store ----------------------------------------------------------------------------------------


def test_store_add_replace_remove_bumps_the_cache_number(store: KmsStore, other: KmsCommunity,
                                                         third: KmsCommunity) -> None:
    assert store.trusted_kms_cache() == (0, [])
    info = KmsCertificateInfo(other.public, ("other.org",))
    assert store.add_trusted_kms(info, actor="ann", now=NOW) == ("added", 1)
    assert store.add_trusted_kms(info, actor="ann", now=NOW + 1) == ("unchanged", 1)
    assert store.add_trusted_kms(KmsCertificateInfo(third.public), actor="bob", now=NOW + 2) == ("added", 2)
    rotated = generate_community("kms.other.org")
    assert store.add_trusted_kms(KmsCertificateInfo(rotated.public), actor="bob", now=NOW + 3) == ("replaced", 3)
    num, trusted = store.trusted_kms_cache()
    assert num == 3 and [(t.kms_uri, t.certificate.public, t.added_by) for t in trusted] == [
        ("kms.other.org", rotated.public, "bob"), ("kms.third.org", third.public, "bob")]
    assert store.remove_trusted_kms("kms.third.org", actor="cy", now=NOW + 4) == 4
    assert store.remove_trusted_kms("kms.third.org", actor="cy", now=NOW + 5) is None
    assert store.cert_cache_number() == 4
    audit = [(a.actor, a.action, a.subject, a.at) for a in store.list_audit() if a.action.startswith("trust")]
    assert audit == [("ann", "trust-add", "kms.other.org", NOW), ("bob", "trust-add", "kms.third.org", NOW + 2),
                     ("bob", "trust-replace", "kms.other.org", NOW + 3),
                     ("cy", "trust-remove", "kms.third.org", NOW + 4)]


def test_store_refuses_our_own_kms_uri(store: KmsStore, community: KmsCommunity) -> None:
    with pytest.raises(TrustRefusedError, match="own URI"):
        store.add_trusted_kms(KmsCertificateInfo(community.public))
    assert store.trusted_kms_cache() == (0, [])


def test_upgrade_from_0003_keeps_the_data_and_adds_the_cert_cache(db_url: sa.URL, community: KmsCommunity,
                                                                  other: KmsCommunity) -> None:
    key = AtRestKey.generate()
    old = KmsStore(db_url, key, migrate=False)
    old.upgrade("0003")
    assert old.schema_revision() == "0003"
    old.create_community(community)
    old.add_user(ALICE, integrity_key=b"k" * 16)
    assert old.add_ticket_user(b"sip:t@example.org", b"p" * 16)
    old.close()
    with KmsStore(db_url, key) as s:
        assert s.schema_revision() == "0005"
        assert s.load_community().public == community.public
        assert s.integrity_key(ALICE) == b"k" * 16
        record = s.ticket_user(b"sip:t@example.org")
        assert record is not None and record.psk == b"p" * 16
        assert s.trusted_kms_cache() == (0, [])
        assert s.add_trusted_kms(KmsCertificateInfo(other.public)) == ("added", 1)
        assert s.trusted_kms_cache()[1][0].certificate.public == other.public


def test_concurrent_changes_each_get_their_own_cache_number(db_url: sa.URL, community: KmsCommunity,
                                                              other: KmsCommunity) -> None:
    """Changes from several connections at once (SQLite, PostgreSQL): every one counted once, all stored."""
    import threading

    publics = [dataclasses.replace(other.public, kms_uri=f"kms{i}.other.org") for i in range(6)]
    key = AtRestKey.generate()
    with KmsStore(db_url, key) as s:
        s.create_community(community)
    stores = [KmsStore(db_url, key) for _ in publics]
    results: list[tuple[str, int]] = []
    barrier = threading.Barrier(len(publics))

    def add(st: KmsStore, public: KmsPublicKeys) -> None:
        barrier.wait()
        results.append(st.add_trusted_kms(KmsCertificateInfo(public)))

    threads = [threading.Thread(target=add, args=pair) for pair in zip(stores, publics, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for st in stores:
        st.close()
    assert sorted(results) == [("added", n) for n in range(1, len(publics) + 1)]
    with KmsStore(db_url, key) as s:
        num, trusted = s.trusted_kms_cache()
        assert num == len(publics) and sorted(t.certificate.public.kms_uri for t in trusted) == sorted(
            p.kms_uri for p in publics)


# -- core: certcache and the admin routes ----------------------------------------------------------


def test_certcache_serves_trusted_certificates(core: KmsCore, issuer: DevIssuer, other: KmsCommunity,
                                               third: KmsCommunity, schema: xmlschema.XMLSchema) -> None:
    added = _json(_admin(core, issuer, "trusted-kms", _init(other)), 201)
    assert added["outcome"] == "added" and added["cache_num"] == 1 and added["kms_uri"] == "kms.other.org"
    assert added["kpak"] == other.public.kpak.hex() and added["z"] == other.public.z.hex()
    assert _json(_admin(core, issuer, "trusted-kms", _init(other)))["outcome"] == "unchanged"
    assert _json(_admin(core, issuer, "trusted-kms", _init(third)), 201)["cache_num"] == 2
    r = _post(core, issuer, P + "certcache")
    assert r.status == 200
    _valid(schema, r.body)
    cache = read_kms_cert_cache(r.body)
    assert cache.cache_num == 2 and [c.public for c in cache.certificates] == [other.public, third.public]
    # The client holds cache 2: nothing changed, no certificate sent.
    same = _post(core, issuer, P + "certcache/2")
    _valid(schema, same.body)
    assert read_kms_cert_cache(same.body) == KmsCertCache(2, ())
    # An older (or unknown) number gets the whole cache.
    for held in ("1", "0", "99"):
        assert read_kms_cert_cache(_post(core, issuer, P + "certcache/" + held).body) == cache
    listing = _json(_admin(core, issuer, "trusted-kms", method="GET"))
    assert listing["cache_num"] == 2 and [t["kms_uri"] for t in listing["trusted_kms"]] == [
        "kms.other.org", "kms.third.org"]
    assert listing["trusted_kms"][0]["added_by"] == ROOT
    removed = _json(_admin(core, issuer, "trusted-kms/" + quote("kms.third.org", safe="") + "/remove"))
    assert removed == {"removed": "kms.third.org", "cache_num": 3}
    _error(_admin(core, issuer, "trusted-kms/kms.third.org/remove"), 404)
    after = read_kms_cert_cache(_post(core, issuer, P + "certcache/2").body)
    assert after.cache_num == 3 and [c.public for c in after.certificates] == [other.public]


def test_certcache_is_signed_for_a_client_with_an_integrity_key(core: KmsCore, issuer: DevIssuer,
                                                                 store: KmsStore, other: KmsCommunity,
                                                                 schema: xmlschema.XMLSchema) -> None:
    ink = bytes(range(32))
    store.set_integrity_key(ALICE, ink)
    _json(_admin(core, issuer, "trusted-kms", _init(other)), 201)
    r = _post(core, issuer, P + "certcache")
    assert r.status == 200 and ET.fromstring(r.body).tag == f"{{{KMS_XML_NS}}}SignedKmsResponse"
    _valid(schema, r.body)
    inner = verify_kms_response(r.body, ink)
    assert [c.public for c in read_kms_cert_cache(inner).certificates] == [other.public]
    assert read_kms_cert_cache(r.body).cache_num == 1


def test_bad_trust_requests_change_nothing(core: KmsCore, issuer: DevIssuer, store: KmsStore,
                                           community: KmsCommunity, other: KmsCommunity) -> None:
    for name, doc in _hostile(other):
        assert _admin(core, issuer, "trusted-kms", doc).status == 400, name
    assert "own" in _error(_admin(core, issuer, "trusted-kms", _init(community)), 400)
    _error(_admin(core, issuer, "trusted-kms", b"<" + b"x" * MAX_BODY_BYTES + b"/>"), 413)
    # A user token is not an admin token: 403, nothing changes.
    _error(_post(core, issuer, A + "trusted-kms", _init(other)), 403)
    _error(_post(core, issuer, A + "trusted-kms/kms.other.org/remove"), 403)
    _error(_admin(core, issuer, "trusted-kms", _init(other), method="PUT"), 405)
    _error(_admin(core, issuer, "trusted-kms/kms.other.org/remove", method="GET"), 405)
    assert store.trusted_kms_cache() == (0, [])
    assert not [a for a in store.list_audit() if a.action.startswith("trust")]
    assert read_kms_cert_cache(_post(core, issuer, P + "certcache").body) == KmsCertCache(0, ())


# -- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path: pathlib.Path, community: KmsCommunity) -> pathlib.Path:
    directory = tmp_path / "kms"
    directory.mkdir()
    key = create_at_rest_key_file(directory / "at_rest.key")
    with KmsStore(f"sqlite:///{directory / 'kms.sqlite3'}", key) as s:
        s.create_community(community)
    return directory


def test_cli_trust_add_list_remove(data: pathlib.Path, tmp_path: pathlib.Path, other: KmsCommunity,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    init = tmp_path / "other_init.xml"
    init.write_bytes(_init(other))
    assert main(["kms", "trust", "add", "--data", str(data), str(init)]) == 0
    assert capsys.readouterr().out == "added kms.other.org (cache number 1)\n"
    assert main(["kms", "trust", "add", "--data", str(data), str(init)]) == 0
    assert capsys.readouterr().out == "unchanged kms.other.org (cache number 1)\n"
    assert main(["kms", "trust", "list", "--data", str(data)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["cache_num"] == 1 and listing["trusted_kms"][0]["kpak"] == other.public.kpak.hex()
    assert listing["trusted_kms"][0]["added_by"] == "cli"
    assert main(["kms", "trust", "remove", "--data", str(data), "kms.other.org"]) == 0
    assert capsys.readouterr().out == "removed kms.other.org (cache number 2)\n"
    assert main(["kms", "trust", "remove", "--data", str(data), "kms.other.org"]) == 1
    assert "not trusted" in capsys.readouterr().err


def test_cli_trust_bad_input_is_exit_2_one_line(data: pathlib.Path, tmp_path: pathlib.Path,
                                                community: KmsCommunity, other: KmsCommunity,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cases = [(name, doc) for name, doc in _hostile(other)] + [("own", _init(community))]
    for name, doc in cases:
        bad = tmp_path / "bad.xml"
        bad.write_bytes(doc)
        assert main(["kms", "trust", "add", "--data", str(data), str(bad)]) == 2, name
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (name, err)
    assert main(["kms", "trust", "add", "--data", str(data), str(tmp_path / "missing.xml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with KmsStore(f"sqlite:///{data / 'kms.sqlite3'}", AtRestKey.from_file(data / "at_rest.key")) as s:
        assert s.trusted_kms_cache() == (0, [])


# -- over HTTP, a real server ---------------------------------------------------------------------


def test_certcache_over_http(tmp_path: pathlib.Path, other: KmsCommunity, schema: xmlschema.XMLSchema) -> None:
    from test_kms_http import Kms, mikey, post, token

    kms = Kms(tmp_path, tmp_path / "kms", "--dev-tokens")
    try:
        tok = token(kms.data, ALICE)
        status, _, body = post(kms.url + P + "certcache", tok)
        assert status == 200 and read_kms_cert_cache(body) == KmsCertCache(0, ())
        init = tmp_path / "other_init.xml"
        init.write_bytes(_init(other))
        added = mikey("kms", "trust", "add", "--data", str(kms.data), str(init))
        assert added.returncode == 0 and added.stdout == "added kms.other.org (cache number 1)\n", added.stderr
        status, headers, body = post(kms.url + P + "certcache", tok)
        assert status == 200 and headers["content-type"].startswith("application/xml")
        _valid(schema, body)
        cache = read_kms_cert_cache(body)
        assert cache.cache_num == 1 and [c.public for c in cache.certificates] == [other.public]
        status, _, body = post(kms.url + P + "certcache/1", tok)
        assert status == 200 and read_kms_cert_cache(body) == KmsCertCache(1, ())
        # The admin route over HTTP: a user token is refused, an admin token removes the KMS.
        remove = kms.url + A + "trusted-kms/" + quote("kms.other.org", safe="") + "/remove"
        assert post(remove, tok)[0] == 403
        admin = mikey("kms", "token", "--data", str(kms.data), "--user", ROOT, "--admin")
        assert admin.returncode == 0, admin.stderr
        status, _, body = post(remove, admin.stdout.strip())
        assert status == 200 and json.loads(body) == {"removed": "kms.other.org", "cache_num": 2}
        status, _, body = post(kms.url + P + "certcache/1", tok)
        assert status == 200 and read_kms_cert_cache(body) == KmsCertCache(2, ())
        assert kms.proc.poll() is None
    finally:
        kms.stop()
