"""The `t2l` command through Typer's runner, with an isolated T2L_HOME per test."""

import json
import subprocess
import sys

import pytest

from conftest import t2l


@pytest.fixture
def hn(trained_hypernet):
    return str(trained_hypernet[0])


def test_make_names_after_output_and_registers(hn, tmp_path):
    out = tmp_path / "sent.safetensors"
    t2l("make", "classify sentiment of movie reviews", "-o", out, "--hypernet", hn, "--tag", "demo")
    assert out.is_file()
    rows = json.loads(t2l("ls", "--json").output)
    assert [(r["name"], r["description"], r["tags"], r["rank"]) for r in rows] == [
        ("sent", "classify sentiment of movie reviews", ["demo"], 4)
    ]
    shown = json.loads(t2l("show", "sent", "--json").output)
    assert shown["id"] == rows[0]["id"] and shown["hypernet"]["recipe"] == "sft-test"
    assert rows[0]["outputs"] == shown["outputs"] == [str(out)] and shown["unwritten_outputs"] == []  # where -o wrote
    assert any(line.split()[:1] == ["outputs"] for line in t2l("show", "sent").output.splitlines())
    assert t2l("ls", "-q").output.split() == [rows[0]["id"]]
    assert "sent" in t2l("ls").output
    assert json.loads(t2l("hypernets", "--json").output)[0]["variant"] == "M"


