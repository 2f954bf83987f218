"""``mikey initiate|respond|complete --mode pk|rsa-r`` (RFC 3830 §3.2, RFC 4738), the demo hooks and
the speed rows of both plugins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pki import NOW as PKI_NOW
from pki import fresh_key_index, make_ca, make_leaf

from mikey.cli import main
from mikey.cli.demo_pki import make_demo_pki
from mikey.cli.mode_pk import PLUGIN as PK
from mikey.cli.mode_rsa_r import PLUGIN as RSA_R
from mikey.cli.plugins import load_plugins
from mikey.constants import DataType
from mikey.wire import ErrorPayload, Message

NOW = str(PKI_NOW.timestamp())


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca("CLI Test Root")
    out = {"ca": d / "ca.pem"}
    out["ca"].write_bytes(ca.cert_pem)
    for name in ("alice", "bob"):
        leaf = make_leaf(ca, name, san_uris=[f"sip:{name}@example.com"])
        (d / f"{name}.pem").write_bytes(leaf.cert_pem)
        (d / f"{name}.key").write_bytes(leaf.key_pem())
        out[name] = d / f"{name}.pem"
        out[name + "_key"] = d / f"{name}.key"
    rogue = make_ca("CLI Test Root", key_index=fresh_key_index())
    mallory = make_leaf(rogue, "mallory", san_uris=["sip:alice@example.com"], key_index=fresh_key_index())
    (d / "mallory.pem").write_bytes(mallory.cert_pem)
    (d / "mallory.key").write_bytes(mallory.key_pem())
    out["mallory"], out["mallory_key"] = d / "mallory.pem", d / "mallory.key"
    return {k: str(v) for k, v in out.items()}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    text = capsys.readouterr().out
    return code, json.loads(text)


def _keys(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(cs["srtp_master_key"], cs["srtp_master_salt"]) for cs in obj["crypto_sessions"]]


def test_plugins_are_registered() -> None:
    plugins = load_plugins()
    assert plugins["pk"] is PK and plugins["rsa-r"] is RSA_R


@pytest.mark.parametrize("extra", [[], ["--verify"], ["--verify", "--oaep", "--sign", "pss", "--chash", "sha256"]])
def test_pk_initiate_respond_complete(capsys: pytest.CaptureFixture[str], pems: dict[str, str],
                                      extra: list[str]) -> None:
    oaep = ["--oaep"] if "--oaep" in extra else []
    code, ini = _run(capsys, "initiate", "--mode", "pk", "--json", "--now", NOW, "--cert", pems["alice"], "--key",
                     pems["alice_key"], "--peer-cert", pems["bob"], "--ca", pems["ca"], "--ssrc", "1111",
                     "--ssrc", "0", "--tgk", "00" * 16, "--show-keys", *extra)
    assert code == 0 and ini["ok"] and ini["tgk"] == "00" * 16 and len(ini["envelope_key"]) == 64
    code, res = _run(capsys, "respond", "--mode", "pk", "--json", "--now", NOW, "--cert", pems["bob"], "--key",
                     pems["bob_key"], "--ca", pems["ca"], "--imsg", ini["i_message"], "--ssrc", "2222", "--show-keys",
                     *oaep)
    assert code == 0 and res["tgk"] == "00" * 16
    assert (res["r_message"] is not None) == ("--verify" in extra)
    args = ["complete", "--mode", "pk", "--json", "--now", NOW, "--imsg", ini["i_message"], "--env-key",
            ini["envelope_key"], "--show-keys"]
    if res["r_message"]:
        args += ["--rmsg", res["r_message"]]
    code, done = _run(capsys, *args)
    assert code == 0 and done["tgk"] == res["tgk"]
    if res["r_message"]:
        assert done["authenticated"] and _keys(done) == _keys(res)
    else:
        assert _keys(done)[0] == _keys(res)[0]


def test_pk_envelope_key_only_with_show_keys(capsys: pytest.CaptureFixture[str], pems: dict[str, str]) -> None:
    """initiate prints the envelope key (a secret 'complete' needs) only with --show-keys; the text flow works."""
    base = ["initiate", "--mode", "pk", "--now", NOW, "--cert", pems["alice"], "--key", pems["alice_key"],
            "--peer-cert", pems["bob"], "--ca", pems["ca"], "--env-key", "5a" * 32, "--tgk", "00" * 16, "--verify"]
    code, ini = _run(capsys, *base, "--json")
    assert code == 0 and "envelope_key" not in ini and "5a" * 32 not in json.dumps(ini) and "tgk" not in ini
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "5a" * 32 not in out and "not shown:      envelope_key" in out and "--show-keys" in out
    assert main([*base, "--show-keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    env_key = next(ln.split(": ", 1)[1] for ln in lines if ln.startswith("envelope_key: "))
    imsg = next(ln.split()[1] for ln in lines if ln.startswith("I_MESSAGE:"))
    assert env_key == "5a" * 32
    code, res = _run(capsys, "respond", "--mode", "pk", "--json", "--now", NOW, "--cert", pems["bob"], "--key",
                     pems["bob_key"], "--ca", pems["ca"], "--imsg", imsg)
    assert code == 0 and "tgk" not in res
    code, done = _run(capsys, "complete", "--mode", "pk", "--json", "--now", NOW, "--imsg", imsg, "--env-key",
                      env_key, "--rmsg", res["r_message"])
    assert code == 0 and done["authenticated"] and done["crypto_sessions"] == res["crypto_sessions"]


def test_pk_rejections(capsys: pytest.CaptureFixture[str], pems: dict[str, str]) -> None:
    code, ini = _run(capsys, "initiate", "--mode", "pk", "--json", "--now", NOW, "--cert", pems["mallory"],
                     "--key", pems["mallory_key"], "--peer-cert", pems["bob"], "--ca", pems["ca"])
    assert code == 0
    code, res = _run(capsys, "respond", "--mode", "pk", "--json", "--now", NOW, "--cert", pems["bob"], "--key",
                     pems["bob_key"], "--ca", pems["ca"], "--imsg", ini["i_message"])
    assert code == 1 and not res["ok"] and res["error"]["err_no"] == 8
    err = Message.decode(bytes.fromhex(res["r_message"]))
    assert err.data_type == DataType.ERROR and [p.error_no for p in err.find_all(ErrorPayload)] == [8]
    # complete without the envelope key is a usage error.
    assert main(["complete", "--mode", "pk", "--now", NOW, "--imsg", ini["i_message"]]) == 2
    capsys.readouterr()
    # A wrong envelope key fails the KEMAC MAC.
    code, bad = _run(capsys, "complete", "--mode", "pk", "--json", "--now", NOW, "--imsg", ini["i_message"],
                     "--env-key", "00" * 32)
    assert code == 1 and bad["error"]["err_no"] == 0


@pytest.mark.parametrize("group", [False, True])
def test_rsa_r_initiate_respond_complete(capsys: pytest.CaptureFixture[str], pems: dict[str, str],
                                         group: bool) -> None:
    g_i = ["--group"] if group else ["--ssrc", "1111"]
    g_r = ["--group-csb-id", "c0ffee01", "--ssrc", "2222"] if group else ["--ssrc", "2222"]
    code, ini = _run(capsys, "initiate", "--mode", "rsa-r", "--json", "--now", NOW, "--cert", pems["alice"],
                     "--key", pems["alice_key"], "--ca", pems["ca"], *g_i)
    assert code == 0 and ini["ok"]
    code, res = _run(capsys, "respond", "--mode", "rsa-r", "--json", "--now", NOW, "--cert", pems["bob"], "--key",
                     pems["bob_key"], "--ca", pems["ca"], "--imsg", ini["i_message"], "--tgk", "ab" * 16,
                     "--show-keys", *g_r)
    assert code == 0 and res["tgk"] == "ab" * 16 and res["r_message"]
    code, done = _run(capsys, "complete", "--mode", "rsa-r", "--json", "--now", NOW, "--cert", pems["alice"],
                      "--key", pems["alice_key"], "--ca", pems["ca"], "--imsg", ini["i_message"], "--rmsg",
                      res["r_message"], "--show-keys", *(["--group"] if group else []))
    assert code == 0 and done["tgk"] == "ab" * 16 and _keys(done) == _keys(res)
    assert done["csb_id"] == ("c0ffee01" if group else ini["csb_id"])


def test_rsa_r_rejects_untrusted_initiator(capsys: pytest.CaptureFixture[str], pems: dict[str, str]) -> None:
    code, ini = _run(capsys, "initiate", "--mode", "rsa-r", "--json", "--now", NOW, "--cert", pems["mallory"],
                     "--key", pems["mallory_key"], "--ca", pems["ca"])
    code, res = _run(capsys, "respond", "--mode", "rsa-r", "--json", "--now", NOW, "--cert", pems["bob"], "--key",
                     pems["bob_key"], "--ca", pems["ca"], "--imsg", ini["i_message"])
    assert code == 1 and res["error"]["err_no"] == 8 and res["r_message"]
    assert main(["initiate", "--mode", "rsa-r", "--now", NOW, "--cert", pems["alice"], "--key", pems["alice_key"],
                 "--ca", pems["ca"], "--tgk", "00" * 16]) == 2
    capsys.readouterr()


def _cred(who: dict[str, str]) -> list[str]:
    return ["--cert", who["cert"], "--key", who["key"]]


@pytest.mark.parametrize("alice_expired", [False, True])
def test_pk_pinned_peer_certificates(capsys: pytest.CaptureFixture[str], tmp_path: Path, alice_expired: bool) -> None:
    """Without --ca each side pins the other's --peer-cert, still checked for validity (RFC 3830 §4.3.2)."""
    now = float(NOW)
    pki = make_demo_pki(tmp_path / "now", now=now)
    # Demo leaves live 31 days: made 432 days earlier, that Alice expired about 400 days before now.
    alice = make_demo_pki(tmp_path / "old", now=now - 432 * 86400)["alice"] if alice_expired else pki["alice"]
    code, ini = _run(capsys, "initiate", "--mode", "pk", "--json", "--now", NOW, *_cred(alice),
                     "--peer-cert", pki["bob"]["cert"], "--verify")
    assert code == 0
    code, res = _run(capsys, "respond", "--mode", "pk", "--json", "--now", NOW, *_cred(pki["bob"]),
                     "--peer-cert", alice["cert"], "--imsg", ini["i_message"])
    if alice_expired:
        assert code == 1 and res["error"]["err_no"] == 8 and "expired" in res["error"]["message"]
        return
    assert code == 0 and res["authenticated"] and res["initiator_id"] == "sip:alice@example.com"


