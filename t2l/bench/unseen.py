"""`t2l bench unseen`: does an adapter follow its description on tasks no training collection touched?

Every method answers the same items of every task of the unseen suite (`t2l.tasks.unseen`) and is scored three
ways: the answer loss (teacher-forced, mean over the output tokens and EOS, as training computes it), and the
normalised exact match and ROUGE-L of its greedy answer. The methods:

    base                            the base model, the input alone
    base + description              the base model, the description before the input
    mt-lora                         a multi-task LoRA trained on the training collection (when one is given)
    T2L                             the adapter the hypernetwork makes from the task's description
    T2L + description               that adapter, and the description before the input too
    T2L, other task's description   the adapter made from another unseen task's description (the paper's control)
    T2L, random words / random characters / repeated letter
                                    adapters made from the paper's random descriptions, as long as the real one
    T2L, paraphrase                 the adapter made from a paraphrase of the description (robustness)
    T2L, description + 4 examples   the adapter made from the description and 4 input/output examples of the task
    T2L, 4 examples alone           the adapter made from the 4 examples, no description
    base + description + 4 examples the base model, in-context learning: the description, the 4 examples, the input
    base + 4 examples               the base model, the 4 examples before the input

The examples of a task are the same 4 for every method: drawn with `random.Random(f"{seed}:{task}")` from the task's
items that are not scored (those after the first `limit`). A task with fewer than limit + 4 items (and every task
without a limit) has no such items and is left out of the four example methods, so every method scores the same
items. In a prompt each example is written as the encoder reads it (`t2l.examples.example_text`:
"Input: ...\nOutput: ..."), the examples separated by blank lines, between the description (if any) and the input.
The two T2L example methods need a hypernetwork trained with at least 4 examples (`HypernetConfig.examples`); with
another they are left out with a note, or refused when asked for by name. Each example row records the examples'
sha256 (`t2l.examples.examples_sha256`).

Results go to OUT/results.jsonl, one line per (method, task) with per-item values, so a rerun continues; T2L's
paired differences against every other method are taken item by item and averaged over tasks.
"""

import json
import random
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from t2l.base import DEFAULT_BASE
from t2l.callbacks import Event, Status
from t2l.errors import T2LError
from t2l.files import write_text_atomic

if TYPE_CHECKING:
    from t2l.make import GeneratedAdapter

METHODS = (
    "base",
    "base + description",
    "mt-lora",
    "T2L",
    "T2L + description",
    "T2L, other task's description",
    "T2L, random words",
    "T2L, random characters",
    "T2L, repeated letter",
    "T2L, paraphrase",
    "T2L, description + 4 examples",
    "T2L, 4 examples alone",
    "base + description + 4 examples",
    "base + 4 examples",
)
SHOTS = 4  # examples per task for the example methods
T2L_EXAMPLE_METHODS = ("T2L, description + 4 examples", "T2L, 4 examples alone")
ICL_METHODS = ("base + description + 4 examples", "base + 4 examples")  # the examples in the prompt
EXAMPLE_METHODS = T2L_EXAMPLE_METHODS + ICL_METHODS
PROMPTED = ("base + description", "T2L + description", "base + description + 4 examples")  # description in the prompt
MAX_LENGTH = 2048  # tokens of prompt and answer scored: 4 examples of a passage task exceed training's 1024
METRICS = ("loss", "rouge_l", "exact_match")  # loss: lower is better
MAX_NEW_TOKENS = 48


