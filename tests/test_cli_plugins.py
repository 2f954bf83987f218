"""The CLI's mode plugins: one abstract interface, a registry of concrete plugins, no plugin reaching
into another, and ``--compat`` taken from each mode's own registry."""

from __future__ import annotations

import argparse
import ast
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import mikey.cli
import mikey.modes.dh as dh_mode
import mikey.modes.dhhmac as dhhmac_mode
import mikey.modes.pk as pk_mode
import mikey.modes.psk as psk_mode
import mikey.modes.rsa_r as rsa_r_mode
from mikey.cli import exchange, main
from mikey.cli.demo_pki import make_demo_pki
from mikey.cli.main import build_parser
from mikey.cli.mode_psk import PskPlugin
from mikey.cli.plugin_base import ModePlugin
from mikey.cli.plugins import MODE_NAMES, PLUGINS, load_plugins
from mikey.modes.keytransport import verification_message, verification_trailer
from mikey.modes.psk import PskInitiator
from mikey.wire import Message, TimestampPayload

CLI_DIR = Path(mikey.cli.__file__).parent
HOOKS = {"add_arguments", "initiate", "respond", "complete", "demo_credentials", "demo_initiator",
         "demo_responder", "speed_cases"}


@pytest.mark.parametrize("plugin", PLUGINS, ids=MODE_NAMES)
def test_every_plugin_is_a_concrete_mode_plugin(plugin: ModePlugin) -> None:
    assert isinstance(plugin, ModePlugin)
    assert not inspect.isabstract(type(plugin))
    fresh = type(plugin)()  # instantiable: every hook implemented
    assert fresh.name == plugin.name and fresh.help


def test_registry_lists_every_mode_once() -> None:
    assert MODE_NAMES == ("psk", "pk", "dh", "dhhmac", "rsa-r", "sakke", "ticket", "ibake")
    assert list(load_plugins()) == list(MODE_NAMES)
    assert [type(p).__module__ for p in PLUGINS] == [f"mikey.cli.mode_{n.replace('-', '_')}" for n in MODE_NAMES]


def test_abstract_hooks() -> None:
    assert ModePlugin.__abstractmethods__ == HOOKS
    with pytest.raises(TypeError, match="abstract"):
        ModePlugin()  # type: ignore[abstract]


@pytest.mark.parametrize("missing", sorted(HOOKS))
def test_incomplete_plugin_cannot_be_instantiated(missing: str) -> None:
    def hook(self: Any, *args: Any) -> None:
        return None

    partial = type("Partial", (ModePlugin,), {"name": "partial", "help": "x", **dict.fromkeys(HOOKS - {missing}, hook)})
    with pytest.raises(TypeError, match=missing):
        partial()
    complete = type("Complete", (ModePlugin,), {"name": "complete", "help": "x", **dict.fromkeys(HOOKS, hook)})
    assert complete().demo_description({}) == "complete"


def test_not_implemented_error_is_not_swallowed() -> None:
    """A plugin bug surfaces as itself, not as a 'mode does not support' usage error."""

    class Broken(PskPlugin):
        def initiate(self, args: argparse.Namespace, now: float) -> Any:
            raise NotImplementedError("half-written plugin")

    parser = argparse.ArgumentParser()
    exchange.register(parser.add_subparsers(dest="command", required=True), {"psk": Broken()}, "psk")
    args = parser.parse_args(["initiate", "--mode", "psk", "--psk", "00" * 16])
    with pytest.raises(NotImplementedError, match="half-written plugin"):
        args.func(args)


def _relative_imports(path: Path) -> list[ast.ImportFrom]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1]


@pytest.mark.parametrize("path", sorted(CLI_DIR.glob("mode_*.py")), ids=lambda p: p.stem)
def test_plugins_do_not_import_each_other(path: Path) -> None:
    """A plugin imports shared CLI modules (plugin_base, certargs, dhargs, common ...), never another plugin,
    and never a private name of a sibling."""
    for node in _relative_imports(path):
        module = node.module or ""
        assert not module.startswith("mode_"), f"{path.name} imports {module}"
        for alias in node.names:
            assert not (module == "" and alias.name.startswith("mode_")), f"{path.name} imports {alias.name}"
            assert not alias.name.startswith("_"), f"{path.name} imports private {module}.{alias.name}"


