"""CLI: ``mikey kms ibake-init/ibake-issue`` and ``mikey initiate|respond|complete --mode ibake`` (RFC 6267)."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mikey.cli.main import main
from mikey.cli.mode_ibake import PLUGIN
from mikey.constants import DataType
from mikey.wire import Message

NOW = 1_700_000_000
SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, argv
    return code, out, err


def ok_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code, out, err = run(capsys, [*argv, "--json"])
    assert code == 0, out + err
    obj: dict[str, Any] = json.loads(out)
    return obj


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ibake_kms")
    assert main(["kms", "ibake-init", "--out", str(d), "--kms-id", "kms.ibake.example"]) == 0
    for name in ("alice", "bob", "carol"):
        assert main(["kms", "ibake-issue", "--community", str(d), "--uri", f"sip:{name}@x.example",
                     "--out", str(d / f"{name}.json"), "--now", str(NOW)]) == 0
    return d


def keys(kms: Path, name: str) -> list[str]:
    return ["--keys", str(kms / f"{name}.json")]


class Flow:
    """One exchange through the CLI, step by step, with fresh state files."""

    def __init__(self, capsys: pytest.CaptureFixture[str], kms: Path, tmp: Path, *, to: str = "bob",
                 responder: str = "bob", extra: tuple[str, ...] = ()) -> None:
        self.capsys, self.kms = capsys, kms
        self.a_state, self.b_state = str(tmp / f"a-{responder}.state"), str(tmp / f"b-{responder}.state")
        self.responder = responder
        self.i1 = ok_json(capsys, ["initiate", "--mode", "ibake", *keys(kms, "alice"), "--to", f"sip:{to}@x.example",
                                   "--state", self.a_state, "--now", str(NOW), *extra])

    def respond(self, imsg: str, now: int = NOW, *more: str) -> tuple[int, str, str]:
        return run(self.capsys, ["respond", "--mode", "ibake", *keys(self.kms, self.responder), "--imsg", imsg,
                                 "--state", self.b_state, "--now", str(now), "--json", "--show-keys", *more])

    def initiate2(self, rmsg: str, now: int = NOW + 1) -> tuple[int, str, str]:
        return run(self.capsys, ["initiate", "--mode", "ibake", *keys(self.kms, "alice"), "--rmsg", rmsg,
                                 "--state", self.a_state, "--now", str(now), "--json", "--show-keys"])

    def complete(self, rmsg: str, now: int = NOW + 2) -> tuple[int, str, str]:
        return run(self.capsys, ["complete", "--mode", "ibake", *keys(self.kms, "alice"), "--imsg",
                                 self.i1["i_message"], "--rmsg", rmsg, "--state", self.a_state, "--now", str(now),
                                 "--json", "--show-keys"])

    def all(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        code, out, err = self.respond(self.i1["i_message"])
        assert code == 0, out + err
        r1 = json.loads(out)
        code, out, err = self.initiate2(r1["r_message"])
        assert code == 0, out + err
        i2 = json.loads(out)
        code, out, err = self.respond(i2["i_message"], NOW + 1)
        assert code == 0, out + err
        r2 = json.loads(out)
        code, out, err = self.complete(r2["r_message"])
        assert code == 0, out + err
        return r1, i2, r2, json.loads(out)


def _srtp(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(cs["srtp_master_key"], cs["srtp_master_salt"]) for cs in obj["crypto_sessions"]]


def test_kms_files(kms: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stat.S_IMODE((kms / "ibake_kms.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((kms / "alice.json").stat().st_mode) == 0o600
    public = json.loads((kms / "ibake_params.json").read_text())
    assert "master_secret" not in public and public["kms_id"] == "kms.ibake.example"
    doc = json.loads((kms / "alice.json").read_text())
    assert doc["uri"] == "sip:alice@x.example" and doc["key_period"] == "YYYY-MM"
    assert [bytes.fromhex(k["identity"]) for k in doc["keys"]] == [b"sip:alice@x.example2023-11",
                                                                   b"sip:alice@x.example2023-12"]
    assert doc["params"] == public["params"]
    info = ok_json(capsys, ["kms", "ibake-issue", "--community", str(kms / "ibake_kms.json"), "--uri",
                            "sip:dave@x.example", "--out", str(kms / "dave.json"), "--now", str(NOW), "--periods",
                            "1", "--psk", "11" * 16])
    assert info["periods"] == ["sip:dave@x.example2023-11"] and info["request_key_resp_len"] > 0
    assert info["valid_from"] == "2023-11-01T00:00:00+00:00" and info["valid_to"] == "2023-12-01T00:00:00+00:00"


def test_kms_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, ["kms", "ibake-issue", "--community", str(tmp_path), "--uri", "sip:a@x",
                                "--out", str(tmp_path / "a.json")])
    assert code == 2 and err.count("\n") == 1 and "--community" in err
    (tmp_path / "ibake_kms.json").write_text('{"format": "mikey-ibake-kms/1", "params": "zz"}')
    code, _, err = run(capsys, ["kms", "ibake-issue", "--community", str(tmp_path), "--uri", "sip:a@x",
                                "--out", str(tmp_path / "a.json")])
    assert code == 2 and "'params' is not a hex string" in err and not (tmp_path / "a.json").exists()


def test_exchange_both_ends_print_the_same_keys(kms: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(capsys, kms, tmp_path)
    assert flow.i1["message"] == "I_MESSAGE_1" and "tgk" not in flow.i1 and flow.i1["crypto_sessions"] == []
    assert Message.decode(bytes.fromhex(flow.i1["i_message"])).data_type == DataType.IBAKE_I_MESSAGE_1
    assert stat.S_IMODE(os.stat(flow.a_state).st_mode) == 0o600
    r1, i2, r2, done = flow.all()
    assert Message.decode(bytes.fromhex(r1["r_message"])).data_type == DataType.IBAKE_R_MESSAGE_1
    assert r1["extras"]["message"] == "R_MESSAGE_1" and r1["crypto_sessions"] == []
    assert Message.decode(bytes.fromhex(i2["i_message"])).data_type == DataType.IBAKE_I_MESSAGE_2
    assert Message.decode(bytes.fromhex(r2["r_message"])).data_type == DataType.IBAKE_R_MESSAGE_2
    assert i2["extras"]["confirmed"] is False and done["extras"]["confirmed"] is True
    assert r2["authenticated"] and done["authenticated"]
    assert len(done["tgk"]) == 64 and done["tgk"] == r2["tgk"] == i2["tgk"]
    assert _srtp(done) == _srtp(r2) == _srtp(i2) and len(_srtp(done)) == 1
    assert done["csb_id"] == r2["csb_id"] == flow.i1["csb_id"]
    assert done["initiator_id"] == r2["initiator_id"] == "sip:alice@x.example"
    assert done["responder_id"] == r2["responder_id"] == "sip:bob@x.example"
    # The Responder's y is gone once R_MESSAGE_2 is out; the Initiator's state keeps the answers.
    assert json.loads(Path(flow.b_state).read_text()) == {"format": "mikey-ibake-state/1", "role": "responder",
                                                          "done": True}
    legs = json.loads(Path(flow.a_state).read_text())["legs"]
    assert len(legs) == 1 and legs[0]["confirmed"] is True and legs[0]["r_message_1"] == r1["r_message"]


def test_secrets_only_with_show_keys(kms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "a.state")
    code, out, _ = run(capsys, ["initiate", "--mode", "ibake", *keys(kms, "alice"), "--to", "sip:bob@x.example",
                                "--state", state, "--now", str(NOW)])
    assert code == 0 and "I_MESSAGE:" in out and "SDP:            a=key-mgmt:mikey " in out
    saved = json.loads(Path(state).read_text())
    assert saved["x"] and saved["sk"] and saved["x"] not in out and saved["sk"] not in out
    assert "not shown:      ec_private, sk" in out
    code, out, _ = run(capsys, ["initiate", "--mode", "ibake", *keys(kms, "alice"), "--to", "sip:bob@x.example",
                                "--state", state, "--now", str(NOW), "--json"])
    obj = json.loads(out)
    assert code == 0 and "ec_private" not in obj and "sk" not in obj and obj["state"] == state
    code, out, _ = run(capsys, ["initiate", "--mode", "ibake", *keys(kms, "alice"), "--to", "sip:bob@x.example",
                                "--state", state, "--now", str(NOW), "--json", "--show-keys"])
    saved = json.loads(Path(state).read_text())
    obj = json.loads(out)
    assert int(obj["ec_private"], 16) == int(saved["x"], 16) and obj["sk"] == saved["sk"]


def _flip(hex_msg: str, pos: int) -> str:
    b = bytearray(bytes.fromhex(hex_msg))
    b[pos] ^= 0x01
    return b.hex()


def _one_rejection(code: int, out: str, err: str) -> None:
    assert code == 1, out + err
    obj = json.loads(out)
    assert obj["ok"] is False and obj["error"]["message"]


def test_tampered_messages_are_rejected(kms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(capsys, kms, tmp_path)
    i1 = flow.i1["i_message"]
    _one_rejection(*flow.respond(_flip(i1, len(i1) // 2 - 1)))  # the IBAKE ciphertext: IBE decryption fails
    code, out, err = flow.respond(i1)
    r1 = json.loads(out)["r_message"]
    _one_rejection(*flow.initiate2(_flip(r1, len(r1) // 2 - 1)))
    i2 = json.loads(flow.initiate2(r1)[1])["i_message"]
    bad = flow.respond(_flip(i2, len(i2) // 2 - 1), NOW + 1)
    _one_rejection(*bad)
    assert json.loads(bad[1])["r_message"]  # the Error message the Responder answers with
    # A fresh Responder state for the good I_MESSAGE_2 (the failed one ended the first).
    assert flow.respond(i1)[0] == 0
    r1b = json.loads(flow.respond(i1)[1])["r_message"]
    i2b = json.loads(flow.initiate2(r1b)[1])["i_message"]
    code, out, _ = flow.respond(i2b, NOW + 1)
    assert code == 0
    r2 = json.loads(out)["r_message"]
    for pos in (10, len(r2) // 2 - 1):  # the header (CSB ID) and the MAC
        _one_rejection(*flow.complete(_flip(r2, pos)))
    assert flow.complete(r2)[0] == 0
    _one_rejection(*flow.complete(r2))  # the same R_MESSAGE_2 again


def test_tampered_message_in_a_real_process_is_one_line(kms: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(capsys, kms, tmp_path)
    code, out, _ = flow.respond(flow.i1["i_message"])
    r1 = json.loads(out)["r_message"]
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.run([sys.executable, "-m", "mikey", "initiate", "--mode", "ibake", *keys(kms, "alice"),
                           "--rmsg", _flip(r1, len(r1) // 2 - 1), "--state", flow.a_state, "--now", str(NOW + 1)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("rejected: ")
    assert "(Error no 0)" in proc.stdout  # IBE decryption failure: authentication (RFC 3830 §6.12)


def test_wrong_messages_and_usage(kms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(capsys, kms, tmp_path)
    i1 = flow.i1["i_message"]
    _one_rejection(*flow.respond(i1, NOW, "--from", "sip:mallory@x.example"))
    code, out, _ = run(capsys, ["respond", "--mode", "ibake", *keys(kms, "bob"), "--imsg", i1, "--state",
                                str(tmp_path / "s"), "--now", str(NOW), "--json", "--from", "sip:alice@x.example"])
    r1 = json.loads(out)["r_message"]
    assert code == 0
    # An R_MESSAGE_1 to the Responder, an I_MESSAGE_1 to complete: refused by data type.
    _one_rejection(*flow.respond(r1))
    code, _, err = flow.complete(r1)
    assert code == 2 and "no R_MESSAGE_1 taken yet" in err
    assert flow.initiate2(r1)[0] == 0
    _one_rejection(*flow.complete(r1))
    _one_rejection(*flow.initiate2(r1))  # the same answer twice
    # Usage errors (exit 2, one line).
    for argv in (["initiate", "--mode", "ibake", *keys(kms, "alice"), "--state", str(tmp_path / "x")],
                 ["initiate", "--mode", "ibake", *keys(kms, "alice"), "--state", flow.a_state, "--rmsg", r1,
                  "--to", "sip:bob@x.example"],
                 ["initiate", "--mode", "ibake", "--keys", str(kms / "ibake_params.json"), "--to", "sip:b@x",
                  "--state", str(tmp_path / "x")],
                 ["respond", "--mode", "ibake", *keys(kms, "bob"), "--imsg", i1, "--state", flow.a_state, "--now",
                  str(NOW)],
                 ["complete", "--mode", "ibake", *keys(kms, "alice"), "--imsg", i1, "--state", flow.a_state]):
        code, out, err = run(capsys, argv)
        assert code == 2 and err.count("\n") == 1 and "error" in err, (argv, out, err)


def test_called_party_without_key_for_another_identity(kms: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Retargeting (RFC 6267 §7.4): carol answers a call to bob; only with --retarget does alice take it."""
    flow = Flow(capsys, kms, tmp_path, responder="carol")
    code, out, _ = flow.respond(flow.i1["i_message"])
    assert code == 0
    r1 = json.loads(out)["r_message"]
    code, out, _ = flow.initiate2(r1)
    _one_rejection(code, out, "")
    assert json.loads(out)["error"]["err_no"] == 7
    flow = Flow(capsys, kms, tmp_path, responder="carol", extra=("--retarget", "sip:carol@x.example"))
    _r1, i2, r2, done = flow.all()
    assert done["extras"]["answer"] == i2["extras"]["answer"] == "retargeted"
    assert done["responder_id"] == "sip:carol@x.example" and done["tgk"] == r2["tgk"]
    assert _srtp(done) == _srtp(r2)


