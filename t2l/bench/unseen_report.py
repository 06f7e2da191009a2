"""Tables, paired differences, the bar and chart of `t2l bench unseen`; T2L against base + description per answer
type."""

import io
import json
import platform
from pathlib import Path

from t2l.bench.unseen import METHODS, METRICS, UnseenSettings
from t2l.files import write_bytes_atomic, write_text_atomic
from t2l.stats import average_cells, mean_stderr, paired_cells

LOWER_IS_BETTER = {"loss"}
CONTROLS = (
    "base + description",
    "T2L, other task's description",
    "T2L, random words",
    "T2L, random characters",
    "T2L, repeated letter",
)  # what T2L must beat by two paired stderrs on loss and ROUGE-L (issue #15)
EXAMPLE_PAIRS = (
    ("T2L, description + 4 examples", "T2L"),
    ("T2L, description + 4 examples", "base + description + 4 examples"),
)
"""(a, b): a minus b item by item, beside T2L's differences; a must beat b by two paired stderrs (issue #28)."""
ANSWER_TYPES = ("word", "label", "number", "rewrite", "span", "translation", "yes/no")  # the suite's, in this order


def _cells(rows: list[dict]) -> dict:
    """method -> task -> metric -> per-item values (the newest row of each cell)."""
    out: dict = {}
    for r in rows:
        out.setdefault(r["method"], {})[r["task"]] = {m: r[m] for m in METRICS}
    return out


def summarize(rows: list[dict]) -> dict:
    """method -> task -> metric -> (mean, stderr), and "average" over the tasks every method has."""

    cells = _cells(rows)
    tasks = sorted(set.intersection(*(set(t) for t in cells.values()))) if cells else []
    table = {}
    for method, by_task in cells.items():
        table[method] = {t: {m: mean_stderr(v[m]) for m in METRICS} for t, v in by_task.items()}
        if tasks:
            table[method]["average"] = {m: average_cells([table[method][t][m] for t in tasks]) for m in METRICS}
    return table


def difference(cells: dict, a: str, b: str, tasks=None) -> dict | None:
    """metric -> (a minus b, paired stderr), item by item within each task, averaged over the tasks both have (of
    `tasks`, when given; stderr sqrt(sum of squares) / tasks); None when they share none."""
    x, y = cells.get(a, {}), cells.get(b, {})
    shared = sorted(set(x) & set(y) & (set(tasks) if tasks is not None else set(x)))
    if not shared:
        return None
    return {
        m: average_cells(paired_cells({t: x[t][m] for t in shared}, {t: y[t][m] for t in shared}, shared))
        for m in METRICS
    }


def paired(rows: list[dict], reference: str = "T2L") -> dict:
    """method -> metric -> (reference minus method, paired stderr), item by item within each task, averaged over
    the tasks both have (stderr sqrt(sum of squares) / tasks)."""
    cells = _cells(rows)
    diffs = {m: difference(cells, reference, m) for m in cells if m != reference}
    return {m: d for m, d in diffs.items() if d is not None}


