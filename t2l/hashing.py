"""sha256 of weight files, cached by (path, size, mtime) so identifying a model stays cheap."""

import hashlib
import json
from pathlib import Path

from t2l.files import write_text_atomic
from t2l.home import t2l_home


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
