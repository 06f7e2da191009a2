"""The paper's zero-shot table at our scale, from one call: train the multi-task LoRA baseline and the T2L
hypernetwork on equal budgets, evaluate every method on the benchmarks under both protocols, write the report.

    OUT/settings.json     what this run was asked for, with the sha256 of each --also hypernetwork
    OUT/mt-lora/          the multi-task LoRA training run (recipe mt-lora)
    OUT/t2l/              the hypernetwork training run (recipe sft)
    OUT/adapters/         adapters generated from the benches' descriptions and from unrelated ones
    OUT/results.jsonl     one line per evaluated (method, bench, protocol, description); a rerun skips what is there

Methods, as in the paper's Table 1 (Charakorn et al. 2025), plus its control:
    base                  the base model, zero-shot
    base + description    the bench's description written before every prompt
    mt-lora               one LoRA trained on every training task
    T2L                   an adapter generated from the bench's own description (tasks of the benches never seen)
    T2L, unrelated desc.  an adapter generated from a description of some other (training) task
Training budgets are equal in steps x batch (so in tokens and, at the measured 0.95 throughput ratio, in compute);
`budget_minutes` caps each run's wall clock on top.
"""

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from t2l.callbacks import Event
from t2l.errors import T2LError
from t2l.files import write_text_atomic
from t2l.stats import average_cells, item_means, paired_cells

if TYPE_CHECKING:
    from t2l.eval.run import Subject

PAPER_BENCHES = ("arc_easy", "arc_challenge", "boolq", "hellaswag", "piqa", "winogrande", "openbookqa")
METHODS = ("base", "base + description", "mt-lora", "T2L", "T2L, unrelated description")
PER_BENCH = 3  # descriptions each bench ships


