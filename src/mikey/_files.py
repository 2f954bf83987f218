"""Writing files that hold secrets (KMS master secrets, user keys, private keys, PSKs).

One rule for every secret the package writes: the data goes into a new file
created with mode 0600 in the destination's directory, is flushed to disk, and
is renamed over the destination.  So an existing file's looser mode is never
inherited, a reader sees the old content or the new one and never a partial
write, and a symbolic link at the destination is refused instead of followed.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

__all__ = ["write_private_atomic"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def write_private_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write *data* to *path* readable by its owner only (0600), atomically.

    Raises :class:`OSError` (``ELOOP``) when *path* is a symbolic link, and the
    usual :class:`OSError` when the directory cannot be written; the destination
    is then untouched and no temporary file is left behind.
    """
    dest = Path(path)
    if dest.is_symlink():
        raise OSError(errno.ELOOP, "refusing to write a secret through a symbolic link", str(dest))
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # the umask may only have narrowed it; make it exactly 0600
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _sync_directory(dest.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
