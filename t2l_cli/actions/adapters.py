"""The actions of the adapter verbs: make, ls, search, show, export, diff."""

from dataclasses import dataclass
from pathlib import Path

from registry import Adapter, Registry
from t2l.errors import T2LError
from t2l_cli.actions.common import (
    Busy,
    Warn,
    adapter_path,
    card_name,
    idle,
    ignore,
    make_and_store,
    open_registry,
    registered_hypernet,
)


def make_adapters(
    descriptions: list[str],
    from_file: Path | None,
    output: Path | None,
    name: str | None,
    hypernet: str,
    base: str | None,
    tags: list[str],
    force: bool,
    busy: Busy = idle,
    on_warning: Warn = ignore,
    examples: Path | None = None,
) -> list[tuple[Adapter, list[str], Path | None]]:
    """Make and store one adapter per description (each also from the examples in `examples`, a JSONL file; with
    examples and no description, one adapter from the examples alone), each written to its output too when there
    is one; (row, its tags, output) per adapter. Outputs and names are checked before anything is loaded."""
    from t2l.examples import read_examples
    from t2l.export import check_output, write_adapter
    from t2l.make import AdapterMaker, output_plan, read_descriptions, validate_description

    texts = [validate_description(d) for d in descriptions]
    texts += read_descriptions(from_file) if from_file else []
    shots = read_examples(examples) if examples else []
    if not texts and not shots:
        raise T2LError("no description given; pass one or more descriptions, --from-file FILE or --examples FILE")
    plan = output_plan(max(1, len(texts)), output, name)
    reg = open_registry()
    reg.require_writable()
    for (adapter_name, path), text in zip(plan, texts or [""]):
        if path is not None:
            check_output(path, force)
        if adapter_name is not None and not force:
            reg.check_name_free(adapter_name, text)
    with busy("loading hypernetwork and encoder"):
        hn_row = registered_hypernet(reg, hypernet)
        maker = AdapterMaker(reg.hypernet_dir(hn_row), base=base)
    stored = make_and_store(
        reg, maker, hn_row, texts, [n for n, _ in plan], tags, force, on_warning, shots, outputs=[p for _, p in plan]
    )
    for (row, made), (_, path) in zip(stored, plan):
        if path is not None:  # from memory: the bytes just stored, not read back and hashed again
            write_adapter(made.tensors, made.info, path, force, name=card_name(row), data=made.to_bytes())
            reg.output_written(row.id, path)
    tags_of = reg.tags([row.id for row, _ in stored])
    return [(row, tags_of[row.id], path) for (row, _), (_, path) in zip(stored, plan)]


@dataclass
class Listing:
    """Adapters with what `t2l ls` shows beside them."""

    protocol: str  # the stored protocol version the scores are of
    rows: list[Adapter]
    scores: dict  # adapter id -> bench -> its newest acc row
    tags: dict  # adapter id -> tags
    published: dict  # adapter id -> publications, newest first


def list_adapters(tag: str | None, bench: str | None, sort: str, protocol: str) -> Listing:
    from t2l.eval.benches import BENCHES

    if sort not in ("created", "name", "score"):
        raise T2LError(f"unknown sort {sort!r}: use created, name or score")
    if bench is not None and bench not in BENCHES:
        raise T2LError(f"unknown bench {bench!r}; choose from {', '.join(BENCHES)}")
    if sort == "score" and bench is None:
        raise T2LError("--sort score ranks by one bench's score: add --bench B")
    reg = open_registry()
    version = _protocol_version(reg, protocol)
    rows = reg.list_adapters(tag=tag)
    scores = reg.latest_scores([r.id for r in rows], protocol=version)
    if bench is not None:
        rows = [r for r in rows if bench in scores[r.id]]
    if sort == "score":
        rows.sort(key=lambda r: -scores[r.id][bench].value)
    elif sort == "name":
        rows.sort(key=lambda r: (r.name is None, r.name or ""))
    ids = [r.id for r in rows]
    return Listing(version, rows, scores, reg.tags(ids), reg.publications(ids))


