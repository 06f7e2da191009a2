"""Running a recipe: data, models, the loop, checkpoints every N steps, a time budget, and the result.

RUN/recipe.yaml         the resolved recipe
RUN/metrics.jsonl       one line per step (and per validation)
RUN/checkpoint/         weights + optimizer + RNG + step, replaced atomically; --resume starts here
RUN/result/             the hypernetwork folder (sft) or adapter (lora, mt-lora)
"""

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from t2l.callbacks import Event
from t2l.device import resolve_device
from t2l.errors import T2LError
from t2l.files import folder_atomic, write_bytes_atomic
from t2l.home import t2l_home
from t2l.tasks.resolve import holdout_names, resolve_collection
from t2l.train.recipe import Recipe, dump_recipe, load_recipe

if TYPE_CHECKING:
    from t2l.adapter import AdapterInfo
    from t2l.encoder import DescriptionEncoder
    from t2l.hypernet_files import HypernetInfo
    from t2l.locate import ModelRef
    from t2l.train.lora import LoraObjective
    from t2l.train.loop import Sampler
    from t2l.train.recon import ReconObjective
    from t2l.train.sft import HypernetObjective


@dataclass
class RunResult:
    out: Path
    artifact: Path
    kind: str  # "hypernet" or "adapter"
    steps: int
    completed: bool
    final_loss: float | None
    collection_sha256: str
    rank: int = 0
    recipe: Recipe | None = None
    """The recipe that ran: a resumed run's own, with the keys given to --resume applied."""
    info: "HypernetInfo | AdapterInfo | None" = None
    """What the result says about itself, as written (None on a rank other than 0, which writes nothing)."""


def save_checkpoint(folder: Path, tensors: dict, meta: dict) -> None:
    from safetensors.torch import save_file

    with folder_atomic(folder, replace=True) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp / "state.safetensors")
        (tmp / "state.json").write_text(json.dumps(meta))


def load_checkpoint(folder: Path) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    return load_file(folder / "state.safetensors"), json.loads((folder / "state.json").read_text())


