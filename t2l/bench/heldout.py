"""Do generated adapters move the base model toward tasks it never trained on?

For each task the hypernetwork held out of training: an adapter generated from the task's own description, and
one from another held-out task's description (the paper's control), against the bare base model. Reported per
task: loss of the reference answers (teacher-forced, output tokens only) and greedy exact match.

    .venv/bin/python -m t2l.bench.heldout --hypernet DIR [--collection DIR] [--examples 16]
"""

import argparse
import json
import statistics
from pathlib import Path

import torch

from t2l.base import load_base
from t2l.hypernet_files import read_hypernet_info
from t2l.home import t2l_home
from t2l.lora_batched import BatchedLoRA
from t2l.make import AdapterMaker
from t2l.tasks.collection import read_tasks
from t2l.train.data import Example, ExampleBatcher, encode_example
from t2l.train.loop import causal_lm_loss_sum


def per_example_loss(base, batcher, n) -> list[float]:
    out = []
    for i in range(n):
        ids, mask, labels = batcher.batch([i])
        loss, count = causal_lm_loss_sum(base, ids, mask, labels)
        out.append(loss.item() / max(count, 1))
    return out


def exact_match(base, tok, examples, max_new_tokens=24) -> float:
    hits = 0
    for ex in examples:
        ids, _ = encode_example(tok, Example(0, ex.input, ""), 10_000)
        prompt = torch.tensor([ids[:-1]])  # drop the EOS that stands for the empty output
        out = base.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
        text = tok.decode(out[0, prompt.shape[1] :], skip_special_tokens=True)
        hits += text.strip().lower() == ex.output.strip().lower()
    return hits / len(examples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hypernet", required=True)
    ap.add_argument("--collection", default=str(t2l_home() / "tasks" / "openai-evals"))
    ap.add_argument("--examples", type=int, default=16)
    args = ap.parse_args()

    info = read_hypernet_info(Path(args.hypernet))
    names = info.training["heldout_tasks"]
    tasks = read_tasks(Path(args.collection), names)
    maker = AdapterMaker(Path(args.hypernet))
    base, tok, _ = load_base(info.base_spec)
    made = maker.make([t.descriptions[0] for t in tasks])
    lora = BatchedLoRA(base, info.targets, info.config.alpha / info.config.rank)
    rows: list[tuple] = []
    totals: dict[str, list[float]] = {"base": [], "own": [], "other": []}
    for i, task in enumerate(tasks):
        examples = [Example(0, inp, out) for inp, out in task.examples[: args.examples]]
        batcher = ExampleBatcher(tok, examples, 256)
        result = {}
        with torch.no_grad():
            result["base"] = per_example_loss(base, batcher, len(examples))
            for kind, j in (("own", i), ("other", (i + 1) % len(tasks))):
                with lora.use(maker.hypernet(maker.encoder.encode([tasks[j].descriptions[0]]).embeddings)):
                    result[kind] = per_example_loss(base, batcher, len(examples))
                    if kind == "own":
                        em_own = exact_match(base, tok, examples)
            em_base = exact_match(base, tok, examples)
        means = {k: statistics.mean(v) for k, v in result.items()}
        for k in totals:
            totals[k].append(means[k])
        rows.append((task.name, means["base"], means["own"], means["other"], em_base, em_own))
    lora.remove()
    deltas = [any(not torch.equal(made[0].tensors[k], m.tensors[k]) for k in m.tensors) for m in made[1:]]
    print(
        f"hypernet {args.hypernet}: {info.training.get('steps')} steps; {len(tasks)} held-out tasks, "
        f"up to {args.examples} examples each; adapters differ between descriptions: {all(deltas)}"
    )
    print("| held-out task | loss base | loss own description | loss other task's description | EM base | EM own |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, b, o, x, eb, eo in rows:
        print(f"| {name} | {b:.3f} | {o:.3f} | {x:.3f} | {eb:.2f} | {eo:.2f} |")
    mean = {k: statistics.mean(v) for k, v in totals.items()}
    better = sum(o < b for _, b, o, *_ in rows)
    print(
        f"| **mean** | {mean['base']:.3f} | {mean['own']:.3f} | {mean['other']:.3f} | "
        f"{statistics.mean(r[4] for r in rows):.2f} | {statistics.mean(r[5] for r in rows):.2f} |"
    )
    print(f"\nown-description adapter lowers the answer loss below the base on {better} of {len(rows)} tasks")
    print(json.dumps({"mean_loss": mean}))


if __name__ == "__main__":
    main()
