"""The eval verb: benchmark the base model and adapters; scores go to the registry."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from t2l_cli.actions import evaluate as actions
from t2l_cli.actions.evaluate import EvalSettings
from t2l_cli.console import JsonOpt, NamedBars, errors_to_exit, out, print_json, transient_bars, warn

app = typer.Typer()


@app.command("eval")
@errors_to_exit
def eval_(
    refs: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="'base', adapter ids or names, .safetensors files or "
            "PEFT folders (a word that is both a name and a file here is "
            "refused: write ./PATH or the id)."
        ),
    ] = None,
    bench: Annotated[
        str,
        typer.Option(
            help="Benchmarks: arc_easy, arc_challenge, arc, boolq, hellaswag, piqa, "
            "winogrande, openbookqa, all; several with commas."
        ),
    ] = "arc",
    limit: Annotated[Optional[int], typer.Option(help="Only the first N items of each bench.")] = EvalSettings.limit,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = EvalSettings.batch_size,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = EvalSettings.dtype,
    device: Annotated[
        str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")
    ] = EvalSettings.device,
    base: Annotated[Optional[str], typer.Option(help="Base model (default: the adapters' own).")] = None,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Folder of BENCH.jsonl files to use instead.")
    ] = EvalSettings.data_dir,
    from_hub: Annotated[
        bool,
        typer.Option(
            help="Read the benches from their Hugging Face datasets (needs the "
            "`datasets` library and a connection); few-shot examples then come from "
            "the train split, as in lm-eval."
        ),
    ] = EvalSettings.from_hub,
    describe: Annotated[
        bool,
        typer.Option(
            help="Also generate an adapter from each of the bench's own three "
            "descriptions and evaluate it on that bench (zero-shot T2L)."
        ),
    ] = False,
    hypernet: Annotated[str, typer.Option(help="Hypernetwork for --describe.")] = "default",
    output: Annotated[Optional[Path], typer.Option(help="Write results as JSON shaped like lm-eval's.")] = None,
    protocol: Annotated[
        str,
        typer.Option(
            help="lm-eval (log-likelihood, the default) or letter (the T2L authors' generative letter protocol)."
        ),
    ] = EvalSettings.protocol,
    shots: Annotated[
        int,
        typer.Option(
            help="Few-shot examples before each item (lm-eval's formatting; drawn from "
            "DATA_DIR/BENCH.train.jsonl, else from the evaluated split minus the "
            "item)."
        ),
    ] = EvalSettings.shots,
    chat_template: Annotated[
        bool,
        typer.Option(help="Wrap lm-eval prompts in the base model's chat template (lm-eval's --apply_chat_template)."),
    ] = EvalSettings.chat_template,
    json_: JsonOpt = False,
):
    """Evaluate the base model and adapters on benchmarks (lm-eval's prompts and metrics); scores go to the registry."""
    settings = EvalSettings(
        limit=limit,
        batch_size=batch_size,
        dtype=dtype,
        device=device,
        data_dir=data_dir,
        from_hub=from_hub,
        protocol=protocol,
        shots=shots,
        chat_template=chat_template,
    )
    with transient_bars() as progress:
        rows = actions.evaluate(
            refs or [],
            bench,
            settings,
            base=base,
            describe=describe,
            hypernet=hypernet,
            output=output,
            on_progress=NamedBars(progress),
            on_warning=warn,
        )
    if json_:
        print_json(rows)
        return
    table = Table("subject", "bench", "metric", "value", "± stderr", "n", "protocol", box=None)
    for r in rows:
        table.add_row(
            r["subject"],
            r["bench"],
            r["metric"],
            f"{100 * r['value']:.2f}",
            f"{100 * r['stderr']:.2f}" if r["stderr"] == r["stderr"] else "-",
            f"{r['n']}" + (f" (--limit {r['limit']})" if r["limit"] else ""),
            r["protocol"],
        )
    out.print(table)
