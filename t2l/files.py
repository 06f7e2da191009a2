"""Writing files so that a reader, or a crash, never sees half of one."""

import os
import uuid
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes, sync: bool = False) -> Path:
    """Write `data` to a temporary name beside `path`, then rename it into place. `sync` flushes it to disk first,
    for files a database row will point at."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
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
