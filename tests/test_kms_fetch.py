"""``mikey kms fetch`` against a real ``mikey kms serve``: rollover-safe rewrites and the client's InK."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest
from test_kms_http import ALICE, BOB, Kms, mikey, token

from mikey.keystore import SakkeKeystore
from mikey.kms import issue_user_keys
from mikey.kms.store import AtRestKey, KmsStore, database_url


@pytest.fixture
def kms(tmp_path: pathlib.Path) -> Iterator[Kms]:
    server = Kms(tmp_path, tmp_path / "kms", "--dev-tokens")
    try:
        assert mikey("kms", "user", "add", "--data", str(server.data), ALICE, BOB).returncode == 0
        yield server
    finally:
        server.stop()


def open_store(data: pathlib.Path) -> KmsStore:
    return KmsStore(database_url(data_dir=data), AtRestKey.from_file(data / "at_rest.key"))


def periods(path: pathlib.Path) -> list[int]:
    return SakkeKeystore.load_json(path.read_bytes()).period_numbers


def fetch(kms: Kms, user: str, out: pathlib.Path, *extra: str) -> tuple[int, str, str]:
    r = mikey("kms", "fetch", "--kms", kms.url, "--token", token(kms.data, user), "--out", str(out), *extra)
    return r.returncode, r.stdout, r.stderr


def test_a_later_fetch_keeps_the_previous_period_and_drops_older_ones(kms: Kms, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "alice.json"
    code, _, err = fetch(kms, ALICE, out)
    assert code == 0, err
    n, n1 = periods(out)
    assert n1 == n + 1
    fetched = SakkeKeystore.load_json(out.read_bytes())
    # The file as an earlier fetch (two periods ago) left it: periods N-2 and N-1 of the same community.
    with open_store(kms.data) as store:
        community = store.load_community()
    older = [issue_user_keys(community, ALICE, period_no=p) for p in (n - 2, n - 1)]
    out.write_text(json.dumps(SakkeKeystore(fetched.kms, ALICE, older).to_dict()))
    code, stdout, err = fetch(kms, ALICE, out)
    assert code == 0, err
    assert periods(out) == [n - 1, n, n + 1]  # N-1 kept for messages from just before the boundary
    kept = SakkeKeystore.load_json(out.read_bytes())
    previous = kept.key_set_for_period(n - 1)
    assert previous is not None and previous.rsk == older[1].rsk
    assert out.stat().st_mode & 0o077 == 0
    code, stdout, err = fetch(kms, ALICE, out, "--replace")
    assert code == 0, err
    assert periods(out) == [n, n + 1] and stdout.startswith(f"wrote {out}: {ALICE}")


def test_another_users_file_is_replaced_and_said_so(kms: Kms, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "keys.json"
    assert fetch(kms, BOB, out)[0] == 0
    code, stdout, err = fetch(kms, ALICE, out)
    assert code == 0, err
    assert "replaced the keys of another user" in stdout
    assert SakkeKeystore.load_json(out.read_bytes()).uri == ALICE


def test_integrity_key_signed_fetch(kms: Kms, tmp_path: pathlib.Path) -> None:
    ink = bytes(range(32))
    with open_store(kms.data) as store:
        store.set_integrity_key(ALICE, ink)
    good = tmp_path / "ink.hex"
    good.write_text(ink.hex() + "\n")
    wrong = tmp_path / "wrong.hex"
    wrong.write_text(bytes(32).hex())
    out = tmp_path / "alice.json"
    code, _, err = fetch(kms, ALICE, out, "--integrity-key", str(good))
    assert code == 0, err
    assert len(periods(out)) == 2
    before = out.read_bytes()
    code, _, err = fetch(kms, ALICE, out, "--integrity-key", str(wrong))
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert out.read_bytes() == before  # a refused fetch leaves the file as it was
    bad = tmp_path / "bad.hex"
    bad.write_text("zz")
    code, _, err = fetch(kms, ALICE, out, "--integrity-key", str(bad))
    assert code == 2 and "--integrity-key" in err


def test_without_the_integrity_key_the_signed_answer_is_read(kms: Kms, tmp_path: pathlib.Path) -> None:
    """A client with no InK configured reads the KmsResponse inside a SignedKmsResponse (it relies on TLS)."""
    with open_store(kms.data) as store:
        store.set_integrity_key(ALICE, bytes(range(32)))
    out = tmp_path / "alice.json"
    code, stdout, err = fetch(kms, ALICE, out)
    assert code == 0, err
    assert len(periods(out)) == 2 and stdout.startswith(f"wrote {out}: {ALICE}")
