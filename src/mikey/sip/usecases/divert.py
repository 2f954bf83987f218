"""Call divert (RFC 3830 §2.1): the proxy sends Alice's call for Bob to Carol.

Kamailio diverts ``sip:bob@<domain>`` to ``sip:carol@<domain>`` two ways (:class:`mikey.sip.kamailio.Kamailio`
``divert=``/``divert_mode=``), each with real ``mikey phone`` processes and per-party credentials
(:func:`party_credentials`: one CA with Alice's, Bob's and Carol's certificates, a PSK per pair, MIKEY-SAKKE
keys per user; TICKET users at one KMS):

* **retarget** (RFC 3261 §16.5): the INVITE, with the I_MESSAGE made for Bob, reaches Carol's phone.
  Carol cannot or must not take it: the PSK/KEMAC is Alice's and Bob's (Error no 0, Auth failure), the
  envelope key is encrypted to Bob (0), IDr/IDRr names Bob (7, RFC 3830 §6.12; DH, DH-HMAC, RSA-R, SAKKE),
  or the KMS will not resolve Bob's ticket for Carol (12, RFC 6043 §5.4).  Her phone answers 488 with the
  MIKEY Error (RFC 4567 §4.1) and nobody is keyed;
* **302** (RFC 3261 §21.3.3): Alice's phone gets the new target in the Contact; she calls Carol with a new
  I_MESSAGE made for Carol's identity, and both are keyed with SRTP both ways.

The cell is ``rekeyed`` when the retarget was refused cleanly *and* the re-key after the 302 worked
(details name the Error no); ``failed`` when anything else happened, above all a retargeted call that
got keyed (a party keyed with someone it did not call).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..phone import PhoneProcess
from . import Observation, Outcome, UseCaseEnv, use_case

__all__ = ["CASE", "PACKETS", "METHODS", "run", "party_credentials", "phone_command", "divert_call", "observe"]

CASE = "call-divert"
#: RTP packets each end sends after the 302 (20 ms each).
PACKETS = 30
#: The methods this use case runs with per-party credentials.
METHODS = ("psk", "pk", "dh", "dhhmac", "rsa-r", "sakke", "ticket", "ibake")
_NAMES = ("alice", "bob", "carol")


def _first(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in events if e.get("event") == name), None)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pki(work: Path, domain: str) -> dict[str, Any]:
    """A CA and an RSA-2048 certificate per party (SAN = its SIP URI), as PEM files (keys 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)

    def issue(subject: str, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey, *, ca: bool,
              uri: str | None = None) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(start)
             .not_valid_after(start + dt.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=not ca,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                          encipher_only=False, decipher_only=False), critical=True))
        if uri:
            b = b.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = issue("MIKEY divert CA", ca_key, name("MIKEY divert CA"), ca_key, ca=True)
    (work / "ca.pem").write_bytes(ca.public_bytes(pem))
    out: dict[str, Any] = {"ca": str(work / "ca.pem")}
    for who in _NAMES:
        uri = f"sip:{who}@{domain}"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = issue(who, key, ca.subject, ca_key, ca=False, uri=uri)
        (work / f"{who}.pem").write_bytes(cert.public_bytes(pem))
        _write_private(work / f"{who}.key",
                       key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        out[who] = {"cert": str(work / f"{who}.pem"), "key": str(work / f"{who}.key"), "uri": uri}
    return out


def _sakke(work: Path, domain: str) -> dict[str, str]:
    """MIKEY-SAKKE key files (this and the next key period) per party, from one KMS community."""
    from ...kms import generate_community, issue_user_keys, user_key_document

    community = generate_community(f"kms.{domain}")
    out: dict[str, str] = {}
    for who in _NAMES:
        uri = f"sip:{who}@{domain}"
        first = issue_user_keys(community, uri, now=time.time())
        sets = [first, issue_user_keys(community, uri, period_no=(first.period_no or 0) + 1)]
        path = work / f"{who}.sakke.json"
        _write_private(path, json.dumps(user_key_document(community, *sets)).encode())
        out[who] = str(path)
    return out


def _ticket(work: Path, domain: str) -> dict[str, Any]:
    """A MIKEY-TICKET KMS database file with the three parties as users (the demo's layout, per party)."""
    from ...kms.store import AtRestKey, KmsStore

    key = os.urandom(32).hex()
    db = work / "ticket-kms.sqlite3"
    out: dict[str, Any] = {"kms_db": str(db), "at_rest_key": key, "kms_id": f"kms.{domain}", "flags": "DEFHJNO"}
    with KmsStore(f"sqlite:///{db}", AtRestKey.from_text(key, source="divert")) as store:
        for who in _NAMES:
            uri, psk = f"sip:{who}@{domain}", os.urandom(16)
            store.add_ticket_user(uri.encode(), psk, key_id=f"{who}-divert".encode(), may_request=who == "alice")
            out[who] = {"uri": uri, "psk": psk.hex(), "psk_id": f"{who}-divert"}
    return out


def ibake_credentials(work: Path, domain: str, names: tuple[str, ...] = _NAMES) -> dict[str, Any]:
    """MIKEY-IBAKE key files per party from one file-based KMS (as the ibake plugin's demo does): each
    party's K_PRs issued through a REQUEST_KEY_PSK/RESP exchange (RFC 6267 §4.2.1)."""
    from ...cli.ibake_files import (
        IbakeKmsFile,
        params_document,
        user_key_document,
        write_private,
        write_public,
    )
    from ...constants import EncrAlg
    from ...crypto import ibe
    from ...modes.ibake_keys import IbakeKeyRequest, IbakeKms

    params, master = ibe.bf_setup(2048)
    kms_id = f"kms.{domain}"
    kms = IbakeKmsFile(master, kms_id, ibe.KeyPeriod.MONTH)
    write_public(work / "ibake_params.json", params_document(kms))
    out: dict[str, Any] = {"kms_id": kms_id, "params": str(work / "ibake_params.json")}
    now = time.time()
    for who in names:
        uri, psk = f"sip:{who}@{domain}", os.urandom(32)
        role = IbakeKms(master, {uri.encode(): psk}, identity=kms_id.encode(), encr_alg=EncrAlg.AES_CM_128)
        request = IbakeKeyRequest(psk, [uri.encode()], kms_id.encode(), params)
        result = request.receive(role.handle(request.create_message(now), now) or b"", now)
        path = work / f"{who}.ibake.json"
        write_private(path, user_key_document(uri, kms_id, kms.key_period, params, result.keys))
        out[who] = {"uri": uri, "keys": str(path)}
    return out


def party_credentials(method: str, work: Path, domain: str) -> dict[str, Any]:
    """Alice's, Bob's and Carol's credentials for *method* (files under *work*)."""
    work.mkdir(parents=True, exist_ok=True)
    if method in ("psk", "dhhmac"):
        return {"psk": {"bob": os.urandom(16).hex(), "carol": os.urandom(16).hex()}}  # Alice's PSK with each
    if method in ("pk", "dh", "rsa-r"):
        return _pki(work, domain)
    if method == "sakke":
        return {"keys": _sakke(work, domain), "uris": {w: f"sip:{w}@{domain}" for w in _NAMES}}
    if method == "ticket":
        return _ticket(work, domain)
    if method == "ibake":
        return ibake_credentials(work, domain)
    raise ValueError(f"the divert use case has no per-party credentials for {method!r}")


def _role_creds_file(method: str, creds: dict[str, Any], responder: str, work: Path) -> Path:
    """A ``--demo-creds`` file (the mode plugin's shape: an Initiator "alice" and a Responder "bob") whose
    Responder entry is *responder*'s: the file Alice calls *responder* with, and *responder*'s phone answers with."""
    if method == "sakke":
        doc: dict[str, Any] = {n: {"keys": creds["keys"][w], "uri": creds["uris"][w]}
                               for n, w in (("alice", "alice"), ("bob", responder))}
    else:
        shared = ("kms_id", "params") if method == "ibake" else ("kms_db", "at_rest_key", "kms_id", "flags")
        doc = {k: creds[k] for k in shared}
        doc["alice"], doc["bob"] = creds["alice"], creds[responder]
    path = work / f"{method}-{responder}.json"
    _write_private(path, json.dumps(doc).encode())
    return path


def phone_command(method: str, creds: dict[str, Any], env_domain: str, proxy: tuple[str, int], work: Path, *,
                  user: str, call_to: str | None = None, packets: int = PACKETS, timeout: float = 15.0) -> list[str]:
    """``mikey phone`` for *user*: calling *call_to* (with credentials for that party) or answering one call."""
    aor = f"sip:{user}@{env_domain}"
    argv = [sys.executable, "-m", "mikey", "phone", "--json", "--mode", method, "--user", aor,
            "--proxy", f"{proxy[0]}:{proxy[1]}", "--packets", str(packets), "--timeout", f"{timeout:g}"]
    peer = call_to or "alice"
    peer_uri = f"sip:{peer}@{env_domain}"
    argv += ["--call", peer_uri] if call_to else ["--calls", "1"]
    if method in ("psk", "dhhmac"):
        psk = creds["psk"][call_to or user]  # the PSK Alice shares with the callee
        argv += ["--psk", psk]
        if method == "dhhmac":
            argv += ["--id-r", peer_uri if call_to else aor] + (["--id-i", aor] if call_to else [])
        elif call_to:  # V: Alice asks the callee to verify (RFC 3830 §3.1), so its answer or Error comes back
            argv += ["--id-i", aor, "--id-r", peer_uri, "--verify"]
        else:
            argv += ["--id-r", aor]
    elif method in ("pk", "dh", "rsa-r"):
        argv += ["--cert", creds[user]["cert"], "--key", creds[user]["key"], "--ca", creds["ca"]]
        if call_to:
            argv += ["--id-r", peer_uri]  # name whom Alice called: an answer from anyone else is refused
            if method == "pk":
                argv += ["--peer-cert", creds[call_to]["cert"], "--verify"]
    elif method in ("sakke", "ticket", "ibake"):
        argv += ["--demo-creds", str(_role_creds_file(method, creds, call_to or user, work))]
    return argv


def divert_call(env: UseCaseEnv, method: str, mode: str, *, packets: int = PACKETS,
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], str]:
    """Carol's phone registered, Kamailio diverting Bob to Carol (*mode* "302" or "retarget"), Alice calls Bob;
    after a 302 Alice calls the Contact she got.  Returns (Alice's first call's events, her call after the 302
    (empty for retarget), Carol's events, a detail when something did not start).  Everything is stopped."""
    from ..kamailio import Kamailio

    work = env.workdir / f"divert-{method}-{mode}"
    creds = party_credentials(method, work, env.domain)
    with Kamailio(work / "kamailio", domain=env.domain, divert={"bob": "carol"},
                  divert_mode="302" if mode == "302" else "retarget") as proxy:
        address = (proxy.host, proxy.port)
        carol = PhoneProcess(phone_command(method, creds, env.domain, address, work, user="carol", packets=packets,
                                           timeout=env.timeout), stderr=work / "carol.stderr")
        calls: list[PhoneProcess] = []
        try:
            if carol.wait_for("ready", env.timeout) is None:
                return [], [], carol.finish(0.0), "Carol's phone did not register: " + carol.stderr_tail()[-300:]
            first = PhoneProcess(phone_command(method, creds, env.domain, address, work, user="alice", call_to="bob",
                                               packets=packets, timeout=env.timeout), stderr=work / "alice1.stderr")
            calls.append(first)
            events = first.finish(env.timeout * 2 + packets * 0.02 + 10.0)
            again: list[dict[str, Any]] = []
            out = _first(events, "call")
            contacts = (out or {}).get("contacts") or []
            if mode == "302" and out is not None and out.get("status") == 302 and contacts:
                target = str(contacts[0]).strip("<>").split(";", 1)[0]
                user = target.split(":", 1)[-1].split("@", 1)[0]
                second = PhoneProcess(phone_command(method, creds, env.domain, address, work, user="alice",
                                                    call_to=user, packets=packets, timeout=env.timeout),
                                      stderr=work / "alice2.stderr")
                calls.append(second)
                again = second.finish(env.timeout * 2 + packets * 0.02 + 10.0)
            carol_events = carol.finish(env.timeout)
            detail = "" if events else "Alice's phone printed nothing: " + first.stderr_tail()[-300:]
            return events, again, carol_events, detail
        finally:
            for p in calls:
                p.finish(0.0)
            carol.finish(0.0)


