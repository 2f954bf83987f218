"""The sans-I/O KMS core (mikey.kms.core): TS 33.180 Annex D requests in, XML responses out."""

from __future__ import annotations

import base64
import pathlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import xmlschema

from mikey.errors import KeyMaterialError
from mikey.identities import ntp_from_unix
from mikey.kms import KmsCommunity, generate_community, load_keystore_xml
from mikey.kms.auth import BearerAuth, DevIssuer
from mikey.kms.core import MAX_BODY_BYTES, KmsCore, KmsResponse
from mikey.kms.store import AtRestKey, KmsStore
from mikey.kms.xml import KMS_XML_NS, read_kms_init, read_kms_key_prov
from mikey.modes.sakke import SakkeInitiator, SakkeResponder

XML = pathlib.Path(__file__).parent / "vectors" / "kms_xml_ts33180"
NOW = 1_780_000_000.0
ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"
P = "/keymanagement/identity/v1/"
NS = {"k": KMS_XML_NS}


@pytest.fixture(scope="module")
def community() -> KmsCommunity:
    return generate_community("kms.example.org")


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    built = xmlschema.XMLSchema(str(XML / "schema.xsd"), validation="lax")
    assert [e.message.split(":")[0] for e in built.all_errors] == ["unknown type 'krr"]
    return built


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer.load_or_create(tmp_path_factory.mktemp("dev"))


@pytest.fixture
def store(tmp_path: pathlib.Path, community: KmsCommunity) -> Iterator[KmsStore]:
    with KmsStore(f"sqlite:///{tmp_path / 'kms.sqlite3'}", AtRestKey.generate()) as s:
        s.create_community(community)
        s.add_user(ALICE)
        s.add_user(BOB)
        yield s


@pytest.fixture
def core(store: KmsStore, issuer: DevIssuer) -> KmsCore:
    return KmsCore(store, BearerAuth(issuer.policy()), "kms.example.org")


def _post(core: KmsCore, issuer: DevIssuer, path: str, user: str | None = ALICE, body: bytes = b"",
          now: float = NOW, token: str | None = None) -> KmsResponse:
    headers = {"Content-Type": "application/xml"}
    if token is None and user is not None:
        token = issuer.issue(user, now=now)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return core.handle("POST", path, headers, body, now)


def _valid(schema: xmlschema.XMLSchema, body: bytes) -> None:
    assert [f"{e.path}: {e.reason}" for e in schema.iter_errors(body.decode())] == []


def _error(r: KmsResponse, status: int) -> str:
    assert r.status == status, r.body
    root = ET.fromstring(r.body)
    assert root.tag == f"{{{KMS_XML_NS}}}KmsResponse"
    assert root.findtext("k:KmsError/k:ErrorCode", namespaces=NS) == str(status)
    return root.findtext("k:KmsError/k:ErrorMsg", namespaces=NS) or ""


def test_init_keyprov_certcache(core: KmsCore, issuer: DevIssuer, community: KmsCommunity,
                                schema: xmlschema.XMLSchema) -> None:
    init = _post(core, issuer, P + "init")
    assert init.status == 200 and init.content_type.startswith("application/xml")
    _valid(schema, init.body)
    assert read_kms_init(init.body) == community.public
    prov = _post(core, issuer, P + "keyprov")
    assert prov.status == 200
    _valid(schema, prov.body)
    [keys] = read_kms_key_prov(prov.body, community.public)
    assert keys.uri == ALICE and keys.period_no == core.period_of(NOW)
    cache = _post(core, issuer, P + "certcache/3")
    assert cache.status == 200
    _valid(schema, cache.body)
    root = ET.fromstring(cache.body)
    cc = root.find("k:KmsMessage/k:KmsCertCache", NS)
    assert cc is not None and len(cc) == 0 and cc.get("CacheNum") == "0"


def test_reprovisioning_is_identical_raw_and_encoded(core: KmsCore, issuer: DevIssuer, store: KmsStore) -> None:
    first = _post(core, issuer, P + "keyprov/" + quote(ALICE, safe=""))
    second = _post(core, issuer, P + "keyprov/" + ALICE, now=NOW + 60)  # raw URI, as deployed clients send
    third = _post(core, issuer, P + "keyprov")
    k1, k2, k3 = (read_kms_key_prov(r.body, core.public)[0] for r in (first, second, third))
    assert {(k.identifier, k.ssk, k.pvt, k.rsk, k.period_no) for k in (k1, k2, k3)} == {
        (k1.identifier, k1.ssk, k1.pvt, k1.rsk, k1.period_no)}
    assert len(store.list_key_sets(uri=ALICE)) == 1


