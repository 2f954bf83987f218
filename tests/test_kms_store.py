"""The KMS database (issue 9 §4): migrations, secrets encrypted at rest, one key set per (user, period).

Runs on real databases: an SQLite file in ``tmp_path``, and PostgreSQL at
``MIKEY_TEST_POSTGRES_URL`` (default ``postgresql://127.0.0.1:5432/test``), where this module
creates a throwaway database (dropped afterwards) and each test its own schema in it.
PostgreSQL tests are skipped on a machine without a server, but with ``CI`` set they fail
instead (``.ci/run`` starts PostgreSQL).
"""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mikey.errors import KmsStoreError, MikeyError
from mikey.keystore import IdentityKeys
from mikey.kms import KmsCommunity, generate_community, issue_user_keys
from mikey.kms.store import (
    AT_REST_KEY_ENV,
    AtRestKey,
    KmsStore,
    UnknownUserError,
    create_at_rest_key_file,
    database_url,
)

ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"
COMMUNITY = generate_community("kms.example.org")


@pytest.fixture
def key() -> AtRestKey:
    return AtRestKey.generate()


@pytest.fixture
def open_store(db_url: sa.URL, key: AtRestKey) -> Iterator[Callable[..., KmsStore]]:
    """Opens stores on this test's database (closed afterwards)."""
    opened: list[KmsStore] = []

    def make(at_rest_key: AtRestKey | None = None) -> KmsStore:
        store = KmsStore(db_url, at_rest_key or key)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., KmsStore]) -> KmsStore:
    """A store holding COMMUNITY and the users ALICE and BOB."""
    s = open_store()
    s.create_community(COMMUNITY)
    s.add_user(ALICE)
    s.add_user(BOB)
    return s


def _issuer(community: KmsCommunity = COMMUNITY, calls: list[tuple[str, int]] | None = None
            ) -> Callable[[str, int], IdentityKeys]:
    def issue(uri: str, period_no: int) -> IdentityKeys:
        if calls is not None:
            calls.append((uri, period_no))
        return issue_user_keys(community, uri, period_no=period_no)

    return issue


def _same(a: IdentityKeys, b: IdentityKeys) -> bool:
    return (a.uri, a.identifier, a.ssk, a.pvt, a.rsk, a.period_no) == (b.uri, b.identifier, b.ssk, b.pvt, b.rsk,
                                                                       b.period_no)


# -- schema -----------------------------------------------------------------------------------------


def test_migrations_create_the_schema_and_rerun_as_no_ops(db_url: sa.URL, key: AtRestKey) -> None:
    with KmsStore(db_url, key) as store:
        assert store.schema_revision() == "0005"
        store.create_community(COMMUNITY)
        store.add_user(ALICE)
        engine = sa.create_engine(db_url)
        inspector = sa.inspect(engine)
        assert {"kms_community", "kms_users", "kms_key_sets", "kms_audit", "kms_alembic_version"} <= set(
            inspector.get_table_names())
        uniques = inspector.get_unique_constraints("kms_key_sets")
        assert [u["column_names"] for u in uniques] == [["generation", "user_uri", "period_no"]]
        engine.dispose()
    with KmsStore(db_url, key) as again:  # opening runs the migrations again: nothing changes, nothing lost
        assert again.schema_revision() == "0005"
        assert [u.uri for u in again.list_users()] == [ALICE]


def test_migrations_are_package_data() -> None:
    """The installed package carries its migration scripts (pyproject package-data and packages)."""
    import mikey.kms.migrations as migrations

    root = Path(migrations.__file__).parent
    assert (root / "env.py").is_file() and (root / "script.py.mako").is_file()
    assert list((root / "versions").glob("v0001_*.py"))
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert "migrations/script.py.mako" in pyproject


# -- community and users ----------------------------------------------------------------------------


def test_community_round_trip(store: KmsStore, open_store: Callable[..., KmsStore]) -> None:
    loaded = open_store().load_community()  # a second process's view
    assert loaded.public == COMMUNITY.public
    assert (loaded.ksak, loaded.z_master) == (COMMUNITY.ksak, COMMUNITY.z_master)
    with pytest.raises(KmsStoreError, match="already holds a KMS community"):
        store.create_community(generate_community("kms.other.org"))


