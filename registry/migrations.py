"""Ordered schema migrations. Append new ones; never edit one that has shipped."""

MIGRATIONS: list[tuple[str, str]] = [
    (
        "initial",
        """
        CREATE TABLE hypernet (
            id TEXT PRIMARY KEY,
            name TEXT UNIQUE,
            sha256 TEXT NOT NULL UNIQUE,
            variant TEXT NOT NULL,
            rank INTEGER NOT NULL,
            alpha REAL NOT NULL,
            targets TEXT NOT NULL,
            base_name TEXT NOT NULL,
            base_sha256 TEXT NOT NULL,
            encoder_name TEXT NOT NULL,
            encoder_sha256 TEXT NOT NULL,
            recipe TEXT,
            config TEXT NOT NULL,
            created TIMESTAMP NOT NULL
        );
        CREATE TABLE adapter (
            id TEXT PRIMARY KEY,
            name TEXT UNIQUE,
            description TEXT NOT NULL,
            truncated BOOLEAN NOT NULL DEFAULT 0,
            hypernet_id TEXT REFERENCES hypernet(id),
            base_name TEXT NOT NULL,
            base_sha256 TEXT NOT NULL,
            rank INTEGER NOT NULL,
            alpha REAL NOT NULL,
            targets TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            created TIMESTAMP NOT NULL
        );
        CREATE INDEX adapter_created ON adapter(created);
        CREATE INDEX adapter_sha256 ON adapter(sha256);
        CREATE TABLE adaptertag (
            adapter_id TEXT NOT NULL REFERENCES adapter(id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (adapter_id, tag)
        );
        """,
    ),
    (
        "eval_runs",
        """
        CREATE TABLE evalrun (
            id TEXT PRIMARY KEY,
            adapter_id TEXT REFERENCES adapter(id) ON DELETE CASCADE,
            subject TEXT NOT NULL,
            base_name TEXT NOT NULL,
            base_sha256 TEXT NOT NULL,
            bench TEXT NOT NULL,
            split TEXT NOT NULL,
            n INTEGER NOT NULL,
            metric TEXT NOT NULL,
            value REAL NOT NULL,
            stderr REAL,
            shots INTEGER NOT NULL DEFAULT 0,
            protocol TEXT NOT NULL,
            data_sha256 TEXT NOT NULL,
            "limit" INTEGER,
            dtype TEXT NOT NULL,
            batch_size INTEGER NOT NULL,
            t2l_version TEXT NOT NULL,
            created TIMESTAMP NOT NULL
        );
        CREATE INDEX evalrun_adapter ON evalrun(adapter_id, created)
        """,
    ),
    (
        "hypernet_training_columns",
        """
        ALTER TABLE hypernet ADD COLUMN collection_sha256 TEXT;
        ALTER TABLE hypernet ADD COLUMN steps INTEGER;
        ALTER TABLE hypernet ADD COLUMN final_loss REAL
        """,
    ),
    (
        "publications",
        """
        CREATE TABLE publication (
            id TEXT PRIMARY KEY,
            adapter_id TEXT NOT NULL REFERENCES adapter(id),
            repo_id TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            url TEXT NOT NULL,
            private BOOLEAN NOT NULL,
            created TIMESTAMP NOT NULL
        );
        CREATE INDEX publication_adapter ON publication(adapter_id, created)
        """,
    ),
    (
        "adapter_examples",
        """
        ALTER TABLE adapter ADD COLUMN examples_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE adapter ADD COLUMN examples_sha256 TEXT
        """,
    ),
    (
        "adapter_outputs",
        """
        CREATE TABLE adapteroutput (
            adapter_id TEXT NOT NULL REFERENCES adapter(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            written BOOLEAN NOT NULL DEFAULT 0,
            created TIMESTAMP NOT NULL,
            PRIMARY KEY (adapter_id, path)
        )
        """,
    ),
]