def test_ntp_time_in_next_period_returns_both(core: KmsCore, issuer: DevIssuer, store: KmsStore,
                                               schema: xmlschema.XMLSchema) -> None:
    nxt = NOW + core.public.key_period
    r = _post(core, issuer, P + f"keyprov/{quote(ALICE, safe='')}/{ntp_from_unix(nxt):016x}")
    assert r.status == 200
    _valid(schema, r.body)
    periods = [k.period_no for k in read_kms_key_prov(r.body, core.public)]
    assert periods == [core.period_of(NOW), core.period_of(NOW) + 1]
    same = _post(core, issuer, P + f"keyprov/{ALICE}/{ntp_from_unix(NOW):016X}")
    assert [k.period_no for k in read_kms_key_prov(same.body, core.public)] == [core.period_of(NOW)]
    far = _post(core, issuer, P + f"keyprov/{ALICE}/{ntp_from_unix(NOW + 5 * core.public.key_period):016x}")
    _error(far, 400)
    assert len(store.list_key_sets()) == 2


def test_other_users_keys_are_refused(core: KmsCore, issuer: DevIssuer, store: KmsStore) -> None:
    r = _post(core, issuer, P + "keyprov/" + quote(BOB, safe=""), user=ALICE)
    assert "another user" in _error(r, 403)
    body = (f'<KmsRequest xmlns="{KMS_XML_NS}"><UserUri>{BOB}</UserUri><KmsUri>kms.example.org</KmsUri>'
            f"<Time>2026-01-01T00:00:00</Time><ClientReqUrl>http://x/</ClientReqUrl></KmsRequest>").encode()
    _error(_post(core, issuer, P + "keyprov", user=ALICE, body=body), 403)
    assert store.list_key_sets() == []


def test_unregistered_and_disabled_users(core: KmsCore, issuer: DevIssuer, store: KmsStore) -> None:
    carol = "sip:carol@example.org"
    assert "not registered" in _error(_post(core, issuer, P + "keyprov", user=carol), 404)
    store.add_user(carol, enabled=False)
    assert "disabled" in _error(_post(core, issuer, P + "keyprov", user=carol), 403)
    assert store.list_key_sets() == []


def test_token_refusals_are_401_with_challenge(core: KmsCore, issuer: DevIssuer, store: KmsStore) -> None:
    expired = issuer.issue(ALICE, now=NOW - 7200, ttl=60)
    r = _post(core, issuer, P + "keyprov", token=expired)
    _error(r, 401)
    assert dict(r.headers)["WWW-Authenticate"].startswith('Bearer realm="mikey-kms", error="invalid_token"')
    missing = _post(core, issuer, P + "init", user=None)
    _error(missing, 401)
    assert dict(missing.headers)["WWW-Authenticate"] == 'Bearer realm="mikey-kms"'
    other = DevIssuer.load_or_create(pathlib.Path(store.url.database or ".").parent / "other")
    _error(_post(core, issuer, P + "keyprov", token=other.issue(ALICE, now=NOW)), 401)
    assert store.list_key_sets() == []


def test_routes_and_methods(core: KmsCore, issuer: DevIssuer) -> None:
    _error(_post(core, issuer, P + "nothing"), 404)
    _error(_post(core, issuer, "/"), 404)
    r = core.handle("GET", P + "init", {"Authorization": f"Bearer {issuer.issue(ALICE, now=NOW)}"}, b"", NOW)
    _error(r, 405)
    assert dict(r.headers)["Allow"] == "POST"
    _error(_post(core, issuer, P + "certcache/x"), 400)
    _error(_post(core, issuer, P + "init/extra"), 404)
    _error(_post(core, issuer, P + "keyprov/%ff"), 400)


XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<KmsRequest xmlns="urn:3gpp:ns:mcsecKMSInterface:1.0"><UserUri>&x;</UserUri></KmsRequest>')
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
          + b"".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">'.encode()
                     for p, n in zip("abcdefgh", "bcdefghi", strict=True))
          + b']><KmsRequest xmlns="urn:3gpp:ns:mcsecKMSInterface:1.0"><UserUri>&i;</UserUri></KmsRequest>')


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        (XXE, 400, "DTD"),
        (LAUGHS, 400, "DTD"),
        (b"<KmsRequest>" + b" " * MAX_BODY_BYTES + b"</KmsRequest>", 413, "larger"),
        (b'<KmsRequest xmlns="urn:other"><UserUri>sip:alice@example.org</UserUri></KmsRequest>', 400, "namespace"),
        (b"<KmsRequest", 400, "well-formed"),
        (f'<KmsRequest xmlns="{KMS_XML_NS}"><KmsUri>kms.other.org</KmsUri></KmsRequest>'.encode(), 400,
         "another KMS"),
        (f'<SignedKmsRequest xmlns="{KMS_XML_NS}"><Other/></SignedKmsRequest>'.encode(), 400, "no KmsRequest"),
        (f'<SignedKmsRequest xmlns="{KMS_XML_NS}"><KmsRequest><UserUri>{ALICE}</UserUri></KmsRequest>'
         f"</SignedKmsRequest>".encode(), 403, "integrity key"),
    ],
)
def test_hostile_bodies(core: KmsCore, issuer: DevIssuer, store: KmsStore, body: bytes, status: int,
                        why: str) -> None:
    before = (store.list_users(), store.list_audit(), store.list_generations())
    r = _post(core, issuer, P + "keyprov", body=body)
    msg = _error(r, status)
    assert why in msg and b"root:" not in r.body
    assert store.list_key_sets() == []
    assert (store.list_users(), store.list_audit(), store.list_generations()) == before
    assert _post(core, issuer, P + "keyprov").status == 200  # still serving


