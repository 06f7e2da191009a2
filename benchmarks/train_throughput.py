"""Training throughput of the sft recipe, two questions:

1. The hypernetwork against plain PEFT LoRA training of the same base, batch and length (synthetic rows). Target
   (issue #2): the hypernetwork costs at most 20% of throughput (ratio >= 0.8).
2. With `--collection DIR`: padded against packed batches on real examples of a task collection, drawn by the sft
   sampler. How much of a padded step is padding, and the useful (non-pad) tokens/s of each batching on the same
   draws, with the loss of every step compared (target, issue #15: packed >= 1.5x padded).

Contenders run in this process, alternating in rounds so machine noise hits both alike, and compute the loss the
recipes do (the LM head only on labelled positions).

    .venv/bin/python benchmarks/train_throughput.py [--batch 4] [--length 128] [--rounds 3] [--steps 4]
    .venv/bin/python benchmarks/train_throughput.py --collection DIR [--batch 8] [--length 192] [--steps 6]
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
    ap.add_argument("--collection", help="a task collection folder: compare padded and packed batches on it")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.collection:
        return batching(args)

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

    peft_model = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=list(cfg.target_modules))
    )
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
    print(
        f"batch {args.batch} x {args.length} tokens, rank {cfg.rank}, targets {','.join(cfg.target_modules)}, "
        f"hypernet variant {cfg.variant} ({n_params / 1e6:.1f} M params), {args.rounds} rounds x {args.steps} steps"
    )
    print("| trainer | tokens/s (median) | ratio to peft | target |")
    print("| --- | ---: | ---: | --- |")
    print(f"| peft lora | {peft:.0f} | 1.00 | |")
    print(f"| t2l sft | {sft:.0f} | {sft / peft:.2f} | >= 0.80 |")
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")


def batching(args) -> None:
    """Padded vs packed sft steps on the same sampled batches of a real collection."""
    from t2l.tasks.collection import read_manifest, read_tasks
    from t2l.train.data import Example
    from t2l.train.loop import Sampler
    from t2l.train.sft import HypernetObjective

    tasks = read_tasks(args.collection)
    examples = [Example(i, a, b) for i, t in enumerate(tasks) for a, b in t.examples]
    base, tokenizer, _ = load_base()
    encoder = load_encoder()
    cfg = HypernetConfig(variant=args.variant)
    embs = [torch.nn.functional.normalize(torch.randn(1, encoder.dim), dim=-1) for _ in tasks]  # content is irrelevant
    hypernet = build_hypernet(base, cfg)
    for p in hypernet.heads.parameters():  # non-zero adapters, so both paths really apply them
        torch.nn.init.normal_(p, std=1e-4)
    sampler = Sampler([e.task for e in examples], [1] * len(tasks))
    gen = torch.Generator().manual_seed(0)
    draws = [sampler.draw(gen, args.batch)[0] for _ in range(args.rounds * args.steps + 1)]
    padded = HypernetObjective(hypernet, base, tokenizer, examples, embs, args.length)
    packed = HypernetObjective(hypernet, base, tokenizer, examples, embs, args.length, packing=True)

    # how much of a padded batch is padding, over many more draws than are timed
    many = [sampler.draw(gen, args.batch)[0] for _ in range(500)]
    real = positions = rows_packed = 0
    for rows in many:
        enc = padded.batcher.encoded(rows)
        real += sum(len(x) for x, _ in enc)
        positions += len(enc) * max(len(x) for x, _ in enc)
        rows_packed += padded.batcher.pack(rows).ids.numel()
    opt = torch.optim.AdamW(hypernet.parameters(), lr=0.0)  # lr 0: every step sees the same weights

    def run(objective, rows):
        loss, labelled, tokens = objective.loss_sum(hypernet, rows, [0] * len(rows))
        (loss / labelled).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item() / labelled, tokens

    for obj in (padded, packed):
        run(obj, draws[0])  # warm-up
    rates, diffs = {"padded": [], "packed": []}, []
    for r in range(args.rounds):
        chunk = draws[1 + r * args.steps : 1 + (r + 1) * args.steps]
        losses = {}
        for name, obj in (("padded", padded), ("packed", packed)):
            t0, useful, losses[name] = time.perf_counter(), 0, []
            for rows in chunk:
                loss, tokens = run(obj, rows)
                losses[name].append(loss)
                useful += tokens
            rates[name].append(useful / (time.perf_counter() - t0))
        diffs += [abs(a - b) / abs(a) for a, b in zip(losses["padded"], losses["packed"])]
    pad, pk = statistics.median(rates["padded"]), statistics.median(rates["packed"])
    m = read_manifest(args.collection)
    print(
        f"collection {m.name} ({len(tasks)} tasks, sha256 {m.sha256[:12]}), batch {args.batch}, max_length "
        f"{args.length}, {args.rounds} rounds x {args.steps} steps on the same draws"
    )
    print(
        f"padding: {100 * (1 - real / positions):.1f}% of a padded batch's positions over 500 draws "
        f"({real / len(many):.0f} real tokens per batch); packed rows carry {100 * (1 - real / rows_packed):.1f}%"
    )
    print("| batching | useful tokens/s (median) | ratio | target |")
    print("| --- | ---: | ---: | --- |")
    print(f"| padded (one example per row) | {pad:.0f} | 1.00 | |")
    print(f"| packed (rows of {args.length}, per-token adapters) | {pk:.0f} | {pk / pad:.2f} | >= 1.50 |")
    print(f"\nloss per step, packed vs padded: max relative difference {max(diffs):.1e} over {len(diffs)} steps")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