def test_rsa_r_pinned_peer_certificates(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pki, other = make_demo_pki(tmp_path / "a", now=float(NOW)), make_demo_pki(tmp_path / "b", now=float(NOW))
    alice, bob = pki["alice"], pki["bob"]
    code, ini = _run(capsys, "initiate", "--mode", "rsa-r", "--json", "--now", NOW, *_cred(alice),
                     "--peer-cert", bob["cert"])
    assert code == 0
    code, res = _run(capsys, "respond", "--mode", "rsa-r", "--json", "--now", NOW, *_cred(bob),
                     "--peer-cert", alice["cert"], "--imsg", ini["i_message"], "--show-keys")
    assert code == 0 and res["authenticated"]
    complete = ["complete", "--mode", "rsa-r", "--json", "--now", NOW, "--show-keys", *_cred(alice),
                "--imsg", ini["i_message"], "--rmsg", res["r_message"]]
    code, done = _run(capsys, *complete, "--peer-cert", bob["cert"])
    assert code == 0 and done["authenticated"] and done["tgk"] == res["tgk"]
    # Pinned to another Bob (same name, other key): the R_MESSAGE is refused.
    code, bad = _run(capsys, *complete, "--peer-cert", other["bob"]["cert"])
    assert code == 1 and bad["error"]["kind"] == "certificate" and bad["error"]["err_no"] == 8
    # Neither --ca nor --peer-cert: nothing to check the Responder against.
    assert main(["initiate", "--mode", "rsa-r", "--now", NOW, *_cred(alice)]) == 2
    assert "needs --ca (trust anchors) or --peer-cert" in capsys.readouterr().err


@pytest.mark.parametrize("plugin", [PK, RSA_R], ids=["pk", "rsa-r"])
def test_demo_hooks_in_memory(tmp_path: Path, plugin: Any) -> None:
    creds = plugin.demo_credentials(tmp_path)
    json.dumps(creds)
    assert Path(creds["ca"]).exists() and creds["alice"]["id"] == "sip:alice@example.com"
    ini = plugin.demo_initiator(creds, 0x1111)
    res = plugin.demo_responder(creds, 0x2222)
    import time

    now = time.time()
    out = res.receive(ini.create_message(now), now)
    result = ini.receive(out.response, now) if out.response is not None else ini.result
    assert sorted(cs.ssrc for cs in result.crypto_sessions) == [0x1111, 0x2222]
    assert [cs.fingerprint() for cs in result.crypto_sessions] == [
        cs.fingerprint() for cs in out.result.crypto_sessions]
    assert "PRIVATE" not in plugin.demo_description(creds)


@pytest.mark.parametrize("plugin", [PK, RSA_R], ids=["pk", "rsa-r"])
def test_speed_cases(plugin: Any) -> None:
    cases = plugin.speed_cases()
    assert [c.baseline for c in cases] == ["rsa2048-sign"] * 2
    assert {c.name.split()[-1] for c in cases} == {"initiator", "responder"}
    for c in cases:
        c.run()
        c.run()  # repeatable: fresh replay cache every time
