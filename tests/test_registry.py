"""The registry on its own: no torch, real SQLite files."""

import hashlib
import multiprocessing as mp
import sqlite3

import pytest

from registry import Registry, RegistryError
from registry.migrations import MIGRATIONS

FIELDS = dict(
    description="classify sentiment",
    base_name="tiny",
    base_sha256="b" * 64,
    rank=4,
    alpha=8.0,
    targets=["q_proj", "v_proj"],
)


def add(reg, data=b"weights", name=None, **kw):
    return reg.add_adapter(data, name=name, **(FIELDS | kw))


def test_add_list_show_remove(tmp_path):
    reg = Registry(tmp_path)
    a = add(reg, b"one", name="sent", tags=["nlp", "demo"])
    b = add(reg, b"two", description="translate to French")
    assert [r.id for r in reg.list_adapters()] == [b.id, a.id]  # newest first
    assert [r.id for r in reg.list_adapters(tag="nlp")] == [a.id]
    assert reg.tags([a.id, b.id]) == {a.id: ["demo", "nlp"], b.id: []}
    assert reg.get_adapter("sent").id == a.id
    assert reg.get_adapter(a.id[:6]).id == a.id
    stored = reg.adapter_file(a)
    assert stored.read_bytes() == b"one" and stored.parent == tmp_path / "adapters"
    assert reg.remove_adapters(["sent"])[0].id == a.id
    assert not stored.exists()
    with pytest.raises(RegistryError, match="no adapter named or with id 'sent'"):
        reg.get_adapter("sent")


def test_same_content_is_stored_once_and_kept_while_referenced(tmp_path):
    reg = Registry(tmp_path)
    a, b = add(reg, b"same"), add(reg, b"same")
    assert a.sha256 == b.sha256 and len(list((tmp_path / "adapters").iterdir())) == 1
    reg.remove_adapters([a.id])
    assert reg.adapter_file(b).read_bytes() == b"same"


def test_ambiguous_prefix_is_an_error(tmp_path):
    reg = Registry(tmp_path)
    ids = [add(reg, bytes([i])).id for i in range(40)]
    common = max("0123456789abcdef", key=lambda c: sum(i.startswith(c) for i in ids))  # 40 ids, 16 digits
    with pytest.raises(RegistryError, match="ambiguous"):
        reg.get_adapter(common)


def test_taken_name_needs_force_which_moves_it(tmp_path):
    reg = Registry(tmp_path)
    old = add(reg, b"1", name="sent")
    with pytest.raises(RegistryError, match="exists already"):
        add(reg, b"2", name="sent")
    assert len(reg.list_adapters()) == 1 and len(list((tmp_path / "adapters").iterdir())) == 1
    new = add(reg, b"2", name="sent", force=True)
    assert reg.get_adapter("sent").id == new.id
    assert reg.get_adapter(old.id).name is None


def test_the_same_bytes_under_their_own_name_are_the_same_adapter(tmp_path):
    """A rerun of an interrupted make: its row is kept (with the new tags), for --force too; no second row."""
    reg = Registry(tmp_path)
    first = add(reg, b"1", name="sent", tags=["a"])
    for force in (False, True):
        again = add(reg, b"1", name="sent", tags=["b"], force=force)
        assert again.id == first.id
    assert len(reg.list_adapters()) == 1 and reg.tags([first.id])[first.id] == ["a", "b"]
    reg.check_name_free("sent", FIELDS["description"])  # may be the same adapter: decided once it is made
    with pytest.raises(RegistryError, match="exists already"):
        reg.check_name_free("sent", "another description")


@pytest.mark.parametrize("bad", ["a/b", "..", "x\x1b[31m", "", "back\\slash"])
def test_bad_names_and_tags_are_refused(tmp_path, bad):
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="invalid"):
        add(reg, name=bad)
    with pytest.raises(RegistryError, match="invalid tag"):
        add(reg, tags=[bad])
    assert reg.list_adapters() == []


