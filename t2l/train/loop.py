"""The training loop shared by every recipe: task-balanced sampling, token-summed loss that gives the same
gradients on one process or many, cosine schedule, and state that resumes bit for bit.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from t2l.errors import T2LError
from t2l.lm import head_logits
from t2l.train.data import IGNORE


@dataclass
class TrainSettings:
    """Optimisation settings shared by the recipes."""

    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 8
    """Examples per step, over all processes together."""
    lr: float = 1e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 0.01
    warmup_steps: int = 0
    """Linear warm-up, then cosine decay to a tenth of `lr`."""
    max_length: int = 256
    """Tokens per example (prompt cut from the left, output kept)."""
    grad_clip: float = 1.0
    seed: int = 0
    description_noise: float = 0.0
    """sft only: Gaussian noise of this expected norm added to each (unit-norm) description embedding while
    training, so nearby descriptions must give similar adapters (0: off)."""
    packing: bool = False
    """sft only: put several examples end to end in each row (rows of max_length tokens) instead of padding every
    example to the batch's longest; the same loss and gradients, fewer padded positions to compute."""
    no_description: float = 0.0
    """sft with hypernet.examples: the share of draws with examples whose description is left out, so that
    examples alone make an adapter too."""
    examples_lr_scale: float = 1.0
    """sft with hypernet.examples: the examples' map learns at this multiple of `lr` (warm-started from a
    description-only hypernetwork it starts at zero, while everything else is already trained)."""
    init_from: str | None = None
    """sft: start from this hypernetwork's weights (a hypernetwork folder or `default`) instead of a fresh init; parts
    it lacks (the examples' map of a description-only one) keep their init."""

    def __post_init__(self):
        if self.description_noise < 0:
            raise T2LError(
                f"train.description_noise must be 0 or more, not {self.description_noise}; set "
                "train.description_noise=0 (off) or a small spread such as 0.1"
            )
        if not 0 <= self.no_description < 1:
            raise T2LError(
                f"train.no_description must be at least 0 and below 1, not {self.no_description}; set "
                "a share such as train.no_description=0.25 (0: every draw keeps its description)"
            )


@dataclass
class StepMetrics:
    step: int
    loss: float
    tokens: int
    """Tokens the model processed (prompts and outputs, all processes)."""
    tokens_per_s: float
    lr: float


