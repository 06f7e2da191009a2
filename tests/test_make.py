"""A tiny hypernetwork trained in-process: its adapters must load everywhere, change the model and follow the task."""

import json
import logging
import warnings

import pytest
import torch
from conftest import TASKS, char_tokenizer

from t2l.adapter import load_adapter, read_adapter
from t2l.export import write_adapter
from t2l.hypernet_files import read_hypernet_info
from t2l.errors import T2LError
from t2l.make import AdapterMaker, output_plan
from t2l.train.data import Example, collate, encode_example


def answer_loss(model, answer: str) -> float:
    tok = char_tokenizer()
    ids, mask, labels = collate([encode_example(tok, Example(0, "q9", answer), 64)], tok.pad_token_id)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()


def load_tiny(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).eval()


def test_training_lowers_the_loss(trained_hypernet):
    _, history = trained_hypernet
    first = sum(m.loss for m in history[:5]) / 5
    last = sum(m.loss for m in history[-5:]) / 5
    assert last < 0.5 * first


def test_adapters_follow_their_description(trained_hypernet, tiny_base_dir, tmp_path):
    folder, _ = trained_hypernet
    maker = AdapterMaker(folder)
    shout, whisper = maker.make(["please answer in upper case", "please answer in small letters"])
    assert any(not torch.equal(shout.tensors[k], whisper.tensors[k]) for k in shout.tensors)
    losses = {}
    for name, made in (("shout", shout), ("whisper", whisper)):
        path = write_adapter(made.tensors, made.info, tmp_path / f"{name}.safetensors")
        model = load_adapter(load_tiny(tiny_base_dir), path)
        losses[name] = {task: answer_loss(model, answer) for task, (_, answer) in TASKS.items()}
    base_losses = {task: answer_loss(load_tiny(tiny_base_dir), answer) for task, (_, answer) in TASKS.items()}
    # each adapter makes its own task's answer likelier than the other adapter does, and than the base does
    assert losses["shout"]["shout"] < losses["whisper"]["shout"]
    assert losses["whisper"]["whisper"] < losses["shout"]["whisper"]
    assert losses["shout"]["shout"] < base_losses["shout"]


def test_folder_form_loads_in_peft_without_warnings(trained_hypernet, tiny_base_dir, tmp_path, caplog):
    from peft import PeftModel

    folder, _ = trained_hypernet
    made = AdapterMaker(folder).make(["answer in upper case"])[0]
    single = write_adapter(made.tensors, made.info, tmp_path / "a.safetensors")
    peft_dir = write_adapter(made.tensors, made.info, tmp_path / "a-peft")
    assert sorted(p.name for p in peft_dir.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert "library_name: peft" in (peft_dir / "README.md").read_text()
    ids = torch.randint(4, 90, (1, 9))
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        peft_model = PeftModel.from_pretrained(load_tiny(tiny_base_dir), peft_dir).eval()
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "key" in m.lower()], messages
    with torch.no_grad():
        via_peft = peft_model(input_ids=ids).logits
        via_t2l = load_adapter(load_tiny(tiny_base_dir), single)(input_ids=ids).logits
        plain = load_tiny(tiny_base_dir)(input_ids=ids).logits
    torch.testing.assert_close(via_peft, via_t2l)
    assert not torch.allclose(via_peft, plain)
    tensors, info, config = read_adapter(single)
    assert info.description == "answer in upper case" and config["r"] == 4
    assert set(tensors) == set(made.tensors)


def test_adapter_for_another_base_is_refused(trained_hypernet, tmp_path):
    from conftest import tiny_model

    folder, _ = trained_hypernet
    made = AdapterMaker(folder).make(["answer in upper case"])[0]
    path = write_adapter(made.tensors, made.info, tmp_path / "a.safetensors")
    with pytest.raises(T2LError, match="another base"):
        load_adapter(tiny_model("llama", layers=1), path)


