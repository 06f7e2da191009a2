"""Tasks from the registry of OpenAI's `evals` (MIT), read straight out of its wheel.

Each eval's YAML `description` and its samples' system instructions become the task's descriptions; samples whose
`ideal` answer is short become (input, output) pairs, the input being the user's message alone (the instruction is
what the adapter has to carry). Evals that are not single-turn text-in/text-out are skipped with a reason.
"""

import random
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

from t2l.callbacks import Progress, Status
from t2l.errors import T2LError
from t2l.tasks.collection import MAX_EXAMPLES, Manifest, Task, safe_name
from t2l.tasks.descriptions import written
from t2l.tasks.decontam import benchmark_ngrams, name_overlap, text_overlap

WHEEL_VERSION = "3.0.1.post1"
WHEEL_NAME = f"evals-{WHEEL_VERSION}-py3-none-any.whl"
TEXT_CLASSES = (
    "evals.elsuite.basic.match:Match",
    "evals.elsuite.basic.includes:Includes",
    "evals.elsuite.basic.fuzzy_match:FuzzyMatch",
)
BIG_BENCH = ("big-bench", "bigbench", "big_bench", "bbh", "canary guid")
MAX_OUTPUT_CHARS = 100
MIN_EXAMPLES = 10
MIN_SHARE_FOR_DESCRIPTION = 0.1  # a system message shared by fewer samples is per-sample content, not a task


def ensure_wheel(cache: Path, on_status: Status | None = None) -> Path:
    """The evals wheel, downloaded once with pip (no install) into `cache`."""
    path = cache / WHEEL_NAME
    if path.is_file():
        return path
    if on_status:
        on_status(f"downloading evals=={WHEEL_VERSION} (46 MB, not installed)")
    cache.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache), f"evals=={WHEEL_VERSION}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not path.is_file():
        raise T2LError(
            f"could not download evals=={WHEEL_VERSION} with pip ({proc.stderr.strip()[-200:]}); "
            f"download it yourself and pass --wheel PATH"
        )
    return path


def _sample_pair(sample: dict) -> tuple[str | None, str, str] | None:
    """(system instruction or None, user input, ideal) for a single-turn text sample, else None."""
    ideal = sample.get("ideal")
    if isinstance(ideal, list):
        ideal = ideal[0] if ideal and isinstance(ideal[0], str) else None
    if not isinstance(ideal, str) or not ideal.strip() or len(ideal) > MAX_OUTPUT_CHARS:
        return None
    inp = sample.get("input")
    if isinstance(inp, str):
        return None, inp, ideal.strip()
    if not isinstance(inp, list) or not all(isinstance(m, dict) for m in inp):
        return None
    if any(m.get("role") not in ("system", "user") or "name" in m for m in inp):
        return None  # few-shot turns or assistant messages: not single-turn
    users = [m.get("content") for m in inp if m.get("role") == "user"]
    systems = [m.get("content") for m in inp if m.get("role") == "system"]
    if len(users) != 1 or len(systems) > 1 or not isinstance(users[0], str):
        return None
    system = systems[0] if systems and isinstance(systems[0], str) else None
    return system, users[0], ideal.strip()