def _options(command: str, mode: str) -> set[str]:
    """The option strings ``mikey COMMAND --mode MODE`` accepts."""
    parser = build_parser([command, "--mode", mode])
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(subparsers.choices[command]._option_string_actions)


@pytest.mark.parametrize(("mode", "offered"), [
    ("psk", {"--tgk", "--encr", "--mac", "--verify"}),
    ("pk", {"--tgk", "--encr", "--mac", "--verify"}),
    ("dh", set()),  # DH transports no TGK, has no KEMAC and always responds
    ("dhhmac", {"--mac"}),
    ("rsa-r", set()),  # the Responder chooses the TGK and the KEMAC algorithms
    ("sakke", {"--tgk"}),  # the SSV
])
def test_initiate_offers_only_the_shared_options_a_mode_uses(mode: str, offered: set[str]) -> None:
    options = _options("initiate", mode)
    assert options & {"--tgk", "--encr", "--mac", "--verify"} == offered
    assert {"--csb-id", "--rand", "--ssrc", "--prf", "--raw", "--now", "--show-keys"} <= options


def test_option_a_mode_ignores_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["initiate", "--mode", "dh", "--cert", "c.pem", "--key", "k.pem", "--verify"]) == 2
    assert "unrecognized arguments: --verify" in capsys.readouterr().err


def test_help_groups_the_mode_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["respond", "--mode", "rsa-r", "--help"]) == 0
    out = capsys.readouterr().out
    _usage, listing = out.split("\n\n", 1)
    shared, own = listing.split("--mode rsa-r options:\n  RSA in reverse")
    assert "--imsg" in shared and "--cert" not in shared
    assert "--cert PEM" in own and "--group-csb-id" in own and "--imsg" not in own
    assert "--s-type" not in out  # the DH spelling of --sign is accepted, not advertised
    assert main(["complete", "--help"]) == 0
    out = capsys.readouterr().out
    for plugin in PLUGINS:
        assert f"  {plugin.name:<6}  {plugin.help}\n" in out


@pytest.mark.parametrize(("mode", "credentials"), [
    ("dh", ["--dh-private", "5"]),
    ("dhhmac", ["--psk", "00" * 16, "--dh-private", "5"]),
    ("rsa-r", ["--cert", "/nonexistent.pem", "--key", "/nonexistent.key"]),
])
def test_complete_without_the_response_a_mode_always_sends(capsys: pytest.CaptureFixture[str], mode: str,
                                                           credentials: list[str]) -> None:
    """One usage error (exit 2) for every mode whose Responder always answers, before anything is read."""
    assert main(["complete", "--mode", mode, "--imsg", "01" * 20, *credentials]) == 2
    assert f"--mode {mode}: the Responder always answers" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["psk", "pk"])
def test_complete_without_the_verification_message_v_asked_for(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                               mode: str) -> None:
    """With V set the verification message is needed (RFC 3830 §5.2); without V the keys are complete."""
    if mode == "psk":
        initiate, complete = ["--psk", "00" * 16], ["--psk", "00" * 16]
    else:
        pki = make_demo_pki(tmp_path)
        initiate = ["--cert", pki["alice"]["cert"], "--key", pki["alice"]["key"], "--peer-cert", pki["bob"]["cert"]]
        complete = []
    for verify in (True, False):
        assert main(["initiate", "--mode", mode, *initiate, "--json", "--show-keys", *(["--verify"] * verify)]) == 0
        sent = json.loads(capsys.readouterr().out)
        env_key = ["--env-key", sent["envelope_key"]] if mode == "pk" else []
        code = main(["complete", "--mode", mode, *complete, *env_key, "--imsg", sent["i_message"], "--json"])
        if verify:
            assert code == 2
            assert "the I_MESSAGE set V: pass the verification message (--rmsg)" in capsys.readouterr().err
        else:
            assert code == 0 and json.loads(capsys.readouterr().out)["csb_id"] == sent["csb_id"]


# --- --compat: each mode's own registry -----------------------------------------------------------

