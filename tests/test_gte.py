"""t2l.gte against a reference written in this test from GTE v1.5's published modelling code (Alibaba-NLP/new-impl,
modeling.py): eager attention with an additive mask, the rotary table built the way its NTKScalingRotaryEmbedding
builds it, [up, gate] GLU, post-norm layers, CLS pooling."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import GTE_CONFIG, gte_state
from t2l.encoder import add_full_stop, load_encoder


def reference_rope_table(cfg, length):
    """Their NTKScalingRotaryEmbedding: RotaryEmbedding's init builds the table for the window; the NTK init then
    rebuilds it for factor x window, and as that is beyond the window it rescales the frequencies for good."""
    dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    base, window = cfg["rope_theta"], cfg["max_position_embeddings"]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
    factor = cfg["rope_scaling"]["factor"]
    seq_len = window * factor
    if seq_len > window:
        inv_freq = 1.0 / ((base * factor) ** (torch.arange(0, dim, 2).float() / dim))
        inv_freq = inv_freq / factor ** (2 / dim)
    t = torch.arange(int(seq_len), dtype=torch.float32)
    freqs = torch.einsum("i,j->ij", t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[:length], emb.sin()[:length]


def reference_gte(state, cfg, ids, mask):
    h, heads, inter = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"]
    hd = h // heads
    b, t = ids.shape
    x = state["embeddings.word_embeddings.weight"][ids]
    x = x + state["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    x = F.layer_norm(x, (h,), state["embeddings.LayerNorm.weight"], state["embeddings.LayerNorm.bias"], 1e-12)
    cos, sin = reference_rope_table(cfg, t)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]  # [1, t, 1, hd], as rope_cos[position_ids].unsqueeze(2)
    bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min

    def rot(z):
        return z * cos + torch.cat((-z[..., hd // 2 :], z[..., : hd // 2]), dim=-1) * sin

    for n in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{n}."
        qkv = F.linear(x, state[p + "attention.qkv_proj.weight"], state[p + "attention.qkv_proj.bias"])
        q, k, v = [z.view(b, t, heads, hd) for z in qkv.split(h, dim=-1)]
        q, k = rot(q), rot(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + bias
        ctx = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(b, t, h)
        attn = F.linear(ctx, state[p + "attention.o_proj.weight"], state[p + "attention.o_proj.bias"])
        x = F.layer_norm(x + attn, (h,), state[p + "attn_ln.weight"], state[p + "attn_ln.bias"], 1e-12)
        up, gate = F.linear(x, state[p + "mlp.up_gate_proj.weight"]).split(inter, dim=-1)
        mlp = F.linear(F.gelu(gate) * up, state[p + "mlp.down_proj.weight"], state[p + "mlp.down_proj.bias"])
        x = F.layer_norm(x + mlp, (h,), state[p + "mlp_ln.weight"], state[p + "mlp_ln.bias"], 1e-12)
    return x


def test_gte_matches_reference_on_a_padded_batch(tiny_gte_dir):
    from t2l.gte import load_gte

    ids = torch.randint(4, GTE_CONFIG["vocab_size"], (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    ours = load_gte(tiny_gte_dir)(ids, mask)
    ref = reference_gte(gte_state(GTE_CONFIG), GTE_CONFIG, ids, mask)
    keep = mask.bool()
    torch.testing.assert_close(ours[keep], ref[keep], rtol=1e-4, atol=1e-5)


def test_gte_encoder_cls_pooling_and_authors_style(tiny_gte_dir):
    from tokenizers import Tokenizer

    enc = load_encoder(str(tiny_gte_dir))
    assert enc.pooling == "cls" and enc.dim == GTE_CONFIG["hidden_size"]
    texts = ["answer in upper case", "count the words!"]
    plain = enc.encode(texts).embeddings
    tok = Tokenizer.from_file(str(tiny_gte_dir / "tokenizer.json"))
    for text, emb in zip(texts, plain):
        ids = torch.tensor([tok.encode(text).ids])
        ref = reference_gte(gte_state(GTE_CONFIG), GTE_CONFIG, ids, torch.ones_like(ids))[0, 0]
        torch.testing.assert_close(emb, ref, rtol=1e-4, atol=1e-5)

    enc.style = "authors"  # the full stop and the sqrt(dim)-scaled unit vector of their embed_texts
    styled = enc.encode(texts).embeddings
    again = enc.encode(["answer in upper case."]).embeddings
    torch.testing.assert_close(styled[0], again[0])
    assert torch.allclose(styled.norm(dim=-1), torch.full((2,), GTE_CONFIG["hidden_size"] ** 0.5))
    assert add_full_stop(" count the words! ") == "count the words!" and add_full_stop("abc") == "abc."


def test_gte_refuses_what_it_does_not_implement(tmp_path, tiny_gte_dir):
    import shutil

    from t2l.errors import T2LError
    from t2l.gte import load_gte

    folder = tmp_path / "gte"
    shutil.copytree(tiny_gte_dir, folder)
    (folder / "config.json").write_text(json.dumps(GTE_CONFIG | {"logn_attention_scale": True}))
    with pytest.raises(T2LError, match="logn_attention_scale"):
        load_gte(folder)
