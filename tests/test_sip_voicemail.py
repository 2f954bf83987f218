"""Delayed delivery (voicemail): Bob is offline, his mailbox keeps Alice's I_MESSAGE and SRTP.

In memory (always run), with :class:`mikey.sip.voicemail.Mailbox`: per method, what the mailbox
does with the I_MESSAGE (keep it, complete an IBAKE exchange with ESK, or refuse with the MIKEY
Error of a 488), that the mailbox cannot decrypt what it keeps, and that Bob later opens the kept
I_MESSAGE at its arrival time with his own credentials and decrypts the recorded SRTP.
"""

from __future__ import annotations

import json
import random
import re
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pki import NOW, make_ca, make_leaf
from sipproxy import kamailio_factory  # noqa: F401

from mikey.constants import DataType, ErrorNo, IDType, TSRole, TSType
from mikey.crypto import ibe
from mikey.crypto.x509 import CertificateValidator
from mikey.errors import InvalidTimestampError, MikeyError, StateError
from mikey.keystore import Credentials, SakkeKeystore
from mikey.kms import generate_community, issue_user_keys
from mikey.modes.base import CryptoSessionSpec, Initiator
from mikey.modes.dh import DhInitiator
from mikey.modes.dhhmac import DhHmacInitiator
from mikey.modes.ibake import IbakeCredentials, IbakeInitiator, answer_policy, open_deferred
from mikey.modes.ibake_keys import IbakeKeyRequest, IbakeKms
from mikey.modes.pk import PkInitiator, PkResponder
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.modes.results import ExchangeResult
from mikey.modes.rsa_r import RsaRInitiator
from mikey.modes.sakke import SakkeInitiator, SakkeResponder
from mikey.modes.ticket import (
    InMemoryTicketStore,
    TicketCredential,
    TicketInitiator,
    TicketKms,
    TicketPolicy,
    TicketProtectionKey,
    TicketRequester,
    TicketResponder,
    ticket_flags,
)
from mikey.session import CryptoSessionBundle
from mikey.sip.voicemail import Mailbox, decide, load_deposits
from mikey.wire import ErrorPayload, IdPayload, IdrPayload, Message, TrPayload

T0 = NOW.timestamp()
LATER = T0 + 6 * 3600  # Bob listens six hours later (a KMS grants tickets for a day at most)
NAMES = ("alice", "bob", "voicemail")
URI = {n: f"sip:{n}@example.com" for n in NAMES}
CA = make_ca("Voicemail Test Root")
LEAVES = {n: make_leaf(CA, n, san_uris=[URI[n]]) for n in NAMES}
CREDS = {n: Credentials(LEAVES[n].key, LEAVES[n].cert) for n in NAMES}
VALIDATOR = CertificateValidator([CA.cert])
PSK = bytes(range(16))
SSRC_A = 0x0A0A0A0A
COMMUNITY = generate_community("kms.voicemail.example")
SAKKE = {n: SakkeKeystore(COMMUNITY.public, URI[n], [issue_user_keys(COMMUNITY, URI[n], now=T0)]) for n in NAMES}


def uri_id(name: str) -> IdPayload:
    return IdPayload(IDType.URI, URI[name].encode())


def error_nos(message: bytes | None) -> list[int]:
    assert message is not None
    msg = Message.decode(message)
    assert msg.data_type == DataType.ERROR
    return [int(p.error_no) for p in msg.find_all(ErrorPayload)]


