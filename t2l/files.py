"""Writing files and folders so that a reader, or a crash, never sees half of one."""

import errno
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


# a full disk, a full quota, a file size limit (ulimit -f): the write cannot go on, nothing else is wrong
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_room(path: Path, e: OSError) -> T2LError:
    """The one-line error for a write that found no room (`e.errno` in NO_ROOM): what, why, and what to do."""
    from t2l.home import t2l_home

    why = "a file size limit (see `ulimit -f`) stops it" if e.errno == errno.EFBIG else e.strerror or "no space left"
    try:
        home = Path(path).resolve().is_relative_to(t2l_home().resolve())
    except OSError:
        home = False
    where = (
        (", or set T2L_HOME to a folder on a disk with room (t2l keeps its registry, adapters and hypernetworks there)")
        if home
        else ", or choose a path on a disk with room"
    )
    return T2LError(
        f"no room to write {path}: {why}; nothing half-written was kept. Free some space{where}, then "
        "run the command again"
    )


def write_bytes_atomic(path: Path, data: bytes, sync: bool = False) -> Path:
    """Write `data` to a temporary name beside `path`, then rename it into place. `sync` flushes it to disk first,
    for files a database row will point at. A full disk is a T2LError saying so, and leaves nothing behind."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in NO_ROOM:
            raise no_room(path, e) from None
        raise
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
    folder goes and `path` is as it was; a full disk while it is filled is a T2LError saying so."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        yield tmp
        if replace and (path.exists() or path.is_symlink()):
            old = _temp_beside(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        else:
            os.replace(tmp, path)
    except OSError as e:
        if e.errno in NO_ROOM:
            raise no_room(path, e) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def copy_tree(src: Path, dest: Path) -> None:
    """Copy the folder `src` into the existing folder `dest`. Not shutil.copytree, which gathers its errors into one
    shutil.Error of strings: here the first failed copy raises its own OSError, errno and all."""
    for item in sorted(Path(src).rglob("*")):
        target = dest / item.relative_to(src)
        if item.is_dir() and not item.is_symlink():
            target.mkdir(exist_ok=True)
        else:
            shutil.copy2(item, target)


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
        raise T2LError(
            f"cannot write {what} {path}: {folder} is not a writable folder ({e.strerror}); choose another path"
        ) from None