def test_empty_database_has_no_community(open_store: Callable[..., KmsStore]) -> None:
    store = open_store()
    assert not store.has_community()
    with pytest.raises(KmsStoreError, match="no KMS community"):
        store.load_community()


def test_users_round_trip(store: KmsStore) -> None:
    assert store.add_user(ALICE) is False  # already there: unchanged
    assert [u.uri for u in store.list_users()] == [ALICE, BOB]
    assert store.get_user(ALICE) is not None and store.get_user(ALICE).enabled  # type: ignore[union-attr]
    assert store.get_user("sip:nobody@example.org") is None
    store.set_user_enabled(BOB, False)
    assert store.get_user(BOB).enabled is False  # type: ignore[union-attr]
    with pytest.raises(UnknownUserError, match="disabled"):
        store.get_or_issue_key_set(BOB, 5, _issuer())
    with pytest.raises(UnknownUserError, match="not registered"):
        store.get_or_issue_key_set("sip:carol@example.org", 5, _issuer())
    with pytest.raises(UnknownUserError):
        store.set_user_enabled("sip:carol@example.org", True)
    assert store.list_key_sets() == []
    with pytest.raises(KmsStoreError, match="1 to 2048"):
        store.add_user("")


# -- issuing ----------------------------------------------------------------------------------------


def test_reprovisioning_returns_the_same_keys(store: KmsStore, open_store: Callable[..., KmsStore]) -> None:
    calls: list[tuple[str, int]] = []
    first = store.get_or_issue_key_set(ALICE, 7, _issuer(calls=calls), issued_to="alice-token")
    again = store.get_or_issue_key_set(ALICE, 7, _issuer(calls=calls))
    other_process = open_store().get_or_issue_key_set(ALICE, 7, _issuer(calls=calls))
    assert calls == [(ALICE, 7)]
    assert _same(first, again) and _same(first, other_process)
    other_process.validate()  # RFC 6507 §5.1.2, RFC 6508 §6.1.2: the stored keys still check out
    # Issuing again would give another SSK (RFC 6507 §5.1.1 draws a fresh v): the store is what keeps it stable.
    assert issue_user_keys(COMMUNITY, ALICE, period_no=7).ssk != first.ssk
    next_period = store.get_or_issue_key_set(ALICE, 8, _issuer(calls=calls))
    assert calls == [(ALICE, 7), (ALICE, 8)] and next_period.identifier != first.identifier


def test_audit_listing(store: KmsStore) -> None:
    store.get_or_issue_key_set(ALICE, 7, _issuer(), issued_to="alice", now=1000.0)
    store.get_or_issue_key_set(BOB, 7, _issuer(), issued_to="admin", now=1001.0)
    alice8 = store.get_or_issue_key_set(ALICE, 8, _issuer(), now=1002.0)
    rows = store.list_key_sets()
    assert [(r.user_uri, r.period_no, r.issued_at, r.issued_to) for r in rows] == [
        (ALICE, 7, 1000.0, "alice"),
        (BOB, 7, 1001.0, "admin"),
        (ALICE, 8, 1002.0, None),
    ]
    assert rows[2].identifier == alice8.identifier
    assert [r.period_no for r in store.list_key_sets(uri=ALICE)] == [7, 8]
    assert [r.user_uri for r in store.list_key_sets(period_no=7)] == [ALICE, BOB]
    assert "ssk" not in repr(rows).lower() and alice8.ssk.hex() not in repr(rows)


def test_losing_the_race_returns_the_stored_key_set(store: KmsStore, open_store: Callable[..., KmsStore]) -> None:
    """Another process stores (user, period) between our lookup and our insert: we get its keys, not ours."""
    rival = open_store()
    theirs: list[IdentityKeys] = []
    mine: list[IdentityKeys] = []

    def issue_while_the_rival_wins(uri: str, period_no: int) -> IdentityKeys:
        theirs.append(rival.get_or_issue_key_set(uri, period_no, _issuer()))
        mine.append(issue_user_keys(COMMUNITY, uri, period_no=period_no))
        return mine[0]

    got = store.get_or_issue_key_set(ALICE, 9, issue_while_the_rival_wins)
    assert _same(got, theirs[0]) and not _same(got, mine[0])
    assert len(store.list_key_sets()) == 1
    assert _same(store.get_or_issue_key_set(ALICE, 9, _issuer()), theirs[0])