def rtp(seq: int, ssrc: int = SSRC_A) -> bytes:
    """A G.711 RTP packet (RFC 3550 §5.1, PT 0) with a recognisable payload."""
    return struct.pack(">BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes([seq & 0xFF]) * 160


def record(result: ExchangeResult, count: int = 5) -> list[bytes]:
    """What Alice sends to the mailbox: SRTP under her keys for crypto session 1 (RFC 3711 §3.3)."""
    sender = CryptoSessionBundle(result).sender(result.crypto_sessions[0].cs_id, ssrc=SSRC_A)
    return [sender.protect(rtp(n)) for n in range(1, count + 1)]


def listen(result: ExchangeResult, packets: list[bytes]) -> list[bytes]:
    receiver = CryptoSessionBundle(result).receiver(result.crypto_sessions[0].cs_id, ssrc=SSRC_A)
    return [receiver.unprotect(p) for p in packets]


def initiator(method: str, *, v: bool = False) -> Initiator:
    specs = [CryptoSessionSpec(ssrc=SSRC_A)]
    if method == "psk":
        return PskInitiator(PSK, v=v, crypto_sessions=specs, id_i=uri_id("alice"), id_r=uri_id("bob"))
    if method == "pk":
        return PkInitiator(CREDS["alice"], LEAVES["bob"].cert, validator=VALIDATOR, v=v, crypto_sessions=specs,
                           id_r=uri_id("bob"))
    if method == "sakke":
        return SakkeInitiator(SAKKE["alice"], URI["bob"], crypto_sessions=[CryptoSessionSpec(ssrc=SSRC_A, cs_id=1)])
    if method == "dh":
        return DhInitiator(CREDS["alice"], VALIDATOR, crypto_sessions=specs, id_r=uri_id("bob"))
    if method == "dhhmac":
        return DhHmacInitiator(PSK, crypto_sessions=specs, id_i=uri_id("alice"), id_r=uri_id("bob"))
    return RsaRInitiator(CREDS["alice"], validator=VALIDATOR, crypto_sessions=specs, id_r=uri_id("bob"))


def bobs_responder(method: str) -> PskResponder | PkResponder | SakkeResponder:
    if method == "psk":
        return PskResponder(PSK, id_r=uri_id("bob"))
    if method == "pk":
        return PkResponder(CREDS["bob"], VALIDATOR)
    return SakkeResponder(SAKKE["bob"], initiator_uri=URI["alice"])


def mailboxes_responder(method: str) -> PskResponder | PkResponder | SakkeResponder:
    """The mailbox trying to read what it keeps with credentials of its own (it has no PSK with Alice)."""
    if method == "psk":
        return PskResponder(bytes(16), id_r=uri_id("voicemail"))
    if method == "pk":
        return PkResponder(CREDS["voicemail"], VALIDATOR)
    return SakkeResponder(SAKKE["voicemail"], initiator_uri=URI["alice"])


@pytest.mark.parametrize("method", ["psk", "pk", "sakke"])
def test_kept_i_message_opens_for_bob_later_and_not_for_the_mailbox(method: str, tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "box")
    ini = initiator(method)
    call, answer = box.offer(URI["alice"], URI["bob"], ini.create_message(T0), T0)
    assert call.decision.store and answer is None  # answered without key-mgmt (no response, RFC 4567 §4.1)
    packets = record(ini.result)
    (call.directory / "media.pcap").write_bytes(b"".join(packets))  # the recording, kept as received
    [deposit] = load_deposits(tmp_path / "box", URI["bob"])
    assert deposit.caller == URI["alice"] and deposit.arrival == T0 and deposit.i_message == call.messages[0]
    with pytest.raises(MikeyError):  # the mailbox cannot open it ...
        mailboxes_responder(method).receive(deposit.i_message, T0)
    with pytest.raises(InvalidTimestampError):  # ... Bob not at the time he listens (RFC 3830 §5.4) ...
        bobs_responder(method).receive(deposit.i_message, LATER)
    bob = bobs_responder(method).receive(deposit.i_message, deposit.arrival).result  # ... but at its arrival
    assert bob.crypto_sessions[0].master_key == ini.result.crypto_sessions[0].master_key
    assert listen(bob, packets) == [rtp(n) for n in range(1, 6)]


@pytest.mark.parametrize("method,error_no", [("dh", ErrorNo.INVALID_DT), ("dhhmac", ErrorNo.INVALID_DT),
                                             ("rsa-r", ErrorNo.INVALID_DT), ("psk-v", ErrorNo.UNSPECIFIED),
                                             ("pk-v", ErrorNo.UNSPECIFIED)])
def test_methods_that_need_the_callee_are_refused_at_once(method: str, error_no: int, tmp_path: Path) -> None:
    """DH, DH-HMAC and RSA-R need Bob's own answer, PSK/PK with V his verification: a 488 with the Error."""
    box = Mailbox(tmp_path / "box")
    i_message = initiator(method.removesuffix("-v"), v=method.endswith("-v")).create_message(T0)
    call, answer = box.offer(URI["alice"], URI["bob"], i_message, T0)
    assert not call.decision.store and call.decision.error_no == error_no
    assert error_nos(answer) == [error_no]
    assert load_deposits(tmp_path / "box") == []  # nothing kept


def test_decide_refuses_non_i_messages() -> None:
    with pytest.raises(MikeyError):
        decide(b"\x01\x00")
    resp = PskResponder(PSK).receive(initiator("psk", v=True).create_message(T0), T0).response or b""
    assert decide(resp).error_no == ErrorNo.INVALID_DT


# --- TICKET: the ticket is resolved at the KMS when Bob listens (RFC 6043 §4.2.3) ---------------------------


def ticket_call(flags: str) -> tuple[TicketKms, TicketInitiator, bytes, bytes]:
    psks = {n: bytes([i + 1]) * 16 for i, n in enumerate(NAMES)}
    store = InMemoryTicketStore()
    for n in NAMES:
        store.add_credential(TicketCredential(URI[n].encode(), psks[n], n.encode()))
    store.add_protection_key(TicketProtectionKey(b"tpk", bytes(range(100, 116))))
    kms = TicketKms(store, identity=b"kms.example.com", rng=random.Random(3).randbytes)
    week = (int(T0) + 2208988800 + 7 * 86400).to_bytes(4, "big")  # valid a week: long enough to listen
    policy = TicketPolicy(ticket_flags(flags), (IdrPayload(2, IDType.URI, URI["bob"].encode()),),
                          end=TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, week))
    req = TicketRequester(psks["alice"], policy, id_i=URI["alice"].encode(), kms_id=b"kms.example.com",
                          psk_id=b"alice")
    grant = req.receive(kms.handle(req.create_message(T0), T0) or b"", T0)
    ini = TicketInitiator(grant, id_i=URI["alice"].encode(), id_r=URI["bob"].encode(),
                          crypto_sessions=[CryptoSessionSpec(ssrc=SSRC_A)])
    return kms, ini, ini.create_message(T0), psks["bob"]


