"""Secret files (``mikey._files.write_private_atomic``): 0600 whatever was there, atomic, no symlinks."""

from __future__ import annotations

import errno
import os
import pathlib
import stat

import pytest

from mikey._files import write_private_atomic


def _mode(p: pathlib.Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_new_file_is_0600(tmp_path: pathlib.Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        write_private_atomic(tmp_path / "k.json", b"secret")
    finally:
        os.umask(old)
    assert (tmp_path / "k.json").read_bytes() == b"secret" and _mode(tmp_path / "k.json") == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o604])
def test_existing_loose_file_is_replaced_by_a_0600_file(tmp_path: pathlib.Path, mode: int) -> None:
    path = tmp_path / "community.json"
    path.write_bytes(b"old content")
    path.chmod(mode)
    write_private_atomic(path, b"KSAK and z")
    assert path.read_bytes() == b"KSAK and z" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["community.json"]


def test_symlink_at_destination_is_refused(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"victim")
    target.chmod(0o644)
    link = tmp_path / "user.json"
    link.symlink_to(target)
    with pytest.raises(OSError) as ei:
        write_private_atomic(link, b"SSK")
    assert ei.value.errno == errno.ELOOP and "symbolic link" in str(ei.value)
    assert target.read_bytes() == b"victim" and link.is_symlink() and _mode(target) == 0o644
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "does-not-exist")
    with pytest.raises(OSError):
        write_private_atomic(dangling, b"SSK")
    assert not (tmp_path / "does-not-exist").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.json", "target", "user.json"]


def test_crash_midway_leaves_old_content_and_no_temporary_file(tmp_path: pathlib.Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "user.json"
    path.write_bytes(b"old keys")

    def fail(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "simulated crash before the rename")

    monkeypatch.setattr("mikey._files.os.replace", fail)
    with pytest.raises(OSError, match="simulated crash"):
        write_private_atomic(path, b"new keys" * 1000)
    assert path.read_bytes() == b"old keys"
    assert [p.name for p in tmp_path.iterdir()] == ["user.json"]


def test_failed_write_leaves_no_temporary_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "user.json"
    path.write_bytes(b"old keys")

    def fail(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("mikey._files.os.fsync", fail)
    with pytest.raises(OSError, match="No space"):
        write_private_atomic(path, b"new keys")
    assert path.read_bytes() == b"old keys" and [p.name for p in tmp_path.iterdir()] == ["user.json"]


def test_unwritable_destination(tmp_path: pathlib.Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        write_private_atomic(tmp_path / "dir", b"x")  # a directory is not replaced
    with pytest.raises(OSError):
        write_private_atomic(tmp_path / "missing" / "k.json", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"] and not list((tmp_path / "dir").iterdir())
