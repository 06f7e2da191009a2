"""Talking to adapters (t2l run, t2l chat, t2l serve): what a conversation talks to, chosen, made, loaded and saved.
The caller holds the registry handle: one per chat, one per server request."""

from dataclasses import dataclass
from pathlib import Path

from registry import Adapter, Registry
from t2l.errors import T2LError
from t2l_cli.actions.common import Warn, adapter_path, base_of, ignore, make_and_store, registered_hypernet


@dataclass
class Chosen:
    """What a conversation talks to: the bare base (no path, nothing made), an adapter file (stored or not), or one
    made just now, held in memory (`made`; stored too unless --no-save)."""

    label: str
    adapter_id: str | None = None
    path: Path | None = None
    made: object = None  # t2l.make.GeneratedAdapter, loaded from memory rather than from `path`
    hypernet_id: str | None = None  # of the hypernetwork that made it, when known

    @property
    def is_base(self) -> bool:
        return self.adapter_id is None and self.path is None and self.made is None


def choose_adapter(reg: Registry, ref: str) -> Chosen:
    """'base', an adapter id, name, file or PEFT folder."""
    if ref == "base":
        return Chosen("base")
    path, adapter_id = adapter_path(reg, ref)
    return chosen_row(reg, reg.get_adapter(adapter_id)) if adapter_id else Chosen(str(path), path=path)


def chosen_row(reg: Registry, row: Adapter) -> Chosen:
    """A registered adapter, its file hash-checked."""
    return Chosen(row.name or row.id[:8], row.id, reg.adapter_file(row), hypernet_id=row.hypernet_id)


class Hypernets:
    """Hypernetworks (with their encoders) loaded once per process, by registry id: a chat or a server makes many
    adapters from the same one."""

    def __init__(self):
        self.loaded: dict[str, object] = {}

    def get(self, reg: Registry, row, base: str | None = None):
        """The AdapterMaker of a registered hypernetwork (`base`: checked against the one it was trained for)."""
        from t2l.make import AdapterMaker

        if row.id not in self.loaded:
            self.loaded[row.id] = AdapterMaker(reg.hypernet_dir(row), base=base)
        return self.loaded[row.id]


def describe_adapter(
    reg: Registry,
    hypernets: Hypernets,
    description: str | None,
    hypernet: str,
    save: bool = True,
    base: str | None = None,
    on_warning: Warn = ignore,
    examples: list = (),
) -> Chosen:
    """An adapter for `description` (and `examples`, t2l.examples.Shot; with examples, the description may be None
    or empty: the examples alone): the newest registered one this hypernetwork made from the same words and the
    same examples (its forward is deterministic, so making it again would give the same bytes), else one made now
    and registered as `t2l make` does, or with `save` False kept in memory only. An adapter made from the words
    alone is never taken for one with examples, nor the other way round: the examples' sha256 is part of the key."""
    from dataclasses import replace

    from t2l.examples import examples_sha256
    from t2l.make import validate_description

    examples = list(examples)
    text = validate_description(description) if description or not examples else ""
    hn_row = registered_hypernet(reg, hypernet)
    label = described_label(text, len(examples))
    sha = examples_sha256(examples) if examples else None
    same = next(
        (
            r
            for r in reg.list_adapters()
            if r.description == text and r.hypernet_id == hn_row.id and r.examples_sha256 == sha
        ),
        None,
    )
    if save and same:
        return replace(chosen_row(reg, same), label=label)
    maker = hypernets.get(reg, hn_row, base)
    texts = [text] if text else []
    if save:
        row, made = make_and_store(reg, maker, hn_row, texts, [None], [], False, on_warning, examples)[0]
        return Chosen(label, row.id, reg.stored_path(row.sha256), made, hn_row.id)  # loaded from memory
    return Chosen(label, made=maker.make(texts, on_warning=on_warning, examples=examples)[0], hypernet_id=hn_row.id)


def described_label(text: str, examples: int) -> str:
    """What a conversation calls an adapter made from a description (and examples): t2l:<description>, with
    ' + N examples' when there are any."""
    shots = f"{examples} example{'s' if examples != 1 else ''}"
    if not examples:
        return f"t2l:{text}"
    return f"t2l:{text} + {shots}" if text else f"t2l:({shots})"


def base_for(chosen: list[Chosen], base: str | None) -> str:
    """The base model to load: `base` when given, else the one the first t2l adapter among `chosen` was made for."""
    if base:
        return base
    made = next((c.made.info.base_spec for c in chosen if c.made is not None), None)
    return made or base_of([c for c in chosen if c.path is not None])


def hypernet_base(reg: Registry, hypernet: str) -> str:
    """The base model spec a hypernetwork was trained for, read from its folder without loading it."""
    from t2l.hypernet_files import read_hypernet_info

    return read_hypernet_info(reg.hypernet_dir(registered_hypernet(reg, hypernet))).base_spec


def hypernet_examples(reg: Registry, hypernet: str) -> int:
    """Most examples a hypernetwork makes an adapter from (0: descriptions only), read without loading it."""
    from t2l.hypernet_files import read_hypernet_info

    return read_hypernet_info(reg.hypernet_dir(registered_hypernet(reg, hypernet))).config.examples


def load_chosen(engine, chosen: Chosen):
    """`chosen`'s weights ready for t2l.chat.Engine.generate; None for the base."""
    if chosen.made is not None:
        return engine.adapter(chosen.made.tensors, chosen.made.info.peft_config(), chosen.made.info, chosen.label)
    if chosen.path is not None:
        return engine.adapter_file(chosen.path, chosen.label)
    return None


def save_chosen(reg: Registry, chosen: Chosen, name: str) -> Chosen:
    """Keep `chosen` under `name`: a registered adapter is renamed, an unregistered one stored with that name."""
    from t2l.adapter import read_info, weights_file

    if chosen.is_base:
        raise T2LError("the conversation has no adapter to save; pick one with /adapter NAME or /describe TEXT")
    if chosen.adapter_id:
        row = reg.rename(chosen.adapter_id, name)
    elif chosen.made is not None:
        row = reg.add_adapter(
            chosen.made.to_bytes(), name=name, hypernet_id=chosen.hypernet_id, **chosen.made.info.registry_fields()
        )
    else:
        info = read_info(chosen.path)
        if info is None:
            raise T2LError(f"{chosen.path} was not made by t2l; the registry keeps only t2l adapters")
        row = reg.add_adapter(weights_file(chosen.path).read_bytes(), name=name, **info.registry_fields())
    return chosen_row(reg, row)