def test_ticket_without_transfer_resp_is_kept_and_resolved_when_bob_listens(tmp_path: Path) -> None:
    kms, ini, ti, bob_psk = ticket_call("DEHNO")  # F = 0: no TRANSFER_RESP (V = 0)
    box = Mailbox(tmp_path / "box")
    call, answer = box.offer(URI["alice"], URI["bob"], ti, T0)
    assert call.decision.store and answer is None
    packets = record(ini.result)
    [deposit] = load_deposits(tmp_path / "box")
    bob = TicketResponder(bob_psk, id_r=URI["bob"].encode(), kms_id=b"kms.example.com", psk_id=b"bob")
    with pytest.raises(InvalidTimestampError):  # T judged at the time he listens: too old
        TicketResponder(bob_psk, id_r=URI["bob"].encode(), kms_id=b"kms.example.com",
                        psk_id=b"bob").receive(deposit.i_message, LATER)
    step = bob.receive(deposit.i_message, LATER, received_at=deposit.arrival)
    out = bob.receive_resolve(kms.handle(step.resolve_init or b"", LATER) or b"", LATER)
    assert listen(out.result, packets) == [rtp(n) for n in range(1, 6)]


def test_ticket_asking_for_transfer_resp_is_refused(tmp_path: Path) -> None:
    _, _, ti, _ = ticket_call("DEFHNO")
    call, answer = Mailbox(tmp_path / "box").offer(URI["alice"], URI["bob"], ti, T0)
    assert not call.decision.store and error_nos(answer) == [ErrorNo.UNSPECIFIED]


# --- IBAKE with ESK: the mailbox completes the exchange as itself (RFC 6267 §3.3, §6.1.2) ---------------


def ibake_creds() -> dict[str, IbakeCredentials]:
    params, master = ibe.bf_setup(1024)
    psks = {URI[n].encode(): n.encode().ljust(16, b".") for n in NAMES}
    kms = IbakeKms(master, psks, identity=b"kms.example.com")
    out = {}
    for n in NAMES:
        req = IbakeKeyRequest(psks[URI[n].encode()], [URI[n].encode()], b"kms.example.com", params)
        out[n] = IbakeCredentials(params, req.receive(kms.handle(req.create_message(T0), T0) or b"", T0).private_keys)
    return out


