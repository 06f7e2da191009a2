"""The results report of `t2l bench paper`: markdown tables per protocol and a bar chart."""

import io
import json
import platform
from pathlib import Path

from t2l.base import DEFAULT_BASE
from t2l.files import write_bytes_atomic, write_text_atomic
from t2l.bench.paper import METHODS, PaperSettings, also_hashes, paired, read_results, reference_row

PAPER_TABLE = (
    "Mistral-7B-Instruct, 10 benchmarks, average accuracy (paper, Table 1): base 55.96, "
    "multi-task LoRA 66.67, T2L 67.02"
)


def _cell(value_stderr) -> str:
    if value_stderr is None:
        return "-"
    v, e = value_stderr
    return f"{100 * v:.1f} ± {100 * e:.1f}"


def _methods(table: dict) -> list[str]:
    return [m for m in METHODS if m in table] + sorted(m for m in table if m not in METHODS)


def tables_markdown(tables: dict, settings: PaperSettings, diffs: dict | None = None) -> str:
    """One table per protocol; `diffs` (from `t2l.bench.paper.paired`) adds the reference row's paired differences
    under each."""
    cols = [*settings.benches, "average"]
    parts = []
    for protocol, table in tables.items():
        metric = "acc (lm-eval log-likelihood)" if protocol == "lm-eval" else "acc (generated letter)"
        parts += [
            f"### Protocol `{protocol}`: {metric}, % ± stderr",
            "",
            "| method | " + " | ".join(cols) + " |",
            "| --- |" + " ---: |" * len(cols),
        ]
        for m in _methods(table):
            parts.append(f"| {m} | " + " | ".join(_cell(table[m].get(c)) for c in cols) + " |")
        parts.append("")
        paired = (diffs or {}).get(protocol)
        if paired:
            reference = reference_row(settings)
            parts += [
                (
                    f"{reference}'s average minus each method's, compared item by item on the same items (points "
                    "± paired stderr; two stderr or more is a clear difference):"
                ),
                "",
                f"| {reference} minus | difference |",
                "| --- | ---: |",
            ]
            parts += [
                f"| {m} | {100 * paired[m][0]:+.1f} ± {100 * paired[m][1]:.1f} |"
                for m in _methods(table)
                if m in paired
            ]
            parts.append("")
    return "\n".join(parts)


def provenance(settings: PaperSettings) -> dict:
    """Versions, training outcomes and data hashes, for the report and for anyone checking it."""
    import torch
    import transformers

    import t2l
    from t2l.train.recipe import load_recipe

    out = Path(settings.out)
    runs = {
        n: json.loads((out / n / "done.json").read_text())
        for n in ("mt-lora", "t2l")
        if (out / n / "done.json").is_file()
    }
    for name, run in runs.items():  # what the run trained with, overrides included
        train = load_recipe(str(out / name / "recipe.yaml")).train
        run.update(batch_size=train.batch_size, lr=train.lr, description_noise=train.description_noise)
    data: dict[str, dict] = {}
    for r in read_results(out / "results.jsonl"):
        data.setdefault(r["bench"], {"sha256": r["data_sha256"], "n": r["n"]})
    return {
        "t2l": t2l.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", CPU only"),
        "training": runs,
        "data": data,
        "also": {label: sha for label, sha in also_hashes(out).items() if label in settings.also},
    }


