"""The action of `t2l tasks build`."""

from pathlib import Path

from t2l.callbacks import Progress, Status
from t2l.errors import T2LError
from t2l.home import t2l_home


def build_tasks(
    source_kind: str,
    out_dir: Path,
    source: Path | None,
    max_examples: int,
    force: bool,
    on_status: Status,
    on_progress: Progress,
    descriptions: Path | None = None,
):
    """Build a task collection from `source_kind` (sni from a folder, with the paper's descriptions from
    `descriptions`; the built-in training sources, several joined with '+'; or the unseen suite, decontaminated
    against every built-in training collection) into `out_dir`; its manifest."""
    from t2l.tasks.collection import check_rebuild, write_collection

    check_rebuild(out_dir, force)  # before the build, which can take minutes
    if descriptions is not None and source_kind != "sni":
        raise T2LError("--descriptions reads the paper's metadata.yaml files for SNI tasks: use it with --from sni")
    if source_kind == "sni":
        from t2l.tasks.sni import build_sni

        if source is None:
            raise T2LError("--from sni needs --source FOLDER with the task JSON files")
        tasks, manifest = build_sni(
            source, max_examples=max_examples, on_progress=on_progress, descriptions=descriptions, on_status=on_status
        )
    elif source_kind == "unseen":
        from t2l.tasks.unseen import build_unseen, training_tasks

        tasks, manifest = build_unseen(
            max_examples, training=training_tasks(on_status, on_progress), on_progress=on_progress
        )
    else:
        from t2l.tasks.builtin import build_builtin

        tasks, manifest = build_builtin(
            source_kind,
            t2l_home() / "cache",
            wheel=source,
            max_examples=max_examples,
            on_status=on_status,
            on_progress=on_progress,
        )
    write_collection(out_dir, tasks, manifest, force=force)
    return manifest