def _refusal(events: list[dict[str, Any]]) -> tuple[int | None, int | None, str]:
    call = _first(events, "call") or {}
    return call.get("status"), call.get("error_no"), str(call.get("error") or "")


def observe(method: str, retarget: tuple[list[dict[str, Any]], list[dict[str, Any]]],
            redirect: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]],
            detail: str = "") -> Observation:
    """The cell from the retarget run (Alice's, Carol's events) and the 302 run (Alice's first call, her
    call to the new target, Carol's events)."""
    data: dict[str, Any] = {"retarget": retarget, "redirect": redirect}
    r_alice, r_carol = retarget
    status, error_no, error = _refusal(r_alice)
    carol_call = _first(r_carol, "call") or {}
    if status is None:
        return Observation(CASE, method, Outcome.FAILED, detail or "no call event from Alice's phone (retarget)",
                           data=data)
    if (_first(r_alice, "call") or {}).get("mikey") == "keyed" or carol_call.get("mikey") == "keyed":
        who = "Alice" if (_first(r_alice, "call") or {}).get("mikey") == "keyed" else "Carol"
        return Observation(CASE, method, Outcome.FAILED,
                           f"retargeted call: {who} was keyed with a party she did not mean to talk to", data=data)
    who = ("Carol's phone refused Bob's I_MESSAGE" if status != 200 else
           "Carol answered as herself and Alice's phone refused the answer (RFC 6267 §7.4: the caller's policy)")
    refused = (f"retargeted: {who}, SIP {status}"
               + (f", MIKEY Error no {error_no}" if error_no is not None else "") + (f" ({error})" if error else ""))
    first, again, carol = redirect
    moved = _first(first, "call") or {}
    if moved.get("status") != 302:
        return Observation(CASE, method, Outcome.FAILED, refused + f"; the 302 run got SIP {moved.get('status')}",
                           data=data)
    out, inn = _first(again, "call") or {}, _first(carol, "call") or {}
    if out.get("mikey") != "keyed" or inn.get("mikey") != "keyed" or out.get("fingerprints") != inn.get("fingerprints"):
        why = out.get("error") or inn.get("error") or "different keys"
        return Observation(CASE, method, Outcome.FAILED, refused + f"; after the 302 the re-key failed: {why}",
                           data=data)
    m_out, m_in = _first(again, "media") or {}, _first(carol, "media") or {}
    ok = all(m.get("received", 0) > 0 and m.get("auth_failures", 1) == 0 for m in (m_out, m_in))
    text = (refused + f"; 302: Alice re-keyed to Carol with a new I_MESSAGE (CS 1 {out['fingerprints'].get('1')}), "
            f"media {m_out.get('received', 0)}/{m_in.get('received', 0)} packets verified")
    if not ok:
        return Observation(CASE, method, Outcome.FAILED, text + "; media did not verify", data=data)
    return Observation(CASE, method, Outcome.REKEYED, text, media_ok=True, data=data)


@use_case(CASE)
def run(env: UseCaseEnv, method: str) -> Observation:
    """Bob's calls diverted to Carol: retargeted (refused with the MIKEY Error), then by 302 (re-keyed to Carol)."""
    if method not in METHODS:
        return Observation(CASE, method, Outcome.FAILED, f"no per-party (Carol) credentials for {method}")
    try:
        r_alice, _, r_carol, d1 = divert_call(env, method, "retarget")
        first, again, carol, d2 = divert_call(env, method, "302")
    except Exception as exc:  # the table must get a cell whatever happened (credentials, processes)
        return Observation(CASE, method, Outcome.FAILED, f"{type(exc).__name__}: {exc}")
    return observe(method, (r_alice, r_carol), (first, again, carol), d1 or d2)