def test_an_interrupted_issue_leaves_no_row(store: KmsStore) -> None:
    class Crash(Exception):
        pass

    def crash(uri: str, period_no: int) -> IdentityKeys:
        raise Crash

    with pytest.raises(Crash):
        store.get_or_issue_key_set(ALICE, 3, crash)
    assert store.list_key_sets() == [] and store.get_key_set(ALICE, 3) is None

    def wrong_user(uri: str, period_no: int) -> IdentityKeys:
        return issue_user_keys(COMMUNITY, BOB, period_no=period_no)

    with pytest.raises(KmsStoreError, match="issuer returned keys"):
        store.get_or_issue_key_set(ALICE, 3, wrong_user)
    assert store.list_key_sets() == []
    # Then the real issue goes through, once.
    keys = store.get_or_issue_key_set(ALICE, 3, _issuer())
    assert _same(store.get_key_set(ALICE, 3), keys)  # type: ignore[arg-type]


def test_a_failed_insert_is_rolled_back_whole(store: KmsStore, db_url: sa.URL) -> None:
    """An insert the database refuses (the user was deleted meanwhile: foreign key) leaves nothing, and says so."""
    engine = sa.create_engine(db_url)

    def remove_user_then_issue(uri: str, period_no: int) -> IdentityKeys:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM kms_users WHERE uri = :u"), {"u": uri})
        return issue_user_keys(COMMUNITY, uri, period_no=period_no)

    with pytest.raises(KmsStoreError, match="refused by the database"):
        store.get_or_issue_key_set(ALICE, 4, remove_user_then_issue)
    engine.dispose()
    assert store.list_key_sets() == []


# -- encryption at rest -----------------------------------------------------------------------------


def _sqlite_path(url: sa.URL) -> Path:
    assert url.database is not None
    return Path(url.database)


def test_secrets_are_encrypted_at_rest(tmp_path: Path, key: AtRestKey) -> None:
    url = database_url(f"sqlite:///{tmp_path / 'kms.sqlite3'}")
    with KmsStore(url, key) as store:
        store.create_community(COMMUNITY)
        store.add_user(ALICE)
        keys = store.get_or_issue_key_set(ALICE, 7, _issuer())
    ksak = COMMUNITY.ksak.to_bytes(32, "big")
    z_master = COMMUNITY.z_master.to_bytes((COMMUNITY.z_master.bit_length() + 7) // 8, "big")
    with sqlite3.connect(_sqlite_path(url)) as raw:
        ksak_sealed, z_sealed, kpak = raw.execute("SELECT ksak_sealed, z_master_sealed, kpak FROM kms_community").fetchone()
        ssk_sealed, rsk_sealed, pvt = raw.execute("SELECT ssk_sealed, rsk_sealed, pvt FROM kms_key_sets").fetchone()
    assert kpak == COMMUNITY.public.kpak and pvt == keys.pvt  # public values in clear
    assert ksak not in ksak_sealed and z_master not in z_sealed
    assert keys.ssk not in ssk_sealed and keys.rsk not in rsk_sealed
    assert len(ksak_sealed) == 1 + 12 + 32 + 16  # version, 96-bit nonce, ciphertext, GCM tag
    # Nowhere in the database files (main file, and the WAL if one is left) is a secret in clear.
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("kms.sqlite3"))
    for secret in (ksak, z_master, keys.ssk, keys.rsk):
        assert secret not in blob and secret.hex().encode() not in blob


def test_a_wrong_at_rest_key_fails_clearly(store: KmsStore, open_store: Callable[..., KmsStore], key: AtRestKey
                                            ) -> None:
    store.get_or_issue_key_set(ALICE, 7, _issuer())
    wrong = open_store(AtRestKey.generate())
    with pytest.raises(KmsStoreError, match="cannot decrypt the stored KSAK: wrong at-rest key") as info:
        wrong.load_community()
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(KmsStoreError, match="cannot decrypt the stored SSK of 'sip:alice@example.org'"):
        wrong.get_or_issue_key_set(ALICE, 7, _issuer())
    assert len(store.list_key_sets()) == 1  # and nothing was re-issued over it


