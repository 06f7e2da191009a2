"""A plain-torch GTE v1.5 encoder (Alibaba-NLP/gte-large-en-v1.5), the description encoder of the Text-to-LoRA
authors' released hypernetworks.

The model ships as custom modelling code (`model_type: "new"`, run with trust_remote_code); t2l never runs it, and
implements the architecture here as `t2l.bert` does MiniLM, from the weights' safetensors file:
- embeddings: word + token type 0 (when the config has token types), layer norm; no absolute positions;
- rotary position embeddings on queries and keys (rotate-half form, `rope_theta`), with the config's fixed NTK
  scaling (`rope_scaling: {type: ntk, factor: f[, mixed_b]}`): the model's code builds its table for f times the
  window, which always takes the scaled frequencies, so they are what the trained weights expect;
- per layer, post-norm: x = LN(x + attention(x)), x = LN(x + down(act(gate) * up)), where one packed linear gives
  [up, gate] (GLU, no bias) and one gives q, k, v.
Refused: `logn_attention_scale`, RMS norm, unpacked q/k/v, absolute positions (all off in the v1.5 models).
"""

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from t2l.errors import T2LError

_ACTS = {"gelu": F.gelu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu, "relu": F.relu}


def rope_frequencies(cfg: dict) -> torch.Tensor:
    """The rotary inverse frequencies [head_dim / 2] the model uses, NTK scaling included."""
    dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    base = float(cfg.get("rope_theta", 10000.0))
    steps = torch.arange(0, dim, 2, dtype=torch.float32) / dim
    scaling = cfg.get("rope_scaling")
    if not scaling:
        return 1.0 / base**steps
    factor, mixed_b = float(scaling["factor"]), scaling.get("mixed_b")
    if mixed_b is None:
        return 1.0 / (base * factor) ** steps / factor ** (2 / dim)
    a = math.log(factor) / (dim / 2) ** mixed_b
    return 1.0 / base**steps / torch.exp(a * torch.arange(1, dim // 2 + 1, dtype=torch.float32) ** mixed_b)


class GteLayer(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h, eps = cfg["hidden_size"], cfg.get("layer_norm_eps", 1e-12)
        self.heads, self.inter = cfg["num_attention_heads"], cfg["intermediate_size"]
        self.qkv, self.o = nn.Linear(h, 3 * h), nn.Linear(h, h)
        self.up_gate = nn.Linear(h, 2 * self.inter, bias=False)
        self.down = nn.Linear(self.inter, h)
        self.ln_attn, self.ln_mlp = nn.LayerNorm(h, eps=eps), nn.LayerNorm(h, eps=eps)
        self.act = _ACTS[cfg.get("hidden_act", "gelu")]

    def forward(self, x: torch.Tensor, keep: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = (p.view(b, t, self.heads, -1).transpose(1, 2) for p in self.qkv(x).chunk(3, -1))
        q, k = (_rotate(z, cos, sin) for z in (q, k))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        x = self.ln_attn(x + self.o(a.transpose(1, 2).reshape(b, t, h)))
        up, gate = self.up_gate(x).split(self.inter, -1)
        return self.ln_mlp(x + self.down(self.act(gate) * up))


def _rotate(z: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = z.shape[-1] // 2
    return z * cos + torch.cat([-z[..., half:], z[..., :half]], -1) * sin


class Gte(nn.Module):
    inv_freq: torch.Tensor  # a buffer

    def __init__(self, cfg: dict):
        super().__init__()
        h = cfg["hidden_size"]
        self.word = nn.Embedding(cfg["vocab_size"], h)
        self.token_type = nn.Embedding(cfg["type_vocab_size"], h) if cfg.get("type_vocab_size", 0) > 0 else None
        self.ln = nn.LayerNorm(h, eps=cfg.get("layer_norm_eps", 1e-12))
        self.layers = nn.ModuleList(GteLayer(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.register_buffer("inv_freq", rope_frequencies(cfg), persistent=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids and attention mask -> [B, T, hidden] last hidden states."""
        x = self.word(ids)
        if self.token_type is not None:
            x = x + self.token_type.weight[0]
        x = self.ln(x)
        angles = torch.arange(ids.shape[1], dtype=torch.float32, device=ids.device)[:, None] * self.inv_freq[None]
        angles = torch.cat([angles, angles], -1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        keep = mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, keep, cos, sin)
        return x


# their parameter names -> ours ("{i}" is the layer index)
_NAMES = {
    "embeddings.word_embeddings": "word",
    "embeddings.token_type_embeddings": "token_type",
    "embeddings.LayerNorm": "ln",
    "encoder.layer.{i}.attention.qkv_proj": "layers.{i}.qkv",
    "encoder.layer.{i}.attention.o_proj": "layers.{i}.o",
    "encoder.layer.{i}.mlp.up_gate_proj": "layers.{i}.up_gate",
    "encoder.layer.{i}.mlp.down_proj": "layers.{i}.down",
    "encoder.layer.{i}.attn_ln": "layers.{i}.ln_attn",
    "encoder.layer.{i}.mlp_ln": "layers.{i}.ln_mlp",
}


def supports(folder: Path) -> bool:
    """True for a folder holding a GTE v1.5 ("new" architecture) model with tokenizer.json and safetensors."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        cfg.get("model_type") == "new"
        and (folder / "tokenizer.json").is_file()
        and (folder / "model.safetensors").is_file()
    )


def check_config(cfg: dict) -> None:
    refused = {
        "logn_attention_scale": cfg.get("logn_attention_scale", False),
        "layer_norm_type != layer_norm": cfg.get("layer_norm_type", "layer_norm") != "layer_norm",
        "pack_qkv false": not cfg.get("pack_qkv", True),
        "position_embedding_type != rope": cfg.get("position_embedding_type", "rope") != "rope",
        f"hidden_act {cfg.get('hidden_act')!r}": cfg.get("hidden_act", "gelu") not in _ACTS,
        "rope_scaling type other than ntk": (cfg.get("rope_scaling") or {"type": "ntk"}).get("type") != "ntk",
    }
    bad = [name for name, on in refused.items() if on]
    if bad:
        raise T2LError(f"this GTE config uses {', '.join(bad)}, which t2l's GTE encoder does not implement")


def load_gte(folder: Path) -> Gte:
    from safetensors.torch import load_file

    cfg = json.loads((Path(folder) / "config.json").read_text())
    check_config(cfg)
    model = Gte(cfg)
    rename = {}
    for theirs, ours in _NAMES.items():
        for i in range(cfg["num_hidden_layers"]) if "{i}" in theirs else [None]:
            for p in ("weight", "bias"):
                rename[f"{theirs.format(i=i)}.{p}"] = f"{ours.format(i=i)}.{p}"
    state = {}
    for key, value in load_file(Path(folder) / "model.safetensors").items():
        key = key.removeprefix("new.")
        if key in rename:
            state[rename[key]] = value.float()
    model.load_state_dict(state)  # strict: a missing weight is an error, not a silent random init
    return model.eval().requires_grad_(False)
