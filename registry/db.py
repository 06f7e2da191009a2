"""Engine setup: WAL, a busy timeout and IMMEDIATE transactions, so parallel writers queue instead of failing."""

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import event
from sqlmodel import create_engine

from registry.errors import RegistryError
from registry.migrations import MIGRATIONS

BUSY_TIMEOUT_S = 60


def open_engine(path: Path):
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A deferred transaction that reads and then writes can fail with SQLITE_BUSY at once when another
        # writer got there first (the busy handler is skipped to avoid deadlock); taking the write lock up
        # front makes every writer wait its turn under busy_timeout instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    migrate(engine)
    return engine


def schema_version(conn) -> int:
    return conn.exec_driver_sql("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").scalar()


def migrate(engine) -> None:
    """Apply the migrations this database has not seen, in order, in one transaction."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TIMESTAMP NOT NULL)"
        )
        current = schema_version(conn)
        if current > len(MIGRATIONS):
            raise RegistryError(
                f"the registry {engine.url.database} has schema version {current}, newer than this t2l knows "
                f"({len(MIGRATIONS)}); upgrade t2l or point T2L_HOME elsewhere"
            )
        for version, (name, sql) in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in sql.split(";"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
            conn.exec_driver_sql(
                "INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                (version, name, datetime.now(timezone.utc).isoformat()),
            )
