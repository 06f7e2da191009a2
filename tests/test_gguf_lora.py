"""GGUF LoRA export for llama.cpp and ollama (`t2l.gguf_lora`): the layout llama.cpp's converter writes, checked
by reading the file back; and, marked `integration`, the embedded SmolLM2 GGUF run by llama.cpp itself
(llama-cpp-python) with an exported adapter, token for token against t2l's own engine on the same dequantized base."""

import pytest
import torch

from t2l.adapter import AdapterInfo
from t2l.errors import T2LError
from t2l.locate import ModelRef

MODULES = {
    "q_proj": "self_attn",
    "k_proj": "self_attn",
    "v_proj": "self_attn",
    "o_proj": "self_attn",
    "gate_proj": "mlp",
    "up_proj": "mlp",
    "down_proj": "mlp",
}


def random_lora(model, rank: int = 8, b_scale: float = 0.02, seed: int = 0, modules=MODULES) -> dict:
    """PEFT LoRA tensors for every layer's `modules` of `model`, B far from zero so the adapter changes answers."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, mod in model.named_modules():
        short = name.rsplit(".", 1)[-1]
        if short in modules and ".layers." in name:
            key = f"base_model.model.{name}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(rank, mod.in_features, generator=g) / mod.in_features**0.5
            tensors[f"{key}.lora_B.weight"] = torch.randn(mod.out_features, rank, generator=g) * b_scale
    return tensors


def info_for(base: ModelRef, spec: str, rank: int = 8, alpha: float = 16.0, modules=MODULES) -> AdapterInfo:
    return AdapterInfo("random test adapter", rank, alpha, list(modules), base, spec)


def read_gguf(path):
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return fields, {t.name: t for t in reader.tensors}


def test_an_adapter_for_an_hf_llama_is_written_as_llama_cpp_names_it(tiny_base_dir, tmp_path):
    import numpy as np
    from transformers import AutoModelForCausalLM

    from t2l.export import write_adapter
    from t2l.locate import folder_ref

    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    tensors = random_lora(model, rank=4)
    path = write_adapter(
        tensors, info_for(folder_ref(tiny_base_dir, "tiny"), str(tiny_base_dir), rank=4), tmp_path / "out" / "a.gguf"
    )
    fields, found = read_gguf(path)
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "llama" and fields["adapter.lora.alpha"] == 16.0
    assert fields["general.name"] == "a"
    assert len(found) == len(tensors) and [p.name for p in path.parent.iterdir()] == ["a.gguf"]  # no temp left
    prefix = "base_model.model.model.layers.1"
    for ours, theirs in [
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.down_proj", "ffn_down"),
    ]:
        a, b = tensors[f"{prefix}.{ours}.lora_A.weight"], tensors[f"{prefix}.{ours}.lora_B.weight"]
        ga, gb = found[f"blk.1.{theirs}.weight.lora_a"], found[f"blk.1.{theirs}.weight.lora_b"]
        # GGUF lists dimensions innermost first: lora_a is (in, rank), lora_b (rank, out), as llama.cpp checks
        assert list(ga.shape) == [a.shape[1], a.shape[0]] and list(gb.shape) == [b.shape[1], b.shape[0]]
        assert np.array_equal(ga.data.reshape(a.shape), a.numpy())
        assert np.array_equal(gb.data.reshape(b.shape), b.numpy())
    # q and k rows are permuted into llama.cpp's rotary layout, as its converter permutes the base's weights
    heads, kv_heads, head_dim = 4, 2, 8
    for ours, theirs, n in [("q_proj", "attn_q", heads), ("k_proj", "attn_k", kv_heads)]:
        b = tensors[f"{prefix}.self_attn.{ours}.lora_B.weight"]
        gb = torch.from_numpy(found[f"blk.1.{theirs}.weight.lora_b"].data.reshape(b.shape).copy())
        want = b.reshape(n, 2, head_dim // 2, -1).transpose(1, 2).reshape(b.shape)
        assert torch.equal(gb, want) and not torch.equal(gb, b)


def test_a_qwen2_base_keeps_q_and_k_rows_as_they_are():
    from t2l.gguf_lora import gguf_tensors, layout_from_config

    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
    }
    a, b = torch.randn(2, 32), torch.randn(32, 2)
    out = gguf_tensors(
        {
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": a,
            "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": b,
        },
        layout_from_config(config),
    )
    assert set(out) == {"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b"}
    assert (out["blk.0.attn_q.weight.lora_b"] == b.numpy()).all()


def test_an_unsupported_base_or_module_is_one_line_naming_the_fix(tmp_path):
    from t2l.gguf_lora import gguf_tensors, layout_from_config

    with pytest.raises(T2LError, match=r"GPT2LMHeadModel base.*\.safetensors") as err:
        layout_from_config({"architectures": ["GPT2LMHeadModel"]})
    assert "\n" not in str(err.value)
    layout = layout_from_config(
        {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 4, "num_hidden_layers": 2}
    )
    key = "base_model.model.model.layers.0.self_attn.rotary_proj"
    with pytest.raises(T2LError, match=r"no tensor for the adapted module rotary_proj.*target modules"):
        gguf_tensors({f"{key}.lora_A.weight": torch.zeros(2, 8), f"{key}.lora_B.weight": torch.zeros(8, 2)}, layout)


def test_gguf_outputs_are_checked_as_files(tmp_path):
    from t2l.export import check_output

    (tmp_path / "dir.gguf").mkdir()
    with pytest.raises(T2LError, match="is a folder, but a .gguf name writes one file"):
        check_output(tmp_path / "dir.gguf", force=True)
    (tmp_path / "a.gguf").write_bytes(b"x")
    with pytest.raises(T2LError, match="exists already"):
        check_output(tmp_path / "a.gguf", force=False)
    check_output(tmp_path / "a.gguf", force=True)


def test_make_and_export_write_gguf_from_the_command_line(hn_path, tmp_path):
    from conftest import t2l

    t2l("make", "answer in upper case", "-o", tmp_path / "up.gguf", "--hypernet", hn_path)
    t2l("show", "up")  # named after the output's stem, as for .safetensors
    t2l("export", "up", tmp_path / "again.gguf")
    for path in ("up.gguf", "again.gguf"):
        fields, found = read_gguf(tmp_path / path)
        assert fields["general.type"] == "adapter" and fields["general.architecture"] == "llama"
        assert "blk.0.attn_q.weight.lora_a" in found and "blk.1.attn_v.weight.lora_b" in found
    assert read_gguf(tmp_path / "again.gguf")[0]["general.name"] == "up"
    r = t2l("export", "up", tmp_path / "again.gguf", code=1)
    assert "exists already" in r.output


# -- llama.cpp itself ---------------------------------------------------------------------------------------------

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three uses of a paperclip.",
    "Explain photosynthesis in one sentence.",
]
NEW_TOKENS = 24


def llama_cpp_greedy(llm, prompt_ids: list[int], end_ids: set[int]) -> list[int]:
    tokens = []
    for t in llm.generate(prompt_ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
        if t in end_ids:
            break
        tokens.append(int(t))
        if len(tokens) == NEW_TOKENS:
            break
    return tokens


def agreement(a: list[int], b: list[int]) -> int:
    """Tokens before the first difference."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def llama_cpp_follows(llm, prompt_ids: list[int], answer: list[int]) -> int:
    """How many of `answer`'s tokens are llama.cpp's own greedy pick when it is fed the answer so far (teacher
    forcing: one near-tie flipped by quantization does not send the rest of the comparison down another path)."""
    import numpy as np

    llm.reset()
    llm.eval(prompt_ids + answer)
    picks = np.argmax(np.asarray(llm.scores[len(prompt_ids) - 1 : len(prompt_ids) + len(answer) - 1]), axis=-1)
    return int(sum(int(p) == t for p, t in zip(picks, answer)))


