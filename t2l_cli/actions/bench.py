"""The actions of `t2l bench paper` and `t2l bench unseen`: run (or continue) an experiment, write its report."""

from pathlib import Path

from t2l_cli.actions.common import adapter_path, open_registry, registered_hypernet


def bench_paper(settings, report: Path | None, findings: Path | None, command: str, on_event):
    """Run (or continue) `t2l bench paper` and write its report and chart; (the tables as markdown with T2L's
    paired differences, the report's path, the chart's path or None without matplotlib)."""
    from t2l.bench.paper import paired, read_results, run_paper
    from t2l.bench.report import bar_chart, tables_markdown, write_report

    tables = run_paper(settings, on_event)
    report = report or settings.out / "results.md"
    chart = bar_chart(tables, settings, report.with_suffix(".png"))
    write_report(tables, settings, report, command, chart, findings.read_text() if findings else "")
    diffs = paired(read_results(settings.out / "results.jsonl"), settings)
    return tables_markdown(tables, settings, diffs), report, chart


def bench_unseen(
    settings, hypernet: str, mt_lora: str | None, report: Path | None, findings: Path | None, command: str, on_event
):
    """Run (or continue) `t2l bench unseen` with a hypernetwork and an mt-lora adapter named as everywhere else
    (registered names or ids, folders, files); (the tables as markdown, the report's path)."""
    from dataclasses import replace

    from t2l.bench.unseen import resolve_suite, run_unseen
    from t2l.bench.unseen_report import markdown, write_report
    from t2l.tasks.collection import read_manifest

    reg = open_registry()
    settings = replace(
        settings,
        hypernet=str(reg.hypernet_dir(registered_hypernet(reg, hypernet))),
        mt_lora=str(adapter_path(reg, mt_lora)[0]) if mt_lora else None,
    )
    rows = run_unseen(settings, on_event)
    report = report or settings.out / "results.md"
    suite = resolve_suite(settings.suite)
    write_report(settings, rows, suite, report, command, findings.read_text() if findings else "")
    return markdown(rows, read_manifest(suite).build.get("answer_types")), report
