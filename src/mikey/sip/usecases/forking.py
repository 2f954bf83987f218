"""Call forking (RFC 3830 §2.1; RFC 3261 §16.6 parallel search): Bob registered on two devices.

Two ``mikey phone`` processes register as ``sip:bob@<domain>``; Alice's phone calls Bob and Kamailio
forks the INVITE, with its one I_MESSAGE (RFC 4567 §4.1), to both.  Each device answers with its
own R_MESSAGE; Alice keys the first 2xx (a second one goes to a fork of her Initiator,
:meth:`mikey.modes.base.Initiator.fork`, and is ended with BYE, RFC 3261 §13.2.2.4) and talks to
that device.  The observation compares what the two devices derived:

* ``own-keys``: every device has keys of its own -- DH and DH-HMAC (each its own DHr, RFC 3830 §3.3,
  RFC 4650), RSA-R (each picks its TGK, RFC 4738 §3.6), TICKET with key forking (RFC 6043 §5.1.1),
  IBAKE (each its own ECCPTr, RFC 6267 §7.3): the device Alice hung up on cannot read her media;
* ``same-key``: the I_MESSAGE carries the key (PSK, PK: RFC 3830 §3.1, §3.2; SAKKE: the SSV is
  encapsulated to the identity, RFC 6509 §2.2; TICKET without key forking): every device that
  received the INVITE -- answered or not -- holds the key of Alice's stream (the README's note).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..phone import PhoneProcess, phone_argv, write_demo_credentials
from . import Observation, Outcome, UseCaseEnv, use_case

__all__ = ["CASE", "PACKETS", "run", "observe", "fork_call"]

CASE = "call-forking"
#: RTP packets each end sends (20 ms each).
PACKETS = 40
#: MIKEY-TICKET policy flags of the forking call: the demo's, with I (key forking, RFC 6043 §6.10).
TICKET_FLAGS = "DEFHIJNO"


def _first(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in events if e.get("event") == name), None)


def fork_call(env: UseCaseEnv, method: str, *, packets: int = PACKETS,
              creds: Path | None = None) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]], str]:
    """Bob's two phones register, Alice's phone calls Bob; returns (Alice's events, each device's events,
    a detail when something did not start).  Every process is stopped."""
    work = env.workdir / f"forking-{method}"
    work.mkdir(parents=True, exist_ok=True)
    if creds is None:
        creds = write_demo_credentials(method, work)
        if method == "ticket":  # ask for key forking (I): each device's Resolve forks the keys (RFC 6043 §5.1.1)
            doc = json.loads(creds.read_text())
            doc["flags"] = TICKET_FLAGS
            creds.write_text(json.dumps(doc))
    proxy = (env.proxy_host, env.proxy_port)
    bob, alice = f"sip:bob@{env.domain}", f"sip:alice@{env.domain}"
    devices: list[PhoneProcess] = []
    caller: PhoneProcess | None = None
    try:
        for d in (1, 2):
            devices.append(PhoneProcess(phone_argv(method, bob, proxy, creds=creds, packets=packets,
                                                   timeout=env.timeout), stderr=work / f"bob{d}.stderr"))
        for d, dev in enumerate(devices, 1):
            if dev.wait_for("ready", env.timeout) is None:
                return [], [x.finish(0.0) for x in devices], f"Bob's device {d} did not register: " \
                    + dev.stderr_tail()[-300:]
        caller = PhoneProcess(phone_argv(method, alice, proxy, creds=creds, call=bob, packets=packets,
                                         timeout=env.timeout), stderr=work / "alice.stderr")
        events = caller.finish(env.timeout * 2 + packets * 0.02 + 10.0)
        detail = "" if events else "Alice's phone printed nothing: " + caller.stderr_tail()[-300:]
        return events, [dev.finish(env.timeout) for dev in devices], detail
    finally:
        if caller is not None:
            caller.finish(0.0)
        for dev in devices:
            dev.finish(0.0)


def observe(method: str, alice: list[dict[str, Any]], devices: list[list[dict[str, Any]]],
            detail: str = "") -> Observation:
    """The cell: own-keys or same-key when Alice keyed one device and talked to it over SRTP."""
    data: dict[str, Any] = {"alice": alice, "devices": devices}
    out = _first(alice, "call")
    if out is None:
        return Observation(CASE, method, Outcome.FAILED, detail or "no call event from Alice's phone", data=data)
    if out.get("mikey") != "keyed":
        why = f"SIP {out.get('status')}, {out.get('error')}"
        if out.get("error_no") is not None:
            why += f" (MIKEY Error no {out['error_no']})"
        return Observation(CASE, method, Outcome.REFUSED, why, data=data)
    keyed = [_first(d, "call") for d in devices]
    prints = [e["fingerprints"] for e in keyed if e is not None and e.get("mikey") == "keyed"]
    if len(prints) == 1 and prints[0] == out["fingerprints"] and all(e is not None for e in keyed):
        # a multi-round method (IBAKE): the device Alice hung up on never got her next message
        n = next(i for i, e in enumerate(keyed) if e is not None and e.get("mikey") == "keyed")
        theirs = _first(devices[n], "media")
        ok = bool(theirs and theirs.get("received", 0) > 0 and theirs.get("auth_failures", 1) == 0)
        text = (f"Alice kept device {n + 1} (CS 1 {prints[0].get('1')}); the other device answered with its own "
                "value but never got the exchange's next message: it holds no key of the call")
        data.update(kept_device=n + 1, fingerprints=prints)
        return Observation(CASE, method, Outcome.OWN_KEYS if ok else Outcome.FAILED,
                           text + ("" if ok else "; media did not verify"), media_ok=ok, data=data)
    if len(prints) != 2:
        return Observation(CASE, method, Outcome.FAILED,
                           f"{len(prints)} of Bob's 2 devices keyed the forked I_MESSAGE", data=data)
    kept = [n for n, p in enumerate(prints) if p == out["fingerprints"]]
    if len(kept) > 1:  # the same keys on both: the device Alice talked to is the one that got her media
        kept.sort(key=lambda n: -int((_first(devices[n], "media") or {}).get("received", 0)))
    if not kept:
        return Observation(CASE, method, Outcome.FAILED, "Alice's keys are no device's keys", data=data)
    # compare the key of Alice's own stream (CS 1, RFC 3830 §6.1.1) on both devices
    same = prints[0].get("1") == prints[1].get("1")
    mine, theirs = _first(alice, "media"), _first(devices[kept[0]], "media")
    # the kept device's stream verifies at Alice (the other device's few packets before its BYE may not)
    streams: list[dict[str, Any]] = (mine or {}).get("streams", [])
    best: dict[str, Any] = max(streams, key=lambda s: int(s.get("received", 0)), default={})
    media_ok = bool(best.get("received", 0) > 0 and best.get("auth_failures", 1) == 0 and theirs
                    and theirs.get("received", 0) > 0 and theirs.get("auth_failures", 1) == 0)
    forks = [e for e in alice if e.get("event") == "fork"]
    data.update(kept_device=kept[0] + 1, fingerprints=prints, extra_forks=len(forks))
    text = (f"{'same key on both devices' if same else 'each device its own keys'} (CS 1 "
            f"{prints[0].get('1')} / {prints[1].get('1')}); Alice kept device {kept[0] + 1}"
            f"{', BYE to the other 2xx' if forks else ''}")
    if mine and theirs:
        text += f"; media {best.get('received', 0)}/{theirs.get('received', 0)} packets verified"
    if not media_ok:
        return Observation(CASE, method, Outcome.FAILED, text + "; media did not verify both ways", data=data)
    return Observation(CASE, method, Outcome.SAME_KEY if same else Outcome.OWN_KEYS, text, media_ok=True, data=data)


@use_case(CASE)
def run(env: UseCaseEnv, method: str) -> Observation:
    """Bob's two devices, one forked INVITE from Alice: which methods give each fork its own keys."""
    try:
        alice, devices, detail = fork_call(env, method)
    except Exception as exc:  # the table must get a cell whatever happened (credentials, processes)
        return Observation(CASE, method, Outcome.FAILED, f"{type(exc).__name__}: {exc}")
    return observe(method, alice, devices, detail)