def test_ibake_with_esk_is_completed_by_the_mailbox_and_opened_by_bob(tmp_path: Path) -> None:
    creds = ibake_creds()
    box = Mailbox(tmp_path / "box", identity=URI["voicemail"], ibake=creds["voicemail"])
    ini = IbakeInitiator(creds["alice"], URI["alice"].encode(), URI["bob"].encode(), esk=True,
                         answers=answer_policy(mailboxes={URI["voicemail"].encode()}),
                         crypto_sessions=[CryptoSessionSpec(ssrc=SSRC_A)])
    call, r1 = box.offer(URI["alice"], URI["bob"], ini.create_message(T0), T0)
    assert call.decision.exchange and r1 is not None
    step = ini.receive(r1, T0)
    done = ini.receive(call.take(step.response or b"", T0) or b"", T0)
    assert done.confirmed and done.result is not None and done.result.extras["answer"] == "deferred"
    packets = record(done.result)
    [deposit] = load_deposits(tmp_path / "box")
    assert len(deposit.messages) == 2
    with pytest.raises(MikeyError):  # the mailbox cannot open the ESK
        open_deferred(deposit.messages, creds["voicemail"], URI["voicemail"].encode(), now=deposit.arrival)
    bob = open_deferred(deposit.messages, creds["bob"], URI["bob"].encode(), now=deposit.arrival)
    assert listen(bob, packets) == [rtp(n) for n in range(1, 6)]
    with pytest.raises(StateError):  # the exchange is over
        call.take(step.response or b"", T0)


def test_ibake_without_esk_or_without_a_mailbox_identity_is_refused(tmp_path: Path) -> None:
    creds = ibake_creds()
    plain = IbakeInitiator(creds["alice"], URI["alice"].encode(), URI["bob"].encode()).create_message(T0)
    call, answer = Mailbox(tmp_path / "a", identity=URI["voicemail"], ibake=creds["voicemail"]).offer(
        URI["alice"], URI["bob"], plain, T0)
    assert not call.decision.store and error_nos(answer) == [ErrorNo.UNSPECIFIED]
    esk = IbakeInitiator(creds["alice"], URI["alice"].encode(), URI["bob"].encode(), esk=True).create_message(T0)
    call, answer = Mailbox(tmp_path / "b").offer(URI["alice"], URI["bob"], esk, T0)
    assert not call.decision.store and error_nos(answer) == [ErrorNo.INVALID_ID]


# --- end to end through Kamailio: the voicemail UA keeps a real call, Bob decrypts it later -------------------


