"""The on-disk task collection format.

    COLLECTION/manifest.json          name, source, license, counts, sha256 per task, excluded tasks with reasons
    COLLECTION/TASK/task.json         {"name", "descriptions": [...], "source", "notes"}
    COLLECTION/TASK/examples.jsonl    one {"input": ..., "output": ...} per line

A collection is written to a temp folder and renamed into place (`t2l.files.folder_atomic`), so a half-built one
never exists.
"""

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from t2l.errors import T2LError
from t2l.files import folder_atomic

FORMAT = "t2l-tasks/1"
MAX_EXAMPLES = 500  # examples a built task keeps unless told (every builder, `t2l tasks build --max-examples`)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Task:
    name: str
    descriptions: list[str]
    examples: list[tuple[str, str]]
    source: str = ""
    notes: str = ""
    origins: list[str] = field(default_factory=list)  # where each description came from, in order


@dataclass
class Manifest:
    name: str
    source: str
    license: str
    tasks: list[dict] = field(default_factory=list)  # name, examples, descriptions, sha256
    excluded: list[dict] = field(default_factory=list)  # name, reason
    sha256: str = ""
    created: str = ""
    format: str = FORMAT
    build: dict = field(default_factory=dict)  # how it was built (options, versions)


def safe_name(name: str) -> str:
    return _SAFE.sub("_", name).strip("._") or "task"


def _task_files(task: Task) -> tuple[str, str]:
    fields = {"name": task.name, "descriptions": task.descriptions, "source": task.source, "notes": task.notes}
    if task.origins:
        fields["description_origins"] = task.origins
    meta = json.dumps(fields, indent=2, ensure_ascii=False)
    rows = "".join(json.dumps({"input": i, "output": o}, ensure_ascii=False) + "\n" for i, o in task.examples)
    return meta, rows


def write_collection(folder: Path, tasks: list[Task], manifest: Manifest, force: bool = False) -> Manifest:
    folder = Path(folder)
    check_rebuild(folder, force)
    if not tasks:
        raise T2LError("no task survived the filters; nothing to write")
    with folder_atomic(folder, replace=True) as tmp:
        manifest.tasks = []
        for task in sorted(tasks, key=lambda t: t.name):
            meta, rows = _task_files(task)
            (tmp / task.name).mkdir()
            (tmp / task.name / "task.json").write_text(meta)
            (tmp / task.name / "examples.jsonl").write_text(rows)
            digest = hashlib.sha256((meta + rows).encode()).hexdigest()
            entry = {
                "name": task.name,
                "examples": len(task.examples),
                "descriptions": len(task.descriptions),
                "sha256": digest,
            }
            if task.origins:  # how many descriptions came from where: the source itself, written, templates
                entry["description_origins"] = dict(Counter(o.split("#")[0].split("/")[0] for o in task.origins))
            manifest.tasks.append(entry)
        manifest.sha256 = hashlib.sha256("".join(t["sha256"] for t in manifest.tasks).encode()).hexdigest()
        manifest.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (tmp / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2, ensure_ascii=False))
    return manifest


def check_rebuild(folder: Path, force: bool) -> None:
    """Refuse to write over `folder` unless it is missing, empty, or (with `force`) a collection holding nothing but
    what a rebuild writes again: --force must never delete a user's own files."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not force:
        raise T2LError(f"{folder} exists already; pass --force to rebuild it or choose another folder")
    if not folder.is_dir():
        raise T2LError(
            f"{folder} is not a folder; --force rebuilds only a task collection, so nothing was deleted: "
            "choose another folder"
        )
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return
    try:
        known = {"manifest.json", *(t["name"] for t in read_manifest(folder).tasks)}
    except (T2LError, TypeError, KeyError):  # no manifest, or one that is not a collection's
        raise T2LError(
            f"{folder} is not a task collection (no valid manifest.json); --force rebuilds only a "
            "collection, so nothing was deleted: choose another folder or empty it"
        ) from None
    others = [name for name in entries if name not in known]
    if others:
        raise T2LError(
            f"{folder} holds {others[0]!r}, which is not part of its collection; --force would delete it, "
            "so nothing was deleted: move it out or choose another folder"
        )


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise T2LError(f"{folder} is not a task collection (no manifest.json); build one with `t2l tasks build`")
    try:
        d = json.loads(path.read_text())
    except ValueError as e:
        raise T2LError(f"{path} is not JSON ({e}); rebuild the collection with `t2l tasks build`") from None
    if not isinstance(d, dict):
        raise T2LError(
            f"{path} holds a JSON {type(d).__name__}, not a manifest; rebuild the collection with `t2l tasks build`"
        )
    if d.get("format") != FORMAT:
        raise T2LError(f"{path} has format {d.get('format')!r}, expected {FORMAT!r}")
    return Manifest(**d)


def read_tasks(folder: Path, names: list[str] | None = None) -> list[Task]:
    """The tasks of a collection (all, or those named), examples included."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    wanted = names if names is not None else [t["name"] for t in manifest.tasks]
    known = {t["name"] for t in manifest.tasks}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise T2LError(f"no task {unknown[0]!r} in {folder}; see `t2l tasks ls {folder}`")
    tasks = []
    for name in wanted:
        meta = json.loads((folder / name / "task.json").read_text())
        with open(folder / name / "examples.jsonl") as f:
            examples = [(r["input"], r["output"]) for r in map(json.loads, f)]
        tasks.append(
            Task(
                meta["name"],
                meta["descriptions"],
                examples,
                meta.get("source", ""),
                meta.get("notes", ""),
                meta.get("description_origins", []),
            )
        )
    return tasks
