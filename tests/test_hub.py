"""Hub ids resolve through huggingface_hub's cache; the servers are the one thing faked (by their absence)."""

import os
import shutil
import subprocess
import sys

SCRIPT = """
from t2l.base import identify_base
from t2l.errors import T2LError
ref = identify_base("someone/tiny-llama")
print(ref.name, ref.revision, len(ref.sha256))
try:
    identify_base("someone/not-cached")
except T2LError as e:
    print("ERROR", e)
"""


def test_cached_hub_model_resolves_offline_and_missing_one_is_a_clear_error(tiny_base_dir, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-llama"
    shutil.copytree(tiny_base_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = os.environ | {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[0] == f"someone/tiny-llama {commit} 64"
    assert lines[1].startswith("ERROR ") and "not in the Hugging Face cache" in lines[1]
    assert "network access" in lines[1]
