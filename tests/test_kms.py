"""Library KMS (RFC 6507 §5.1.1, RFC 6508 §6.1), the identity keystore's JSON, and the TS 33.180 KMS XML.

The XML the writer produces is checked against the TS 33.180 schema
(tests/vectors/kms_xml_ts33180/schema.xsd) with a real XSD validator.
"""

from __future__ import annotations

import json
import pathlib
import re
import xml.etree.ElementTree as ET

import pytest
import xmlschema

from mikey.constants import SakkeIDScheme
from mikey.errors import KeyMaterialError
from mikey.identities import uid_3gpp
from mikey.keystore import IdentityKeys, KmsPublicKeys, SakkeKeystore
from mikey.kms import (
    KMS_XML_NS,
    KmsCommunity,
    generate_community,
    issue_user_keys,
    kms_init_xml,
    kms_key_prov_xml,
    load_keystore_xml,
    read_kms_init,
    read_kms_key_prov,
    user_key_document,
)
from mikey.kms.xml import MAX_KMS_XML_BYTES

XML = pathlib.Path(__file__).parent / "vectors" / "kms_xml_ts33180"
NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def community() -> KmsCommunity:
    return generate_community("kms.example.org", key_period=86400, key_period_offset=3600)


def test_issued_keys_validate(community: KmsCommunity) -> None:
    keys = issue_user_keys(community, "sip:alice@example.org", period_no=7)
    assert keys.identifier == uid_3gpp("sip:alice@example.org", "kms.example.org", 86400, 3600, 7)
    keys.validate()  # [SSK]G = [HS]PVT + KPAK and <[a]P + Z, RSK> = g
    other = generate_community("kms.example.org")
    store = SakkeKeystore(other.public, keys.uri, [keys])
    with pytest.raises(KeyMaterialError):
        issue_user_keys(other, keys.uri, period_no=7).__class__(
            keys.uri, keys.identifier, keys.ssk, keys.pvt, keys.rsk, other.public, 7
        ).validate()
    assert store.user_keys(keys.identifier) is keys


def test_community_file_round_trip(community: KmsCommunity, tmp_path: pathlib.Path) -> None:
    doc = community.to_dict()
    again = KmsCommunity.from_dict(json.loads(json.dumps(doc)))
    assert again.public == community.public and again.ksak == community.ksak
    doc["secrets"]["ksak"] = f"{community.ksak ^ 1:064x}"
    with pytest.raises(KeyMaterialError):
        KmsCommunity.from_dict(doc)
    assert f"{community.ksak:x}" not in repr(community)


def test_user_key_json_shape(community: KmsCommunity, tmp_path: pathlib.Path) -> None:
    a = issue_user_keys(community, "sip:alice@example.org", now=NOW)
    b = issue_user_keys(community, "sip:alice@example.org", period_no=(a.period_no or 0) + 1)
    doc = user_key_document(community, a, b)
    assert set(doc) >= {"kms_uri", "community", "user", "period"}
    assert doc["period"] == {"key_period": 86400, "key_period_offset": 3600, "period_no": a.period_no}
    assert doc["user"]["ssk"] == a.ssk.hex() and doc["community"]["kpak"] == community.public.kpak.hex()
    path = tmp_path / "alice.json"
    path.write_text(json.dumps(doc))
    store = SakkeKeystore.load_json(str(path), validate=True)
    assert {k.identifier for k in store.key_sets} == {a.identifier, b.identifier}
    # "uid" is optional: computed from the URI and the period
    del doc["user"]["uid"]
    doc.pop("users")
    assert SakkeKeystore.from_dict(doc).key_sets[0].identifier == a.identifier
    with pytest.raises(KeyMaterialError):
        SakkeKeystore.from_dict({"kms_uri": "x", "community": {"kpak": "zz"}})


def test_rfc6509_community() -> None:
    c = generate_community("kms.example.org", id_scheme=SakkeIDScheme.TEL_URI_MONTHLY)
    keys = issue_user_keys(c, "tel:+447700900123", month="2011-02")
    assert keys.identifier == b"2011-02\x00tel:+447700900123\x00"
    doc = user_key_document(c, keys)
    del doc["user"]["uid"]
    doc["user"]["month"] = "2011-02"
    assert SakkeKeystore.from_dict(doc, validate=True).key_sets[0].identifier == keys.identifier