def test_existing_output_is_refused_and_nothing_half_written(trained_hypernet, tmp_path):
    folder, _ = trained_hypernet
    made = AdapterMaker(folder).make(["answer in upper case"])[0]
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "a.safetensors"
    path.write_text("keep me")
    with pytest.raises(T2LError, match="--force"):
        write_adapter(made.tensors, made.info, path)
    assert path.read_text() == "keep me"
    write_adapter(made.tensors, made.info, path, force=True)
    assert read_adapter(path)[1].description == "answer in upper case"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.safetensors"]


def test_truncated_description_warns_and_is_recorded(trained_hypernet):
    folder, _ = trained_hypernet
    seen = []
    made = AdapterMaker(folder).make(["word " * 400], on_warning=seen.append)[0]
    assert made.info.truncated and "window" in seen[0]


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_description_is_refused(trained_hypernet, text):
    with pytest.raises(T2LError, match="empty description"):
        AdapterMaker(trained_hypernet[0]).make([text])


def test_corrupted_hypernet_is_refused(trained_hypernet, tmp_path):
    import shutil

    folder = tmp_path / "hn"
    shutil.copytree(trained_hypernet[0], folder)
    data = bytearray((folder / "hypernet.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "hypernet.safetensors").write_bytes(bytes(data))
    with pytest.raises(T2LError, match="corrupted"):
        AdapterMaker(folder)


def test_base_mismatch_is_refused(trained_hypernet, tmp_path):
    from conftest import char_tokenizer, tiny_model

    other = tmp_path / "other-base"
    tiny_model(seed=5).save_pretrained(other)
    char_tokenizer().save_pretrained(other)
    with pytest.raises(T2LError, match="trained for base model"):
        AdapterMaker(trained_hypernet[0], base=str(other))


def test_encoder_mismatch_is_refused(trained_hypernet, tmp_path):
    from conftest import tiny_encoder

    other = tiny_encoder(tmp_path / "other-encoder", seed=3)
    with pytest.raises(T2LError, match="not the one the hypernetwork was trained with"):
        AdapterMaker(trained_hypernet[0], encoder=str(other))


def test_hypernet_config_is_json_with_identities(trained_hypernet):
    folder, _ = trained_hypernet
    config = json.loads((folder / "config.json").read_text())
    info = read_hypernet_info(folder)
    assert config["format"] == "t2l-hypernet/1"
    assert len(info.base.sha256) == 64 and len(info.encoder.sha256) == 64
    assert info.training["recipe"] == "sft-test"


def test_output_plan_names_and_paths(tmp_path):
    assert output_plan(1, tmp_path / "sent.safetensors", None) == [("sent", tmp_path / "sent.safetensors")]
    assert output_plan(1, None, None) == [(None, None)]
    assert output_plan(2, tmp_path / "out", None) == [
        ("out-1", tmp_path / "out" / "out-1.safetensors"),
        ("out-2", tmp_path / "out" / "out-2.safetensors"),
    ]
    with pytest.raises(T2LError, match="folder"):
        output_plan(2, tmp_path / "x.safetensors", None)


def test_the_same_adapter_has_the_same_bytes_in_every_process():
    """safetensors writes metadata in hash-map order, which differs between processes; adapter files must not."""
    import subprocess
    import sys

    code = (
        "import hashlib, torch; from t2l.adapter import AdapterInfo, adapter_bytes; from t2l.locate import "
        "ModelRef; info = AdapterInfo('d', 2, 4.0, ['q_proj'], ModelRef('b', 'ab'), 'b'); "
        "print(hashlib.sha256(adapter_bytes({'x.lora_A.weight': torch.ones(2, 3)}, info)).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(4)
    }
    assert len(digests) == 1


def test_the_shipped_default_carries_no_machine_paths():
    """Its recipe and config name the run folder by a placeholder, not the folder of the machine it was trained on."""
    import re

    from t2l.hypernet_files import DEFAULT_HYPERNET_DIR

    for path in DEFAULT_HYPERNET_DIR.iterdir():
        if path.suffix in (".json", ".jsonl", ".yaml"):
            assert not re.search(r"(?<![\w.])/(work|home|root|tmp|Users)/", path.read_text()), path.name
