"""Library KMS (RFC 6507 §5.1.1, RFC 6508 §6.1) and the identity-based keystore (JSON and 3GPP XML)."""

from __future__ import annotations

import json
import pathlib

import pytest

from mikey.errors import KeyMaterialError
from mikey.identities import uid_3gpp
from mikey.keystore import SakkeKeystore
from mikey.kms import (
    KmsCommunity,
    generate_community,
    issue_user_keys,
    kms_init_xml,
    kms_key_prov_xml,
    user_key_document,
)
from mikey.modes.sakke import SakkeIDScheme

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


def test_sample_3gpp_xml() -> None:
    """The Streamwide KMS samples: plaintext KmsInit and KmsKeyProv (test data, not a consistent key set)."""
    store = SakkeKeystore.load_xml(XML / "test_init_response.xml", [XML / "test_key_prov_response.xml"])
    assert store.kms_uri == "localhost:8080" and store.uri == "alice@org.com"
    assert store.key_period == 2592000 and store.key_period_offset == 0 and store.id_scheme == 2
    (k,) = store.key_sets
    assert k.period_no == 625
    assert k.identifier.hex() == "060c5cddd13b87be1e37d3ff091101684b88aadef26c409a8b49c8da9dd81a05"
    assert k.pvt.hex().startswith("04fa3c2493") and len(k.rsk) == 257 and len(k.ssk) == 32
    with pytest.raises(KeyMaterialError):
        store.validate()  # the README says these values are not a consistent key set


def test_xml_export_round_trip(community: KmsCommunity) -> None:
    keys = issue_user_keys(community, "sip:bob@example.org", now=NOW)
    init = kms_init_xml(community, "sip:bob@example.org", now=NOW)
    prov = kms_key_prov_xml(community, keys, now=NOW)
    assert b"urn:3gpp:ns:mcsecKMSInterface:1.0" in init and b"KmsKeySet" in prov
    store = SakkeKeystore.load_xml(init, [prov], validate=True)
    assert store.kms.kpak == community.public.kpak and store.kms.z == community.public.z
    assert store.key_sets[0].identifier == keys.identifier and store.key_sets[0].rsk == keys.rsk
    with pytest.raises(KeyMaterialError):
        SakkeKeystore.load_xml(init, [b"<KmsResponse/>"])
