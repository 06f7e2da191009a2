"""The embedded defaults for real: SmolLM2-135M from its GGUF and all-MiniLM-L6-v2. Marked `integration`."""

import time

import pytest
import torch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    return tmp_path_factory.mktemp("integration-home")


@pytest.fixture
def home(shared_home, monkeypatch):
    monkeypatch.setenv("T2L_HOME", str(shared_home))
    return shared_home


@pytest.fixture(scope="module")
def real_hypernet(shared_home, tmp_path_factory):
    """A small hypernet trained 3 steps through the real base with the real encoder (enough to be non-trivial)."""
    import os

    from t2l.base import load_base
    from t2l.hypernet_files import save_hypernet
    from t2l.config import HypernetConfig
    from t2l.encoder import load_encoder
    from t2l.train.data import Example
    from t2l.train.sft import SFTSettings, build_hypernet, train_sft

    os.environ["T2L_HOME"] = str(shared_home)
    model, tok, base_ref = load_base("smollm2-135m")
    enc = load_encoder()
    torch.manual_seed(0)
    hn = build_hypernet(model, HypernetConfig(rank=2, task_dim=16, pos_dim=8, hidden_dim=32))
    embs = [
        enc.encode(["answer with the opposite word"]).embeddings,
        enc.encode(["answer with the capital city"]).embeddings,
    ]
    examples = [Example(0, "hot", "cold"), Example(0, "up", "down"), Example(1, "France", "Paris")]
    history = train_sft(hn, model, tok, examples, embs, SFTSettings(steps=3, batch_size=2, lr=1e-2, max_length=64))
    folder = tmp_path_factory.mktemp("real-hn") / "hn"
    save_hypernet(
        hn,
        folder,
        base=base_ref,
        base_spec="smollm2-135m",
        encoder=enc.ref,
        encoder_spec=enc.ref.name,
        pooling=enc.pooling,
        training={"recipe": "integration-test", "steps": 3},
    )
    return folder, history


def test_gguf_is_dequantized_once_and_answers(home):
    from t2l.base import base_folder, load_base

    folder, ref = base_folder("smollm2-135m")
    assert (folder / "model.safetensors").is_file() and ref.name == "smollm2-135m"
    t0 = time.perf_counter()
    model, tok, ref2 = load_base("smollm2-135m")
    assert time.perf_counter() - t0 < 10 and ref2 == ref  # from the cache, not the GGUF
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


def test_minilm_embeddings_rank_related_descriptions_closer(home):
    from t2l.encoder import load_encoder

    enc = load_encoder()
    e = enc.encode(
        [
            "classify the sentiment of movie reviews",
            "is this film review positive or negative",
            "solve grade school math word problems",
        ]
    ).embeddings
    assert e.shape == (3, 384) and enc.pooling == "mean" and enc.normalize
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.2


def test_make_on_the_real_defaults_loads_in_peft(home, real_hypernet, tmp_path):
    from peft import PeftModel
    from typer.testing import CliRunner

    from t2l.base import load_base
    from t2l_cli.app import app

    folder, history = real_hypernet
    assert all(torch.isfinite(torch.tensor(m.loss)) for m in history)
    out = tmp_path / "sent"
    r = CliRunner().invoke(
        app,
        [
            "make",
            "classify sentiment of movie reviews",
            "-o",
            str(out),
            "--hypernet",
            str(folder),
            "--base",
            "smollm2-135m",
        ],
    )
    assert r.exit_code == 0, r.output
    base, tok, _ = load_base()
    ids = tok("I loved this movie. Sentiment:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain = base(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(base, out).eval()(input_ids=ids).logits
    assert not torch.allclose(plain, adapted)
