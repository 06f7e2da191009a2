"""A plain-torch BERT encoder, the architecture of all-MiniLM-L6-v2.

Reading a description should not pay for importing transformers' model zoo (about 2 s on a laptop CPU, most of
`t2l make`'s wall time), so BERT-family encoders run on this small module and the `tokenizers` library; any other
encoder goes through transformers (see `encoder.py`). Weights load from the model's own safetensors file.
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
        self.ln_attn = nn.LayerNorm(hidden, eps=eps)
        self.up, self.down = nn.Linear(hidden, intermediate), nn.Linear(intermediate, hidden)
        self.ln_mlp = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, -1).transpose(1, 2) for proj in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # post-norm residuals, as in BERT
        x = self.ln_attn(x + self.o(a.transpose(1, 2).reshape(b, t, h)))
        return self.ln_mlp(x + self.down(F.gelu(self.up(x))))


class Bert(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h, eps = cfg["hidden_size"], cfg.get("layer_norm_eps", 1e-12)
        self.word = nn.Embedding(cfg["vocab_size"], h)
        self.position = nn.Embedding(cfg["max_position_embeddings"], h)
        self.token_type = nn.Embedding(cfg.get("type_vocab_size", 2), h)
        self.ln = nn.LayerNorm(h, eps=eps)
        self.layers = nn.ModuleList(
            BertLayer(h, cfg["num_attention_heads"], cfg["intermediate_size"], eps)
            for _ in range(cfg["num_hidden_layers"])
        )

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids and attention mask -> [B, T, hidden] last hidden states."""
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.ln(self.word(ids) + self.position(pos) + self.token_type.weight[0])
        keep = mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, keep)
        return x


# transformers' parameter names -> ours ("{i}" is the layer index)
_NAMES = {
    "embeddings.word_embeddings": "word",
    "embeddings.position_embeddings": "position",
    "embeddings.token_type_embeddings": "token_type",
    "embeddings.LayerNorm": "ln",
    "encoder.layer.{i}.attention.self.query": "layers.{i}.q",
    "encoder.layer.{i}.attention.self.key": "layers.{i}.k",
    "encoder.layer.{i}.attention.self.value": "layers.{i}.v",
    "encoder.layer.{i}.attention.output.dense": "layers.{i}.o",
    "encoder.layer.{i}.attention.output.LayerNorm": "layers.{i}.ln_attn",
    "encoder.layer.{i}.intermediate.dense": "layers.{i}.up",
    "encoder.layer.{i}.output.dense": "layers.{i}.down",
    "encoder.layer.{i}.output.LayerNorm": "layers.{i}.ln_mlp",
}


def supports(folder: Path) -> bool:
    """True for a BERT with absolute positions and exact GELU, whose tokenizer ships as tokenizer.json."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        cfg.get("model_type") == "bert"
        and cfg.get("hidden_act", "gelu") == "gelu"
        and cfg.get("position_embedding_type", "absolute") == "absolute"
        and (folder / "tokenizer.json").is_file()
        and (folder / "model.safetensors").is_file()
    )


def load_bert(folder: Path) -> Bert:
    from safetensors.torch import load_file

    cfg = json.loads((folder / "config.json").read_text())
    model = Bert(cfg)
    rename = {}
    for hf, ours in _NAMES.items():
        for i in range(cfg["num_hidden_layers"]) if "{i}" in hf else [None]:
            for p in ("weight", "bias"):
                rename[f"{hf.format(i=i)}.{p}"] = f"{ours.format(i=i)}.{p}"
    state = {}
    for key, value in load_file(folder / "model.safetensors").items():
        key = key.removeprefix("bert.")
        if key in rename:
            state[rename[key]] = value.float()
    model.load_state_dict(state)  # strict: a missing weight is an error, not a silent random init
    return model.eval().requires_grad_(False)
