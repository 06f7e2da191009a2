"""Engine setup: WAL, a busy timeout and IMMEDIATE transactions, so parallel writers queue instead of failing; a
registry that cannot be written is opened read-only, so reading verbs still work."""

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.exc import DatabaseError
from sqlmodel import create_engine

from registry.errors import RegistryError
from registry.migrations import MIGRATIONS

BUSY_TIMEOUT_S = 60


def writable(path: Path) -> bool:
    """Whether the database (and its folder, where SQLite keeps the WAL and lock files) can be written."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def open_engine(path: Path, read_only: bool = False):
    if path.is_dir():
        raise RegistryError(
            f"{path} is a folder, not the registry database; move it aside (a new registry is "
            "created) or point T2L_HOME elsewhere"
        )
    if read_only and not path.exists():
        raise RegistryError(
            f"there is no registry at {path.parent} and it cannot be created there (read-only); "
            "point T2L_HOME at a writable folder"
        )
    if read_only:
        # SQLite reads a WAL database through its -shm file; a folder nobody may write to cannot get one, so there a
        # database without a pending WAL is read as a file nothing changes
        wal = path.with_name(path.name + "-wal")
        pending = wal.exists() and wal.stat().st_size > 0
        uri = Path(path).resolve().as_uri() + (
            "?mode=ro" if pending or os.access(path.parent, os.W_OK) else "?immutable=1"
        )
        engine = create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        )
    else:
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A deferred transaction that reads and then writes can fail with SQLITE_BUSY at once when another
        # writer got there first (the busy handler is skipped to avoid deadlock); taking the write lock up
        # front makes every writer wait its turn under busy_timeout instead. A read-only one only reads.
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    try:
        check_schema(engine, path) if read_only else migrate(engine, path)
    except DatabaseError as e:
        engine.dispose()
        raise damaged(path, e) from None
    return engine


# SQLite's codes for a write that found no room: the database or its write-ahead log growing (SQLITE_FULL,
# SQLITE_IOERR_WRITE), or its shared-memory index taking its first 32 kB as the registry opens (SQLITE_IOERR_SHMSIZE)
NO_ROOM_CODES = ("SQLITE_FULL", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_SHMSIZE")


def no_room(path: Path, e) -> RegistryError | None:
    """The one line for a registry write that a full disk, a quota or a file size limit stopped; None for any other
    failure."""
    code = getattr(getattr(e, "orig", None), "sqlite_errorname", "")
    if not code.startswith(NO_ROOM_CODES):
        return None
    return RegistryError(
        f"no room to write the registry {path} ({e.orig}: a full disk, a quota or a file size limit "
        "stops it); nothing was changed, the registry is as it was. Free some space, or set T2L_HOME "
        "to a folder on a disk with room, then run the command again"
    )


def damaged(path: Path, e: DatabaseError) -> RegistryError:
    """The one line for a database SQLite cannot use."""
    room = no_room(path, e)
    if room is not None:
        return room
    reason = str(e.orig) if getattr(e, "orig", None) is not None else str(e)
    if "locked" in reason:
        return RegistryError(
            f"the registry database {path} stayed locked by another t2l process for over "
            f"{BUSY_TIMEOUT_S} s; try again when it is done"
        )
    return RegistryError(
        f"the registry database {path} cannot be used ({reason}); restore it from a "
        f"`t2l registry backup` file (cp BACKUP {path}), or move it aside to start an empty "
        "registry"
    )


def schema_version(conn) -> int:
    return conn.exec_driver_sql("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").scalar()


def _check_version(path: Path, current: int) -> None:
    if current > len(MIGRATIONS):
        raise RegistryError(
            f"the registry {path} has schema version {current}, newer than this t2l knows "
            f"({len(MIGRATIONS)}); upgrade t2l or point T2L_HOME elsewhere"
        )


def check_schema(engine, path: Path) -> None:
    """A read-only registry cannot be migrated: it must be at this t2l's schema version already."""
    with engine.connect() as conn:
        current = schema_version(conn)
    _check_version(path, current)
    if current < len(MIGRATIONS):
        raise RegistryError(
            f"the registry {path} is read-only and has an older schema (version "
            f"{current}, this t2l needs {len(MIGRATIONS)}); open it once where it can be written"
        )


def migrate(engine, path: Path) -> None:
    """Apply the migrations this database has not seen, in order, in one transaction."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TIMESTAMP NOT NULL)"
        )
        current = schema_version(conn)
        _check_version(path, current)
        for version, (name, sql) in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in sql.split(";"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
            conn.exec_driver_sql(
                "INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                (version, name, datetime.now(timezone.utc).isoformat()),
            )
