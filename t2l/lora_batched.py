"""Per-example LoRA on a frozen model, for training a hypernetwork on batches that mix tasks.

Each example i carries its own A_i [r, in] and B_i [out, r]; a forward hook on every target Linear adds
scale * (x_i @ A_i^T) @ B_i^T for the whole batch as one batched matmul. Hooks are registered once per run:
no module is re-patched per example or per step.
"""

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from t2l.config import TargetSet


class BatchedLoRA:
    def __init__(self, model: torch.nn.Module, targets: TargetSet, scaling: float, dropout: float = 0.0):
        self.scaling, self.dropout = scaling, dropout
        self.weights: dict | None = None
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
            return out + self.scaling * (x @ a.transpose(-1, -2)) @ b.transpose(-1, -2)

        return add_delta

    @contextmanager
    def use(self, weights: dict):
        """Run the model with `weights` ({module: (A [N, layers, r, in], B [N, layers, out, r])}) applied."""
        self.weights = weights
        try:
            yield
        finally:
            self.weights = None

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