def test_a_ciphertext_moved_to_another_row_or_column_fails(store: KmsStore, db_url: sa.URL) -> None:
    store.get_or_issue_key_set(ALICE, 7, _issuer())
    bob = store.get_or_issue_key_set(BOB, 7, _issuer())
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        bob_ssk = conn.execute(sa.text("SELECT ssk_sealed FROM kms_key_sets WHERE user_uri = :u"), {"u": BOB}).scalar()
        conn.execute(sa.text("UPDATE kms_key_sets SET ssk_sealed = :s WHERE user_uri = :u"), {"s": bob_ssk, "u": ALICE})
        # and the community's two secrets swapped with each other
        conn.execute(sa.text("UPDATE kms_community SET ksak_sealed = z_master_sealed"))
    with pytest.raises(KmsStoreError, match="SSK of 'sip:alice@example.org': wrong at-rest key, or the value was altered"):
        store.get_key_set(ALICE, 7)
    with pytest.raises(KmsStoreError, match="KSAK"):
        store.load_community()
    assert _same(store.get_key_set(BOB, 7), bob)  # type: ignore[arg-type]
    with engine.begin() as conn:  # the same ciphertext in its own row but another period
        conn.execute(sa.text("UPDATE kms_key_sets SET period_no = 8 WHERE user_uri = :u"), {"u": BOB})
    engine.dispose()
    with pytest.raises(KmsStoreError, match="SSK of 'sip:bob@example.org'"):
        store.get_key_set(BOB, 8)


def test_at_rest_key_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "at-rest.key"
    created = create_at_rest_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = AtRestKey.load(path)
    assert loaded.open(created.seal(b"z", b"ad"), b"ad", what="z") == b"z"
    with pytest.raises(KmsStoreError, match="refusing to replace"):
        create_at_rest_key_file(path)
    text = path.read_text()
    assert text.strip() not in repr(loaded) and repr(loaded) == "AtRestKey(<hidden>)"
    monkeypatch.setenv(AT_REST_KEY_ENV, text.strip())
    assert AtRestKey.load().open(created.seal(b"k", b""), b"", what="k") == b"k"
    monkeypatch.setenv(AT_REST_KEY_ENV, "00" * 31)
    with pytest.raises(KmsStoreError, match=f"in \\${AT_REST_KEY_ENV} is not 64 hex digits"):
        AtRestKey.load()
    monkeypatch.delenv(AT_REST_KEY_ENV)
    with pytest.raises(KmsStoreError, match=f"set {AT_REST_KEY_ENV}"):
        AtRestKey.load()
    with pytest.raises(KmsStoreError, match="cannot read the at-rest key file"):
        AtRestKey.load(tmp_path / "missing.key")
    (tmp_path / "bad.key").write_text("not hex at all")
    with pytest.raises(KmsStoreError, match="not 64 hex digits") as info:
        AtRestKey.load(tmp_path / "bad.key")
    assert "not hex at all" not in str(info.value)


# -- URLs and failures ------------------------------------------------------------------------------


def test_database_urls() -> None:
    assert database_url("postgresql://u@db:5432/kms").drivername == "postgresql+psycopg"
    assert database_url("postgres://db/kms").drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg://db/kms").drivername == "postgresql+psycopg"
    assert database_url(None, data_dir="/srv/kms").database == "/srv/kms/kms.sqlite3"
    assert database_url(sa.make_url("postgresql://db/kms")).drivername == "postgresql+psycopg"
    for bad, message in [("mysql://db/kms", "unsupported database"), ("sqlite://", "in-memory"),
                         ("not a url", "dialect://"), ("sqlite:///:memory:", "in-memory")]:
        with pytest.raises(KmsStoreError, match=message):
            database_url(bad)


def test_database_urls_in_memory_sqlite_refused() -> None:
    with pytest.raises(KmsStoreError, match="in-memory"):
        KmsStore("sqlite:///:memory:", AtRestKey.generate())


