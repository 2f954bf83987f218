"""Bad input never crashes a key exchange: every mode's Responder and Initiator, fed mutated
messages, raise only MikeyError subclasses (and never accept a mutated authenticated message).

For each mode (built by its CLI plugin, as the demo does) a real I_MESSAGE and
response are mutated by seeded random bit flips, octet changes, insertions,
deletions, truncations and splices, then given to a fresh Responder (and the
response to a fresh Initiator).  Anything but a MikeyError, or an accepted
mutation that changed authenticated bytes, fails the test.

MIKEY-IBAKE takes two round trips (RFC 6267 §4.2.2): each of its four messages is mutated at
the side that receives it, driven through the demo's stepped hooks
(``demo_peer.stepped_initiator``/``stepped_responder``).  I_MESSAGE_1, R_MESSAGE_1 and
I_MESSAGE_2 carry T, RAND, IDR and the HDR without a MAC, so a mutation may be accepted only
if it left the IBE-encrypted IBAKE payload alone; R_MESSAGE_2 is covered by its V (MAC) and
no mutation of it may be accepted (see tests/test_modes_ibake_fuzz.py).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from mikey.cli.demo_peer import SteppedInitiator, SteppedResponder, stepped_initiator, stepped_responder
from mikey.cli.plugins import load_plugins
from mikey.errors import MikeyError
from mikey.modes.base import ExchangeResult, ResponderOutcome
from mikey.wire import IbakePayload, Message

NOW = time.time()
MUTATIONS = 60
#: Mutations of each of the four MIKEY-IBAKE messages.
IBAKE_MUTATIONS = 24


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
        if name == "ibake":  # two round trips: the ibake_exchange fixture below
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


# --- MIKEY-IBAKE: four messages in two round trips, through the demo's stepped hooks -------------

IBAKE_MESSAGES = ["I_MESSAGE_1", "R_MESSAGE_1", "I_MESSAGE_2", "R_MESSAGE_2"]


@pytest.fixture(scope="module")
def ibake_exchange(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any], list[bytes]]:
    """A real two-round-trip IBAKE exchange (a local file-based KMS): plugin, credentials and its four messages."""
    plugin = load_plugins()["ibake"]
    creds = plugin.demo_credentials(tmp_path_factory.mktemp("ibake"))
    initiator, responder = stepped_initiator(plugin, creds, 0x11111111), stepped_responder(plugin, creds, 0x22222222)
    i1 = initiator.create_message(NOW)
    r1, r_result = responder.receive(i1, NOW)
    assert r1 is not None and r_result is None
    i2, i_result = initiator.receive(r1, NOW)
    assert i2 is not None and i_result is None
    r2, r_result = responder.receive(i2, NOW)
    assert r2 is not None and r_result is not None
    last, i_result = initiator.receive(r2, NOW)
    assert last is None and i_result is not None
    assert i_result.tgk == r_result.tgk and i_result.csb_id == r_result.csb_id
    assert i_result.crypto_sessions and r_result.crypto_sessions
    return plugin, creds, [i1, r1, i2, r2]


def _receiver(plugin: Any, creds: dict[str, Any], index: int) -> tuple[SteppedInitiator | SteppedResponder, bytes]:
    """A fresh exchange run up to where message *index* (0..3) is received: its receiving side and the message."""
    initiator, responder = stepped_initiator(plugin, creds, 0x33333333), stepped_responder(plugin, creds, 0x44444444)
    message = initiator.create_message(NOW)
    sides: list[SteppedInitiator | SteppedResponder] = [responder, initiator]
    for step in range(index):
        message, _ = sides[step % 2].receive(message, NOW)
        assert message is not None
    return sides[index % 2], message


def _ibake_ciphertext(raw: bytes) -> bytes | None:
    try:
        p = Message.decode(raw).find(IbakePayload)
    except MikeyError:
        return None
    return p.encr_data if p is not None else None


@pytest.mark.parametrize("index", range(4), ids=IBAKE_MESSAGES)
def test_ibake_sides_survive_mutated_messages(index: int, ibake_exchange: tuple[Any, dict[str, Any], list[bytes]]
                                              ) -> None:
    """Every IBAKE message, mutated, at the side that receives it: only MikeyError escapes; an accepted
    mutation left the IBE ciphertext alone, and none of R_MESSAGE_2 (MAC-covered by V) is accepted."""
    plugin, creds, _ = ibake_exchange
    rng = random.Random(f"ibake-{index}")
    side, good = _receiver(plugin, creds, index)
    rejected = 0
    for _ in range(IBAKE_MUTATIONS):
        bad = mutate(good, rng)
        if bad == good:
            continue
        try:
            side.receive(bad, NOW)
        except MikeyError:
            rejected += 1
            if index % 2 == 0:  # an IBAKE Responder fails for good on a refused message: start afresh
                side, good = _receiver(plugin, creds, index)
            continue
        assert index != 3, "a mutated R_MESSAGE_2 was accepted"
        assert _ibake_ciphertext(bad) == _ibake_ciphertext(good), f"{IBAKE_MESSAGES[index]}: mutated ciphertext accepted"
        side, good = _receiver(plugin, creds, index)  # the accepted message moved this side on: start afresh
    assert rejected > 0
    # The Initiator's refusals left it as it was: the genuine message still goes through.
    message, result = side.receive(good, NOW)
    assert message is not None or result is not None


def test_ibake_random_bytes_only_raise_mikey_errors(ibake_exchange: tuple[Any, dict[str, Any], list[bytes]]) -> None:
    plugin, creds, messages = ibake_exchange
    rng = random.Random("random-ibake")
    for n in range(MUTATIONS // 2):  # a fresh Responder each (one refusal fails it for good)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        if rng.random() < 0.5:  # a plausible header (of I_MESSAGE_1 or _2) half of the time
            junk = messages[2 * (n % 2)][:10] + junk
        with pytest.raises(MikeyError):
            stepped_responder(plugin, creds, 0x55555555).receive(junk, NOW)
