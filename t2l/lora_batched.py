"""Per-example LoRA on a frozen model, for training a hypernetwork on batches that mix tasks.

Each example i carries its own A_i [r, in] and B_i [out, r]; a forward hook on every target Linear adds
scale * (x_i @ A_i^T) @ B_i^T for the whole batch as one batched matmul. Hooks are registered once per run:
no module is re-patched per example or per step.

Packed rows hold several examples, so the adapter changes along a row: with `route` (the example index of each
token), every token goes through all the batch's A matrices at once, a mask keeps only its own example's r columns,
and one matmul with all the B matrices finishes it. That costs N times the (small) x @ A of one adapter and saves
every padded position the row would otherwise carry.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from t2l.config import TargetSet


@dataclass
class LoRAWeights:
    """One adapter as BatchedLoRA applies it: {module: (A [1, layers, r, in], B [1, layers, out, r])} over `targets`,
    and its scaling alpha / r. The one form an adapter takes in memory, whichever file it came from."""

    targets: TargetSet
    weights: dict
    scaling: float
    label: str = ""

    def to(self, device) -> "LoRAWeights":
        moved = {m: (a.to(device), b.to(device)) for m, (a, b) in self.weights.items()}
        return LoRAWeights(self.targets, moved, self.scaling, self.label)


def lora_weights(model: torch.nn.Module, tensors: dict, peft_config: dict, label: str = "") -> LoRAWeights:
    """An adapter's PEFT tensors in BatchedLoRA's layout, checked against `model`; one base model then takes adapter
    after adapter without being modified."""
    from t2l.adapter import check_shapes
    from t2l.targets import find_targets

    check_shapes(model, tensors)
    modules = list(dict.fromkeys(k.rsplit(".lora_", 1)[0].rsplit(".", 1)[-1] for k in tensors))
    targets = find_targets(model, modules)
    weights = {}
    for m in targets.modules:
        a = torch.stack([tensors[t.peft_key("A")] for t in targets.of(m)])[None]
        b = torch.stack([tensors[t.peft_key("B")] for t in targets.of(m)])[None]
        weights[m] = (a, b)
    return LoRAWeights(targets, weights, peft_config["lora_alpha"] / peft_config["r"], label)


@contextmanager
def applied(model: torch.nn.Module, adapter: LoRAWeights | None):
    """`model` with one adapter hooked in for the block (moved to the model's device), or as it is for None."""
    if adapter is None:
        yield
        return
    adapter = adapter.to(next(model.parameters()).device)
    hooks = BatchedLoRA(model, adapter.targets, adapter.scaling)
    try:
        with hooks.use(adapter.weights):
            yield
    finally:
        hooks.remove()


class BatchedLoRA:
    def __init__(self, model: torch.nn.Module, targets: TargetSet, scaling: float, dropout: float = 0.0):
        self.scaling, self.dropout = scaling, dropout
        self.weights: dict | None = None
        self.scale: torch.Tensor | None = None  # [N, 1, 1]: each row's own scaling (a batch of unrelated adapters)
        self.keep: torch.Tensor | None = None  # [R, T, N * r] 0/1: a token's own example's columns (packed rows)
        self.handles = []
        for module in targets.modules:
            for pos, t in enumerate(targets.of(module)):
                hook = self._hook(module, pos)
                self.handles.append(model.get_submodule(t.name).register_forward_hook(hook))

    def _hook(self, module: str, pos: int):
        def add_delta(linear, args, out):
            if self.weights is None:
                return out
            a, b = self.weights[module]
            x = F.dropout(args[0], self.dropout, linear.training)
            a, b = a[:, pos].to(x.dtype), b[:, pos].to(x.dtype)  # [N, r, in], [N, out, r]
            if self.keep is None:  # row i is example i
                xa = x @ a.transpose(-1, -2)
                xa = self.scaling * xa if self.scale is None else xa * self.scale.to(x.dtype)
                return out + xa @ b.transpose(-1, -2)
            xa = (x @ a.flatten(0, 1).T) * self.keep.to(x.dtype)  # [R, T, N * r], other examples' columns zeroed
            return out + self.scaling * xa @ b.transpose(-1, -2).flatten(0, 1)  # [N * r, out]

        return add_delta

    @contextmanager
    def use(self, weights: dict, route: torch.Tensor | None = None, scale: torch.Tensor | None = None):
        """Run the model with `weights` ({module: (A [N, layers, r, in], B [N, layers, out, r])}) applied: example i
        on row i, or, with `route` [R, T], example route[i, t] on token t of row i (-1: none, padding). `scale` [N]
        gives each row its own scaling instead of the one the hooks were made with."""
        self.weights = weights
        self.scale = None if scale is None else scale[:, None, None]
        if route is not None:
            a = next(iter(weights.values()))[0]
            n, r = a.shape[0], a.shape[2]
            self.keep = (route[..., None] == torch.arange(n, device=route.device)).repeat_interleave(r, -1)
        try:
            yield
        finally:
            self.weights, self.keep, self.scale = None, None, None

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
