"""The actions of `t2l hypernets` and `t2l registry`: registered hypernetworks shown, imported and restored."""

from collections.abc import Callable
from pathlib import Path

from registry import Registry, RegistryError
from t2l.home import t2l_home
from t2l_cli.actions.common import Busy, idle, open_registry


def hypernet_details(ref: str) -> dict:
    """A hypernetwork's row, where its copy is stored, and how many adapters it made."""
    reg = open_registry()
    row = reg.get_hypernet(ref)
    made = [a for a in reg.list_adapters() if a.hypernet_id == row.id]
    try:
        reg.hypernet_dir(row)
        intact = True
    except RegistryError:
        intact = False
    return row.as_dict() | {"stored": str(reg.hypernets_dir / row.sha256), "intact": intact, "adapters": len(made)}


def restore_hypernets(reg: Registry, ids: list[str], sources: list[Path]) -> tuple[dict[str, Path], list[str]]:
    """Damaged stored hypernetworks restored from the first intact copy among `sources` and the shipped default:
    ({id: source} restored, ids with no intact copy)."""
    from t2l.hypernet_files import DEFAULT_HYPERNET_DIR

    restored, left = {}, []
    for hn_id in ids:
        source = reg.restore_hypernet(hn_id, [*sources, DEFAULT_HYPERNET_DIR])
        if source is None:
            left.append(hn_id)
        else:
            restored[hn_id] = source
    return restored, left


def import_hypernet(
    path: Path, name: str | None, base: str | None, encoder: str | None, busy: Busy = idle
) -> tuple[object, bool]:
    """Convert the Text-to-LoRA authors' hypernetwork at `path` once into a hypernetwork folder and register it (named
    `name`, else after its folder); (the registry row, whether it is new: False when this very conversion, config
    and base included, was registered before, under the row's name). The converted folder is built in a temporary
    folder under the t2l home and copied into the store, so an interrupted import leaves nothing registered."""
    import tempfile

    from t2l.authors import find_release, import_release

    reg = open_registry()
    run = find_release(path).run
    name = name or run.name
    with tempfile.TemporaryDirectory(dir=t2l_home(), prefix=".import-") as tmp:
        with busy(f"converting {path}"):
            info = import_release(path, Path(tmp) / "hypernet", base=base, encoder=encoder)
        known = {row.id for row in reg.list_hypernets()}
        row = reg.add_hypernet(Path(tmp) / "hypernet", name=name, **info.registry_fields())
        return row, row.id not in known


def verify_registry(
    fix: bool,
    hypernet_sources: list[Path],
    on_report: Callable[[dict], None],
    confirm: Callable[[str], bool],
    say: Callable[[str], None],
    on_restore: Callable[[str, Path | None], None],
) -> bool:
    """`t2l registry verify`: every stored file checked (the report goes to `on_report` before anything changes);
    with `fix`, unreferenced files older than ten minutes removed, rows whose file is missing dropped when `confirm`
    agrees, and damaged hypernetworks restored from `hypernet_sources` or the shipped default (`on_restore` gets each
    id with its source, None when there is no intact copy). Whether damage is left: a damaged database, missing or
    corrupted files, damaged hypernetworks (unreferenced files are garbage, not damage)."""
    reg = open_registry()
    report = reg.verify()
    on_report(report)
    if fix and (report["orphans"] or report["leftovers"]):
        removed = reg.collect_garbage(report)
        say(f"removed {len(removed)} unreferenced files (younger ones may belong to a write in progress)")
    if fix and report["missing"]:
        if confirm(f"remove {len(report['missing'])} rows whose file is missing?"):
            reg.drop_dangling(report["missing"])
            say(f"removed {len(report['missing'])} rows")
            report = reg.verify()
    if fix and report["hypernets"]:
        restored, left = restore_hypernets(reg, report["hypernets"], hypernet_sources)
        for hn_id, source in restored.items():
            on_restore(hn_id, source)
        for hn_id in left:
            on_restore(hn_id, None)
        report = reg.verify()
    return bool(report["database"] or report["missing"] or report["corrupted"] or report["hypernets"])