def test_kms_request_body_is_accepted(core: KmsCore, issuer: DevIssuer) -> None:
    body = (f'<?xml version="1.0"?><KmsRequest xmlns="{KMS_XML_NS}"><UserUri>{ALICE}</UserUri>'
            f"<KmsUri>kms.example.org</KmsUri><Time>2026-01-01T00:00:00</Time>"
            f"<ClientReqUrl>http://kms.example.org/</ClientReqUrl></KmsRequest>").encode()
    r = _post(core, issuer, P + "keyprov", body=body)
    assert r.status == 200 and read_kms_key_prov(r.body, core.public)[0].uri == ALICE


def test_core_refuses_another_kms_uri(store: KmsStore, issuer: DevIssuer) -> None:
    with pytest.raises(ValueError, match="kms.other.org"):
        KmsCore(store, BearerAuth(issuer.policy()), "kms.other.org")


def test_served_keys_run_a_sakke_exchange(core: KmsCore, issuer: DevIssuer) -> None:
    """Keystores built from the served XML complete a MIKEY-SAKKE exchange (RFC 6509)."""
    init = _post(core, issuer, P + "init").body
    stores = {u: load_keystore_xml(init, [_post(core, issuer, P + "keyprov", user=u).body], validate=True)
              for u in (ALICE, BOB)}
    i = SakkeInitiator(stores[ALICE], BOB, key_type="pck")
    data = i.create_message(NOW)
    r = SakkeResponder(stores[BOB], initiator_uri=ALICE).receive(data, NOW + 1).result
    assert r.tgk == i.result.tgk and len(r.tgk) == 16


def _with_user_id(body: bytes, text: str) -> bytes:
    return re.sub(rb"<UserID>[^<]*</UserID>", f"<UserID>{text}</UserID>".encode(), body)


def test_user_id_is_read_in_hex_and_base64(core: KmsCore, issuer: DevIssuer, schema: xmlschema.XMLSchema) -> None:
    """TS 33.180 KmsKeySet UserID (xsd:string): we emit lowercase hex and read hex (any case) or base64."""
    body = _post(core, issuer, P + "keyprov").body
    [served] = read_kms_key_prov(body, core.public)
    emitted = re.search(rb"<UserID>([^<]*)</UserID>", body)
    assert emitted is not None and emitted.group(1).decode() == served.identifier.hex()  # what we emit
    for text in (served.identifier.hex().upper(), base64.b64encode(served.identifier).decode()):
        variant = _with_user_id(body, text)
        _valid(schema, variant)
        [keys] = read_kms_key_prov(variant, core.public)
        assert keys.identifier == served.identifier and keys.rsk == served.rsk
    other = base64.b64encode(bytes(32)).decode()
    for bad, why in ((other, "not the UID"), ("not-an-id!", "neither hex nor base64"),
                     (served.identifier.hex()[:-1], "neither hex nor base64")):
        with pytest.raises(KeyMaterialError, match=why):
            read_kms_key_prov(_with_user_id(body, bad), core.public)


def test_keyprov_issues_under_the_active_generation(core: KmsCore, issuer: DevIssuer, store: KmsStore) -> None:
    first = read_kms_key_prov(_post(core, issuer, P + "keyprov").body, core.public)[0]
    rotated = generate_community("kms.example.org")
    assert store.rotate_community(rotated, actor="test") == 2
    assert read_kms_init(_post(core, issuer, P + "init").body) == rotated.public == core.public
    second = read_kms_key_prov(_post(core, issuer, P + "keyprov").body, rotated.public)[0]
    second.validate()
    assert second.identifier == first.identifier and second.ssk != first.ssk
    assert [(r.generation, r.user_uri) for r in store.list_key_sets()] == [(1, ALICE), (2, ALICE)]
