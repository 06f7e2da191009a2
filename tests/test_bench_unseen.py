"""`t2l bench unseen` on tiny models: every method on every task, resumable, paired against T2L, a report; the
example methods (the same seeded 4 unscored items for each) and the per-answer-type table."""

import json
import random
from dataclasses import replace

import pytest

from t2l.bench.unseen import (
    EXAMPLE_METHODS,
    METHODS,
    T2L_EXAMPLE_METHODS,
    UnseenSettings,
    descriptions,
    example_support,
    random_descriptions,
    run_unseen,
    task_shots,
)
from t2l.bench.unseen_report import by_type, example_pairs, markdown, paired, summarize, verdict
from t2l.errors import T2LError
from t2l.tasks.collection import Manifest, Task, write_collection


def suite(folder):
    tasks = [
        Task(
            "shout",
            ["reply with capital letters only", "answer in upper case", "caps", "a paragraph"],
            [(f"q{i}", "ABC") for i in range(3)],
        ),
        Task(
            "whisper",
            ["reply with lower case letters only", "answer in small letters", "lower", "para"],
            [(f"q{i}", "xyz") for i in range(3)],
        ),
        Task(
            "count",
            ["count the letters", "say how many letters", "count", "paragraph"],
            [("abc", "3"), ("ab", "2"), ("abcd", "4")],
        ),
    ]
    write_collection(
        folder,
        tasks,
        Manifest(
            name="tiny-unseen",
            source="test",
            license="MIT",
            build={"answer_types": {"shout": "rewrite", "whisper": "rewrite", "count": "number"}},
        ),
    )
    return folder


def test_controls_are_as_long_as_the_description_and_other_tasks_are_a_rotation():
    rng = random.Random(0)
    own = "reply with capital letters only"
    r = random_descriptions(own, ["apple", "stone", "river"], rng)
    assert len(r["T2L, random words"].split()) == 5 and set(r["T2L, random words"].split()) <= {
        "apple",
        "stone",
        "river",
    }
    assert len(r["T2L, random characters"]) == len(own) == len(r["T2L, repeated letter"])
    assert len(set(r["T2L, repeated letter"])) == 1
    tasks = [Task(n, [f"do {n}", f"please {n}"], []) for n in "abcde"]
    texts = descriptions(tasks, ["w"], seed=0)
    others = [texts[t]["T2L, other task's description"] for t in "abcde"]
    assert sorted(others) == sorted(f"do {t}" for t in "abcde") and all(
        texts[t]["T2L, other task's description"] != f"do {t}" for t in "abcde"
    )
    assert texts["a"]["T2L, paraphrase"] == "please a"


def test_bench_unseen_runs_every_method_resumes_and_reports(trained_hypernet, tiny_base_dir, tmp_path):
    folder, _ = trained_hypernet
    settings = UnseenSettings(
        out=tmp_path / "run",
        hypernet=str(folder),
        suite=str(suite(tmp_path / "suite")),
        base=str(tiny_base_dir),
        limit=2,
        batch_size=2,
        methods=tuple(m for m in METHODS if m != "mt-lora" and m not in EXAMPLE_METHODS),
    )
    events = []
    rows = run_unseen(settings, lambda kind, payload: events.append(kind))
    assert len(rows) == 9 * 3 and events.count("result") == 27
    row = next(r for r in rows if r["method"] == "T2L" and r["task"] == "shout")
    assert row["n"] == 2 and len(row["loss"]) == len(row["answers"]) == len(row["rouge_l"]) == 2
    assert row["description"] == "reply with capital letters only"
    base = next(r for r in rows if r["method"] == "base" and r["task"] == "shout")
    assert base["loss"] != row["loss"]  # the adapter changes the model
    again = run_unseen(settings)  # a rerun finds every cell done
    assert len(again) == 27 and sum(1 for _ in open(tmp_path / "run" / "results.jsonl")) == 27
    table, diffs = summarize(rows), paired(rows)
    assert set(table["T2L"]) == {"shout", "whisper", "count", "average"}
    gap = table["T2L"]["average"]["loss"][0] - table["base"]["average"]["loss"][0]
    assert abs(diffs["base"]["loss"][0] - gap) < 1e-9  # the paired mean is the difference of the means
    assert set(verdict(diffs)) == {
        "base + description",
        "T2L, other task's description",
        "T2L, random words",
        "T2L, random characters",
        "T2L, repeated letter",
    }
    text = markdown(rows, {"shout": "rewrite"})
    assert "| T2L minus | answer loss | ROUGE-L | exact match |" in text and "| shout | rewrite |" in text
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["limit"] == 2