def test_make_reads_and_hashes_each_file_once_and_writes_the_stored_bytes(hn, tmp_path, t2l_home, monkeypatch):
    import shutil
    from pathlib import Path

    from t2l import hashing

    source = tmp_path / "hn"
    shutil.copytree(hn, source)  # files this process has not hashed yet
    reads = []

    def counting_open(path, *args, **kwargs):
        reads.append(Path(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(hashing, "open", counting_open, raising=False)  # what sha256_file reads
    t2l("make", "answer in upper case", "-o", tmp_path / "up.safetensors", "--hypernet", source)
    # the folder given, then its copy in the registry (checked before it is renamed into place); the adapter's
    # bytes are hashed in memory, stored and written to -o without being read back
    assert [p.name for p in reads] == ["hypernet.safetensors"] * 2 and reads[0].parent == source
    stored = json.loads(t2l("show", "up", "--json").output)["file"]
    assert (tmp_path / "up.safetensors").read_bytes() == Path(stored).read_bytes()
    t2l("make", "answer in small letters", "-o", tmp_path / "low", "--hypernet", source)
    assert len(reads) == 2  # a second make in the same process: nothing hashed again
    assert (tmp_path / "low" / "README.md").read_text().count("low") >= 1


def test_make_several_into_a_folder_and_from_file(hn, tmp_path):
    lines = tmp_path / "tasks.txt"
    lines.write_text("answer in upper case\n\nanswer in small letters\n")
    t2l("make", "translate to French", "--from-file", lines, "-o", tmp_path / "batch", "--hypernet", hn)
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == [
        "batch-1.safetensors",
        "batch-2.safetensors",
        "batch-3.safetensors",
    ]
    names = {r["name"]: r["description"] for r in json.loads(t2l("ls", "--json").output)}
    assert names == {
        "batch-1": "translate to French",
        "batch-2": "answer in upper case",
        "batch-3": "answer in small letters",
    }


def test_export_both_forms_and_remove(hn, tmp_path, monkeypatch):
    from registry import Registry
    from t2l import adapter
    from t2l.home import t2l_home

    t2l("make", "answer in upper case", "--hypernet", hn, "--name", "up")
    monkeypatch.setattr(adapter, "read_adapter", None)  # a byte copy: the tensors are never loaded
    t2l("export", "up", tmp_path / "up.safetensors")
    t2l("export", "up", tmp_path / "up-peft")
    reg = Registry(t2l_home())
    stored = reg.adapter_file(reg.get_adapter("up")).read_bytes()
    assert (tmp_path / "up.safetensors").read_bytes() == stored
    assert (tmp_path / "up-peft" / "adapter_model.safetensors").read_bytes() == stored
    assert sorted(p.name for p in (tmp_path / "up-peft").iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    t2l("export", "up", tmp_path / "up.safetensors", code=1)
    t2l("rm", "up")
    assert json.loads(t2l("ls", "--json").output) == []


def test_taken_name_and_existing_output(hn, tmp_path):
    out = tmp_path / "sent.safetensors"
    t2l("make", "classify sentiment", "-o", out, "--hypernet", hn)
    before = out.read_bytes()
    r = t2l("make", "something else", "-o", out, "--hypernet", hn, code=1)
    assert "exists already" in r.output and "--force" in r.output
    assert out.read_bytes() == before and len(json.loads(t2l("ls", "--json").output)) == 1
    t2l("make", "something else", "-o", out, "--hypernet", hn, "--force")
    assert json.loads(t2l("show", "sent", "--json").output)["description"] == "something else"


@pytest.mark.parametrize(
    "args, message",
    [
        (["make", "   "], "empty description"),
        (["make", "x", "--hypernet", "nope"], "no hypernetwork named or with id 'nope'"),
        (["make", "x", "--hypernet", "./missing-dir"], "is not a hypernetwork folder"),
        (["show", "nothing"], "no adapter named or with id 'nothing'"),
        (["rm", "abc"], "no adapter named or with id 'abc'"),
        (["make", "x", "--name", "a/b", "--hypernet", "HN"], "invalid name"),
    ],
)
def test_errors_are_one_line_with_exit_1(hn, args, message):
    args = [hn if a == "HN" else a for a in args]
    r = t2l(*args, code=1)
    assert message in r.output
    assert r.output.count("\n") == 1 and r.output.startswith("error:")
    assert json.loads(t2l("ls", "--json").output) == []


def test_unwritable_output_fails_before_work(hn, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = t2l("make", "x", "-o", blocker / "sub" / "a.safetensors", "--hypernet", hn, code=1)
    assert "not a writable folder" in r.output
    assert json.loads(t2l("ls", "--json").output) == []


def test_listing_commands_do_not_import_torch(t2l_home):
    code = (
        "import sys; from typer.testing import CliRunner; from t2l_cli.app import app; "
        "r = CliRunner().invoke(app, ['ls']); r2 = CliRunner().invoke(app, ['--help']); "
        "assert r.exit_code == 0 and r2.exit_code == 0, r.output; "
        "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tag_rename_and_registry_commands(hn, tmp_path):
    t2l("make", "answer in upper case", "--hypernet", hn, "--name", "up")
    t2l("tag", "up", "demo", "nlp")
    t2l("untag", "up", "nlp")
    t2l("rename", "up", "shout")
    row = json.loads(t2l("show", "shout", "--json").output)
    assert row["tags"] == ["demo"] and [r["id"] for r in json.loads(t2l("ls", "--tag", "demo", "--json").output)] == [
        row["id"]
    ]
    assert json.loads(t2l("registry", "stats", "--json").output)["adapters"] == 1
    t2l("registry", "backup", tmp_path / "b.db")
    t2l("registry", "vacuum")
    assert "missing: 0" in t2l("registry", "verify").output
    from pathlib import Path

    Path(row["file"]).unlink()
    r = t2l("registry", "verify", code=1)
    assert "missing: 1" in r.output
    t2l("registry", "verify", "--fix", "--yes")
    assert json.loads(t2l("ls", "--json").output) == []


def test_diff_compares_descriptions_layers_and_scores(hn, tmp_path):
    import torch

    from t2l.adapter import read_adapter
    from t2l.diff import compare

    t2l("make", "answer in upper case", "--hypernet", hn, "-o", tmp_path / "up.safetensors")
    t2l("make", "answer in small letters", "--hypernet", hn, "-o", tmp_path / "low.safetensors")
    same = compare(tmp_path / "up.safetensors", tmp_path / "up.safetensors")
    assert all(abs(s.cosine - 1) < 1e-4 for s in same.layers) and abs(same.overall_cosine - 1) < 1e-4
    d = json.loads(t2l("diff", "up", "low", "--json", "--plot", tmp_path / "map.png").output)
    assert ("-", "upper") in [tuple(w) for w in d["words"]] and ("+", "small") in [tuple(w) for w in d["words"]]
    assert d["settings"]["rank"] == [4, 4] and -1 <= d["overall_cosine"] <= 1
    # one layer checked against the materialised delta-W
    ta, _, cfg = read_adapter(tmp_path / "up.safetensors")
    tb, _, _ = read_adapter(tmp_path / "low.safetensors")
    key = next(k for k in ta if "layers.1.self_attn.q_proj.lora_A" in k)
    bkey = key.replace("lora_A", "lora_B")
    wa, wb = (t[bkey] @ t[key] for t in (ta, tb))
    want = float(torch.nn.functional.cosine_similarity(wa.flatten(), wb.flatten(), dim=0))
    got = next(s for s in d["layers"] if s["module"] == "q_proj" and s["layer"] == 1)["cosine"]
    assert abs(got - want) < 1e-4
    assert (tmp_path / "map.png").read_bytes().startswith(b"\x89PNG")
    assert "overall similarity" in t2l("diff", "up", "low").output


def test_make_uses_the_shipped_default_hypernet(tmp_path):
    out = tmp_path / "sent.safetensors"
    t2l("make", "classify sentiment of movie reviews", "-o", out)
    hypernets = json.loads(t2l("hypernets", "--json").output)
    assert hypernets[0]["recipe"] == "sft" and hypernets[0]["steps"] > 0
    assert json.loads(t2l("show", "sent", "--json").output)["hypernet"]["id"] == hypernets[0]["id"]


def test_a_missing_default_is_a_clear_error(monkeypatch, tmp_path):
    from t2l import hypernet_files

    monkeypatch.setattr(hypernet_files, "DEFAULT_HYPERNET_DIR", tmp_path / "not-installed")
    r = t2l("make", "x", code=1)
    assert "no default hypernetwork is installed" in r.output


def test_ls_filters_and_sorts_by_a_bench_score_of_one_protocol(hn, tiny_base_dir, arc_dir):
    for name, desc in (("x", "answer in upper case"), ("y", "answer in small letters"), ("z", "count letters")):
        t2l("make", desc, "--hypernet", hn, "--name", name)
    t2l("eval", "x", "y", "--bench", "arc_easy", "--data-dir", arc_dir)
    t2l("eval", "z", "--bench", "arc_easy", "--data-dir", arc_dir, "--protocol", "letter")
    rows = json.loads(t2l("ls", "--bench", "arc_easy", "--sort", "score", "--json").output)
    assert {r["name"] for r in rows} == {"x", "y"}  # z has only a letter-protocol score
    accs = [r["scores"]["arc_easy"]["acc"] for r in rows]
    assert accs == sorted(accs, reverse=True)
    assert all(r["scores"]["arc_easy"]["protocol"] == "lm-eval-0.4/v1" for r in rows)
    letter = json.loads(t2l("ls", "--bench", "arc_easy", "--protocol", "letter", "--json").output)
    assert [r["name"] for r in letter] == ["z"] and letter[0]["scores"]["arc_easy"]["protocol"] == "t2l-paper-letter/v1"
    # the protocol's old name finds the same scores, and so does the version string registries have always stored
    assert json.loads(t2l("ls", "--bench", "arc_easy", "--protocol", "paper", "--json").output) == letter
    assert json.loads(t2l("ls", "--bench", "arc_easy", "--protocol", "t2l-paper-letter/v1", "--json").output) == letter
    assert [r["name"] for r in json.loads(t2l("ls", "--sort", "name", "--json").output)] == ["x", "y", "z"]
    assert "add --bench" in t2l("ls", "--sort", "score", code=1).output
    assert "unknown bench" in t2l("ls", "--bench", "nope", code=1).output


def test_search_by_words(hn):
    t2l("make", "classify sentiment of movie reviews", "--hypernet", hn, "--name", "sent")
    t2l("make", "translate English to French", "--hypernet", hn, "--name", "fr")
    hits = json.loads(t2l("search", "MOVIE sentiment", "--exact", "--json").output)
    assert [h["name"] for h in hits] == ["sent"]
    assert json.loads(t2l("search", "movie french", "--exact", "--json").output) == []


@pytest.mark.integration
def test_search_ranks_by_meaning_with_the_embedded_encoder(hn):
    for name, desc in (
        ("sent", "classify sentiment of movie reviews"),
        ("fr", "translate English to French"),
        ("math", "solve grade school arithmetic word problems"),
    ):
        t2l("make", desc, "--hypernet", hn, "--name", name)
    assert [h["name"] for h in json.loads(t2l("search", "is this film review positive?", "--json").output)][0] == "sent"
    ranked = json.loads(t2l("search", "French translation", "--json", "--limit", "2").output)
    assert ranked[0]["name"] == "fr" and len(ranked) == 2 and ranked[0]["similarity"] > ranked[1]["similarity"]


def test_concurrent_training_runs_get_one_progress_bar_each():
    import io

    from rich.console import Console
    from rich.progress import Progress

    from t2l_cli.console import named_training_events

    progress = Progress(console=Console(file=io.StringIO()))
    on_event = named_training_events(progress)
    for name in ("mt-lora", "t2l"):
        on_event(name, "status", "loading base model")
        on_event(name, "start", {"start": 0, "steps": 3, "out": "run"})
    on_event("t2l", "status", "encoding descriptions")
    assert [t.description for t in progress.tasks] == ["mt-lora", "t2l: encoding descriptions"]
    assert [t.total for t in progress.tasks] == [3, 3]


def test_the_dispatch_table_lists_every_verb_of_every_module():
    """app.VERBS is where a reader finds a verb: a command a verb module defines but the table leaves out would be
    missing from `t2l`, so none may be left out."""
    from t2l_cli import app

    for module in set(app.VERBS.values()):
        defined = {c.name or c.callback.__name__.lower().replace("_", "-") for c in module.app.registered_commands}
        assert defined == {verb for verb, m in app.VERBS.items() if m is module}, module.__name__