#: Per mode and command, the registry ``--compat`` must accept exactly (None: no --compat there).
COMPAT = {
    "psk": {"initiate": psk_mode.COMPAT_OPTIONS, "respond": None, "complete": psk_mode.COMPAT_OPTIONS},
    "pk": dict.fromkeys(exchange.COMMANDS, pk_mode.PK_COMPAT),
    "rsa-r": dict.fromkeys(exchange.COMMANDS, rsa_r_mode.RSA_R_COMPAT),
    "dh": {"initiate": dh_mode.DH_COMPAT_OPTIONS, "respond": None, "complete": dh_mode.DH_COMPAT_OPTIONS},
    "dhhmac": {"initiate": dhhmac_mode.DH_COMPAT_OPTIONS, "respond": dhhmac_mode.DHHMAC_RESPONDER_COMPAT,
               "complete": dhhmac_mode.DH_COMPAT_OPTIONS},
    "sakke": {"initiate": {"exclude-sign-header"}, "respond": {"exclude-sign-header"}, "complete": None},
    "ticket": dict.fromkeys(exchange.COMMANDS, None),
    "ibake": dict.fromkeys(exchange.COMMANDS, None),
}


def _compat_action(command: str, mode: str) -> argparse.Action | None:
    parser = build_parser([command, "--mode", mode])
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[command]._option_string_actions.get("--compat")


@pytest.mark.parametrize("command", exchange.COMMANDS)
@pytest.mark.parametrize("mode", MODE_NAMES)
def test_compat_accepts_exactly_the_modes_registry(command: str, mode: str) -> None:
    registry = COMPAT[mode][command]
    action = _compat_action(command, mode)
    if registry is None:
        assert action is None
        return
    assert action is not None and action.choices is not None
    assert set(action.choices) == set(registry) and registry
    assert action.help is not None and all(name in action.help for name in registry)  # --help lists them


def test_compat_registries_hold_the_deployed_variants() -> None:
    """Known answers: the variants section 5 of the issue names, where each belongs."""
    assert COMPAT["psk"]["complete"] == {"fresh-response-timestamp"}
    assert "fresh-response-timestamp" in COMPAT["pk"]["complete"]
    assert {"response-rand", "rsa-r-sign-no-trailer", "fresh-response-timestamp"} <= COMPAT["rsa-r"]["complete"]
    assert "response-rand" not in COMPAT["pk"]["complete"]  # an RSA-R variant only


def test_compat_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["complete", "--mode", "psk", "--psk", "00" * 16, "--imsg", "00", "--compat", "fresh-response-timestamp"]
    assert build_parser(argv).parse_args(argv).compat == ["fresh-response-timestamp"]
    assert main([*argv[:-1], "response-rand"]) == 2  # an RSA-R variant: not PSK's
    err = capsys.readouterr().err
    assert "argument --compat: invalid choice: 'response-rand' (choose from 'fresh-response-timestamp')" in err


def test_psk_complete_accepts_a_fresh_response_timestamp_only_with_compat(capsys: pytest.CaptureFixture[str]) -> None:
    """Deployed PSK responders put their own clock in the R_MESSAGE's T, V still over the Initiator's T
    (issue 8, section 5): refused by default with the switch named, accepted with --compat."""
    psk, now = "00" * 16, 1_700_000_000

    def run(*argv: str) -> tuple[int, dict[str, Any]]:
        code = main([*argv, "--mode", "psk", "--psk", psk, "--json"])
        return code, json.loads(capsys.readouterr().out)

    _, sent = run("initiate", "--verify", "--now", str(now))
    code, answer = run("respond", "--imsg", sent["i_message"], "--now", str(now))
    assert code == 0
    initiator = PskInitiator.from_i_message(bytes.fromhex(psk), bytes.fromhex(sent["i_message"]))
    keys = initiator.transport.keys(bytes.fromhex(psk), initiator.csb_id, initiator.rand)
    response = Message.decode(bytes.fromhex(answer["r_message"]))
    assert initiator.timestamp is not None
    trailer = verification_trailer("rfc", initiator.id_i, initiator.id_r, initiator.timestamp.ts_value)
    deployed = verification_message(int(response.data_type), response.header, TimestampPayload.ntp_utc(now + 2),
                                    initiator.transport.mac_alg, keys.auth_key, None, trailer).hex()
    complete = ("complete", "--imsg", sent["i_message"], "--rmsg", deployed, "--now", str(now + 2))
    code, refused = run(*complete)
    assert code == 1 and refused["error"]["kind"] == "authentication"
    assert "--compat fresh-response-timestamp" in refused["error"]["message"]
    code, done = run(*complete, "--compat", "fresh-response-timestamp")
    assert code == 0 and done["authenticated"]
    assert [cs["fingerprint"] for cs in done["crypto_sessions"]] == [
        cs["fingerprint"] for cs in answer["crypto_sessions"]]
