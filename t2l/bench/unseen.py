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

Results go to OUT/results.jsonl, one line per (method, task) with per-item values, so a rerun continues; T2L's
paired differences against every other method are taken item by item and averaged over tasks.
"""

import json
import random
import string
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from t2l.base import DEFAULT_BASE
from t2l.errors import T2LError
from t2l.files import write_text_atomic

METHODS = ("base", "base + description", "mt-lora", "T2L", "T2L + description", "T2L, other task's description",
           "T2L, random words", "T2L, random characters", "T2L, repeated letter", "T2L, paraphrase")
METRICS = ("loss", "rouge_l", "exact_match")  # loss: lower is better
MAX_NEW_TOKENS = 48
Event = Callable[[str, object], None]


@dataclass
class UnseenSettings:
    """What `t2l bench unseen` evaluates, and how."""

    out: Path
    hypernet: str = "default"
    """A hypernetwork checkpoint folder ('default': the shipped one)."""
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
        raise T2LError("the mt-lora method needs --mt-lora ADAPTER (a multi-task LoRA trained with "
                       "`t2l train --recipe mt-lora`)")


def random_descriptions(own: str, words: list[str], rng: random.Random) -> dict[str, str]:
    """The paper's three random controls, each as long as the real description (in words or characters)."""
    n_words, n_chars = max(1, len(own.split())), max(1, len(own))
    return {"T2L, random words": " ".join(rng.choice(words) for _ in range(n_words)),
            "T2L, random characters": "".join(rng.choice(string.ascii_letters + string.digits + " .,") for _ in
                                              range(n_chars)),
            "T2L, repeated letter": rng.choice(string.ascii_lowercase) * n_chars}


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
        d = {"T2L": own[t.name], "base + description": own[t.name], "T2L + description": own[t.name],
             "T2L, other task's description": own[other],
             "T2L, paraphrase": t.descriptions[1] if len(t.descriptions) > 1 else own[t.name]}
        out[t.name] = d | random_descriptions(own[t.name], words, rng)
    return out


def read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def makers(settings: UnseenSettings) -> dict[str, str | None]:
    """The sha256 of what made each kind of adapter: the hypernetwork's weights (every T2L method) and the
    mt-lora adapter's file. A row records its maker, so one folder keeps the rows of several hypernetworks and a
    rerun with another one scores its rows again while base and base + description are reused."""
    from t2l.adapter import weights_file
    from t2l.checkpoint import read_hypernet_info
    from t2l.hashing import sha256_file

    return {"T2L": read_hypernet_info(Path(settings.hypernet)).sha256,
            "mt-lora": sha256_file(weights_file(settings.mt_lora)) if settings.mt_lora else None}


def made_by(method: str, made: dict[str, str | None]) -> str | None:
    return made["T2L"] if method.startswith("T2L") else made["mt-lora"] if method == "mt-lora" else None


def current_rows(settings: UnseenSettings, made: dict[str, str | None] | None = None) -> list[dict]:
    """The rows of OUT/results.jsonl that belong to this run's hypernetwork and mt-lora adapter."""
    made = made or makers(settings)
    return [r for r in read_results(Path(settings.out) / "results.jsonl")
            if r.get("made_by") == made_by(r["method"], made)]


def scoring(settings: UnseenSettings, suite: Path) -> dict:
    """What every row of a folder must share for its rows to be compared: the suite's items, the base, the
    numerics and the control texts' seed."""
    from t2l.tasks.collection import read_manifest

    return {"suite_sha256": read_manifest(suite).sha256, "limit": settings.limit, "base": settings.base,
            "dtype": settings.dtype, "seed": settings.seed}


def check_folder(out: Path, now: dict) -> None:
    saved = out / "settings.json"
    before = json.loads(saved.read_text()).get("scoring") if saved.is_file() else None
    changed = [k for k in now if before and before.get(k) != now[k]]
    if changed:
        was = ", ".join(f"{k} {before.get(k)}" for k in changed)
        raise T2LError(f"{out} holds rows scored with {was}; rerun with those settings or choose another --out")


def resolve_suite(spec: str, on_status: Callable[[str], None] | None = None) -> Path:
    """A suite folder; 'unseen' is built under $T2L_HOME/tasks the first time, decontaminated against every
    built-in training collection (built too if missing: a few minutes once)."""
    p = Path(spec).expanduser()
    if p.is_dir():
        return p
    if spec != "unseen":
        raise T2LError(f"no unseen suite at {spec!r}: "
                       "give a folder made by `t2l tasks build --from unseen` or 'unseen'")
    from t2l.home import t2l_home
    from t2l.tasks.collection import write_collection
    from t2l.tasks.unseen import build_unseen, training_tasks

    folder = t2l_home() / "tasks" / "unseen"
    if not (folder / "manifest.json").is_file():
        tasks, manifest = build_unseen(training=training_tasks(on_status))
        write_collection(folder, tasks, manifest, force=True)
    return folder


