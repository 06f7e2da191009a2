"""lm-evaluation-harness task configs for our benches' local data, so the harness can be run on exactly the documents
t2l scores (benchmarks/eval_vs_lm_eval.py, and the test that compares prompt construction)."""

import json
from pathlib import Path

# The harness's own prompts, choices and metrics for these tasks (lm-eval 0.4 arc_easy.yaml / boolq.yaml), pointed at
# a JSONL file instead of the Hub dataset.
TASKS = {
    "arc_easy": """dataset_path: json
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
    "boolq": """dataset_path: json
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


def write_task(bench: str, docs: list[dict], folder: Path) -> str:
    """Write `docs` as JSONL and a task YAML reading them into `folder`; the harness task's name."""
    folder = Path(folder)
    data = folder / f"{bench}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    name = f"t2l_{bench}"
    (folder / f"{name}.yaml").write_text(f"task: {name}\n" + TASKS[bench].format(path=data))
    return name
