"""Reconstruction: train a hypernetwork to reproduce a library of existing LoRAs from their descriptions
(the paper's first recipe): L1 distance between the generated and the target A and B, nothing else."""

from pathlib import Path

import torch

from t2l.adapter import read_adapter
from t2l.config import TargetSet
from t2l.errors import T2LError


def load_library(sources: list, targets: TargetSet, modules: list[str]) -> tuple[list[str], dict]:
    """(descriptions, {module: (A [n, layers, r, in], B [n, layers, out, r])}) of the source adapters.

    A source is a path to a t2l adapter (its description is inside) or {"path": ..., "description": ...} for
    any PEFT adapter."""
    descriptions: list[str] = []
    per_module: dict[str, tuple[list, list]] = {m: ([], []) for m in modules}
    for src in sources:
        path, description = (src.get("path"), src.get("description")) if isinstance(src, dict) else (src, None)
        if path is None:
            raise T2LError(f"library source {src!r} names no path; list it as {{path: ..., description: ...}}")
        tensors, info, _ = read_adapter(Path(path))
        description = description or (info.description if info else None)
        if not description:
            raise T2LError(f"{path} carries no description; list it as {{path: ..., description: ...}}")
        descriptions.append(description)
        for m in modules:
            try:
                a = torch.stack([tensors[t.peft_key("A")] for t in targets.of(m)]).float()
                b = torch.stack([tensors[t.peft_key("B")] for t in targets.of(m)]).float()
            except KeyError as e:
                raise T2LError(f"{path} has no LoRA weight {e.args[0]}; its targets differ from the recipe's") from None
            per_module[m][0].append(a)
            per_module[m][1].append(b)
    for m in modules:
        if len({a.shape for a in per_module[m][0]}) > 1:
            raise T2LError(f"the source adapters have different ranks or shapes for {m}; use one rank")
    return descriptions, {m: (torch.stack(a), torch.stack(b)) for m, (a, b) in per_module.items()}


class ReconObjective:
    def __init__(self, hypernet, library: dict, embeddings: list[torch.Tensor]):
        self.module, self.library, self.embeddings = hypernet, library, embeddings

    def loss_sum(self, module, rows: list[int], descs: list[int], shots: list[list[int]] | None = None):
        device = next(self.module.parameters()).device
        emb = torch.stack([self.embeddings[r][d] for r, d in zip(rows, descs)]).to(device)
        out = module(emb)
        loss = sum(
            (a - self.library[m][0][rows].to(device)).abs().mean(dim=(1, 2, 3)).sum()
            + (b - self.library[m][1][rows].to(device)).abs().mean(dim=(1, 2, 3)).sum()
            for m, (a, b) in out.items()
        )
        return loss, len(rows), len(rows)

    def weights(self) -> dict:
        return self.module.state_dict()

    def load_weights(self, state: dict) -> None:
        self.module.load_state_dict(state)

    def close(self) -> None:
        pass