def test_corrupted_file_is_detected(tmp_path):
    reg = Registry(tmp_path)
    a = add(reg, b"payload")
    reg.adapter_file(a).write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="corrupted"):
        reg.adapter_file(a)


def test_migrations_are_recorded_and_wal_is_on(tmp_path):
    Registry(tmp_path)
    Registry(tmp_path)  # a second open applies nothing twice
    con = sqlite3.connect(tmp_path / "registry.db")
    assert con.execute("SELECT version, name FROM schema_migrations").fetchall() == [
        (i + 1, name) for i, (name, _) in enumerate(MIGRATIONS)
    ]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path):
    Registry(tmp_path)
    con = sqlite3.connect(tmp_path / "registry.db")
    con.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2030-01-01')")
    con.commit()
    with pytest.raises(RegistryError, match="newer than this t2l"):
        Registry(tmp_path)


def _writer(home, worker, count):
    reg = Registry(home)
    for i in range(count):
        add(reg, f"{worker}-{i}".encode(), name=f"w{worker}-{i}", tags=[f"w{worker}"])


def test_parallel_writers_lose_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(tmp_path, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    reg = Registry(tmp_path)
    rows = reg.list_adapters()
    assert len(rows) == 60
    for r in rows:
        reg.adapter_file(r)  # present, sha256 right


def test_hypernets_are_stored_once_per_weights(tmp_path):
    src = tmp_path / "ckpt"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "hypernet.safetensors").write_bytes(b"w")
    reg = Registry(tmp_path / "home")
    fields = dict(
        variant="M",
        rank=8,
        alpha=16.0,
        targets=["q_proj"],
        base_name="b",
        base_sha256="1" * 64,
        encoder_name="e",
        encoder_sha256="2" * 64,
        recipe="sft",
        config={"a": 1},
    )
    sha = hashlib.sha256(b"w").hexdigest()  # stored under the hash of its weights, checked
    with pytest.raises(RegistryError, match="the hypernetwork is damaged"):
        reg.add_hypernet(src, sha256="f" * 64, **fields)
    assert reg.list_hypernets() == [] and list(reg.hypernets_dir.iterdir()) == []
    h1 = reg.add_hypernet(src, sha256=sha, **fields)
    h2 = reg.add_hypernet(src, sha256=sha, **fields)
    assert h1.id == h2.id and reg.get_hypernet(h1.id[:5]).id == h1.id
    assert (reg.hypernet_dir(h1) / "config.json").read_text() == "{}"
    assert h1.as_dict()["config"] == {"a": 1}


def test_tags_rename_and_upkeep(tmp_path):
    reg = Registry(tmp_path / "home")
    a = add(reg, b"a", name="first", tags=["x"])
    reg.tag("first", ["y", "x"])
    assert reg.tags([a.id])[a.id] == ["x", "y"]
    reg.untag(a.id[:6], ["x"])
    assert reg.tags([a.id])[a.id] == ["y"]
    add(reg, b"b", name="second")
    with pytest.raises(RegistryError, match="exists already"):
        reg.rename("first", "second")
    assert reg.rename("first", "renamed").name == "renamed"
    stats = reg.stats()
    assert stats["adapters"] == 2 and stats["adapter_files"] == 2
    backup = reg.backup(tmp_path / "backup.db")
    assert sqlite3.connect(backup).execute("SELECT count(*) FROM adapter").fetchone()[0] == 2
    reg.vacuum()


def test_verify_finds_missing_corrupted_and_orphans_and_fixes_dangling_rows(tmp_path):
    reg = Registry(tmp_path / "home")
    gone, bad, ok = add(reg, b"gone"), add(reg, b"bad"), add(reg, b"ok")
    reg.adapter_file(gone).unlink()
    reg.adapter_file(bad).write_bytes(b"tampered")
    (reg.adapters_dir / "stray.safetensors").write_bytes(b"?")
    report = reg.verify()
    assert report["missing"] == [gone.id] and report["corrupted"] == [bad.id]
    assert report["orphans"] == [str(reg.adapters_dir / "stray.safetensors")]
    reg.drop_dangling(report["missing"])
    assert {r.id for r in reg.list_adapters()} == {bad.id, ok.id}