def test_public_keys_dict_round_trip(community: KmsCommunity) -> None:
    """The community part of both JSON files is written and read by KmsPublicKeys alone."""
    doc = community.public.to_dict()
    assert doc["period"] == {"key_period": 86400, "key_period_offset": 3600}
    assert KmsPublicKeys.from_dict(json.loads(json.dumps(doc))) == community.public
    assert {k: v for k, v in community.to_dict().items() if k != "secrets"} == doc
    with pytest.raises(KeyMaterialError, match="malformed KMS public keys"):
        KmsPublicKeys.from_dict({"kms_uri": "x"})


def test_community_file_errors_never_quote_secrets(community: KmsCommunity) -> None:
    doc = community.to_dict()
    doc["secrets"]["z_master"] = "not hex " + doc["secrets"]["ksak"]
    with pytest.raises(KeyMaterialError) as info:
        KmsCommunity.from_dict(doc)
    assert doc["secrets"]["ksak"] not in str(info.value) and "secrets" in str(info.value)


# --------------------------------------------------------------------------- TS 33.180 KMS XML


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    """The TS 33.180 KMS interface schema.

    It imports the xmldsig and xmlenc schemas (xmlschema ships both) and the KMS
    redirect schema (urn:3gpp:ns:mcsecKMSKRR:1.0), which is not in the vectors; that
    namespace is used only by KmsRequest's KrrList, so the schema is built laxly and
    that unresolved type must be its only error.
    """
    built = xmlschema.XMLSchema(str(XML / "schema.xsd"), validation="lax")
    assert [e.message.split(":")[0] for e in built.all_errors] == ["unknown type 'krr"]
    return built


def _errors(schema: xmlschema.XMLSchema, document: bytes | pathlib.Path) -> list[str]:
    source = document.decode() if isinstance(document, bytes) else str(document)
    return [f"{e.path}: {e.reason}" for e in schema.iter_errors(source)]


def test_sample_3gpp_xml() -> None:
    """The Streamwide KMS samples: plaintext KmsInit and KmsKeyProv (test data, not a consistent key set)."""
    store = load_keystore_xml(XML / "test_init_response.xml", [XML / "test_key_prov_response.xml"])
    assert store.kms_uri == "localhost:8080" and store.uri == "alice@org.com"
    assert store.key_period == 2592000 and store.key_period_offset == 0 and store.id_scheme == 2
    (k,) = store.key_sets
    assert k.period_no == 625
    assert k.identifier.hex() == "060c5cddd13b87be1e37d3ff091101684b88aadef26c409a8b49c8da9dd81a05"
    assert k.identifier == uid_3gpp("alice@org.com", "localhost:8080", 2592000, 0, 625)
    assert k.pvt.hex().startswith("04fa3c2493") and len(k.rsk) == 257 and len(k.ssk) == 32
    with pytest.raises(KeyMaterialError):
        store.validate()  # the README says these values are not a consistent key set


def test_sample_responses_against_the_schema(schema: xmlschema.XMLSchema) -> None:
    """The sample KmsInit is valid; the sample KmsKeyProv only lacks xsi:type on its three key elements.

    Their type (abstractKeyContentType) is abstract, so a valid document names
    KeyContentType (plaintext) or EncKeyContentType.  The reader accepts the
    deployed KMS's untyped form all the same (test_sample_3gpp_xml).
    """
    assert _errors(schema, XML / "test_init_response.xml") == []
    errors = _errors(schema, XML / "test_key_prov_response.xml")
    prefix = "/KmsResponse/KmsMessage/KmsKeyProv/KmsKeySet/"
    assert errors == [f"{prefix}{tag}: XsdComplexType(name='abstractKeyContentType') is abstract"
                      for tag in ("UserDecryptKey", "UserSigningKeySSK", "UserPubTokenPVT")]


