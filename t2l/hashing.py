"""sha256 of weight files: each version of a file hashed once per process, and models' weights cached across
processes by (path, size, mtime) so identifying a model stays cheap."""

import hashlib
import json
import os
from pathlib import Path

from t2l.files import write_text_atomic
from t2l.home import t2l_home

# (device, inode, size, mtime) -> sha256 of the files this process hashed or wrote: a make checks the hypernetwork
# it loads and the adapter it stores once, not at every step that names them. A file written since has another
# mtime; one renamed into place (a temporary folder made final) keeps its inode, so its check still counts.
_known: dict[tuple, str] = {}


def _version(path: Path) -> tuple:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def sha256_file(path: Path) -> str:
    key = _version(path)
    if key not in _known:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _known[key] = h.hexdigest()
    return _known[key]


def wrote_sha256(path: Path, sha256: str) -> None:
    """`path` was just written from bytes whose sha256 the caller computed: later checks in this process need not
    read it again."""
    _known[_version(path)] = sha256


def cached_sha256(path: Path) -> str:
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    cache_file = t2l_home() / "cache" / "sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        cache[key] = sha256_file(path)
        try:
            write_text_atomic(cache_file, json.dumps(cache))
        except OSError:  # a read-only home: hash again next time
            pass
    return cache[key]


def sha256_files(paths: list[Path]) -> str:
    """One digest for a model stored in several files (sharded safetensors)."""
    if len(paths) == 1:
        return cached_sha256(paths[0])
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(cached_sha256(p).encode())
    return h.hexdigest()