def run_recipe(recipe: Recipe, resume: Path | None = None, on_event: Event | None = None) -> RunResult:
    """Train as the recipe says. With `resume`, continue the run in that folder from its last checkpoint
    (settings come from its recipe.yaml; `recipe` then only gives train.steps, run.max_minutes and data.tasks, the
    last so that a run folder copied to another machine can point at its copy of the collection: the collection's
    sha256 must be the one the run trained on). Of a recipe from `load_recipe` only the keys its overrides gave
    count: without train.steps= the run keeps its own budget, not the shipped recipe's."""
    from t2l.train import distributed

    started_group = distributed.init_from_env()
    try:
        return _run(recipe, resume, on_event or (lambda kind, payload: None))
    finally:
        if started_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run(recipe: Recipe, resume: Path | None, emit: Event) -> RunResult:

    from t2l.train import distributed

    status = lambda msg: emit("status", msg)  # noqa: E731
    rank0 = distributed.rank() == 0
    if resume is not None:
        resume = Path(resume)
        if not (resume / "recipe.yaml").is_file():
            raise T2LError(f"{resume} is not a run folder (no recipe.yaml); give the folder a run printed")
        saved = load_recipe(str(resume / "recipe.yaml"), name_from_stem=False)  # its recorded name
        given = lambda key: recipe.given is None or key in recipe.given  # noqa: E731 - else the run's own value
        if given("train.steps"):
            saved.train.steps = recipe.train.steps
        if given("run.max_minutes"):
            saved.run.max_minutes = recipe.run.max_minutes
        if given("data.tasks"):
            saved.data.tasks = recipe.data.tasks
        recipe, out = saved, resume
    else:
        stamp = distributed.same_on_all_ranks(datetime.now().strftime("%Y%m%d-%H%M%S"))
        out = Path(recipe.run.out).expanduser() if recipe.run.out else t2l_home() / "runs" / f"{recipe.name}-{stamp}"
        if (out / "checkpoint").exists():
            raise T2LError(f"{out} holds a run already; continue it with --resume {out} or choose run.out=NEW")
    recipe.check_runnable()
    if rank0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "recipe.yaml").write_text(dump_recipe(recipe))

    from t2l.train.loop import Trainer, run_steps

    device = resolve_device(recipe.run.device)
    progress = lambda done, total: emit("progress", (done, total))  # noqa: E731
    prep = (_prepare_recon if recipe.kind == "recon" else _prepare_tasks)(recipe, device, out, status, progress)
    objective = prep.objective
    trainer = Trainer(objective, prep.sampler, recipe.train)
    if resume is not None and (out / "checkpoint").exists():
        tensors, meta = load_checkpoint(out / "checkpoint")
        trained_on = meta.get("data", prep.data)  # checkpoints before this check carry no record
        if trained_on["sha256"] != prep.data["sha256"]:
            raise T2LError(
                f"{recipe.data.tasks} holds collection {prep.data['name']} with sha256 "
                f"{prep.data['sha256'][:12]}, but this run trained on {trained_on['name']} "
                f"{trained_on['sha256'][:12]}; resume with data.tasks=FOLDER naming a copy of that one"
            )
        trainer.load_state(tensors, meta)
        status(f"resumed at step {trainer.step_done}")
    eval_rows, eval_descs, eval_shots = prep.eval_rows

    log = open(out / "metrics.jsonl", "a") if rank0 else None
    budget_s = recipe.run.max_minutes * 60 if recipe.run.max_minutes else None
    started = time.monotonic()
    last = {"loss": None}

    def checkpoint():
        if rank0:
            tensors, meta = trainer.state()
            save_checkpoint(out / "checkpoint", tensors, meta | {"data": prep.data})
            emit("checkpoint", out / "checkpoint")

    def validate():
        if eval_rows and last.get("validated") != trainer.step_done:
            last["validated"] = trainer.step_done
            record = {"step": trainer.step_done, "heldout_loss": trainer.eval_loss(eval_rows, eval_descs)}
            if any(eval_shots):  # the same rows with examples too: what the examples add
                record["heldout_loss_examples"] = trainer.eval_loss(eval_rows, eval_descs, eval_shots)
            if rank0:
                log.write(json.dumps(record) + "\n")
                log.flush()
            emit("eval", record)

    def on_step(m) -> bool:
        last["loss"] = m.loss
        if log is not None:  # rank 0
            log.write(json.dumps(asdict(m)) + "\n")
            log.flush()
        emit("step", m)
        if recipe.run.eval_every and m.step % recipe.run.eval_every == 0:
            validate()
        if m.step % recipe.run.checkpoint_every == 0:
            checkpoint()
        return _agreed(asked["stop"] or (budget_s is not None and time.monotonic() - started > budget_s))

    emit("start", {"start": trainer.step_done, "steps": recipe.train.steps, "out": out})
    asked = {"stop": False}
    try:
        with _stop_on_signal(asked, status):
            run_steps(trainer, recipe.train.steps, on_step)
        completed = trainer.step_done >= recipe.train.steps
        if trainer.step_done % recipe.run.checkpoint_every:
            checkpoint()
        validate()
        artifact, kind, info = (
            _save_result(recipe, prep, out, trainer, completed, last["loss"]) if rank0 else (out / "result", "", None)
        )
    finally:
        objective.close()
        if log:
            log.close()
    return RunResult(
        out,
        artifact,
        kind,
        trainer.step_done,
        completed,
        last["loss"],
        prep.data["sha256"],
        distributed.rank(),
        recipe,
        info,
    )


@contextlib.contextmanager
def _stop_on_signal(asked: dict, status: Callable[[str], None]):
    """The first Ctrl-C or SIGTERM (a scheduler's, a closing terminal's) asks the run to stop after the step in
    progress, checkpointed and with its result written, so --resume loses nothing; a second one interrupts at once."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return

    def ask(signum, frame):
        if asked["stop"]:
            raise KeyboardInterrupt
        asked["stop"] = True
        status("stopping after this step, with a checkpoint (press Ctrl-C again to stop at once, without one)")

    # a signal the process was started with ignored (SIGINT of `nohup t2l train ... &`) stays ignored
    before = {
        s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _agreed(flag: bool) -> bool:
    """Every process stops at the same step: rank 0's clock decides."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.broadcast(t, 0)
    return bool(t.item())


