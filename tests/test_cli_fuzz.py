"""The ``mikey`` command never crashes: random and mutated inputs to every subcommand give exit
status 0, 1 or 2 and at most one error line, never a traceback.

``main()`` runs in-process with stdout and stderr captured.  Inputs: valid messages of every
mode (made by the CLI itself) mutated by bit flips, octet changes, insertions, deletions and
truncations, given as hex, base64, ``mikey <base64>`` or a binary ``@FILE``; random octets and
text; and random values for every option the command takes.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pathlib
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mikey.cli import main
from mikey.cli.demo_pki import make_demo_pki

NOW = 1_717_243_200
PSK = "000102030405060708090a0b0c0d0e0f"
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_N", "40")), deadline=None, derandomize=not os.environ.get("FUZZ_N"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with the checks every run must pass; returns (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    stdout, stderr = out.getvalue(), err.getvalue()
    assert code in (0, 1, 2), (argv, code, stderr)
    assert "Traceback" not in stderr and "Traceback" not in stdout, argv
    lines = stderr.splitlines()
    if lines and lines[0].startswith("usage:"):  # argparse: the usage block, then its one error line
        lines = [ln for ln in lines if ": error: " in ln]
    assert len(lines) <= 1, (argv, stderr)
    if code != 0:
        assert lines or stdout.strip(), argv  # a failure always says why
    if "--json" in argv and not stderr and code in (0, 1) and "--help" not in argv:
        assert isinstance(json.loads(stdout), dict), argv
    return code, stdout, stderr


class World(dict[str, Any]):
    """The fixture's data, with a short repr (hypothesis prints the arguments of a failing example)."""

    def __repr__(self) -> str:
        return "World(...)"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Credentials for every mode, and one real exchange per mode made through the CLI."""
    d = tmp_path_factory.mktemp("cli_fuzz")
    pki = make_demo_pki(d / "pki", now=float(NOW))
    a, b, ca = pki["alice"], pki["bob"], pki["ca"]
    assert run(["kms", "init", "--out", str(d / "kms")])[0] == 0
    for who in ("alice", "bob"):
        assert run(["kms", "issue", "--community", str(d / "kms" / "community.json"), "--uri",
                    f"sip:{who}@x.example", "--out", str(d / f"{who}.sakke.json"), "--now", str(NOW)])[0] == 0
    alice_keys, bob_keys = str(d / "alice.sakke.json"), str(d / "bob.sakke.json")
    creds: dict[str, dict[str, list[str]]] = {
        "psk": {"initiate": ["--psk", PSK, "--verify"], "respond": ["--psk", PSK], "complete": ["--psk", PSK]},
        "dhhmac": {"initiate": ["--psk", PSK, "--id-r", "sip:bob@x.example"], "respond": ["--psk", PSK],
                   "complete": ["--psk", PSK]},
        "pk": {"initiate": ["--cert", a["cert"], "--key", a["key"], "--peer-cert", b["cert"], "--ca", ca, "--verify"],
               "respond": ["--cert", b["cert"], "--key", b["key"], "--ca", ca], "complete": []},
        "dh": {"initiate": ["--cert", a["cert"], "--key", a["key"], "--ca", ca],
               "respond": ["--cert", b["cert"], "--key", b["key"], "--ca", ca],
               "complete": ["--cert", a["cert"], "--key", a["key"], "--ca", ca]},
        "rsa-r": {"initiate": ["--cert", a["cert"], "--key", a["key"], "--ca", ca],
                  "respond": ["--cert", b["cert"], "--key", b["key"], "--ca", ca],
                  "complete": ["--cert", a["cert"], "--key", a["key"], "--ca", ca]},
        "sakke": {"initiate": ["--keys", alice_keys, "--to", "sip:bob@x.example"],
                  "respond": ["--keys", bob_keys, "--from", "sip:alice@x.example"], "complete": ["--keys", alice_keys]},
    }
    messages: dict[str, list[bytes]] = {}
    for mode, c in creds.items():
        code, out, _ = run(["initiate", "--mode", mode, *c["initiate"], "--now", str(NOW), "--json", "--show-keys"])
        assert code == 0, mode
        ini = json.loads(out)
        if "envelope_key" in ini:
            c["complete"] += ["--env-key", ini["envelope_key"]]
        if "dh_private" in ini:
            c["complete"] += ["--dh-private", ini["dh_private"]]
        code, out, _ = run(["respond", "--mode", mode, *c["respond"], "--imsg", ini["i_message"], "--now", str(NOW),
                            "--json"])
        assert code == 0, mode
        resp = json.loads(out)
        messages[mode] = [bytes.fromhex(ini["i_message"])]
        if resp["r_message"]:
            messages[mode].append(bytes.fromhex(resp["r_message"]))
            assert run(["complete", "--mode", mode, *c["complete"], "--imsg", ini["i_message"], "--rmsg",
                        resp["r_message"], "--now", str(NOW)])[0] == 0, mode
    return World(dir=d, creds=creds, messages=messages, community=str(d / "kms" / "community.json"))


# --- strategies -----------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not b:
            break
        pos = draw(st.integers(0, len(b) - 1))
        kind = draw(st.integers(0, 4))
        if kind == 0:
            b[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == 1:
            b[pos] = draw(st.integers(0, 255))
        elif kind == 2:
            b[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == 3:
            del b[pos : pos + draw(st.integers(1, 16))]
        else:
            del b[pos:]
    return bytes(b)


def message_octets(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(samples).flatmap(mutated),
        st.binary(max_size=200),
        st.sampled_from(samples).map(lambda m: m + b"\x00"),
    )


@st.composite
def message_arg(draw: st.DrawFn, samples: list[bytes], tmp: pathlib.Path) -> str:
    """A message as hex, base64, 'mikey <base64>', a binary @FILE, or random text."""
    data = draw(message_octets(samples))
    form = draw(st.integers(0, 5))
    if form == 0:
        return data.hex()
    if form == 1:
        return base64.b64encode(data).decode()
    if form == 2:
        return "mikey " + base64.b64encode(data).decode()
    if form == 3:
        f = tmp / f"msg{draw(st.integers(0, 3))}.bin"
        f.write_bytes(data)
        return f"@{f}"
    if form == 4:
        return draw(st.text(max_size=40))
    return "@" + draw(st.text(max_size=20))


VALUES = st.one_of(
    st.binary(max_size=40).map(bytes.hex),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(0, 2**40).map(hex),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e300", "", "0", "-1", "0x", "f" * 300, "00" * 70000]),
    st.text(max_size=16),
)

#: Options (with a value) each exchange command may be given, beyond the credentials.
OPTIONS = {
    "initiate": ["--tgk", "--csb-id", "--rand", "--ssrc", "--encr", "--mac", "--prf", "--now", "--id-i", "--id-r",
                 "--dh-group", "--dh-private", "--env-key", "--cache", "--key-type", "--ssv", "--key-id",
                 "--cs-id", "--cs-map", "--sign", "--sign-hash", "--chash", "--verification-coverage", "--to"],
    "respond": ["--ssrc", "--now", "--id-r", "--id-i", "--tgk", "--rand", "--env-key", "--group-csb-id",
                "--dh-private", "--cs-id", "--from", "--cache"],
    "complete": ["--now", "--env-key", "--dh-private"],
}
FLAGS = ["--json", "--show-keys", "--raw", "--verify", "--allow-null-security", "--oaep", "--group", "--no-rand",
         "--no-cert", "--allow-null-mac"]


@st.composite
def extra_options(draw: st.DrawFn, command: str) -> list[str]:
    out: list[str] = []
    for name in draw(st.lists(st.sampled_from(OPTIONS[command]), max_size=3)):
        out += [name, draw(VALUES)]
    out += draw(st.lists(st.sampled_from(FLAGS), max_size=2, unique=True))
    return out


MODES = ["psk", "dhhmac", "pk", "dh", "rsa-r", "sakke"]


# --- the fuzz tests -------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_decode(world: dict[str, Any], data: st.DataObject) -> None:
    samples = [m for ms in world["messages"].values() for m in ms]
    msg = data.draw(message_arg(samples, world["dir"]))
    flags = data.draw(st.lists(st.sampled_from(["--json", "--validate"]), unique=True))
    run(["decode", *flags, "--", msg] if msg.startswith("-") else ["decode", *flags, msg])


@pytest.mark.parametrize("mode", MODES)
@FUZZ
@given(data=st.data())
def test_respond(world: dict[str, Any], mode: str, data: st.DataObject) -> None:
    msg = data.draw(message_arg(world["messages"][mode][:1], world["dir"]))
    extra = data.draw(extra_options("respond"))
    run(["respond", "--mode", mode, *world["creds"][mode]["respond"], f"--imsg={msg}", "--now", str(NOW), *extra])


@pytest.mark.parametrize("mode", MODES)
@FUZZ
@given(data=st.data())
def test_complete(world: dict[str, Any], mode: str, data: st.DataObject) -> None:
    samples = world["messages"][mode]
    imsg = data.draw(st.one_of(st.just(samples[0].hex()), message_arg(samples[:1], world["dir"])))
    rmsg = data.draw(message_arg(samples[1:] or samples, world["dir"]))
    extra = data.draw(extra_options("complete"))
    run(["complete", "--mode", mode, *world["creds"][mode]["complete"], f"--imsg={imsg}", f"--rmsg={rmsg}", *extra])


@pytest.mark.parametrize("mode", MODES)
@FUZZ
@given(data=st.data())
def test_initiate(world: dict[str, Any], mode: str, data: st.DataObject) -> None:
    extra = data.draw(extra_options("initiate"))
    run(["initiate", "--mode", mode, *world["creds"][mode]["initiate"], "--now", str(NOW), *extra])


@FUZZ
@given(data=st.data())
def test_kms(world: dict[str, Any], data: st.DataObject) -> None:
    tmp: pathlib.Path = world["dir"]
    if data.draw(st.booleans()):
        argv = ["kms", "issue", "--community", data.draw(st.sampled_from([world["community"], str(tmp / "pki" / "ca.pem"),
                                                                           str(tmp), str(tmp / "nope.json")])),
                "--uri", data.draw(st.text(max_size=20)), "--out", str(tmp / "issued.json")]
        for name in data.draw(st.lists(st.sampled_from(["--period-no", "--month", "--now", "--xml"]), max_size=2,
                                       unique=True)):
            argv += [name, str(tmp / "issued.xml") if name == "--xml" else data.draw(VALUES)]
    else:
        argv = ["kms", "init", "--out", str(tmp / "kms2")]
        for name in data.draw(st.lists(st.sampled_from(["--kms-uri", "--key-period", "--key-period-offset",
                                                        "--id-scheme"]), max_size=2, unique=True)):
            argv += [name, data.draw(VALUES)]
    if data.draw(st.booleans()):
        argv.append("--json")
    run(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--mode", "nope"],
        ["demo", "--packets", "0"],
        ["demo", "--timeout", "nan"],
        ["speed", "--quick", "no-such-row"],
        ["kms"],
        ["kms", "issue", "--community", "/nonexistent", "--uri", "sip:a@b", "--out", "/nonexistent/x"],
        ["kms", "init", "--out", "/proc/version/x"],
        ["decode", "@/dev/null"],
        ["decode", "@/"],
        ["respond", "--mode", "psk", "--psk", PSK, "--imsg", "@/nonexistent"],
    ],
)
def test_fixed_bad_invocations(argv: list[str]) -> None:
    assert run(argv)[0] in (1, 2)
