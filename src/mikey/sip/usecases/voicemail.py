"""Delayed delivery (voicemail; RFC 3830 §2.1, RFC 6267 §3.3): Bob is offline, his mailbox keeps the call.

Kamailio runs with a voicemail AOR (:class:`mikey.sip.kamailio.Kamailio` ``voicemail=``); the
voicemail UA (``python -m mikey.sip.voicemail``, :mod:`mikey.sip.voicemail`) registers there; Bob
has no registered device.  Alice's ``mikey phone`` calls Bob: the proxy sends the call to the
mailbox, which keeps the I_MESSAGE and the SRTP it receives, undecrypted, or refuses with a 488
carrying the MIKEY Error when the method needs Bob himself.  Later Bob opens the kept I_MESSAGE
with his own credentials (at its arrival time) and decrypts the recording with ``mikey
srtp-decrypt``; the mailbox's own report says it decrypted nothing.

Per method (the README's row):

* ``keyed`` (delivered later): MIKEY-SAKKE (the SSV is encapsulated to Bob's identity, RFC 6509
  §2.2), PSK and PK sent without V (the TGK is in the KEMAC, under the Alice-Bob PSK or Bob's
  public key, RFC 3830 §3.1, §3.2), TICKET without TRANSFER_RESP (F = 0; Bob resolves the ticket at
  the KMS when he listens, RFC 6043 §4.2.3);
* ``refused``: what the mailbox cannot keep for the method as the caller ran it (PSK/PK/TICKET asking
  for Bob's verification, IBAKE without ESK);
* ``not-served``: DH, DH-HMAC and RSA-R -- their keys need Bob's own answer (DHr, or the TGK he
  picks; RFC 3830 §3.3, RFC 4650, RFC 4738 §3.6), which an offline callee cannot give.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..phone import PhoneProcess, phone_argv, write_demo_credentials
from ..voicemail import Deposit, load_deposits
from . import Observation, Outcome, UseCaseEnv, use_case

__all__ = ["CASE", "PACKETS", "NEED_CALLEE", "run", "voicemail_call", "retrieve", "observe"]

CASE = "delayed-delivery"
#: RTP packets Alice leaves (20 ms each).
PACKETS = 40
#: Methods whose keys need the callee's own answer: not served by a mailbox.
NEED_CALLEE = frozenset({"dh", "dhhmac", "rsa-r"})
#: MIKEY-TICKET policy flags of a call to a mailbox: the demo's without F (no TRANSFER_RESP, RFC 6043 §6.10).
TICKET_FLAGS = "DEHJNO"


def _first(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in events if e.get("event") == name), None)


def _caller_argv(method: str, creds: Path, alice: str, bob: str, proxy: tuple[str, int], packets: int,
                 timeout: float) -> list[str]:
    """Alice's phone.  PSK and PK run with their own options, without ``--verify`` (V = 0: no response
    asked for); the others from the demo credentials (TICKET's with F = 0)."""
    doc = json.loads(creds.read_text())
    if method == "ticket":
        doc["flags"] = TICKET_FLAGS
        creds.write_text(json.dumps(doc))
    if method not in ("psk", "pk"):
        return phone_argv(method, alice, proxy, creds=creds, call=bob, packets=packets, timeout=timeout)
    argv = [sys.executable, "-m", "mikey", "phone", "--json", "--mode", method, "--user", alice,
            "--proxy", f"{proxy[0]}:{proxy[1]}", "--call", bob, "--packets", str(packets), "--timeout", f"{timeout:g}"]
    if method == "psk":
        return argv + ["--psk", str(doc["psk"])]
    return argv + ["--cert", doc["alice"]["cert"], "--key", doc["alice"]["key"], "--peer-cert", doc["bob"]["cert"],
                   "--ca", doc["ca"]]


def voicemail_call(env: UseCaseEnv, method: str, *, packets: int = PACKETS, hang_up_after: float = 0.6,
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Path, Path, str]:
    """Kamailio with a voicemail AOR, the voicemail UA, Alice's phone calling offline Bob.

    Returns (Alice's events, the mailbox's events, the mailbox directory, the credentials file, a
    detail when something did not start).  Every process, Kamailio included, is stopped.
    """
    from ..kamailio import Kamailio

    work = env.workdir / f"voicemail-{method}"
    work.mkdir(parents=True, exist_ok=True)
    vm_extra: list[str] = []
    if method == "ibake":
        creds, vm_extra = _ibake_credentials(work, env.domain)
    else:
        creds = write_demo_credentials(method, work)
    box = work / "mailbox"
    with Kamailio(work / "kamailio", domain=env.domain, voicemail="voicemail") as proxy:
        address = (proxy.host, proxy.port)
        vm = PhoneProcess([sys.executable, "-m", "mikey.sip.voicemail", "--proxy", proxy.proxy, "--aor",
                           proxy.aor("voicemail"), "--dir", str(box), "--hang-up-after", f"{hang_up_after:g}",
                           *vm_extra], stderr=work / "voicemail.stderr")
        caller: PhoneProcess | None = None
        try:
            if vm.wait_for("ready", env.timeout) is None:
                return [], vm.finish(0.0), box, creds, "the voicemail UA did not register: " + vm.stderr_tail()[-300:]
            caller = PhoneProcess(_caller_argv(method, creds, proxy.aor("alice"), proxy.aor("bob"), address, packets,
                                               env.timeout), stderr=work / "alice.stderr")
            events = caller.finish(env.timeout * 2 + packets * 0.02 + 10.0)
            call = _first(events, "call")
            if call is not None and call.get("status") == 200:
                vm.wait_for("deposit", env.timeout)
            detail = "" if events else "Alice's phone printed nothing: " + caller.stderr_tail()[-300:]
        finally:
            if caller is not None:
                caller.finish(0.0)
            vm.proc.terminate()
            vm_events = vm.finish(10.0)
    return events, vm_events, box, creds, detail


def _ibake_credentials(work: Path, domain: str) -> tuple[Path, list[str]]:
    """IBAKE: Alice's and Bob's ``--demo-creds`` (one file-based KMS) asking for an ESK and naming the mailbox
    that may answer (RFC 6267 §3.3, §6.1.2; the ``esk`` and ``mailboxes`` entries), and the mailbox's own
    K_PR for the voicemail UA (``--ibake-keys``)."""
    from .divert import ibake_credentials

    creds = ibake_credentials(work, domain, ("alice", "bob", "voicemail"))
    doc = {k: creds[k] for k in ("kms_id", "params", "alice", "bob")}
    doc["esk"], doc["mailboxes"] = True, [creds["voicemail"]["uri"]]
    path = work / "ibake-creds.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    return path, ["--ibake-keys", creds["voicemail"]["keys"]]


def _write_keys(result: Any, path: Path) -> Path:
    """*result*'s SRTP keys as ``mikey keys --json --show-keys`` prints them (file 0600), for ``--keys-from``."""
    from ...cli.keys import records_of

    doc = {"crypto_sessions": [r.to_dict(secrets=True) for r in records_of(result, "voicemail")]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    return path


def _srtp_decrypt(deposit: Deposit, out: Path, *args: str) -> dict[str, Any]:
    """``mikey srtp-decrypt`` of the deposit's recording with Bob's keys (a child process)."""
    proc = subprocess.run([sys.executable, "-m", "mikey", "srtp-decrypt", str(deposit.media), *args,
                           "--out", str(out), "--json"], capture_output=True, text=True, timeout=120)
    try:
        doc: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        doc = {}
    doc["exit"] = proc.returncode
    if proc.returncode and "error" not in doc:
        doc["error"] = proc.stderr.strip()[-300:]
    return doc


def _ticket_keys(deposit: Deposit, creds: dict[str, Any], path: Path) -> Path:
    """Bob opens the kept TRANSFER_INIT: T judged at its arrival, the ticket resolved at the KMS now
    (RFC 6043 §4.2.3); the keys written as ``mikey keys --json --show-keys`` does (file 0600)."""
    from ...cli.mode_ticket import local_transport
    from ...modes.ticket import TicketResponder

    bob = creds["bob"]
    responder = TicketResponder(bytes.fromhex(bob["psk"]), id_r=bob["uri"].encode(), psk_id=bob["psk_id"].encode())
    now = time.time()
    step = responder.receive(deposit.i_message, now, received_at=deposit.arrival)
    if step.outcome is not None:
        result = step.outcome.result
    else:
        kms = local_transport(creds["kms_db"], creds["at_rest_key"], creds["kms_id"].encode())
        result = responder.receive_resolve(kms(step.resolve_init or b"", now), now).result
    return _write_keys(result, path)


def retrieve(method: str, deposit: Deposit, creds_path: Path, out: Path) -> dict[str, Any]:
    """Bob, later, decrypts the kept recording with his own credentials; ``mikey srtp-decrypt``'s JSON."""
    creds = json.loads(creds_path.read_text())
    message = f"@{deposit.directory / 'i_message.mikey'}"
    if method == "sakke":
        return _srtp_decrypt(deposit, out, "--keys-from", message, "--mode", "sakke", "--keys", creds["bob"]["keys"])
    if method == "psk":
        return _srtp_decrypt(deposit, out, "--keys-from", message, "--mode", "psk", "--psk", creds["psk"])
    if method == "pk":
        return _srtp_decrypt(deposit, out, "--keys-from", message, "--mode", "pk", "--cert", creds["bob"]["cert"],
                             "--key", creds["bob"]["key"], "--ca", creds["ca"])
    if method in ("ticket", "ibake"):
        if method == "ticket":
            keys = _ticket_keys(deposit, creds, out.with_suffix(".keys.json"))
        else:  # Bob opens the ESK of the kept messages with his K_PR (RFC 6267 §3.3)
            from ...cli.ibake_files import load_user_keys
            from ...modes.ibake import open_deferred

            bob = load_user_keys(creds["bob"]["keys"])
            result = open_deferred(deposit.messages, bob.credentials, bob.uri.encode(), now=deposit.arrival)
            keys = _write_keys(result, out.with_suffix(".keys.json"))
        try:
            return _srtp_decrypt(deposit, out, "--keys-from", str(keys))
        finally:
            keys.unlink(missing_ok=True)
    return {"exit": 2, "error": f"no retrieval for {method}"}


def observe(method: str, alice: list[dict[str, Any]], mailbox: list[dict[str, Any]], deposits: list[Deposit],
            retrieved: dict[str, Any] | None, detail: str = "") -> Observation:
    """The cell: kept and decrypted by Bob later, or refused / not served with the mailbox's Error."""
    data: dict[str, Any] = {"alice": alice, "mailbox": mailbox, "retrieved": retrieved}
    call = _first(alice, "call")
    if call is None:
        return Observation(CASE, method, Outcome.FAILED, detail or "no call event from Alice's phone", data=data)
    if call.get("status") != 200:
        why = f"the mailbox answered SIP {call.get('status')}"
        if call.get("error_no") is not None:
            why += f" with MIKEY Error no {call['error_no']}"
        kept = _first(mailbox, "call")
        if kept is not None and kept.get("error"):
            why += f": {kept['error']}"
        if method in NEED_CALLEE:
            return Observation(CASE, method, Outcome.NOT_SERVED, why + " (the keys need Bob's own answer)", data=data)
        return Observation(CASE, method, Outcome.REFUSED, why, data=data)
    deposit_event = _first(mailbox, "deposit")
    if deposit_event is None or len(deposits) != 1:
        return Observation(CASE, method, Outcome.FAILED, "the mailbox answered but kept no deposit", data=data)
    stored, readable = int(deposit_event.get("stored_packets", 0)), int(deposit_event.get("decrypted", 0))
    if retrieved is None or retrieved.get("exit") != 0:
        why = (retrieved or {}).get("error") or "no retrieval"
        return Observation(CASE, method, Outcome.FAILED, f"kept {stored} packets; Bob could not decrypt: {why}",
                           data=data)
    streams = retrieved.get("streams", {})
    rtp = sum(int(s.get("rtp", 0)) for s in streams.values())
    failures = sum(int(s.get("rtp_auth_failures", 0)) for s in streams.values())
    sent = int((_first(alice, "media") or {}).get("sent", 0))
    ok = readable == 0 and rtp > 0 and failures == 0 and rtp == sent
    text = (f"the mailbox kept {stored} packets it could not decrypt (decrypted {readable}); Bob decrypted "
            f"{rtp}/{sent} RTP packets later with his own keys")
    if not ok:
        return Observation(CASE, method, Outcome.FAILED, text, data=data)
    return Observation(CASE, method, Outcome.KEYED, text, media_ok=True, data=data)


@use_case(CASE)
def run(env: UseCaseEnv, method: str) -> Observation:
    """Alice calls offline Bob; his mailbox keeps the call; Bob decrypts it later, where the method allows."""
    try:
        alice, mailbox, box, creds, detail = voicemail_call(env, method)
        deposits = load_deposits(box)
        retrieved = None
        if len(deposits) == 1:
            retrieved = retrieve(method, deposits[0], creds, box / "bob-plain.pcap")
    except Exception as exc:  # the table must get a cell whatever happened (credentials, processes)
        return Observation(CASE, method, Outcome.FAILED, f"{type(exc).__name__}: {exc}")
    return observe(method, alice, mailbox, deposits, retrieved, detail)