def _protocol_version(reg: Registry, protocol: str) -> str:
    """The stored version string of a protocol named by its name (lm-eval, letter) or by a version a stored score
    carries; anything else is refused rather than shown as an empty column."""
    from t2l.eval.benches import PROTOCOLS, protocol_name

    if protocol_name(protocol) in PROTOCOLS:
        return PROTOCOLS[protocol_name(protocol)]
    stored = reg.protocols() | set(PROTOCOLS.values())
    if protocol not in stored:
        raise T2LError(
            f"unknown protocol {protocol!r}: use {' or '.join(PROTOCOLS)}, or a stored protocol version "
            f"({', '.join(sorted(stored))})"
        )
    return protocol


def search_adapters(text: str, limit: int, exact: bool, busy: Busy = idle) -> list[tuple[float | None, Adapter]]:
    """The best `limit` adapters for `text`: by the description encoder's similarity, or (exact) every word present,
    newest first, without a similarity."""
    if limit <= 0:
        raise T2LError(f"--limit must be a positive number of results, not {limit}")
    rows = open_registry().list_adapters()
    if exact:
        from t2l.search import substring_hits

        hits = substring_hits(text, [f"{r.description} {r.name or ''}" for r in rows])
        return [(None, r) for r, hit in zip(rows, hits) if hit][:limit]
    from t2l.search import similarities

    with busy("ranking descriptions"):
        sims = similarities(text, [r.description for r in rows])
    return sorted(zip(sims, rows), key=lambda x: -x[0])[:limit]


def adapter_details(ref: str) -> dict:
    """Everything the registry knows about one adapter: its row, stored file, scores, uploads and hypernetwork."""
    reg = open_registry()
    return details(reg, reg.get_adapter(ref))


def details(reg: Registry, row: Adapter) -> dict:
    """adapter_details of a row."""
    data = row.as_dict(reg.tags([row.id])[row.id])
    data["file"] = str(reg.stored_path(row.sha256))
    data["evals"] = [e.as_dict() for e in reg.evals(row.id)]
    data["published"] = [p.as_dict() for p in reg.publications([row.id])[row.id]]
    if row.hypernet_id:
        hn = reg.get_hypernet(row.hypernet_id)
        data["hypernet"] = {
            "id": hn.id,
            "name": hn.name,
            "variant": hn.variant,
            "recipe": hn.recipe,
            "sha256": hn.sha256,
        }
    return data


def export(ref: str, path: Path, force: bool) -> Path:
    """A stored adapter, hash-checked, copied to `path` as one file or a PEFT folder (an output its make left
    unwritten counts as written then)."""
    reg = open_registry()
    row = reg.get_adapter(ref)
    written = export_row(reg, row, path, force)
    reg.output_written(row.id, path)
    return written


def outputs(adapter_ids: list[str], written: bool) -> dict[str, list[str]]:
    """adapter id -> the `make -o` outputs recorded for it: written, or never written (the make was interrupted)."""
    return open_registry().outputs(adapter_ids, written=written)


def export_row(reg: Registry, row: Adapter, path: Path, force: bool) -> Path:
    """export of a row."""
    from t2l.export import export_adapter

    return export_adapter(reg.adapter_file(row), path, force=force, name=card_name(row))


def diff_adapters(a: str, b: str, plot: Path | None):
    """(t2l.diff's comparison, the scores both have with B minus A) of two adapters (ids, names or paths); the heat
    map of per-layer similarity goes to `plot` when given."""
    from t2l.diff import compare, heatmap_png
    from t2l.files import check_writable

    if plot is not None:
        check_writable(plot, "--plot")
    reg = open_registry()
    (path_a, id_a), (path_b, id_b) = adapter_path(reg, a), adapter_path(reg, b)
    result = compare(path_a, path_b)
    scores = []
    if id_a and id_b:
        la, lb = reg.latest_evals(id_a), reg.latest_evals(id_b)
        scores = [
            {
                "bench": k[0],
                "metric": k[1],
                "protocol": k[2],
                "a": la[k].value,
                "b": lb[k].value,
                "b_minus_a": lb[k].value - la[k].value,
            }
            for k in sorted(la.keys() & lb.keys())
        ]
    if plot is not None:
        heatmap_png(result, plot)
    return result, scores
