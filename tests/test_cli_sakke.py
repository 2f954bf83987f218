"""CLI: ``mikey kms init/issue`` and ``mikey initiate/respond --mode sakke``."""

from __future__ import annotations

import json
import pathlib
import stat

import pytest

from mikey.cli.main import main

NOW = "1700000000"


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:  # type: ignore[type-arg]
    rc = main(argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def kms_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("kms")
    assert main(["kms", "init", "--out", str(d), "--kms-uri", "kms.cli.example"]) == 0
    for name in ("alice", "bob"):
        argv = ["kms", "issue", "--community", str(d / "community.json"), "--uri", f"sip:{name}@cli.example",
                "--out", str(d / f"{name}.json"), "--now", NOW, "--xml", str(d / f"{name}.xml")]
        assert main(argv) == 0
    return d


def test_kms_files(kms_dir: pathlib.Path) -> None:
    for name in ("community.json", "alice.json", "alice.xml"):
        assert stat.S_IMODE((kms_dir / name).stat().st_mode) == 0o600, name
    doc = json.loads((kms_dir / "alice.json").read_text())
    assert doc["kms_uri"] == "kms.cli.example" and doc["user"]["uri"] == "sip:alice@cli.example"
    assert b"KmsInit" in (kms_dir / "kms_init.xml").read_bytes()


def test_kms_secrets_never_inherit_a_loose_mode(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An existing 0644 community.json or 0666 user key file is replaced by a 0600 file (RFC 6507/6508 secrets)."""
    out = tmp_path / "kms"
    out.mkdir()
    community = out / "community.json"
    community.write_text("old")
    community.chmod(0o644)
    assert main(["kms", "init", "--out", str(out)]) == 0
    assert stat.S_IMODE(community.stat().st_mode) == 0o600 and "ksak" in community.read_text()
    user = tmp_path / "user.json"
    user.write_text("old")
    user.chmod(0o666)
    assert main(["kms", "issue", "--community", str(community), "--uri", "sip:u@x.example", "--out", str(user),
                 "--now", NOW]) == 0
    assert stat.S_IMODE(user.stat().st_mode) == 0o600 and json.loads(user.read_text())["user"]["uri"] == "sip:u@x.example"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kms", "user.json"]  # no temporary files left
    capsys.readouterr()


def test_kms_refuses_to_write_secrets_through_a_symlink(tmp_path: pathlib.Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours")
    target.chmod(0o644)
    out = tmp_path / "kms"
    out.mkdir()
    (out / "community.json").symlink_to(target)
    assert main(["kms", "init", "--out", str(out)]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "symbolic link" in err and "community.json" in err
    assert target.read_text() == "not yours" and (out / "community.json").is_symlink()
    assert main(["kms", "init", "--out", str(tmp_path / "real")]) == 0
    link = tmp_path / "user.json"
    link.symlink_to(target)
    assert main(["kms", "issue", "--community", str(tmp_path / "real" / "community.json"), "--uri", "sip:u@x.example",
                 "--out", str(link), "--now", NOW]) == 2
    assert target.read_text() == "not yours" and link.is_symlink()
    capsys.readouterr()


@pytest.mark.parametrize("key_type", ["pck", "gmk", "csk"])
def test_initiate_respond(kms_dir: pathlib.Path, capsys: pytest.CaptureFixture[str], key_type: str) -> None:
    ssv = "000102030405060708090a0b0c0d0e0f"
    key_id = {"pck": "1abcdef0", "gmk": "0abcdef0", "csk": "2abcdef0"}[key_type]
    init = _json(capsys, ["--json", "initiate", "--mode", "sakke", "--keys", str(kms_dir / "alice.json"),
                          "--to", "sip:bob@cli.example", "--key-type", key_type, "--ssv", ssv, "--key-id", key_id,
                          "--rand", "11" * 16, "--now", NOW, "--show-keys"])
    assert init["tgk"] == ssv and init["key_id"] == key_id and init["prf"] == 1
    resp = _json(capsys, ["--json", "respond", "--mode", "sakke", "--keys", str(kms_dir / "bob.json"),
                          "--imsg", init["i_message"], "--now", NOW, "--from", "sip:alice@cli.example",
                          "--cs-id", "1", "--cs-id", "2", "--show-keys"])
    assert resp["tgk"] == ssv and resp["r_message"] is None and resp["authenticated"]
    assert [cs["cs_id"] for cs in resp["crypto_sessions"]] == [1, 2]
    assert resp["crypto_sessions"][0]["srtp_master_key"] != resp["crypto_sessions"][1]["srtp_master_key"]


def test_respond_rejects(kms_dir: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    init = _json(capsys, ["--json", "initiate", "--mode", "sakke", "--keys", str(kms_dir / "alice.json"),
                          "--to", "sip:bob@cli.example", "--now", NOW])
    # wrong recipient: alice's keys cannot take a message for bob
    rc = main(["--json", "respond", "--mode", "sakke", "--keys", str(kms_dir / "alice.json"),
               "--imsg", init["i_message"], "--now", NOW])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["error"]["err_no"] == 7
    # stale
    rc = main(["--json", "respond", "--mode", "sakke", "--keys", str(kms_dir / "bob.json"),
               "--imsg", init["i_message"], "--now", str(int(NOW) + 3600)])
    assert rc == 1 and json.loads(capsys.readouterr().out)["error"]["err_no"] == 1
    # complete is a usage error: there is no R_MESSAGE
    capsys.readouterr()
    assert main(["complete", "--mode", "sakke", "--imsg", init["i_message"]]) == 2
    assert "MIKEY-SAKKE has no R_MESSAGE" in capsys.readouterr().err
