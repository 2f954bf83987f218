"""Key-period rollover with keys from a real ``mikey kms serve`` over HTTP (issue 9 §5; RFC 6509 §3.2-§3.3).

The server runs on its own clock, in key period N; each user's keystore is fetched over HTTP with
``init`` + ``keyprov`` + ``keyprov/<URI>/<NTP time in N+1>`` (TS 33.180 §D.2.1), so it holds N and
N+1.  The exchanges then run at chosen times around the boundary between N and N+1: the
identifiers (and so the key sets) are those of the period holding the message's timestamp T,
whichever side of the boundary the Responder's clock is on, within the 300 s window.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mikey.errors import UnsupportedIDError
from mikey.identities import NTP_UNIX_OFFSET, key_period_number
from mikey.keystore import SakkeKeystore
from mikey.kms.auth import DevIssuer
from mikey.kms.client import KmsFetchError, fetch_keystore
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.sakke import SakkeInitiator, SakkeResponder

ALICE = "sip:alice@rollover.example"
BOB = "sip:bob@rollover.example"
CAROL = "sip:carol@rollover.example"


def mikey(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mikey", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real KMS server with Alice, Bob and Carol registered, and the keystores fetched from it over HTTP."""
    data = tmp_path_factory.mktemp("rollover") / "kms"
    proc = subprocess.Popen([sys.executable, "-m", "mikey", "kms", "serve", "--data", str(data), "--port", "0",
                             "--dev-tokens"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        log = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""
        assert first.startswith("serving http://127.0.0.1:"), (first, log)
        url = first.removeprefix("serving ")
        added = mikey("kms", "user", "add", "--data", str(data), ALICE, BOB, CAROL)
        assert added.returncode == 0, added.stderr
        issuer = DevIssuer.load_or_create(data)
        tokens = {u: issuer.issue(u, ttl=900, now=time.time()) for u in (ALICE, BOB, CAROL)}
        stores = {u: fetch_keystore(url, tokens[u]) for u in (ALICE, BOB)}
        # Carol holds only the current period (no rollover preparation).
        stores[CAROL] = fetch_keystore(url, tokens[CAROL], next_period=False)
        yield {"url": url, "data": data, "tokens": tokens, "stores": stores}
        assert proc.poll() is None, "the server stopped"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _periods(store: SakkeKeystore) -> list[int]:
    return sorted(k.period_no for k in store.key_sets if k.period_no is not None)


def _boundary(store: SakkeKeystore, period_no: int) -> float:
    """Unix time at which *period_no* starts (TS 33.180 §F.2.1: NTP seconds = offset + n * period)."""
    return float(period_no * store.key_period + store.key_period_offset - NTP_UNIX_OFFSET)


def _identifier(store: SakkeKeystore, period_no: int) -> str:
    return next(k.identifier.hex() for k in store.key_sets if k.period_no == period_no)


def test_fetched_keystores_hold_the_current_and_the_next_period(kms: dict[str, Any]) -> None:
    alice, bob, carol = (kms["stores"][u] for u in (ALICE, BOB, CAROL))
    n = _periods(alice)[0]
    assert _periods(alice) == _periods(bob) == [n, n + 1]
    assert _periods(carol) == [n]
    assert n in (key_period_number(time.time(), alice.key_period, alice.key_period_offset) - 1,
                 key_period_number(time.time(), alice.key_period, alice.key_period_offset))
    alice.validate()
    bob.validate()
    # Re-provisioning returns the same keys for a period (the KMS records what it issued).
    again = fetch_keystore(kms["url"], kms["tokens"][ALICE])
    assert {k.period_no: k.rsk for k in again.key_sets} == {k.period_no: k.rsk for k in alice.key_sets}


@pytest.mark.parametrize(
    ("d_i", "d_r"),
    [(-600.0, -590.0), (-1.5, 1.5), (-0.001, 299.0), (1.0, -1.0), (2.0, 5.0)],
    ids=["both-in-N", "sender-N-receiver-N+1", "window-edge", "sender-N+1-receiver-N", "both-in-N+1"],
)
def test_exchange_across_the_boundary(kms: dict[str, Any], d_i: float, d_r: float) -> None:
    """Initiator clock = boundary + d_i (T), Responder clock = boundary + d_r."""
    alice, bob = kms["stores"][ALICE], kms["stores"][BOB]
    n = _periods(alice)[0]
    boundary = _boundary(alice, n + 1)
    period = n if d_i < 0 else n + 1
    init = SakkeInitiator(alice, BOB, key_type="pck", crypto_sessions=[CryptoSessionSpec(ssrc=0x5A5A5A5A, cs_id=1)])
    data = init.create_message(boundary + d_i)
    r = SakkeResponder(bob, initiator_uri=ALICE).receive(data, boundary + d_r).result
    assert r.authenticated and r.tgk == init.result.tgk
    assert r.crypto_sessions[0].master_key == init.result.crypto_sessions[0].master_key
    assert r.extras["key_period_no"] == init.result.extras["key_period_no"] == period
    assert r.extras["initiator_identifier"] == _identifier(alice, period)
    assert r.extras["responder_identifier"] == _identifier(bob, period)


def test_receiver_without_the_next_period_refuses_after_the_boundary(kms: dict[str, Any]) -> None:
    """Carol fetched only period N: a message timestamped in N+1 has no RSK (Error no 7); one in N works."""
    alice, carol = kms["stores"][ALICE], kms["stores"][CAROL]
    n = _periods(carol)[0]
    boundary = _boundary(carol, n + 1)
    late = SakkeInitiator(alice, CAROL).create_message(boundary + 1)
    with pytest.raises(UnsupportedIDError, match=f"key period {n + 1}") as ei:
        SakkeResponder(carol, initiator_uri=ALICE).receive(late, boundary - 1)
    assert ei.value.err_no == 7 and ei.value.error_message is not None
    early = SakkeInitiator(alice, CAROL).create_message(boundary - 1)
    assert SakkeResponder(carol, initiator_uri=ALICE).receive(early, boundary + 1).result.extras["key_period_no"] == n


def test_kms_refuses_periods_beyond_the_next(kms: dict[str, Any]) -> None:
    """The keystore cannot hold N+2 ahead of time: the KMS issues only the current and the next period."""
    store = kms["stores"][ALICE]
    n = _periods(store)[0]
    with pytest.raises(KmsFetchError, match="400"):
        fetch_keystore(kms["url"], kms["tokens"][ALICE], now=_boundary(store, n + 1) + 1.0)


def test_cli_fetch_initiate_respond_across_the_boundary(kms: dict[str, Any], tmp_path: pathlib.Path) -> None:
    """``mikey kms fetch`` files, ``initiate --now`` just before the boundary, ``respond --now`` just after."""
    for name, uri in (("alice", ALICE), ("bob", BOB)):
        r = mikey("kms", "fetch", "--kms", kms["url"], "--token", kms["tokens"][uri], "--out",
                  str(tmp_path / f"{name}.json"))
        assert r.returncode == 0, r.stderr
    n = _periods(kms["stores"][ALICE])[0]
    boundary = _boundary(kms["stores"][ALICE], n + 1)
    init = mikey("--json", "initiate", "--mode", "sakke", "--keys", str(tmp_path / "alice.json"), "--to", BOB,
                 "--key-type", "pck", "--now", f"{boundary - 2:.3f}", "--show-keys")
    assert init.returncode == 0, init.stderr
    i = json.loads(init.stdout)
    resp = mikey("--json", "respond", "--mode", "sakke", "--keys", str(tmp_path / "bob.json"), "--imsg",
                 i["i_message"], "--from", ALICE, "--now", f"{boundary + 2:.3f}", "--show-keys")
    assert resp.returncode == 0, resp.stderr
    out = json.loads(resp.stdout)
    assert out["tgk"] == i["tgk"]
    assert out["extras"]["key_period_no"] == n
    assert out["extras"]["responder_identifier"] == _identifier(kms["stores"][BOB], n)
