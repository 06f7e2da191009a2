"""The registry: rows in SQLite, files content-addressed under the t2l home."""

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col, select
from sqlmodel import func as sqlfunc

from registry.db import no_room, open_engine, writable
from registry.errors import RegistryError
from registry.models import Adapter, AdapterOutput, AdapterTag, EvalRun, Hypernet, Publication

# plain os/uuid; t2l's package root imports nothing heavy
from t2l.files import copy_tree, folder_atomic, write_bytes_atomic
from t2l.hashing import cached_sha256, sha256_file, wrote_sha256

HYPERNET_WEIGHTS = "hypernet.safetensors"  # t2l.hypernet_files.WEIGHTS: the registry never imports the model code

# path separators; C0 and C1 controls; bidirectional controls (U+061C, U+200E-F, U+202A-E, U+2066-9), which make
# a name print as another (safe<U+202E>gnp.exe shows as safeexe.png)
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LOOKS_LIKE_ID = re.compile(r"[0-9a-f]{1,32}")


def validate_name(value: str) -> str:
    """An adapter name: a label that no id prefix can be mistaken for (`show`/`rm` take both)."""
    validate_label(value, "name")
    if _LOOKS_LIKE_ID.fullmatch(value):
        raise RegistryError(
            f"invalid name {value!r}: it looks like an id (only 0-9 and a-f), so `show` and "
            f"`rm` could mistake it for another one's id; add another character, e.g. "
            f"{value + '-1'!r}"
        )
    return value


def validate_label(value: str, what: str) -> str:
    """Names and tags: no path separators or control characters, so they never become paths or escape codes."""
    if not value or not value.strip() or _BAD_NAME.search(value) or len(value) > 100 or value in (".", ".."):
        raise RegistryError(
            f"invalid {what} {value!r}: use 1-100 characters without '/', '\\', control characters or "
            "bidirectional-text controls (such as U+202E)"
        )
    return value