@dataclass
class _Prepared:
    """What a recipe trains on, and what its result records."""

    objective: "HypernetObjective | LoraObjective | ReconObjective"
    sampler: "Sampler"
    eval_rows: tuple[list[int], list[int], list[list[int]]]
    base_ref: "ModelRef"
    encoder: "DescriptionEncoder | None"  # None for a LoRA result
    data: dict  # name and sha256 of the training data
    held: list[str]
    description: str  # of a LoRA result


def _prepare_tasks(recipe: Recipe, device: str, out: Path, status, progress) -> _Prepared:
    """sft, lora and mt-lora: examples from a task collection, trained through the base model."""
    import torch

    from t2l.base import load_base
    from t2l.tasks.collection import read_manifest, read_tasks
    from t2l.train.data import Example
    from t2l.train.loop import Sampler

    collection = resolve_collection(recipe.data.tasks, status, progress)
    status(f"reading the task collection {collection}")
    manifest = read_manifest(collection)
    tasks = read_tasks(collection, [recipe.data.task] if recipe.kind == "lora" and recipe.data.task else None)
    held = set(holdout_names([t.name for t in tasks], recipe.data.holdout)) if recipe.kind != "lora" else set()
    examples = [Example(i, inp, outp) for i, t in enumerate(tasks) for inp, outp in t.examples]
    status(f"loading base model {recipe.base}")
    base, tokenizer, base_ref = load_base(recipe.base, dtype=recipe.run.dtype, on_status=status)
    base.to(device)
    encoder = None
    objective: "HypernetObjective | LoraObjective"
    torch.manual_seed(recipe.train.seed)
    if recipe.kind == "sft":
        from t2l.encoder import load_encoder
        from t2l.train.sft import HypernetObjective, build_hypernet

        status(f"loading the description encoder {recipe.encoder}")
        encoder = load_encoder(recipe.encoder)
        flat = run_embeddings(encoder, [d for t in tasks for d in t.descriptions], out, status, progress)
        embeddings = list(flat.split([len(t.descriptions) for t in tasks]))
        status("building the hypernetwork")
        hypernet = build_hypernet(base, recipe.hypernet_config(encoder.dim))
        if recipe.train.init_from:
            status(f"starting from the weights of hypernetwork {recipe.train.init_from}")
            warm_start(hypernet, recipe.train.init_from)
        reads = recipe.hypernet.examples_as if recipe.hypernet.examples else None
        objective = HypernetObjective(
            hypernet.to(device),
            base,
            tokenizer,
            examples,
            embeddings,
            recipe.train.max_length,
            recipe.train.description_noise,
            recipe.train.packing,
            ShotEmbeddings(encoder, examples) if reads == "mean" else None,
            JointEmbeddings(encoder, examples, tasks) if reads == "text" else None,
        )
    else:
        from t2l.train.lora import LoraObjective, build_lora

        lr = recipe.lora
        status("building the LoRA")
        objective = LoraObjective(
            build_lora(base, lr.rank, lr.alpha, lr.dropout, lr.target_modules),
            tokenizer,
            examples,
            recipe.train.max_length,
            recipe.train.packing,
        )
    sampler = Sampler(
        [-1 if tasks[e.task].name in held else e.task for e in examples],
        [len(t.descriptions) for t in tasks],
        recipe.hypernet.examples,
        recipe.train.no_description,
    )
    description = (
        tasks[0].descriptions[0]
        if recipe.kind == "lora"
        else f"multi-task LoRA on {len(tasks) - len(held)} tasks of {manifest.name}"
    )
    eval_rows = _eval_rows(examples, tasks, held, recipe.data.eval_examples, min(4, recipe.hypernet.examples))
    return _Prepared(
        objective,
        sampler,
        eval_rows,
        base_ref,
        encoder,
        {"name": manifest.name, "sha256": manifest.sha256},
        sorted(held),
        description,
    )


