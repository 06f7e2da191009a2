"""Tiny random models built in code, a char-level tokenizer, and an isolated t2l home per test."""

import pytest

CHARS = [chr(i) for i in range(32, 127)] + ["\n"]


def char_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3} | {c: i + 4 for i, c in enumerate(CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_config(arch: str = "llama", layers: int = 2):
    from transformers import AutoConfig

    common = dict(
        vocab_size=len(CHARS) + 4,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.3,
    )  # wide enough logits that a LoRA can make an answer likely
    if arch == "gemma":
        common["head_dim"] = 8
    return AutoConfig.for_model(arch, **common)


def tiny_model(arch: str = "llama", seed: int = 0, layers: int = 2):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(arch, layers)).eval()


def tiny_encoder(folder, seed: int = 0):
    """A random 2-layer BERT with its tokenizer, saved as a HF folder (stands in for MiniLM in unit tests)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    tok = char_tokenizer()
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(folder)
    tok.model_max_length = 128
    tok.save_pretrained(folder)
    return folder


def long_sample(sample, min_chars: int, seeds=range(11, 41)) -> tuple[int, str]:
    """(seed, text) of the first seed whose sampled `sample(seed)` has at least `min_chars` characters. Sampled
    tokens depend on the CPU's float kernels (AVX2 and AVX-512 machines draw differently), so a test that cuts or
    counts sampled text picks a seed that gives it enough text on the machine it runs on."""
    for seed in seeds:
        if len(text := sample(seed)) >= min_chars:
            return seed, text
    raise AssertionError(f"no seed in {seeds} sampled {min_chars} characters")


def t2l(*args, code=0, input=None):
    """Run the `t2l` command in-process (typer's CliRunner) and check its exit code; the result."""
    from typer.testing import CliRunner

    from t2l_cli.app import app

    result = CliRunner().invoke(app, [str(a) for a in args], input=input)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(autouse=True)
def t2l_home(tmp_path, monkeypatch):
    home = tmp_path / "t2l-home"
    monkeypatch.setenv("T2L_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama").save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("tiny-bert"))


TASKS = {
    # task descriptions (two phrasings each) -> a fixed answer; the hypernet must learn which is which
    "shout": (["reply with capital letters only", "answer in upper case"], "ABC"),
    "whisper": (["reply with lower case letters only", "answer in small letters"], "xyz"),
}


@pytest.fixture(scope="session")
def trained_hypernet(tmp_path_factory, tiny_base_dir, tiny_encoder_dir):
    """A tiny hypernetwork trained for a few dozen steps to emit task-specific adapters; returns its folder."""
    import os

    import torch

    from t2l.base import load_base
    from t2l.hypernet_files import save_hypernet
    from t2l.config import HypernetConfig
    from t2l.encoder import load_encoder
    from t2l.train.data import Example
    from t2l.train.sft import SFTSettings, build_hypernet, train_sft

    home = tmp_path_factory.mktemp("train-home")
    old = os.environ.get("T2L_HOME")
    os.environ["T2L_HOME"] = str(home)
    try:
        model, tok, base_ref = load_base(str(tiny_base_dir))
        enc = load_encoder(str(tiny_encoder_dir))
        torch.manual_seed(0)
        hn = build_hypernet(
            model,
            HypernetConfig(
                variant="M",
                rank=4,
                alpha=8,
                embed_dim=enc.dim,
                task_dim=16,
                pos_dim=8,
                hidden_dim=32,
                target_modules=("q_proj", "v_proj", "o_proj", "down_proj"),
            ),
        )
        examples, embs = [], []
        for t, (descs, answer) in enumerate(TASKS.values()):
            embs.append(enc.encode(descs).embeddings)
            examples += [Example(t, f"q{i}", answer) for i in range(4)]
        history = train_sft(hn, model, tok, examples, embs, SFTSettings(steps=80, batch_size=4, lr=3e-3))
        folder = tmp_path_factory.mktemp("hn") / "tiny-hypernet"
        save_hypernet(
            hn,
            folder,
            base=base_ref,
            base_spec=str(tiny_base_dir),
            encoder=enc.ref,
            encoder_spec=str(tiny_encoder_dir),
            pooling=enc.pooling,
            training={"recipe": "sft-test", "steps": 80, "final_loss": history[-1].loss},
        )
        return folder, history
    finally:
        if old is None:
            del os.environ["T2L_HOME"]
        else:
            os.environ["T2L_HOME"] = old


@pytest.fixture
def arc_dir(tmp_path):
    """The first 6 arc_easy and arc_challenge items as a --data-dir."""
    import json

    from t2l.eval.benches import BENCHES
    from t2l.eval.data import load_docs

    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("arc_easy", "arc_challenge"):
        docs = load_docs(BENCHES[name])[0][:6]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    return folder


GTE_CONFIG = dict(
    model_type="new",
    vocab_size=len(CHARS) + 4,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=48,
    hidden_act="gelu",
    type_vocab_size=2,
    max_position_embeddings=64,
    layer_norm_eps=1e-12,
    rope_theta=160000.0,
    rope_scaling={"type": "ntk", "factor": 2.0},
    pack_qkv=True,
    layer_norm_type="layer_norm",
    logn_attention_scale=False,
    position_embedding_type="rope",
)


def gte_state(cfg: dict, seed: int = 0) -> dict:
    """Random weights of a GTE v1.5 ("new" architecture) model under the names its published weights use."""
    import torch

    g = torch.Generator().manual_seed(seed)
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    shapes = {
        "embeddings.word_embeddings.weight": (cfg["vocab_size"], h),
        "embeddings.token_type_embeddings.weight": (cfg["type_vocab_size"], h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{n}."
        shapes |= {
            p + "attention.qkv_proj.weight": (3 * h, h),
            p + "attention.qkv_proj.bias": (3 * h,),
            p + "attention.o_proj.weight": (h, h),
            p + "attention.o_proj.bias": (h,),
            p + "mlp.up_gate_proj.weight": (2 * i, h),
            p + "mlp.down_proj.weight": (h, i),
            p + "mlp.down_proj.bias": (h,),
            p + "attn_ln.weight": (h,),
            p + "attn_ln.bias": (h,),
            p + "mlp_ln.weight": (h,),
            p + "mlp_ln.bias": (h,),
        }
    state = {k: torch.randn(s, generator=g) * (0.3 if len(s) == 2 else 0.1) for k, s in shapes.items()}
    for k in state:
        if k.endswith(("LayerNorm.weight", "_ln.weight")):
            state[k] = state[k] + 1.0
    return state


@pytest.fixture(scope="session")
def tiny_gte_dir(tmp_path_factory):
    """A random 2-layer GTE v1.5 folder (config.json, model.safetensors, tokenizer.json), standing in for
    gte-large-en-v1.5."""
    import json

    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny-gte")
    (folder / "config.json").write_text(json.dumps(GTE_CONFIG | {"architectures": ["NewModel"]}))
    save_file(gte_state(GTE_CONFIG), folder / "model.safetensors")
    char_tokenizer().save_pretrained(folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    return folder


def make_examples_hypernet(source_folder, folder, most: int = 3, examples_as: str = "mean"):
    """The tiny trained hypernetwork warm-started into one that reads up to `most` examples, saved as a hypernetwork
    folder in `folder`; reading them as their mean, its examples' map is then set as if trained ("text" has no
    weights of its own: the warm start is the whole of it)."""
    import torch

    from t2l.hypernet_files import load_hypernet, save_hypernet
    from t2l.hypernet import HyperLoRA
    from t2l.train.run import warm_start

    source, info = load_hypernet(source_folder)
    info.config.examples, info.config.examples_as = most, examples_as
    hn = HyperLoRA(info.config, info.targets)
    warm_start(hn, str(source_folder))
    if examples_as == "mean":
        emb = torch.randn(2, info.config.embed_dim)
        for got, want in zip(hn(emb, torch.randn(2, info.config.embed_dim)).values(), source(emb).values()):
            torch.testing.assert_close(got, want)  # a zero map: the same adapters whatever the examples
        # its own generator: the same map (and answers) whichever tests ran first
        torch.nn.init.normal_(hn.example_encoder.weight, std=0.5, generator=torch.Generator().manual_seed(0))
    else:
        assert not hasattr(hn, "example_encoder")
    save_hypernet(
        hn,
        folder,
        base=info.base,
        base_spec=info.base_spec,
        encoder=info.encoder,
        encoder_spec=info.encoder_spec,
        pooling=info.pooling,
        training=info.training,
    )
    return folder


@pytest.fixture
def hn_path(trained_hypernet):
    """The tiny trained hypernetwork's folder as a string, as a command line takes it."""
    return str(trained_hypernet[0])


@pytest.fixture
def serve_service(hn_path, tiny_base_dir):
    """`t2l serve`'s service over the tiny base and hypernetwork, in this test's home."""
    from t2l_cli.server.service import ServeSettings, Service

    return Service(ServeSettings(base=str(tiny_base_dir), hypernet=hn_path))


@pytest.fixture
def serve_url(serve_service):
    """A live server for `serve_service` on a free localhost port; its base URL."""
    from t2l_cli.server.api import create_app
    from t2l_cli.server.background import serving

    with serving(create_app(serve_service)) as base_url:
        yield base_url
