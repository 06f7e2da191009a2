"""Hypernetwork folders: a folder with `hypernet.safetensors` and `config.json`. Never pickle."""

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from t2l.config import HypernetConfig, TargetSet
from t2l.errors import T2LError
from t2l.files import folder_atomic
from t2l.hashing import sha256_file, wrote_sha256
from t2l.locate import ModelRef

FORMAT = "t2l-hypernet/1"
WEIGHTS, CONFIG = "hypernet.safetensors", "config.json"
DEFAULT_HYPERNET_DIR = Path(__file__).parent / "assets" / "default-hypernet"


@dataclass
class HypernetInfo:
    """Everything a hypernetwork folder says about itself, readable without torch."""

    config: HypernetConfig
    targets: TargetSet
    base: ModelRef
    base_spec: str
    encoder: ModelRef
    encoder_spec: str
    pooling: str
    sha256: str
    training: dict = field(default_factory=dict)
    encoder_style: str = "plain"
    """How descriptions reach the encoder and its embedding the hypernetwork: "plain" (t2l's), or "authors" for
    an imported hypernetwork (see `t2l.encoder.STYLES`)."""

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "hypernet": self.config.to_dict(),
            "targets": self.targets.to_list(),
            "base": {**self.base.to_dict(), "spec": self.base_spec},
            "encoder": {
                **self.encoder.to_dict(),
                "spec": self.encoder_spec,
                "pooling": self.pooling,
                **({"style": self.encoder_style} if self.encoder_style != "plain" else {}),
            },
            "weights_sha256": self.sha256,
            "training": self.training,
        }

    def adapters_sha256(self) -> str:
        """sha256 of what besides the tensors decides the adapters this hypernetwork makes: its config, targets, base
        and encoder weights, pooling and style; not where the models were found nor how it was trained."""
        d = self.to_json()
        del d["weights_sha256"], d["training"]
        for part in ("base", "encoder"):
            d[part] = {k: v for k, v in d[part].items() if k != "spec"}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_json(cls, d: dict) -> "HypernetInfo":
        return cls(
            config=HypernetConfig.from_dict(d["hypernet"]),
            targets=TargetSet.from_list(d["targets"]),
            base=ModelRef.from_dict(d["base"]),
            base_spec=d["base"]["spec"],
            encoder=ModelRef.from_dict(d["encoder"]),
            encoder_spec=d["encoder"]["spec"],
            pooling=d["encoder"]["pooling"],
            sha256=d["weights_sha256"],
            training=d.get("training", {}),
            encoder_style=d["encoder"].get("style", "plain"),
        )

    def registry_fields(self) -> dict:
        """The columns of the registry's hypernet table."""
        return dict(
            sha256=self.sha256,
            variant=self.config.variant,
            rank=self.config.rank,
            alpha=self.config.alpha,
            targets=list(self.config.target_modules),
            base_name=self.base.name,
            base_sha256=self.base.sha256,
            encoder_name=self.encoder.name,
            encoder_sha256=self.encoder.sha256,
            recipe=self.training.get("recipe"),
            config=self.to_json(),
            collection_sha256=self.training.get("collection_sha256"),
            steps=self.training.get("steps"),
            final_loss=self.training.get("final_loss"),
        )


def save_hypernet(
    model,
    folder: Path,
    *,
    base: ModelRef,
    base_spec: str,
    encoder: ModelRef,
    encoder_spec: str,
    pooling: str,
    training: dict | None = None,
    dtype: str = "float32",
    encoder_style: str = "plain",
) -> HypernetInfo:
    """Write weights + config to a temp folder, then rename it into place. The weights file carries
    `adapters_sha256` in its metadata, so its sha256 (the registry's identity of a hypernetwork) differs between
    hypernetworks whose tensors are equal but whose adapters are not (another base, module order or output scale)."""
    import torch
    from safetensors.torch import save

    from t2l.adapter import canonical

    folder = Path(folder)
    if folder.exists():
        raise T2LError(f"{folder} exists already; choose a new folder for the hypernetwork")
    with folder_atomic(folder) as tmp:
        state = {k: v.detach().to(getattr(torch, dtype)).contiguous() for k, v in model.state_dict().items()}
        info = HypernetInfo(
            model.config,
            model.targets,
            base,
            base_spec,
            encoder,
            encoder_spec,
            pooling,
            "",
            dict(training or {}),
            encoder_style,
        )
        # canonical: metadata in sorted order, so the same hypernetwork always has the same bytes and sha256
        data = canonical(save(state, metadata={"format": "pt", "adapters_sha256": info.adapters_sha256()}))
        (tmp / WEIGHTS).write_bytes(data)
        info = replace(info, sha256=hashlib.sha256(data).hexdigest())
        (tmp / CONFIG).write_text(json.dumps(info.to_json(), indent=2))
    wrote_sha256(folder / WEIGHTS, info.sha256)
    return info


def read_hypernet_info(folder: Path) -> HypernetInfo:
    folder = Path(folder)
    if folder == DEFAULT_HYPERNET_DIR and not folder.exists():
        raise T2LError(
            "no default hypernetwork is installed in this t2l (none has been trained and shipped yet); "
            "pass --hypernet with a hypernetwork folder or a registered hypernetwork (see `t2l hypernets`)"
        )
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise T2LError(f"{folder} is not a hypernetwork folder (needs {CONFIG} and {WEIGHTS})")
    try:
        d = json.loads((folder / CONFIG).read_text())
        if not isinstance(d, dict):
            raise T2LError(
                f"{folder / CONFIG} holds a JSON {type(d).__name__}, not a hypernetwork config (an object "
                f"with format {FORMAT!r}); restore the hypernetwork's {CONFIG}"
            )
        if d.get("format") != FORMAT:
            raise T2LError(f"{folder / CONFIG} has format {d.get('format')!r}, expected {FORMAT!r}")
        return HypernetInfo.from_json(d)
    except (ValueError, KeyError, TypeError) as e:
        raise T2LError(f"{folder / CONFIG} is not a valid hypernetwork config ({type(e).__name__}: {e})") from None


def load_hypernet(folder: Path):
    """(the hypernetwork in eval mode, HypernetInfo), after checking the weights against their recorded sha256."""
    from safetensors.torch import load_file

    from t2l.hypermod import HyperMod
    from t2l.hypernet import HyperLoRA

    info = read_hypernet_info(folder)
    weights = Path(folder) / WEIGHTS
    if sha256_file(weights) != info.sha256:
        raise T2LError(f"{weights} is corrupted (sha256 differs from {CONFIG}); restore or download it again")
    # t2l's HyperLoRA, or the authors' architecture when the config says hypermod (an imported hypernetwork)
    model: HyperLoRA | HyperMod = (
        HyperLoRA(info.config, info.targets) if info.config.hypermod is None else HyperMod(info.config, info.targets)
    )
    state = {k: v.float() for k, v in load_file(weights).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise T2LError(f"{weights} does not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), info


def hypernet_path(spec: str) -> Path | None:
    """The hypernetwork folder that `spec` names directly ("default" or a path); None for a registry name or id."""
    if spec == "default":
        return DEFAULT_HYPERNET_DIR
    p = Path(spec).expanduser()
    return p if p.exists() or "/" in spec or spec.startswith((".", "~")) else None
