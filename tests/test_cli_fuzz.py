"""The ``mikey`` command never crashes: random and mutated inputs to every subcommand give exit
status 0, 1 or 2 and at most one error line, never a traceback.

``main()`` runs in-process with stdout and stderr captured.  Inputs: valid messages of every
mode of the plugin registry (made by the CLI itself) mutated by bit flips, octet changes,
insertions, deletions and truncations, given as hex, base64, ``mikey <base64>`` or a binary
``@FILE``; random octets and text; and random values for every option the command takes.
MIKEY-TICKET's parties talk to a real ``mikey kms serve`` (on the real clock); MIKEY-IBAKE's sides
keep state files between their messages, put back before each example, and its Responder gets
mutated I_MESSAGE_1s and I_MESSAGE_2s, its Initiator mutated R_MESSAGE_1s (``initiate --rmsg``) and
R_MESSAGE_2s (``complete``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import pathlib
import shutil
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mikey.cli import main
from mikey.cli.demo_kms import DemoKms
from mikey.cli.demo_peer import RoundTripDemoPlugin
from mikey.cli.demo_pki import make_demo_pki
from mikey.cli.mode_ticket import provision_ticket_user
from mikey.cli.plugins import MODE_NAMES, load_plugins
from mikey.kms.auth import DevIssuer

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
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
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
    w = World(dir=d, creds=creds, messages=messages, community=str(d / "kms" / "community.json"), copies={},
              real_clock=set(), responder_samples={}, rmsg={})
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
    _ibake(w)
    with DemoKms(d / "ticket-kms") as server:
        assert server.url is not None
        _ticket(w, server)
        assert set(creds) == set(MODE_NAMES)
        yield w


def _ibake(w: World) -> None:
    """MIKEY-IBAKE (RFC 6267): a file-based KMS, the four messages, and the sides' state files at each step
    (the fuzzed commands get fresh copies: a state file changes with every message a side takes)."""
    d: pathlib.Path = w["dir"]
    kms = d / "ibake-kms"
    assert run(["kms", "ibake-init", "--out", str(kms), "--security", "1024"])[0] == 0
    keys = {}
    for who in ("alice", "bob"):
        keys[who] = str(d / f"{who}.ibake.json")
        assert run(["kms", "ibake-issue", "--community", str(kms), "--uri", f"sip:{who}@x.example", "--out",
                    keys[who], "--now", str(NOW)])[0] == 0
    a_st, b_st = str(d / "ibake-a.state"), str(d / "ibake-b.state")
    a = ["--mode", "ibake", "--keys", keys["alice"], "--state", a_st, "--now", str(NOW), "--json"]
    b = ["--mode", "ibake", "--keys", keys["bob"], "--state", b_st, "--now", str(NOW), "--json"]

    def step(*argv: str) -> str:
        code, out, err = run(list(argv))
        assert code == 0, (argv, err)
        doc = json.loads(out)
        return str(doc.get("i_message") or doc.get("r_message") or "")

    i1 = step("initiate", *a, "--to", "sip:bob@x.example")
    shutil.copy(a_st, d / "ibake-a1.state")  # the Initiator waiting for R_MESSAGE_1
    r1 = step("respond", *b, "--imsg", i1)
    shutil.copy(b_st, d / "ibake-b1.state")  # the Responder waiting for I_MESSAGE_2
    i2 = step("initiate", *a, "--rmsg", r1)
    shutil.copy(a_st, d / "ibake-a2.state")  # the Initiator waiting for R_MESSAGE_2
    r2 = step("respond", *b, "--imsg", i2)
    step("complete", *a, "--imsg", i1, "--rmsg", r2)
    scratch = {name: str(d / f"ibake-fuzz-{name}.state") for name in ("initiate", "respond", "complete", "rmsg")}
    w["creds"]["ibake"] = {
        "initiate": ["--keys", keys["alice"], "--to", "sip:bob@x.example", "--state", scratch["initiate"]],
        "respond": ["--keys", keys["bob"], "--state", scratch["respond"]],
        "complete": ["--keys", keys["alice"], "--state", scratch["complete"]],
    }
    w["copies"]["ibake"] = [(d / "ibake-b1.state", scratch["respond"]), (d / "ibake-a2.state", scratch["complete"]),
                            (d / "ibake-a1.state", scratch["rmsg"])]
    w["messages"]["ibake"] = [bytes.fromhex(m) for m in (i1, r1, i2, r2)]
    w["responder_samples"]["ibake"] = [bytes.fromhex(i1), bytes.fromhex(i2)]
    w["rmsg"]["ibake"] = (["--keys", keys["alice"], "--state", scratch["rmsg"]], [bytes.fromhex(r1)])


def _ticket(w: World, server: DemoKms) -> None:
    """MIKEY-TICKET (RFC 6043): both parties' PSKs at a real KMS server; its clock is the real one."""
    url = server.url or ""
    token = DevIssuer.load_or_create(server.data).issue("admin", admin=True, now=time.time())
    provision_ticket_user(url, token, "sip:alice@x.example", bytes.fromhex(PSK), key_id="alice-fuzz",
                          may_resolve=False)
    provision_ticket_user(url, token, "sip:bob@x.example", bytes.fromhex(PSK), key_id="bob-fuzz", may_request=False)
    common = ["--kms", url, "--psk", PSK]
    c = {"initiate": [*common, "--psk-id", "alice-fuzz", "--id-i", "sip:alice@x.example", "--to", "sip:bob@x.example"],
         "respond": [*common, "--psk-id", "bob-fuzz", "--id-r", "sip:bob@x.example"], "complete": []}
    code, out, err = run(["initiate", "--mode", "ticket", *c["initiate"], "--json", "--show-keys"])
    assert code == 0, err
    ini = json.loads(out)
    c["complete"] = ["--grant-keys", ini["grant_keys"]]
    code, out, err = run(["respond", "--mode", "ticket", *c["respond"], "--imsg", ini["i_message"], "--json"])
    assert code == 0, err
    resp = json.loads(out)
    w["messages"]["ticket"] = [bytes.fromhex(ini["i_message"])]
    if resp["r_message"]:
        w["messages"]["ticket"].append(bytes.fromhex(resp["r_message"]))
        assert run(["complete", "--mode", "ticket", *c["complete"], "--imsg", ini["i_message"], "--rmsg",
                    resp["r_message"]])[0] == 0
    w["creds"]["ticket"] = c
    w["real_clock"].add("ticket")


