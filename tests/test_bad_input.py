"""What a new user hits first (issue 16): damaged homes, impossible settings and nonsense input each end in one
'error: ...' line naming the problem and the way out, exit 1, with nothing changed."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import t2l

HERE = Path(__file__).parent
ROOT = HERE.parent


def one_line_error(*args) -> str:
    """The single error line `t2l ARGS` prints, exit 1 (progress bars may leave blank lines)."""
    result = t2l(*args, code=1)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture
def hn(trained_hypernet):
    return str(trained_hypernet[0])


@pytest.fixture
def made(hn, t2l_home):
    """A home with one adapter, 'up'."""
    t2l("make", "answer in upper case", "--hypernet", hn, "--name", "up")
    return t2l_home


# -- a damaged home ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda db, data: db.write_bytes(data[:5000]), "cannot be used"),
        (lambda db, data: db.write_bytes(os.urandom(20000)), "not a database"),
    ],
)
def test_a_damaged_database_is_one_line_saying_how_to_restore(made, hn, damage, reason):
    db, whole = made / "registry.db", made / "whole.db"
    t2l("registry", "backup", whole)  # every page in one file, none in a WAL
    for f in made.glob("registry.db*"):
        f.unlink()
    damage(db, whole.read_bytes())
    for args in (["ls"], ["show", "up"], ["make", "x", "--hypernet", hn]):
        proc = t2l_process(made, *args)  # a fresh process: this one's pooled connections cache the old pages
        assert proc.returncode == 1 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
        assert reason in proc.stderr and str(db) in proc.stderr and "t2l registry backup" in proc.stderr


def test_a_folder_where_the_database_belongs(t2l_home):
    (t2l_home / "registry.db").mkdir(parents=True)
    message = one_line_error("ls")
    assert "is a folder, not the registry database" in message and "T2L_HOME" in message


def test_a_home_that_is_a_file(t2l_home):
    t2l_home.write_text("")
    assert "is a file, not a folder" in one_line_error("ls")


def _command(home: Path, *args) -> tuple[list[str], dict]:
    return [sys.executable, "-m", "t2l_cli", *map(str, args)], {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "T2L_HOME": str(home),
    }


def t2l_process(home: Path, *args) -> subprocess.CompletedProcess:
    command, env = _command(home, *args)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _read_only(home: Path, *args) -> subprocess.CompletedProcess:
    """`t2l ARGS` on `home` made unwritable: by its mode, or (root ignores modes) a read-only bind mount."""
    command, env = _command(home, *args)
    if os.geteuid() != 0:
        for p in [home, *home.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        try:
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        finally:
            for p in [home, *home.rglob("*")]:
                p.chmod(p.stat().st_mode | 0o200)
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: no way to make a folder read-only")
    script = f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *command], env=env, capture_output=True, text=True, timeout=300
    )
    if "mount" in proc.stderr and proc.returncode != 0 and "t2l" not in proc.stderr:
        pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()}")
    return proc


def test_reading_verbs_work_on_a_read_only_registry_and_writing_ones_say_why_not(made, hn, tmp_path):
    listed = _read_only(made, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)] == ["up"]
    assert _read_only(made, "show", "up").returncode == 0
    assert _read_only(made, "export", "up", tmp_path / "up.safetensors").returncode == 0
    verified = _read_only(made, "registry", "verify")
    assert verified.returncode == 0, verified.stderr
    for args in (["rm", "up"], ["make", "x", "--hypernet", hn], ["tag", "up", "t"]):
        proc = _read_only(made, *args)
        assert proc.returncode == 1 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
        assert "read-only" in proc.stderr and "T2L_HOME" in proc.stderr, proc.stderr
    assert [r["name"] for r in json.loads(t2l("ls", "--json").output)] == ["up"]


# -- outputs that cannot be written ------------------------------------------------------------------------------


def test_backup_into_a_missing_folder(made, tmp_path):
    message = one_line_error("registry", "backup", tmp_path / "nope" / "b.db")
    assert "does not exist" in message and "mkdir -p" in message


@pytest.mark.parametrize("dest", ["/proc/up.safetensors", "/proc/up-peft"])
def test_export_to_a_path_that_cannot_be_written(made, dest):
    message = one_line_error("export", "up", dest)
    assert f"cannot write {dest}" in message and "choose another" in message


# -- settings no machine can run ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, text",
    [
        (["--device", "cuda"], "no CUDA GPU"),
        (["--device", "tpu9"], "unknown device"),
        (["--dtype", "bogus"], "unknown --dtype 'bogus'"),
        (["--dtype", "float16"], "use float32 or bfloat16"),
        (["--batch-size", "0"], "--batch-size must be a positive"),
    ],
)
def test_eval_settings_are_checked_before_any_model_loads(made, flags, text, tiny_base_dir, arc_dir):
    import torch

    if flags == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    message = one_line_error(
        "eval", "up", "--bench", "arc_easy", "--data-dir", arc_dir, "--base", tiny_base_dir, *flags
    )
    assert text in message
    assert t2l("show", "up", "--json").output and json.loads(t2l("show", "up", "--json").output)["evals"] == []


def test_diff_of_adapters_for_different_bases(made):
    t2l("make", "answer in upper case", "--name", "embedded")  # the shipped default: SmolLM2's adapters
    message = one_line_error("diff", "up", "embedded")
    assert "different bases" in message or "different base models" in message


def test_a_hypernet_config_that_is_a_json_list(tmp_path, hn):
    bad = tmp_path / "bad-hn"
    shutil.copytree(hn, bad)
    (bad / "config.json").write_text("[1, 2]")
    message = one_line_error("make", "x", "--hypernet", bad)
    assert "holds a JSON list" in message and "config.json" in message


# -- nonsense accepted before ------------------------------------------------------------------------------------


def test_search_limit_must_be_positive(made):
    assert "--limit must be a positive" in one_line_error("search", "upper", "--exact", "--limit", "-1")
    assert "--limit must be a positive" in one_line_error("search", "upper", "--limit", "0")


def test_a_name_that_looks_like_an_id_is_refused(made, hn):
    up = json.loads(t2l("show", "up", "--json").output)["id"]
    for name in (up[:6], "abc", "0123"):
        message = one_line_error("make", "other", "--hypernet", hn, "--name", name)
        assert "looks like an id" in message
        assert "looks like an id" in one_line_error("rename", "up", name)
    assert json.loads(t2l("show", up[:6], "--json").output)["name"] == "up"
    assert len(json.loads(t2l("ls", "--json").output)) == 1


def test_control_characters_in_descriptions_are_shown_not_sent_to_the_terminal(hn):
    t2l("make", "say \x1b[31mred\x1b[0m [bold]loud[/bold]\x07", "--hypernet", hn, "--name", "esc")
    for args in (["ls"], ["search", "red", "--exact"], ["show", "esc"]):
        output = t2l(*args).output
        assert "\x1b" not in output and "\x07" not in output
        if args[0] != "ls":  # ls squeezes the description into a narrow column
            assert "\\x1b[31mred" in output and "[bold]loud" in output and "\\x07" in output
    assert json.loads(t2l("ls", "--json").output)[0]["description"] == "say \x1b[31mred\x1b[0m [bold]loud[/bold]\x07"


def test_from_file_with_undecodable_bytes_names_the_file(tmp_path, hn):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("first task\ncaf\xe9 au lait\n".encode("latin-1"))
    message = one_line_error("make", "--from-file", bad, "--hypernet", hn)
    assert str(bad) in message and "not UTF-8" in message and "line 2" in message
