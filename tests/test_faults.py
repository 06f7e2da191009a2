"""The registry under parallel writers and under processes killed at the worst moments."""

import hashlib
import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from hubserver import FakeHub

from registry import Registry
from conftest import t2l

HERE = Path(__file__).parent
ROOT = HERE.parent


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}


def killed(target: str, n: int, *args) -> subprocess.CompletedProcess:
    """Run `t2l ARGS` in a subprocess that SIGKILLs itself on the n-th call of `target`."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "killed.py"), target, str(n), *map(str, args)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return proc


def assert_consistent(reg: Registry) -> dict:
    """verify exits 0; every file at a final name holds exactly the bytes its name promises (no half file)."""
    report = json.loads(t2l("registry", "verify", "--json").output)
    assert report["missing"] == [] and report["corrupted"] == []
    for f in reg.adapters_dir.glob("*.safetensors"):
        assert hashlib.sha256(f.read_bytes()).hexdigest() == f.stem
    return report


@pytest.mark.slow
def test_eight_processes_making_fifty_adapters_each(trained_hypernet, tmp_path):
    hn = trained_hypernet[0]
    t2l("make", "warm up", "--hypernet", hn)  # registers the hypernet once, as a first use would
    procs = []
    for p in range(8):
        descs = tmp_path / f"d{p}.txt"
        descs.write_text("".join(f"task {p}-{i}: answer in style {i % 7}\n" for i in range(50)))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "t2l_cli",
                    "make",
                    "--from-file",
                    str(descs),
                    "--hypernet",
                    str(hn),
                    "--tag",
                    f"p{p}",
                ],
                env=env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr
        assert "locked" not in stderr
    reg = Registry(Path(os.environ["T2L_HOME"]))
    rows = reg.list_adapters()
    assert len(rows) == 401
    descriptions = {r.description for r in rows}
    assert all(f"task {p}-{i}: answer in style {i % 7}" in descriptions for p in range(8) for i in range(50))
    assert all(len(reg.list_adapters(tag=f"p{p}")) == 50 for p in range(8))
    report = assert_consistent(reg)
    assert report["orphans"] == [] and report["leftovers"] == []


@pytest.mark.slow
def test_make_killed_while_writing_or_committing_leaves_no_row_and_no_half_file(trained_hypernet):
    hn = trained_hypernet[0]
    t2l("make", "first", "--hypernet", hn)
    reg = Registry(Path(os.environ["T2L_HOME"]))
    # after the bytes are written to the temporary file, before it is renamed into place
    killed("os:fsync", 1, "make", "second", "--hypernet", hn)
    report = assert_consistent(reg)
    assert [r.description for r in reg.list_adapters()] == ["first"] and len(report["leftovers"]) == 1
    # after the file is in place, while its row's transaction commits
    killed("sqlalchemy.orm.session:SessionTransaction.commit", 1, "make", "third", "--hypernet", hn)
    report = assert_consistent(reg)
    assert [r.description for r in reg.list_adapters()] == ["first"] and len(report["orphans"]) == 1
    t2l("make", "third", "--hypernet", hn)  # the same adapter again: the orphan is its file, now referenced
    assert assert_consistent(reg)["orphans"] == []


@pytest.mark.slow
def test_eval_killed_in_its_second_bench_keeps_the_first_and_nothing_of_the_second(tiny_base_dir, arc_dir):
    reg = Registry(Path(os.environ["T2L_HOME"]))  # created and migrated: the only commits left are the scores'
    # each bench's scores are one transaction, whose commit passes SessionTransaction.commit twice: the third call
    # is the second bench's commit
    killed(
        "sqlalchemy.orm.session:SessionTransaction.commit",
        3,
        "eval",
        "base",
        "--bench",
        "arc_easy,arc_challenge",
        "--data-dir",
        arc_dir,
        "--base",
        tiny_base_dir,
    )
    runs = reg.evals("base")
    assert {(e.bench, e.metric) for e in runs} == {("arc_easy", "acc"), ("arc_easy", "acc_norm")}
    assert_consistent(reg)


@pytest.mark.slow
def test_publish_killed_during_the_upload_records_nothing(trained_hypernet, tmp_path):
    t2l("make", "answer in upper case", "--hypernet", trained_hypernet[0], "--name", "up")
    reg = Registry(Path(os.environ["T2L_HOME"]))
    with FakeHub("hf_tok_faults") as hub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "t2l_cli", "publish", "up", "--yes"],
            env=env() | {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_tok_faults", "HF_HUB_OFFLINE": "0"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        hub.before_commit = lambda: os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL
    assert reg.publications([reg.get_adapter("up").id])[reg.get_adapter("up").id] == []
    assert json.loads(t2l("ls", "--json").output)[0]["published"] == []
    assert_consistent(reg)


@pytest.mark.slow
@pytest.mark.parametrize(
    "target, n",
    [
        ("os:fsync", 1),  # writing the stored file, before it is renamed into place
        ("sqlalchemy.orm.session:SessionTransaction.commit", 1),  # the stored file in place, the row committing
        ("t2l.export:write_adapter", 1),  # the row committed, the -o file not yet written
    ],
)
def test_make_with_output_killed_at_each_point_is_finished_by_running_it_again(target, n, trained_hypernet, tmp_path):
    hn = trained_hypernet[0]
    t2l("make", "warm up", "--hypernet", hn)  # registers the hypernet: the next commit is the adapter's row
    out = tmp_path / "sent.safetensors"
    command = ["make", "classify sentiment", "-o", out, "--hypernet", hn, "--tag", "demo"]
    killed(target, n, *command)
    assert not out.exists()
    t2l(*command)  # the same command again finishes the job: same adapter, the name kept, the file written
    reg = Registry(Path(os.environ["T2L_HOME"]))
    named = [r for r in reg.list_adapters() if r.name == "sent"]
    assert len(named) == 1 and len(reg.list_adapters()) == 2
    assert out.read_bytes() == reg.adapter_file(named[0]).read_bytes()
    assert reg.tags([named[0].id])[named[0].id] == ["demo"]
    assert assert_consistent(reg)["orphans"] == []
    t2l(*command, code=1)  # done: now the output exists


def test_make_into_a_folder_named_like_a_file_fails_before_any_work(trained_hypernet, tmp_path):
    hn = trained_hypernet[0]
    folder = tmp_path / "taken.safetensors"
    folder.mkdir()
    for force in ([], ["--force"]):
        r = t2l("make", "x", "-o", folder, "--hypernet", hn, *force, code=1)
        assert r.output.startswith("error: ") and "is a folder" in r.output and r.output.count("\n") == 1
    assert json.loads(t2l("ls", "--json").output) == []


def _stored_weights(reg: Registry) -> Path:
    [folder] = list(reg.hypernets_dir.iterdir())
    return folder / "hypernet.safetensors"


def test_a_damaged_hypernet_copy_is_refused_before_anything_is_registered(trained_hypernet, tmp_path):
    import shutil

    bad = tmp_path / "bad-copy"
    shutil.copytree(trained_hypernet[0], bad)
    (bad / "hypernet.safetensors").write_bytes((bad / "hypernet.safetensors").read_bytes()[:1000])
    for _ in range(2):  # in an empty home, and in one that holds the intact original already
        r = t2l("make", "x", "--hypernet", bad, code=1)
        assert r.output.startswith("error: the weights in") and "damaged" in r.output and r.output.count("\n") == 1
        assert json.loads(t2l("ls", "--json").output) == [] or _ == 1
        t2l("make", "y", "--hypernet", trained_hypernet[0])  # the original works, and is what is stored
    assert len(json.loads(t2l("hypernets", "--json").output)) == 1
    assert assert_consistent(Registry(Path(os.environ["T2L_HOME"])))["hypernets"] == []


def test_verify_finds_a_damaged_stored_hypernet_and_fix_restores_it_from_an_intact_copy(trained_hypernet):
    hn = trained_hypernet[0]
    t2l("make", "x", "--hypernet", hn)
    reg = Registry(Path(os.environ["T2L_HOME"]))
    weights = _stored_weights(reg)
    weights.write_bytes(weights.read_bytes()[:1000])
    [row] = reg.list_hypernets()
    r = t2l("make", "y", "--hypernet", hn, code=1)
    assert "t2l registry verify --fix" in r.output and f"t2l hypernets rm {row.id[:8]}" in r.output
    assert json.loads(t2l("registry", "verify", "--json", code=1).output)["hypernets"] == [row.id]
    r = t2l("registry", "verify", "--fix", "--yes", code=1)  # not the shipped default's weights: no known copy
    assert "no intact copy" in r.output and "--hypernet-source" in r.output
    r = t2l("registry", "verify", "--fix", "--yes", "--hypernet-source", hn)
    assert f"restored hypernetwork {row.id[:8]} from {hn}" in r.output
    assert weights.read_bytes() == (hn / "hypernet.safetensors").read_bytes()
    t2l("make", "y", "--hypernet", hn)
    assert json.loads(t2l("hypernets", "show", row.id[:8], "--json").output)["intact"] is True


def test_fix_restores_the_shipped_default_by_itself():
    t2l("make", "answer in upper case")
    weights = _stored_weights(Registry(Path(os.environ["T2L_HOME"])))
    weights.write_bytes(b"not weights")
    t2l("make", "again", code=1)
    assert "restored hypernetwork" in t2l("registry", "verify", "--fix", "--yes").output
    t2l("make", "again")


def test_hypernets_show_and_rm(trained_hypernet):
    t2l("make", "x", "--hypernet", trained_hypernet[0], "--name", "ex")
    [row] = json.loads(t2l("hypernets", "--json").output)
    shown = json.loads(t2l("hypernets", "show", row["id"][:6], "--json").output)
    assert shown["sha256"] == row["sha256"] and shown["adapters"] == 1 and shown["intact"] is True
    assert row["sha256"][:12] in t2l("hypernets", "show", row["id"][:6]).output
    assert "1 adapters stay" in t2l("hypernets", "rm", row["id"][:6]).output
    assert json.loads(t2l("hypernets", "--json").output) == []
    assert not (Registry(Path(os.environ["T2L_HOME"])).hypernets_dir / row["sha256"]).exists()
    assert json.loads(t2l("show", "ex", "--json").output)["hypernet_id"] is None
    assert "no hypernetwork named or with id" in t2l("hypernets", "show", row["id"][:6], code=1).output


# -- issue 26: faults, round two ----------------------------------------------------------------------------------


def one_line(*args, code=1, input=None) -> str:
    """The one 'error: ...' line `t2l ARGS` prints (progress bars may leave blank lines), exit `code`."""
    result = t2l(*args, code=code, input=input)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


NOT_UTF8 = "caf\udce9"  # how Python hands over the argument `caf\xe9` (latin-1 bytes) from argv


@pytest.mark.parametrize(
    "args, what",
    [
        (["make", NOT_UTF8], "the description"),
        (["run", "base", NOT_UTF8], "the prompt"),
        (["run", "base", "hi", "--system", NOT_UTF8], "--system"),
        (["run", "--describe", NOT_UTF8, "hi"], "the description"),
        (["chat", "base", "--system", NOT_UTF8], "--system"),
    ],
)
def test_case_1_bytes_that_are_not_utf8_in_argv_are_one_line(args, what, tmp_path):
    message = one_line(*args, "--base", tmp_path / "no-such-base") if args[0] != "make" else one_line(*args)
    assert message.startswith(f"error: {what} is not UTF-8 text (byte 0xe9 at character 4)")
    assert json.loads(t2l("ls", "--json").output) == []


def test_case_1_a_prompt_on_stdin_that_is_not_utf8_is_one_line(tmp_path):
    result = t2l("run", "base", "-", "--base", tmp_path / "no-such-base", code=1, input=b"caf\xe9\n")
    assert result.output.startswith("error: the prompt on stdin is not UTF-8 text (byte 0xe9 at byte 4)")


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1, 10**30])
def test_case_3_a_seed_beyond_64_bits_names_the_option(seed, tmp_path):
    message = one_line("run", "base", "hi", "--seed", seed, "--base", tmp_path / "no-such-base")
    assert message.startswith(f"error: --seed {seed} does not fit in 64 bits")


def test_case_4_only_t2ls_own_errors_read_as_input_errors():
    import typer

    from t2l.errors import T2LError
    from t2l_cli.console import errors_to_exit
    from typer.testing import CliRunner

    app = typer.Typer()

    @app.command()
    @errors_to_exit
    def parse(text: str):
        if text == "ours":
            raise T2LError("a problem the user can fix; the fix")
        ["X", "Y"].index(text)  # a bug: an exception nobody meant the user to see

    runner = CliRunner()
    ours = runner.invoke(app, ["ours"])
    assert (ours.exit_code, ours.output) == (1, "error: a problem the user can fix; the fix\n")
    bug = runner.invoke(app, ["Z"])
    assert bug.exit_code == 1 and bug.output.count("\n") == 1
    assert bug.output.startswith("error: a bug in t2l, not in your input: ValueError at test_faults.py:")
    assert "'Z' is not in list" in bug.output and "please report it to t2l's issue tracker" in bug.output
    assert runner.invoke(app, []).exit_code == 2  # a usage error stays Typer's


@pytest.mark.parametrize(
    "args, text",
    [
        (["run", "base", "hi", "--temperature", -1], "temperature must be between 0 and 2"),
        (["run", "base", "hi", "--top-p", 0], "top_p must be above 0"),
        (["chat", "base", "--temperature", 3], "temperature must be between 0 and 2"),
        (["eval", "base", "--dtype", "float16"], "use float32 or bfloat16"),
    ],
)
def test_case_17_generation_settings_are_refused_before_the_model_loads(args, text, tmp_path):
    # a base that does not exist: were the model loaded first, the error would be about it
    assert text in one_line(*args, "--base", tmp_path / "no-such-base")


@pytest.mark.parametrize(
    "args, input, text",
    [
        (["run", "base", "hi", "--max-new-tokens", 0], None, "--max-new-tokens must be 1 or more, not 0"),
        (["run", "base", "hi", "--max-new-tokens", -5], None, "--max-new-tokens must be 1 or more, not -5"),
        (["run", "base", ""], None, "empty prompt"),
        (["run", "base", "  \n"], None, "empty prompt"),
        (["run", "base", "-"], "", "empty prompt"),
    ],
)
def test_case_23_no_tokens_or_an_empty_prompt_is_refused(args, input, text, tmp_path):
    assert text in one_line(*args, "--base", tmp_path / "no-such-base", input=input)


def test_case_5_tasks_build_force_refuses_a_folder_that_is_not_a_collection(tmp_path):
    from t2l.errors import T2LError
    from t2l.tasks.collection import Manifest, Task, read_manifest, write_collection

    mine = tmp_path / "mine"
    (mine / "thesis").mkdir(parents=True)
    (mine / "thesis" / "chapter1.tex").write_text("years of work")
    for args in (["--from", "sni", "--source", tmp_path], ["--from", "synthetic"]):
        message = one_line("tasks", "build", mine, "--force", *args)
        assert "is not a task collection" in message and "nothing was deleted" in message
    assert (mine / "thesis" / "chapter1.tex").read_text() == "years of work"
    (tmp_path / "a-file").write_text("mine")
    assert "is not a folder" in one_line("tasks", "build", tmp_path / "a-file", "--force", "--from", "synthetic")
    # a collection is rebuilt; one that holds something of the user's besides is not
    built = tmp_path / "built"

    def build(n):
        tasks = [Task(f"t{i}", ["say hi"], [("q", "a")]) for i in range(n)]
        return write_collection(built, tasks, Manifest(name="tiny", source="test", license="none"), force=True)

    build(2)
    build(1)
    assert [t["name"] for t in read_manifest(built).tasks] == ["t0"]
    (built / "notes.md").write_text("mine")
    with pytest.raises(T2LError, match="holds 'notes.md', which is not part of its collection"):
        build(1)
    assert (built / "notes.md").read_text() == "mine" and (built / "t0").is_dir()


@pytest.mark.parametrize("verb", ["make", "export"])
def test_case_6_force_onto_a_folder_that_is_not_an_adapter_folder_deletes_nothing(verb, trained_hypernet, tmp_path):
    hn = trained_hypernet[0]
    t2l("make", "answer in upper case", "--hypernet", hn, "--name", "up")
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    command = ["make", "answer in lower case", "--hypernet", hn, "-o"] if verb == "make" else ["export", "up"]
    message = one_line(*command, mine, "--force")
    assert "is not an adapter folder (it holds 'notes.txt')" in message and "nothing was deleted" in message
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "mine"
    assert len(json.loads(t2l("ls", "--json").output)) == 1  # make refused before storing anything
    # an adapter folder (what export writes) is replaced, and so is an empty folder
    t2l("export", "up", tmp_path / "peft")
    t2l(*command, tmp_path / "peft", "--force")
    (tmp_path / "empty").mkdir()
    t2l(*command, tmp_path / "empty", "--force")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]


@pytest.mark.parametrize("where", [".", ".."])
def test_case_7_output_dot_or_dotdot_fails_before_registering_the_name(where, trained_hypernet, tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    message = one_line("make", "x", "--hypernet", trained_hypernet[0], "-o", where, "--force", "--name", "N")
    assert f"cannot write the adapter to '{where}'" in message and "my-adapter" in message
    assert json.loads(t2l("ls", "--json").output) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "t2l-home"]


@pytest.mark.parametrize("where", ["/proc/t2l-out", "folder"])
def test_case_16_unwritable_eval_output_and_diff_plot_are_refused_before_any_work(
    where, trained_hypernet, tmp_path, tiny_base_dir, arc_dir
):
    t2l("make", "answer in upper case", "--hypernet", trained_hypernet[0], "--name", "up")
    target = tmp_path / "folder" if where == "folder" else Path(where)
    target.mkdir() if where == "folder" else None
    message = one_line(
        "eval",
        "up",
        "--bench",
        "arc_easy",
        "--data-dir",
        arc_dir,
        "--base",
        tiny_base_dir,
        "--output",
        target / "r.json" if where != "folder" else target,
    )
    assert "--output" in message
    assert json.loads(t2l("show", "up", "--json").output)["evals"] == []  # no score stored: the run never began
    message = one_line("diff", "up", "up", "--plot", target / "p.png" if where != "folder" else target)
    assert "--plot" in message and ("not a writable folder" in message or "is a folder" in message)
    plot = tmp_path / "new" / "heat.png"  # a missing folder is made, as for eval --output
    t2l("diff", "up", "up", "--plot", plot)
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_case_22_a_word_that_is_both_an_adapter_and_a_file_here_is_refused(trained_hypernet, tmp_path, monkeypatch):
    hn = trained_hypernet[0]
    t2l("make", "answer in upper case", "--hypernet", hn, "--name", "sent")
    t2l("make", "answer in lower case", "--hypernet", hn, "--name", "another")
    monkeypatch.chdir(tmp_path)
    t2l("export", "another", "sent")  # ./sent is the other adapter's folder
    sent = json.loads(t2l("show", "sent", "--json").output)["id"]
    message = one_line("diff", "sent", "another")
    assert "'sent' is both a registered adapter and a file or folder here" in message
    assert "./sent for the path" in message and f"its id {sent[:8]}" in message
    assert "is refused: write ./PATH" in t2l("diff", "--help").output
    as_path = json.loads(t2l("diff", "./sent", "another", "--json").output)
    assert as_path["overall_cosine"] == pytest.approx(1.0)  # ./sent is `another`'s export
    as_adapter = json.loads(t2l("diff", sent[:8], "another", "--json").output)
    assert as_adapter["overall_cosine"] < 0.999


def test_case_24_ls_refuses_an_unknown_protocol_naming_the_known_ones(tiny_base_dir, arc_dir):
    message = one_line("ls", "--protocol", "nope")
    assert "unknown protocol 'nope': use lm-eval or letter" in message and "lm-eval-0.4/v1" in message
    for known in ("lm-eval", "letter", "paper", "lm-eval-0.4/v1", "t2l-paper-letter/v1"):
        t2l("ls", "--protocol", known)


@pytest.mark.parametrize("char", ["\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u200f", "\u061c", "\x85"])
def test_case_25_names_with_bidi_controls_are_refused(char, trained_hypernet):
    t2l("make", "x", "--hypernet", trained_hypernet[0], "--name", "ok")
    name = f"safe{char}gnp.exe"
    for args in (
        ["make", "y", "--hypernet", trained_hypernet[0], "--name", name],
        ["rename", "ok", name],
        ["tag", "ok", name],
    ):
        assert "bidirectional-text controls (such as U+202E)" in one_line(*args)
    [row] = json.loads(t2l("ls", "--json").output)
    assert (row["name"], row["tags"]) == ("ok", [])


def test_case_25_bidi_controls_in_a_description_are_shown_written_out(trained_hypernet):
    t2l("make", "safe\u202egnp.exe", "--hypernet", trained_hypernet[0], "--name", "rtl")
    shown = t2l("show", "rtl").output
    assert "\u202e" not in shown and "safe\\u202egnp.exe" in shown


@pytest.mark.parametrize(
    "rows, text",
    [
        (['{"question": "q", "choices": {"text": ["a"], "label": ["A"]}}'], "line 1 lacks the field 'answerKey'"),
        (["ARC", "[1, 2]"], "line 2 is a JSON list, not an object"),
        (["ARC", "", "{not json"], "line 3 is not JSON"),
        (
            ['{"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "Z"}'],
            "line 1 does not read as a arc_easy document (ValueError",
        ),
    ],
)
def test_case_19_eval_data_dir_rows_of_the_wrong_shape_name_the_file_line_and_field(
    rows, text, tmp_path, arc_dir, tiny_base_dir
):
    good = (arc_dir / "arc_easy.jsonl").read_text().splitlines()[0]
    data = tmp_path / "bad-data"
    data.mkdir()
    path = data / "arc_easy.jsonl"
    path.write_text("".join((good if r == "ARC" else r) + "\n" for r in rows))
    message = one_line("eval", "base", "--bench", "arc_easy", "--data-dir", data, "--base", tiny_base_dir)
    assert message.startswith(f"error: {path} {text}")
    (data / "arc_easy.jsonl").write_text(good + "\n")
    (data / "arc_easy.train.jsonl").write_text(good + "\n[3]\n")
    message = one_line("eval", "base", "--bench", "arc_easy", "--data-dir", data, "--shots", 1, "--base", tiny_base_dir)
    assert message.startswith(f"error: {data / 'arc_easy.train.jsonl'} line 2 is a JSON list")


@contextmanager
def file_size_limit(limit: int):
    """Writes past `limit` bytes of any file fail with EFBIG, as a full disk fails them with ENOSPC: RLIMIT_FSIZE,
    the real kernel limit (`ulimit -f`), on this process while the block runs (SIGXFSZ ignored, so the write returns
    the error instead of killing the process)."""
    import resource

    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_case_18_no_room_for_the_registry_to_open_is_not_called_damage(t2l_home):
    """Opening a registry (no other process holding it) writes its 32 kB shared-memory index first: under a 3 kB
    file size limit that fails, and the line says there is no room, not that the database is damaged."""

    def ls(limit: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", f"ulimit -f {limit}; exec {sys.executable} -m t2l_cli ls"],
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert ls("unlimited").returncode == 0  # the registry made by a process that has ended
    assert not (t2l_home / "registry.db-shm").exists()  # nothing holds it open: the next open makes the index
    proc = ls("3")
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and line.startswith("error: no room to write the registry "), line
    assert "restore it" not in line and "set T2L_HOME to a folder on a disk with room" in line


def test_case_18_no_room_while_copying_a_hypernet_or_storing_an_adapter_is_one_line(trained_hypernet, t2l_home):
    hn = str(trained_hypernet[0])
    t2l("ls")  # the registry exists before the limit; its file stays under it
    with file_size_limit(90_000):  # the hypernetwork's 100 kB of weights do not fit
        line = one_line("make", "answer in upper case", "--hypernet", hn, "--name", "up")
    assert line.startswith("error: no room to write ") and "a file size limit (see `ulimit -f`)" in line
    assert "set T2L_HOME to a folder on a disk with room" in line and "Free some space" in line
    assert json.loads(t2l("hypernets", "--json").output) == [] and json.loads(t2l("ls", "--json").output) == []
    assert [p for p in t2l_home.rglob("*") if p.is_file() and "hypernets" in p.parts or p.suffix == ".tmp"] == []

    t2l("make", "answer in small letters", "--hypernet", hn, "--name", "low")  # the hypernetwork now in the home
    with file_size_limit(4_000):  # an adapter is 11 kB
        line = one_line("make", "answer in upper case", "--hypernet", hn, "--name", "up")
    assert line.startswith("error: no room to write ") and "T2L_HOME" in line
    assert [r["name"] for r in json.loads(t2l("ls", "--json").output)] == ["low"]
    assert_consistent(Registry(t2l_home))
    assert not [p for p in t2l_home.rglob("*") if p.name.endswith(".tmp")]
    with file_size_limit(20_000):  # the adapter fits, the registry's write-ahead log (over 100 kB) does not
        line = one_line("make", "answer in upper case", "--hypernet", hn, "--name", "up")
    assert line.startswith("error: no room to write the registry ") and "nothing was changed" in line, line
    assert "T2L_HOME" in line and "backup" not in line and "move it aside" not in line  # not called damaged
    assert [r["name"] for r in json.loads(t2l("ls", "--json").output)] == ["low"]
    assert assert_consistent(Registry(t2l_home))["orphans"] == []  # the adapter's file went with its row
    t2l("make", "answer in upper case", "--hypernet", hn, "--name", "up")  # with room it goes on as ever
    assert sorted(r["name"] for r in json.loads(t2l("ls", "--json").output)) == ["low", "up"]


def test_case_27_a_one_task_sni_build_says_each_step_and_how_far_and_takes_seconds(tmp_path):
    """`t2l tasks build --from sni` on one task took 258 s without a word of progress: the benchmarks' 13-grams were
    read row by row, each 5-shot prompt's five examples again in every row. Each step is said, the longest counted
    file by file, and the whole build is well under two minutes even on a busy 2-core machine."""
    import time

    from t2l.tasks.sni import build_sni

    folder = tmp_path / "sni"
    folder.mkdir()
    rows = [{"input": f"the word number {i} is cat", "output": [f"CAT {i}"]} for i in range(300)]
    (folder / "task999_shout_animal.json").write_text(
        json.dumps(
            {
                "Definition": ["Write the animal in the sentence in capital letters."],
                "Source": ["handmade"],
                "Instances": rows,
            }
        )
    )
    events = []
    start = time.monotonic()
    tasks, _ = build_sni(folder, on_status=events.append, on_progress=lambda done, total: events.append((done, total)))
    took = time.monotonic() - start
    assert [t.name for t in tasks] == ["task999_shout_animal"] and took < 120, took
    said = [e for e in events if isinstance(e, str)]
    assert said == ["reading benchmark items for decontamination", "reading 1 SNI task file"]
    counted = events[1 : events.index(said[1])]
    files = counted[-1][1]
    assert files >= 10 and counted == [(i, files) for i in range(files + 1)]
    assert events[events.index(said[1]) + 1 :] == [(1, 1)]


@pytest.mark.slow
def test_case_26_a_make_o_killed_after_its_commit_is_named_by_ls_show_and_verify(trained_hypernet, tmp_path):
    """The row committed, the -o file not yet written, the process killed: the registry is consistent, and ls, show
    and registry verify say which output is missing and how to finish it; the same make again writes it."""
    hn = trained_hypernet[0]
    t2l("make", "warm up", "--hypernet", hn)  # registers the hypernet
    out = tmp_path / "sent.safetensors"
    command = ["make", "classify sentiment", "-o", out, "--hypernet", hn]
    killed("t2l.export:write_adapter", 1, *command)
    assert not out.exists()
    sent = Registry(Path(os.environ["T2L_HOME"])).get_adapter("sent")
    report = json.loads(t2l("registry", "verify", "--json").output)  # exit 0: nothing is damaged
    assert report["unwritten"] == [{"id": sent.id, "path": str(out)}] and report["missing"] == []
    said = t2l("registry", "verify").output
    assert "unwritten: 1" in said and f"{sent.id[:8]} {out}" in said and "run the same make again" in said
    for args in (["show", "sent"], ["ls"]):
        assert f"note: {sent.id[:8]} was made with -o {out}, which was never written" in t2l(*args).output
    assert json.loads(t2l("show", "sent", "--json").stdout)["unwritten_outputs"] == [str(out)]
    t2l(*command)  # the same command again writes it, and nothing is left to say
    assert out.read_bytes() == Registry(Path(os.environ["T2L_HOME"])).adapter_file(sent).read_bytes()
    assert json.loads(t2l("registry", "verify", "--json").output)["unwritten"] == []
    assert "never written" not in t2l("ls").output + t2l("show", "sent").output
