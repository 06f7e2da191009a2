"""The Text-to-LoRA hypernetwork (Charakorn et al., 2025).

description embedding -> task encoder (linear + layer norm)
  ++ learned embeddings of the layer index and module type (and, for M/S, of A-or-B and the rank row)
  -> MLP trunk -> a head per module type -> LoRA A [r, in] and B [out, r] for every (module, layer).

Every query (module, layer, ...) of every description goes through the trunk as one batch: no Python loop over
layers. The only loop is over module types (two by default), because each has its own head width.
"""

import math

import torch
from torch import nn

from t2l.config import HypernetConfig, TargetSet


class HyperLoRA(nn.Module):
    def __init__(self, config: HypernetConfig, targets: TargetSet):
        super().__init__()
        self.config, self.targets = config, targets
        c, r = config, config.rank
        self.modules_ = targets.modules
        self.task_encoder = nn.Sequential(nn.Linear(c.embed_dim, c.task_dim), nn.LayerNorm(c.task_dim))
        if c.examples and c.examples_as == "mean":  # their mean embedding joins the description's before the norm
            self.example_encoder = nn.Linear(c.embed_dim, c.task_dim, bias=False)
            nn.init.zeros_(self.example_encoder.weight)  # so no examples, or an untrained map, changes nothing
        self.layer_emb = nn.Embedding(targets.num_layers, c.pos_dim)
        self.module_emb = nn.Embedding(len(self.modules_), c.pos_dim)
        n_extra = {"L": 0, "M": 1, "S": 2}[c.variant]
        if n_extra >= 1:
            self.ab_emb = nn.Embedding(2, c.pos_dim)
        if n_extra == 2:
            self.rank_emb = nn.Embedding(r, c.pos_dim)

        layers: list[nn.Module] = []
        width = c.task_dim + (2 + n_extra) * c.pos_dim
        for _ in range(c.depth):
            layers += [nn.Linear(width, c.hidden_dim), nn.SiLU()]
            width = c.hidden_dim
        self.trunk = nn.Sequential(*layers, nn.LayerNorm(c.hidden_dim))

        self.heads = nn.ModuleDict()
        self.a_init = nn.ParameterDict()
        for m in self.modules_:
            t = targets.of(m)[0]
            d_in, d_out = t.in_features, t.out_features
            out = {"L": r * (d_in + d_out), "M": r * max(d_in, d_out), "S": max(d_in, d_out)}[c.variant]
            self.heads[m] = head = nn.Linear(c.hidden_dim, out)
            # "Hyper-init": an untrained hypernet emits plain LoRA init, A ~ kaiming-uniform and B = 0, so every
            # adapter starts as the identity and training moves B (then A) away from it per description.
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
            a0 = torch.empty(r, d_in)
            nn.init.kaiming_uniform_(a0, a=math.sqrt(5))
            self.a_init[m] = nn.Parameter(a0)

        # The (module, layer, [A/B], [rank]) index of every query, in emission order; built once.
        rows = []
        for mi, m in enumerate(self.modules_):
            for t in targets.of(m):
                if c.variant == "L":
                    rows.append((mi, t.layer, 0, 0))
                else:
                    rows += [(mi, t.layer, ab, k) for ab in (0, 1) for k in range(r if c.variant == "S" else 1)]
        q = torch.tensor(rows, dtype=torch.long)
        for i, name in enumerate(("q_module", "q_layer", "q_ab", "q_rank")):
            self.register_buffer(name, q[:, i].contiguous(), persistent=False)
        self.query_counts = [sum(1 for row in rows if row[0] == mi) for mi in range(len(self.modules_))]

    def forward(
        self, description_emb: torch.Tensor, examples_emb: torch.Tensor | None = None
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """[N, embed_dim] (and the mean embedding of each adapter's examples [N, embed_dim], zeros for none) ->
        {module: (A [N, layers, r, in], B [N, layers, out, r])}. A zero description embedding means "examples
        only"."""
        n, r = description_emb.shape[0], self.config.rank
        linear, norm = self.task_encoder
        h = linear(description_emb)
        if examples_emb is not None:
            h = h + self.example_encoder(examples_emb)
        task = norm(h)  # [N, task_dim]
        parts = [self.layer_emb(self.q_layer), self.module_emb(self.q_module)]
        if hasattr(self, "ab_emb"):
            parts.append(self.ab_emb(self.q_ab))
        if hasattr(self, "rank_emb"):
            parts.append(self.rank_emb(self.q_rank))
        pos = torch.cat(parts, -1)  # [Q, k * pos_dim]
        x = torch.cat([task[:, None, :].expand(n, pos.shape[0], -1), pos[None].expand(n, -1, -1)], -1)
        h = self.trunk(x)  # [N, Q, hidden]

        out = {}
        for m, h_m in zip(self.modules_, h.split(self.query_counts, dim=1)):
            t = self.targets.of(m)[0]
            d_in, d_out, n_layers = t.in_features, t.out_features, len(self.targets.of(m))
            y = self.heads[m](h_m)
            if self.config.variant == "L":
                a = y[..., : r * d_in].reshape(n, n_layers, r, d_in)
                b = y[..., r * d_in :].reshape(n, n_layers, d_out, r)
            else:  # M and S: rows (layer, A/B, rank) of width max(in, out)
                y = y.reshape(n, n_layers, 2, r, -1)
                a = y[:, :, 0, :, :d_in]
                b = y[:, :, 1, :, :d_out].transpose(-1, -2)
            out[m] = (a + self.a_init[m], b)
        return out
