"""Tasks from Super-NaturalInstructions JSON files (the paper's own training data; on the Hub as Lots-of-LoRAs/*).

Each file is one task: `Definition` (a list of instructions) become its descriptions, `Instances` its examples
(the first listed output). Tasks derived from BIG-bench and tasks overlapping the evaluation benchmarks are excluded.

With `descriptions` (the `tasks/` folder of the authors' repository), each task also gets the descriptions the paper
trained with: `tasks/lol_NNN/metadata.yaml` (their name for SNI's `taskNNN_...`, or a folder named like the task
file) holds a `descriptions:` list, 128 per task in their release.
"""

import json
import random
from pathlib import Path

from t2l.callbacks import Progress, Status
from t2l.errors import T2LError
from t2l.tasks.collection import MAX_EXAMPLES, Manifest, Task, safe_name
from t2l.tasks.decontam import benchmark_ngrams, name_overlap, text_overlap
from t2l.tasks.openai_evals import BIG_BENCH


def paper_descriptions(folder: Path | None, task: str) -> list[str]:
    """The descriptions the authors' repository keeps for an SNI task (none when it has no metadata for it)."""
    if folder is None:
        return []
    import re

    import yaml

    number = re.match(r"task(\d+)_", task)
    for name in ([f"lol_{number.group(1)}"] if number else []) + [task]:
        path = Path(folder) / name / "metadata.yaml"
        if path.is_file():
            try:
                meta = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as e:
                raise T2LError(f"{path} is not valid YAML ({e}); fix or remove it") from None
            found = meta.get("descriptions") if isinstance(meta, dict) else None
            return [d.strip() for d in found if isinstance(d, str) and d.strip()] if isinstance(found, list) else []
    return []


def build_sni(
    folder: Path,
    max_examples: int = MAX_EXAMPLES,
    seed: int = 0,
    on_progress: Progress | None = None,
    table: dict[int, str] | None = None,
    descriptions: Path | None = None,
    on_status: Status | None = None,
) -> tuple[list[Task], Manifest]:
    """The tasks of a folder of SNI task files, decontaminated against the benchmarks (`table`, read when not
    given: the longest step), each step said through `on_status` and counted through `on_progress`."""
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise T2LError(f"no SNI task files (*.json) in {folder}")
    if descriptions is not None and not Path(descriptions).is_dir():
        raise T2LError(
            f"--descriptions {descriptions} is not a folder; give the tasks/ folder of the authors' "
            "text-to-lora repository"
        )
    if table is None:
        if on_status:
            on_status("reading benchmark items for decontamination")
        table = benchmark_ngrams(on_progress=on_progress)
    if on_status:
        on_status(f"reading {len(files)} SNI task file{'s' * (len(files) != 1)}")
    rng = random.Random(seed)
    tasks, excluded = [], []
    for done, path in enumerate(files, 1):
        if on_progress:
            on_progress(done, len(files))
        task, reason = _task(path, max_examples, rng, table, paper_descriptions(descriptions, path.stem))
        if task:
            tasks.append(task)
        else:
            excluded.append({"name": path.stem, "reason": reason})
    manifest = Manifest(
        name=Path(folder).name,
        source=f"Super-NaturalInstructions task files in {folder}",
        license="Apache-2.0 (SNI); see each task's source",
        excluded=excluded,
        build={"max_examples": max_examples, "seed": seed, "paper_descriptions": descriptions is not None},
    )
    return tasks, manifest


def _task(path: Path, max_examples: int, rng: random.Random, table, extra: list[str]) -> tuple[Task | None, str]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"unreadable JSON ({e})"
    source = " ".join(map(str, d.get("Source", [])))
    if any(b in (path.stem + " " + source).lower() for b in BIG_BENCH):
        return None, "BIG-bench data (its files ask never to appear in training corpora)"
    bench = name_overlap(path.stem)
    if bench:
        return None, f"name matches evaluation benchmark {bench}"
    definitions = [x.strip() for x in d.get("Definition", []) if isinstance(x, str) and x.strip()]
    if not definitions:
        return None, "no Definition"
    pairs = []
    for inst in d.get("Instances", []):
        outputs = inst.get("output")
        output = outputs[0] if isinstance(outputs, list) and outputs else outputs
        if isinstance(inst.get("input"), str) and isinstance(output, str) and output.strip():
            pairs.append((inst["input"], output.strip()))
    if not pairs:
        return None, "no instance with an input and an output"
    if len(pairs) > max_examples:
        pairs = rng.sample(pairs, max_examples)
    overlap = text_overlap((f"{i} {o}" for i, o in pairs), table)
    if overlap:
        return None, f"13-gram overlap with {overlap[0]} in {overlap[1]} of {len(pairs)} examples"
    definitions = list(dict.fromkeys(definitions))
    extra = [d for d in dict.fromkeys(extra) if d not in definitions]
    return Task(
        safe_name(path.stem),
        definitions + extra,
        pairs,
        source=f"sni:{path.stem}",
        notes="descriptions: the task's Definition" + (", then the paper's metadata.yaml" if extra else ""),
        origins=["source"] * len(definitions) + ["paper:metadata.yaml"] * len(extra),
    ), ""