def test_garbage_is_collected_only_once_old_enough_for_no_write_to_be_in_flight(tmp_path):
    import os
    import time

    reg = Registry(tmp_path / "home")
    kept = add(reg, b"kept")
    stray, tmp = reg.adapters_dir / "stray.safetensors", reg.adapters_dir / ".x.safetensors.1234.tmp"
    stray.write_bytes(b"?")
    tmp.write_bytes(b"half")
    report = reg.verify()
    assert report["leftovers"] == [str(tmp)] and report["orphans"] == [str(stray)]
    assert reg.collect_garbage() == []  # too young: maybe a write in flight
    old = time.time() - 3600
    for p in (stray, tmp, reg.adapter_file(kept)):
        os.utime(p, (old, old))
    assert sorted(reg.collect_garbage()) == sorted([str(stray), str(tmp)])
    assert reg.adapter_file(kept).exists() and reg.verify() == {
        "database": [],
        "missing": [],
        "corrupted": [],
        "hypernets": [],
        "orphans": [],
        "leftovers": [],
        "unwritten": [],
    }


def test_a_registry_from_the_first_schema_is_migrated_in_place(tmp_path):
    home = tmp_path / "old"
    home.mkdir()
    con = sqlite3.connect(home / "registry.db")
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TIMESTAMP NOT NULL)"
    )
    con.executescript(MIGRATIONS[0][1])
    con.execute("INSERT INTO schema_migrations VALUES (1, 'initial', '2026-01-01')")
    con.execute(
        "INSERT INTO adapter (id, name, description, base_name, base_sha256, rank, alpha, targets, sha256, "
        "size, created) VALUES ('abc123', 'old', 'from v1', 'b', 'x', 8, 16, '[]', 'y', 1, "
        "'2026-01-01 00:00:00')"
    )
    con.commit()
    con.close()
    reg = Registry(home)
    assert reg.get_adapter("old").description == "from v1"
    versions = sqlite3.connect(home / "registry.db").execute("SELECT version FROM schema_migrations").fetchall()
    assert [v for (v,) in versions] == list(range(1, len(MIGRATIONS) + 1))
    reg.add_eval(
        {"acc": (0.5, 0.1)},
        adapter_id="abc123",
        subject="abc123",
        base_name="b",
        base_sha256="x",
        bench="arc_easy",
        split="validation",
        n=10,
        protocol="p",
        data_sha256="d",
        limit=None,
        dtype="float32",
        batch_size=1,
        t2l_version="0",
    )
    assert reg.latest_scores(["abc123"])["abc123"]["arc_easy"].value == 0.5


def test_the_migrations_create_the_columns_the_models_declare(tmp_path):
    """The SQL in migrations.py and the classes in models.py both spell every column; they must agree one by one
    (name, type, NOT NULL, primary key), and on which tables there are."""
    from sqlalchemy.dialects.sqlite import dialect
    from sqlmodel import SQLModel

    import registry.models  # noqa: F401  (declares the tables)

    Registry(tmp_path)
    affinity = {
        "VARCHAR": "TEXT",
        "TEXT": "TEXT",
        "INTEGER": "INTEGER",
        "FLOAT": "REAL",
        "REAL": "REAL",
        "BOOLEAN": "BOOLEAN",
        "DATETIME": "TIMESTAMP",
        "TIMESTAMP": "TIMESTAMP",
    }
    with sqlite3.connect(tmp_path / "registry.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables - {"schema_migrations"} == set(SQLModel.metadata.tables)
        for name, table in SQLModel.metadata.tables.items():
            in_sql = {
                c[1]: (affinity[c[2]], bool(c[3]) or bool(c[5]), bool(c[5]))
                for c in db.execute(f"PRAGMA table_info({name})")
            }
            in_model = {
                c.name: (affinity[c.type.compile(dialect=dialect())], not c.nullable, c.primary_key)
                for c in table.columns
            }
            assert in_sql == in_model, name
