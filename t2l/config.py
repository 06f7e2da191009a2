"""Hypernetwork settings and the list of LoRA targets it emits weights for. No torch here."""

from dataclasses import asdict, dataclass, field, fields

VARIANTS = ("L", "M", "S")


@dataclass
class HypernetConfig:
    """Sizes and LoRA settings of a Text-to-LoRA hypernetwork."""

    variant: str = "M"
    """L: one head per module type emits A and B together; M: the head emits A or B, chosen by an A/B embedding;
    S: the head emits one rank row of A or B at a time, chosen by A/B and rank embeddings (fewest parameters)."""
    rank: int = 8
    """LoRA rank r of the generated adapters."""
    alpha: float = 16.0
    """LoRA alpha; the adapter's delta-W is (alpha / rank) * B @ A."""
    dropout: float = 0.0
    """LoRA dropout recorded in the adapter config (used while training through the adapter)."""
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    """Names of the nn.Linear modules, in every layer, that get a LoRA."""
    embed_dim: int = 384
    """Width of the description encoder's embedding (384 for all-MiniLM-L6-v2)."""
    task_dim: int = 64
    """Width of the task encoder's output (linear + layer norm of the description embedding)."""
    pos_dim: int = 32
    """Width of the learned layer-index, module-type, A/B and rank embeddings."""
    hidden_dim: int = 512
    """Width of the MLP trunk."""
    depth: int = 2
    """Number of linear layers in the trunk."""

    def __post_init__(self):
        self.target_modules = tuple(self.target_modules)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}")
        if self.rank < 1 or self.depth < 1:
            raise ValueError("rank and depth must be at least 1")
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HypernetConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Target:
    """One LoRA site: module `name` (as in `model.named_modules()`) of type `module` in layer `layer`."""

    name: str
    module: str
    layer: int
    in_features: int
    out_features: int

    def peft_key(self, which: str) -> str:
        return f"base_model.model.{self.name}.lora_{which}.weight"


@dataclass
class TargetSet:
    """All LoRA sites, grouped by module type in `modules` order, layers ascending inside each."""

    targets: list[Target] = field(default_factory=list)

    @property
    def modules(self) -> list[str]:
        return list(dict.fromkeys(t.module for t in self.targets))

    def of(self, module: str) -> list[Target]:
        return [t for t in self.targets if t.module == module]

    @property
    def num_layers(self) -> int:
        return max(t.layer for t in self.targets) + 1

    def to_list(self) -> list[dict]:
        return [asdict(t) for t in self.targets]

    @classmethod
    def from_list(cls, rows: list[dict]) -> "TargetSet":
        return cls([Target(**r) for r in rows])