def example_pairs(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """(a, b) of EXAMPLE_PAIRS -> a minus b, for the pairs both of whose methods have rows."""
    cells = _cells(rows)
    diffs = {pair: difference(cells, *pair) for pair in EXAMPLE_PAIRS}
    return {pair: d for pair, d in diffs.items() if d is not None}


def beats(d: dict) -> bool:
    """Whether a difference (a minus b) favours a by two paired stderrs on both answer loss and ROUGE-L."""
    loss, rouge = d["loss"], d["rouge_l"]
    return 0 < -loss[0] >= 2 * loss[1] and 0 < rouge[0] >= 2 * rouge[1]  # a tie is no win


def verdict(diffs: dict) -> dict[str, bool]:
    """control -> whether T2L beats it by two paired stderrs on both answer loss and ROUGE-L."""
    return {control: beats(diffs[control]) for control in CONTROLS if control in diffs}


def by_type(rows: list[dict], answer_types: dict[str, str], a: str = "T2L", b: str = "base + description") -> dict:
    """answer type -> {"tasks": how many tasks of the type both methods have, a: its mean answer loss over them
    (± stderr), b: its, "difference": a minus b item by item (± paired stderr)}; ANSWER_TYPES' order, then others."""
    cells = _cells(rows)
    shared = set(cells.get(a, {})) & set(cells.get(b, {}))
    kinds = {answer_types[t] for t in shared if t in answer_types}
    out = {}
    for kind in [k for k in ANSWER_TYPES if k in kinds] + sorted(kinds - set(ANSWER_TYPES)):
        tasks = sorted(t for t in shared if answer_types.get(t) == kind)
        diff = difference(cells, a, b, tasks)
        assert diff is not None  # the tasks are ones both methods have
        out[kind] = {
            "tasks": len(tasks),
            "difference": diff["loss"],
            **{m: average_cells([mean_stderr(cells[m][t]["loss"]) for t in tasks]) for m in (a, b)},
        }
    return out


def _methods(table: dict) -> list[str]:
    return [m for m in METHODS if m in table] + sorted(m for m in table if m not in METHODS)


def _fmt(metric: str, cell) -> str:
    if cell is None:
        return "-"
    v, e = cell
    return f"{v:.3f} ± {e:.3f}" if metric == "loss" else f"{100 * v:.1f} ± {100 * e:.1f}"


def _diff_cells(d: dict) -> str:
    return (
        f"{d['loss'][0]:+.3f} ± {d['loss'][1]:.3f} | {100 * d['rouge_l'][0]:+.1f} ± {100 * d['rouge_l'][1]:.1f} "
        f"| {100 * d['exact_match'][0]:+.1f} ± {100 * d['exact_match'][1]:.1f}"
    )


def markdown(rows: list[dict], answer_types: dict[str, str] | None = None) -> str:
    table, diffs = summarize(rows), paired(rows)
    methods = _methods(table)
    lines = [
        "### Averages over tasks",
        "",
        "Answer loss (nats per output token, lower is better), ROUGE-L and normalised exact match (%, higher is "
        "better), ± stderr:",
        "",
        "| method | answer loss | ROUGE-L | exact match |",
        "| --- | ---: | ---: | ---: |",
    ]
    for m in methods:
        avg = table[m].get("average", {})
        lines.append(f"| {m} | " + " | ".join(_fmt(k, avg.get(k)) for k in METRICS) + " |")
    if diffs:
        lines += [
            "",
            "T2L minus each method, item by item (a negative loss difference and a positive ROUGE-L one "
            "favour T2L; two paired stderrs or more is a clear difference):",
            "",
            "| T2L minus | answer loss | ROUGE-L | exact match |",
            "| --- | ---: | ---: | ---: |",
        ]
        for m in methods:
            if m in diffs:
                lines.append(f"| {m} | {_diff_cells(diffs[m])} |")
        bar = verdict(diffs)
        if bar:
            missed = [f"*{c}*" for c, ok in bar.items() if not ok]  # method names hold commas: set them apart
            lines += [
                "",
                "Bar (T2L ahead of every control by two paired stderrs on loss and ROUGE-L): "
                + (
                    "met"
                    if not missed
                    else f"not met: met against {len(bar) - len(missed)} of {len(bar)}, "
                    f"missed against {'; '.join(missed)}"
                )
                + ".",
            ]
    pairs = example_pairs(rows)
    if pairs:
        lines += [
            "",
            "The examples' targets: the adapter from the description and 4 examples against the adapter from "
            "the description alone and against in-context learning with the same examples, item by item:",
            "",
            "| difference | answer loss | ROUGE-L | exact match | two paired stderrs ahead |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        lines += [
            f"| {a} minus {b} | {_diff_cells(d)} | {'yes' if beats(d) else 'no'} |" for (a, b), d in pairs.items()
        ]
    types = by_type(rows, answer_types or {})
    if types:
        lines += [
            "",
            "### Per answer type: T2L against base + description",
            "",
            "Mean answer loss over the type's tasks (± stderr) and T2L minus base + description item by item "
            "(± paired stderr; negative favours T2L):",
            "",
            "| answer type | tasks | T2L | base + description | T2L minus base + description |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {k} | {v['tasks']} | {_fmt('loss', v['T2L'])} | {_fmt('loss', v['base + description'])} | "
            f"{v['difference'][0]:+.3f} ± {v['difference'][1]:.3f} |"
            for k, v in types.items()
        ]
    tasks = sorted({t for m in table.values() for t in m if t != "average"})
    shown = [
        m
        for m in methods
        if m
        in (
            "base",
            "base + description",
            "mt-lora",
            "T2L",
            "T2L, other task's description",
            "T2L, paraphrase",
            "T2L, description + 4 examples",
            "base + description + 4 examples",
        )
    ]
    lines += [
        "",
        "### Per task: ROUGE-L % (answer loss)",
        "",
        "| task | type | " + " | ".join(shown) + " |",
        "| --- | --- |" + " ---: |" * len(shown),
    ]
    for t in tasks:
        cells = []
        for m in shown:
            c = table[m].get(t)
            cells.append("-" if c is None else f"{100 * c['rouge_l'][0]:.0f} ({c['loss'][0]:.2f})")
        lines.append(f"| {t} | {(answer_types or {}).get(t, '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def provenance(settings: UnseenSettings, suite: Path) -> dict:
    import torch
    import transformers

    import t2l
    from t2l.hypernet_files import read_hypernet_info
    from t2l.tasks.collection import read_manifest

    hn = read_hypernet_info(Path(settings.hypernet))
    manifest = read_manifest(suite)
    return {
        "t2l": t2l.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "suite": {"name": manifest.name, "sha256": manifest.sha256, "tasks": len(manifest.tasks)},
        "hypernet": {
            "sha256": hn.sha256,
            "training": {k: hn.training.get(k) for k in ("recipe", "steps", "collection", "collection_sha256")},
        },
        "answer_types": manifest.build.get("answer_types", {}),
    }


def write_report(
    settings: UnseenSettings, rows: list[dict], suite: Path, path: Path, command: str, findings: str = ""
) -> Path:
    """The report of `rows` (run_unseen's: this hypernetwork's and mt-lora's)."""
    meta = provenance(settings, suite)
    lines = [
        "# Unseen tasks: does the adapter follow its description?",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Suite `{meta['suite']['name']}` ({meta['suite']['tasks']} tasks, sha256 "
        f"`{meta['suite']['sha256'][:16]}`), first {settings.limit} items of each; base `{settings.base}`; "
        f"hypernetwork sha256 `{str(meta['hypernet']['sha256'])[:16]}` "
        f"({json.dumps(meta['hypernet']['training'])}).",
        "",
    ]
    if findings:
        lines += [findings.strip(), ""]
    lines += [markdown(rows, meta["answer_types"])]
    chart = bar_chart(rows, Path(path).with_suffix(".png"))
    if chart:
        lines += [f"![unseen-task scores by method]({chart.name})", ""]
    lines += [
        f"Versions: t2l {meta['t2l']}, torch {meta['torch']}, transformers {meta['transformers']}, Python "
        f"{meta['python']}; {meta['machine']}; eval dtype {settings.dtype}, batch {settings.batch_size}.",
        "",
    ]
    return write_text_atomic(Path(path), "\n".join(lines))


def bar_chart(rows: list[dict], path: Path) -> Path | None:
    """Average answer loss and ROUGE-L per method, two panels; None without matplotlib (the `bench` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    table = summarize(rows)
    methods = [m for m in _methods(table) if "average" in table[m]]
    if not methods:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric, label in (
        (axes[0], "loss", "answer loss (lower is better)"),
        (axes[1], "rouge_l", "ROUGE-L % (higher is better)"),
    ):
        scale = 1 if metric == "loss" else 100
        vals = [scale * table[m]["average"][metric][0] for m in methods]
        errs = [scale * table[m]["average"][metric][1] for m in methods]
        ax.barh(range(len(methods)), vals, xerr=errs, capsize=2)
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(label)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    plt.close(fig)
    return write_bytes_atomic(Path(path), png.getvalue())