def test_a_folder_keeps_each_hypernets_rows_and_refuses_other_scoring(trained_hypernet, tiny_base_dir, tmp_path):
    from t2l.hypernet_files import load_hypernet, save_hypernet
    from t2l.errors import T2LError

    folder, _ = trained_hypernet
    hn, info = load_hypernet(folder)
    other = tmp_path / "other-hypernet"  # the same network in bf16: other weights, another sha256
    save_hypernet(
        hn,
        other,
        base=info.base,
        base_spec=info.base_spec,
        encoder=info.encoder,
        encoder_spec=info.encoder_spec,
        pooling=info.pooling,
        dtype="bfloat16",
    )
    settings = UnseenSettings(
        out=tmp_path / "run",
        hypernet=str(folder),
        suite=str(suite(tmp_path / "suite")),
        base=str(tiny_base_dir),
        limit=2,
        batch_size=2,
        methods=("base", "T2L"),
    )
    first = run_unseen(settings)
    events = []
    second = run_unseen(replace(settings, hypernet=str(other)), lambda kind, payload: events.append(payload))
    assert events.count("making 3 adapters") == 1 and sum(1 for e in events if isinstance(e, dict)) == 3
    assert [r for r in second if r["method"] == "base"] == [r for r in first if r["method"] == "base"]
    assert {r["made_by"] for r in second if r["method"] == "T2L"} == {load_hypernet(other)[1].sha256}
    assert len(run_unseen(settings)) == 6  # back to the first: its rows are still there, nothing is scored
    with pytest.raises(T2LError, match="holds rows scored with limit 2; rerun with those settings"):
        run_unseen(replace(settings, limit=3))


def long_suite(folder):
    """Two tasks of 7 items (2 scored with limit 2, 5 to draw examples from) and one of 3 (too few)."""
    tasks = [
        Task(
            "shout", ["reply with capital letters only", "answer in upper case"], [(f"q{i}", f"A{i}") for i in range(7)]
        ),
        Task(
            "whisper",
            ["reply with lower case letters only", "answer in small letters"],
            [(f"w{i}", f"x{i}") for i in range(7)],
        ),
        Task("count", ["count the letters", "say how many letters"], [("abc", "3"), ("ab", "2"), ("a", "1")]),
    ]
    write_collection(
        folder,
        tasks,
        Manifest(
            name="tiny-unseen",
            source="test",
            license="MIT",
            build={"answer_types": {"shout": "rewrite", "whisper": "rewrite", "count": "number"}},
        ),
    )
    return folder, {t.name: t.examples for t in tasks}


def test_the_example_methods_share_unscored_seeded_examples_and_report_by_type(
    trained_hypernet, tiny_base_dir, tmp_path
):
    from conftest import make_examples_hypernet

    from t2l.examples import examples_sha256

    hypernet = make_examples_hypernet(trained_hypernet[0], tmp_path / "examples-hypernet", most=4)
    folder, items = long_suite(tmp_path / "suite")
    settings = UnseenSettings(
        out=tmp_path / "run",
        hypernet=str(hypernet),
        suite=str(folder),
        base=str(tiny_base_dir),
        limit=2,
        batch_size=4,
        methods=("base", "base + description", "T2L") + EXAMPLE_METHODS,
    )
    events = []
    rows = run_unseen(settings, lambda kind, payload: events.append(payload))
    assert any("count" in str(e) and "left out of the example methods" in str(e) for e in events)
    cells = {(r["method"], r["task"]): r for r in rows}
    assert len(rows) == 3 * 3 + 4 * 2 and not any((m, "count") in cells for m in EXAMPLE_METHODS)
    for task in ("shout", "whisper"):
        shots = task_shots(task, items[task], 2, 0)
        assert len(shots) == 4 and not {(s.input, s.output) for s in shots} & set(items[task][:2])  # never scored
        assert {cells[(m, task)]["examples_sha256"] for m in EXAMPLE_METHODS} == {examples_sha256(shots)}
        assert all(cells[(m, task)]["n"] == 2 for m in EXAMPLE_METHODS)
    assert "examples_sha256" not in cells[("T2L", "shout")]
    assert cells[("T2L, 4 examples alone", "shout")]["description"] is None
    for a, b in (
        ("base + description + 4 examples", "base + description"),
        ("base + 4 examples", "base"),
        ("T2L, description + 4 examples", "T2L"),
        ("T2L, 4 examples alone", "T2L, description + 4 examples"),
    ):
        assert cells[(a, "shout")]["loss"] != cells[(b, "shout")]["loss"]  # the examples change what is scored
    again = run_unseen(replace(settings, out=tmp_path / "again"))
    assert {(r["method"], r["task"]): r["examples_sha256"] for r in again if "examples_sha256" in r} == {
        k: r["examples_sha256"] for k, r in cells.items() if "examples_sha256" in r
    }  # a rerun draws the same
    assert task_shots("shout", items["shout"], 2, 1) != task_shots("shout", items["shout"], 2, 0)  # another seed
    assert task_shots("count", items["count"], 2, 0) is None and task_shots("shout", items["shout"], None, 0) is None

    pairs = example_pairs(rows)
    assert set(pairs) == {
        ("T2L, description + 4 examples", "T2L"),
        ("T2L, description + 4 examples", "base + description + 4 examples"),
    }
    types = by_type(rows, {"shout": "rewrite", "whisper": "rewrite", "count": "number"})
    assert list(types) == ["number", "rewrite"] and types["rewrite"]["tasks"] == 2 and types["number"]["tasks"] == 1
    t2l, desc = (sum(cells[(m, "count")]["loss"]) / 2 for m in ("T2L", "base + description"))
    assert abs(types["number"]["difference"][0] - (t2l - desc)) < 1e-9 and abs(types["number"]["T2L"][0] - t2l) < 1e-9
    text = markdown(rows, {"shout": "rewrite", "whisper": "rewrite", "count": "number"})
    assert "| T2L, description + 4 examples minus base + description + 4 examples | " in text
    assert "| T2L, description + 4 examples minus T2L | " in text
    assert "### Per answer type: T2L against base + description" in text
    assert "| rewrite | 2 | " in text and "| number | 1 | " in text


