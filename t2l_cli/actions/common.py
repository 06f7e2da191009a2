"""What several verbs' actions share: the registry handle, hypernetworks and adapters named as everywhere,
the callbacks' types."""

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from registry import Adapter, Hypernet, Registry, RegistryError
from t2l.callbacks import Warn
from t2l.errors import T2LError
from t2l.home import t2l_home

if TYPE_CHECKING:  # torch's side, imported where used so `t2l ls` starts fast
    from t2l.make import AdapterMaker, GeneratedAdapter

Busy = Callable[[str], AbstractContextManager]  # shows that a long step is under way, e.g. a spinner


def idle(message: str) -> AbstractContextManager:
    return nullcontext()


def ignore(message: str) -> None:
    pass


def open_registry() -> Registry:
    return Registry(t2l_home())


def registered_hypernet(reg: Registry, spec: str):
    """The registry row of a hypernetwork named by `spec`: 'default', a hypernetwork folder (registered on first
    use), or a registered name or id."""
    from t2l.hypernet_files import hypernet_path, read_hypernet_info

    folder = hypernet_path(spec)
    if folder is None:
        return reg.get_hypernet(spec)
    return reg.add_hypernet(folder, **read_hypernet_info(folder).registry_fields())


def make_and_store(
    reg: Registry,
    maker: "AdapterMaker",
    hn_row: Hypernet,
    texts: list[str],
    names: list,
    tags: list[str],
    force: bool,
    on_warning: Warn = ignore,
    examples: list = (),
    outputs: list | None = None,
) -> list[tuple[Adapter, "GeneratedAdapter"]]:
    """Generate adapters for `texts` (from `examples` too) and store each under its name, with the output it is
    written to next (`outputs`, None where none) recorded in the same commit; (its row, the adapter in memory) per
    adapter, in order: what the caller does next needs no file read back."""
    adapters = maker.make(texts, on_warning=on_warning, examples=examples)
    outputs = outputs or [None] * len(adapters)
    return [
        (
            reg.add_adapter(
                made.to_bytes(),
                name=name,
                tags=tags,
                force=force,
                hypernet_id=hn_row.id,
                output=output,
                **made.info.registry_fields(),
            ),
            made,
        )
        for made, name, output in zip(adapters, names, outputs)
    ]


def adapter_path(reg: Registry, ref: str) -> tuple[Path, str | None]:
    """(file or folder, registry id or None) for an adapter named by id, name, path, or Hub repo id (USER/NAME, as
    `t2l publish` uploads it: downloaded, or taken from the Hugging Face cache). Names cannot hold '/', so a repo id
    or a path with a '/' is never a name; a bare word that is both a registered adapter and a file or folder here
    is refused, never silently taken as either."""
    from t2l.locate import hub_snapshot, looks_like_hub_id

    if Path(ref).exists():
        _refuse_ambiguous(reg, ref)
        return Path(ref), None
    if looks_like_hub_id(ref):
        return hub_snapshot(ref, "adapter"), None
    row = reg.get_adapter(ref)
    return reg.adapter_file(row), row.id


def _refuse_ambiguous(reg: Registry, ref: str) -> None:
    if "/" in ref or "\\" in ref:
        return  # a path: names cannot hold either
    try:
        row = reg.get_adapter(ref)
    except RegistryError:
        return
    raise T2LError(
        f"{ref!r} is both a registered adapter and a file or folder here; say which: "
        f"./{ref} for the path, or its id {row.id[:8]} for the registered adapter"
    )


def base_of(subjects) -> str:
    """The base the first t2l adapter among `subjects` was made for; the embedded default when none says."""
    from t2l.adapter import read_info
    from t2l.base import DEFAULT_BASE

    infos = [read_info(s.path) for s in subjects if s.path is not None]
    return next((i.base_spec for i in infos if i is not None), DEFAULT_BASE)


def card_name(row: Adapter) -> str:
    return row.name or f"t2l-{row.id[:8]}"