@pytest.fixture
def start_proxy(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``start_proxy(**options)``: a Kamailio (tests/sipproxy.py: skipped without it, failed under CI)."""
    factory: Callable[..., Any] = request.getfixturevalue("kamailio_factory")
    return factory


def _sip_call_to_voicemail(tmp_path: Path, start_proxy: Callable[..., Any], i_message: bytes,
                           result: ExchangeResult | None, ssrc: int) -> tuple[int, str | None, list[dict[str, Any]]]:
    """Alice calls Bob (not registered): Kamailio hands the call to the voicemail UA (a process); with
    *result* Alice sends 25 SRTP packets of a tone, then BYE.  Returns the final status, the answer SDP and
    the voicemail UA's JSON events."""
    from mikey.offer_answer import make_offer
    from mikey.sip.adapter import Answered, CallFailed, SipAgent
    from mikey.sip.media import MediaSession, ToneSource

    proxy = start_proxy(voicemail="voicemail")
    vm = JsonLines([sys.executable, "-m", "mikey.sip.voicemail", "--proxy", proxy.proxy, "--aor",
                    proxy.aor("voicemail"), "--dir", str(tmp_path / "box")])
    try:
        assert vm.next("ready")["status"] == 200
        media = MediaSession(ssrc)
        with SipAgent(proxy.aor("alice"), (proxy.host, proxy.port)) as alice:
            alice.invite(proxy.aor("bob"), make_offer(i_message, port=media.port))
            event = alice.events.get(timeout=15)
            while not isinstance(event, Answered | CallFailed):
                event = alice.events.get(timeout=15)
            if isinstance(event, Answered):
                assert result is not None and event.sdp is not None
                port = int(re.search(r"^m=audio (\d+)", event.sdp, re.M).group(1))  # type: ignore[union-attr]
                media.start(CryptoSessionBundle(result), ("127.0.0.1", port), source=ToneSource(440), packets=25,
                            pace=0.002)
                assert media.wait_sent(10)
                time.sleep(0.2)
                assert media.stop().sent == 25
                event.dialog.bye()
                vm.next("deposit")
            else:
                media.stop()
                vm.next("call")
        return event.status, event.sdp, vm.events
    finally:
        vm.stop()


class JsonLines:
    """A child process printing one JSON object per line (the voicemail UA); stopped with SIGTERM."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict[str, Any]] = []

    def next(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == kind:
                return event
        raise AssertionError(f"no {kind!r} event; got {self.events}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def plain_tone_hz(pcap: Path) -> float:
    """The dominant frequency of the G.711 u-law audio in a decrypted capture's RTP (RFC 3551 §4.5.14)."""
    import dpkt  # type: ignore[import-untyped]

    from mikey.sip.g711 import ulaw_decode
    from mikey.sip.media import tone_frequency

    samples: list[int] = []
    with pcap.open("rb") as f:
        for _, frame in dpkt.pcap.Reader(f):
            udp = dpkt.ethernet.Ethernet(frame).data.data
            payload = bytes(udp.data)
            if len(payload) > 12 and payload[1] & 0x7F == 0:  # RTP, PT 0
                samples += ulaw_decode(payload[12:])
    hz = tone_frequency(samples)
    assert hz is not None
    return hz


def _decrypt(tmp_path: Path, pcap: Path, i_message: Path, *credentials: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "mikey", "srtp-decrypt", str(pcap), "--keys-from", f"@{i_message}",
                          *credentials, "--out", str(tmp_path / "plain.pcap"), "--json"],
                         capture_output=True, text=True, timeout=60)
    return {"rc": out.returncode, **(json.loads(out.stdout) if out.stdout.strip() else {"stderr": out.stderr})}


def test_sakke_call_kept_by_the_voicemail_ua_and_decrypted_by_bob_later(
        tmp_path: Path, start_proxy: Callable[..., Any]) -> None:
    now = time.time()
    community = generate_community("kms.mikey.test")
    keys = {n: SakkeKeystore(community.public, f"sip:{n}@mikey.test", [issue_user_keys(community, f"sip:{n}@mikey.test",
                                                                                        now=now)])
            for n in ("alice", "bob", "voicemail")}
    for n, ks in keys.items():
        (tmp_path / f"{n}.json").write_text(json.dumps(ks.to_dict()))
    ini = SakkeInitiator(keys["alice"], "sip:bob@mikey.test", crypto_sessions=[CryptoSessionSpec(ssrc=SSRC_A, cs_id=1)])
    status, _, events = _sip_call_to_voicemail(tmp_path, start_proxy, ini.create_message(now), ini.result, SSRC_A)
    assert status == 200
    deposit_event = next(e for e in events if e["event"] == "deposit")
    assert deposit_event["stored_packets"] >= 25 and deposit_event["decrypted"] == 0  # kept, not readable
    [deposit] = load_deposits(tmp_path / "box", "sip:bob@mikey.test")
    assert deposit.caller == "sip:alice@mikey.test" and deposit.media.exists()
    imsg = deposit.directory / "i_message.mikey"
    # Bob, later, with his own keys: every RTP packet decrypts (mikey srtp-decrypt, RFC 3711 §3.3)
    bob = _decrypt(tmp_path, deposit.media, imsg, "--mode", "sakke", "--keys", str(tmp_path / "bob.json"))
    assert bob["rc"] == 0, bob
    assert bob["streams"][f"{SSRC_A:08x}"]["rtp"] == 25 and bob["streams"][f"{SSRC_A:08x}"]["rtp_auth_failures"] == 0
    assert 435 < plain_tone_hz(tmp_path / "plain.pcap") < 445  # Alice's 440 Hz tone, decoded from G.711
    # the mailbox with its own identity's keys cannot even open the I_MESSAGE
    vm = _decrypt(tmp_path, deposit.media, imsg, "--mode", "sakke", "--keys", str(tmp_path / "voicemail.json"))
    assert vm["rc"] != 0