def prepare(world: dict[str, Any], mode: str) -> list[str]:
    """Put the mode's state files back as the real exchange left them; the ``--now`` option for the mode."""
    for src, dst in world["copies"].get(mode, ()):
        shutil.copy(src, dst)
    return [] if mode in world["real_clock"] else ["--now", str(NOW)]


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


#: Every mode of the plugin registry (the world fixture fails if one has no credentials).
MODES = list(MODE_NAMES)
#: The modes whose Initiator takes an answer and sends another message (``initiate --rmsg``): more round trips.
ROUND_TRIP_MODES = [name for name, p in load_plugins().items() if isinstance(p, RoundTripDemoPlugin)]


# --- the fuzz tests -------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_decode(world: dict[str, Any], data: st.DataObject) -> None:
    samples = [m for ms in world["messages"].values() for m in ms]
    msg = data.draw(message_arg(samples, world["dir"]))
    flags = data.draw(st.lists(st.sampled_from(["--json", "--validate"]), unique=True))
    run(["decode", *flags, "--", msg] if msg.startswith("-") else ["decode", *flags, msg])


def test_every_mode_is_fuzzed(world: dict[str, Any]) -> None:
    assert set(world["creds"]) == set(world["messages"]) == set(MODE_NAMES)
    assert ROUND_TRIP_MODES == ["ibake"] and set(world["rmsg"]) == set(ROUND_TRIP_MODES)


def test_each_example_starts_from_the_real_exchange_state(world: dict[str, Any]) -> None:
    """The unmutated later messages are taken, every time: the state files are put back before each run."""
    i1, r1, i2, r2 = world["messages"]["ibake"]
    c = world["creds"]["ibake"]
    for _ in range(2):
        now = prepare(world, "ibake")
        assert run(["respond", "--mode", "ibake", *c["respond"], f"--imsg={i2.hex()}", *now])[0] == 0
        assert run(["complete", "--mode", "ibake", *c["complete"], f"--imsg={i1.hex()}", f"--rmsg={r2.hex()}",
                    *now])[0] == 0
        args, _ = world["rmsg"]["ibake"]
        assert run(["initiate", "--mode", "ibake", *args, f"--rmsg={r1.hex()}", *now])[0] == 0
    assert run(["complete", "--mode", "ibake", *c["complete"], f"--imsg={i1.hex()}", f"--rmsg={r2.hex()}",
                *now])[0] == 1  # not put back: that answer was taken


@pytest.mark.parametrize("mode", MODES)
@FUZZ
@given(data=st.data())
def test_respond(world: dict[str, Any], mode: str, data: st.DataObject) -> None:
    samples = world["responder_samples"].get(mode, world["messages"][mode][:1])
    msg = data.draw(message_arg(samples, world["dir"]))
    extra = data.draw(extra_options("respond"))
    now = prepare(world, mode)
    run(["respond", "--mode", mode, *world["creds"][mode]["respond"], f"--imsg={msg}", *now, *extra])


@pytest.mark.parametrize("mode", MODES)
@FUZZ
@given(data=st.data())
def test_complete(world: dict[str, Any], mode: str, data: st.DataObject) -> None:
    samples = world["messages"][mode]
    imsg = data.draw(st.one_of(st.just(samples[0].hex()), message_arg(samples[:1], world["dir"])))
    rmsg = data.draw(message_arg(samples[1:] or samples, world["dir"]))
    extra = data.draw(extra_options("complete"))
    prepare(world, mode)
    run(["complete", "--mode", mode, *world["creds"][mode]["complete"], f"--imsg={imsg}", f"--rmsg={rmsg}", *extra])


@pytest.mark.parametrize("mode", MODES)
@FUZZ
@given(data=st.data())
def test_initiate(world: dict[str, Any], mode: str, data: st.DataObject) -> None:
    extra = data.draw(extra_options("initiate"))
    now = prepare(world, mode)
    run(["initiate", "--mode", mode, *world["creds"][mode]["initiate"], *now, *extra])


@pytest.mark.parametrize("mode", ROUND_TRIP_MODES)
@FUZZ
@given(data=st.data())
def test_initiate_takes_an_answer(world: dict[str, Any], mode: str, data: st.DataObject) -> None:
    """The Initiator's later steps: ``initiate --rmsg`` with a mutated answer (MIKEY-IBAKE's R_MESSAGE_1)."""
    args, samples = world["rmsg"][mode]
    msg = data.draw(message_arg(samples, world["dir"]))
    extra = data.draw(extra_options("complete"))
    now = prepare(world, mode)
    run(["initiate", "--mode", mode, *args, f"--rmsg={msg}", *now, *extra])


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
