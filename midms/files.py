"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the suite writes for later runs to trust (``results.json``, report tables, FID statistics, edge
and photo caches, checkpoints) goes through :func:`atomic_write`: a temporary file in the same folder (so the
final rename never crosses a file system), then ``os.replace``. A failure (a full disk, a kill) leaves the
previous version and no stray temporary file, and the error names the path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

UMASK = os.umask(0)  # the process's umask, read once: files written here get the permissions open() would give
os.umask(UMASK)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, then move it onto ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, f"could not write {path}: {e.strerror or e}") from e
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # as a plain open() would create it (mkstemp makes it private)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:  # a full disk, a vanished folder: say which file, keep the previous version intact
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, f"could not write {path} (the previous version is unchanged): {e.strerror or e}") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_folder(folder: str | Path, write: Callable[[Path], object]) -> None:
    """Fill ``folder`` through ``write(tmp)`` in a temporary folder beside it, then rename it into place: a killed
    job leaves no half-written cache entry. Files and folder get the permissions mkdir and open() would give (a
    team shares the cache; mkdtemp and safetensors write private ones)."""
    import shutil

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(tmp, 0o777 & ~UMASK)
    try:
        write(tmp)
        for file in tmp.iterdir():
            os.chmod(file, 0o666 & ~UMASK)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
