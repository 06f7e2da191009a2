"""Training tokens/s of the sft recipe against plain PEFT LoRA training of the same base, batch and length.

Target (issue #2): the hypernetwork costs at most 20% of throughput (ratio >= 0.8). Both run in this process,
alternating in rounds so that machine noise hits both alike, and both compute the loss the recipes do (the LM head
only on labelled positions).

    .venv/bin/python benchmarks/train_throughput.py [--batch 4] [--length 128] [--rounds 3] [--steps 4]
"""

import argparse
import copy
import os
import statistics
import time

import torch

from t2l.base import load_base
from t2l.config import HypernetConfig
from t2l.encoder import load_encoder
from t2l.lora_batched import BatchedLoRA
from t2l.train.loop import causal_lm_loss_sum
from t2l.train.sft import build_hypernet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per round and contender")
    ap.add_argument("--variant", default="M")
    args = ap.parse_args()
    torch.manual_seed(0)

    base, _, _ = load_base()
    cfg = HypernetConfig(variant=args.variant)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40000, (args.batch, args.length), generator=gen)
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, : args.length // 2] = -100  # loss on the second half, as on an output
    emb = load_encoder().encode([f"task number {i}" for i in range(args.batch)]).embeddings

    # t2l sft: a hypernet generates a different LoRA per example, applied by batched matmuls
    hypernet = build_hypernet(base, cfg)
    lora = BatchedLoRA(base, hypernet.targets, cfg.alpha / cfg.rank)
    opt_h = torch.optim.AdamW(hypernet.parameters(), lr=1e-4)

    def sft_step():
        with lora.use(hypernet(emb)):
            loss, n = causal_lm_loss_sum(base, ids, mask, labels)
        (loss / n).backward()
        opt_h.step()
        opt_h.zero_grad(set_to_none=True)

    # peer: one plain LoRA with the same rank/targets, through PEFT
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha,
                                                                 target_modules=list(cfg.target_modules)))
    opt_p = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)

    def peft_step():
        loss, n = causal_lm_loss_sum(peft_model, ids, mask, labels)
        (loss / n).backward()
        opt_p.step()
        opt_p.zero_grad(set_to_none=True)

    tokens = int(mask.sum()) * args.steps
    rates = {"t2l sft": [], "peft lora": []}
    for step in (sft_step, peft_step):
        step()  # warm-up
    for _ in range(args.rounds):
        for name, step in (("t2l sft", sft_step), ("peft lora", peft_step)):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(tokens / (time.perf_counter() - t0))

    sft, peft = statistics.median(rates["t2l sft"]), statistics.median(rates["peft lora"])
    n_params = sum(p.numel() for p in hypernet.parameters())
    print(f"batch {args.batch} x {args.length} tokens, rank {cfg.rank}, targets {','.join(cfg.target_modules)}, "
          f"hypernet variant {cfg.variant} ({n_params / 1e6:.1f} M params), {args.rounds} rounds x {args.steps} steps")
    print("| trainer | tokens/s (median) | ratio to peft | target |")
    print("| --- | ---: | ---: | --- |")
    print(f"| peft lora | {peft:.0f} | 1.00 | |")
    print(f"| t2l sft | {sft:.0f} | {sft / peft:.2f} | >= 0.80 |")
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