class Registry:
    def __init__(self, home: Path):
        self.home = Path(home)
        if self.home.exists() and not self.home.is_dir():
            raise RegistryError(f"T2L_HOME {self.home} is a file, not a folder; point T2L_HOME at a folder")
        db = self.home / "registry.db"
        # reading verbs work on a registry that cannot be written (a read-only mount, another user's files)
        self.read_only = self.home.exists() and not writable(db)
        if not self.read_only:
            try:
                for folder in (self.adapters_dir, self.hypernets_dir):
                    folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RegistryError(
                    f"cannot create the registry in {self.home} ({e.strerror}); point T2L_HOME at "
                    "a folder you can write"
                ) from None
        self.engine = open_engine(db, read_only=self.read_only)

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def hypernets_dir(self) -> Path:
        return self.home / "hypernets"

    # -- adapters ---------------------------------------------------------------------------------

    def add_adapter(
        self,
        data: bytes,
        *,
        name: str | None,
        tags: Sequence[str] = (),
        force: bool = False,
        output: Path | None = None,
        **fields,
    ) -> Adapter:
        """Store an adapter file's bytes and its row in one go; `fields` are Adapter columns. `output`: where the
        caller will write the adapter next (`make -o`), recorded in the same commit as not yet written (see
        `output_written`), so an interrupted make is seen.

        A taken name is an error unless `force`, which moves the name to the new adapter, or unless it names these
        very bytes: then the same adapter is being made again (a rerun of an interrupted `make`), and its row, with
        `tags` added, is returned as it is.
        """
        if name is not None:
            validate_name(name)
        tags = sorted({validate_label(t, "tag") for t in tags})
        self.require_writable()
        sha = hashlib.sha256(data).hexdigest()
        path = self.stored_path(sha)
        if not path.exists():
            write_bytes_atomic(path, data, sync=True)
            wrote_sha256(path, sha)
        fields["targets"] = json.dumps(list(fields["targets"]))
        row = Adapter(id=uuid.uuid4().hex, name=name, sha256=sha, size=len(data), **fields)
        try:
            with self._writing() as s:
                if name is not None:
                    taken = s.exec(select(Adapter).where(Adapter.name == name)).first()
                    if taken and taken.sha256 == sha:
                        have = {t.tag for t in s.exec(select(AdapterTag).where(AdapterTag.adapter_id == taken.id))}
                        s.add_all(AdapterTag(adapter_id=taken.id, tag=t) for t in tags if t not in have)
                        self._record_output(s, taken.id, output)
                        return taken
                    if taken and not force:
                        raise self._name_taken(name, taken.id)
                    if taken:
                        taken.name = None
                        s.add(taken)
                        s.flush()
                s.add(row)
                s.flush()
                s.add_all(AdapterTag(adapter_id=row.id, tag=t) for t in tags)
                self._record_output(s, row.id, output)
            return row
        except BaseException:
            self._drop_file_if_unused(sha)
            raise

    @staticmethod
    def _record_output(s: Session, adapter_id: str, output: Path | None) -> None:
        if output is not None:
            path = str(Path(output).absolute())
            if s.get(AdapterOutput, (adapter_id, path)) is None:
                s.add(AdapterOutput(adapter_id=adapter_id, path=path))

    def output_written(self, adapter_id: str, output: Path) -> None:
        """The output recorded with an adapter (`add_adapter(output=...)`) is written now. Writes only when one is
        pending, so exporting from a read-only registry still works."""
        key = (adapter_id, str(Path(output).absolute()))
        with self._session() as s:
            row = s.get(AdapterOutput, key)
            if row is None or row.written:
                return
        with self._writing() as s:
            row = s.get(AdapterOutput, key)
            if row is not None:
                row.written = True
                s.add(row)

    def outputs(self, adapter_ids: list[str] | None = None, *, written: bool = True) -> dict[str, list[str]]:
        """adapter id -> the `make -o` outputs recorded for it, oldest first: those written, or with `written` False
        those never written (a make killed after its commit)."""
        out: dict[str, list[str]] = {}
        with self._session() as s:
            q = select(AdapterOutput).where(AdapterOutput.written == written)
            if adapter_ids is not None:
                q = q.where(col(AdapterOutput.adapter_id).in_(adapter_ids))
            for row in s.exec(q.order_by(col(AdapterOutput.created))):
                out.setdefault(row.adapter_id, []).append(row.path)
        return out

    def list_adapters(self, tag: str | None = None) -> list[Adapter]:
        with self._session() as s:
            q = select(Adapter).order_by(col(Adapter.created).desc(), col(Adapter.id))
            if tag is not None:
                q = q.join(AdapterTag).where(AdapterTag.tag == tag)
            return list(s.exec(q))

    def tags(self, adapter_ids: list[str]) -> dict[str, list[str]]:
        with self._session() as s:
            rows = s.exec(select(AdapterTag).where(col(AdapterTag.adapter_id).in_(adapter_ids)))
            out: dict[str, list[str]] = {i: [] for i in adapter_ids}
            for r in rows:
                out[r.adapter_id].append(r.tag)
            return {k: sorted(v) for k, v in out.items()}

    def get_adapter(self, ref: str) -> Adapter:
        return self._resolve(Adapter, ref, "adapter", "t2l ls")

    def stored_path(self, sha256: str) -> Path:
        """Where the adapter file of this sha256 is kept (whether or not it is there: see `adapter_file`)."""
        return self.adapters_dir / f"{sha256}.safetensors"

    def adapter_file(self, adapter: Adapter) -> Path:
        """The stored file, checked against the sha256 recorded when it was added."""
        path = self.stored_path(adapter.sha256)
        if not path.exists():
            raise RegistryError(
                f"the file of adapter {adapter.id[:8]} is missing ({path}); remove it with "
                f"`t2l rm {adapter.id[:8]}` and make it again"
            )
        if sha256_file(path) != adapter.sha256:
            raise RegistryError(
                f"the file of adapter {adapter.id[:8]} is corrupted (sha256 mismatch: {path}); "
                f"remove it with `t2l rm {adapter.id[:8]}` and make it again"
            )
        return path

    def remove_adapters(self, refs: list[str]) -> list[Adapter]:
        rows = [self.get_adapter(r) for r in refs]
        with self._writing() as s:
            self._delete_rows(s, [row.id for row in rows])
        for row in rows:
            self._drop_file_if_unused(row.sha256)
        return rows

    def tag(self, ref: str, tags: list[str]) -> Adapter:
        row = self.get_adapter(ref)
        wanted = {validate_label(t, "tag") for t in tags}
        with self._writing() as s:
            have = {t.tag for t in s.exec(select(AdapterTag).where(AdapterTag.adapter_id == row.id))}
            s.add_all(AdapterTag(adapter_id=row.id, tag=t) for t in sorted(wanted - have))
        return row

    def untag(self, ref: str, tags: list[str]) -> Adapter:
        row = self.get_adapter(ref)
        with self._writing() as s:
            for t in s.exec(select(AdapterTag).where(AdapterTag.adapter_id == row.id, col(AdapterTag.tag).in_(tags))):
                s.delete(t)
        return row

    def rename(self, ref: str, name: str) -> Adapter:
        row = self.get_adapter(ref)
        validate_name(name)
        with self._writing() as s:
            taken = s.exec(select(Adapter).where(Adapter.name == name, Adapter.id != row.id)).first()
            if taken:
                raise RegistryError(f"an adapter named {name!r} exists already ({taken.id[:8]}); choose another name")
            fresh = s.get(Adapter, row.id)
            assert fresh is not None  # row was read above
            fresh.name = name
            s.add(fresh)
        return self.get_adapter(row.id)

    # -- upkeep -------------------------------------------------------------------------------------

    def stats(self) -> dict:
        with self._session() as s:
            count = lambda table: s.exec(select(sqlfunc.count()).select_from(table)).one()  # noqa: E731
            counts = {"adapters": count(Adapter), "hypernetworks": count(Hypernet), "eval_rows": count(EvalRun)}
        files = list(self.adapters_dir.glob("*.safetensors"))
        return counts | {
            "adapter_files": len(files),
            "adapter_bytes": sum(f.stat().st_size for f in files),
            "database_bytes": (self.home / "registry.db").stat().st_size,
            "path": str(self.home),
        }

    def vacuum(self) -> None:
        self.require_writable()
        with self.engine.connect() as conn:
            conn.exec_driver_sql("COMMIT")  # VACUUM cannot run inside the transaction the begin hook opened
            conn.exec_driver_sql("VACUUM")

    def backup(self, dest: Path) -> Path:
        """A consistent copy of the database (VACUUM INTO), safe while others write."""
        dest = Path(dest)
        if dest.exists():
            raise RegistryError(f"{dest} exists already; choose a new file for the backup")
        folder = dest.parent
        if not folder.is_dir():
            raise RegistryError(
                f"cannot write the backup {dest}: the folder {folder} does not exist; create it "
                f"(mkdir -p {folder}) or choose another path"
            )
        if not os.access(folder, os.W_OK):
            raise RegistryError(
                f"cannot write the backup {dest}: the folder {folder} is not writable; choose another path"
            )
        with self.engine.connect() as conn:
            conn.exec_driver_sql("COMMIT")
            conn.exec_driver_sql("VACUUM INTO ?", (str(dest),))
        return dest

    def verify(self) -> dict:
        """Rows whose file is missing or corrupted (errors); files no row refers to (orphans: complete files of an add
        that was interrupted or removed, harmless like git's unreachable objects), temporary files of interrupted
        writes (leftovers) and `make -o` outputs never written (unwritten: the make was killed after its commit;
        running it again writes them)."""
        missing, corrupted = [], []
        for row in self.list_adapters():
            path = self.stored_path(row.sha256)
            if not path.exists():
                missing.append(row.id)
            elif sha256_file(path) != row.sha256:
                corrupted.append(row.id)
        with self._session() as s:
            known = set(s.exec(select(Adapter.sha256)))
        files = list(self.adapters_dir.iterdir())
        # a write killed before its rename leaves a temporary file; it was never part of the registry
        leftovers = sorted(str(p) for p in files if p.name.startswith(".") and p.name.endswith(".tmp"))
        orphans = sorted(str(p) for p in files if p.stem not in known and str(p) not in leftovers)
        with self.engine.connect() as conn:
            problems = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check")]
        database = [] if problems == ["ok"] else problems
        unwritten = [{"id": i, "path": p} for i, paths in self.outputs(written=False).items() for p in paths]
        return {
            "database": database,
            "missing": missing,
            "corrupted": corrupted,
            "hypernets": self.hypernet_damage(),
            "orphans": orphans,
            "leftovers": leftovers,
            "unwritten": unwritten,
        }

    def collect_garbage(self, report: dict | None = None, min_age_s: float = 600) -> list[str]:
        """Delete orphan and leftover files of a `verify` report (a fresh one if none is given; verifying hashes every
        file) once they are `min_age_s` old: a younger one may belong to an add still in flight in another process
        (file written, row not yet committed)."""
        self.require_writable()
        report = report if report is not None else self.verify()
        removed = []
        for p in map(Path, report["orphans"] + report["leftovers"]):
            if p.exists() and time.time() - p.stat().st_mtime >= min_age_s:
                p.unlink(missing_ok=True)
                removed.append(str(p))
        return removed

    def drop_dangling(self, ids: list[str]) -> None:
        """Remove rows whose files are gone (after `verify`), with their tags and scores."""
        with self._writing() as s:
            self._delete_rows(s, ids)

    # -- evaluation runs ----------------------------------------------------------------------------

    def add_eval(self, metrics: dict[str, tuple[float, float | None]], **fields) -> list[EvalRun]:
        """All metrics of one finished benchmark run, in one transaction (an unfinished run leaves nothing)."""
        rows = [
            EvalRun(id=uuid.uuid4().hex, metric=m, value=v, stderr=None if e is None or e != e else e, **fields)
            for m, (v, e) in metrics.items()
        ]
        with self._writing() as s:
            s.add_all(rows)
        return rows

    def evals(self, subject: str | None = None) -> list[EvalRun]:
        """Runs, newest first; of one subject (adapter id or "base") when given."""
        with self._session() as s:
            q = select(EvalRun).order_by(col(EvalRun.created).desc(), col(EvalRun.bench), col(EvalRun.metric))
            if subject is not None:
                q = q.where(EvalRun.subject == subject)
            return list(s.exec(q))

    def latest_evals(self, subject: str) -> dict[tuple[str, str, str], EvalRun]:
        """(bench, metric, protocol) -> the newest run of one subject (adapter id or "base")."""
        latest: dict[tuple[str, str, str], EvalRun] = {}
        for e in self.evals(subject):  # newest first
            latest.setdefault((e.bench, e.metric, e.protocol), e)
        return latest

    def protocols(self) -> set[str]:
        """Every protocol version a stored score was made under."""
        with self._session() as s:
            return set(s.exec(select(EvalRun.protocol).distinct()))

    def latest_scores(
        self, adapter_ids: list[str], metric: str = "acc", protocol: str | None = None
    ) -> dict[str, dict[str, EvalRun]]:
        """adapter id -> bench -> its newest `metric` row (under `protocol` only, when given: scores of different
        protocols are not comparable)."""
        out: dict[str, dict[str, EvalRun]] = {i: {} for i in adapter_ids}
        with self._session() as s:
            q = (
                select(EvalRun)
                .where(col(EvalRun.adapter_id).in_(adapter_ids), EvalRun.metric == metric)
                .order_by(col(EvalRun.created).desc())
            )
            if protocol is not None:
                q = q.where(EvalRun.protocol == protocol)
            for row in s.exec(q):
                assert row.adapter_id is not None  # the query asked for these ids
                out[row.adapter_id].setdefault(row.bench, row)
        return out

    # -- publications -------------------------------------------------------------------------------

    def add_publication(
        self, adapter_id: str, *, repo_id: str, commit_sha: str, url: str, private: bool
    ) -> Publication:
        row = Publication(
            id=uuid.uuid4().hex, adapter_id=adapter_id, repo_id=repo_id, commit_sha=commit_sha, url=url, private=private
        )
        with self._writing() as s:
            s.add(row)
        return row

    def publications(self, adapter_ids: list[str]) -> dict[str, list[Publication]]:
        """adapter id -> its uploads, newest first."""
        out: dict[str, list[Publication]] = {i: [] for i in adapter_ids}
        with self._session() as s:
            q = (
                select(Publication)
                .where(col(Publication.adapter_id).in_(adapter_ids))
                .order_by(col(Publication.created).desc())
            )
            for row in s.exec(q):
                out[row.adapter_id].append(row)
        return out

    # -- hypernetworks ----------------------------------------------------------------------------

    def add_hypernet(self, folder: Path, *, sha256: str, name: str | None = None, **fields) -> Hypernet:
        """Copy a hypernetwork folder into the store (once per sha256 of its weights) and record it. The
        weights are hashed before anything is stored, and their copy before it is renamed into place: a damaged
        folder (weights that are not the ones its config names) is refused, never recorded."""
        if name is not None:
            validate_name(name)
        self._check_weights(Path(folder), sha256, f"the weights in {folder}", cached_sha256)
        existing = self._find_hypernet_sha(sha256)
        if existing:
            return existing
        self.require_writable()
        dest = self.hypernets_dir / sha256
        if not dest.exists():
            try:
                self._store_hypernet(Path(folder), sha256)
            except OSError:
                if not dest.exists():  # else another process stored the same hypernetwork first
                    raise
        fields["targets"] = json.dumps(list(fields["targets"]))
        fields["config"] = json.dumps(fields["config"], sort_keys=True)
        row = Hypernet(id=uuid.uuid4().hex, name=name, sha256=sha256, **fields)
        try:
            with self._writing() as s:
                s.add(row)
            return row
        except IntegrityError:
            # another process recorded the same hypernetwork (or took the name) meanwhile
            existing = self._find_hypernet_sha(sha256)
            if existing:
                return existing
            raise RegistryError(f"a hypernetwork named {name!r} exists already; choose another name") from None

    def _store_hypernet(self, folder: Path, sha256: str, replace: bool = False) -> None:
        with folder_atomic(self.hypernets_dir / sha256, replace=replace) as tmp:
            copy_tree(folder, tmp)
            self._check_weights(tmp, sha256, f"the copy of {folder}")

    @staticmethod
    def _check_weights(folder: Path, sha256: str, what: str, hasher=sha256_file) -> None:
        weights = folder / HYPERNET_WEIGHTS
        if not weights.is_file() or hasher(weights) != sha256:
            raise RegistryError(
                f"{what} ({weights}) are not the ones its config.json names (sha256 "
                f"{sha256[:12]}): the hypernetwork is damaged; use an intact copy, e.g. the one it "
                "came from, or the shipped default (--hypernet default)"
            )

    def hypernet_damage(self) -> list[str]:
        """Ids of hypernetworks whose stored weights are missing or not the ones recorded."""
        damaged = []
        for row in self.list_hypernets():
            weights = self.hypernets_dir / row.sha256 / HYPERNET_WEIGHTS
            if not weights.is_file() or sha256_file(weights) != row.sha256:
                damaged.append(row.id)
        return damaged

    def restore_hypernet(self, ref: str, sources: list[Path]) -> Path | None:
        """Replace the stored copy of a hypernetwork with the first of `sources` that holds its very weights; that
        source, or None when none does."""
        row = self.get_hypernet(ref)
        self.require_writable()
        for source in sources:
            weights = Path(source) / HYPERNET_WEIGHTS
            if weights.is_file() and sha256_file(weights) == row.sha256:
                self._store_hypernet(Path(source), row.sha256, replace=True)
                return Path(source)
        return None

    def remove_hypernet(self, ref: str) -> tuple[Hypernet, int]:
        """Remove a hypernetwork's row and stored copy; its adapters stay (their files record its sha256) and lose
        the link. (the row, how many adapters it had made)."""
        row = self.get_hypernet(ref)
        with self._writing() as s:
            made = list(s.exec(select(Adapter).where(Adapter.hypernet_id == row.id)))
            for adapter in made:
                adapter.hypernet_id = None
                s.add(adapter)
            s.flush()
            s.delete(s.get(Hypernet, row.id))
        shutil.rmtree(self.hypernets_dir / row.sha256, ignore_errors=True)
        return row, len(made)

    def list_hypernets(self) -> list[Hypernet]:
        with self._session() as s:
            return list(s.exec(select(Hypernet).order_by(col(Hypernet.created).desc())))

    def get_hypernet(self, ref: str) -> Hypernet:
        return self._resolve(Hypernet, ref, "hypernetwork", "t2l hypernets")

    def hypernet_dir(self, hypernet: Hypernet) -> Path:
        """The stored copy, its weights checked against the sha256 they were stored under."""
        folder = self.hypernets_dir / hypernet.sha256
        weights = folder / HYPERNET_WEIGHTS
        if not weights.is_file() or cached_sha256(weights) != hypernet.sha256:
            short = hypernet.id[:8]
            raise RegistryError(
                f"the stored copy of hypernetwork {hypernet.name or short} is damaged ({weights}); "
                "restore it with `t2l registry verify --fix` (from the shipped default, or add "
                f"--hypernet-source DIR), or remove it with `t2l hypernets rm {short}`"
            )
        return folder

    # -- helpers ----------------------------------------------------------------------------------

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A session whose block is one transaction, committed at its end. A write SQLite cannot make for want of
        room (a full disk, a quota, a file size limit) rolls back and is a RegistryError saying so: the database is
        as it was, not damaged."""
        self.require_writable()
        try:
            with self._session() as s, s.begin():
                yield s
        except DBAPIError as e:
            room = no_room(self.home / "registry.db", e)
            if room is not None:
                raise room from None
            raise

    def require_writable(self) -> None:
        if self.read_only:
            raise RegistryError(
                f"the registry in {self.home} is read-only; make it writable or point T2L_HOME at "
                "a copy to change it (reading verbs such as `t2l ls` work as it is)"
            )

    @staticmethod
    def _delete_rows(s: Session, ids: list[str]) -> None:
        """Adapter rows with their tags and scores, inside the caller's transaction."""
        for table, column in (
            (AdapterTag, AdapterTag.adapter_id),
            (EvalRun, EvalRun.adapter_id),
            (Publication, Publication.adapter_id),
            (AdapterOutput, AdapterOutput.adapter_id),
            (Adapter, Adapter.id),
        ):
            for row in s.exec(select(table).where(col(column).in_(ids))):
                s.delete(row)

    def _find_hypernet_sha(self, sha256: str) -> Hypernet | None:
        with self._session() as s:
            return s.exec(select(Hypernet).where(Hypernet.sha256 == sha256)).first()

    def _resolve(self, table, ref: str, what: str, listing: str):
        """An exact name, else a unique id prefix."""
        with self._session() as s:
            hit = s.exec(select(table).where(table.name == ref)).first()
            if hit:
                return hit
            if re.fullmatch(r"[0-9a-f]{1,32}", ref):
                hits = list(s.exec(select(table).where(col(table.id).startswith(ref)).limit(6)))
                if len(hits) == 1:
                    return hits[0]
                if hits:
                    shown = ", ".join(h.id[:12] for h in hits[:5])
                    raise RegistryError(f"{what} id {ref!r} is ambiguous ({shown}...); give more characters")
        raise RegistryError(f"no {what} named or with id {ref!r}; see `{listing}`")

    def check_name_free(self, name: str, description: str | None = None) -> None:
        """Refuse a taken name, unless its adapter has `description`: making that again may give the same adapter,
        which keeps the name (see `add_adapter`)."""
        validate_name(name)
        with self._session() as s:
            taken = s.exec(select(Adapter).where(Adapter.name == name)).first()
        if taken and taken.description != description:
            raise self._name_taken(name, taken.id)

    @staticmethod
    def _name_taken(name: str, other_id: str) -> RegistryError:
        return RegistryError(
            f"an adapter named {name!r} exists already ({other_id[:8]}); "
            "choose another name or pass --force to move the name to the new adapter"
        )

    def _drop_file_if_unused(self, sha: str) -> None:
        with self._session() as s:
            used = s.exec(select(Adapter.id).where(Adapter.sha256 == sha)).first()
        if used is None:
            self.stored_path(sha).unlink(missing_ok=True)