class Sampler:
    """Draws a task uniformly, then an example of it, then one of the task's descriptions: small tasks count as
    much as big ones, and every phrasing of a task gets used. Draws are global (identical on every process).

    With `shots` > 0 each draw also gets 0 to `shots` other examples of its task to condition on (never the one it
    trains on), taken from the task's first `pool` examples so their embeddings repeat; with `no_description`, that
    share of the draws that have examples leaves the description out (description index -1)."""

    def __init__(
        self,
        example_tasks: list[int],
        descriptions_per_task: list[int],
        shots: int = 0,
        no_description: float = 0.0,
        pool: int = 16,
    ):
        """example_tasks[row] is the row's task index, or -1 to leave the row out (a held-out task)."""
        tasks = torch.tensor(example_tasks)
        valid = torch.nonzero(tasks >= 0).flatten()
        if len(valid) == 0:
            raise T2LError(
                "no training examples left after holding tasks out: every task with examples is held "
                "out; lower data.holdout, or train on a collection with more tasks"
            )
        self.rows_by_task = valid[torch.argsort(tasks[valid], stable=True)]
        self.counts = torch.bincount(tasks[valid], minlength=len(descriptions_per_task))
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        self.n_desc = torch.tensor(descriptions_per_task)
        self.present = torch.nonzero(self.counts).flatten()
        self.shots, self.no_description, self.pool = shots, no_description, pool

    def draw(self, gen: torch.Generator, k: int) -> tuple[list[int], list[int], list[list[int]]]:
        """(example rows, description index, rows of the examples to condition on) for k draws."""
        t = self.present[torch.randint(len(self.present), (k,), generator=gen)]
        u = torch.rand(k, generator=gen)
        v = torch.rand(k, generator=gen)
        rows = self.rows_by_task[self.offsets[t] + (u * self.counts[t]).long()]
        descs = (v * self.n_desc[t]).long().tolist()
        if not self.shots:  # no further draws: description-only runs keep their exact random stream
            return rows.tolist(), descs, [[] for _ in range(k)]
        shots = []
        for i, (task, row) in enumerate(zip(t.tolist(), rows.tolist())):
            pool = self.rows_by_task[self.offsets[task] : self.offsets[task] + min(self.pool, int(self.counts[task]))]
            others = [r for r in pool[torch.randperm(len(pool), generator=gen)].tolist() if r != row]
            n = int(torch.randint(self.shots + 1, (1,), generator=gen))
            shots.append(others[:n])
            if shots[-1] and float(torch.rand(1, generator=gen)) < self.no_description:
                descs[i] = -1
        return rows.tolist(), descs, shots


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over labelled positions, and how many there were (the loss's tokens)."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    loss = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return loss, int((shift_labels != IGNORE).sum())


def causal_lm_loss_sum(
    model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor | None = None
) -> tuple[torch.Tensor, int]:
    """token_loss_sum without the full logits: the LM head runs only where a label is, i.e. on the few output
    tokens instead of every position (the head is a fifth of SmolLM2-135M's compute per token). `mask` is the
    usual [B, T] padding mask, or a ready [B, 1, T, T] one with `positions` (packed rows)."""
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
    shifted = labels[:, 1:]
    keep = shifted != IGNORE
    return F.cross_entropy(head_logits(model, hidden[:, :-1][keep]), shifted[keep], reduction="sum"), int(keep.sum())


def lr_at(step: int, s: TrainSettings) -> float:
    """Linear warmup to `lr`, then cosine decay to a tenth of it over the steps that remain.

    The decay starts where the warmup ends: multiplying the two instead (as this once did) means a short run with a
    long warmup never reaches its learning rate (160 steps with 100 of warmup peaked at 0.44 x lr).
    """
    if s.warmup_steps and step < s.warmup_steps:
        return s.lr * step / s.warmup_steps
    progress = min(1.0, (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps))
    return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    """Runs `objective` (module + loss over example rows) with AdamW; knows about torch.distributed when it is up.

    objective.loss_sum(module, rows, descs, shots) -> (summed loss, labelled tokens, all tokens) for this process's
    rows (shots: the rows of the examples each row's adapter is made from, empty lists without examples);
    objective.module is what trains (wrapped in DistributedDataParallel when world > 1).
    """

    def __init__(self, objective, sampler: Sampler, settings: TrainSettings):
        import torch.distributed as dist

        self.objective, self.sampler, self.s = objective, sampler, settings
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if settings.batch_size % self.world:
            fits = max(self.world, settings.batch_size // self.world * self.world)
            raise T2LError(
                f"train.batch_size={settings.batch_size} must be a multiple of the {self.world} processes; "
                f"set train.batch_size={fits}, or start a number of processes that divides it"
            )
        module = objective.module
        if self.distributed:
            module = torch.nn.parallel.DistributedDataParallel(module)
        self.module = module
        groups = (
            objective.param_groups(settings)
            if hasattr(objective, "param_groups")
            else [{"params": [p for p in objective.module.parameters() if p.requires_grad]}]
        )
        self.params = [p for g in groups for p in g["params"]]
        self.opt = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
        self.gen = torch.Generator().manual_seed(settings.seed)
        torch.manual_seed(settings.seed + 1)
        self.step_done = 0

    def _all_sum(self, value: float | int) -> float:
        if not self.distributed:
            return value
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return t.item()

    def step(self) -> StepMetrics:
        t0 = time.perf_counter()
        rows, descs, shots = self.sampler.draw(self.gen, self.s.batch_size)
        mine = slice(self.rank, None, self.world)
        rows, descs, shots = rows[mine], descs[mine], shots[mine]
        lr = lr_at(self.step_done + 1, self.s)
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        self.objective.module.train()
        loss_sum, labelled, processed = self.objective.loss_sum(self.module, rows, descs, shots)
        total_labelled = self._all_sum(labelled)
        # Normalise by the labelled tokens of the whole global batch (times world, undoing DDP's gradient mean),
        # so that N processes compute exactly the gradient one process would.
        (loss_sum * self.world / max(total_labelled, 1)).backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.s.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step_done += 1
        loss = self._all_sum(loss_sum.item()) / max(total_labelled, 1)
        processed = self._all_sum(processed)
        return StepMetrics(self.step_done, loss, int(processed), processed / (time.perf_counter() - t0), lr)

    @torch.no_grad()
    def eval_loss(
        self, rows: list[int], descs: list[int], shots: list[list[int]] | None = None, batch: int = 8
    ) -> float:
        self.objective.module.eval()
        shots = shots or [[] for _ in rows]
        total, tokens = 0.0, 0
        for i in range(0, len(rows), batch):
            loss, n, _ = self.objective.loss_sum(
                self.objective.module, rows[i : i + batch], descs[i : i + batch], shots[i : i + batch]
            )
            total, tokens = total + loss.item(), tokens + n
        return total / max(tokens, 1)

    # -- state for bit-for-bit resume ---------------------------------------------------------------

    def state(self) -> tuple[dict, dict]:
        tensors = {f"module.{k}": v.detach().clone() for k, v in self.objective.weights().items()}
        opt = self.opt.state_dict()
        meta = {"step": self.step_done, "param_groups": opt["param_groups"], "optimizer": {}}
        for idx, st in opt["state"].items():
            meta["optimizer"][str(idx)] = {}
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{idx}.{k}"] = v
                else:
                    meta["optimizer"][str(idx)][k] = v
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.sampler"] = self.gen.get_state()
        return tensors, meta

    def load_state(self, tensors: dict, meta: dict) -> None:
        self.objective.load_weights({k[7:]: v for k, v in tensors.items() if k.startswith("module.")})
        state = {int(i): dict(extra) for i, extra in meta["optimizer"].items()}
        for key, v in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        self.opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        self.gen.set_state(tensors["rng.sampler"])
        self.step_done = meta["step"]


def run_steps(trainer: Trainer, until: int, on_step: Callable[[StepMetrics], bool | None] | None = None):
    """Step until `until`, or until on_step returns True (a time budget, a checkpoint boundary...)."""
    history = []
    while trainer.step_done < until:
        m = trainer.step()
        history.append(m)
        if on_step and on_step(m):
            break
    return history