@pytest.mark.integration
def test_llama_cpp_runs_the_exported_adapter_as_t2l_does(tmp_path, capsys):
    """The base GGUF is Q4_1; t2l runs it dequantized to fp32, llama.cpp on the quantized blocks with 8-bit
    activations, so their logits differ by up to about 1 (a near-tie can flip) with or without an adapter. Each
    token of t2l's greedy answer is checked against llama.cpp's pick for the same prefix, for the adapter and, as
    the yardstick, for the base alone."""
    Llama = pytest.importorskip(
        "llama_cpp", reason="llama.cpp is not installed here: `bash setup.sh --llama` builds it (CI does)"
    ).Llama

    from t2l.base import DEFAULT_BASE, EMBEDDED_BASES, identify_base
    from t2l.chat import Engine, Sampling
    from t2l.export import write_adapter
    from t2l.locate import embedded_path

    engine = Engine.load(DEFAULT_BASE)  # the embedded GGUF dequantized to fp32, as every t2l verb runs it
    tensors = random_lora(engine.model)
    info = info_for(identify_base(DEFAULT_BASE), DEFAULT_BASE)
    write_adapter(tensors, info, tmp_path / "a.safetensors")
    write_adapter(tensors, info, tmp_path / "a.gguf")
    adapter = engine.adapter_file(tmp_path / "a.safetensors", "a")
    greedy = Sampling(max_new_tokens=NEW_TOKENS, temperature=0.0)

    base_gguf = str(embedded_path(*EMBEDDED_BASES[DEFAULT_BASE]))
    opts = dict(n_ctx=512, n_threads=2, seed=0, verbose=False, logits_all=True)
    plain, lora = Llama(base_gguf, **opts), Llama(base_gguf, lora_path=str(tmp_path / "a.gguf"), **opts)
    totals = dict(tokens=0, followed=0, base_tokens=0, base_followed=0, prefix=0, changed=0)
    with capsys.disabled():
        print()
        for prompt in PROMPTS:
            ids = engine.chat_ids([{"role": "user", "content": prompt}])
            ours = engine.generate(ids, greedy, adapter).run().token_ids
            ours_base = engine.generate(ids, greedy).run().token_ids
            theirs = llama_cpp_greedy(lora, ids, engine.end_ids)
            theirs_base = llama_cpp_greedy(plain, ids, engine.end_ids)
            followed, base_followed = llama_cpp_follows(lora, ids, ours), llama_cpp_follows(plain, ids, ours_base)
            # the adapter changes the answer, in t2l and in llama.cpp
            assert ours != ours_base and theirs != theirs_base, prompt
            totals["changed"] += agreement(ours, ours_base) < len(ours)
            totals["tokens"] += len(ours)
            totals["followed"] += followed
            totals["base_tokens"] += len(ours_base)
            totals["base_followed"] += base_followed
            totals["prefix"] += agreement(ours, theirs)
            print(
                f"{prompt!r}: adapter {followed}/{len(ours)} tokens llama.cpp's pick too, free-running "
                f"{agreement(ours, theirs)} equal before the first difference; base {base_followed}/"
                f"{len(ours_base)}, {agreement(ours_base, theirs_base)}"
            )
        print(totals)
    assert totals["followed"] >= 0.85 * totals["tokens"], totals
    assert totals["base_followed"] >= 0.85 * totals["base_tokens"], totals

    # Tokens hardly depend on q and k under a mild adapter; a strong one on q and k alone shows whether lora_b's rows
    # follow llama.cpp's rotary layout: the logit changes it makes agree (measured 0.95; without the permutation 0.25)
    import numpy as np

    from t2l.adapter import load_adapter

    qk = {"q_proj": "self_attn", "k_proj": "self_attn"}
    tensors = random_lora(engine.model, b_scale=0.1, seed=1, modules=qk)
    write_adapter(tensors, info_for(info.base, DEFAULT_BASE, modules=qk), tmp_path / "qk.safetensors")
    write_adapter(tensors, info_for(info.base, DEFAULT_BASE, modules=qk), tmp_path / "qk.gguf")
    ids = engine.chat_ids([{"role": "user", "content": PROMPTS[1]}]) + engine.tokenizer("In the depths")["input_ids"]

    def logits(llm):
        llm.reset()
        llm.eval(ids)
        return np.asarray(llm.scores[: len(ids)])

    theirs = logits(Llama(base_gguf, lora_path=str(tmp_path / "qk.gguf"), **opts)) - logits(plain)
    with torch.no_grad():
        base_logits = engine.model(torch.tensor([ids])).logits[0].numpy()
        ours = load_adapter(engine.model, tmp_path / "qk.safetensors")(torch.tensor([ids])).logits[0].numpy()
    ours = ours - base_logits
    corr = np.corrcoef(theirs[-8:].ravel(), ours[-8:].ravel())[0, 1]
    with capsys.disabled():
        print(f"q/k-only adapter: correlation of the logit changes, llama.cpp against t2l: {corr:.3f}")
    assert corr > 0.8