@pytest.mark.parametrize("method", ["dh", "psk-v"])
def test_voicemail_ua_refuses_what_needs_bob_with_488_and_the_error(
        method: str, tmp_path: Path, start_proxy: Callable[..., Any]) -> None:
    from mikey.offer_answer import take_answer

    i_message = initiator(method.removesuffix("-v"), v=True).create_message(time.time())
    status, sdp, events = _sip_call_to_voicemail(tmp_path, start_proxy, i_message, None, SSRC_A)
    assert status == 488
    expected = ErrorNo.INVALID_DT if method == "dh" else ErrorNo.UNSPECIFIED
    assert error_nos(take_answer(sdp or "")) == [expected]
    call = next(e for e in events if e["event"] == "call")
    assert call["status"] == 488 and call["error_no"] == expected and not call["stored"]
    assert load_deposits(tmp_path / "box") == []


# --- the use case with real phones: Alice's mikey phone, Kamailio's voicemail route, Bob later ---------------


#: What each method gives through phones (IBAKE: the caller's credentials ask for an ESK and name the mailbox,
#: RFC 6267 §3.3, §6.1.2: the mailbox completes the exchange and Bob opens the ESK later).
PHONE_EXPECTED = {"sakke": "keyed", "psk": "keyed", "pk": "keyed", "ticket": "keyed", "ibake": "keyed",
                  "dh": "not-served", "dhhmac": "not-served", "rsa-r": "not-served"}


@pytest.mark.parametrize("method", list(PHONE_EXPECTED))
def test_use_case_with_phones(method: str, tmp_path: Path, start_proxy: Callable[..., Any]) -> None:
    from mikey.sip.usecases import UseCaseEnv
    from mikey.sip.usecases.voicemail import CASE, observe, retrieve, voicemail_call

    start_proxy()  # skips without Kamailio (fails under CI); the use case starts its own with a voicemail AOR
    env = UseCaseEnv("127.0.0.1", 0, "mikey.test", tmp_path / "case", timeout=8.0)
    alice, mailbox, box, creds, detail = voicemail_call(env, method, packets=25)
    deposits = load_deposits(box)
    retrieved = retrieve(method, deposits[0], creds, box / "plain.pcap") if len(deposits) == 1 else None
    cell = observe(method, alice, mailbox, deposits, retrieved, detail)
    expected = PHONE_EXPECTED[method]
    assert cell.case == CASE and cell.outcome == expected, cell.detail
    call = next(e for e in alice if e["event"] == "call")
    if cell.outcome == "keyed":
        assert call["status"] == 200 and cell.media_ok
        assert retrieved is not None and sum(s["rtp"] for s in retrieved["streams"].values()) == 25
        assert 430 < plain_tone_hz(box / "plain.pcap") < 450  # the phone's default 440 Hz tone, decrypted by Bob
        deposit = next(e for e in mailbox if e["event"] == "deposit")
        assert deposit["decrypted"] == 0 and deposit["stored_packets"] >= 25
    else:
        assert call["status"] == 488 and deposits == []
        assert call["error_no"] == ErrorNo.INVALID_DT  # the MIKEY Error the mailbox sent in the 488's SDP