def _prepare_recon(recipe: Recipe, device: str, out: Path, status, progress) -> _Prepared:
    """recon: no base forward at all; the targets are the source LoRAs' own A and B."""
    import torch
    from transformers import AutoConfig

    from t2l.base import base_folder
    from t2l.encoder import load_encoder
    from t2l.hypernet import HyperLoRA
    from t2l.targets import targets_from_config
    from t2l.train.loop import Sampler
    from t2l.train.recon import ReconObjective, load_library

    folder, base_ref = base_folder(recipe.base, status)
    status(f"loading the description encoder {recipe.encoder}")
    encoder = load_encoder(recipe.encoder)
    config = recipe.hypernet_config(encoder.dim)
    targets = targets_from_config(AutoConfig.from_pretrained(folder), config.target_modules)
    status(f"reading {len(recipe.recon.sources)} source LoRAs")
    descriptions, library = load_library(recipe.recon.sources, targets, list(config.target_modules))
    rank = next(iter(library.values()))[0].shape[2]
    if rank != config.rank:
        raise T2LError(f"the source LoRAs have rank {rank}, the recipe lora.rank={config.rank}; make them equal")
    embeddings = list(encoder.encode(descriptions).embeddings.split(1))
    torch.manual_seed(recipe.train.seed)
    objective = ReconObjective(HyperLoRA(config, targets).to(device), library, embeddings)
    digest = hashlib.sha256("\n".join(descriptions).encode())
    for m in sorted(library):
        digest.update(library[m][0].numpy().tobytes() + library[m][1].numpy().tobytes())
    n = len(descriptions)
    return _Prepared(
        objective,
        Sampler(list(range(n)), [1] * n),
        ([], [], []),
        base_ref,
        encoder,
        {"name": "recon", "sha256": digest.hexdigest()},
        [],
        "",
    )


EMBEDDINGS = "embeddings.safetensors"