@dataclass
class UnseenSettings:
    """What `t2l bench unseen` evaluates, and how."""

    out: Path
    hypernet: str = "default"
    """A hypernetwork folder ('default': the shipped one)."""
    mt_lora: str | None = None
    """A multi-task LoRA adapter (file or PEFT folder) for the mt-lora row; without one the row is left out."""
    suite: str = "unseen"
    """A collection folder, or 'unseen' (built under $T2L_HOME/tasks on first use)."""
    tasks: tuple[str, ...] | None = None
    """Only these tasks of the suite."""
    limit: int | None = 50
    """First N items of each task."""
    base: str = DEFAULT_BASE
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 0
    methods: tuple[str, ...] = METHODS

    def to_json(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def check(settings: UnseenSettings) -> None:
    unknown = [m for m in settings.methods if m not in METHODS]
    if unknown:
        raise T2LError(f"unknown method {unknown[0]!r}; choose from: {', '.join(METHODS)}")
    if settings.limit is not None and settings.limit <= 0:
        raise T2LError(f"--limit must be a positive number of items, not {settings.limit}")
    if settings.batch_size <= 0:
        raise T2LError(f"--batch-size must be a positive number, not {settings.batch_size}")
    if "mt-lora" in settings.methods and settings.mt_lora is None and settings.methods != METHODS:
        raise T2LError(
            "the mt-lora method needs --mt-lora ADAPTER (a multi-task LoRA trained with `t2l train --recipe mt-lora`)"
        )


def random_descriptions(own: str, words: list[str], rng: random.Random) -> dict[str, str]:
    """The paper's three random controls, each as long as the real description (in words or characters)."""
    n_words, n_chars = max(1, len(own.split())), max(1, len(own))
    return {
        "T2L, random words": " ".join(rng.choice(words) for _ in range(n_words)),
        "T2L, random characters": "".join(
            rng.choice(string.ascii_letters + string.digits + " .,") for _ in range(n_chars)
        ),
        "T2L, repeated letter": rng.choice(string.ascii_lowercase) * n_chars,
    }


def descriptions(tasks, words: list[str], seed: int) -> dict[str, dict[str, str]]:
    """task -> method -> the description its adapter is made from (or put in the prompt). The other-task control
    rotates the tasks by a seeded offset, so every task gets exactly one other task's description."""
    rng = random.Random(seed)
    names = sorted(t.name for t in tasks)
    shift = rng.randrange(1, len(names)) if len(names) > 1 else 0
    own = {t.name: t.descriptions[0] for t in tasks}
    out = {}
    for t in sorted(tasks, key=lambda t: t.name):
        other = names[(names.index(t.name) + shift) % len(names)]
        d = {
            "T2L": own[t.name],
            "base + description": own[t.name],
            "T2L + description": own[t.name],
            "T2L, other task's description": own[other],
            "T2L, paraphrase": t.descriptions[1] if len(t.descriptions) > 1 else own[t.name],
            "T2L, description + 4 examples": own[t.name],
            "base + description + 4 examples": own[t.name],
        }
        out[t.name] = d | random_descriptions(own[t.name], words, rng)
    return out


def task_shots(name: str, items: list[tuple[str, str]], limit: int | None, seed: int) -> list | None:
    """The SHOTS examples of a task for every example method: a seeded draw from its items after the first `limit`
    (never a scored one); None when it has fewer than SHOTS of those (the task is left out of the example methods)."""
    from t2l.examples import Shot

    pool = items[limit:] if limit is not None else []
    if len(pool) < SHOTS:
        return None
    return [Shot(i, o) for i, o in random.Random(f"{seed}:{name}").sample(pool, SHOTS)]


def shots_prompt(description: str | None, shots: list | None) -> str | None:
    """What goes before the input: the description, then each example as the encoder reads it, blank lines
    between."""
    from t2l.examples import example_text

    parts = ([description] if description else []) + [example_text(s) for s in shots or []]
    return "\n\n".join(parts) or None


def example_support(settings: UnseenSettings, emit: Event) -> UnseenSettings:
    """The settings without the T2L example methods when the hypernetwork cannot read SHOTS examples (a note); an
    error when they were asked for by name."""
    from dataclasses import replace

    from t2l.hypernet_files import read_hypernet_info

    asked = [m for m in settings.methods if m in T2L_EXAMPLE_METHODS]
    if not asked:
        return settings
    most = read_hypernet_info(Path(settings.hypernet)).config.examples
    if most >= SHOTS:
        return settings
    why = "reads descriptions only" if not most else f"was trained with at most {most} examples"
    if settings.methods != METHODS:
        raise T2LError(
            f"the method {asked[0]!r} needs a hypernetwork trained with {SHOTS} or more examples "
            f"(`t2l train --recipe sft-examples`); this one {why}"
        )
    emit("phase", f"note: the hypernetwork {why}: leaving out {' and '.join(repr(m) for m in asked)}")
    return replace(settings, methods=tuple(m for m in settings.methods if m not in T2L_EXAMPLE_METHODS))


def read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def makers(settings: UnseenSettings) -> dict[str, str | None]:
    """The sha256 of what made each kind of adapter: the hypernetwork's weights (every T2L method) and the
    mt-lora adapter's file. A row records its maker, so one folder keeps the rows of several hypernetworks and a
    rerun with another one scores its rows again while base and base + description are reused."""
    from t2l.adapter import weights_file
    from t2l.hypernet_files import read_hypernet_info
    from t2l.hashing import sha256_file

    return {
        "T2L": read_hypernet_info(Path(settings.hypernet)).sha256,
        "mt-lora": sha256_file(weights_file(Path(settings.mt_lora))) if settings.mt_lora else None,
    }


def made_by(method: str, made: dict[str, str | None]) -> str | None:
    return made["T2L"] if method.startswith("T2L") else made["mt-lora"] if method == "mt-lora" else None


def current_rows(settings: UnseenSettings, made: dict[str, str | None] | None = None) -> list[dict]:
    """The rows of OUT/results.jsonl that belong to this run's hypernetwork and mt-lora adapter."""
    made = made or makers(settings)
    return [
        r for r in read_results(Path(settings.out) / "results.jsonl") if r.get("made_by") == made_by(r["method"], made)
    ]


def scoring(settings: UnseenSettings, suite: Path) -> dict:
    """What every row of a folder must share for its rows to be compared: the suite's items, the base, the
    numerics and the control texts' seed."""
    from t2l.tasks.collection import read_manifest

    return {
        "suite_sha256": read_manifest(suite).sha256,
        "limit": settings.limit,
        "base": settings.base,
        "dtype": settings.dtype,
        "seed": settings.seed,
    }


def check_folder(out: Path, now: dict) -> None:
    saved = out / "settings.json"
    before = json.loads(saved.read_text()).get("scoring") if saved.is_file() else {}
    changed = [k for k in now if before and before.get(k) != now[k]]
    if changed:
        was = ", ".join(f"{k} {before.get(k)}" for k in changed)
        raise T2LError(f"{out} holds rows scored with {was}; rerun with those settings or choose another --out")


def resolve_suite(spec: str, on_status: Status | None = None) -> Path:
    """A suite folder; 'unseen' is built under $T2L_HOME/tasks the first time, decontaminated against every
    built-in training collection (built too if missing: a few minutes once)."""
    p = Path(spec).expanduser()
    if p.is_dir():
        return p
    if spec != "unseen":
        raise T2LError(
            f"no unseen suite at {spec!r}: give a folder made by `t2l tasks build --from unseen` or 'unseen'"
        )
    from t2l.home import t2l_home
    from t2l.tasks.collection import write_collection
    from t2l.tasks.unseen import build_unseen, training_tasks

    folder = t2l_home() / "tasks" / "unseen"
    if not (folder / "manifest.json").is_file():
        tasks, manifest = build_unseen(training=training_tasks(on_status))
        write_collection(folder, tasks, manifest, force=True)
    return folder


def _cells(
    settings: UnseenSettings, tasks, texts: dict, shots: dict, made: dict, emit: Event
) -> list[tuple[str, str, "GeneratedAdapter | None"]]:
    """(method, task, generated adapter or None) for every cell not run yet; the description-only adapters made in
    one pass, the example ones task by task (a make call's examples are shared by all its adapters)."""
    from t2l.make import AdapterMaker

    done = {(r["method"], r["task"]) for r in current_rows(settings, made)}
    todo = [
        (m, t.name)
        for m in settings.methods
        for t in tasks
        if (m, t.name) not in done
        and not (m == "mt-lora" and settings.mt_lora is None)
        and not (m in EXAMPLE_METHODS and shots[t.name] is None)
    ]
    need = [(m, t) for m, t in todo if m.startswith("T2L")]
    adapters = {}
    if need:
        emit("phase", f"making {len(need)} adapters")
        maker = AdapterMaker(Path(settings.hypernet), base=settings.base)
        plain = [(m, t) for m, t in need if m not in T2L_EXAMPLE_METHODS]
        if plain:
            adapters = dict(zip(plain, maker.make([texts[t][m] for m, t in plain])))
        for m, t in need:
            if m in T2L_EXAMPLE_METHODS:
                words = [texts[t][m]] if m in texts[t] else []
                (adapters[(m, t)],) = maker.make(words, examples=shots[t])
    return [(m, t, adapters.get((m, t))) for m, t in todo]


def run_unseen(settings: UnseenSettings, on_event: Event | None = None) -> list[dict]:
    """Evaluate every (method, task) not in OUT/results.jsonl yet for this hypernetwork and mt-lora adapter;
    returns their rows."""
    import torch

    from t2l.adapter import read_adapter
    from t2l.base import load_base
    from t2l.lora_batched import applied, lora_weights
    from t2l.tasks.collection import read_tasks
    from t2l.device import resolve_device
    from t2l.examples import examples_sha256

    emit = on_event or (lambda kind, payload: None)
    check(settings)
    settings = example_support(settings, emit)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    suite = resolve_suite(settings.suite, lambda m: emit("phase", m))
    tasks = read_tasks(suite, list(settings.tasks) if settings.tasks else None)
    shots = {t.name: task_shots(t.name, t.examples, settings.limit, settings.seed) for t in tasks}
    if any(m in EXAMPLE_METHODS for m in settings.methods) and any(s is None for s in shots.values()):
        short = sorted(n for n, s in shots.items() if s is None)
        emit(
            "phase",
            f"note: {len(short)} task(s) have fewer than {SHOTS} unscored items and are left out of the "
            f"example methods: {', '.join(short)}",
        )
    for t in tasks:
        t.examples = t.examples[: settings.limit] if settings.limit else t.examples
    now = scoring(settings, suite)
    check_folder(out, now)
    write_text_atomic(out / "settings.json", json.dumps(settings.to_json() | {"scoring": now}, indent=2))
    from t2l.tasks.synthetic import pools

    made = makers(settings)
    texts = descriptions(tasks, pools(True).words, settings.seed)
    todo = _cells(settings, tasks, texts, shots, made, emit)
    by_name = {t.name: t for t in tasks}
    model, tokenizer, _ = load_base(settings.base, dtype=settings.dtype)
    model.to(resolve_device(settings.device))
    mt = read_adapter(Path(settings.mt_lora)) if settings.mt_lora and any(m == "mt-lora" for m, _, _ in todo) else None
    with open(out / "results.jsonl", "a") as log:
        for k, (method, name, adapter) in enumerate(todo, 1):
            task = by_name[name]
            emit("cell", (k, len(todo), method, name))
            applying = None
            if adapter is not None:
                config = {"r": adapter.info.rank, "lora_alpha": adapter.info.alpha}
                applying = lora_weights(model, adapter.tensors, config)
            elif method == "mt-lora":
                assert mt is not None  # read above, as a cell needs it
                applying = lora_weights(model, mt[0], mt[2])
            in_prompt = shots[name] if method in ICL_METHODS else None
            prompt = shots_prompt(texts[name].get(method) if method in PROMPTED else None, in_prompt)
            with applied(model, applying), torch.no_grad():
                scores = score_task(model, tokenizer, task.examples, prompt, settings.batch_size)
            row = {
                "method": method,
                "task": name,
                "made_by": made_by(method, made),
                "n": len(task.examples),
                "description": texts[name].get(method),
                **scores,
            }
            if method in EXAMPLE_METHODS:
                task_examples = shots[name]
                assert task_examples is not None  # _cells leaves a task without shots out of the example methods
                row["examples_sha256"] = examples_sha256(task_examples)
            log.write(json.dumps(row) + "\n")
            log.flush()
            emit("result", row)
    return current_rows(settings, made)


def score_task(
    model, tokenizer, examples: list[tuple[str, str]], instruction: str | None, batch_size: int
) -> dict[str, list]:
    """Per item: the answer loss, the greedy answer, its ROUGE-L and normalised exact match."""
    from t2l.eval.generate import generate_until
    from t2l.eval.text_metrics import exact_match, rouge_l
    import torch
    import torch.nn.functional as F

    from t2l.lm import head_logits
    from t2l.train.data import IGNORE, Example, collate, encode_example, prompt_text

    inputs = [f"{instruction}\n\n{i}" if instruction else i for i, _ in examples]
    encoded = [encode_example(tokenizer, Example(0, i, o), MAX_LENGTH) for i, (_, o) in zip(inputs, examples)]
    losses = []
    device = next(model.parameters()).device
    for s in range(0, len(encoded), batch_size):
        ids, mask, labels = (t.to(device) for t in collate(encoded[s : s + batch_size], tokenizer.pad_token_id))
        # the LM head only where an answer token is, as training's causal_lm_loss_sum does, summed per item
        hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
        target = labels[:, 1:]
        keep = target != IGNORE
        nll = F.cross_entropy(head_logits(model, hidden[keep]), target[keep], reduction="none")
        per_item = torch.zeros(len(ids), device=device).index_add_(0, keep.nonzero()[:, 0], nll)
        losses += (per_item / keep.sum(1)).tolist()
    prompts = [prompt_text(tokenizer, i) for i in inputs]
    longest = max(sum(1 for y in labels if y != IGNORE) for _, labels in encoded)
    answers = generate_until(model, tokenizer, prompts, [], min(MAX_NEW_TOKENS, longest + 8), batch_size)
    answers = [a.strip() for a in answers]
    refs = [o for _, o in examples]
    return {
        "loss": losses,
        "answers": answers,
        "rouge_l": [rouge_l(a, r) for a, r in zip(answers, refs)],
        "exact_match": [exact_match(a, r) for a, r in zip(answers, refs)],
    }
