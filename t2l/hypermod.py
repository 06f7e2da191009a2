"""The Text-to-LoRA authors' hypernetwork architecture, for hypernetworks imported from their release (`t2l.authors`).

Same interface as `t2l.hypernet.HyperLoRA`: description embeddings [N, embed_dim] in, {module: (A [N, layers, r, in],
B [N, layers, out, r])} out. The shape of the network (see `HyperModConfig`):

  task = LayerNorm(Linear(embedding))                                           [d/2]
  x    = task ++ LayerNorm(layer embedding) ++ LayerNorm(module embedding)      [d]
  h    = block1(mixer(x))                  mixer: Linear d->4d, SiLU, Linear 4d->d, SiLU
  h    = block2(h [+ LayerNorm(A-or-B output embedding)] [at rank position k])   block: h + MLP(LayerNorm(h))
  out  = head_m(out_mlp(h))                out_mlp: LayerNorm, Linear d->4d, SiLU, Linear 4d->head_in, SiLU

then A and B are cut from the head's output, mapped back from z-scores and offset by a stored per-layer LoRA (the
multi-task LoRA their SFT can start from; zeros otherwise). Inference only: their dropouts (p=0.05) are identities
in eval mode, so they are left out, and a hypernetwork of this kind cannot be trained further by t2l.
"""

import torch
import torch.nn.functional as F
from torch import nn

from t2l.config import HypernetConfig, HyperModConfig, TargetSet


class MLP(nn.Module):
    """SiLU(Linear(SiLU(Linear(LayerNorm(h))))): the width goes to 4 d, then to `out` (default d)."""

    def __init__(self, d: int, out: int | None = None):
        super().__init__()
        self.ln, self.up, self.down = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, out or d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.silu(self.down(F.silu(self.up(self.ln(h)))))


class ResidualMLP(MLP):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + super().forward(h)