def run_embeddings(encoder, texts: list[str], out: Path, status, progress=None):
    """The encoder's embeddings of `texts` [n, dim], kept in the run folder under the encoder's weights sha256,
    pooling and the texts' sha256, so a resumed run reads them instead of encoding thousands of descriptions again
    (any change to either key encodes afresh)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save

    from t2l.train import distributed

    key = {
        "encoder_sha256": encoder.ref.sha256,
        "pooling": encoder.pooling,
        "texts_sha256": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
    }
    path = out / EMBEDDINGS
    if path.is_file():
        with safe_open(path, "pt") as f:
            if f.metadata() == key:
                status(f"reading the {len(texts)} description embeddings of this run")
                return load_file(path)["embeddings"]
    status(f"encoding {len(texts)} descriptions")
    flat = encoder.encode(texts, on_progress=progress).embeddings
    if distributed.rank() == 0:
        write_bytes_atomic(path, save({"embeddings": flat.contiguous().cpu()}, metadata=key))
    return flat


def _eval_rows(examples, tasks, held: set, n: int, shots: int) -> tuple[list[int], list[int], list[list[int]]]:
    """n examples of the held-out tasks, spread over them, each with its task's first description and, for a
    hypernetwork trained with examples, its task's first `shots` other examples."""
    rows = [i for i, e in enumerate(examples) if tasks[e.task].name in held]
    if not rows or n <= 0:
        return [], [], []
    step = max(1, len(rows) // n)
    picked = rows[::step][:n]
    first: dict[int, list[int]] = {}
    for i in rows:
        group = first.setdefault(examples[i].task, [])
        if len(group) <= shots:  # one more than needed, as a row's own example is left out of its shots
            group.append(i)
    return picked, [0] * len(picked), [[r for r in first[examples[i].task] if r != i][:shots] for i in picked]


class ShotEmbeddings:
    """The encoder's embeddings of examples as conditioning text, computed once per example on first use (a run
    draws from a few thousand; a resumed run recomputes them in seconds)."""

    def __init__(self, encoder, examples):
        self.encoder, self.examples, self.cache = encoder, examples, {}

    def __call__(self, rows: list[int]):
        import torch

        from t2l.examples import Shot, example_text

        new = [r for r in dict.fromkeys(rows) if r not in self.cache]
        if new:
            texts = [example_text(Shot(self.examples[r].input, self.examples[r].output)) for r in new]
            self.cache.update(zip(new, self.encoder.encode(texts).embeddings))
        return torch.stack([self.cache[r] for r in rows])


class JointEmbeddings:
    """The encoder's embeddings of each draw's description and examples as one text (`conditioning_text`); a
    draw's combination rarely repeats, so nothing is cached."""

    def __init__(self, encoder, examples, tasks):
        self.encoder, self.examples, self.tasks = encoder, examples, tasks

    def __call__(self, draws: list[tuple[int, int, list[int]]]):
        from t2l.examples import Shot, conditioning_text

        texts = []
        for row, desc, shots in draws:
            description = self.tasks[self.examples[row].task].descriptions[desc] if desc >= 0 else ""
            texts.append(
                conditioning_text(description, [Shot(self.examples[r].input, self.examples[r].output) for r in shots])
            )
        return self.encoder.encode(texts).embeddings


def warm_start(hypernet, spec: str) -> None:
    """Load a trained hypernetwork's weights into `hypernet` (same sizes and targets); what it lacks keeps its
    init (the examples' map, zero: the start then makes exactly the adapters the hypernetwork made)."""
    from t2l.hypernet_files import hypernet_path, load_hypernet

    folder = hypernet_path(spec)
    if folder is None:
        raise T2LError(f"train.init_from={spec!r}: give a hypernetwork folder or 'default'")
    source, info = load_hypernet(folder)
    mine, theirs = hypernet.state_dict(), source.state_dict()
    wrong = [k for k, v in theirs.items() if k not in mine or mine[k].shape != v.shape]
    if wrong or info.targets.to_list() != hypernet.targets.to_list():
        raise T2LError(
            f"train.init_from={spec!r} has other sizes or targets than this recipe's hypernetwork "
            f"({(wrong or ['targets'])[0]}); match the recipe's hypernet and lora settings to it"
        )
    hypernet.load_state_dict(theirs, strict=False)


def _save_result(recipe: Recipe, prep: _Prepared, out: Path, trainer, completed: bool, final_loss):
    from t2l.adapter import TRAINED, AdapterInfo
    from t2l.export import write_adapter

    result = out / "result"
    if result.exists():
        shutil.rmtree(result)
    training = {
        "recipe": recipe.name,
        "kind": recipe.kind,
        "steps": trainer.step_done,
        "completed": completed,
        "final_loss": final_loss,
        "collection": prep.data["name"],
        "collection_sha256": prep.data["sha256"],
        "heldout_tasks": prep.held,
        "settings": recipe.to_dict(),
    }
    if prep.encoder is not None:  # sft and recon make a hypernetwork
        from t2l.hypernet_files import save_hypernet

        saved = save_hypernet(
            prep.objective.module,
            result,
            base=prep.base_ref,
            base_spec=recipe.base,
            encoder=prep.encoder.ref,
            encoder_spec=recipe.encoder,
            pooling=prep.encoder.pooling,
            training=training,
            dtype=recipe.run.save_dtype,
        )
        return result, "hypernet", saved
    lr = recipe.lora
    info = AdapterInfo(
        description=prep.description,
        rank=lr.rank,
        alpha=lr.alpha,
        target_modules=list(lr.target_modules),
        base=prep.base_ref,
        base_spec=recipe.base,
        dropout=lr.dropout,
        hypernet={"recipe": recipe.name, "kind": recipe.kind, "steps": trainer.step_done},
    )
    weights = {k: v.detach().float().cpu() for k, v in prep.objective.weights().items()}
    result.mkdir(parents=True)
    return write_adapter(weights, info, result / TRAINED), "adapter", info