def build_openai_evals(
    wheel: Path,
    max_examples: int = MAX_EXAMPLES,
    seed: int = 0,
    on_status: Status | None = None,
    on_progress: Progress | None = None,
    table: dict[int, str] | None = None,
) -> tuple[list[Task], Manifest]:
    """`table`: benchmark 13-grams to decontaminate against (default: all benchmarks, about half a minute to read)."""
    import json

    import yaml

    try:
        z = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise T2LError(f"{wheel} is not a readable wheel ({e}); download it again") from None
    names = set(z.namelist())
    specs = sorted(n for n in names if n.startswith("evals/registry/evals/") and n.endswith(".yaml"))
    if table is None:
        if on_status:
            on_status("reading benchmark items for decontamination")
        table = benchmark_ngrams(on_progress=on_progress)
    tasks, excluded = [], []
    rng = random.Random(seed)
    for done, spec_path in enumerate(specs, 1):
        if on_progress:
            on_progress(done, len(specs))
        try:
            doc = yaml.safe_load(z.read(spec_path)) or {}
        except yaml.YAMLError:
            excluded.append({"name": spec_path, "reason": "unparsable YAML"})
            continue
        for name, head in doc.items():
            if not isinstance(head, dict) or "id" not in head:
                continue
            task, reason = _task_from_eval(z, names, doc, name, head, max_examples, rng, table, json)
            if task:
                tasks.append(task)
            else:
                excluded.append({"name": name, "reason": reason})
    manifest = Manifest(
        name="openai-evals",
        source=f"evals=={WHEEL_VERSION} wheel (github.com/openai/evals)",
        license="MIT",
        excluded=excluded,
        build={
            "max_examples": max_examples,
            "seed": seed,
            "max_output_chars": MAX_OUTPUT_CHARS,
            "min_examples": MIN_EXAMPLES,
            "decontamination": "name match and 13-gram overlap "
            "with ARC, BoolQ, HellaSwag, PIQA, Winogrande, OpenBookQA, GSM8K, MBPP, HumanEval",
        },
    )
    return tasks, manifest


def _task_from_eval(z, names, doc, name, head, max_examples, rng, table, json) -> tuple[Task | None, str]:
    bench = name_overlap(name)
    if bench:
        return None, f"name matches evaluation benchmark {bench}"
    description = (head.get("description") or "").strip()
    if any(b in (name + " " + description).lower() for b in BIG_BENCH):
        return None, "BIG-bench data (its files ask never to appear in training corpora)"
    target = doc.get(head["id"])
    if not isinstance(target, dict):
        return None, f"its id {head['id']} is not defined in the same file"
    cls = target.get("class", "")
    if cls not in TEXT_CLASSES:
        return None, f"{cls.rsplit(':', 1)[-1] or 'unknown'} eval, not single-turn text-in/text-out"
    samples = (target.get("args") or {}).get("samples_jsonl")
    path = f"evals/registry/data/{samples}" if isinstance(samples, str) else None
    if path not in names:
        return None, "its samples file is not in the wheel"
    raw = z.read(path).decode("utf-8", errors="replace")
    if "canary guid" in raw[:100000].lower():
        return None, "carries a benchmark canary string (BIG-bench style); never trained on"
    pairs = []
    for line in raw.splitlines():
        try:
            p = _sample_pair(json.loads(line))
        except ValueError:
            p = None
        if p:
            pairs.append(p)
    if len(pairs) < MIN_EXAMPLES:
        return None, f"only {len(pairs)} single-turn samples with a short ideal answer (< {MIN_EXAMPLES})"
    if len(pairs) > max_examples:
        pairs = rng.sample(pairs, max_examples)
    overlap = text_overlap((f"{s or ''} {u} {i}" for s, u, i in pairs), table)
    if overlap:
        return None, f"13-gram overlap with {overlap[0]} in {overlap[1]} of {len(pairs)} examples"
    systems = Counter(s for s, _, _ in pairs if s)
    instructions = [s.strip() for s, c in systems.most_common() if c >= MIN_SHARE_FOR_DESCRIPTION * len(pairs)]
    descriptions = list(dict.fromkeys(d for d in [description, *instructions] if d))
    if not descriptions:
        return None, "no description and no shared system instruction"
    extra = [d for d in written("openai-evals").get(safe_name(name), []) if d not in descriptions]
    return Task(
        safe_name(name),
        descriptions + extra,
        [(u, i) for _, u, i in pairs],
        source=f"openai/evals:{name}",
        notes=f"class {cls.rsplit(':', 1)[-1]}; descriptions: YAML description, then system instructions "
        "shared by at least 10% of samples, then t2l's written ones",
        origins=["source"] * len(descriptions) + ["written:openai-evals"] * len(extra),
    ), ""