def rotate_rows(h: torch.Tensor) -> torch.Tensor:
    """LLaMA's rotary embedding over the last dim of h [..., r, d], row k at position k (base 10000)."""
    r, d = h.shape[-2:]
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float32, device=h.device) / d))
    angles = torch.arange(r, dtype=torch.float32, device=h.device)[:, None] * inv_freq[None]
    angles = torch.cat([angles, angles], -1)
    half = torch.cat([-h[..., d // 2 :], h[..., : d // 2]], -1)
    return h * angles.cos().to(h.dtype) + half * angles.sin().to(h.dtype)


class HyperMod(nn.Module):
    def __init__(self, config: HypernetConfig, targets: TargetSet):
        super().__init__()
        self.config, self.targets, hm = config, targets, config.hypermod
        assert hm is not None, "a HyperMod is built from a config with hypermod set (t2l.authors)"
        d, r = hm.latent_size, config.rank
        self.modules_ = targets.modules
        self.task_encoder = nn.Sequential(nn.Linear(config.embed_dim, d // 2), nn.LayerNorm(d // 2))
        self.layer_emb = nn.Sequential(nn.Embedding(targets.num_layers, d // 4), nn.LayerNorm(d // 4))
        self.module_emb = nn.Sequential(nn.Embedding(len(self.modules_), d // 4), nn.LayerNorm(d // 4))
        self.mixer = nn.Sequential(nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d), nn.SiLU())
        self.block1, self.block2 = ResidualMLP(d), ResidualMLP(d)
        self.out_mlp = MLP(d, hm.head_in_size)
        if hm.shared_ab_head:
            self.ab_emb = nn.ParameterDict({m: nn.Parameter(torch.zeros(2, d)) for m in self.modules_})
            self.ab_norm = nn.LayerNorm(d)
        if hm.rank_at_a_time and hm.rank_position == "learned":
            self.rank_emb = nn.Sequential(nn.Embedding(r, d), nn.LayerNorm(d))
        self.heads = nn.ModuleDict()
        for m in self.modules_:
            t = targets.of(m)[0]
            width = max(t.in_features, t.out_features) if hm.shared_ab_head else t.in_features + t.out_features
            self.heads[m] = nn.Linear(hm.head_in_size, width * (1 if hm.rank_at_a_time else r), bias=hm.head_bias)
            n = len(targets.of(m))
            stored = ["offset"] + (["mean", "std"] if hm.z_score else [])
            for kind in stored:
                self.register_buffer(f"{kind}_A_{m}", torch.zeros(n, r, t.in_features))
                self.register_buffer(f"{kind}_B_{m}", torch.zeros(n, t.out_features, r))
        for m in self.modules_:
            self.register_buffer(f"layers_{m}", torch.tensor([t.layer for t in targets.of(m)]), persistent=False)

    @property
    def hm(self) -> HyperModConfig:
        assert self.config.hypermod is not None  # checked in __init__
        return self.config.hypermod

    def _rows(self, h: torch.Tensor) -> torch.Tensor:
        """h [B, d] -> the head's input, [B, r, d] one row per rank (rank_at_a_time) or [B, d]."""
        hm, r = self.hm, self.config.rank
        if not hm.rank_at_a_time:
            return self.block2(h)
        shared = hm.shared_ab_head  # with the shared head, h has been through block 2 already (their order)
        rows = h[:, None, :].expand(-1, r, -1)
        if hm.rank_position == "learned":
            pos = self.rank_emb(torch.arange(r, device=h.device))[None]
            return rows + self.block2(pos) if shared else self.block2(rows + pos)
        return self.block2(rotate_rows(rows))

    def _raw(self, m: str, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's A [B, r, in] and B [B, r, out] (B not yet transposed) for module type m."""
        hm, r = self.hm, self.config.rank
        t = self.targets.of(m)[0]
        d_in, d_out = t.in_features, t.out_features

        def head(x):
            return self.heads[m](self.out_mlp(x))

        b_size = h.shape[0]
        if not hm.shared_ab_head:
            y = head(self._rows(h))
            if hm.rank_at_a_time:  # [B, r, in + out]
                return y[..., :d_in], y[..., d_in:]
            return y[:, : r * d_in].reshape(b_size, r, d_in), y[:, r * d_in :].reshape(b_size, r, d_out)
        out = []
        for which, width in ((0, d_in), (1, d_out)):
            x = self.block2(h + self.ab_norm(self.ab_emb[m][which]))
            y = head(self._rows(x) if hm.rank_at_a_time else x)
            out.append(y.reshape(b_size, r, -1)[..., :width])  # rows of max(in, out), cut to this side's width
        return out[0], out[1]

    def forward(self, description_emb: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        n = description_emb.shape[0]
        task = self.task_encoder(description_emb)  # [N, d/2]
        out = {}
        for mi, m in enumerate(self.modules_):
            layers = getattr(self, f"layers_{m}")
            n_layers = layers.shape[0]
            pos = torch.cat([self.layer_emb(layers), self.module_emb(torch.full_like(layers, mi))], -1)  # [L, d/2]
            x = torch.cat([task[:, None].expand(-1, n_layers, -1), pos[None].expand(n, -1, -1)], -1)
            h = self.block1(self.mixer(x.reshape(n * n_layers, -1)))
            a, b = self._raw(m, h)
            a = a.reshape(n, n_layers, *a.shape[1:])
            b = b.reshape(n, n_layers, *b.shape[1:]).transpose(-1, -2)
            out[m] = (self._to_lora(m, "A", a), self._to_lora(m, "B", b))
        return out

    def _to_lora(self, m: str, which: str, x: torch.Tensor) -> torch.Tensor:
        hm = self.hm
        if hm.z_score:
            x = x * (getattr(self, f"std_{which}_{m}") + 1e-10) + getattr(self, f"mean_{which}_{m}")
        return x * hm.output_scale + getattr(self, f"offset_{which}_{m}")