def test_a_description_only_hypernet_leaves_the_t2l_example_rows_out(trained_hypernet, tmp_path):
    notes = []
    settings = UnseenSettings(out=tmp_path / "run", hypernet=str(trained_hypernet[0]))
    kept = example_support(settings, lambda kind, payload: notes.append(payload))
    assert kept.methods == tuple(m for m in METHODS if m not in T2L_EXAMPLE_METHODS)
    assert "base + description + 4 examples" in kept.methods and "reads descriptions only" in notes[0]
    with pytest.raises(T2LError, match="'T2L, 4 examples alone' needs a hypernetwork trained with 4 or more"):
        example_support(
            UnseenSettings(out=tmp_path, hypernet=str(trained_hypernet[0]), methods=("T2L", "T2L, 4 examples alone")),
            print,
        )
    plain = UnseenSettings(out=tmp_path, hypernet=str(trained_hypernet[0]), methods=("T2L", "base + 4 examples"))
    assert example_support(plain, print) is plain


def test_the_bar_names_the_controls_it_misses():
    from t2l.bench.unseen_report import CONTROLS

    t2l = {"loss": [1.0, 1.1, 0.9, 1.0], "rouge_l": [0.5, 0.6, 0.55, 0.52], "exact_match": [1, 0, 1, 0]}
    worse = {"loss": [2.0, 2.2, 1.9, 2.1], "rouge_l": [0.1, 0.2, 0.15, 0.1], "exact_match": [0, 0, 0, 0]}

    def rows(tied: str | None):
        return [{"method": "T2L", "task": "a", **t2l}] + [
            {"method": c, "task": "a", **(t2l if c == tied else worse)} for c in CONTROLS
        ]

    assert "not met: met against 4 of 5, missed against *T2L, random words*." in markdown(rows("T2L, random words"))
    assert "on loss and ROUGE-L): met." in markdown(rows(None))


def test_text_metrics():
    from t2l.eval.text_metrics import exact_match, rouge_l

    assert exact_match("The Answer.", "answer") == 1.0 and exact_match("an answer", "answers") == 0.0
    assert rouge_l("the cat sat on the mat", "the cat on the mat") == 2 * (5 / 6) * 1 / (5 / 6 + 1)
    assert rouge_l("", "x") == 0.0 and rouge_l("Paris!", "paris") == 1.0


def test_cli_runs_a_subset_and_writes_the_report(trained_hypernet, tiny_base_dir, tmp_path):
    from typer.testing import CliRunner

    from t2l_cli.app import app

    folder, _ = trained_hypernet
    args = [
        "bench",
        "unseen",
        "--suite",
        str(suite(tmp_path / "suite")),
        "--hypernet",
        str(folder),
        "--base",
        str(tiny_base_dir),
        "--limit",
        "1",
        "--method",
        "base",
        "--method",
        "T2L",
        "--out",
        str(tmp_path / "run"),
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    report = (tmp_path / "run" / "results.md").read_text()
    assert "Suite `tiny-unseen` (3 tasks" in report and "| T2L minus | answer loss |" in report
    assert "| count | number |" in report and "| count | number |" in r.output  # answer types on screen too
    bad = CliRunner().invoke(app, args[:-2] + ["--method", "T3L", "--out", str(tmp_path / "other")])
    assert bad.exit_code == 1 and "unknown method 'T3L'" in bad.output
