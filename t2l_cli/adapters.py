"""Verbs on adapters: make, ls, search, show, rm, export, tag, untag, rename, diff."""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from t2l_cli.actions import adapters as actions
from t2l_cli.actions.common import open_registry
from t2l_cli.console import JsonOpt, err, errors_to_exit, out, print_json, short, visible, warn

app = typer.Typer()


@app.command()
@errors_to_exit
def make(
    descriptions: Annotated[Optional[list[str]], typer.Argument(help="Task descriptions, one adapter each.")] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "-o",
            "--output",
            help="Also write the adapter here: "
            "NAME.safetensors (one file), NAME.gguf (llama.cpp, ollama) or a folder (PEFT layout).",
        ),
    ] = None,
    hypernet: Annotated[
        str, typer.Option(help="Hypernetwork: 'default', a hypernetwork folder, or a registered name or id.")
    ] = "default",
    name: Annotated[Optional[str], typer.Option(help="Adapter name (default: the output's stem).")] = None,
    tag: Annotated[Optional[list[str]], typer.Option(help="Tag the adapter (repeatable).")] = None,
    from_file: Annotated[Optional[Path], typer.Option(help="Read descriptions from a file, one per line.")] = None,
    examples: Annotated[
        Optional[Path],
        typer.Option(
            help="Make the adapter from input/output examples too: a "
            'JSONL file of {"input": ..., "output": ...} lines (alone, without a description, '
            "works too). Needs a hypernetwork trained with examples (recipe sft-examples)."
        ),
    ] = None,
    base: Annotated[Optional[str], typer.Option(help="Check the hypernetwork was trained for this base model.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite the output and take the name from an older adapter.")] = False,
    json_: JsonOpt = False,
):
    """Generate LoRA adapters from task descriptions and store them in the registry."""
    made = actions.make_adapters(
        descriptions or [],
        from_file,
        output,
        name,
        hypernet,
        base,
        tag or [],
        force,
        busy=err.status,
        on_warning=warn,
        examples=examples,
    )
    if json_:
        print_json([row.as_dict(tags) | {"output": str(p) if p else None} for row, tags, p in made])
        return
    for row, _, path in made:
        where = f" -> {path}" if path else ""
        out.print(f"{short(row.id)}  {row.name or '-'}{where}")


@app.command("ls")
@errors_to_exit
def ls(
    tag: Annotated[Optional[str], typer.Option(help="Only adapters with this tag.")] = None,
    bench: Annotated[Optional[str], typer.Option(help="Only adapters with a score on this bench.")] = None,
    sort: Annotated[
        str, typer.Option(help="created (newest first), name, or score (best first on --bench).")
    ] = "created",
    protocol: Annotated[
        str,
        typer.Option(help="Show and sort scores of this protocol only: lm-eval, letter, or a stored protocol string."),
    ] = "lm-eval",
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print ids only.")] = False,
    json_: JsonOpt = False,
):
    """List adapters with their latest scores and where they are published."""
    found = actions.list_adapters(tag, bench, sort, protocol)
    rows, scores, tags, pubs = found.rows, found.scores, found.tags, found.published
    if quiet:
        for r in rows:
            out.print(r.id)
    elif json_:
        written = actions.outputs([r.id for r in rows], written=True)
        print_json(
            [
                r.as_dict(tags[r.id])
                | {
                    "outputs": written.get(r.id, []),
                    "scores": {
                        b: {"acc": e.value, "stderr": e.stderr, "n": e.n, "protocol": e.protocol}
                        for b, e in scores[r.id].items()
                    },
                    "published": [p.as_dict() for p in pubs[r.id]],
                }
                for r in rows
            ]
        )
    else:
        table = Table(
            "id", "name", "description", "base", "rank", "tags", f"acc ({found.protocol})", "hub", "created", box=None
        )
        for r in rows:
            desc = visible(r.description if len(r.description) <= 60 else r.description[:57] + "...")
            acc = " ".join(f"{b} {100 * e.value:.1f}" for b, e in sorted(scores[r.id].items()))
            table.add_row(
                short(r.id),
                visible(r.name or ""),
                desc,
                r.base_name,
                str(r.rank),
                ",".join(tags[r.id]),
                acc,
                pubs[r.id][0].repo_id if pubs[r.id] else "",
                r.created.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table)
        for adapter_id, paths in actions.outputs([r.id for r in rows], written=False).items():
            for path in paths:
                err.print(unwritten_note(adapter_id, path))


@app.command()
@errors_to_exit
def search(
    text: Annotated[str, typer.Argument(help="What the adapter should do, in plain words.")],
    limit: Annotated[int, typer.Option(help="Show the best N.")] = 10,
    exact: Annotated[bool, typer.Option(help="Only descriptions or names containing every word (no model).")] = False,
    json_: JsonOpt = False,
):
    """Find adapters by description: ranked by the description encoder's similarity, or by words with --exact."""
    ranked = actions.search_adapters(text, limit, exact, busy=err.status)
    if json_:
        print_json([{"similarity": sim, "id": r.id, "name": r.name, "description": r.description} for sim, r in ranked])
        return
    table = Table("similarity", "id", "name", "description", box=None)
    for sim, r in ranked:
        table.add_row("-" if sim is None else f"{sim:.3f}", short(r.id), visible(r.name or ""), visible(r.description))
    out.print(table)


