"""Importing the Text-to-LoRA authors' release: small hypernetworks in their exact layout (hypermod.pt state dict
names and shapes, args.yaml fields, adapter_config.json) with random weights, and a reference of their
HyperModulator's forward (hyper_modulator.py: _hypernet_forward, get_delta_weights, gen_lora, convert_to_raw_scale)
written here, functionally, from the state dict."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import GTE_CONFIG, gte_state
from t2l.errors import T2LError
from test_gte import reference_gte

MODULES = ["v_proj", "q_proj"]  # adapter_config.json order (their PEFT config's set, as the training run saved it)
LAYERS, RANK, EMB = 2, 4, GTE_CONFIG["hidden_size"]
FEATURES = {"q_proj": (32, 32), "v_proj": (32, 16)}  # (in, out) of the tiny llama in conftest
RELEASED = dict(
    training_task="sft",
    exp_setup="hyper_lora",
    emb_model="Alibaba-NLP/gte-large-en-v1.5",
    model_dir="mistralai/Mistral-7B-Instruct-v0.2",
    encoder_type="linear",
    hypernet_latent_size=16,
    head_in_size=24,
    shared_AB_head=False,
    autoreg_gen=False,
    learnable_pos_emb=False,
    use_one_hot_task_emb=False,
    pred_z_score=True,
    mt_lora_path=None,
    target_modules=["q_proj", "v_proj"],
)


def their_state(args, seed=0, offset=False):
    """Random tensors under HyperModulator's state-dict names, shaped as its __init__ makes them."""
    g = torch.Generator().manual_seed(seed)
    d, hin = args["hypernet_latent_size"], args["head_in_size"]
    shared, autoreg = args["shared_AB_head"], args["autoreg_gen"]
    recon = args["training_task"] == "recon"
    bias = (not recon and not args["mt_lora_path"]) or (recon and not args["pred_z_score"])

    def lin(name, i, o, b=True):
        return {f"{name}.weight": (o, i), **({f"{name}.bias": (o,)} if b else {})}

    def norm(name, n):
        return {f"{name}.weight": (n,), f"{name}.bias": (n,)}

    shapes = {
        **lin("task_encoder.mlp.0", EMB, d // 2),
        **norm("task_encoder.mlp.1", d // 2),
        "layer_depth_encoder.0.weight": (LAYERS, d // 4),
        **norm("layer_depth_encoder.1", d // 4),
        "layer_type_encoder.0.weight": (len(MODULES), d // 4),
        **norm("layer_type_encoder.1", d // 4),
        **lin("mixer.1", d, 4 * d),
        **lin("mixer.4", 4 * d, d),
        **norm("mlp3.0", d),
        **lin("mlp3.1", d, 4 * d),
        **lin("mlp3.4", 4 * d, hin),
    }
    for blk in ("mlp1", "mlp2"):
        shapes |= {**norm(f"{blk}.mlp.0", d), **lin(f"{blk}.mlp.1", d, 4 * d), **lin(f"{blk}.mlp.4", 4 * d, d)}
    if autoreg and args["learnable_pos_emb"]:
        shapes |= {"pos_emb.0.weight": (RANK, d), **norm("pos_emb.1", d)}
    if shared:
        shapes |= {**{f"out_emb.{m}.{ab}": (d,) for m in MODULES for ab in "AB"}, **norm("out_emb_norm", d)}
    for m in MODULES:
        i, o = FEATURES[m]
        width = max(i, o) if shared else i + o
        shapes |= lin(f"heads.{m}", hin, width if autoreg else RANK * width, bias)
        for kind in ("AB_offset", "mean_recon_target", "std_recon_target"):
            shapes |= {f"{kind}.A.{m}": (LAYERS, RANK, i), f"{kind}.B.{m}": (LAYERS, o, RANK)}
    state = {k: torch.randn(s, generator=g) * 0.3 for k, s in shapes.items()}
    for k in state:
        if (k.startswith("AB_offset") and not offset) or (k.startswith("mean_recon") and not recon):
            state[k] = torch.zeros_like(state[k])  # zeros unless a multi-task LoRA (SFT) / the targets' mean (recon)
        if k.startswith("std_recon"):
            state[k] = state[k].abs() if recon else torch.zeros_like(state[k])
    return state


def write_release(folder, args, state, peft=None):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "hypermod.pt")
    (folder / "args.yaml").write_text(yaml.safe_dump(args))
    peft = peft or dict(
        peft_type="LORA",
        r=RANK,
        lora_alpha=2 * RANK,
        use_rslora=True,
        lora_dropout=0.05,
        target_modules=MODULES,
        base_model_name_or_path=args["model_dir"],
        task_type="CAUSAL_LM",
    )
    (folder / "adapter_config.json").write_text(json.dumps(peft))
    return folder


def reference_lora(sd, args, emb):
    """Their gen_lora for one description embedding [EMB]: {peft key: tensor}."""
    d, r = args["hypernet_latent_size"], RANK
    shared, autoreg, learned = args["shared_AB_head"], args["autoreg_gen"], args["learnable_pos_emb"]

    def lin(x, k):
        return F.linear(x, sd[k + ".weight"], sd.get(k + ".bias"))

    def ln(x, k):
        return F.layer_norm(x, x.shape[-1:], sd[k + ".weight"], sd[k + ".bias"])

    def mlp2(x):
        return x + F.silu(lin(F.silu(lin(ln(x, "mlp2.mlp.0"), "mlp2.mlp.1")), "mlp2.mlp.4"))

    def mlp3(x):
        return F.silu(lin(F.silu(lin(ln(x, "mlp3.0"), "mlp3.1")), "mlp3.4"))

    def rope(x):  # LlamaRotaryEmbedding(dim=d), positions 0..r-1, then apply_rotary_pos_emb
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
        f = torch.outer(torch.arange(r).float(), inv)
        e = torch.cat((f, f), -1)
        return x * e.cos() + torch.cat((-x[..., d // 2 :], x[..., : d // 2]), -1) * e.sin()

    def pos():
        return ln(sd["pos_emb.0.weight"], "pos_emb.1")[None]

    task = ln(lin(emb[None], "task_encoder.mlp.0"), "task_encoder.mlp.1").expand(LAYERS, -1)
    out = {}
    for mi, m in enumerate(MODULES):
        i_f, o_f = FEATURES[m]
        depth = ln(sd["layer_depth_encoder.0.weight"][torch.arange(LAYERS)], "layer_depth_encoder.1")
        typ = ln(sd["layer_type_encoder.0.weight"][[mi]], "layer_type_encoder.1").expand(LAYERS, -1)
        x = torch.cat([task, depth, typ], -1)
        x = F.silu(lin(F.silu(lin(x, "mixer.1")), "mixer.4"))
        h = x + F.silu(lin(F.silu(lin(ln(x, "mlp1.mlp.0"), "mlp1.mlp.1")), "mlp1.mlp.4"))
        head = lambda z: lin(z, f"heads.{m}")  # noqa: E731
        if not shared and not autoreg:
            y = head(mlp3(mlp2(h)))
            A, B = y[:, : r * i_f], y[:, r * i_f :]
        elif not shared:
            rows = h[:, None].expand(-1, r, -1)
            rows = mlp2(rows + pos()) if learned else mlp2(rope(rows))
            A, B = head(mlp3(rows)).split((i_f, o_f), -1)
        else:
            AB = []
            for key, nf in ((f"out_emb.{m}.A", i_f), (f"out_emb.{m}.B", o_f)):
                z = mlp2(h + ln(sd[key], "out_emb_norm"))
                if autoreg:
                    z = z[:, None].expand(-1, r, -1)
                    z = z + mlp2(pos()) if learned else mlp2(rope(z))
                    AB.append(head(mlp3(z))[..., :nf])
                else:
                    AB.append(head(mlp3(z)).view(LAYERS, r, -1)[..., :nf])
            A, B = AB
        A = A.reshape(LAYERS, r, i_f)
        B = B.reshape(LAYERS, r, o_f).transpose(-1, -2)
        if args["training_task"] == "sft":
            A, B = A + sd[f"AB_offset.A.{m}"], B + sd[f"AB_offset.B.{m}"]
        elif args.get("factorized"):
            if args["pred_z_score"]:
                A = A * (sd[f"std_recon_target.A.{m}"] + 1e-10) + sd[f"mean_recon_target.A.{m}"]
                B = B * (sd[f"std_recon_target.B.{m}"] + 1e-10) + sd[f"mean_recon_target.B.{m}"]
            A, B = A + sd[f"AB_offset.A.{m}"], B + sd[f"AB_offset.B.{m}"]
        else:
            s = math.sqrt(args.get("delta_w_scaling", 10000))
            A, B = A / s, B / s
        for layer in range(LAYERS):
            key = f"base_model.model.model.layers.{layer}.self_attn.{m}"
            out[f"{key}.lora_A.weight"], out[f"{key}.lora_B.weight"] = A[layer], B[layer]
    return out


def reference_embedding(gte_dir, text):
    """Their embed_texts: add_full_stop, CLS pooling of gte, then normalize(...) * sqrt(dim)."""
    from tokenizers import Tokenizer

    text = text.strip() + ("." if text.strip()[-1].isalpha() else "")
    ids = torch.tensor([Tokenizer.from_file(str(gte_dir / "tokenizer.json")).encode(text).ids])
    cls = reference_gte(gte_state(GTE_CONFIG), GTE_CONFIG, ids, torch.ones_like(ids))[:, 0]
    return (F.normalize(cls) * math.sqrt(cls.shape[-1]))[0]


VARIANTS = {
    "released": {},
    "mt-lora-offset": {"mt_lora_path": "mt_lora", "_offset": True},
    "shared": {"shared_AB_head": True},
    "shared-rank-rope": {"shared_AB_head": True, "autoreg_gen": True},
    "shared-rank-learned": {"shared_AB_head": True, "autoreg_gen": True, "learnable_pos_emb": True},
    "rank-rope": {"autoreg_gen": True},
    "rank-learned": {"autoreg_gen": True, "learnable_pos_emb": True},
    "recon-zscore": {"training_task": "recon", "factorized": True, "pred_z_score": True},
    "recon-delta-w": {"training_task": "recon", "factorized": False, "pred_z_score": False, "delta_w_scaling": 400.0},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_imported_adapters_are_their_tensors(tmp_path, tiny_base_dir, tiny_gte_dir, variant):
    from t2l.authors import import_release
    from t2l.make import AdapterMaker

    extra = dict(VARIANTS[variant])
    offset = extra.pop("_offset", False)
    args = RELEASED | extra
    state = their_state(args, offset=offset)
    run = write_release(tmp_path / "t2l_run", args, state)
    info = import_release(run, tmp_path / "converted", base=str(tiny_base_dir), encoder=str(tiny_gte_dir))
    assert info.training["source"]["sha256"] and info.encoder_style == "authors" and info.pooling == "cls"
    assert info.config.alpha == pytest.approx(2 * RANK * math.sqrt(RANK))  # rsLoRA's alpha / sqrt(r) as plain LoRA

    text = "Classify the sentiment of movie reviews"
    made = AdapterMaker(tmp_path / "converted").make([text])[0]
    ref = reference_lora(state, args, reference_embedding(tiny_gte_dir, text))
    assert set(made.tensors) == set(ref)
    for key in ref:
        torch.testing.assert_close(made.tensors[key], ref[key], rtol=1e-4, atol=1e-5, msg=key)
    assert made.info.alpha / made.info.rank == pytest.approx(2 * RANK / math.sqrt(RANK))


def test_a_step_subfolder_reads_the_run_configs(tmp_path, tiny_base_dir, tiny_gte_dir):
    from t2l.authors import find_release, import_release

    run = write_release(tmp_path / "run", RELEASED, their_state(RELEASED))
    sub = tmp_path / "run" / "checkpoints" / "it_500"
    sub.mkdir(parents=True)
    (run / "hypermod.pt").rename(sub / "hypermod.pt")
    assert find_release(sub).run == run
    with pytest.raises(T2LError, match="checkpoints/it_500"):
        find_release(run)  # the run folder itself holds no weights: say where they are
    import_release(sub, tmp_path / "out", base=str(tiny_base_dir), encoder=str(tiny_gte_dir))
    assert (tmp_path / "out" / "hypernet.safetensors").is_file()


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused(tmp_path, tiny_base_dir, tiny_gte_dir):
    from t2l.authors import import_release

    marker = tmp_path / "ran"
    run = write_release(tmp_path / "run", RELEASED, {"x": RunsCode(marker)})
    with pytest.raises(T2LError, match="weights_only") as e:
        import_release(run, tmp_path / "out", base=str(tiny_base_dir), encoder=str(tiny_gte_dir))
    assert "\n" not in str(e.value)
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"use_one_hot_task_emb": True}, "use_one_hot_task_emb"),
        ({"encoder_type": "vq"}, "encoder_type"),
        ({"emb_model": ""}, "base model itself"),
        ({"emb_model": "Salesforce/SFR-Embedding-2_R"}, "not a gte encoder"),
        ({"exp_setup": "hyper_vera"}, "hyper_vera"),
        ({"training_task": "recon", "factorized": False, "pred_z_score": True}, "their own code refuses"),
    ],
)
def test_unsupported_options_are_refused(tmp_path, tiny_base_dir, tiny_gte_dir, change, message):
    from t2l.authors import import_release

    run = write_release(tmp_path / "run", RELEASED | change, their_state(RELEASED))
    with pytest.raises(T2LError, match=message):
        import_release(run, tmp_path / "out", base=str(tiny_base_dir), encoder=str(tiny_gte_dir))


def test_an_unreachable_named_base_asks_for_base(tmp_path, tiny_gte_dir):
    from t2l.authors import import_release

    run = write_release(tmp_path / "run", RELEASED, their_state(RELEASED))  # names a Hub id; the Hub is offline
    with pytest.raises(T2LError, match="Mistral-7B-Instruct-v0.2.*pass --base"):
        import_release(run, tmp_path / "out", encoder=str(tiny_gte_dir))


def test_shapes_must_match_the_base(tmp_path, tiny_base_dir, tiny_gte_dir):
    from t2l.authors import import_release

    state = their_state(RELEASED)
    state["AB_offset.A.q_proj"] = torch.zeros(LAYERS, RANK, 40)
    run = write_release(tmp_path / "run", RELEASED, state)
    with pytest.raises(T2LError, match="AB_offset|offset_A_q_proj"):
        import_release(run, tmp_path / "out", base=str(tiny_base_dir), encoder=str(tiny_gte_dir))


def test_cli_import_then_make(tmp_path, tiny_base_dir, tiny_gte_dir):
    from typer.testing import CliRunner

    from t2l_cli.app import app

    run = write_release(tmp_path / "mistral_7b_t2l", RELEASED, their_state(RELEASED))
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "hypernets",
            "import",
            str(run),
            "--name",
            "sakana",
            "--base",
            str(tiny_base_dir),
            "--encoder",
            str(tiny_gte_dir),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(runner.invoke(app, ["hypernets", "--json"]).output)
    assert [r["name"] for r in rows] == ["sakana"] and rows[0]["recipe"] == "authors-sft"
    res = runner.invoke(
        app, ["make", "--hypernet", "sakana", "summarise news articles", "-o", str(tmp_path / "news.safetensors")]
    )
    assert res.exit_code == 0, res.output
    from safetensors.torch import load_file

    made = load_file(tmp_path / "news.safetensors")
    ref = reference_lora(their_state(RELEASED), RELEASED, reference_embedding(tiny_gte_dir, "summarise news articles"))
    for key in ref:
        torch.testing.assert_close(made[key], ref[key], rtol=1e-4, atol=1e-5)
    again = runner.invoke(
        app, ["hypernets", "import", str(run), "--base", str(tiny_base_dir), "--encoder", str(tiny_gte_dir)]
    )
    assert again.exit_code == 0  # the same conversion is stored once, under its first name
    assert [r["name"] for r in json.loads(runner.invoke(app, ["hypernets", "--json"]).output)] == ["sakana"]


def test_default_config_is_unchanged():
    from t2l.hypernet_files import DEFAULT_HYPERNET_DIR, read_hypernet_info
    from t2l.config import HypernetConfig

    assert "hypermod" not in HypernetConfig().to_dict()
    info = read_hypernet_info(DEFAULT_HYPERNET_DIR)
    assert info.config.hypermod is None and info.encoder_style == "plain"
    shipped = json.loads((DEFAULT_HYPERNET_DIR / "config.json").read_text())
    assert info.to_json() == shipped  # reading and writing the shipped config changes nothing


def _import(*args):
    from typer.testing import CliRunner

    from t2l_cli.app import app

    return CliRunner().invoke(app, ["hypernets", "import", *map(str, args)])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda run: (run / "hypermod.pt").write_bytes(bytes(range(256)) * 64), "is not a plain state dict"),
        (
            lambda run: (run / "adapter_config.json").write_text(
                json.dumps({k: v for k, v in json.loads((run / "adapter_config.json").read_text()).items() if k != "r"})
            ),
            "adapter_config.json has no 'r' (the LoRA rank",
        ),
        (
            lambda run: (run / "args.yaml").write_text(yaml.safe_dump(RELEASED | {"hypernet_latent_size": "wide"})),
            "do not describe a Text-to-LoRA run (ValueError",
        ),
    ],
)
def test_case_20_a_damaged_release_is_one_line(damage, message, tmp_path, tiny_base_dir, tiny_gte_dir):
    # issue 26, case 20: random bytes for hypermod.pt, an adapter_config.json without r, a field of the wrong type
    run = write_release(tmp_path / "run", RELEASED, their_state(RELEASED))
    damage(run)
    res = _import(run, "--base", tiny_base_dir, "--encoder", tiny_gte_dir)
    assert res.exit_code == 1 and res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
    assert message in res.output and "a bug in t2l" not in res.output


def test_case_21_equal_weights_with_another_config_are_another_hypernetwork(tmp_path, tiny_base_dir, tiny_gte_dir):
    # issue 26, case 21: the same hypermod.pt under another module order makes other adapters: its own entry
    from typer.testing import CliRunner

    from t2l_cli.app import app

    state = their_state(RELEASED)
    first = write_release(tmp_path / "first", RELEASED, state)
    peft = json.loads((first / "adapter_config.json").read_text()) | {"target_modules": MODULES[::-1]}
    second = write_release(tmp_path / "second", RELEASED, state, peft)
    models = ["--base", tiny_base_dir, "--encoder", tiny_gte_dir]
    assert "registered hypernetwork first " in _import(first, "--name", "first", *models).output
    res = _import(second, "--name", "second", *models)
    assert res.exit_code == 0 and "registered hypernetwork second " in res.output, res.output
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(app, ["hypernets", "--json"]).output)}
    assert rows.keys() == {"first", "second"} and rows["first"]["sha256"] != rows["second"]["sha256"]
    assert rows["first"]["targets"] == MODULES and rows["second"]["targets"] == MODULES[::-1]
    again = _import(first, "--name", "third", *models)  # the very same conversion: kept once, and said so
    assert (
        again.exit_code == 0
        and "registered already as first " in again.output
        and "registered hypernetwork" not in again.output
    )
    assert len(json.loads(CliRunner().invoke(app, ["hypernets", "--json"]).output)) == 2