def test_our_xml_is_schema_valid(community: KmsCommunity, schema: xmlschema.XMLSchema) -> None:
    a = issue_user_keys(community, "sip:bob@example.org", now=NOW)
    b = issue_user_keys(community, "sip:bob@example.org", period_no=(a.period_no or 0) + 1)
    init = kms_init_xml(community, "sip:bob@example.org", now=NOW)
    prov = kms_key_prov_xml(community, a, b, now=NOW)
    assert _errors(schema, init) == [] and _errors(schema, prov) == []
    # The RFC 6509 scheme too (UserIdFormat 1, KeyPeriodNo written as 0).
    c = generate_community("kms.example.org", id_scheme=SakkeIDScheme.TEL_URI_MONTHLY)
    monthly = issue_user_keys(c, "tel:+447700900123", month="2011-02")
    assert _errors(schema, kms_init_xml(c, "tel:+447700900123", now=NOW)) == []
    assert _errors(schema, kms_key_prov_xml(c, monthly, now=NOW)) == []
    # What deployed clients need (kms-deployed-clients notes): no empty element, the TS 33.180 namespace.
    for doc in (init, prov):
        root = ET.fromstring(doc)
        assert root.tag == f"{{{KMS_XML_NS}}}KmsResponse"
        assert all((el.text or "").strip() or len(el) for el in root.iter()), doc
    assert ET.fromstring(init).findtext(f"{{{KMS_XML_NS}}}Time") == "2023-11-14T22:13:20"


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (rb"<KeyPeriodNo>\d+</KeyPeriodNo>", b"", "KeyPeriodNo missing"),
        (rb"<KeyPeriodNo>\d+</KeyPeriodNo>", b"<KeyPeriodNo>seven</KeyPeriodNo>", "not an integer"),
        (rb'UserSigningKeySSK xsi:type="KeyContentType">[0-9A-F]{2}', b'UserSigningKeySSK xsi:type="KeyContentType">ZZ',
         "not hexBinary"),
        (rb' xsi:type="KeyContentType"', b"", "abstract key type"),
        (rb"<UserUri>[^<]*</UserUri>", b"", "UserUri missing"),
        (rb' Version="1.1.0"', b' Version="9"', "fixed Version"),
        (rb"(</KmsKeySet>)", rb"<Extra>1</Extra>\1", "unknown element"),
    ],
)
def test_broken_xml_is_schema_invalid(
    community: KmsCommunity, schema: xmlschema.XMLSchema, old: bytes, new: bytes, why: str
) -> None:
    prov = kms_key_prov_xml(community, issue_user_keys(community, "sip:bob@example.org", now=NOW), now=NOW)
    broken, count = re.subn(old, new, prov, count=1)
    assert count == 1 and broken != prov
    assert _errors(schema, broken), why


def test_xml_round_trip(community: KmsCommunity) -> None:
    """What the writer writes, the reader reads back to the same keys (both ID schemes, several periods)."""
    a = issue_user_keys(community, "sip:bob@example.org", now=NOW)
    b = issue_user_keys(community, "sip:bob@example.org", period_no=(a.period_no or 0) + 1)
    init = kms_init_xml(community, "sip:bob@example.org", now=NOW)
    assert read_kms_init(init) == community.public
    store = load_keystore_xml(init, [kms_key_prov_xml(community, a, now=NOW),
                                     kms_key_prov_xml(community, b, now=NOW + 86400)], validate=True)
    assert read_kms_key_prov(kms_key_prov_xml(community, a, b, now=NOW), community.public)[1].period_no == b.period_no

    def same(x: IdentityKeys, y: IdentityKeys) -> bool:
        return (x.uri, x.identifier, x.ssk, x.pvt, x.rsk, x.period_no) == (y.uri, y.identifier, y.ssk, y.pvt,
                                                                            y.rsk, y.period_no)

    assert store.kms == community.public and store.uri == "sip:bob@example.org"
    assert [same(x, y) for x, y in zip(store.key_sets, (a, b), strict=True)] == [True, True]
    c = generate_community("kms.example.org", id_scheme=SakkeIDScheme.TEL_URI_MONTHLY, key_period=3600)
    monthly = issue_user_keys(c, "tel:+447700900123", month="2011-02")
    again = load_keystore_xml(kms_init_xml(c, monthly.uri, now=NOW), [kms_key_prov_xml(c, monthly, now=NOW)],
                              validate=True)
    assert again.kms == c.public and same(again.key_sets[0], monthly) and monthly.period_no is None


def test_writer_refuses_what_it_cannot_write(community: KmsCommunity) -> None:
    keys = issue_user_keys(community, "sip:bob@example.org", now=NOW)
    with pytest.raises(ValueError, match="UserUri must not be empty"):
        kms_init_xml(community, "", now=NOW)
    with pytest.raises(ValueError, match="at least one"):
        kms_key_prov_xml(community, now=NOW)
    other = issue_user_keys(community, "sip:carol@example.org", now=NOW)
    with pytest.raises(ValueError, match="one user"):
        kms_key_prov_xml(community, keys, other, now=NOW)


def _swap(doc: bytes, old: bytes, new: bytes) -> bytes:
    assert old in doc
    return doc.replace(old, new, 1)