def write_report(
    tables: dict, settings: PaperSettings, path: Path, command: str, chart: Path | None, findings: str = ""
) -> Path:
    meta = provenance(settings)
    diffs = paired(read_results(Path(settings.out) / "results.jsonl"), settings)
    # the collection (a folder by its name alone) and budget in the title: reports of different runs never share one
    collection = Path(settings.tasks).name if "/" in settings.tasks else settings.tasks
    lines = [
        f"# Results: the paper's zero-shot table at our scale ({collection}, {settings.steps} steps)",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Paper, for scale: {PAPER_TABLE}. Here: "
        + (
            "SmolLM2-135M-Instruct (embedded Q4_1 GGUF, dequantized)"
            if settings.base == DEFAULT_BASE
            else f"base model `{settings.base}`"
        )
        + ", "
        f"{len(settings.benches)} benchmarks, "
        + (f"first {settings.limit} items of each validation set" if settings.limit else "whole validation sets")
        + ".",
        "",
    ]
    if findings:
        lines += [findings.strip(), ""]
    lines += [tables_markdown(tables, settings, diffs)]
    if chart is not None:
        lines += [f"![accuracy by method]({chart.name})", ""]
    batches = {run["batch_size"] for run in meta["training"].values()}
    trained = (
        f"{settings.steps} steps for each of mt-lora and T2L"
        + (" (equal budgets)" if len(batches) <= 1 else " (batch sizes differ: budgets are not equal)")
        + (f", capped at {settings.budget_minutes} min each" if settings.budget_minutes else "")
        if meta["training"]
        else "nothing trained in this folder"
    )
    lines += [
        "## How it was run",
        "",
        f"- training collection `{settings.tasks}` (benchmarks held out by name and 13-gram overlap), {trained}",
        f"- descriptions per bench: {settings.descriptions}; unrelated descriptions drawn from training tasks "
        f"with seed {settings.seed}",
        f"- eval batch size {settings.batch_size}, dtype {settings.dtype}",
        "- stderr: the sample standard error of each bench's accuracy; the average's is "
        "sqrt(sum of squares) / number of benches",
        "",
    ]
    for name, run in meta["training"].items():
        noise = f", description noise {run['description_noise']}" if run["description_noise"] else ""
        lines.append(
            f"- {name}: {run['steps']} steps of batch {run['batch_size']} (peak lr {run['lr']:g}{noise}) in "
            f"{run['minutes']:.1f} min, final training loss "
            f"{run['final_loss']:.3f}"
            + ("" if run["completed"] else " (stopped by the time cap)")
            + f", collection sha256 `{run['collection_sha256'][:16]}`"
        )
    lines += [f"- T2L ({label}): hypernetwork sha256 `{sha[:16]}`" for label, sha in meta["also"].items()]
    lines += ["", "| bench | items | data sha256 |", "| --- | ---: | --- |"]
    lines += [f"| {b} | {d['n']} | `{d['sha256'][:16]}` |" for b, d in sorted(meta["data"].items())]
    lines += [
        "",
        f"Versions: t2l {meta['t2l']}, torch {meta['torch']}, transformers {meta['transformers']}, "
        f"Python {meta['python']}; {meta['machine']}.",
        "",
    ]
    return write_text_atomic(Path(path), "\n".join(lines))


def bar_chart(tables: dict, settings: PaperSettings, path: Path) -> Path | None:
    """Grouped bars (benches and the average) per method, one panel per protocol. Needs matplotlib (the `bench`
    extra); without it there is no chart and the report says so by leaving it out."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cols = [*settings.benches, "average"]
    fig, axes = plt.subplots(len(tables), 1, figsize=(12, 3.6 * len(tables)), squeeze=False)
    for ax, (protocol, table) in zip(axes[:, 0], tables.items()):
        methods = _methods(table)
        width = 0.8 / max(len(methods), 1)
        for k, m in enumerate(methods):
            xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(cols))]
            vals = [100 * table[m][c][0] if c in table[m] else 0 for c in cols]
            errs = [100 * table[m][c][1] if c in table[m] else 0 for c in cols]
            ax.bar(xs, vals, width, yerr=errs, label=m, capsize=2)
        ax.set_xticks(range(len(cols)), cols)
        ax.set_ylabel("accuracy %")
        ax.set_title(f"protocol {protocol}")
        ax.legend(fontsize=7, ncols=len(methods), loc="upper left")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    plt.close(fig)
    return write_bytes_atomic(Path(path), png.getvalue())
