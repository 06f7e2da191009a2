"""Hypernetwork settings and the list of LoRA targets it emits weights for. No torch here."""

from dataclasses import asdict, dataclass, field, fields

VARIANTS = ("L", "M", "S")
EXAMPLES_AS = ("mean", "text")
RANK_POSITIONS = ("rope", "learned")


@dataclass
class HyperModConfig:
    """The Text-to-LoRA authors' hypernetwork ("HyperModulator", github.com/SakanaAI/text-to-lora), as their released
    releases use it; set on `HypernetConfig.hypermod` when a hypernetwork was imported (`t2l.authors`). Defaults are
    the paper's (their `TrainingArguments` and `create_hypermod`).

    description embedding -> task encoder (linear + layer norm, latent_size // 2)
      ++ layer-index and module-type embeddings (each embedding + layer norm, latent_size // 4)
      -> mixer MLP -> residual MLP block 1 -> [+ output embedding of A or B, shared_ab_head]
      -> residual MLP block 2 -> MLP to head_in_size -> a linear head per module type.
    """

    latent_size: int = 128
    """hypernet_latent_size: the width d of the concatenated (task, layer, module) input; the MLPs widen to 4 d."""
    head_in_size: int = 512
    """Width of the heads' input."""
    head_bias: bool = True
    """Whether the heads have a bias (theirs: SFT training without a multi-task LoRA, or reconstruction without
    z-scores)."""
    shared_ab_head: bool = False
    """One head per module type emits A or B, chosen by a learned output embedding added before residual block 2
    (rows of width max(in, out), cut to size); else the head emits A and B together (the paper's L variant)."""
    rank_at_a_time: bool = False
    """autoreg_gen: the head emits one rank row at a time, the row index entering as a rotary or learned position."""
    rank_position: str = "rope"
    """How the row index enters with rank_at_a_time: "rope" (LLaMA rotary embedding over the latent width, base
    10000) or "learned" (learnable_pos_emb: an embedding + layer norm)."""
    z_score: bool = False
    """pred_z_score of a reconstruction-trained hypernetwork: outputs are z-scores, mapped back with the stored
    per-element mean and std of the training LoRAs (x * (std + 1e-10) + mean)."""
    output_scale: float = 1.0
    """Multiplies every emitted A and B: 1 / sqrt(delta_w_scaling) for reconstruction-trained hypernetworks that were
    not factorized (trained against delta-W scaled by delta_w_scaling, default 10000)."""

    def __post_init__(self):
        if self.rank_position not in RANK_POSITIONS:
            raise ValueError(f"rank_position must be one of {', '.join(RANK_POSITIONS)}, not {self.rank_position!r}")
        if self.latent_size < 4 or self.latent_size % 4:
            raise ValueError("latent_size must be a positive multiple of 4")


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
    examples: int = 0
    """Most input/output examples an adapter is made from besides (or instead of) its description; 0: descriptions
    only. Each example is embedded alone by the description encoder as `t2l.examples.example_text` writes it, the
    embeddings are averaged, and the average enters the task encoder through a linear map of its own, added to the
    description's before the layer norm (zero-initialised, so a description-only hypernetwork warm-starts exactly
    as it was). See `examples_as` for the other way."""
    examples_as: str = "mean"
    """How a hypernetwork with `examples` reads them: "mean" (each example embedded alone, the mean through its own
    map, as above) or "text" (the description and the examples as one text, `t2l.examples.conditioning_text`, one
    embedding through the task encoder: no new weights, and an adapter without examples is the description's)."""
    hypermod: HyperModConfig | None = None
    """The authors' architecture instead of ours (an imported hypernetwork); task_dim, pos_dim, hidden_dim and depth
    are then unused. None (the default) is t2l's own HyperLoRA."""

    def __post_init__(self):
        self.target_modules = tuple(self.target_modules)
        if isinstance(self.hypermod, dict):
            self.hypermod = HyperModConfig(**self.hypermod)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}")
        if self.rank < 1 or self.depth < 1:
            raise ValueError("rank and depth must be at least 1")
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module")
        if self.examples < 0:
            raise ValueError(f"examples must be 0 or more, not {self.examples}")
        if self.examples_as not in EXAMPLES_AS:
            raise ValueError(f"examples_as must be one of {', '.join(EXAMPLES_AS)}, not {self.examples_as!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        if self.hypermod is None:
            del d["hypermod"]  # t2l's own hypernetwork folders keep the config.json they always had
        if not self.examples:
            del d["examples"], d["examples_as"]  # likewise for a description-only one
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
