"""Training verbs: train (and register the result) and the shipped recipes."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from t2l.errors import T2LError
from t2l_cli.actions import train as actions
from t2l_cli.console import JsonOpt, errors_to_exit, out, print_json, progress_bars, short, training_events

app = typer.Typer()
recipes_app = typer.Typer(help="Shipped training recipes.", no_args_is_help=True)


@app.command()
@errors_to_exit
def train(
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. train.steps=100.")] = None,
    recipe: Annotated[str, typer.Option(help="A shipped recipe (see `t2l recipes ls`) or a YAML file.")] = "sft",
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this folder from its checkpoint.")] = None,
    max_minutes: Annotated[
        Optional[float], typer.Option(help="Stop cleanly after this much training time (same as run.max_minutes=M).")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (same as train.seed=N).")] = None,
    json_: JsonOpt = False,
):
    """Train a hypernetwork (sft) or a LoRA (lora, mt-lora) and register the result."""
    flags = [f"run.max_minutes={max_minutes}"] * (max_minutes is not None) + [f"train.seed={seed}"] * (seed is not None)
    with progress_bars() as progress:
        result, row = actions.train(recipe, [*(overrides or []), *flags], resume, training_events(progress))
    if row is None:
        return  # under torchrun, rank 0 alone registers and reports
    summary = {
        "id": row.id,
        "kind": result.kind,
        "run": str(result.out),
        "steps": result.steps,
        "completed": result.completed,
        "final_loss": result.final_loss,
    }
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
