"""Signed KMS documents (TS 33.180 §D.2.2/§D.2.3): mikey.kms.dsig, the core signing for clients with an InK,
and fetch_keystore verifying over real HTTP (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import pathlib
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import xmlschema
from asgi_server import serving

from mikey.kms import KmsCommunity, generate_community
from mikey.kms.auth import BearerAuth, DevIssuer
from mikey.kms.client import KmsFetchError, fetch_keystore
from mikey.kms.core import KmsCore, KmsResponse
from mikey.kms.dsig import (
    KmsSignatureError,
    is_signed,
    sign_kms_request,
    sign_kms_response,
    verify_kms_request,
    verify_kms_response,
)
from mikey.kms.store import AtRestKey, KmsStore
from mikey.kms.xml import KMS_XML_NS, kms_init_xml, kms_key_prov_xml, kms_request_xml, read_kms_key_prov

XML = pathlib.Path(__file__).parent / "vectors" / "kms_xml_ts33180"
NOW = 1_780_000_000.0
ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"
P = "/keymanagement/identity/v1/"
INK = bytes(range(1, 33))
OTHER = bytes(range(101, 133))
NS = {"k": KMS_XML_NS, "ds": "http://www.w3.org/2000/09/xmldsig#"}


@pytest.fixture(scope="module")
def community() -> KmsCommunity:
    return generate_community("kms.example.org")


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    built = xmlschema.XMLSchema(str(XML / "schema.xsd"), validation="lax")
    assert [e.message.split(":")[0] for e in built.all_errors] == ["unknown type 'krr"]  # ds: is resolved
    return built


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer.load_or_create(tmp_path_factory.mktemp("dev"))


@pytest.fixture
def store(tmp_path: pathlib.Path, community: KmsCommunity) -> Iterator[KmsStore]:
    with KmsStore(f"sqlite:///{tmp_path / 'kms.sqlite3'}", AtRestKey.generate()) as s:
        s.create_community(community)
        s.add_user(ALICE, integrity_key=INK)
        s.add_user(BOB)
        yield s


@pytest.fixture
def core(store: KmsStore, issuer: DevIssuer) -> KmsCore:
    return KmsCore(store, BearerAuth(issuer.policy()), "kms.example.org")


def _valid(schema: xmlschema.XMLSchema, body: bytes) -> None:
    assert [f"{e.path}: {e.reason}" for e in schema.iter_errors(body.decode())] == []


def _post(core: KmsCore, issuer: DevIssuer, path: str, user: str = ALICE, body: bytes = b"") -> KmsResponse:
    headers = {"Authorization": f"Bearer {issuer.issue(user, now=NOW)}"}
    return core.handle("POST", path, headers, body, NOW)


def _keyprov_document(community: KmsCommunity) -> bytes:
    from mikey.kms import issue_user_keys

    return kms_key_prov_xml(community, issue_user_keys(community, ALICE, period_no=686), now=NOW)


# -- mikey.kms.dsig ---------------------------------------------------------------------------------


def test_signed_response_round_trip_is_schema_valid(community: KmsCommunity, schema: xmlschema.XMLSchema) -> None:
    plain = _keyprov_document(community)
    signed = sign_kms_response(plain, INK)
    _valid(schema, signed)
    assert is_signed(signed) and not is_signed(plain)
    # The inner KmsResponse follows the wrapper's start tag directly (deployed clients need that).
    assert re.search(rb'<SignedKmsResponse [^>]*Id="signedxmldoc"[^>]*><KmsResponse[ >]', signed)
    root = ET.fromstring(signed)
    [sig] = root.findall("ds:Signature", NS)
    assert sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm") == (  # type: ignore[union-attr]
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256")
    ref = sig.find("ds:SignedInfo/ds:Reference", NS)
    assert ref is not None and ref.get("URI") == "#signedxmldoc"
    assert [t.get("Algorithm") for t in ref.findall("ds:Transforms/ds:Transform", NS)][0] == (
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature")
    inner = verify_kms_response(signed, INK)
    assert read_kms_key_prov(inner, community.public)[0].rsk == read_kms_key_prov(plain, community.public)[0].rsk
    init = sign_kms_response(kms_init_xml(community, ALICE, now=NOW), INK)
    _valid(schema, init)
    verify_kms_response(init, INK)


def _flip_hex(document: bytes, tag: bytes) -> bytes:
    start = document.index(b">", document.index(b"<" + tag)) + 1
    digit = document[start + 10:start + 11]
    return document[:start + 10] + (b"A" if digit != b"A" else b"B") + document[start + 11:]


@pytest.mark.parametrize("tag", [b"UserDecryptKey", b"UserSigningKeySSK", b"UserPubTokenPVT", b"UserID",
                                 b"ds:DigestValue", b"ds:SignatureValue"])
def test_a_changed_byte_fails_verification(community: KmsCommunity, tag: bytes) -> None:
    signed = sign_kms_response(_keyprov_document(community), INK)
    tampered = _flip_hex(signed, tag)
    assert tampered != signed
    with pytest.raises(KmsSignatureError, match="does not verify|cannot be checked"):
        verify_kms_response(tampered, INK)


def test_refusals(community: KmsCommunity) -> None:
    plain = _keyprov_document(community)
    signed = sign_kms_response(plain, INK)
    with pytest.raises(KmsSignatureError, match="does not verify"):
        verify_kms_response(signed, OTHER)
    with pytest.raises(KmsSignatureError, match="not a SignedKmsResponse"):
        verify_kms_response(plain, INK)
    unsigned = re.sub(rb"<ds:Signature .*</ds:Signature>", b"", signed, flags=re.S)
    with pytest.raises(KmsSignatureError):
        verify_kms_response(unsigned, INK)
    inner_end = signed.index(b"</KmsResponse>") + len(b"</KmsResponse>")
    doubled = signed[:inner_end] + signed[signed.index(b"<KmsResponse"):inner_end] + signed[inner_end:]
    with pytest.raises(KmsSignatureError, match="one KmsResponse"):
        verify_kms_response(doubled, INK)
    dtd = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "y">]>' + signed.split(b"?>", 1)[1]
    with pytest.raises(KmsSignatureError, match="DTD"):
        verify_kms_response(dtd, INK)
    with pytest.raises(KmsSignatureError, match="does not parse"):
        verify_kms_response(signed[:-20], INK)
    with pytest.raises(KmsSignatureError, match="at least 16 octets"):
        verify_kms_response(signed, b"short")
    request = sign_kms_request(kms_request_xml(ALICE, "kms.example.org", "http://kms/x", now=NOW), INK)
    with pytest.raises(KmsSignatureError, match="not a SignedKmsResponse"):
        verify_kms_response(request, INK)  # a signed request is not a signed response
    assert b"<UserUri>sip:alice@example.org</UserUri>" in verify_kms_request(request, INK)


# -- the core ---------------------------------------------------------------------------------------


def test_a_user_with_an_integrity_key_gets_signed_responses(core: KmsCore, issuer: DevIssuer,
                                                            community: KmsCommunity,
                                                            schema: xmlschema.XMLSchema) -> None:
    for path in ("init", "keyprov", "certcache"):
        r = _post(core, issuer, P + path)
        assert r.status == 200, r.body
        _valid(schema, r.body)
        assert r.body.split(b"?>", 1)[1].lstrip().startswith(b"<SignedKmsResponse")
        inner = verify_kms_response(r.body, INK)
        assert b"<UserUri>sip:alice@example.org</UserUri>" in inner
    [keys] = read_kms_key_prov(verify_kms_response(_post(core, issuer, P + "keyprov").body, INK), community.public)
    keys.validate()
    bob = _post(core, issuer, P + "keyprov", user=BOB)  # no InK: unsigned
    assert bob.status == 200 and not is_signed(bob.body)


def _signed_request(user: str, key: bytes, kms_uri: str = "kms.example.org") -> bytes:
    return sign_kms_request(kms_request_xml(user, kms_uri, f"http://{kms_uri}{P}keyprov", now=NOW), key)


def test_signed_requests_are_verified_before_anything_is_issued(core: KmsCore, issuer: DevIssuer,
                                                               store: KmsStore) -> None:
    wrong = _post(core, issuer, P + "keyprov", body=_signed_request(ALICE, OTHER))
    assert wrong.status == 403 and b"signature is refused" in wrong.body and not is_signed(wrong.body)
    forged = _signed_request(ALICE, INK).replace(b"kms.example.org</KmsUri>", b"kms.example.org </KmsUri>")
    assert _post(core, issuer, P + "keyprov", body=forged).status == 403
    no_key = _post(core, issuer, P + "keyprov", user=BOB, body=_signed_request(BOB, INK))
    assert no_key.status == 403 and b"needs an integrity key" in no_key.body
    assert store.list_key_sets() == []
    good = _post(core, issuer, P + "keyprov/" + quote(ALICE, safe=""), body=_signed_request(ALICE, INK))
    assert good.status == 200 and is_signed(good.body)
    verify_kms_response(good.body, INK)
    assert [r.user_uri for r in store.list_key_sets()] == [ALICE]


# -- the client over real HTTP ----------------------------------------------------------------------


@pytest.fixture
def served(core: KmsCore) -> Iterator[str]:
    """The real ASGI app on uvicorn, 127.0.0.1, a free port; stopped afterwards."""
    with serving(core) as url:
        yield url


def test_fetch_with_the_integrity_key_verifies_and_signs(served: str, issuer: DevIssuer, store: KmsStore,
                                                         community: KmsCommunity) -> None:
    now = time.time()
    token = issuer.issue(ALICE, now=now)
    keystore = fetch_keystore(served, token, integrity_key=INK, now=now)
    assert keystore.uri == ALICE and len(keystore.key_sets) == 2 and keystore.kms == community.public
    issued = store.list_key_sets(uri=ALICE)
    assert len(issued) == 2  # the signed keyprov requests were verified and served
    with pytest.raises(KmsFetchError, match="does not verify"):
        fetch_keystore(served, token, integrity_key=OTHER, now=now)
    bob = issuer.issue(BOB, now=now)
    with pytest.raises(KmsFetchError, match="not a SignedKmsResponse"):
        fetch_keystore(served, bob, integrity_key=INK, now=now)  # the KMS answered unsigned: refused
    assert store.list_key_sets(uri=BOB) == []
    assert len(fetch_keystore(served, bob, now=now).key_sets) == 2  # without a key: unsigned is fine
    assert len(store.list_key_sets(uri=ALICE)) == 2  # nothing re-issued