@app.command()
@errors_to_exit
def show(ref: Annotated[str, typer.Argument(help="Adapter id (or unique prefix) or name.")], json_: JsonOpt = False):
    """Everything known about one adapter."""
    data = actions.adapter_details(ref)
    written = actions.outputs([data["id"]], written=True).get(data["id"], [])
    unwritten = actions.outputs([data["id"]], written=False).get(data["id"], [])
    if json_:
        print_json(data | {"outputs": written, "unwritten_outputs": unwritten})
        return
    table = Table(show_header=False, box=None)
    for key, value in (data | {"outputs": written}).items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else visible(str(value)))
    out.print(table)
    for path in unwritten:
        err.print(unwritten_note(data["id"], path))


def unwritten_note(adapter_id: str, path: str) -> str:
    return (
        f"note: {short(adapter_id)} was made with -o {visible(path)}, which was never written (the make was "
        f"interrupted): run the same make again, or `t2l export {short(adapter_id)} {visible(path)}`"
    )


@app.command()
@errors_to_exit
def rm(refs: Annotated[list[str], typer.Argument(help="Adapter ids (or unique prefixes) or names.")]):
    """Remove adapters from the registry (and their files, when no other adapter shares them)."""
    for row in open_registry().remove_adapters(refs):
        out.print(f"removed {short(row.id)} {row.name or ''}".rstrip())


@app.command()
@errors_to_exit
def export(
    ref: Annotated[str, typer.Argument(help="Adapter id (or unique prefix) or name.")],
    path: Annotated[
        Path,
        typer.Argument(
            help="NAME.safetensors (one file), NAME.gguf (a llama.cpp LoRA for "
            "llama.cpp and ollama) or a folder (PEFT layout)."
        ),
    ],
    force: Annotated[bool, typer.Option(help="Overwrite an existing file or folder.")] = False,
):
    """Copy a stored adapter out of the registry."""
    out.print(str(actions.export(ref, path, force)))


@app.command()
@errors_to_exit
def tag(ref: str, tags: Annotated[list[str], typer.Argument(help="Tags to add.")]):
    """Add tags to an adapter."""
    row = open_registry().tag(ref, tags)
    out.print(f"{short(row.id)} tagged {' '.join(tags)}")


@app.command()
@errors_to_exit
def untag(ref: str, tags: Annotated[list[str], typer.Argument(help="Tags to remove.")]):
    """Remove tags from an adapter."""
    row = open_registry().untag(ref, tags)
    out.print(f"{short(row.id)} untagged {' '.join(tags)}")


@app.command()
@errors_to_exit
def rename(ref: str, name: str):
    """Rename an adapter (names are unique)."""
    row = open_registry().rename(ref, name)
    out.print(f"{short(row.id)} is now {row.name}")


@app.command()
@errors_to_exit
def diff(
    a: Annotated[
        str,
        typer.Argument(
            help="Adapter id, name or path (a word that is both a name and a file here "
            "is refused: write ./PATH or the id)."
        ),
    ],
    b: Annotated[str, typer.Argument(help="Adapter id, name or path.")],
    plot: Annotated[Optional[Path], typer.Option(help="Write a heat map of per-layer similarity (PNG).")] = None,
    json_: JsonOpt = False,
):
    """Compare two adapters: descriptions, settings, per-layer similarity of delta-W, and shared eval scores."""
    from dataclasses import asdict

    result, scores = actions.diff_adapters(a, b, plot)
    if json_:
        print_json(asdict(result) | {"scores": scores})
        return
    out.print(
        " ".join(
            visible(w) if op == " " else f"[red]-{visible(w)}[/red]" if op == "-" else f"[green]+{visible(w)}[/green]"
            for op, w in result.words
        ),
        markup=True,
    )
    table = Table("", "A", "B", box=None)
    for key, (va, vb) in result.settings.items():
        table.add_row(key, str(va), str(vb))
    out.print(table)
    per_module = Table("module", "layers", "mean cosine", "min cosine", "mean |dW| A", "mean |dW| B", box=None)
    for module in sorted({s.module for s in result.layers}):
        rows = [s for s in result.layers if s.module == module]
        per_module.add_row(
            module,
            str(len(rows)),
            f"{sum(r.cosine for r in rows) / len(rows):.3f}",
            f"{min(r.cosine for r in rows):.3f}",
            f"{sum(r.norm_a for r in rows) / len(rows):.4f}",
            f"{sum(r.norm_b for r in rows) / len(rows):.4f}",
        )
    out.print(per_module)
    out.print(f"overall similarity (cosine of all delta-W): {result.overall_cosine:.3f}")
    if scores:
        st = Table("bench", "metric", "protocol", "A", "B", "B - A", box=None)
        for r in scores:
            st.add_row(
                r["bench"],
                r["metric"],
                r["protocol"],
                f"{100 * r['a']:.2f}",
                f"{100 * r['b']:.2f}",
                f"{100 * r['b_minus_a']:+.2f}",
            )
        out.print(st)