@dataclass
class PaperSettings:
    """What `t2l bench paper` runs."""

    out: Path
    base: str = "smollm2-135m"
    encoder: str = "all-minilm-l6-v2"  # T2L's description encoder
    steps: int = 240  # training steps of each of mt-lora and T2L (batch 8 by the recipes): the equal budget
    budget_minutes: float | None = None  # wall-clock cap of each training run
    limit: int | None = 200  # first N items of each bench (None: whole validation sets)
    benches: tuple[str, ...] = PAPER_BENCHES
    protocols: tuple[str, ...] = ("lm-eval", "letter")
    tasks: str = "openai-evals"  # the training collection (benchmarks are held out of it when it is built)
    descriptions: int = 1  # how many of each bench's three descriptions T2L and the baselines use
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 0
    methods: tuple[str, ...] = METHODS  # which of METHODS to run (training only what they need)
    also: dict[str, str] = field(default_factory=dict)  # extra T2L rows: label -> hypernetwork folder
    reference: str | None = None  # the row paired differences are taken from (default T2L, else the first --also)
    overrides: dict[str, list[str]] = field(default_factory=dict)  # recipe name (sft, mt-lora) -> key=value list

    def __post_init__(self):
        from t2l.eval.benches import protocol_name

        self.protocols = tuple(protocol_name(p) for p in self.protocols)

    def to_json(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def run_paper(settings: PaperSettings, on_event: Event | None = None) -> dict:
    """Train (or reuse finished runs), evaluate what is not evaluated yet, and return the summary tables."""
    emit = on_event or (lambda kind, payload: None)
    _check(settings)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    record_settings(settings)
    needed = {
        "mt-lora": "mt-lora" in settings.methods,
        "t2l": bool({"T2L", "T2L, unrelated description"} & set(settings.methods)),
    }
    trained = {
        name: _train(settings, name, recipe, emit)
        for name, recipe in (("mt-lora", "mt-lora"), ("t2l", "sft"))
        if needed[name]
    }
    subjects = _subjects(settings, trained, emit)
    _evaluate(settings, subjects, emit)
    return summarize(read_results(out / "results.jsonl"), settings)


def _rows(settings: PaperSettings) -> list[str]:
    return [*(m for m in METHODS if m in settings.methods), *(f"T2L ({k})" for k in settings.also)]


def reference_row(settings: PaperSettings) -> str | None:
    """The row the paired differences are taken from: --reference, else T2L, else the first --also row."""
    if settings.reference is not None:
        return settings.reference
    return next((r for r in _rows(settings) if r.startswith("T2L") and "unrelated" not in r), None)


def _check(settings: PaperSettings) -> None:
    from t2l.eval.benches import BENCHES, PROTOCOLS

    unknown = [b for b in settings.benches if b not in BENCHES]
    if unknown:
        raise T2LError(f"unknown bench {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    bad = [p for p in settings.protocols if p not in PROTOCOLS]
    if bad:
        raise T2LError(f"unknown protocol {bad[0]!r}: use {' or '.join(PROTOCOLS)}")
    if settings.steps <= 0 or (settings.limit is not None and settings.limit <= 0):
        raise T2LError("--steps and --limit must be positive")
    odd = [m for m in settings.methods if m not in METHODS]
    if odd:
        raise T2LError(f"unknown method {odd[0]!r}; choose from {', '.join(METHODS)}")
    rows = _rows(settings)
    if settings.reference is not None and settings.reference not in rows:
        raise T2LError(f"--reference {settings.reference!r} is not a row of this run; choose from {', '.join(rows)}")
    if not 1 <= settings.descriptions <= PER_BENCH:
        raise T2LError(f"--descriptions must be 1, 2 or 3 (each bench ships three), not {settings.descriptions}")


def also_hashes(out: Path) -> dict[str, str]:
    """--also label -> sha256 of the hypernetwork the folder scored under it (record_settings' record)."""
    path = Path(out) / "settings.json"
    return json.loads(path.read_text()).get("also_sha256", {}) if path.is_file() else {}


def record_settings(settings: PaperSettings) -> None:
    """Write OUT/settings.json with the sha256 of each --also row's hypernetwork. A label this folder already scored
    with another hypernetwork is refused: its adapters and results would be reused as the new one's. The same
    weights at another path (a moved checkout's shipped default) are the same row."""
    from t2l.hypernet_files import read_hypernet_info

    before = also_hashes(settings.out)
    made = {label: read_hypernet_info(Path(folder)).sha256 for label, folder in settings.also.items()}
    for label, sha in made.items():
        if before.get(label, sha) != sha:
            raise T2LError(
                f"--also {label}=... is another hypernetwork than the one {settings.out} scored as "
                f"'T2L ({label})'; give it a new label or another --out"
            )
    write_text_atomic(
        Path(settings.out) / "settings.json",
        json.dumps({**settings.to_json(), "also_sha256": {**before, **made}}, indent=2),
    )


# -- training ---------------------------------------------------------------------------------------------------


def _train(settings: PaperSettings, name: str, recipe_name: str, emit: Event) -> dict:
    """Run (or resume, or reuse) one training run; its artifact and what it reached."""
    from t2l.train.recipe import load_recipe
    from t2l.train.run import run_recipe

    folder = Path(settings.out) / name
    done = folder / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    overrides = [
        f"base={settings.base}",
        f"train.steps={settings.steps}",
        f"run.out={folder}",
        f"data.tasks={settings.tasks}",
        f"train.seed={settings.seed}",
        f"run.device={settings.device}",
        f"run.dtype={settings.dtype}",
        f"run.max_minutes={settings.budget_minutes if settings.budget_minutes else 'null'}",
    ]
    warmup = run_warmup(recipe_name, settings.steps)
    overrides += [f"encoder={settings.encoder}"] * (recipe_name == "sft") + [f"train.warmup_steps={warmup}"]
    recipe = load_recipe(recipe_name, overrides + settings.overrides.get(recipe_name, []))
    resume = folder if (folder / "checkpoint").exists() else None
    emit("phase", f"training {name} ({recipe_name} recipe, {settings.steps} steps)")
    started = time.monotonic()
    result = run_recipe(recipe, resume=resume, on_event=lambda kind, payload: emit("train", (name, kind, payload)))
    record = {
        "artifact": str(result.artifact),
        "kind": result.kind,
        "steps": result.steps,
        "completed": result.completed,
        "final_loss": result.final_loss,
        "collection_sha256": result.collection_sha256,
        "minutes": (time.monotonic() - started) / 60,
        "recipe": recipe_name,
    }
    write_text_atomic(done, json.dumps(record, indent=2))
    return record


def run_warmup(recipe_name: str, steps: int) -> int:
    """The recipe's warmup steps, or a tenth of the run when that is fewer: the recipes' warmups are sized for their
    2000 steps, and a short run would spend most of itself warming up."""
    from t2l.train.recipe import load_recipe

    return min(load_recipe(recipe_name).train.warmup_steps, max(1, steps // 10))


# -- what gets evaluated ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    method: str
    description: str | None  # the text behind the adapter or the prompt (None: base, mt-lora)
    index: int  # which of the bench's descriptions (0 for base and mt-lora)


def unrelated_descriptions(settings: PaperSettings, collection: Path) -> dict[tuple[str, int], str]:
    """The paper's control: a training task's description for each (bench, description index), drawn with the
    run's seed. One draw covers every bench and all three indices, so which text a (bench, index) gets does not depend
    on --benches or --descriptions: a run extended from one description to three (or to more benches) in the same
    folder keeps pairing each stored adapter and score with the text it was made from."""
    from t2l.eval.benches import BENCHES
    from t2l.tasks.collection import read_manifest

    names = [t["name"] for t in read_manifest(collection).tasks]
    rnd = random.Random(settings.seed)
    k = len(BENCHES) * PER_BENCH
    picks = rnd.sample(names, k) if len(names) >= k else rnd.choices(names, k=k)
    texts = [json.loads((collection / n / "task.json").read_text())["descriptions"][0] for n in picks]
    return {
        (bench, i): texts[i * len(BENCHES) + b]
        for b, bench in enumerate(BENCHES)
        if bench in settings.benches
        for i in range(settings.descriptions)
    }


def _subjects(settings: PaperSettings, trained: dict, emit: Event) -> list[tuple["Subject", Entry, str]]:
    """(eval Subject, what it stands for, bench or '*') for every method; adapters are generated here."""
    from t2l.eval.benches import BENCHES
    from t2l.eval.run import Subject
    from t2l.export import write_adapter
    from t2l.make import AdapterMaker
    from t2l.tasks.resolve import resolve_collection

    out = Path(settings.out)
    methods = set(settings.methods)
    subjects = [(Subject("base"), Entry("base", None, 0), "*")] * ("base" in methods)
    if "mt-lora" in methods:
        subjects.append((Subject("mt-lora", Path(trained["mt-lora"]["artifact"])), Entry("mt-lora", None, 0), "*"))
    unrelated = unrelated_descriptions(settings, resolve_collection(settings.tasks))
    hypernets = {f"T2L ({k})": Path(v) for k, v in settings.also.items()}
    if "t2l" in trained:
        hypernets["T2L"] = Path(trained["t2l"]["artifact"])
    emit("phase", "generating adapters")
    makers = {m: AdapterMaker(folder) for m, folder in hypernets.items()}
    for bench in settings.benches:
        for i, desc in enumerate(BENCHES[bench].descriptions[: settings.descriptions]):
            if "base + description" in methods:
                subjects.append(
                    (
                        Subject(f"base+desc:{bench}#{i}", None, [bench], instruction=desc),
                        Entry("base + description", desc, i),
                        bench,
                    )
                )
            wanted = [(m, desc) for m in makers if m != "T2L" or "T2L" in methods]
            wanted += [("T2L, unrelated description", unrelated[bench, i])] * ("T2L, unrelated description" in methods)
            for method, text in wanted:
                maker = makers["T2L" if method.startswith("T2L, unrelated") else method]
                path = out / "adapters" / f"{_slug(method)}-{bench}-{i}.safetensors"
                if not path.exists():  # write_adapter renames a finished file into place
                    made = maker.make([text])[0]
                    write_adapter(made.tensors, made.info, path, force=True)
                subjects.append((Subject(f"{_slug(method)}:{bench}#{i}", path, [bench]), Entry(method, text, i), bench))
    return subjects


def _slug(method: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in method.lower()).strip("-")


# -- evaluation -------------------------------------------------------------------------------------------------


def read_results(path: Path) -> list[dict]:
    """The finished runs; a last line torn by a kill mid-write is dropped (that run is simply done again). Rows
    written under a protocol's old name read as under its current one."""
    from t2l.eval.benches import protocol_name

    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows.append(row | {"protocol": protocol_name(row["protocol"])})
    return rows


def _evaluate(settings: PaperSettings, subjects: list, emit: Event) -> None:
    from dataclasses import replace

    from t2l.eval.benches import BENCHES
    from t2l.eval.run import run_eval

    path = Path(settings.out) / "results.jsonl"
    for protocol in settings.protocols:
        done = {
            (r["method"], r["bench"], r["index"])
            for r in read_results(path)
            if r["protocol"] == protocol and r["limit"] == settings.limit
        }
        todo, entries = [], {}
        for subject, entry, bench in subjects:
            benches = settings.benches if bench == "*" else [bench]
            left = [b for b in benches if (entry.method, b, entry.index) not in done]
            if left:
                todo.append(replace(subject, benches=left))
                entries[subject.label] = entry
        if not todo:
            continue
        emit("phase", f"evaluating {len(todo)} subjects under the {protocol} protocol")

        def store(subject, result, protocol=protocol, entries=entries):
            entry = entries[subject.label]
            row = {
                "method": entry.method,
                "bench": result.bench,
                "protocol": protocol,
                "index": entry.index,
                "description": entry.description,
                "metrics": result.metrics,
                "n": result.n,
                "limit": result.limit,
                "version": result.protocol,
                "data_sha256": result.data_sha256,
                # the headline metric item by item ("0110..."), so two methods compare on the same items
                "hits": "".join(str(int(v)) for v in result.per_item[_headline_name(result.per_item)]),
            }
            with open(path, "a") as f:  # one line per finished run: an interrupted run loses only what was running
                f.write(json.dumps(row) + "\n")
            emit("result", row)

        run_eval(
            todo,
            [BENCHES[b] for b in settings.benches],
            settings.base,
            limit=settings.limit,
            batch_size=settings.batch_size,
            dtype=settings.dtype,
            protocol=protocol,
            device=settings.device,
            on_progress=lambda bench, done_, total: emit("eval", (bench, done_, total)),
            on_result=store,
        )


# -- the tables -------------------------------------------------------------------------------------------------


def _headline_name(metrics: dict) -> str:
    """The metric a table shows for one run: acc, or gsm8k's flexible-extract / exact_match."""
    for name in ("acc", "flexible-extract", "exact_match"):
        if name in metrics:
            return name
    raise T2LError(f"no headline metric in {sorted(metrics)}")


def _headline(metrics: dict) -> tuple[float, float]:
    return tuple(metrics[_headline_name(metrics)])


def summarize(rows: list[dict], settings: PaperSettings) -> dict:
    """protocol -> method -> bench -> (value, stderr), with "average" over the benches every method has.
    Several descriptions of a bench are averaged (their stderr too: they score the same items)."""
    tables: dict = {}
    for protocol in settings.protocols:
        by: dict = {}
        for r in rows:
            if r["protocol"] == protocol and r["bench"] in settings.benches and r["limit"] == settings.limit:
                by.setdefault(r["method"], {}).setdefault(r["bench"], []).append(_headline(r["metrics"]))
        table = {}
        for method, benches in by.items():
            cells = {b: (sum(v for v, _ in xs) / len(xs), sum(e for _, e in xs) / len(xs)) for b, xs in benches.items()}
            if all(b in cells for b in settings.benches):
                cells["average"] = average_cells([cells[b] for b in settings.benches])
            table[method] = cells
        tables[protocol] = table
    return tables


def paired(rows: list[dict], settings: PaperSettings) -> dict:
    """protocol -> method -> (the reference row's average minus the method's, stderr of that difference).

    The difference is taken item by item (both score the same items), so what the two methods share - which items
    are easy - cancels; its stderr is far smaller than the two accuracies' stderrs suggest. Per bench: mean and
    standard error of the per-item differences (several descriptions of a bench averaged per item); over benches:
    the mean of those, with stderr sqrt(sum of squares) / number of benches. Only runs that stored per-item hits.
    """
    out: dict = {}
    for protocol in settings.protocols:
        hits: dict = {}
        for r in rows:
            if (
                r["protocol"] == protocol
                and r["bench"] in settings.benches
                and r["limit"] == settings.limit
                and "hits" in r
            ):
                hits.setdefault(r["method"], {}).setdefault(r["bench"], []).append(r["hits"])
        reference = reference_row(settings)
        ref = hits.get(reference, {})
        table = {}
        for method, benches in hits.items():
            if method == reference or not all(b in benches and b in ref for b in settings.benches):
                continue
            mine = {b: item_means(ref[b]) for b in settings.benches}
            theirs = {b: item_means(benches[b]) for b in settings.benches}
            table[method] = average_cells(paired_cells(mine, theirs, settings.benches))
        if table:
            out[protocol] = table
    return out