def test_reader_refusals(community: KmsCommunity) -> None:
    keys = issue_user_keys(community, "sip:bob@example.org", now=NOW)
    init = kms_init_xml(community, keys.uri, now=NOW)
    prov = kms_key_prov_xml(community, keys, now=NOW)
    p = community.public
    cases: list[tuple[str, bytes, str]] = [
        ("init", b"<KmsResponse/>", "no KmsCertificate"),
        ("init", b"<KmsResponse", "does not parse"),
        ("init", _swap(init, b"<UserIdFormat>2<", b"<UserIdFormat>7<"), "UserIdFormat '7' is not supported"),
        ("init", _swap(init, b"<UserKeyPeriod>86400<", b"<UserKeyPeriod>day<"), "UserKeyPeriod is not an integer"),
        ("init", _swap(init, b"<ParameterSet>1<", b"<ParameterSet>2<"), "parameter set 2"),
        ("init", _swap(init, b"<PubAuthKey>04", b"<PubAuthKey>"), "KPAK"),
        ("prov", b"<KmsResponse/>", "no KmsKeySet"),
        ("prov", _swap(prov, b"<KeyPeriodNo>", b"<KeyPeriodNo>1"), "UserID is not the UID"),
        ("prov", _swap(prov, b"<KmsUri>kms.example.org</KmsUri><UserUri>",
                       b"<KmsUri>other.example.org</KmsUri><UserUri>"), "different KMS"),
        ("prov", _swap(prov, b'<UserSigningKeySSK xsi:type="KeyContentType">',
                       b'<UserSigningKeySSK xsi:type="EncKeyContentType">'), "UserSigningKeySSK is not plaintext"),
        ("prov", re.sub(rb'(<UserDecryptKey xsi:type="KeyContentType">)[0-9A-F]+',
                        rb'\1<EncryptedKey xmlns="http://www.w3.org/2001/04/xmlenc#"/>', prov),
         "UserDecryptKey is not plaintext"),
        ("prov", _swap(prov, b'<UserPubTokenPVT xsi:type="KeyContentType">', b"<UserPubTokenPVT>x"),
         "UserPubTokenPVT is not valid hex"),
        ("prov", _swap(prov, b"<KmsMessage>", b"<KmsError><ErrorCode>401</ErrorCode><ErrorMsg>no token</ErrorMsg>"
                       b"</KmsError><KmsMessage>"), "KmsError 401: no token"),
        ("prov", b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>', "DTD"),
        ("prov", b" " * (MAX_KMS_XML_BYTES + 1), "larger than"),
    ]
    for which, doc, message in cases:
        with pytest.raises(KeyMaterialError, match=message):
            if which == "init":
                read_kms_init(doc)
            else:
                read_kms_key_prov(doc, p)
    with pytest.raises(KeyMaterialError, match="no KmsKeyProv"):
        load_keystore_xml(init, [])
    carol = kms_key_prov_xml(community, issue_user_keys(community, "sip:carol@example.org", now=NOW), now=NOW)
    with pytest.raises(KeyMaterialError, match="different users"):
        load_keystore_xml(init, [prov, carol])
    with pytest.raises(KeyMaterialError, match="cannot read"):
        read_kms_init(XML / "missing.xml")


def test_reader_accepts_the_signed_and_bare_forms(community: KmsCommunity) -> None:
    """SignedKmsResponse (signature not checked here) and a bare KmsKeySet document read the same."""
    keys = issue_user_keys(community, "sip:bob@example.org", now=NOW)
    prov = kms_key_prov_xml(community, keys, now=NOW)
    body = prov.split(b"\n", 1)[1]
    signed = b'<SignedKmsResponse xmlns="' + KMS_XML_NS.encode() + b'">' + body + b"</SignedKmsResponse>"
    bare = ET.tostring(ET.fromstring(prov).find(f".//{{{KMS_XML_NS}}}KmsKeySet"))  # type: ignore[arg-type]
    for doc in (signed, bare):
        (k,) = read_kms_key_prov(doc, community.public)
        assert (k.identifier, k.rsk, k.ssk, k.pvt) == (keys.identifier, keys.rsk, keys.ssk, keys.pvt)


def test_cli_kms_init_xml_is_valid(tmp_path: pathlib.Path, schema: xmlschema.XMLSchema,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``mikey kms init`` publishes a KmsInit addressed to the KMS: no empty UserUri, schema-valid."""
    from mikey.cli.main import main  # the CLI loads every mode; the rest of this file needs none

    assert main(["kms", "init", "--out", str(tmp_path), "--kms-uri", "kms.cli.example"]) == 0
    capsys.readouterr()
    doc = (tmp_path / "kms_init.xml").read_bytes()
    assert _errors(schema, doc) == []
    assert ET.fromstring(doc).findtext(f"{{{KMS_XML_NS}}}UserUri") == "kms.cli.example"
    assert read_kms_init(doc).kms_uri == "kms.cli.example"