def test_mutated_messages_never_crash(kms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Mutated bytes on every receive path: exit 0 or 1 (a rejection line), never more; R_MESSAGE_2 (under V)
    is never accepted."""
    rng = random.Random(11)
    flow = Flow(capsys, kms, tmp_path)
    r1, i2, r2, _ = flow.all()

    def mutate(h: str) -> str:
        b = bytearray(bytes.fromhex(h))
        kind, pos = rng.randrange(3), rng.randrange(len(b))
        if kind == 0:
            b[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del b[pos: pos + rng.randrange(1, 9)]
        else:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5)))
        return b.hex() or "00"

    for _ in range(12):
        code, out, err = run(capsys, ["respond", "--mode", "ibake", *keys(kms, "bob"), "--imsg",
                                      mutate(flow.i1["i_message"]), "--state", str(tmp_path / "m.state"),
                                      "--now", str(NOW), "--json"])
        assert code in (0, 1) and not err and json.loads(out)["ok"] is (code == 0)
        code, out, err = flow.complete(mutate(r2["r_message"]), NOW + 3)
        assert code == 1 and not err and json.loads(out)["ok"] is False
    state = Path(flow.a_state).read_text()
    for _ in range(8):
        Path(flow.a_state).write_text(state)
        code, out, err = flow.initiate2(mutate(r1["r_message"]), NOW + 3)
        assert code in (0, 1) and not err
    del i2


def test_speed_rows_run() -> None:
    cases = {c.name: c for c in PLUGIN.speed_cases()}
    assert set(cases) == {"MIKEY-IBAKE initiator (I1, R1->I2, R2)", "MIKEY-IBAKE responder (I1->R1, I2->R2)",
                          "BF encrypt (RFC 5091, warm)", "BF decrypt (RFC 5091, warm)"}
    done = cases["MIKEY-IBAKE initiator (I1, R1->I2, R2)"].run()
    assert getattr(done, "confirmed", False) is True
    r2 = cases["MIKEY-IBAKE responder (I1->R1, I2->R2)"].run()
    assert getattr(r2, "response", None) and getattr(r2, "confirmed", False) is True
    assert cases["BF decrypt (RFC 5091, warm)"].run() == bytes(120)
    assert all(c.baseline == "modexp1024" for c in cases.values())


def test_forking_two_devices_each_get_their_own_keys(kms: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Forking (RFC 6267 §7.3): two devices hold the shared identity's K_PR besides their own; both answer one
    I_MESSAGE_1, the Initiator's state keeps one answer per device, each ends with its device's keys."""
    for device in ("desk", "mobile"):
        info = ok_json(capsys, ["kms", "ibake-issue", "--community", str(kms), "--uri", f"sip:bob-{device}@x.example",
                                "--uri", "sip:bob@x.example", "--out", str(tmp_path / f"{device}.json"),
                                "--now", str(NOW), "--periods", "1"])
        assert info["periods"] == [f"sip:bob-{device}@x.example2023-11", "sip:bob@x.example2023-11"]
    a_state = str(tmp_path / "a.state")
    i1 = ok_json(capsys, ["initiate", "--mode", "ibake", *keys(kms, "alice"), "--to", "sip:bob@x.example",
                          "--fork", "sip:bob-desk@x.example", "--fork", "sip:bob-mobile@x.example",
                          "--state", a_state, "--now", str(NOW)])["i_message"]
    ends: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    r1s = {}
    for device in ("desk", "mobile"):
        r1s[device] = ok_json(capsys, ["respond", "--mode", "ibake", "--keys", str(tmp_path / f"{device}.json"),
                                       "--imsg", i1, "--state", str(tmp_path / f"{device}.state"), "--now",
                                       str(NOW)])["r_message"]
    for device in ("mobile", "desk"):  # answers arrive in any order
        i2 = ok_json(capsys, ["initiate", "--mode", "ibake", *keys(kms, "alice"), "--rmsg", r1s[device],
                              "--state", a_state, "--now", str(NOW + 1)])
        assert i2["extras"]["answer"] == "forked" and i2["responder_id"] == f"sip:bob-{device}@x.example"
        r2 = ok_json(capsys, ["respond", "--mode", "ibake", "--keys", str(tmp_path / f"{device}.json"), "--imsg",
                              i2["i_message"], "--state", str(tmp_path / f"{device}.state"), "--now", str(NOW + 1),
                              "--show-keys"])
        ends[device] = (r2, {})
    for device in ("desk", "mobile"):
        r2 = ends[device][0]
        done = ok_json(capsys, ["complete", "--mode", "ibake", *keys(kms, "alice"), "--imsg", i1, "--rmsg",
                                r2["r_message"], "--state", a_state, "--now", str(NOW + 2), "--show-keys"])
        assert done["responder_id"] == f"sip:bob-{device}@x.example" and done["extras"]["confirmed"] is True
        assert done["tgk"] == r2["tgk"] and _srtp(done) == _srtp(r2)
        ends[device] = (r2, done)
    assert ends["desk"][1]["tgk"] != ends["mobile"][1]["tgk"]
    assert [leg["confirmed"] for leg in json.loads(Path(a_state).read_text())["legs"]] == [True, True]


def test_deferred_delivery_through_a_mailbox(kms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Deferred delivery (RFC 6267 §3.3, §6.1.2): a mailbox answers a call to bob without learning the media
    keys; bob later opens the kept I_MESSAGE_2's ESK and gets alice's keys."""
    vm = str(tmp_path / "vm.json")
    assert main(["kms", "ibake-issue", "--community", str(kms), "--uri", "sip:vm@x.example", "--out", vm,
                 "--now", str(NOW)]) == 0
    capsys.readouterr()
    a_state, vm_state = str(tmp_path / "a.state"), str(tmp_path / "vm.state")
    i1 = ok_json(capsys, ["initiate", "--mode", "ibake", *keys(kms, "alice"), "--to", "sip:bob@x.example",
                          "--mailbox", "sip:vm@x.example", "--state", a_state, "--now", str(NOW)])["i_message"]
    r1 = ok_json(capsys, ["respond", "--mode", "ibake", "--keys", vm, "--mailbox", "--imsg", i1, "--state", vm_state,
                          "--now", str(NOW)])["r_message"]
    i2 = ok_json(capsys, ["initiate", "--mode", "ibake", *keys(kms, "alice"), "--rmsg", r1, "--state", a_state,
                          "--now", str(NOW + 1)])
    assert i2["extras"]["answer"] == "deferred"
    r2 = ok_json(capsys, ["respond", "--mode", "ibake", "--keys", vm, "--mailbox", "--imsg", i2["i_message"],
                          "--state", vm_state, "--now", str(NOW + 1), "--show-keys"])
    assert r2["crypto_sessions"] == []  # the mailbox holds no media keys
    kept = json.loads(Path(vm_state).read_text())["deferred_messages"]
    assert kept == r2["extras"]["deferred_messages"] == [i1, i2["i_message"]]
    done = ok_json(capsys, ["complete", "--mode", "ibake", *keys(kms, "alice"), "--imsg", i1, "--rmsg",
                            r2["r_message"], "--state", a_state, "--now", str(NOW + 2), "--show-keys"])
    later = str(NOW + 86_400)
    opened = ok_json(capsys, ["respond", "--mode", "ibake", *keys(kms, "bob"), "--deferred", "--imsg", kept[1],
                              "--stored-imsg", kept[0], "--now", later, "--show-keys"])
    assert opened["r_message"] is None and opened["extras"]["deferred"] is True
    assert opened["tgk"] == done["tgk"] and _srtp(opened) == _srtp(done) and len(_srtp(done)) == 1
    # carol cannot open bob's message
    code, out, _ = run(capsys, ["respond", "--mode", "ibake", *keys(kms, "carol"), "--deferred", "--imsg", kept[1],
                                "--now", later, "--json"])
    _one_rejection(code, out, "")


def test_damaged_state_files_are_usage_errors(kms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(capsys, kms, tmp_path)
    r1 = json.loads(flow.respond(flow.i1["i_message"])[1])["r_message"]
    good = json.loads(Path(flow.a_state).read_text())
    for change, needle in (({"x": "zz"}, "'x' is not a hex string"), ({"legs": 3}, "'legs' is not a list"),
                           ({"answers": "x"}, "'answers' is not an object"), ({"format": "other"}, "not a mikey-ibake"),
                           ({"curve": "p256"}, "'curve' is not a number")):
        Path(flow.a_state).write_text(json.dumps({**good, **change}))
        code, out, err = flow.initiate2(r1)
        assert code == 2 and needle in err and err.count("\n") == 1 and not out, (change, out, err)
    Path(flow.a_state).write_text("{")
    code, _, err = flow.initiate2(r1)
    assert code == 2 and "not a JSON file" in err
