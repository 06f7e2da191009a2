"""`t2l publish`: the Hub-ready folder, and the upload against a local stand-in for the Hub's HTTP API."""

import json

import pytest
import torch
import yaml
from hubserver import FakeHub
from typer.testing import CliRunner

from t2l_cli.app import app

TOKEN = "hf_testtoken_never_printed_1234567890"


def t2l(*args, code=0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    assert TOKEN not in result.output
    return result


@pytest.fixture
def made(trained_hypernet, tiny_base_dir, arc_dir):
    t2l("make", "answer in upper case", "--hypernet", trained_hypernet[0], "--name", "upper case")
    t2l("eval", "upper case", "--bench", "arc_easy", "--data-dir", arc_dir)
    return json.loads(t2l("show", "upper case", "--json").output)


@pytest.fixture
def online(monkeypatch):
    """The suite runs with HF_HUB_OFFLINE=1 (conftest); these tests talk to a local server, so lift it."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_hub_folder_has_card_config_and_weights_that_peft_loads(made, tiny_base_dir, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "hub"
    t2l("publish", "upper case", "--to-dir", folder)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    card = (folder / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert {"text-to-lora", "lora"} <= set(meta["tags"])
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"]["name"] == "arc_easy" and result["metrics"][0]["type"] == "acc"
    assert "answer in upper case" in card and "lm-eval-0.4/v1" in card and "PeftModel.from_pretrained" in card
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base_dir), folder)
    ours = load_file(made["file"])
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(ours)
    for key, value in ours.items():
        assert torch.equal(loaded[key.replace(".weight", ".default.weight")], value)
    t2l("publish", "upper case", "--to-dir", folder, code=1)  # not over a folder that has files


def test_upload_sends_the_folder_byte_for_byte_and_records_the_commit(made, online, monkeypatch, tmp_path):
    from t2l.publish import hub_folder
    from t2l_cli.actions.common import open_registry
    from t2l_cli.actions.publish import scores_for_card

    with FakeHub(TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        dry = t2l("publish", "--dry-run")  # bare publish: the newest adapter, to <user>/<name>
        assert "would upload" in dry.output and "alice/upper-case" in dry.output
        assert not hub.repos and not any("/commit/" in p for _, p in hub.requests)

        r = CliRunner().invoke(app, ["publish", "--yes", "--json"])
        assert r.exit_code == 0, (r.output, hub.requests)
        sent = json.loads(r.stdout)
        assert sent["repo_id"] == "alice/upper-case" and sent["commit"] == hub.repos["alice/upper-case"]["commits"][0]
        reg = open_registry()
        row = reg.get_adapter("upper case")
        expected = hub_folder(
            reg.adapter_file(row), tmp_path / "expected", "upper case", scores_for_card(reg, row.id), "alice/upper-case"
        )
        arrived = hub.repos["alice/upper-case"]["files"]
        assert arrived == {p.name: p.read_bytes() for p in expected.iterdir()}

        t2l("publish", "upper case", "--repo-id", "alice/upper-case", "--private", "--yes")  # again: same repo
        assert len(hub.repos) == 1 and len(hub.repos["alice/upper-case"]["commits"]) == 2
        listed = json.loads(t2l("ls", "--json").output)[0]
        assert [p["commit_sha"] for p in listed["published"]] == hub.repos["alice/upper-case"]["commits"][::-1]

        monkeypatch.setenv("HF_TOKEN", TOKEN[::-1])
        refused = t2l("publish", "--yes", code=1)
        assert "refused the token" in refused.output and TOKEN[::-1] not in refused.output
    db = (open_registry().home / "registry.db").read_bytes()
    assert TOKEN.encode() not in db


def test_publish_errors(made, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "")
    assert "invalid repo id" in t2l("publish", "--repo-id", "a/b/c", "--dry-run", code=1).output
    assert "not logged in" in t2l("publish", "--yes", code=1).output
    assert "no adapter named" in t2l("publish", "nope", code=1).output
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert "cannot reach the Hub at http://127.0.0.1:9" in t2l("publish", "--yes", code=1).output
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "HF_HUB_OFFLINE is set" in t2l("publish", "--yes", code=1).output


@pytest.mark.parametrize("token", ["", TOKEN])
def test_case_28_a_dry_run_needs_no_network_and_says_which_repo_it_would_use(made, monkeypatch, token):
    # issue 26, case 28: HF_HUB_OFFLINE=1 (conftest); logged out, or logged in but offline
    monkeypatch.setenv("HF_TOKEN", token)
    dry = t2l("publish", "upper case", "--dry-run")
    assert "would upload adapter" in dry.stdout and "to YOUR-HUB-USER/upper-case:" in dry.stdout
    assert "adapter_model.safetensors" in dry.stdout and "# upper case" in dry.stdout
    # offline: HF_HUB_OFFLINE as huggingface_hub read it at its import, or no route to the Hub
    why = (
        "not logged in"
        if not token
        else "HF_HUB_OFFLINE is set"
        if "HF_HUB_OFFLINE" in dry.output
        else "cannot reach the Hub"
    )
    assert "YOUR-HUB-USER stands for your Hub user name, looked up when you publish" in dry.output and why in dry.output
    plan = json.loads(CliRunner().invoke(app, ["publish", "--dry-run", "--json"]).stdout)
    assert plan["repo_id"] == "YOUR-HUB-USER/upper-case" and why in plan["user_unknown"]
    named = json.loads(t2l("publish", "--dry-run", "--json", "--repo-id", "bob/up").stdout)
    assert named["repo_id"] == "bob/up" and named["user_unknown"] is None
    assert why in t2l("publish", "upper case", "--yes", code=1).output  # a real upload still needs the Hub


def test_case_28_an_exported_card_is_titled_with_the_adapters_name(made, tmp_path):
    folder = tmp_path / "some-folder"
    t2l("export", "upper case", folder)
    card = (folder / "README.md").read_text()
    assert "\n# upper case\n" in card and "# some-folder" not in card
