"""Writing files and folders so that a reader, or a crash, never sees half of one."""

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from t2l.errors import T2LError


def _temp_beside(path: Path) -> Path:
    # hidden and ending in .tmp, so `registry verify` knows a leftover of an interrupted write
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def write_bytes_atomic(path: Path, data: bytes, sync: bool = False) -> Path:
    """Write `data` to a temporary name beside `path`, then rename it into place. `sync` flushes it to disk first,
    for files a database row will point at."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


@contextmanager
def folder_atomic(path: Path, replace: bool = False) -> Iterator[Path]:
    """A new temporary folder beside `path` to fill; when the block ends it is renamed to `path`, so `path` holds
    the whole folder or nothing. With `replace` an existing `path` (folder or file) is swapped out and removed;
    without, the rename fails on a folder that is not empty (an empty one is taken over). On an error the temporary
    folder goes and `path` is as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    tmp.mkdir()
    try:
        yield tmp
        if replace and (path.exists() or path.is_symlink()):
            old = _temp_beside(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path: Path, what: str) -> None:
    """Fail before any work if the file `path` (named `what` in the error, e.g. '--output') cannot be written: it is
    a folder, or no file can be made where it goes. Tried with a real file, since permission bits tell nothing for
    root, a read-only mount or /proc."""
    path = Path(path)
    if path.is_dir():
        raise T2LError(f"{what} {path} is a folder; give the name of a file (in it, or elsewhere)")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    probe = _temp_beside(folder / path.name)
    try:
        probe.open("xb").close()
        probe.unlink()
    except OSError as e:
        raise T2LError(f"cannot write {what} {path}: {folder} is not a writable folder ({e.strerror}); choose "
                       "another path") from None
