"""SFT of a hypernetwork end to end through the frozen base model (the paper's main recipe).

Each batch mixes tasks; every example runs with the adapter generated from one of its task's descriptions
(`BatchedLoRA`), and the loss is next-token cross-entropy on the output tokens only.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from t2l.config import HypernetConfig
from t2l.hypernet import HyperLoRA
from t2l.lora_batched import BatchedLoRA
from t2l.targets import find_targets
from t2l.train.data import Example, collate, encode_example


@dataclass
class SFTSettings:
    """Optimisation settings of the sft recipe."""

    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 8
    """Examples per step, drawn across tasks."""
    lr: float = 1e-4
    """AdamW learning rate of the hypernetwork."""
    weight_decay: float = 0.01
    max_length: int = 256
    """Tokens per example (prompt cut from the left, output kept)."""
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class StepMetrics:
    step: int
    loss: float
    tokens: int
    tokens_per_s: float


def build_hypernet(base_model, config: HypernetConfig) -> HyperLoRA:
    return HyperLoRA(config, find_targets(base_model, config.target_modules))


def train_sft(hypernet: HyperLoRA, base_model, tokenizer, examples: list[Example],
              task_embeddings: list[torch.Tensor], settings: SFTSettings,
              on_step: Callable[[StepMetrics], None] | None = None) -> list[StepMetrics]:
    """Train `hypernet` in place. `task_embeddings[t]` holds [k, dim] embeddings of task t's descriptions;
    each example draws one of them at random, so the hypernet learns from every phrasing a task has."""
    gen = torch.Generator().manual_seed(settings.seed)
    encoded = [encode_example(tokenizer, ex, settings.max_length) for ex in examples]
    lora = BatchedLoRA(base_model, hypernet.targets, hypernet.config.alpha / hypernet.config.rank,
                       hypernet.config.dropout)
    opt = torch.optim.AdamW(hypernet.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    base_model.eval()  # dropout off in the frozen base; the hypernet trains
    hypernet.train()
    history = []
    try:
        for step in range(1, settings.steps + 1):
            t0 = time.perf_counter()
            idx = torch.randint(len(examples), (settings.batch_size,), generator=gen).tolist()
            emb = torch.stack([_pick(task_embeddings[examples[i].task], gen) for i in idx])
            ids, mask, labels = collate([encoded[i] for i in idx], tokenizer.pad_token_id)
            with lora.use(hypernet(emb)):
                loss = base_model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(hypernet.parameters(), settings.grad_clip)
            opt.step()
            tokens = int(mask.sum())
            m = StepMetrics(step, loss.item(), tokens, tokens / (time.perf_counter() - t0))
            history.append(m)
            if on_step:
                on_step(m)
    finally:
        lora.remove()
    hypernet.eval()
    return history


def _pick(embs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return embs[torch.randint(embs.shape[0], (1,), generator=gen).item()]