def test_an_unreachable_database_is_a_kms_store_error(key: AtRestKey) -> None:
    with pytest.raises(KmsStoreError) as info:
        KmsStore("postgresql://kms:hunter2@127.0.0.1:1/kms", key)
    message = str(info.value)
    assert "127.0.0.1:1" in message and "failed while migrating" in message and "OperationalError" in message
    assert "hunter2" not in message and "hunter2" not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert isinstance(info.value, MikeyError)


def test_an_unwritable_sqlite_path_is_a_kms_store_error(tmp_path: Path, key: AtRestKey) -> None:
    with pytest.raises(KmsStoreError, match="failed while migrating"):
        KmsStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'kms.sqlite3'}", key)


def test_reprs_hide_secrets(store: KmsStore, key: AtRestKey) -> None:
    assert "<hidden>" in repr(key)
    assert repr(store).startswith("KmsStore(")
    assert f"{COMMUNITY.ksak:x}" not in repr(store.load_community())


# -- two processes on one database ------------------------------------------------------------------

#: Pairs both processes issue in lockstep (each waits in the issue function for the other), so every one is a race.
_RACED = [(f"sip:user{u}@example.org", period) for u in range(4) for period in (100, 101)]
#: Pairs both processes hammer freely, each in its own random order.
_FREE = [(f"sip:user{u}@example.org", period) for u in range(4) for period in (200, 201, 202, 203)]


def _hammer(url: str, key_file: str, seed: int, start: Any, in_issue: Any, out: Any) -> None:
    """A KMS process: get_or_issue every (user, period) several times; report what it got and what it issued."""
    try:
        store = KmsStore(url, AtRestKey.load(key_file))
        community = store.load_community()
        issued: dict[tuple[str, int], str] = {}

        def issue(uri: str, period_no: int) -> IdentityKeys:
            keys = issue_user_keys(community, uri, period_no=period_no)
            issued[(uri, period_no)] = keys.ssk.hex()
            if (uri, period_no) in _RACED:
                in_issue.wait(10)  # both have issued this pair; neither has stored it yet
            return keys

        got: dict[tuple[str, int], list[str]] = {}
        rng = random.Random(seed)
        start.wait(10)
        for round_no in range(3):
            free = _FREE[:]
            rng.shuffle(free)
            for uri, period in (_RACED if round_no == 0 else []) + free:
                keys = store.get_or_issue_key_set(uri, period, issue)
                got.setdefault((uri, period), []).append((keys.ssk + keys.rsk).hex())
        store.close()
        out.put(("ok", got, issued))
    except BaseException as exc:  # report to the parent rather than dying silently
        out.put(("error", f"{type(exc).__name__}: {exc}", {}))


@pytest.mark.parametrize("rotated", [False, True], ids=["generation1", "rotated"])
def test_two_processes_issue_one_key_set_per_user_and_period(db_url: sa.URL, tmp_path: Path, rotated: bool) -> None:
    """Rotated: generation 1 already holds key sets for the raced pairs; the processes race in generation 2."""
    key_file = tmp_path / "at-rest.key"
    with KmsStore(db_url, create_at_rest_key_file(key_file)) as store:
        store.create_community(COMMUNITY)
        for uri in sorted({u for u, _ in _RACED + _FREE}):
            store.add_user(uri)
        if rotated:
            for pair in _RACED:
                store.get_or_issue_key_set(*pair, _issuer())
            store.rotate_community(generate_community("kms.example.org"))
        generation = store.active_generation()
        ctx = multiprocessing.get_context("fork")
        start, in_issue, out = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
        url = db_url.render_as_string(hide_password=False)
        procs = [ctx.Process(target=_hammer, args=(url, str(key_file), seed, start, in_issue, out))
                 for seed in (1, 2)]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(10)
        assert [r[0] for r in results] == ["ok", "ok"], results
        records = store.list_key_sets(generation=generation)
        assert len(store.list_key_sets()) == len(records) + (len(_RACED) if rotated else 0)
        assert sorted((r.user_uri, r.period_no) for r in records) == sorted(_RACED + _FREE)  # one row each
        for pair in _RACED + _FREE:
            stored = store.get_key_set(*pair)
            assert stored is not None
            want = (stored.ssk + stored.rsk).hex()
            for _, got, _ in results:
                assert set(got[pair]) == {want}  # every caller got the stored key set, every time
        for pair in _RACED:  # both processes issued it; exactly one of the two was kept
            stored = store.get_key_set(*pair)
            assert stored is not None
            assert sorted(issued[pair] == stored.ssk.hex() for _, _, issued in results) == [False, True]


