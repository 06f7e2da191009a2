"""Adapters outside t2l (issue 16): an exported PEFT folder names its base by the Hub id, the published card's
commands run as written (a Hub repo id or a downloaded folder wherever an adapter is named), `t2l --version`."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


import t2l
from t2l.adapter import read_info
from conftest import t2l as t2l_cli

ROOT = Path(__file__).parent.parent


def test_an_exported_folder_names_the_base_by_its_hub_id_and_keeps_t2l_spec(tmp_path):
    t2l_cli("make", "answer in upper case", "--name", "up")  # the shipped default: the embedded SmolLM2
    t2l_cli("export", "up", tmp_path / "up-peft")
    config = json.loads((tmp_path / "up-peft" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert read_info(tmp_path / "up-peft").base_spec == "smollm2-135m"
    published = tmp_path / "hub-folder"
    t2l_cli("publish", "up", "--to-dir", published)
    assert json.loads((published / "adapter_config.json").read_text()) == config


def test_the_published_cards_commands_work_with_a_repo_id_and_a_downloaded_folder(trained_hypernet, tmp_path):
    t2l_cli("make", "answer in upper case", "--hypernet", trained_hypernet[0], "--name", "up")
    folder = tmp_path / "published"
    t2l_cli("publish", "up", "--to-dir", folder, "--repo-id", "alice/up")
    [suggested] = re.findall(r"^t2l (eval \S+ --bench \S+)", (folder / "README.md").read_text(), re.M)
    assert suggested.startswith("eval alice/up ")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--alice--up"  # as `hf download alice/up` leaves it in the cache
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    for command in (suggested.split(), ["eval", str(folder), "--bench", "arc_easy"], ["diff", "alice/up", "up"]):
        limit = ["--limit", "2"] if command[0] == "eval" else []
        proc = subprocess.run(
            [sys.executable, "-m", "t2l_cli", *command, *limit, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        if command[0] == "eval":
            assert {r["subject"] for r in json.loads(proc.stdout)} == {command[1]}
        else:
            assert json.loads(proc.stdout)["overall_cosine"] > 0.999  # the very same weights
    proc = subprocess.run(
        [sys.executable, "-m", "t2l_cli", "eval", "alice/missing", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and proc.stderr.strip().startswith("error: ") and "Hugging Face cache" in proc.stderr


def test_version_without_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from t2l_cli.app import app; "
        "r = CliRunner().invoke(app, ['--version']); print(r.output.strip()); "
        "assert r.exit_code == 0 and 'torch' not in sys.modules"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == f"t2l {t2l.__version__}"
