"""Bad input never crashes a key exchange: every mode's Responder and Initiator, fed mutated
messages, raise only MikeyError subclasses (and never accept a mutated authenticated message).

For each mode (built by its CLI plugin, as the demo does) a real I_MESSAGE and
response are mutated by seeded random bit flips, octet changes, insertions,
deletions, truncations and splices, then given to a fresh Responder (and the
response to a fresh Initiator).  Anything but a MikeyError, or an accepted
mutation that changed authenticated bytes, fails the test.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from mikey.cli.plugins import load_plugins
from mikey.errors import MikeyError
from mikey.modes.base import ExchangeResult, ResponderOutcome

NOW = time.time()
MUTATIONS = 60


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(6)
    pos = rng.randrange(len(b))
    if kind == 0:
        b[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b[pos] = rng.randrange(256)
    elif kind == 2:
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5)))
    elif kind == 3:
        del b[pos : pos + rng.randrange(1, 9)]
    elif kind == 4:
        del b[pos:]
    else:
        other = rng.randrange(len(b))
        b[pos:pos] = b[other : other + rng.randrange(1, 17)]
    return bytes(b)


@pytest.fixture(scope="module")
def exchanges(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, dict[str, Any], bytes, bytes | None]]:
    out: dict[str, tuple[Any, dict[str, Any], bytes, bytes | None]] = {}
    for name, plugin in load_plugins().items():
        if name == "ibake":  # no demo hooks (two round trips): tests/test_cli_ibake.py, test_modes_ibake_fuzz.py
            continue
        workdir: Path = tmp_path_factory.mktemp(name.replace("-", "_"))
        creds = plugin.demo_credentials(workdir)
        initiator = plugin.demo_initiator(creds, 0x11111111)
        i_message = initiator.create_message(NOW)
        outcome = plugin.demo_responder(creds, 0x22222222).receive(i_message, NOW)
        out[name] = (plugin, creds, i_message, outcome.response)
    return out


MODES = ["psk", "pk", "dh", "dhhmac", "rsa-r", "sakke"]


@pytest.mark.parametrize("mode", MODES)
def test_responder_survives_mutated_i_messages(
    mode: str, exchanges: dict[str, tuple[Any, dict[str, Any], bytes, bytes | None]]
) -> None:
    plugin, creds, i_message, _ = exchanges[mode]
    rng = random.Random(f"responder-{mode}")
    accepted = 0
    for _ in range(MUTATIONS):
        bad = mutate(i_message, rng)
        if bad == i_message:
            continue
        try:
            outcome = plugin.demo_responder(creds, 0x33333333).receive(bad, NOW)
        except MikeyError:
            continue
        assert isinstance(outcome, ResponderOutcome)
        accepted += 1
    # A mutation may only be accepted if it left every authenticated octet alone, which random
    # mutations of a MAC- or signature-protected message essentially never do.
    assert accepted == 0, f"{mode}: {accepted} mutated I_MESSAGEs accepted"


@pytest.mark.parametrize("mode", [m for m in MODES if m != "sakke"])
def test_initiator_survives_mutated_responses(
    mode: str, exchanges: dict[str, tuple[Any, dict[str, Any], bytes, bytes | None]]
) -> None:
    plugin, creds, _, response = exchanges[mode]
    assert response is not None
    rng = random.Random(f"initiator-{mode}")
    for _ in range(MUTATIONS // 2):
        bad = mutate(response, rng)
        if bad == response:
            continue
        initiator = plugin.demo_initiator(creds, 0x44444444)
        initiator.create_message(NOW)
        try:
            result = initiator.receive(bad, NOW)
        except MikeyError:
            continue
        # The Initiator answered a different I_MESSAGE, so any accepted response is a bug.
        raise AssertionError(f"{mode}: mutated response accepted: {result!r}")


@pytest.mark.parametrize("mode", MODES)
def test_random_bytes_only_raise_mikey_errors(
    mode: str, exchanges: dict[str, tuple[Any, dict[str, Any], bytes, bytes | None]]
) -> None:
    plugin, creds, i_message, _ = exchanges[mode]
    rng = random.Random(f"random-{mode}")
    for _ in range(MUTATIONS):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        # keep a plausible header half of the time so the mode handlers are reached
        if rng.random() < 0.5:
            junk = i_message[:10] + junk
        with pytest.raises(MikeyError):
            plugin.demo_responder(creds, 0x55555555).receive(junk, NOW)


def test_results_are_real(exchanges: dict[str, tuple[Any, dict[str, Any], bytes, bytes | None]]) -> None:
    """Sanity: the unmutated exchanges give matching keys, so the fuzz tests start from real messages."""
    for name, (plugin, creds, i_message, _) in exchanges.items():
        outcome = plugin.demo_responder(creds, 0x66666666).receive(i_message, NOW)
        assert isinstance(outcome.result, ExchangeResult) and outcome.result.crypto_sessions, name
