"""`t2l bench paper` end to end on tiny models: both trainings, every method under both protocols, the report."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import TASKS
from typer.testing import CliRunner

from t2l.bench.paper import (
    METHODS,
    PaperSettings,
    paired,
    read_results,
    record_settings,
    reference_row,
    run_paper,
    run_warmup,
    unrelated_descriptions,
)
from t2l.bench.report import bar_chart, write_report
from t2l.errors import T2LError
from t2l.tasks.collection import Manifest, Task, write_collection
from t2l_cli.app import app
from t2l_cli.bench import reproduce_command

TINY = [
    "train.batch_size=4",
    "train.lr=0.003",
    "train.warmup_steps=0",
    "train.max_length=32",
    "run.checkpoint_every=2",
    "data.holdout=1",
    "data.eval_examples=4",
    "lora.rank=2",
]


@pytest.fixture
def tiny_collection(tmp_path):
    tasks = [
        Task(name, descs, [(f"question {i}", answer) for i in range(6)]) for name, (descs, answer) in TASKS.items()
    ]
    tasks += [
        Task("count", ["count the letters"], [("abc", "3"), ("ab", "2"), ("abcd", "4")]),
        Task("echo", ["repeat the input"], [("hi", "hi"), ("yo", "yo")]),
    ]
    write_collection(tmp_path / "collection", tasks, Manifest(name="tiny", source="test", license="MIT"))
    return tmp_path / "collection"


def test_paper_run_trains_evaluates_every_method_and_resumes(
    tiny_collection, tiny_base_dir, tiny_encoder_dir, tmp_path
):
    settings = PaperSettings(
        out=tmp_path / "run",
        base=str(tiny_base_dir),
        encoder=str(tiny_encoder_dir),
        steps=3,
        limit=2,
        benches=("arc_easy", "boolq"),
        tasks=str(tiny_collection),
        batch_size=2,
        overrides={
            "mt-lora": TINY,
            "sft": [*TINY, "hypernet.hidden_dim=16", "hypernet.task_dim=8", "hypernet.pos_dim=4"],
        },
    )
    events = []
    tables = run_paper(settings, lambda kind, payload: events.append(kind))
    assert set(tables) == {"lm-eval", "letter"}
    for table in tables.values():
        assert set(table) == set(METHODS)
        for cells in table.values():
            assert set(cells) == {"arc_easy", "boolq", "average"}
            assert all(0 <= v <= 1 for v, _ in cells.values())
    rows = read_results(settings.out / "results.jsonl")
    assert len(rows) == 2 * 5 * 2 and all(r["n"] == 2 and r["limit"] == 2 for r in rows)
    unrelated = {r["description"] for r in rows if r["method"] == "T2L, unrelated description"}
    descriptions = {d for descs, _ in TASKS.values() for d in descs} | {"count the letters", "repeat the input"}
    assert unrelated <= descriptions
    own = {r["description"] for r in rows if r["method"] == "T2L"}
    assert own == {"answer grade-school science questions", "answer a yes/no question about a passage"}
    for name in ("mt-lora", "t2l"):
        done = json.loads((settings.out / name / "done.json").read_text())
        assert done["steps"] == 3 and done["completed"]
    assert "train" in events and "result" in events
    for r in rows:  # the headline metric item by item, consistent with the stored accuracy
        assert len(r["hits"]) == r["n"] and sum(map(int, r["hits"])) / r["n"] == pytest.approx(r["metrics"]["acc"][0])
    diffs = paired(rows, settings)
    for protocol, table in tables.items():
        assert set(diffs[protocol]) == set(METHODS) - {"T2L"}
        for method, (d, _) in diffs[protocol].items():  # one description per bench: mean of differences
            assert d == pytest.approx(table["T2L"]["average"][0] - table[method]["average"][0])

    again = run_paper(settings, lambda kind, payload: events.append(kind))  # finished work is not redone
    assert again == tables and len(read_results(settings.out / "results.jsonl")) == len(rows)

    chart = bar_chart(tables, settings, tmp_path / "results.png")
    report = write_report(tables, settings, tmp_path / "results.md", "t2l bench paper ...", chart, "**Finding.**")
    text = report.read_text()
    assert "| T2L, unrelated description |" in text and "### Protocol `letter`" in text and "**Finding.**" in text
    assert "| T2L minus |" in text
    assert "mt-lora: 3 steps of batch 4 (peak lr 0.003)" in text and "(equal budgets)" in text
    assert "| arc_easy | 2 |" in text
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # matplotlib comes with the bench extra


def test_paired_differences_are_taken_item_by_item():
    settings = PaperSettings(out=Path("unused"), benches=("arc_easy",), protocols=("lm-eval",), limit=4)
    row = {"bench": "arc_easy", "protocol": "lm-eval", "limit": 4}
    rows = [
        {**row, "method": "T2L", "hits": "1100"},
        {**row, "method": "base", "hits": "1000"},
        {**row, "method": "mt-lora", "hits": "0011"},
        {**row, "method": "old run without hits"},
    ]
    diffs = paired(rows, settings)["lm-eval"]
    assert set(diffs) == {"base", "mt-lora"}
    assert diffs["base"] == pytest.approx((0.25, 0.25))  # differences 0, 1, 0, 0: sd 0.5, / sqrt(4)
    assert diffs["mt-lora"] == pytest.approx((0.0, (4 / 3) ** 0.5 / 2))  # 1, 1, -1, -1: equal averages, noisy
    from_base = paired(rows, replace(settings, reference="base"))["lm-eval"]  # another row as the reference
    assert set(from_base) == {"T2L", "mt-lora"} and from_base["T2L"] == pytest.approx((-0.25, 0.25))


def test_the_reference_must_be_a_row_of_the_run(tiny_base_dir, tmp_path):
    settings = PaperSettings(
        out=tmp_path / "run", base=str(tiny_base_dir), methods=("base",), also={"new": "x"}, reference="T2L (old)"
    )
    with pytest.raises(
        T2LError,
        match=r"--reference 'T2L \(old\)' is not a row of this run; choose from base, "
        r"T2L \(new\)",
    ):
        run_paper(settings)
    assert reference_row(replace(settings, reference=None)) == "T2L (new)"  # without T2L, the first --also row


def test_a_folder_refuses_another_hypernetwork_under_a_label_it_scored(trained_hypernet, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from t2l.hashing import sha256_file

    folder = trained_hypernet[0]
    moved, other = tmp_path / "moved", tmp_path / "other"
    shutil.copytree(folder, moved)
    shutil.copytree(folder, other)
    weights = load_file(other / "hypernet.safetensors")
    save_file({k: v + 1 for k, v in weights.items()}, other / "hypernet.safetensors")  # another hypernetwork:
    config = json.loads((other / "config.json").read_text())  # its config records its own weights' sha256
    config["weights_sha256"] = sha256_file(other / "hypernet.safetensors")
    (other / "config.json").write_text(json.dumps(config))
    settings = PaperSettings(out=tmp_path / "run", methods=("base",), also={"new": str(folder)})
    settings.out.mkdir()
    record_settings(settings)
    record_settings(replace(settings, also={"new": str(moved)}))  # the same weights elsewhere: the same row
    with pytest.raises(T2LError, match="another hypernetwork than the one .* scored as 'T2L \\(new\\)'"):
        record_settings(replace(settings, also={"new": str(other)}))
    record_settings(replace(settings, also={"newer": str(other)}))  # under a new label it is welcome
    recorded = json.loads((settings.out / "settings.json").read_text())["also_sha256"]
    assert set(recorded) == {"new", "newer"} and recorded["new"] != recorded["newer"]


def test_runs_stored_under_the_old_protocol_name_read_as_letter(tmp_path):
    """Run folders written when the letter protocol was called "paper" still resume and summarize."""
    from t2l.bench.paper import summarize

    old = {"method": "base", "bench": "arc_easy", "protocol": "paper", "limit": 4, "metrics": {"acc": [0.5, 0.25]}}
    (tmp_path / "results.jsonl").write_text(json.dumps(old) + "\n")
    rows = read_results(tmp_path / "results.jsonl")
    assert rows[0]["protocol"] == "letter"
    settings = PaperSettings(out=tmp_path, benches=("arc_easy",), protocols=("paper",), limit=4)
    assert settings.protocols == ("letter",)
    assert summarize(rows, settings)["letter"]["base"]["arc_easy"] == (0.5, 0.25)


def test_a_bench_keeps_its_unrelated_descriptions_whatever_else_runs(tiny_collection):
    """Extending a run to more descriptions or benches must not re-pair stored adapters and scores with other texts."""
    one = unrelated_descriptions(PaperSettings(out=Path("unused")), tiny_collection)
    three = unrelated_descriptions(PaperSettings(out=Path("unused"), descriptions=3), tiny_collection)
    subset = unrelated_descriptions(
        PaperSettings(out=Path("unused"), benches=("piqa", "boolq"), descriptions=2), tiny_collection
    )
    assert set(one) == {(b, 0) for b in PaperSettings(out=Path("unused")).benches}
    assert len(three) == 3 * len(one) and {k: three[k] for k in one} == one
    assert set(subset) == {(b, i) for b in ("piqa", "boolq") for i in (0, 1)}
    assert all(three[k] == v for k, v in subset.items())
    assert len(set(three.values())) > 1


def test_short_runs_keep_a_tenth_for_warmup():
    from t2l.train.recipe import load_recipe

    for name in ("sft", "mt-lora"):
        full = load_recipe(name).train
        assert run_warmup(name, full.steps) == full.warmup_steps
        assert run_warmup(name, 160) == min(16, full.warmup_steps)


def test_a_subset_of_methods_trains_and_evaluates_only_what_it_needs(
    tiny_collection, tiny_base_dir, tiny_encoder_dir, tmp_path
):
    settings = PaperSettings(
        out=tmp_path / "run",
        base=str(tiny_base_dir),
        encoder=str(tiny_encoder_dir),
        steps=2,
        limit=2,
        benches=("arc_easy",),
        protocols=("lm-eval",),
        tasks=str(tiny_collection),
        methods=("base", "T2L, unrelated description"),
        overrides={"sft": [*TINY, "hypernet.hidden_dim=16", "hypernet.task_dim=8", "hypernet.pos_dim=4"]},
    )
    tables = run_paper(settings)
    assert set(tables["lm-eval"]) == {"base", "T2L, unrelated description"}
    assert not (settings.out / "mt-lora").exists() and (settings.out / "t2l" / "done.json").is_file()


def test_a_folder_of_base_and_also_rows_reports_what_made_them(
    trained_hypernet, tiny_collection, tiny_base_dir, tmp_path
):
    settings = PaperSettings(
        out=tmp_path / "run",
        base=str(tiny_base_dir),
        limit=2,
        benches=("arc_easy",),
        protocols=("lm-eval",),
        tasks=str(tiny_collection),
        methods=("base",),
        also={"tiny": str(trained_hypernet[0])},
        batch_size=2,
    )
    tables = run_paper(settings)
    assert set(tables["lm-eval"]) == {"base", "T2L (tiny)"}
    text = write_report(tables, settings, tmp_path / "results.md", "t2l bench paper ...", None).read_text()
    sha = json.loads((settings.out / "settings.json").read_text())["also_sha256"]["tiny"]
    assert "nothing trained in this folder" in text and "steps for each of" not in text
    assert (
        text.splitlines()[0] == f"# Results: the paper's zero-shot table at our scale ({tiny_collection.name}, "
        f"{settings.steps} steps)"
    )  # another run's report has another title; no machine path in it
    assert f"- T2L (tiny): hypernetwork sha256 `{sha[:16]}`" in text


def test_bench_paper_command_takes_any_base_and_encoder(tiny_collection, tiny_base_dir, tiny_encoder_dir, tmp_path):
    sft = [*TINY, "hypernet.hidden_dim=16", "hypernet.task_dim=8", "hypernet.pos_dim=4"]
    args = [
        "bench",
        "paper",
        "--out",
        str(tmp_path / "run"),
        "--base",
        str(tiny_base_dir),
        "--encoder",
        str(tiny_encoder_dir),
        "--tasks",
        str(tiny_collection),
        "--steps",
        "2",
        "--limit",
        "2",
        "--benches",
        "arc_easy",
        "--protocols",
        "lm-eval",
        "--method",
        "base",
        "--method",
        "T2L",
        "--report",
        str(tmp_path / "results.md"),
        *[f"--override=sft:{o}" for o in sft],
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    text = (tmp_path / "results.md").read_text()
    assert f"base model `{tiny_base_dir}`" in text and "| T2L |" in text and "t2l: 2 steps of batch 4" in text
    settings = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert settings["base"] == str(tiny_base_dir) and settings["encoder"] == str(tiny_encoder_dir)


def test_bench_paper_errors():
    r = CliRunner().invoke(app, ["bench", "paper", "--benches", "arc_easy,nope"])
    assert r.exit_code == 1 and "unknown bench 'nope'" in r.output
    r = CliRunner().invoke(app, ["bench", "paper", "--override", "train.lr=1"])
    assert r.exit_code == 1 and "sft:key=value" in r.output
    r = CliRunner().invoke(app, ["bench", "paper", "--method", "vibes"])
    assert r.exit_code == 1 and "unknown method 'vibes'" in r.output


def test_a_reports_reproduce_line_carries_no_machine_paths(tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "home" / "repo"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    line = reproduce_command(
        [
            "bench",
            "paper",
            "--out",
            str(work / "runs" / "a"),
            "--also",
            f"new={home}/runs/sft/result",
            "--reference",
            "T2L (new)",
            "--tasks",
            "/data/c",
        ]
    )
    assert line == "t2l bench paper --out runs/a --also new=~/runs/sft/result --reference 'T2L (new)' --tasks /data/c"
    assert str(tmp_path) not in line


@pytest.mark.parametrize("name", ["oracle", "sensitivity", "heldout"])
def test_every_experiment_runs_as_a_module(name):
    """`python -m t2l.bench.NAME` finds its main and everything it imports."""
    import importlib

    assert callable(importlib.import_module(f"t2l.bench.{name}").main)