def test_ibake_with_esk_kept_by_the_voicemail_ua_through_kamailio(tmp_path: Path,
                                                                   start_proxy: Callable[..., Any]) -> None:
    """IBAKE's four messages with the voicemail UA (I_MESSAGE_2 in a re-INVITE); Bob opens the ESK later."""
    from mikey.cli.ibake_files import load_user_keys
    from mikey.offer_answer import make_offer, take_answer
    from mikey.sip.adapter import Answered, CallFailed, SipAgent
    from mikey.sip.media import MediaSession, ToneSource
    from mikey.sip.usecases.divert import ibake_credentials

    proxy = start_proxy(voicemail="voicemail")
    creds = ibake_credentials(tmp_path, "mikey.test", ("alice", "bob", "voicemail"))
    keys = {n: load_user_keys(creds[n]["keys"]).credentials for n in ("alice", "bob", "voicemail")}
    vm = JsonLines([sys.executable, "-m", "mikey.sip.voicemail", "--proxy", proxy.proxy, "--aor",
                    proxy.aor("voicemail"), "--dir", str(tmp_path / "box"), "--ibake-keys", creds["voicemail"]["keys"]])
    media = MediaSession(SSRC_A)
    try:
        assert vm.next("ready")["status"] == 200
        ini = IbakeInitiator(keys["alice"], b"sip:alice@mikey.test", b"sip:bob@mikey.test", esk=True,
                             answers=answer_policy(mailboxes={b"sip:voicemail@mikey.test"}),
                             crypto_sessions=[CryptoSessionSpec(ssrc=SSRC_A)])

        def answer(agent: Any) -> Any:
            event = agent.events.get(timeout=15)
            while not isinstance(event, Answered | CallFailed):
                event = agent.events.get(timeout=15)
            assert isinstance(event, Answered), event
            return event

        with SipAgent(proxy.aor("alice"), (proxy.host, proxy.port)) as alice:
            alice.invite(proxy.aor("bob"), make_offer(ini.create_message(time.time()), port=media.port))
            first = answer(alice)
            step = ini.receive(take_answer(first.sdp or "") or b"", time.time())
            first.dialog.reinvite(make_offer(step.response or b"", port=media.port))  # I_MESSAGE_2 (RFC 6267 §4.2.2.5)
            second = answer(alice)
            done = ini.receive(take_answer(second.sdp or "") or b"", time.time())
            assert done.confirmed and done.result is not None and done.result.extras["answer"] == "deferred"
            port = int(re.search(r"^m=audio (\d+)", second.sdp or "", re.M).group(1))  # type: ignore[union-attr]
            media.start(CryptoSessionBundle(done.result), ("127.0.0.1", port), source=ToneSource(440), packets=25,
                        pace=0.002)
            assert media.wait_sent(10)
            deposit_event = vm.next("deposit")  # the mailbox hangs up once the message is over
        assert deposit_event["messages"] == 2 and deposit_event["decrypted"] == 0
    finally:
        media.stop()
        vm.stop()
    [deposit] = load_deposits(tmp_path / "box", "sip:bob@mikey.test")
    with pytest.raises(MikeyError):  # the mailbox's own K_PR does not open the ESK
        open_deferred(deposit.messages, keys["voicemail"], b"sip:voicemail@mikey.test", now=deposit.arrival)
    bob = open_deferred(deposit.messages, keys["bob"], b"sip:bob@mikey.test", now=deposit.arrival)
    from mikey.cli.keys import records_of

    keys_file = tmp_path / "bob-keys.json"
    keys_file.write_text(json.dumps({"crypto_sessions": [r.to_dict(secrets=True) for r in records_of(bob, "t")]}))
    out = subprocess.run([sys.executable, "-m", "mikey", "srtp-decrypt", str(deposit.media), "--keys-from",
                          str(keys_file), "--out", str(tmp_path / "plain.pcap"), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["streams"][f"{SSRC_A:08x}"]["rtp"] == 25
    assert 430 < plain_tone_hz(tmp_path / "plain.pcap") < 450


def test_voicemail_ua_reports_bad_keys_and_a_failed_register(tmp_path: Path) -> None:
    """No proxy answering (a closed port: REGISTER times out) and an unreadable keys file: a clean error line,
    exit 1 / 2, no traceback."""
    from mikey.sip.kamailio import free_udp_port

    base = [sys.executable, "-m", "mikey.sip.voicemail", "--proxy", f"127.0.0.1:{free_udp_port()}", "--aor",
            "sip:voicemail@mikey.test", "--dir", str(tmp_path / "box")]
    bad = subprocess.run([*base, "--ibake-keys", str(tmp_path / "missing.json")], capture_output=True, text=True,
                         timeout=30)
    lines = [json.loads(line) for line in bad.stdout.splitlines()]
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert lines[0]["event"] == "error" and "missing.json" in lines[0]["error"] and lines[-1] == {"event": "end",
                                                                                                  "ok": False}
    unreg = subprocess.run(base, capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in unreg.stdout.splitlines()]
    assert unreg.returncode == 1 and "Traceback" not in unreg.stderr
    assert [e["event"] for e in lines] == ["error", "end"] and lines[0]["status"] == 408