def _first_start(url: str, key_file: str, start: Any, out: Any) -> None:
    """A KMS process starting on a database nobody has used: migrate, then get or create the community."""
    try:
        start.wait(10)
        with KmsStore(url, AtRestKey.load(key_file)) as store:
            community = store.get_or_create_community(lambda: generate_community("kms.example.org"))
        out.put(("ok", community.public.kpak.hex(), f"{community.ksak:x}"))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}", ""))


def test_two_processes_starting_on_an_empty_database_share_one_schema_and_community(
    db_url: sa.URL, tmp_path: Path
) -> None:
    key_file = tmp_path / "at-rest.key"
    create_at_rest_key_file(key_file)
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(3), ctx.Queue()
    url = db_url.render_as_string(hide_password=False)
    procs = [ctx.Process(target=_first_start, args=(url, str(key_file), start, out)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    assert [r[0] for r in results] == ["ok"] * 3, results
    assert len({r[1:] for r in results}) == 1  # the same community (KPAK and KSAK) in every process
    with KmsStore(db_url, AtRestKey.load(key_file)) as store:
        assert store.schema_revision() == "0005"
        assert store.load_community().public.kpak.hex() == results[0][1]


def test_a_failed_migration_leaves_nothing_behind(db_url: sa.URL, key: AtRestKey) -> None:
    """The migration runs in one transaction (SQLite too): a failure half-way leaves no table and no revision."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:  # a stray table of the same name makes the last CREATE TABLE fail
        conn.execute(sa.text("CREATE TABLE kms_key_sets (x INTEGER)"))
    with pytest.raises(KmsStoreError, match="failed while migrating the schema"):
        KmsStore(db_url, key)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert tables == {"kms_key_sets"}


# -- generations (rotation), integrity keys, audit (schema revision 0002) ---------------------------


def test_upgrade_from_0001_keeps_the_community_users_and_key_sets(db_url: sa.URL, key: AtRestKey) -> None:
    """A database written at revision 0001 (one community, UNIQUE(user, period)) upgrades to 0002 in place:
    the community becomes generation 1, its key sets stay readable (same sealing), issuing goes on."""
    from mikey.kms.store import _ad  # revision 0001's associated-data layout, which generation 1 keeps

    old = KmsStore(db_url, key, migrate=False)
    old.upgrade("0001")
    assert old.schema_revision() == "0001"
    keys = issue_user_keys(COMMUNITY, ALICE, period_no=7)
    p = COMMUNITY.public
    ksak = COMMUNITY.ksak.to_bytes((COMMUNITY.ksak.bit_length() + 7) // 8, "big")
    zm = COMMUNITY.z_master.to_bytes((COMMUNITY.z_master.bit_length() + 7) // 8, "big")
    with old._engine.begin() as conn:  # the rows exactly as the 0001 store wrote them
        conn.execute(sa.text(
            "INSERT INTO kms_community (id, kms_uri, kpak, z_public, sakke_params, id_scheme, key_period,"
            " key_period_offset, ksak_sealed, z_master_sealed, created_at) VALUES (1, :u, :kpak, :z, 1, 2, :kp, :ko,"
            " :ksak, :zm, 1.0)"),
            {"u": p.kms_uri, "kpak": p.kpak, "z": p.z, "kp": p.key_period, "ko": p.key_period_offset,
             "ksak": key.seal(ksak, _ad("ksak", p.kms_uri)), "zm": key.seal(zm, _ad("z", p.kms_uri))})
        conn.execute(sa.text("INSERT INTO kms_users (uri, created_at, enabled) VALUES (:u, 2.0, :e)"),
                     {"u": ALICE, "e": True})
        conn.execute(sa.text(
            "INSERT INTO kms_key_sets (user_uri, period_no, identifier, pvt, ssk_sealed, rsk_sealed, issued_at,"
            " issued_to) VALUES (:u, 7, :i, :pvt, :ssk, :rsk, 3.0, 'alice')"),
            {"u": ALICE, "i": keys.identifier, "pvt": keys.pvt,
             "ssk": key.seal(keys.ssk, _ad("ssk", p.kms_uri, ALICE, 7)),
             "rsk": key.seal(keys.rsk, _ad("rsk", p.kms_uri, ALICE, 7))})
    old.close()
    with KmsStore(db_url, key) as store:  # opening migrates to 0002
        assert store.schema_revision() == "0005"
        assert store.active_generation() == 1
        assert store.load_community().public == COMMUNITY.public
        assert f"{store.load_community().ksak:x}" == f"{COMMUNITY.ksak:x}"
        assert [(u.uri, u.enabled, u.has_integrity_key) for u in store.list_users()] == [(ALICE, True, False)]
        stored = store.get_key_set(ALICE, 7)
        assert stored is not None and _same(stored, keys)
        [record] = store.list_key_sets()
        assert (record.user_uri, record.period_no, record.generation, record.issued_to) == (ALICE, 7, 1, "alice")
        calls: list[tuple[str, int]] = []
        again = store.get_or_issue_key_set(ALICE, 7, _issuer(calls=calls))
        assert _same(again, keys) and calls == []  # re-provisioning after the upgrade: the same keys
        store.get_or_issue_key_set(ALICE, 8, _issuer())
        assert [r.period_no for r in store.list_key_sets()] == [7, 8]


def test_rotation_adds_a_generation_and_keeps_the_old_key_sets(store: KmsStore,
                                                               open_store: Callable[..., KmsStore]) -> None:
    other = open_store()  # another process's store on the same database
    first = store.get_or_issue_key_set(ALICE, 7, _issuer(), issued_to="alice")
    assert other.active_generation() == 1 and other.public_keys() == COMMUNITY.public
    rotated = generate_community("kms.example.org")
    assert store.rotate_community(rotated, actor="admin-1", now=1000.0) == 2
    assert other.active_generation() == 2  # seen by the other store at once
    assert other.public_keys() == rotated.public and other.public_keys(1) == COMMUNITY.public
    assert f"{other.load_community().ksak:x}" == f"{rotated.ksak:x}"
    assert f"{other.load_community(1).ksak:x}" == f"{COMMUNITY.ksak:x}"
    second = other.get_or_issue_key_set(ALICE, 7, _issuer(rotated))  # same user and period, new generation
    assert second.identifier == first.identifier and second.ssk != first.ssk and second.rsk != first.rsk
    second.validate()
    old = other.get_key_set(ALICE, 7, generation=1)
    assert old is not None and _same(old, first)
    assert [(r.generation, r.period_no) for r in other.list_key_sets(uri=ALICE)] == [(1, 7), (2, 7)]
    assert [r.generation for r in other.list_key_sets(generation=1)] == [1]
    gens = other.list_generations()
    assert [(g.generation, g.created_by) for g in gens] == [(1, None), (2, "admin-1")]
    assert gens[1].created_at == 1000.0 and gens[1].public == rotated.public
    [audit] = other.list_audit(action="rotate")
    assert (audit.at, audit.actor, audit.subject, audit.detail) == (1000.0, "admin-1", "kms.example.org",
                                                                    "generation 1 -> 2")


def test_rotation_refuses_other_rules_and_conflicts(store: KmsStore, db_url: sa.URL) -> None:
    from mikey.kms.store import RotationConflictError

    with pytest.raises(KmsStoreError, match="kms_uri"):
        store.rotate_community(generate_community("kms.other.org"))
    with pytest.raises(KmsStoreError, match="key_period"):
        store.rotate_community(generate_community("kms.example.org", key_period=86400))
    with pytest.raises(KmsStoreError, match="new master keys"):
        store.rotate_community(COMMUNITY)
    # Another process rotated between this one's read of the active generation and its insert.
    racer = generate_community("kms.example.org")
    real_active = store.active_generation
    store.active_generation = lambda: 1  # type: ignore[method-assign]
    try:
        with KmsStore(db_url, store._key) as peer:
            peer.rotate_community(racer)
        with pytest.raises(RotationConflictError, match="at the same time"):
            store.rotate_community(generate_community("kms.example.org"))
    finally:
        store.active_generation = real_active  # type: ignore[method-assign]
    assert [g.public for g in store.list_generations()] == [COMMUNITY.public, racer.public]
    assert len(store.list_audit(action="rotate")) == 1  # the refused rotation left no audit record


def test_two_processes_issue_one_key_set_per_generation_user_and_period(store: KmsStore,
                                                                       open_store: Callable[..., KmsStore]) -> None:
    """The unique constraint is per (generation, user, period): a loser of the insert race reads the winner."""
    rotated = generate_community("kms.example.org")
    store.rotate_community(rotated)
    other = open_store()
    winner = other.get_or_issue_key_set(BOB, 3, _issuer(rotated))
    real_get = store.get_key_set
    store.get_key_set = lambda *a, **k: None  # type: ignore[method-assign]  # missed the other's row
    try:
        with pytest.raises(KmsStoreError, match="refused"):
            store.get_or_issue_key_set(BOB, 3, _issuer(rotated))
    finally:
        store.get_key_set = real_get  # type: ignore[method-assign]
    assert _same(store.get_or_issue_key_set(BOB, 3, _issuer(rotated)), winner)
    assert [(r.generation, r.user_uri) for r in store.list_key_sets()] == [(2, BOB)]


def test_integrity_keys_are_sealed_and_audited(store: KmsStore, db_url: sa.URL) -> None:
    ink = bytes(range(32))
    carol = "sip:carol@example.org"
    assert store.add_user(carol, integrity_key=ink, actor="admin-1")
    assert store.integrity_key(carol) == ink and store.integrity_key(ALICE) is None
    assert store.integrity_key("sip:nobody@example.org") is None
    user = store.get_user(carol)
    assert user is not None and user.has_integrity_key and ink.hex() not in repr(user)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT integrity_key_sealed FROM kms_users WHERE uri = :u"), {"u": carol}).scalar()
    engine.dispose()
    assert ink not in bytes(raw) and ink.hex().encode() not in bytes(raw)
    store.set_integrity_key(ALICE, b"\x01" * 16, actor="admin-2")
    store.set_integrity_key(carol, None, actor="admin-2")
    assert store.integrity_key(ALICE) == b"\x01" * 16 and store.integrity_key(carol) is None
    store.set_user_enabled(carol, False, actor="admin-3")
    with pytest.raises(UnknownUserError):
        store.set_integrity_key("sip:nobody@example.org", ink)
    for bad in (b"", b"x" * 15, b"x" * 65):
        with pytest.raises(KmsStoreError, match="16 to 64 octets"):
            store.set_integrity_key(ALICE, bad)
    for bad_uri in ("", " sip:x@y", "sip:\nx", "s" * 2049):
        with pytest.raises(KmsStoreError, match="user URI"):
            store.add_user(bad_uri)
    actions = [(a.actor, a.action, a.subject) for a in store.list_audit()]
    assert actions == [
        ("local", "user-add", ALICE), ("local", "user-add", BOB), ("admin-1", "user-add", carol),
        ("admin-2", "integrity-key-set", ALICE), ("admin-2", "integrity-key-remove", carol),
        ("admin-3", "user-disable", carol),
    ]
    assert all(ink.hex() not in (a.detail or "") for a in store.list_audit())


def test_downgrade_to_0001_and_upgrade_again(store: KmsStore) -> None:
    """Revision 0002 downgrades (while only generation 1 exists) and upgrades again, keeping the data."""
    from alembic import command
    from alembic.config import Config

    from mikey.kms.store import _MIGRATIONS

    store.get_or_issue_key_set(ALICE, 7, _issuer())
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with store._engine.connect() as conn, conn.execution_options(mikey_write_lock=True).begin():
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert store.schema_revision() == "0001"
    uniques = sa.inspect(store._engine).get_unique_constraints("kms_key_sets")
    assert [u["column_names"] for u in uniques] == [["user_uri", "period_no"]]
    store.upgrade()
    assert store.schema_revision() == "0005"
    assert [(r.user_uri, r.period_no, r.generation) for r in store.list_key_sets()] == [(ALICE, 7, 1)]
    assert store.get_key_set(ALICE, 7) is not None