def _cells(settings: UnseenSettings, tasks, texts: dict, made: dict, emit: Event) -> list[tuple[str, str, object]]:
    """(method, task, generated adapter or None) for every cell not run yet; adapters made in one pass."""
    from t2l.make import Generator

    done = {(r["method"], r["task"]) for r in current_rows(settings, made)}
    todo = [(m, t.name) for m in settings.methods for t in tasks if (m, t.name) not in done
            and not (m == "mt-lora" and settings.mt_lora is None)]
    need = [(m, t) for m, t in todo if m.startswith("T2L")]
    made = {}
    if need:
        emit("phase", f"making {len(need)} adapters")
        generator = Generator(Path(settings.hypernet), base=settings.base)
        made = dict(zip(need, generator.make([texts[t][m] for m, t in need])))
    return [(m, t, made.get((m, t))) for m, t in todo]


def run_unseen(settings: UnseenSettings, on_event: Event | None = None) -> list[dict]:
    """Evaluate every (method, task) not in OUT/results.jsonl yet for this hypernetwork and mt-lora adapter;
    returns their rows."""
    import torch

    from t2l.adapter import read_adapter
    from t2l.base import load_base
    from t2l.lora_batched import applied, lora_weights
    from t2l.tasks.collection import read_tasks
    from t2l.device import resolve_device

    emit = on_event or (lambda kind, payload: None)
    check(settings)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    suite = resolve_suite(settings.suite, lambda m: emit("phase", m))
    tasks = read_tasks(suite, list(settings.tasks) if settings.tasks else None)
    for t in tasks:
        t.examples = t.examples[: settings.limit] if settings.limit else t.examples
    now = scoring(settings, suite)
    check_folder(out, now)
    write_text_atomic(out / "settings.json", json.dumps(settings.to_json() | {"scoring": now}, indent=2))
    from t2l.tasks.synthetic import pools

    made = makers(settings)
    texts = descriptions(tasks, pools(True).words, settings.seed)
    todo = _cells(settings, tasks, texts, made, emit)
    by_name = {t.name: t for t in tasks}
    model, tokenizer, _ = load_base(settings.base, dtype=settings.dtype)
    model.to(resolve_device(settings.device))
    mt = read_adapter(settings.mt_lora) if settings.mt_lora and any(m == "mt-lora" for m, _, _ in todo) else None
    with open(out / "results.jsonl", "a") as log:
        for k, (method, name, adapter) in enumerate(todo, 1):
            task = by_name[name]
            emit("cell", (k, len(todo), method, name))
            tensors, config = ((adapter.tensors, {"r": adapter.info.rank, "lora_alpha": adapter.info.alpha})
                               if adapter is not None else (mt[0], mt[2]) if method == "mt-lora" else (None, None))
            prompt = texts[name].get(method) if method in ("base + description", "T2L + description") else None
            applying = lora_weights(model, tensors, config) if tensors is not None else None
            with applied(model, applying), torch.no_grad():
                scores = score_task(model, tokenizer, task.examples, prompt, settings.batch_size)
            row = {"method": method, "task": name, "made_by": made_by(method, made), "n": len(task.examples),
                   "description": texts[name].get(method), **scores}
            log.write(json.dumps(row) + "\n")
            log.flush()
            emit("result", row)
    return current_rows(settings, made)


def score_task(model, tokenizer, examples: list[tuple[str, str]], instruction: str | None,
               batch_size: int) -> dict[str, list]:
    """Per item: the answer loss, the greedy answer, its ROUGE-L and normalised exact match."""
    from t2l.eval.generate import generate_until
    from t2l.eval.text_metrics import exact_match, rouge_l
    import torch
    import torch.nn.functional as F

    from t2l.lm import head_logits
    from t2l.train.data import IGNORE, Example, collate, encode_example, prompt_text

    inputs = [f"{instruction}\n\n{i}" if instruction else i for i, _ in examples]
    encoded = [encode_example(tokenizer, Example(0, i, o), 1024) for i, (_, o) in zip(inputs, examples)]
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
    return {"loss": losses, "answers": answers, "rouge_l": [rouge_l(a, r) for a, r in zip(answers, refs)],
            "exact_match": [exact_match(a, r) for a, r in zip(answers, refs)]}
